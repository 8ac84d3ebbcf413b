"""reports/convert.md: per bundle variant its size, parity figures and ORT CPU latency as a ratio to fp32,
all latencies measured in one run (interleaved, batch 1)."""
from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from igr_edge.manifest import read_manifest

from .bundle import latency, variant_sizes
from .gates import gate_images


def build(bundles: list[Path], *, runs: int = 20, threads: int | None = None) -> dict[str, Any]:
    import onnxruntime as ort

    from igr.config import IGRConfig

    out: dict[str, Any] = {"bundles": {}, "runs": -(-runs // 5) * 5, "threads": threads, "onnxruntime": ort.__version__,
                           "cpu": platform.processor() or platform.machine()}
    for folder in bundles:
        manifest = read_manifest(folder)
        if manifest["kind"] != "single-call":
            raise ValueError(f"{folder}: the report times single-call bundles")
        sizes = variant_sizes(folder, manifest)
        cfg = IGRConfig().replace(height=manifest["resolution"]["height"], width=manifest["resolution"]["width"])
        persons, _, _ = gate_images(cfg, 1)
        noise = np.random.default_rng(0).standard_normal((1, *manifest["noise"]["shape"])).astype(np.float32)
        names = [t["name"] for t in manifest["graphs"]["student"]["inputs"]]
        timed = [v for v, s in manifest["variants"].items() if s["format"] in ("onnx", "ort")]
        times: dict[str, list[float]] = {v: [] for v in timed}
        for _ in range(-(-runs // 5)):                     # interleaved rounds of 5: noise falls on every variant
            for v in timed:
                times[v] += latency(folder / manifest["variants"][v]["files"]["student"], names, (persons, noise),
                                    runs=5, warmup=1, threads=threads)
        base = statistics.median(times["onnx-fp32"]) if "onnx-fp32" in times else None
        rows = {}
        from .bundle import VARIANTS

        for v, spec in sorted(manifest["variants"].items(), key=lambda kv: list(VARIANTS).index(kv[0])):
            row = {"format": spec["format"], "precision": spec["precision"], "bytes": sizes[v], "parity": spec["parity"]}
            if "mobile" in spec:
                row["mobile"] = spec["mobile"]
            if v in times:
                med = statistics.median(times[v])
                row.update(p50_ms=med * 1e3, p90_ms=statistics.quantiles(times[v], n=10)[-1] * 1e3,
                           ratio_to_fp32=med / base if base else None)
            rows[v] = row
        out["bundles"][manifest["name"]] = {"folder": str(folder), "steps": manifest["steps"], "variants": rows,
                                            "rejected": manifest.get("rejected", [])}
    return out


def _fmt(v: Any, f: str) -> str:
    return "–" if v is None else (v if isinstance(v, str) else f"{v:{f}}")


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# Converted variants: size, parity, ORT CPU latency", "",
             f"ONNX Runtime {rep['onnxruntime']} CPU execution provider, batch 1, {rep['runs']} timed runs per "
             "variant after warm-up, interleaved; latency ratios are to the bundle's onnx-fp32 graph in the same run. "
             "Parity: fp32 vs torch at fixed noise (max abs error of the final latent, PSNR of the image); every "
             "other variant vs fp32 on the same test images (PSNR, and SSIM to the ground truth against fp32's).", ""]
    for name, b in rep["bundles"].items():
        lines += [f"## {name} ({b['steps']} steps)", "",
                  "| variant | precision | size (MB) | vs torch / vs fp32 | SSIM (drop vs fp32) | p50 (ms) | p90 (ms) | "
                  "latency vs fp32 |", "|---|---|---|---|---|---|---|---|"]
        for v, r in b["variants"].items():
            p = r["parity"]
            t = p.get("vs_torch")        # fp32: its gate against torch
            vs = (f"vs torch: latent err {t['latent_max_abs_error']:.1e}, PSNR {_fmt(t['garment_psnr_db'], '.1f')} dB"
                  if t else
                  f"PSNR {_fmt(p.get('psnr_vs_fp32_db'), '.1f')} dB" if "psnr_vs_fp32_db" in p else
                  p.get("checked", "–"))
            ssim = (f"{p['ssim']:.4f} ({p['ssim_drop']:+.4f})" if "ssim" in p else "–")
            lines.append(f"| {v} | {r['precision']} | {r['bytes'] / 1e6:.2f} | {vs} | {ssim} | "
                         f"{_fmt(r.get('p50_ms'), '.1f')} | {_fmt(r.get('p90_ms'), '.1f')} | "
                         f"{_fmt(r.get('ratio_to_fp32'), '.2f')} |")
        for r in b["rejected"]:
            reason = r["reason"] if r["reason"].startswith(r["variant"]) else f"{r['variant']}: {r['reason']}"
            lines.append(f"\nRejected: {reason}")
        lines.append("")
        lines += mobile_table(b["variants"])
    lines += ["Made by: `" + rep.get("command", "python -m convert report") + "`", ""]
    return "\n".join(lines)


EP_LABELS = {"nnapi": "NNAPI", "coreml-mlprogram": "Core ML ML Program", "coreml-neuralnetwork": "Core ML NeuralNetwork"}


def mobile_table(variants: dict[str, Any]) -> list[str]:
    """Per ONNX variant and graph, from its manifest: nodes each mobile EP takes, in how many partitions, ORT's
    verdict and the ops it refuses (ORT's mobile usability check, fixed input sizes required)."""
    rows = [(v, g, m) for v, r in variants.items() for g, m in r.get("mobile", {}).items()]
    if not rows:
        return []
    seen = {ep for _, _, m in rows for ep in m["eps"]}
    eps = [ep for ep in EP_LABELS if ep in seen] + sorted(seen - set(EP_LABELS))     # NNAPI first, as ORT prints
    lines = ["ONNX Runtime Mobile's usability check (`python -m onnxruntime.tools.check_onnx_model_mobile_usability`, "
             "as run by `python -m convert bundle`): nodes each execution provider takes after ORT's basic "
             "optimizations, in how many partitions, and ORT's verdict; ops it refuses below.", "",
             "| variant | graph | " + " | ".join(EP_LABELS.get(ep, ep) for ep in eps) + " | dynamic-shape values |",
             "|---|---|" + "---|" * len(eps) + "---|"]
    refused = []
    for v, g, m in rows:
        cells = []
        for ep in eps:
            e = m["eps"].get(ep)
            cells.append("–" if e is None else
                         f"{e['supported_nodes']}/{e['nodes']} ({e['supported_nodes'] / max(e['nodes'], 1):.1%}), "
                         f"{e['partitions']} partitions, {e.get('verdict', '–')}")
            if e and e.get("unsupported_ops"):
                refused.append(f"- {v} {g}, {EP_LABELS.get(ep, ep)}: "
                               + ", ".join(op.removeprefix("ai.onnx:") for op in e["unsupported_ops"]))
        lines.append(f"| {v} | {g} | " + " | ".join(cells) + f" | {m['dynamic_values']} |")
    return lines + ([""] + refused if refused else []) + [""]


def write(rep: dict[str, Any], out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".json"), out.with_suffix(".md")]
    paths[0].write_text(json.dumps(rep, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(rep))
    return paths
