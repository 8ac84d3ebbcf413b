"""The default bundle's mobile variant, under ONNX Runtime's own mobile usability check (here, not in
tests/igr_edge: the checker and onnx are the converters' dependencies, not the SDK's)."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from igr_edge.manifest import read_manifest

DEFAULT = Path(__file__).resolve().parents[2] / "igr_edge" / "bundles" / "default"
MOBILE = "onnx-mobile-w8"


def test_default_bundles_mobile_variant_is_taken_whole_by_nnapi_and_the_core_ml_ep():
    """ORT's own mobile usability check on the shipped mobile variant: NNAPI and Core ML ML Program each take
    >= 99% of its nodes in <= 3 partitions, as the manifest records; it runs at batch 1 near the CPU variant."""
    from convert.mobile import mobile_usability

    manifest = read_manifest(DEFAULT, verify=False)
    path = DEFAULT / manifest["variants"][MOBILE]["files"]["student"]
    measured = mobile_usability(path)
    assert measured["dynamic_values"] == 0
    for ep in ("nnapi", "coreml-mlprogram"):
        e = measured["eps"][ep]
        assert e["supported_nodes"] >= 0.99 * e["nodes"] and e["partitions"] <= 3, (ep, e)
        assert manifest["variants"][MOBILE]["mobile"]["student"]["eps"][ep] == e
    h, w = manifest["resolution"]["height"], manifest["resolution"]["width"]
    rng = np.random.default_rng(1)
    person = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    noise = rng.standard_normal((1, *manifest["latent"])).astype(np.float32)
    graph = onnx.load(str(path)).graph                    # no initializer that no node reads (ORT warns of each)
    assert {i.name for i in graph.initializer} <= {name for node in graph.node for name in node.input}
    mobile = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cpu = ort.InferenceSession(str(DEFAULT / manifest["variants"][manifest["default_variant"]]["files"]["student"]),
                               providers=["CPUExecutionProvider"])
    got, want = (s.run(["garment"], {"person": person, "noise": noise})[0].astype(float) for s in (mobile, cpu))
    assert 10 * np.log10(255 ** 2 / max(np.mean((got - want) ** 2), 1e-12)) >= 30
