"""Shared fixtures; hardware markers skip themselves where the hardware is missing."""
import platform

import pytest


def pytest_collection_modifyitems(config, items):
    mac = platform.system() == "Darwin"
    cuda = None
    for item in items:
        if "coreml" in item.keywords and not mac:
            item.add_marker(pytest.mark.skip(reason="Core ML predictions need macOS"))
        if "cuda" in item.keywords:
            if cuda is None:
                from igr_edge.backends import available_backends

                cuda = next(s for s in available_backends() if s.name == "cuda")
            if not cuda.available:
                item.add_marker(pytest.mark.skip(reason=f"no usable CUDA here: {cuda.reason}"))
