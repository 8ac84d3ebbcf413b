"""IGR model components and the whole model."""
from .igr import COMPONENTS, SHARED, AlignedPrior, Conditioning, GarmDenoiser, GarmNet, IGRModel, ImageEncoder, \
    Rows, component_file, components_of, folder_components

__all__ = ["AlignedPrior", "COMPONENTS", "SHARED", "Conditioning", "GarmDenoiser", "GarmNet", "IGRModel",
           "ImageEncoder", "Rows", "component_file", "components_of", "folder_components"]
