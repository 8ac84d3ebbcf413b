"""One benchmark row, measured in its own process (so its peak RSS is its own): `python -m benchmarks worker SPEC`.

SPEC (JSON): {"runtime": "onnxruntime" | "torch", "runs", "warmup", "batch", "threads", ...}
  onnxruntime: "bundle", "backend", "steps" (None: the bundle's), optional "variant", "low_memory"
  torch:       "model", "steps", "guidance", "sampler" (None: the model's own)
  graph:       "bundle", "graph" (a component graph alone, e.g. the denoiser), "backend"
Prints one JSON line: latency (seconds per call), cold start, peak RSS, and the row's facts.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

from igr_edge.bench import time_calls


def test_card(batch: int, height: int, width: int, persons: str | None = None) -> np.ndarray:
    """(batch, H, W, 3) uint8 SynthGarment test persons (what the model sees in use, not random pixels); read
    from the .npy file the parent wrote when given, so that an ONNX Runtime row never imports torch."""
    if persons:
        stock = np.load(persons)
        if stock.shape[1:3] == (height, width) and len(stock) >= batch:
            return stock[:batch]
    from igr.data import generate, seed_for

    return np.stack([generate(seed_for("test", i), size=(height, width)).person for i in range(batch)])


def run_onnxruntime(spec: dict[str, Any], t0: float) -> dict[str, Any]:
    from igr_edge import Bundle, Restorer

    bundle = Bundle.load(spec["bundle"])
    restorer = Restorer(bundle, backend=spec["backend"], threads=spec["threads"], variant=spec.get("variant"),
                        low_memory=bool(spec.get("low_memory")))
    w, h = bundle.size
    persons = test_card(spec["batch"], h, w, spec.get("persons"))
    seeds = list(range(spec["batch"]))
    restorer.restore_arrays(persons, seeds, steps=spec.get("steps"))
    cold = time.perf_counter() - t0
    times = time_calls(lambda: restorer.restore_arrays(persons, seeds, steps=spec.get("steps")),
                       runs=spec["runs"], warmup=spec["warmup"])
    return {"times": times, "cold": cold, "variant": restorer.variant, "backend": restorer.backend,
            "steps": spec.get("steps") or bundle.steps}


def run_graph(spec: dict[str, Any], t0: float) -> dict[str, Any]:
    """One component graph of a components bundle alone (the denoiser: one call), fed seeded normal inputs."""
    from igr_edge import Bundle
    from igr_edge.backends import choose

    bundle = Bundle.load(spec["bundle"])
    impl, variant = choose(spec["backend"], bundle.variants())
    sess = impl.session(bundle.file(variant, spec["graph"]), threads=spec["threads"])
    feeds = {}
    for t in bundle.manifest["graphs"][spec["graph"]]["inputs"]:
        shape = [spec["batch"] if d == "batch" else d for d in t["shape"]]
        rng = np.random.default_rng(0)
        feeds[t["name"]] = (np.full(shape, 500, np.int64) if t["dtype"] == "int64"
                            else rng.standard_normal(shape).astype(np.float32))
    sess.run(None, feeds)
    cold = time.perf_counter() - t0
    times = time_calls(lambda: sess.run(None, feeds), runs=spec["runs"], warmup=spec["warmup"])
    return {"times": times, "cold": cold, "variant": variant, "backend": impl.name, "steps": 1}


def run_torch(spec: dict[str, Any], t0: float) -> dict[str, Any]:
    import torch

    from igr.model import IGRModel
    from igr.pipeline import sample

    torch.set_num_threads(spec["threads"] or os.cpu_count() or 1)
    model = IGRModel.from_pretrained(spec["model"]).eval()
    cfg = model.config
    persons = test_card(spec["batch"], cfg.height, cfg.width, spec.get("persons"))
    person = torch.from_numpy(persons).permute(0, 3, 1, 2).float() / 127.5 - 1
    kwargs = {k: spec.get(k) for k in ("steps", "guidance_scale", "sampler")}

    def call():
        with torch.no_grad():
            sample(model, person, seed=0, **kwargs)

    call()
    cold = time.perf_counter() - t0
    times = time_calls(call, runs=spec["runs"], warmup=spec["warmup"])
    return {"times": times, "cold": cold, "variant": "torch-fp32", "backend": "cpu",
            "steps": kwargs["steps"] or cfg.sample_steps}


def main(argv: list[str]) -> int:
    from igr_edge.bench import peak_rss_mb

    t0 = time.perf_counter()                  # cold start counts the runtime's imports, for every runtime alike
    spec = json.loads(argv[0])
    run = {"onnxruntime": run_onnxruntime, "torch": run_torch, "graph": run_graph}[spec["runtime"]]
    result = run(spec, t0)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
