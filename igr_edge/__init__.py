"""igr_edge: run exported IGR garment-restoration bundles with numpy, pillow and ONNX Runtime (never torch).

    import igr_edge
    garment = igr_edge.restore("person.jpg")          # the default bundle, the best backend here

The public names load on first use, so `import igr_edge.manifest` (the converters) stays light.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "restore": "restorer", "Restorer": "restorer", "Bundle": "bundle",
    "available_backends": "backends", "BackendStatus": "backends",
    "IgrEdgeError": "errors", "InvalidImageError": "errors", "BundleError": "errors",
    "BackendUnavailableError": "errors", "restore_catalog": "batch",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'igr_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
