"""The default bundle that ships in the package: a trained student, within the size limit, intact, runnable."""
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from igr_edge.manifest import read_manifest

DEFAULT = Path(__file__).resolve().parents[2] / "igr_edge" / "bundles" / "default"
ROOT = DEFAULT.parents[2]


# the zero-SNR student carries the aligned prior's UNet and the EfficientNet-Lite0 tower (16 M parameters):
# 16.2 MB as int8 weights, twice (the CPU variant and the mobile one); the warp prior student adds its WarpNet
# (1.17 M parameters): 18.2 MB, twice; its wider light decoder (float32 in the int8-weight variants) 18.9 MB, twice;
# the first teacher's student fitted 10 MB (scripts/convert-bundles.sh); the jump-3 model's graph (the teacher's
# denoiser, guided and unguided calls) holds 33 more int8 weight tensors than the 2-step student's: 19.3 MB, twice
MAX_BYTES = 40 * 10**6
MOBILE = "onnx-mobile-w8"


def test_default_bundle_is_a_gated_trained_student_within_its_size_limit():
    manifest = read_manifest(DEFAULT)                       # schema v1, paths confined, every SHA-256
    assert manifest["kind"] == "single-call" and set(manifest["variants"]) == {manifest["default_variant"], MOBILE}
    assert sum(f["size"] for f in manifest["files"]) <= MAX_BYTES
    assert manifest["default_variant"] != MOBILE and manifest["variants"][MOBILE]["parity"]["psnr_vs_fp32_db"] >= 30
    variant = manifest["variants"][manifest["default_variant"]]
    assert "cpu" in variant["backends"]
    assert variant["parity"]["psnr_vs_fp32_db"] >= 30 and variant["parity"]["ssim_drop"] <= 0.01
    # its weights are a shipped student's, not random ones
    model = ROOT / "models" / manifest["provenance"]["model"]
    distill = json.loads((model / "distill.json").read_text())
    assert manifest["provenance"]["distill"] == distill and distill["kind"] == "steps"
    assert manifest["steps"] == distill["steps"] and manifest["scheduler"]["timesteps"] == distill["timesteps"]


def test_default_bundle_runs_in_onnx_runtime_with_any_batch():
    manifest = read_manifest(DEFAULT, verify=False)
    path = DEFAULT / manifest["variants"][manifest["default_variant"]]["files"]["student"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h, w = manifest["resolution"]["height"], manifest["resolution"]["width"]
    rng = np.random.default_rng(0)
    person = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    noise = rng.standard_normal((3, *manifest["latent"])).astype(np.float32)
    garment, latent = sess.run(None, {"person": person, "noise": noise})
    assert garment.shape == (3, h, w, 3) and garment.dtype == np.uint8 and np.isfinite(latent).all()
    one = sess.run(None, {"person": person[1:2], "noise": noise[1:2]})[0]
    assert np.abs(one.astype(int) - garment[1:2].astype(int)).max() <= 1      # batching does not change an image

