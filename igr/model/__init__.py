"""IGR model components and the whole model."""
from .igr import COMPONENTS, Conditioning, GarmDenoiser, GarmNet, IGRModel, ImageEncoder

__all__ = ["COMPONENTS", "Conditioning", "GarmDenoiser", "GarmNet", "IGRModel", "ImageEncoder"]
