"""`python -m igr.report --evals reports/eval --out reports/teacher`: the teacher's report from its evaluations.

Reads the JSON that `python -m igr.eval` wrote for the teacher, the baseline and each ablation (same test
items, same order), the guidance sweep and the training logs; writes OUT.json, OUT.md, a learning-curve
plot and a sample grid (person | teacher | ground truth | baseline). Differences between two models are
paired: a bootstrap over the test items of the mean per-item difference.

The headline columns judge the garment (SSIM and PSNR inside the garment mask, mask IoU, ΔE76 inside the
mask, our EfficientNet-Lite0 distance, FD_garm); whole-image SSIM, MS-SSIM and PSNR follow, beside the
blank-image yardstick row, which whole-image SSIM rewards. Evaluations written before a metric existed show
it as "–".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .eval import NOTES, fmt
from .metrics import HEADLINE, LABELS, LOWER_IS_BETTER, WHOLE_IMAGE, bootstrap, paired_fd

ABLATIONS = {  # name -> (eval file stem, what it is)
    "both": ("abl-both", "both garment paths (GarmNet + image encoder), coarse stage"),
    "low_only": ("abl-low", "low-level path only (GarmNet), coarse stage"),
    "high_only": ("abl-high", "high-level path only (image encoder), coarse stage"),
    "coarse_to_fine": ("abl-c2f", "coarse stage, then high-quality fine-tuning"),
    "single_stage": ("abl-single", "one stage of the same total steps: full size, uniform timesteps, all pairs"),
}
SUMMARY = (*HEADLINE, "fd", "kid", *WHOLE_IMAGE)
CATEGORY_COLUMNS = ("ssim_mask", "psnr_mask", "mask_iou", "delta_e", "effnet_dist", "print_corr", "ssim")


def row(report: dict) -> dict:
    """The figures one evaluation contributes: means (None where it predates a metric), intervals, n, sampling,
    and the means per garment category."""
    m = report["metrics"]
    out = {"n": report["n"], "sampling": report["sampling"]}
    for k in SUMMARY:
        out[k] = m[k]["mean"] if k in m else None
        if "ci95" in m.get(k, {}):
            out[f"{k}_ci95"] = m[k]["ci95"]
    if m.get("by_category"):
        out["by_category"] = m["by_category"]
    return out


def paired(a: dict, b: dict, key: str = "ssim", boot: int = 2000) -> dict:
    """Mean of a − b over the same test items with its 95% bootstrap interval, and what it shows (for ΔE and
    the EffNet distance lower is better, so a negative difference favours a)."""
    x, y = np.asarray(a["metrics"]["per_sample"][key]), np.asarray(b["metrics"]["per_sample"][key])
    if len(x) != len(y):
        raise ValueError(f"paired comparison needs the same test items: n = {len(x)} vs {len(y)}")
    d = x - y
    lo, hi = bootstrap(d, n=boot)
    up, down = ("b better", "a better") if key in LOWER_IS_BETTER else ("a better", "b better")
    verdict = up if lo > 0 else down if hi < 0 else "no difference shown"
    return {"mean": float(d.mean()), "ci95": [lo, hi], "verdict": verdict}


def headline_diffs(a: dict, b: dict) -> dict[str, dict]:
    """Paired a − b of every headline metric both evaluations hold per sample (older ones lack the new ones)."""
    both = set(a["metrics"].get("per_sample", {})) & set(b["metrics"].get("per_sample", {}))
    return {k: paired(a, b, k) for k in HEADLINE if k in both}


def fd_compare(a: dict, b: dict) -> dict:
    """FD_garm of a and b and a paired bootstrap of FD(a) − FD(b) over the same test pairs (lower is better)."""
    fa, fb = a["metrics"]["fd"], b["metrics"]["fd"]
    out = {"a": fa["mean"], "b": fb["mean"], "a_ci95": fa["ci95"], "b_ci95": fb["ci95"]}
    feats = [_features(r) for r in (a, b)]
    if any(f is None for f in feats):
        out["verdict"] = "no paired test (features file missing)"
        return out
    (real_a, fake_a), (real_b, fake_b) = feats
    if real_a.shape != real_b.shape or not np.allclose(real_a, real_b, atol=1e-5):
        raise ValueError("FD comparison needs the same test pairs in the same feature space (the ground-truth "
                         "features differ)")
    import torch

    d = paired_fd(torch.from_numpy(real_a).double(), torch.from_numpy(fake_a).double(),
                  torch.from_numpy(fake_b).double())
    lo, hi = d["ci95"]
    out["diff"] = d
    out["verdict"] = "a better" if hi < 0 else "b better" if lo > 0 else "no difference shown"
    return out


def _features(report: dict):
    path = report.get("_path")
    if path is None:
        return None
    f = Path(path).with_suffix(".features.npz")
    if not f.is_file():
        return None
    with np.load(f) as z:
        return z["real"], z["fake"]


def check_comparable(reports: dict[str, dict]) -> None:
    """Evaluations compared pairwise must share data (SynthGarment or a --data set), split, feature space, n and
    sampling seed."""
    for key in ("data", "split", "features", "n"):
        values = {name: r.get(key) for name, r in reports.items()}
        if len(set(map(str, values.values()))) > 1:
            raise ValueError(f"evaluations differ in {key}: {values} (re-run igr.eval with the same settings)")
    seeds = {name: r["sampling"].get("seed") for name, r in reports.items() if isinstance(r["sampling"], dict)}
    if len(set(seeds.values())) > 1:
        raise ValueError(f"evaluations differ in sampling seed: {seeds}")


def training_summary(runs: Path) -> dict:
    """Steps, wall time and final val figures of each stage from its log.jsonl."""
    out = {}
    for log in sorted(runs.glob("*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        steps = [r for r in rows if "loss" in r]
        vals = [r for r in rows if "val_ssim" in r]
        if not steps:
            continue
        out[log.parent.name] = {
            "steps": steps[-1]["step"],
            "hours": round(float(np.mean([r.get("sec_per_step", 0) for r in steps])) * steps[-1]["step"] / 3600, 3),
            **({"val_ssim": vals[-1]["val_ssim"], "val_psnr": vals[-1]["val_psnr"]} if vals else {}),
        }
    return out


def plot_curves(runs: Path, out: Path) -> Path | None:
    """Val SSIM against training step: the teacher's stages end to end beside the regression baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def vals(name: str) -> list[dict]:
        log = runs / name / "log.jsonl"
        if not log.is_file():
            return []
        return [r for r in map(json.loads, log.read_text().splitlines()) if "val_ssim" in r]

    coarse, hqft, base = vals("coarse"), vals("hqft"), vals("baseline")
    if not (coarse or base):
        return None
    log = runs / "coarse" / "log.jsonl"
    offset = max((r["step"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r), default=0) \
        if log.is_file() else 0
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    teacher = [(r["step"], r["val_ssim"]) for r in coarse] + [(offset + r["step"], r["val_ssim"]) for r in hqft]
    if teacher:
        ax.plot(*zip(*teacher), marker="o", label="IGR teacher (coarse, then hqft)")
    if base:
        ax.plot([r["step"] for r in base], [r["val_ssim"] for r in base], marker="s", label="regression baseline")
    if hqft:
        ax.axvline(offset, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training step (batch 16)"), ax.set_ylabel("val SSIM (16 pairs)")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def sample_grid(teacher_dir: Path, baseline_dir: Path, out: Path, n: int = 6) -> Path:
    """person | teacher | ground truth | baseline for the first `n` test pairs."""
    import torch

    from .baseline import RegressionModel
    from .eval import split_batches
    from .images import contact_sheet, save_png, to_uint8
    from .model import IGRModel
    from .pipeline import sample

    teacher = IGRModel.from_pretrained(teacher_dir).eval()
    base = RegressionModel.from_pretrained(baseline_dir).eval()
    cfg = teacher.config
    person, garment, _ = next(split_batches("test", n, (cfg.height, cfg.width), n))
    with torch.no_grad():
        restored = sample(teacher, person, steps=cfg.sample_steps, guidance_scale=cfg.guidance_scale,
                          sampler=cfg.sampler, seed=0, progress=False)
        regressed = base.restore(person)
    cols = [to_uint8(x) for x in (person, restored, garment, regressed)]
    sheet = contact_sheet(list(zip(*cols)), title=f"test split: person | teacher ({cfg.sampler}, {cfg.sample_steps} "
                          f"steps, guidance {cfg.guidance_scale:g}) | ground truth | regression baseline")
    return save_png(sheet, out)


def verdict_text(v: str, a: str, b: str) -> str:
    return {"a better": f"{a} better", "b better": f"{b} better"}.get(v, v)


def markdown(rep: dict) -> str:
    def ci(r: dict, k: str, f: str = ".4f") -> str:
        if r.get(k) is None:
            return "–"
        lo, hi = r.get(f"{k}_ci95", (None, None))
        return f"{r[k]:{f}}" + (f" [{lo:{f}}, {hi:{f}}]" if lo is not None else "")

    def line(name: str, r: dict) -> str:
        cells = [ci(r, "ssim_mask"), fmt("psnr_mask", r.get("psnr_mask")), fmt("mask_iou", r.get("mask_iou")),
                 fmt("delta_e", r.get("delta_e")), fmt("effnet_dist", r.get("effnet_dist")), ci(r, "fd", ".3f"),
                 "–" if r.get("kid") is None else f"{r['kid']:.4f}", ci(r, "ssim"),
                 fmt("ms_ssim", r.get("ms_ssim")), fmt("psnr", r.get("psnr"))]
        return f"| {name} | " + " | ".join(cells) + " |"

    head = ["| model | SSIM mask [95% CI] | PSNR mask | mask IoU | ΔE76 mask | EffNet-L0 dist (ours) | "
            "FD_garm [95% CI] | KID | SSIM (whole) [95% CI] | MS-SSIM | PSNR |", "|---" * 11 + "|"]
    g = rep["guidance"]
    lines = [
        "# Small IGR teacher: test-split report",
        "",
        f"Test split of SynthGarment, n = {rep['test']['n']} pairs for the teacher and the baseline (the same pairs), "
        f"n = {next(iter(rep['ablations'].values()))['n'] if rep.get('ablations') else '-'} for the ablations. "
        "The teacher row is the shipped fp16 folder; the other rows are fp32. Teacher sampling: "
        f"{g['sampler']}, {g['steps']} steps, guidance {g['scale']:g} (chosen on the val split by `python -m igr.sweep`). "
        "FD_garm and KID are in the embedding space of IGR's own contrastive garment encoder, "
        "not Inception. Intervals: 95% bootstrap over test pairs (basic bootstrap for FD_garm); differences "
        "between two models are paired (the same resampled pairs for both).",
        "",
        NOTES,
        "",
        *head, line("IGR teacher", rep["test"]), line("regression baseline", rep["baseline"]),
        *[line(f"yardstick: {k.replace('_', ' ')}", v) for k, v in rep["references"].items()],
        "",
        "Yardsticks, on the same pairs: a blank white image (these garments sit on white, so SSIM over the "
        "whole image rewards an empty output; mask IoU and ΔE do not), the VAE's reconstruction of the "
        "true garment (the ceiling of anything that decodes through this VAE) and, where present, the ground "
        "truth itself (its mask IoU is the ceiling of the off-white rule)." if rep["references"] else "",
        "",
    ]
    diffs = rep.get("headline_diffs") or {}
    if diffs:
        lines += ["Teacher − baseline on the headline metrics, paired over the same test pairs:", "",
                  "| metric | teacher − baseline [95% CI] | verdict |", "|---|---|---|"]
        lines += [f"| {LABELS[k]} | {fmt(k, d['mean'])} [{fmt(k, d['ci95'][0])}, {fmt(k, d['ci95'][1])}] | "
                  f"{verdict_text(d['verdict'], 'teacher', 'baseline')} |" for k, d in diffs.items()]
        lines.append("")
    cats = {name: r["by_category"] for name, r in (("teacher", rep["test"]), ("baseline", rep["baseline"]))
            if r.get("by_category")}
    if cats:
        names = list(cats)
        lines += [f"By garment category ({' / '.join(names)} in each cell; FD_garm needs more pairs than a "
                  "category holds, so it is left out):", "",
                  "| category | n | " + " | ".join(LABELS[k] for k in CATEGORY_COLUMNS) + " |",
                  "|---" * (len(CATEGORY_COLUMNS) + 2) + "|"]
        for c in dict.fromkeys(c for v in cats.values() for c in v):
            first = next(v[c] for v in cats.values() if c in v)
            cells = [" / ".join(fmt(k, cats[n].get(c, {}).get(k)) for n in names) for k in CATEGORY_COLUMNS]
            lines.append(f"| {c} | {first['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Targets",
        "",
    ]
    t = rep["targets"]
    fdc = t["fd_compare"]
    fd_diff = (f"; teacher − baseline = {fdc['diff']['mean']:+.3f}, paired 95% CI "
               f"[{fdc['diff']['ci95'][0]:+.3f}, {fdc['diff']['ci95'][1]:+.3f}]" if "diff" in fdc else "")
    lines += [f"- FD_garm below the baseline's (paired interval below zero): "
              f"**{'met' if t['fd_beats_baseline'] else 'missed'}** "
              f"({rep['test']['fd']:.3f} vs {rep['baseline']['fd']:.3f}{fd_diff}: "
              f"{verdict_text(fdc['verdict'], 'teacher', 'baseline')}).",
              f"- SSIM within 0.02 of the baseline or better: **{t['ssim_within_0.02_verdict']}** "
              f"(teacher − baseline = {t['ssim_diff']['mean']:+.4f}, paired 95% CI "
              f"[{t['ssim_diff']['ci95'][0]:+.4f}, {t['ssim_diff']['ci95'][1]:+.4f}]).", ""]
    if rep.get("ablations"):
        lines += ["## Ablations (equal step budgets, same seeds)", "", *head]
        lines += [line(f"{k}: {ABLATIONS[k][1]}", r) for k, r in rep["ablations"].items()]
        lines += ["", "| claim | comparison | SSIM difference, paired [95% CI] | verdict | FD_garm (paired) | holds? |",
                  "|---|---|---|---|---|---|"]
        for name, c in rep["claims"].items():
            for comp in c["comparisons"]:
                s, f = comp["ssim"], comp["fd"]
                fd_ci = (f", diff {f['diff']['mean']:+.3f} [{f['diff']['ci95'][0]:+.3f}, {f['diff']['ci95'][1]:+.3f}]"
                         if "diff" in f else "")
                lines.append(f"| {name} | {comp['a']} − {comp['b']} | {s['mean']:+.4f} [{s['ci95'][0]:+.4f}, "
                             f"{s['ci95'][1]:+.4f}] | {verdict_text(s['verdict'], comp['a'], comp['b'])} | "
                             f"{f['a']:.3f} vs {f['b']:.3f}{fd_ci} ({verdict_text(f['verdict'], comp['a'], comp['b'])}) "
                             f"| {c['holds']} |")
        lines.append("")
    if rep.get("training"):
        lines += ["## Training", "", "| run | steps | hours (this CPU) | last val SSIM |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['steps']} | {v['hours']:.2f} | {v.get('val_ssim', float('nan')):.4f} |"
                  for k, v in rep["training"].items()]
        lines.append("")
    lines += ["## Figures", ""]
    lines += [f"![{k}]({Path(p).name})" for k, p in rep.get("figures", {}).items()]
    lines += ["", "Made by: `" + rep["command"] + "`", ""]
    return "\n".join(lines)


def build(evals: Path, sweep: Path | None, runs: Path | None) -> dict:
    def load(stem: str) -> dict | None:
        path = evals / f"{stem}.json"
        return {**json.loads(path.read_text()), "_path": str(path)} if path.is_file() else None

    teacher, base = load("teacher"), load("baseline")
    if teacher is None or base is None:
        raise FileNotFoundError(f"{evals} needs teacher.json and baseline.json (python -m igr.eval --out ...)")
    check_comparable({"teacher": teacher, "baseline": base})
    cfg = teacher["sampling"]
    rep = {
        "test": row(teacher), "baseline": row(base), "references": teacher.get("references", {}),
        "guidance": {"scale": cfg["guidance"], "steps": cfg["steps"], "sampler": cfg["sampler"]},
    }
    ssim_diff = paired(teacher, base)
    fd = fd_compare(teacher, base)
    lo = ssim_diff["ci95"][0]
    rep["targets"] = {
        "fd_beats_baseline": fd["verdict"] == "a better", "fd_compare": fd,
        "ssim_within_0.02": ssim_diff["mean"] >= -0.02, "ssim_diff": ssim_diff,
        "ssim_within_0.02_verdict": "met" if lo >= -0.02 else
                                    "met on the point estimate only" if ssim_diff["mean"] >= -0.02 else "missed",
    }
    rep["headline_diffs"] = headline_diffs(teacher, base)
    if sweep is not None and sweep.is_file():
        rep["guidance"]["sweep"] = json.loads(sweep.read_text())
    abl = {k: load(stem) for k, (stem, _) in ABLATIONS.items()}
    if any(abl.values()):
        check_comparable({k: v for k, v in abl.items() if v is not None})
    rep["ablations"] = {k: row(v) for k, v in abl.items() if v is not None}

    def claim(pairs: list[tuple[str, str]]) -> dict | None:
        if any(abl[a] is None or abl[b] is None for a, b in pairs):
            return None
        comps = [{"a": a, "b": b, "ssim": paired(abl[a], abl[b]), "fd": fd_compare(abl[a], abl[b])} for a, b in pairs]
        wins = [c["ssim"]["verdict"] == "a better" or c["fd"]["verdict"] == "a better" for c in comps]
        losses = [c["ssim"]["verdict"] == "b better" or c["fd"]["verdict"] == "b better" for c in comps]
        mixed = any(w and l for w, l in zip(wins, losses))
        holds = ("mixed (one metric each way)" if mixed else "yes" if all(wins) else
                 "no (reversed)" if all(losses) else "not shown")
        return {"comparisons": comps, "holds": holds}

    claims = {"both paths beat either alone": claim([("both", "low_only"), ("both", "high_only")]),
              "coarse-to-fine beats single stage": claim([("coarse_to_fine", "single_stage")])}
    rep["claims"] = {k: v for k, v in claims.items() if v is not None}
    if runs is not None and runs.is_dir():
        rep["training"] = training_summary(runs)
    return rep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.report", description=__doc__.splitlines()[0])
    p.add_argument("--evals", required=True, help="folder of igr.eval JSON: teacher, baseline, abl-*")
    p.add_argument("--sweep", help="the guidance sweep's JSON")
    p.add_argument("--runs", help="training runs folder (logs for the training table and curves)")
    p.add_argument("--teacher", help="teacher model folder, for the sample grid")
    p.add_argument("--baseline", help="baseline model folder, for the sample grid")
    p.add_argument("--grid-n", type=int, default=6)
    p.add_argument("--out", required=True, help="writes OUT.json, OUT.md, OUT-grid.png, OUT-curves.png")
    args = p.parse_args(argv)
    try:
        rep = build(Path(args.evals), Path(args.sweep) if args.sweep else None,
                    Path(args.runs) if args.runs else None)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep["figures"] = {}
    if args.runs and (curves := plot_curves(Path(args.runs), out.parent / f"{out.name}-curves.png")):
        rep["figures"]["learning curves"] = str(curves)
    if args.teacher and args.baseline:
        rep["figures"]["test samples"] = str(sample_grid(Path(args.teacher), Path(args.baseline),
                                                         out.parent / f"{out.name}-grid.png", args.grid_n))
    rep["command"] = "python -m igr.report " + " ".join(argv if argv is not None else sys.argv[1:])
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rep))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
