"""`python -m benchmarks run`: bundles × variants × available backends × steps × batch, the torch teacher (its tuned
sampler with guidance, and at 20 steps) and the students in torch eager, all in one run on this machine.

Each row runs in its own subprocess (`benchmarks.worker`): its peak RSS is its own and one row's allocations do
not slow the next. Latency is min / p50 / p90 / mean over N timed runs after W warm-ups (both recorded); cold
start is load + session creation + first call. Ratios (speedup vs the teacher, fraction of the sgemm peak) use
figures of this one run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igr_edge.bench import device_facts, latency_stats, report

from .measure import REPO, flops_per_restore, model_dir_for, quality, sgemm_peak_gflops

TOOL = "python -m benchmarks run"


@dataclass
class Plan:
    """What one run measures (the `--quick` profile shrinks every count)."""
    bundles: list[Path]
    teacher: Path | None
    backends: list[str] | None = None            # None: every available one
    batches: tuple[int, ...] = (1, 2, 4, 8)
    runs: int = 20
    warmup: int = 3
    threads: int | None = None
    quality_n: int = 64
    teacher_steps: tuple[int, ...] = (20,)       # besides the teacher's tuned sampler
    component_batches: tuple[int, ...] = (1,)    # a 50-step teacher call at batch 8 takes ~12 s here
    peak_n: int = 2048
    models: Path = REPO / "models"               # where the bundles' source models are (FLOPs, torch rows)
    features: Path | None = None                 # whose garment encoder defines FD_garm (None: the teacher's)
    low_memory: bool = False                     # also each single-call ONNX variant at batch 1 with low_memory
    notes: list[str] = field(default_factory=list)


def default_bundles() -> list[Path]:
    """The bundles the converters wrote under bundles/, else the SDK's default bundle."""
    from igr_edge.bundle import DEFAULT_BUNDLE

    found = sorted(p for p in (REPO / "bundles").glob("*") if (p / "manifest.json").is_file())
    return found or [DEFAULT_BUNDLE]


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one row in a fresh process; its last stdout line is the JSON result."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], capture_output=True,
                         text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark row {spec} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row_specs(plan: Plan) -> list[dict[str, Any]]:
    """Every (bundle, variant, backend, steps, batch) this machine can run, then the torch rows."""
    from igr_edge import Bundle, available_backends
    from igr_edge.backends import REGISTRY

    usable = [s.name for s in available_backends() if s.available]
    backends = [b for b in (plan.backends or usable) if b in usable]
    for b in (plan.backends or []):
        if b not in usable:
            plan.notes.append(f"backend {b} is not available here: skipped")
    common = {"runs": plan.runs, "warmup": plan.warmup, "threads": plan.threads}
    specs = []
    for path in plan.bundles:
        bundle = Bundle.load(path)
        for variant, (fmt, names) in bundle.variants().items():
            runnable = [b for b in backends if b in names and any(fmt in impl.formats for impl in REGISTRY[b])]
            if not runnable:
                plan.notes.append(f"{bundle.name} {variant} ({fmt}) runs on {', '.join(names)}: none available here")
            for backend in runnable:
                base = {"runtime": "onnxruntime", "bundle": str(path), "variant": variant, "backend": backend, **common}
                if bundle.kind == "single-call":
                    specs += [{**base, "batch": n} for n in plan.batches]
                    if plan.low_memory:
                        specs.append({**base, "batch": 1, "low_memory": True})
                else:
                    for steps in dict.fromkeys((bundle.steps, *plan.teacher_steps)):
                        specs += [{**base, "steps": steps, "batch": n} for n in plan.component_batches]
                    specs += [{"runtime": "graph", "bundle": str(path), "graph": "denoiser", "backend": backend,
                               "batch": n, **common} for n in sorted({1, max(plan.batches)})]
    if plan.teacher is not None:
        from igr.config import IGRConfig

        cfg = IGRConfig.load(plan.teacher / "config.json")
        base = {"runtime": "torch", "model": str(plan.teacher), "batch": 1, **common}
        specs.insert(0, {**base, "steps": None, "role": "teacher"})       # first: before the machine warms up
        specs += [{**base, "steps": s} for s in plan.teacher_steps if s != cfg.sample_steps]
        students = {str(model_dir_for(Bundle.load(p).manifest, plan.models) or "") for p in plan.bundles}
        students = sorted(s for s in students if s and Path(s) != plan.teacher)
        specs += [{**base, "model": s, "steps": None} for s in students]
    return specs


def _label(spec: dict[str, Any], result: dict[str, Any], names: dict[str, str]) -> tuple[str, str]:
    if spec["runtime"] == "torch":
        return Path(spec["model"]).name, "torch-fp32"
    suffix = " (denoiser alone)" if spec["runtime"] == "graph" else " (low memory)" if spec.get("low_memory") else ""
    return names[spec["bundle"]], result["variant"] + suffix


def run(plan: Plan, *, progress: bool = True) -> dict[str, Any]:
    """Measure every row of `plan`; return the report (schema bench-v1)."""
    from tqdm.auto import tqdm

    from igr.config import IGRConfig
    from igr.pipeline import denoiser_rows
    from igr_edge import Bundle, Restorer
    from igr_edge.manifest import variant_bytes

    import tempfile

    import numpy as np

    from .worker import test_card

    threads = plan.threads
    peak = sgemm_peak_gflops(n=plan.peak_n)
    specs = row_specs(plan)
    bundles = {str(p): Bundle.load(p) for p in plan.bundles}
    stock = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)      # the persons every ORT row feeds
    stock.close()
    sizes = {b.size for b in bundles.values()}
    if len(sizes) == 1:
        (w, h), = sizes
        np.save(stock.name, test_card(max([*plan.batches, *plan.component_batches]), h, w))
        for spec in specs:
            spec["persons"] = stock.name
    names = {k: b.name for k, b in bundles.items()}
    flops_cache: dict[tuple, dict[str, float]] = {}
    quality_cache: dict[tuple, dict[str, Any] | None] = {}
    size = None
    rows = []
    for spec in tqdm(specs, desc="benchmark rows", disable=not progress):
        result = worker(spec)
        spec.pop("persons", None)
        bundle, label_variant = _label(spec, result, names)
        lat = latency_stats(result["times"])
        batch = spec["batch"]
        if spec["runtime"] == "torch":
            model_dir = Path(spec["model"])
            cfg = IGRConfig.load(model_dir / "config.json")
            steps, guidance, sampler = result["steps"], cfg.guidance_scale, cfg.sampler
            size_mb = model_size_mb(model_dir)
            calls = denoiser_rows(cfg, steps=steps)          # a jump plan's rows where the config has one
            how = dict(steps=steps, guidance=guidance, sampler=sampler)
        else:
            b = bundles[spec["bundle"]]
            model_dir = model_dir_for(b.manifest, plan.models)
            steps, guidance = result["steps"], b.guidance
            sampler = b.manifest["scheduler"]["name"]
            size_mb = variant_bytes(b.manifest, result["variant"]) / 1e6
            how = dict(steps=steps, guidance=guidance, sampler=sampler)
            if b.kind == "single-call" and model_dir is not None:
                # the graph unrolls its source model's own sampling: count and measure that, not the manifest's
                # step count with the guidance the SDK applies (none: inside the graph)
                how = dict(steps=None, guidance=None, sampler=None)
                calls = 1 if spec["runtime"] == "graph" else denoiser_rows(IGRConfig.load(model_dir / "config.json"))
            else:
                calls = 1 if spec["runtime"] == "graph" else steps * (2 if guidance != 1 else 1)
        key = (str(model_dir), *how.values())
        if model_dir is not None and key not in flops_cache:
            flops_cache[key] = flops_per_restore(model_dir, **how)
        f = flops_cache.get(key)
        flops = (f["denoiser_call"] if spec["runtime"] == "graph" else f["restore"]) * batch if f else None
        gflops = flops / (lat["p50"] / 1e3) / 1e9 if flops else None
        row = {"bundle": bundle, "variant": label_variant, "backend": result["backend"],
               "runtime": "torch" if spec["runtime"] == "torch" else "onnxruntime", "threads": threads,
               **({"low_memory": True} if spec.get("low_memory") else {}), "steps": steps, "batch": batch,
               "runs": spec["runs"], "warmup": spec["warmup"], "latency_ms": lat,
               "per_image_ms": lat["p50"] / batch, "cold_start_ms": result["cold"] * 1e3,
               "peak_rss_mb": result["peak_rss_mb"], "size_mb": size_mb, "denoiser_calls": calls,
               "flops": flops, "gflops_per_s": gflops, "peak_fraction": gflops / peak if gflops else None,
               "quality": None, "speedup_vs_teacher": None}
        # quality: once per model / variant / steps, on the same test subset
        if spec["runtime"] != "graph" and batch == 1 and plan.quality_n > 0 and plan.teacher is not None:
            qkey = (bundle, label_variant, steps)
            if qkey not in quality_cache:
                if spec["runtime"] == "torch":
                    quality_cache[qkey] = _torch_quality(model_dir, spec.get("steps"), plan)
                else:
                    with Restorer(spec["bundle"], backend=result["backend"], variant=result["variant"],
                                  threads=threads, low_memory=bool(spec.get("low_memory"))) as r:
                        size = r.bundle.size
                        quality_cache[qkey] = quality(lambda x, s: r.restore_arrays(x, s, steps=spec.get("steps")),
                                                      n=plan.quality_n, teacher_dir=plan.features or plan.teacher,
                                                      size=(size[1], size[0]))
            row["quality"] = quality_cache[qkey]
        if spec.get("role") == "teacher":
            row["role"] = "teacher"
        rows.append(row)
    Path(stock.name).unlink(missing_ok=True)
    teacher = next((r for r in rows if r.pop("role", None) == "teacher"), None)
    for r in rows:
        r.pop("role", None)
        if teacher is not None and r["batch"] == 1 and not r["variant"].endswith("(denoiser alone)"):
            r["speedup_vs_teacher"] = teacher["per_image_ms"] / r["per_image_ms"]   # like for like: batch 1
    notes = list(plan.notes)
    if teacher is not None:
        notes.append(f"teacher = {teacher['bundle']} in torch eager with its tuned sampler "
                     f"({teacher['steps']} steps, {teacher['denoiser_calls']} denoiser calls), batch 1")
    notes.append(f"sgemm peak: numpy float32 {plan.peak_n}³ matrix product, best of 5, all cores, this run")
    notes.append(f"quality: SSIM and FD_garm on the first {plan.quality_n} test-split persons, seed = item index")
    notes.append("speedup vs the teacher: batch-1 rows only (the teacher is timed at batch 1); FLOPs count attention")
    return report(rows, tool=TOOL, device=device_facts(torch_version=_torch_version()), peak_gflops=peak,
                  notes=notes)


def _torch_quality(model_dir: Path, steps: int | None, plan: Plan) -> dict[str, Any]:
    import numpy as np
    import torch

    from igr.model import IGRModel
    from igr.pipeline import sample
    from igr_edge.noise import normal

    model = IGRModel.from_pretrained(model_dir).eval()
    cfg = model.config

    def restore(x: np.ndarray, seeds: list[int]) -> np.ndarray:
        person = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
        noise = torch.from_numpy(np.stack([normal(s, cfg.latent_shape) for s in seeds]))
        with torch.no_grad():
            out = sample(model, person, steps=steps, noise=noise)
        return ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    return quality(restore, n=plan.quality_n, teacher_dir=plan.features or plan.teacher, size=(cfg.height, cfg.width))


def model_size_mb(model_dir: Path) -> float:
    """A model folder's weights, the components it links from another folder (shared.json) included."""
    from igr.model import component_file, folder_components

    return sum(component_file(model_dir, name).stat().st_size for name in folder_components(model_dir)) / 1e6


def _torch_version() -> str | None:
    try:
        import torch

        return torch.__version__
    except ImportError:
        return None
