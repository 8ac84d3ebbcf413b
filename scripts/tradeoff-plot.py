"""Plot evaluations along a sampler setting as a trade-off: masked SSIM and print correlation against FD_garm.

    .venv/bin/python scripts/tradeoff-plot.py --eval "J 1=runs/.../val128-teacher.json" --eval "J 0.3=..." \
        --ref baseline=runs/.../val128-baseline.json --out reports/jump-plans-curve.png

Each `--eval NAME=JSON` (an `igr.eval` report) is a point, joined in the order given (e.g. a jump plan's J from 1
down to the readout); `--ref` is drawn as a star with dashed lines at its values, the bar to clear. Masked SSIM
rewards the posterior mean (sharp print costs it), FD_garm a sample's spread: the curve shows what one setting
buys of each. Print correlation on the right panel tells a blurred garment from one that keeps its print.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PANELS = (("ssim_mask", "SSIM inside the true mask (higher better)"),
          ("print_corr", "print correlation (ours, higher better)"))


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {text!r}")
    return name, Path(path)


def point(path: Path) -> dict[str, float]:
    """FD_garm and the two panels' metrics of one `igr.eval` report."""
    m = json.loads(path.read_text())["metrics"]
    missing = [k for k in ("fd", *(k for k, _ in PANELS)) if k not in m]
    if missing:
        raise KeyError(f"{path} has no {', '.join(missing)}: not an igr.eval report of a garment model")
    return {"fd": m["fd"]["mean"], **{k: m[k]["mean"] for k, _ in PANELS}}


def plot(tries: list[tuple[str, dict]], ref: tuple[str, dict] | None, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (key, label) in zip(axes, PANELS):
        xs, ys = [p["fd"] for _, p in tries], [p[key] for _, p in tries]
        ax.plot(xs, ys, "o-", color="tab:blue")
        for (name, _), x, y in zip(tries, xs, ys):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if ref is not None:
            ax.plot(ref[1]["fd"], ref[1][key], "*", ms=12, color="tab:red", label=ref[0])
            ax.axhline(ref[1][key], ls="--", lw=0.8, color="tab:red")
            ax.axvline(ref[1]["fd"], ls="--", lw=0.8, color="tab:red")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("FD_garm (lower better)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tradeoff-plot.py", description=__doc__.split("\n")[0])
    p.add_argument("--eval", type=_named, action="append", required=True, metavar="NAME=JSON")
    p.add_argument("--ref", type=_named, metavar="NAME=JSON", help="drawn as a star: the bar to clear")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    try:
        tries = [(name, point(path)) for name, path in args.eval]
        ref = None if args.ref is None else (args.ref[0], point(args.ref[1]))
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        print(f"tradeoff-plot.py: error: {e}", file=sys.stderr)
        return 2
    print(plot(tries, ref, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
