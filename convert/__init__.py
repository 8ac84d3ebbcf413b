"""Converters: export specs, ONNX Runtime and Core ML variants, parity gates, bundles."""
