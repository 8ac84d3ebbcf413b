"""Errors of igr.data."""


class DataFolderError(ValueError):
    """A data folder is missing a piece the loader needs; the message names it."""
