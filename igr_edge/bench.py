"""`igr-edge bench`: a quick latency row for one bundle on this device, in the benchmarks' JSON schema
(igr_edge/schemas/bench-v1.schema.json), so a laptop without the training extras can contribute a report.

Per row: latency min / p50 / p90 / mean over `runs` timed calls after `warmup` untimed ones, cold start
(bundle load + session creation + first call), peak RSS of this process, bundle variant size.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import IgrEdgeError

BENCH_SCHEMA = "1.0.0"


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """min / p50 / p90 / mean / max in milliseconds (percentiles interpolate linearly between order statistics)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0 or not np.all(np.isfinite(ms)):
        raise ValueError("latency_stats needs at least one finite timing")
    return {"min": float(ms.min()), "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "mean": float(ms.mean()), "max": float(ms.max())}


def time_calls(call: Callable[[], Any], *, runs: int, warmup: int) -> list[float]:
    """Seconds of each of `runs` calls of `call`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM on Linux (ru_maxrss there keeps the high-water
    mark of the parent a subprocess was forked from), ru_maxrss elsewhere (bytes on macOS)."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6          # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def cpu_model() -> str:
    try:
        if sys.platform == "darwin":
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.processor()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def device_facts(*, gpu: str | None = None, torch_version: str | None = None) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, OS, Python, ONNX Runtime and its providers."""
    try:
        import onnxruntime as ort

        ort_version, providers = ort.__version__, list(ort.get_available_providers())
    except ImportError:
        ort_version, providers = None, []
    cpu = cpu_model()
    name = re.sub(r"[^a-z0-9.]+", "-", f"{platform.system()}-{platform.machine()}-{cpu}".lower()).strip("-")[:80]
    return {"name": name, "cpu": cpu, "cores": os.cpu_count() or 1, "os": platform.platform(),
            "machine": platform.machine(), "python": platform.python_version(), "onnxruntime": ort_version,
            "providers": providers, "torch": torch_version, "gpu": gpu}


def report(rows: list[dict[str, Any]], *, tool: str, device: dict[str, Any] | None = None,
           peak_gflops: float | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """A whole report, checked against the bench-v1 schema."""
    from .manifest import schema, validation_errors

    out = {"schema": BENCH_SCHEMA, "tool": tool, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "device": device or device_facts(), "peak_gflops": peak_gflops, "notes": notes or [], "rows": rows}
    errors = validation_errors(out, where="report", root=schema("bench-v1"))
    if errors:
        raise ValueError("the benchmark report does not conform to bench-v1: " + "; ".join(errors[:5]))
    return out


def run_bench(*, bundle: str | os.PathLike | None = None, backend: str | None = None, variant: str | None = None,
              runs: int = 20,
              warmup: int = 3, batch: int = 1, threads: int | None = None,
              out: str | os.PathLike | None = None, compute_units: str | None = None,
              low_memory: bool | None = None) -> dict[str, Any]:
    """Time one bundle on one backend (in this process) and return (and with `out`, write) the report. On the
    coreml backend the report's notes name the Core ML compute units it ran with."""
    from .bundle import Bundle
    from .files import atomic_write_bytes
    from .manifest import variant_bytes
    from .restorer import Restorer

    for name, value, low in (("runs", runs, 1), ("warmup", warmup, 0), ("batch", batch, 1)):
        if not isinstance(value, int) or value < low:
            raise IgrEdgeError(f"{name} must be an integer ≥ {low}, got {value!r}")
    t0 = time.perf_counter()
    restorer = Restorer(Bundle.load(bundle), backend=backend, threads=threads, variant=variant,
                        compute_units=compute_units, low_memory=low_memory)
    b = restorer.bundle
    width, height = b.size
    yy, xx = np.mgrid[0:height, 0:width]
    person = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                       np.full_like(xx, 200)], axis=-1).astype(np.uint8)             # (H, W, 3): a fixed test card
    persons = np.repeat(person[None], batch, axis=0)
    seeds = list(range(batch))
    with restorer:
        restorer.restore_arrays(persons, seeds)
        cold = time.perf_counter() - t0
        lat = latency_stats(time_calls(lambda: restorer.restore_arrays(persons, seeds), runs=runs, warmup=warmup))
        guided = b.guidance != 1.0
        runtime = "coreml" if b.manifest["variants"][restorer.variant]["format"] == "mlpackage" else "onnxruntime"
        row = {"bundle": b.name, "variant": restorer.variant, "backend": restorer.backend, "runtime": runtime,
               "threads": threads, **({"low_memory": True} if restorer.low_memory and runtime == "onnxruntime" else {}),
               "steps": b.steps, "batch": batch, "runs": runs, "warmup": warmup,
               "latency_ms": lat, "per_image_ms": lat["p50"] / batch, "cold_start_ms": cold * 1e3,
               "peak_rss_mb": peak_rss_mb(), "size_mb": variant_bytes(b.manifest, restorer.variant) / 1e6,
               "denoiser_calls": b.steps * (2 if guided else 1), "quality": None}   # not measured here
    notes = ([f"Core ML compute units: {restorer.compute_units} ({restorer.compute_units_source})"]
             if restorer.backend == "coreml" else None)
    result = report([row], tool="igr-edge bench", notes=notes)
    if out is not None:
        atomic_write_bytes((json.dumps(result, indent=1, sort_keys=True) + "\n").encode(), out)
    return result
