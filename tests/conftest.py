"""Shared fixtures; hardware markers skip themselves where the hardware is missing."""
import platform

import pytest


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """Tiny real bundles written by the converters (see tests/tiny_bundles.py), cached across runs."""
    from tests.tiny_bundles import tiny_bundles as build

    return build(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_student(tiny_bundles):
    return tiny_bundles["student"]


@pytest.fixture(scope="session")
def tiny_teacher(tiny_bundles):
    return tiny_bundles["teacher"]


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
