"""The SDK tests' fixtures: the tiny real bundles (tests/tiny_bundles.py) and a clean backend environment.
The shipped default bundle is used where a test needs the real model."""
import pytest


@pytest.fixture(autouse=True)
def no_backend_from_the_environment(monkeypatch):
    """Tests choose their backend, Core ML compute units and memory mode themselves: IGR_EDGE_BACKEND,
    IGR_EDGE_COMPUTE_UNITS and IGR_EDGE_LOW_MEMORY from the shell must not leak in."""
    monkeypatch.delenv("IGR_EDGE_BACKEND", raising=False)
    monkeypatch.delenv("IGR_EDGE_COMPUTE_UNITS", raising=False)
    monkeypatch.delenv("IGR_EDGE_LOW_MEMORY", raising=False)
