"""The SDK's errors: every failure a user can cause is an IgrEdgeError, with a one-line reason."""


class IgrEdgeError(Exception):
    """Base class of every error igr_edge raises on purpose."""


class InvalidImageError(IgrEdgeError):
    """The input is not an image igr_edge can read (or is too large to decode safely)."""


class BundleError(IgrEdgeError):
    """A bundle is missing, malformed, of an unknown schema, or its files fail their SHA-256 check."""


class BackendUnavailableError(IgrEdgeError):
    """No requested backend can run here; the message says why each candidate was rejected."""
