"""Shared fixtures; hardware markers skip themselves where the hardware is missing."""
import platform

import pytest


def pytest_collection_modifyitems(config, items):
    mac = platform.system() == "Darwin"
    for item in items:
        if "coreml" in item.keywords and not mac:
            item.add_marker(pytest.mark.skip(reason="Core ML predictions need macOS"))
