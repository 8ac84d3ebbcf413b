"""igr_edge: run exported IGR garment-restoration bundles with numpy, pillow and ONNX Runtime."""
__version__ = "0.1.0"
