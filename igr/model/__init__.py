"""IGR model components and the whole model."""
from .igr import COMPONENTS, SHARED, Conditioning, GarmDenoiser, GarmNet, IGRModel, ImageEncoder, component_file

__all__ = ["COMPONENTS", "SHARED", "Conditioning", "GarmDenoiser", "GarmNet", "IGRModel", "ImageEncoder",
           "component_file"]
