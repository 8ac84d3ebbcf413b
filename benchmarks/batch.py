"""`python -m benchmarks batch`: images/s of a catalog job in-process (the threads engine) and on a local Ray, the
same inputs, in one run, as a ratio.

The catalog is N copies of the sample photos (samples/persons: PNGs, an EXIF-rotated JPEG, a wide RGBA PNG) under
distinct names, so each input has its own seed. Each engine restores all N into a folder of its own, and the
garments are compared byte for byte (a difference fails the run). Throughput is garments over the job's seconds:
listing, loading the model (in each actor, for Ray), restoring, writing, the manifest. Starting Ray itself is not
counted (a cluster is up before its jobs) and is reported beside.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .measure import REPO

TOOL = "python -m benchmarks batch"


def make_catalog(folder: Path, n: int) -> None:
    """N photos: the sample persons, cycled, each under its own name."""
    samples = sorted((REPO / "samples" / "persons").iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = samples[i % len(samples)]
        shutil.copyfile(src, folder / f"photo-{i:05d}{src.suffix}")


def _garments(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "garments").rglob("*") if p.is_file()
            and not p.name.startswith(".")}


def run_batch(*, n: int = 192, bundle: str | None = None, workers: int | None = None, threads: int | None = None,
              batch_size: int = 8, progress: bool = True) -> dict[str, Any]:
    """Both engines on the same N photos; the report (rows, ratio, device)."""
    import ray

    from igr_edge.batch import restore_catalog
    from igr_edge.bench import device_facts

    rows = []
    with tempfile.TemporaryDirectory(prefix="igr-batch-bench-") as tmp:
        photos = Path(tmp) / "photos"
        make_catalog(photos, n)
        common = dict(bundle=bundle, workers=workers, threads=threads, batch_size=batch_size, progress=progress)
        threads_run = restore_catalog(photos, Path(tmp) / "threads", engine="threads", **common)
        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        ray_start = time.perf_counter() - started
        try:
            ray_run = restore_catalog(photos, Path(tmp) / "ray", engine="ray", **common)
        finally:
            ray.shutdown()
        same = _garments(Path(tmp) / "threads") == _garments(Path(tmp) / "ray")
        for summary in (threads_run, ray_run):
            if summary.done != n:
                raise RuntimeError(f"the {summary.engine} engine restored {summary.done} of {n}: {summary.errors[:3]}")
            rows.append({"engine": summary.engine, "workers": summary.workers, "images": summary.done,
                         "seconds": round(summary.seconds, 3), "images_per_s": round(summary.images_per_s, 3)})
        if not same:
            raise RuntimeError("the two engines wrote different garments")
        manifest = [json.loads(line) for line in (Path(tmp) / "threads" / "manifest.jsonl").read_text().splitlines()]
        bundle_name = f"{manifest[0]['variant']} on {manifest[0]['backend']}"
    rows[1]["ray_start_seconds"] = round(ray_start, 3)
    return {"tool": TOOL, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device_facts(), "n": n, "bundle": bundle or "default", "variant": bundle_name,
            "batch_size": batch_size, "threads": threads, "rows": rows, "same_bytes": same,
            "ratio_ray_over_threads": round(rows[1]["images_per_s"] / rows[0]["images_per_s"], 3),
            "ray": ray.__version__}


def markdown(result: dict[str, Any], *, command: str) -> str:
    """The report as a short Markdown table (a row per engine, the ratio beneath)."""
    lines = [f"# Catalog throughput: in-process vs local Ray ({result['device']['name']})", "",
             f"{result['n']} photos (the samples, cycled), bundle {result['bundle']} ({result['variant']}), "
             f"batch {result['batch_size']}, Ray {result['ray']}; `{command}`, {result['created']}.", "",
             "| engine | workers | images | seconds | images/s |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        start = f" (+{r['ray_start_seconds']:.1f} s starting Ray, not counted)" if "ray_start_seconds" in r else ""
        lines.append(f"| {r['engine']} | {r['workers']} | {r['images']} | {r['seconds']:.1f}{start} | "
                     f"{r['images_per_s']:.2f} |")
    lines += ["", f"Ray / in-process: **{result['ratio_ray_over_threads']:.2f}×** images/s, the same garments byte for "
              f"byte: {'yes' if result['same_bytes'] else 'NO'}.", ""]
    return "\n".join(lines)
