"""Write bindings/contract/: the test vectors every binding checks itself against, made by the Python SDK.

    .venv/bin/python scripts/make-contract.py [bindings/contract]

noise.json   seeds -> the first values (and a checksum of all 3072) of the bundle's splitmix64-boxmuller noise
cases.json   sample persons (as the model's uint8 input, letterboxed) + seeds -> the default bundle's garment
images/      those persons and garments as PNG (lossless), named in cases.json
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from igr_edge import Restorer
from igr_edge.images import letterbox, load_image
from igr_edge.noise import normal, splitmix64

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 42, 1234567, 2**32 + 7, 2**63 + 5, 2**64 - 1]
# The default bundle's variant (onnx-w8) stores int8 weights but computes in float32, so runtimes differ only as
# fp32 kernels do; bindings/contract/README.md has the figures measured against these garments.
MIN_PSNR_DB = 40.0
CASES = [("test-00.png", 0), ("test-02.png", 7), ("test-03.png", 2**63 + 5)]


def written_on() -> dict:
    """Where the garments' bytes come from: ORT's fp32 kernels round differently per CPU, so the Python test
    checks the bytes only on the same ORT version and CPU model (elsewhere the PSNR bound)."""
    import onnxruntime

    from igr_edge.bench import cpu_model

    return {"onnxruntime": onnxruntime.__version__, "cpu": cpu_model()}


def main(out: str = "bindings/contract") -> int:
    root = REPO / out
    (root / "images").mkdir(parents=True, exist_ok=True)
    with Restorer(backend="cpu") as r:
        shape = r.bundle.latent_shape
        noise = []
        for seed in SEEDS:
            z = normal(seed, shape)
            noise.append({"seed": str(seed), "splitmix64_first": [str(int(v)) for v in splitmix64(seed, 4)],
                          "first": [float(v) for v in z.ravel()[:8]], "shape": list(shape),
                          "sum": float(z.astype(np.float64).sum()),
                          "sha256_le_float32": hashlib.sha256(z.astype("<f4").tobytes()).hexdigest()})
        (root / "noise.json").write_text(json.dumps({"generator": r.bundle.noise_generator, "vectors": noise},
                                                    indent=1) + "\n")
        cases = []
        w, h = r.bundle.size
        for name, seed in CASES:
            person = letterbox(load_image(REPO / "samples" / "persons" / name), w, h)        # (H, W, 3) uint8
            garment = r.restore_arrays(person[None], [seed])[0]
            stem = Path(name).stem
            Image.fromarray(person).save(root / "images" / f"{stem}-person.png")
            Image.fromarray(garment).save(root / "images" / f"{stem}-seed{seed}-garment.png")
            cases.append({"person": f"images/{stem}-person.png", "seed": str(seed),
                          "garment": f"images/{stem}-seed{seed}-garment.png",
                          "garment_sha256": hashlib.sha256(garment.tobytes()).hexdigest(),
                          "min_psnr_db": MIN_PSNR_DB})
        manifest = r.bundle.manifest
        (root / "cases.json").write_text(json.dumps({
            "bundle": manifest["name"], "variant": r.variant,
            "bundle_files_sha256": {f["path"]: f["sha256"] for f in manifest["files"]},
            "backend": "onnxruntime cpu (Python SDK)", "written_on": written_on(), "cases": cases}, indent=1) + "\n")
    print(f"wrote {root}/noise.json, cases.json and {2 * len(CASES)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
