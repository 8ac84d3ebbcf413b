"""The SDK's default bundle: one CPU variant of the chosen student, copied into igr_edge's package data, and
optionally variants for other runtimes beside it (`also`: the mobile graph that NNAPI and the Core ML EP take);
the CPU variant stays the manifest's `default_variant`, the one the SDK and the bindings run first.

"Best" is the fastest CPU variant within the size limit among those whose output is within `MIN_PSNR_DB` of
the fp32 graph on the gate images: the bindings promise the Python SDK's pixels within 40 dB on every runtime,
and a variant further than that from its own fp32 graph (int8 QDQ: 36.5 dB) moves that far between ONNX
Runtime builds too. Only when no variant is that close does the fastest one win."""
from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from igr_edge.manifest import MANIFEST, read_manifest, variant_batch, variant_bytes, variant_files

from .bundle import latency, variant_sizes
from .gates import gate_images

CPU_FORMATS = ("onnx", "ort")
MIN_PSNR_DB = 40.0


def _psnr_vs_fp32(spec: dict) -> float:
    value = spec.get("parity", {}).get("psnr_vs_fp32_db", 0.0)
    return float(value)                               # "inf" (the fp32 graph itself) reads as infinity


def pick_cpu_variant(folder: Path, manifest: dict, max_bytes: int, runs: int = 10) -> tuple[str, dict[str, float]]:
    """The fastest CPU variant (ORT CPU, batch 1, median of `runs`, timed in this run) within `max_bytes`,
    among those within `MIN_PSNR_DB` of fp32 if there are any. Only variants that take any batch: a catalog
    restore feeds a fixed-batch one image by image."""
    sizes = variant_sizes(folder, manifest)
    fits = [v for v, spec in manifest["variants"].items()
            if "cpu" in spec["backends"] and spec["format"] in CPU_FORMATS and sizes[v] <= max_bytes
            and variant_batch(manifest, v) is None]
    if not fits:
        listed = ", ".join(f"{v} {s / 1e6:.1f} MB" for v, s in sizes.items())
        raise ValueError(f"no CPU variant of {folder} fits in {max_bytes / 1e6:.1f} MB ({listed})")
    close = [v for v in fits if _psnr_vs_fp32(manifest["variants"][v]) >= MIN_PSNR_DB]
    fits = close or fits
    from igr.config import IGRConfig

    cfg = IGRConfig().replace(height=manifest["resolution"]["height"], width=manifest["resolution"]["width"])
    persons, _, _ = gate_images(cfg, 1)
    noise = np.random.default_rng(0).standard_normal((1, *manifest["noise"]["shape"])).astype(np.float32)
    names = [t["name"] for t in manifest["graphs"]["student"]["inputs"]]
    medians = {v: statistics.median(latency(folder / manifest["variants"][v]["files"]["student"], names,
                                            (persons, noise), runs=runs)) for v in fits}
    return min(fits, key=lambda v: medians[v]), medians


def install_default(bundle: Path, dest: Path, *, max_bytes: int, variant: str | None = None,
                    also: tuple[str, ...] = ()) -> tuple[str, int]:
    """Write `dest` as a bundle holding `variant` (default: `pick_cpu_variant`) of `bundle` and the variants
    `also`, atomically; `max_bytes` bounds them all together. -> (the CPU variant, bytes of every variant)."""
    from igr.files import atomic_folder

    manifest = read_manifest(bundle)
    if manifest["kind"] != "single-call":
        raise ValueError(f"{bundle} is a component bundle; the default bundle is a single-call student")
    also = tuple(dict.fromkeys(also))                  # each variant once
    missing = [v for v in also if v not in manifest["variants"]]
    if missing:
        raise ValueError(f"{bundle} has no variant {', '.join(missing)} (it has {', '.join(manifest['variants'])})")
    timings = None
    if variant is None:                                # the CPU variant gets what the others leave of the bound
        variant, timings = pick_cpu_variant(bundle, manifest, max_bytes - sum(variant_bytes(manifest, v) for v in also))
    elif variant not in manifest["variants"]:
        raise ValueError(f"{bundle} has no variant {variant} (it has {', '.join(manifest['variants'])})")
    spec = manifest["variants"][variant]
    names = [variant, *(v for v in also if v != variant)]
    keep = [f for v in names for f in variant_files(manifest, v)]
    size = sum(f["size"] for f in keep)
    if size > max_bytes:
        raise ValueError(f"{' + '.join(names)} of {bundle} have {size / 1e6:.2f} MB, over the default bundle's "
                         f"{max_bytes / 1e6:.1f} MB")
    chosen_by = "named"
    if timings:
        within = _psnr_vs_fp32(spec) >= MIN_PSNR_DB      # if any variant was that close, the chosen one is
        chosen_by = (f"fastest CPU variant within {max_bytes / 1e6:g} MB"
                     + (f" and {MIN_PSNR_DB:g} dB of fp32" if within else f" (none within {MIN_PSNR_DB:g} dB of fp32)"))
    source_sha = hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()
    new = dict(manifest, variants={v: manifest["variants"][v] for v in names}, files=keep, default_variant=variant,
               provenance=dict(manifest["provenance"], source_bundle={"name": manifest["name"],
                                                                       "manifest_sha256": source_sha,
                                                                       "chosen_by": chosen_by}))
    with atomic_folder(dest) as tmp:
        for f in keep:
            target = tmp / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle / f["path"], target)
        (tmp / MANIFEST).write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        read_manifest(tmp)
    return variant, size
