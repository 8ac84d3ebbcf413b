"""`python -m igr.compare --eval NAME=reports/eval/X.json ... --against NAME --out reports/tries`: measured tries
side by side.

For recipe experiments at equal budgets (DESIGN.md §2): one table of the headline metrics per try (each
`python -m igr.eval` JSON, same test items), every try's paired difference against one of them (`--against`,
e.g. the regression baseline), the swap test of each (`python -m igr.probe` JSON), learning curves on the
validation metrics from the runs' logs, and a sample grid (person | each model | ground truth).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .eval import NOTES, fmt
from .metrics import HEADLINE, LABELS
from .report import check_comparable, fd_compare, headline_diffs, row, verdict_text

CURVE_KEYS = ("val_ssim_mask", "val_mask_iou", "val_delta_e", "val_ssim")


def _named(items: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{flag} {item!r}: expected NAME=PATH")
        out[name] = Path(path)
    return out


def global_batch(folder: Path) -> int:
    """Pairs per optimizer step of the run in `folder` (batch x grad_accum x processes of its stage.json); 16, the
    stages' batch here, where it has none."""
    f = folder / "stage.json"
    if not f.is_file():
        return 16
    meta = json.loads(f.read_text())
    stage = meta.get("stage", {})
    return int(stage.get("batch", 16)) * int(stage.get("grad_accum", 1)) * int(meta.get("processes", 1))


def _init_run(folder: Path) -> Path | None:
    """The run folder whose weights the run in `folder` started from (stage.json `init`: RUN/final or RUN), where
    that run's log is on disk."""
    meta = json.loads((folder / "stage.json").read_text()) if (folder / "stage.json").is_file() else {}
    if not meta.get("init"):
        return None
    run = Path(meta["init"])
    run = run.parent if run.name == "final" else run
    return run if (run / "log.jsonl").is_file() and run.resolve() != folder.resolve() else None


def _chain(folder: Path, depth: int = 8) -> tuple[list[tuple[float, dict]], float]:
    """`curve_points` of the run in `folder`, and the thousands of pairs seen by its last logged step; an init
    chain is followed `depth` runs back at most (a cycle of inits ends there)."""
    run = _init_run(folder) if depth else None
    head, before = _chain(run, depth - 1) if run is not None else ([], 0.0)
    log = folder / "log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    batch = global_batch(folder) / 1000
    points = [(before + r["step"] * batch, r) for r in rows if "val_ssim" in r]
    return head + points, before + max((r["step"] for r in rows if "step" in r), default=0) * batch


def curve_points(folder: Path) -> list[tuple[float, dict]]:
    """(thousands of training pairs seen, validation row) of the run in `folder`. A run started from another run's
    weights counts the pairs that run saw first, and its line is that run's line continued: a coarse-to-fine run's
    curve is its coarse stage's, then its fine stage's, not a fine stage starting again at zero."""
    return _chain(folder)[0]


def plot_curves(runs: dict[str, Path], out: Path) -> Path | None:
    """Validation metrics (the trainer's `eval_every` rows) against the training pairs seen (step x the run's global
    batch from its stage.json; 16 where a folder has none), one line per run: runs of other batch sizes line up, and
    a run started from another's weights continues that run's line (`curve_points`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {name: pts for name, folder in runs.items() if (pts := curve_points(folder))}
    keys = [k for k in CURVE_KEYS if any(k in r for rows in logs.values() for _, r in rows)]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in logs.items():
            pts = [(x, r[key]) for x, r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_xlabel("training pairs seen (thousands)"), ax.set_title(LABELS.get(key[4:], key[4:]) + " (val)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def sample_grid(models: dict[str, Path], out: Path, n: int = 6, sampling: dict[str, dict] | None = None) -> Path:
    """person | each model's restore (its config's sampler; a baseline's regression) | ground truth. `sampling`:
    per name, the settings its evaluation sampled with (`igr.eval`'s JSON: sampler, steps, guidance, strength, a
    jump plan's jump, estimates averaged and guidance interval, the number of samples averaged, and a warp prior's
    field of `igr.warp.WARP_FIELDS`), so that a column shows what its row measured."""
    import torch

    from .baseline import KIND, RegressionModel
    from .eval import split_batches
    from .images import contact_sheet, save_png, to_uint8
    from .model import IGRModel
    from .pipeline import JUMP_SEED_STRIDE, initial_noise, sample
    from .warp import WARP_FIELDS, diagnostic_field

    cols, size = [], None
    for name, folder in models.items():
        if json.loads((folder / "config.json").read_text()).get("kind") == KIND:
            m = RegressionModel.from_pretrained(folder)
            run = m.restore
        else:
            m = IGRModel.from_pretrained(folder)
            how = (sampling or {}).get(name, {})
            mode = {v: k for k, v in WARP_FIELDS.items()}.get(how.get("warp"))
            run = lambda p, m=m, how=how, mode=mode: torch.stack([sample(        # K > 1: the mean of seeds 0..K-1
                m, p, steps=how.get("steps", m.config.sample_steps),
                guidance_scale=how.get("guidance", m.config.guidance_scale),
                sampler=how.get("sampler", m.config.sampler), strength=how.get("strength", 1.0), seed=seed,
                jump=how.get("jump"), guidance_below=how.get("guidance_below"),
                jump_noises=[initial_noise(m.config, len(p), seed + JUMP_SEED_STRIDE * k, height=p.shape[-2],
                                           width=p.shape[-1]) for k in range(1, how.get("jump_mean", 1))],
                cond=None if mode is None else m.condition(
                    p, field=diagnostic_field(mode, m.warpnet, p, "test", range(len(p)))))
                for seed in range(how.get("samples_averaged", 1))]).mean(0)
        size = (m.config.height, m.config.width)
        person, garment, _ = next(split_batches("test", n, size, n))
        with torch.no_grad():
            cols.append(to_uint8(run(person)))
    cols = [to_uint8(person), *cols, to_uint8(garment)]
    title = "test split: person | " + " | ".join(models) + " | ground truth"
    return save_png(contact_sheet(list(zip(*cols)), title=title), out)


def build(evals: dict[str, Path], against: str | None, probes: dict[str, Path]) -> dict:
    reports = {}
    for name, path in evals.items():
        rep = json.loads(path.read_text())
        rep["_path"] = str(path)
        reports[name] = rep
    check_comparable(reports)
    out = {"rows": {name: row(r) for name, r in reports.items()},
           "split": next(iter(reports.values())).get("split", "test"),     # one split: check_comparable
           "commands": {name: r.get("command") for name, r in reports.items()},
           "references": next((r["references"] for r in reports.values() if r.get("references")), None)}
    if against is not None:
        if against not in reports:
            raise ValueError(f"--against {against!r} is not one of the --eval names ({', '.join(reports)})")
        out["against"] = against
        out["diffs"] = {name: {**headline_diffs(r, reports[against]), "fd": fd_compare(r, reports[against])}
                        for name, r in reports.items() if name != against}
    out["probes"] = {name: json.loads(p.read_text())["rows"] for name, p in probes.items()}
    return out


def markdown(rep: dict, title: str, figures: dict[str, str]) -> str:
    keys = (*HEADLINE, "fd", "ssim")
    labels = {**LABELS, "ssim": "SSIM (whole)"}
    lines = [f"# {title}", "", NOTES, "", "| try | n | " + " | ".join(labels[k] for k in keys) + " |",
             "|---" * (len(keys) + 2) + "|"]
    for name, r in rep["rows"].items():
        lines.append(f"| {name} | {r['n']} | " + " | ".join("–" if r.get(k) is None else
                                                             f"{r[k]:.3f}" if k == "fd" else fmt(k, r[k])
                                                             for k in keys) + " |")
    for name, r in (rep.get("references") or {}).items():
        lines.append(f"| yardstick: {name.replace('_', ' ')} | | " + " | ".join(
            "–" if r.get(k) is None else fmt(k, r[k]) for k in keys) + " |")
    if rep.get("diffs"):
        base = rep["against"]
        split = rep.get("split", "test")
        lines += ["", f"Each try − {base}, paired over the same {split} pairs (95% bootstrap intervals):", "",
                  "| try | " + " | ".join(labels[k] for k in (*HEADLINE, "fd")) + " |",
                  "|---" * (len(HEADLINE) + 2) + "|"]
        for name, d in rep["diffs"].items():
            cells = []
            for k in (*HEADLINE, "fd"):
                if k not in d:
                    cells.append("–")
                elif k == "fd":
                    f = d[k]
                    cells.append(f"{f['diff']['mean']:+.3f} [{f['diff']['ci95'][0]:+.3f}, {f['diff']['ci95'][1]:+.3f}]: "
                                 f"{verdict_text(f['verdict'], name, base)}" if "diff" in f else f["verdict"])
                else:
                    x = d[k]
                    cells.append(f"{x['mean']:+.4f} [{x['ci95'][0]:+.4f}, {x['ci95'][1]:+.4f}]: "
                                 f"{verdict_text(x['verdict'], name, base)}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, rows in rep["probes"].items():
        lines += ["", f"Swap test, {name}: one denoiser call from the true noisy latent; latent MSE of the clean-latent "
                  "estimate with the pair's own person, with another pair's, and of the mean garment latent.", "",
                  "| t | own | another's | another's / own | mean latent | own / mean |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['t']} | {r['own']:.4f} | {r['swapped']:.4f} | {r['swap_ratio']:.2f} | {r['mean_latent']:.4f} "
                  f"| {r['vs_mean']:.2f} |" for r in rows]
    for caption, path in figures.items():
        lines += ["", f"![{caption}]({path})"]
    lines += ["", "Evaluations made by:", ""] + [f"- {name}: `{cmd}`" for name, cmd in rep["commands"].items() if cmd]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.compare", description=__doc__.splitlines()[0])
    p.add_argument("--eval", action="append", default=[], metavar="NAME=JSON", required=True)
    p.add_argument("--against", help="the --eval name every try is compared with, pairwise")
    p.add_argument("--probe", action="append", default=[], metavar="NAME=JSON", help="python -m igr.probe output")
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="training run folder (log.jsonl)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR", help="model folder for the grid")
    p.add_argument("--title", default="Measured tries")
    p.add_argument("--out", required=True, help="writes OUT.json, OUT.md, OUT-curves.png, OUT-grid.png")
    args = p.parse_args(argv)
    try:
        evals, probes = _named(args.eval, "--eval"), _named(args.probe, "--probe")
        runs, models = _named(args.run, "--run"), _named(args.model, "--model")
        rep = build(evals, args.against, probes)
    except (ValueError, OSError, KeyError) as e:
        print(f"python -m igr.compare: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = {}
    if runs and plot_curves(runs, out.with_name(out.name + "-curves.png")):
        figures["learning curves (val)"] = out.name + "-curves.png"
    if models:
        sampling = {name: json.loads(evals[name].read_text()).get("sampling", {}) for name in models if name in evals}
        sample_grid(models, out.with_name(out.name + "-grid.png"), sampling=sampling)
        figures["test samples"] = out.name + "-grid.png"
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rep, args.title, figures))
    print(f"wrote {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
