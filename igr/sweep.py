"""`python -m igr.sweep --model DIR`: guidance scale × steps × sampler on the val split; the best goes into config.json.

The choice is the setting with the lowest FD_garm among those within 0.01 of the best mean masked SSIM
(SSIM inside the true garment's mask: a blank image cannot win it), on the val split (never the test split);
`--write` stores its sampler, steps and scale in the model's config.json (atomically).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from .files import atomic_file


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


ROW_METRICS = ("ssim_mask", "mask_iou", "delta_e", "effnet_dist", "ssim", "psnr", "fd")


def sweep(model, *, scales, steps, samplers, split: str = "val", n: int = 64, batch: int = 16, seed: int = 0,
          progress: bool = True, encoder=None) -> list[dict]:
    """One row per (sampler, steps, scale): the headline means (masked SSIM, IoU, ΔE, EffNet distance), whole
    SSIM, PSNR and FD_garm, with intervals on masked SSIM and FD_garm. `encoder`: the image encoder that defines
    FD_garm (default: the model's own)."""
    from .eval import evaluate
    from .metrics import GarmentFeatures
    from .pipeline import sample_items

    features = GarmentFeatures(encoder if encoder is not None else model.image_encoder)
    rows = []
    for sampler, k, scale in itertools.product(samplers, steps, scales):
        def restore(person, first, sampler=sampler, k=k, scale=scale):
            return sample_items(model, person, first, steps=k, guidance_scale=scale, sampler=sampler, seed=seed)

        m = evaluate(restore, features, split=split, n=n, size=(model.config.height, model.config.width),
                     batch=batch, boot=200, progress=progress)
        rows.append({"sampler": sampler, "steps": k, "scale": scale,
                     **{key: m[key]["mean"] for key in ROW_METRICS},
                     "ssim_mask_ci95": m["ssim_mask"]["ci95"], "fd_ci95": m["fd"]["ci95"],
                     "seconds_per_image": m["seconds_per_image"]})
    return rows


SSIM_SLACK = 0.01


def best(rows: list[dict]) -> dict:
    """The lowest FD_garm among the settings within SSIM_SLACK of the best mean masked SSIM; ties go to fewer steps.

    Masked SSIM alone favours weak guidance (smooth, average-looking garments); FD_garm alone can trade
    fidelity to this person's garment for plausible texture. Both are read on the val split.
    """
    top = max(r["ssim_mask"] for r in rows)
    return min((r for r in rows if r["ssim_mask"] >= top - SSIM_SLACK), key=lambda r: (r["fd"], r["steps"]))


def plot(rows: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (sampler, k), group in itertools.groupby(sorted(rows, key=lambda r: (r["sampler"], r["steps"], r["scale"])),
                                                 key=lambda r: (r["sampler"], r["steps"])):
        g = list(group)
        a.plot([r["scale"] for r in g], [r["ssim_mask"] for r in g], marker="o", label=f"{sampler}, {k} steps")
        b.plot([r["scale"] for r in g], [r["fd"] for r in g], marker="o", label=f"{sampler}, {k} steps")
    a.set_xlabel("guidance scale"), a.set_ylabel("masked SSIM (val)"), a.grid(alpha=0.3), a.legend(fontsize=8)
    b.set_xlabel("guidance scale"), b.set_ylabel("FD_garm (val, lower is better)"), b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_choice(folder: Path, choice: dict) -> None:
    """Store the chosen sampler, steps and scale in folder/config.json (temp file + rename)."""
    from .config import IGRConfig

    cfg = IGRConfig.load(folder / "config.json").replace(
        sampler=choice["sampler"], sample_steps=choice["steps"], guidance_scale=choice["scale"])
    with atomic_file(folder / "config.json") as tmp:
        cfg.save(tmp)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.sweep", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--split", default="val", choices=("val",), help="tuning reads the val split only")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--scales", type=_floats, default=[1.0, 2.0, 3.0, 4.0, 5.0])
    p.add_argument("--steps", type=_ints, default=[20, 50])
    p.add_argument("--samplers", type=lambda t: t.split(","), default=["ddim", "dpmsolver++"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--features", help="model folder whose image encoder defines FD_garm (default: --model's)")
    p.add_argument("--out", required=True, help="writes OUT.json, OUT.md, OUT.png")
    p.add_argument("--write", action="store_true", help="store the best setting in the model's config.json")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error("--n must be at least 2")

    from .model import IGRModel
    from .pipeline import SAMPLERS

    unknown = [s for s in args.samplers if s not in SAMPLERS]
    if unknown:
        p.error(f"unknown sampler(s) {', '.join(unknown)} (choose from {', '.join(SAMPLERS)})")
    folder = Path(args.model)
    model = IGRModel.from_pretrained(folder)
    encoder = IGRModel.from_pretrained(args.features).image_encoder if args.features else None
    rows = sweep(model, scales=args.scales, steps=args.steps, samplers=args.samplers, split=args.split,
                 n=args.n, batch=args.batch, encoder=encoder)
    choice = best(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": str(folder), "split": args.split, "n": args.n, "criterion": f"lowest FD_garm within {SSIM_SLACK} of the best mean masked SSIM (val)",
              "features": args.features or str(folder),
              "choice": {k: choice[k] for k in ("sampler", "steps", "scale")}, "rows": rows,
              "command": "python -m igr.sweep " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.write:        # first: a sweep report on disk means the model's config holds its choice
        write_choice(folder, choice)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    table = ["| sampler | steps | scale | SSIM mask | mask IoU | ΔE76 mask | EffNet-L0 dist (ours) | SSIM | PSNR "
             "| FD_garm | s / image |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['sampler']} | {r['steps']} | {r['scale']:g} | {r['ssim_mask']:.4f} | {r['mask_iou']:.3f} | "
              f"{r['delta_e']:.1f} | {r['effnet_dist']:.3f} | {r['ssim']:.4f} | {r['psnr']:.2f} | "
              f"{r['fd']:.3f} | {r['seconds_per_image']:.3f} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join([
        f"# Guidance sweep: {folder}", "", f"Val split, n = {args.n}; FD_garm in the image encoder of {report['features']}. "
        f"Chosen by {report['criterion']}: "
        f"**{choice['sampler']}, {choice['steps']} steps, scale {choice['scale']:g}**.", "", *table, "",
        f"![sweep]({out.with_suffix('.png').name})", "", f"Command: `{report['command']}`", ""]))
    plot(rows, out.with_suffix(".png"))
    print(f"best: {choice['sampler']}, {choice['steps']} steps, scale {choice['scale']:g} "
          f"(masked SSIM {choice['ssim_mask']:.4f}) -> {out.with_suffix('.json')}" + (f"; wrote {folder}/config.json"
                                                                          if args.write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
