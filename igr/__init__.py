"""IGR: the garment-restoration model in PyTorch (configs, model, sampling, data)."""
