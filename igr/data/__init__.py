"""IGR data: SynthGarment (procedural person/garment pairs) and readers for VITON-HD and DressCode.

The torch-backed datasets load on first use, so `python -m igr.data --help` stays light.
"""

from .errors import DataFolderError
from .synth import CATEGORIES, PRINTS, SPLITS, Sample, SceneConfig, generate, seed_for

__all__ = ["CATEGORIES", "PRINTS", "SPLITS", "Sample", "SceneConfig", "generate", "seed_for",
           "SynthGarmentDataset", "VitonHD", "DressCode", "DataFolderError"]

_LAZY = {"SynthGarmentDataset": ".dataset", "VitonHD": ".real", "DressCode": ".real"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
