"""Benchmark reports: the device's Markdown table, its plots, the targets, and the cross-device merge."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TARGETS = {
    "student_vs_teacher": 100.0,     # default student end to end, speedup vs the teacher (same run)
    "ort_vs_torch": 1.5,             # ORT vs torch eager, same student, batch 1
    "denoiser_peak_fraction": 0.40,  # the denoiser's achieved FLOP/s over the sgemm peak
}
# the variants compared with torch eager for the ORT-vs-torch target: the fp32 twin, the int8 QDQ graph, and the
# default bundle's int8-weight graph
ORT_VS_TORCH_VARIANTS = ("onnx-fp32", "onnx-qdq", "onnx-w8")


def read(path: str | Path) -> dict[str, Any]:
    """A report, checked against the bench-v1 schema (the one igr-edge bench writes too)."""
    from igr_edge.manifest import schema, validation_errors

    data = json.loads(Path(path).read_text())
    errors = validation_errors(data, where=str(path), root=schema("bench-v1"))
    if errors:
        raise ValueError(f"{path} is not a bench-v1 report: " + "; ".join(errors[:3]))
    return data


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def label(row: dict[str, Any]) -> str:
    return f"{row['bundle']} {row['variant']}"


def targets(rep: dict[str, Any], *, default_variant: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Where this run stands against the targets (figures from this run only)."""
    rows = rep["rows"]
    out = []
    ort1 = [r for r in rows if r["runtime"] == "onnxruntime" and r["batch"] == 1 and "alone" not in r["variant"]]
    if default_variant:
        hit = [r for r in ort1 if (r["bundle"], r["variant"]) == default_variant]
        if hit and hit[0]["speedup_vs_teacher"]:
            v = hit[0]["speedup_vs_teacher"]
            out.append({"target": f"default student ≥{TARGETS['student_vs_teacher']:g}× faster than the teacher",
                        "value": v, "met": v >= TARGETS["student_vs_teacher"], "row": label(hit[0])})
    torch1 = {(r["bundle"], r["steps"]): r for r in rows if r["runtime"] == "torch" and r["batch"] == 1}
    for r in ort1:
        twin = torch1.get((r["bundle"], r["steps"]))     # a bundle is named after the model it came from
        if twin is not None and r["variant"] in ORT_VS_TORCH_VARIANTS and r["steps"] == twin["steps"]:
            v = twin["per_image_ms"] / r["per_image_ms"]
            out.append({"target": f"ORT ≥{TARGETS['ort_vs_torch']:g}× faster than torch eager, same model "
                                  f"({twin['bundle']}, {r['variant']}, {r['steps']} steps, batch 1)",
                        "value": v, "met": v >= TARGETS["ort_vs_torch"], "row": label(r)})
    for r in rows:
        if "denoiser alone" in r["variant"] and r["peak_fraction"] is not None:
            v = r["peak_fraction"]
            out.append({"target": f"denoiser ≥{TARGETS['denoiser_peak_fraction']:.0%} of the sgemm peak "
                                  f"(batch {r['batch']})",
                        "value": v, "met": v >= TARGETS["denoiser_peak_fraction"], "row": label(r)})
    return out


def markdown(rep: dict[str, Any], *, command: str, plots: list[str] = (),
             default_variant: tuple[str, str] | None = None) -> str:
    d = rep["device"]
    lines = [f"# Benchmarks: {d['cpu']} ({d['cores']} cores)", "",
             f"{d['os']}, Python {d['python']}, onnxruntime {d['onnxruntime']} ({', '.join(d['providers'])})"
             + (f", torch {d['torch']}" if d.get("torch") else "") + (f", GPU {d['gpu']}" if d.get("gpu") else "")
             + f". Measured {rep['created']} by `{command}`; float32 sgemm peak this run: "
               f"{_f(rep.get('peak_gflops'))} GFLOP/s.", "",
             "Latency in ms per call (a call restores `batch` images); p50 / p90 / min / mean over N timed runs "
             "after W warm-ups; cold = load + session + first call; RSS = the row's own process peak; "
             "speedup = the teacher's per-image p50 over the row's, same run.", "",
             "| model | variant | backend | steps | batch | calls | N/W | p50 | p90 | min | mean | per image | cold | "
             "RSS MB | size MB | GFLOP/restore | GFLOP/s | % peak | SSIM mask | IoU | SSIM | FD | speedup |",
             "|" + "---|" * 23]
    for r in rep["rows"]:
        lat, q = r["latency_ms"], r.get("quality") or {}
        gflop = r["flops"] / 1e9 / r["batch"] if r.get("flops") else None
        lines.append(
            f"| {r['bundle']} | {r['variant']} | {r['backend']} | {r['steps']} | {r['batch']} | {r['denoiser_calls']} "
            f"| {r['runs']}/{r['warmup']} | {_f(lat['p50'])} | {_f(lat['p90'])} | {_f(lat['min'])} | {_f(lat['mean'])} "
            f"| {_f(r.get('per_image_ms'))} | {_f(r['cold_start_ms'], '.0f')} | {_f(r['peak_rss_mb'], '.0f')} "
            f"| {_f(r.get('size_mb'), '.2f')} | {_f(gflop, '.2f')} | {_f(r.get('gflops_per_s'))} "
            f"| {_f(100 * r['peak_fraction'] if r.get('peak_fraction') else None)} "
            f"| {_f(q.get('ssim_mask'), '.4f')} | {_f(q.get('mask_iou'), '.3f')} "
            f"| {_f(q.get('ssim'), '.4f')} | {_f(q.get('fd'), '.2f')} | {_f(r.get('speedup_vs_teacher'), '.1f')} |")
    stands = targets(rep, default_variant=default_variant)
    if stands:
        lines += ["", "## Targets", "", "| target | this run | met | row |", "|---|---|---|---|"]
        for t in stands:
            value = f"{t['value']:.0%}" if "peak" in t["target"] else f"{t['value']:.2f}×"
            lines.append(f"| {t['target']} | {value} | {'yes' if t['met'] else '**no**'} | {t['row']} |")
    if rep.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in rep["notes"]]
    if plots:
        lines += [""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def summary(rep: dict[str, Any]) -> str:
    """The batch-1 rows as a short Markdown table (the README's): `python -m benchmarks summary REPORT.json`."""
    lines = ["| model | variant | steps (calls) | p50 ms | p90 ms | GFLOP | % sgemm peak | size MB | SSIM mask "
             "| mask IoU | SSIM | FD_garm | speedup vs teacher |", "|" + "---|" * 13]
    for r in rep["rows"]:
        if r["batch"] != 1 or "alone" in r["variant"]:
            continue
        q = r.get("quality") or {}
        lines.append(f"| {r['bundle']} | {r['variant']} | {r['steps']} ({r['denoiser_calls']}) "
                     f"| {_f(r['latency_ms']['p50'])} | {_f(r['latency_ms']['p90'])} "
                     f"| {_f(r['flops'] / 1e9 if r.get('flops') else None, '.2f')} "
                     f"| {_f(100 * r['peak_fraction'] if r.get('peak_fraction') else None, '.0f')} "
                     f"| {_f(r.get('size_mb'), '.1f')} | {_f(q.get('ssim_mask'), '.4f')} "
                     f"| {_f(q.get('mask_iou'), '.3f')} | {_f(q.get('ssim'), '.4f')} | {_f(q.get('fd'), '.2f')} "
                     f"| {_f(r.get('speedup_vs_teacher'), '.1f')}× |")
    return "\n".join(lines) + "\n"


MARKERS = "osD^vP*Xph"


def plots(rep: dict[str, Any], out: Path, stem: str) -> list[Path]:
    """Quality vs latency, latency by variant (p50 with a p50–p90 whisker), throughput vs batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rep["rows"]
    made = []
    one = [r for r in rows if r["batch"] == 1 and "alone" not in r["variant"]]

    # rows of one model sit close together (its variants differ little in quality), so a point is named in the
    # legend beside the axes, not by a label on the plot: one colour per model, one marker per variant
    fig, ax = plt.subplots(figsize=(10, 4.5))
    scored = [r for r in one if r.get("quality")]
    models = list(dict.fromkeys(r["bundle"] for r in scored))
    variants = list(dict.fromkeys(f"{r['variant']} {r['steps']}" for r in scored))
    for r in scored:
        y = r["quality"].get("ssim_mask", r["quality"]["ssim"])      # reports before masked SSIM: whole
        ax.scatter(r["per_image_ms"], y, s=36, color=plt.cm.tab10(models.index(r["bundle"]) % 10),
                   marker=MARKERS[variants.index(f"{r['variant']} {r['steps']}") % len(MARKERS)],
                   label=f"{label(r)} ({r['steps']} st)", edgecolors="black", linewidths=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per image (ms, log)")
    ax.set_ylabel("SSIM inside the garment mask (test subset)")
    ax.set_title("quality vs latency, batch 1")
    ax.grid(alpha=0.3)
    if scored:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    made.append(_save(fig, out / f"{stem}-quality-latency.png"))

    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(one), 4) + 1))
    names = [f"{label(r)} ({r['steps']} st, {r['backend']})" for r in one]
    p50 = [r["latency_ms"]["p50"] for r in one]
    p90 = [r["latency_ms"]["p90"] for r in one]
    ax.barh(range(len(one)), p50, xerr=[[0] * len(one), [b - a for a, b in zip(p50, p90)]], capsize=3,
            color="#4c72b0")
    ax.set_yticks(range(len(one)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency per call at batch 1 (ms, log): p50 bar, p90 whisker")
    ax.grid(alpha=0.3, axis="x")
    made.append(_save(fig, out / f"{stem}-latency.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if "alone" not in r["variant"]:
            series.setdefault(f"{label(r)} ({r['steps']} st, {r['backend']})", []).append(
                (r["batch"], 1e3 * r["batch"] / r["latency_ms"]["p50"]))
    for name, pts in series.items():
        if len(pts) > 1:
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch")
    ax.set_ylabel("images per second (p50)")
    ax.set_title("throughput vs batch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    made.append(_save(fig, out / f"{stem}-batch.png"))
    return made


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def merge(reports: list[dict[str, Any]], out: Path) -> list[Path]:
    """One table and one plot across devices: p50 per image of each (model, variant, backend) at batch 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    devices = [r["device"]["name"] for r in reports]
    keys: dict[tuple, dict[str, dict]] = {}
    for rep in reports:
        for row in rep["rows"]:
            if row["batch"] == 1:
                keys.setdefault((row["bundle"], row["variant"], row["steps"]), {})[
                    f"{rep['device']['name']}/{row['backend']}"] = row
    columns = sorted({c for v in keys.values() for c in v})
    lines = ["# Benchmarks across devices", "",
             "p50 ms per image at batch 1 (speedup vs that device's teacher in brackets, where measured); "
             f"merged from {len(reports)} report(s): " + ", ".join(f"`{d}`" for d in devices) + ".", "",
             "| model | variant | steps | " + " | ".join(columns) + " |", "|" + "---|" * (3 + len(columns))]
    for (bundle, variant, steps), cells in keys.items():
        vals = []
        for c in columns:
            row = cells.get(c)
            vals.append("–" if row is None else f"{row['latency_ms']['p50'] / row['batch']:.1f}"
                        + (f" ({row['speedup_vs_teacher']:.1f}×)" if row.get("speedup_vs_teacher") else ""))
        lines.append(f"| {bundle} | {variant} | {steps} | " + " | ".join(vals) + " |")
    md = out / "merged.md"
    fig, ax = plt.subplots(figsize=(8, 0.3 * max(len(keys), 4) + 1.5))
    width = 0.8 / max(len(columns), 1)
    for j, c in enumerate(columns):
        ys, xs = [], []
        for i, cells in enumerate(keys.values()):
            if c in cells:
                ys.append(i + j * width)
                xs.append(cells[c]["latency_ms"]["p50"] / cells[c]["batch"])
        ax.barh(ys, xs, height=width, label=c)
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(keys))],
                  [f"{b} {v} ({s} st)" for b, v, s in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("p50 ms per image, batch 1 (log)")
    ax.legend(fontsize=6)
    png = _save(fig, out / "merged.png")
    lines += ["", f"![merged]({png.name})"]
    md.write_text("\n".join(lines) + "\n")
    return [md, png]
