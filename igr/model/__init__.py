"""IGR model components and the whole model."""
from .igr import COMPONENTS, OPTIONAL, SHARED, AlignedPrior, Conditioning, GarmDenoiser, GarmNet, IGRModel, ImageEncoder, \
    component_file, folder_components

__all__ = ["AlignedPrior", "COMPONENTS", "OPTIONAL", "SHARED", "Conditioning", "GarmDenoiser", "GarmNet", "IGRModel",
           "ImageEncoder", "component_file", "folder_components"]
