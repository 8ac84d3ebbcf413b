"""Pair small evaluations with the first items of a larger one over the same split: means and paired differences.

    .venv/bin/python scripts/pair-first.py --ref teacher=reports/eval-warp/g15/test1024-teacher-g1.5.json \
        --eval guided=runs/s36/eval/guided-g15.json [--eval NAME=JSON ...] [--boot 2000] [--out REPORT.md]

`igr.eval --n 128` scores the first 128 items of a split, in order, with the same per-item noise as `--n 1024`, so a
128-pair evaluation pairs with the first 128 rows of a 1,024-pair one without running that again. This checks it:
the categories must agree item for item and the ground-truth features (`.features.npz`) must be equal. Prints (and
with --out writes) a Markdown table: each headline metric's mean for the reference on those items and for each
evaluation, and evaluation − reference with its 95% bootstrap interval; FD_garm from the features files, its
difference resampled over the pairs (`igr.metrics.paired_fd`).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igr.metrics import frechet_distance, paired_fd  # noqa: E402
from igr.report import HEADLINE, paired  # noqa: E402


def _load(path: Path) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    report = json.loads(path.read_text())
    feats = path.with_suffix(".features.npz")
    if not feats.is_file():
        return report, None
    with np.load(feats) as z:
        return report, (z["real"], z["fake"])


def _first(report: dict, n: int) -> dict:
    return {"metrics": {"per_sample": {k: v[:n] for k, v in report["metrics"]["per_sample"].items()}}}


def table(ref_name: str, ref_path: Path, evals: list[tuple[str, Path]], boot: int = 2000) -> str:
    ref, ref_feats = _load(ref_path)
    lines = ["| evaluation | n | metric | reference (same items) | evaluation | evaluation − reference |",
             "|---|---|---|---|---|---|"]
    for name, path in evals:
        ev, feats = _load(path)
        rows = ev["metrics"]["per_sample"]
        n = len(rows["category"])
        if n > len(ref["metrics"]["per_sample"]["category"]):
            raise ValueError(f"{path} has {n} items, more than the reference's")
        if ev.get("split") != ref.get("split") or rows["category"] != ref["metrics"]["per_sample"]["category"][:n]:
            raise ValueError(f"{path} does not hold the first {n} items of {ref_path} (split or categories differ)")
        head = _first(ref, n)
        for key in HEADLINE:
            if key not in rows or key not in head["metrics"]["per_sample"]:
                continue
            d = paired({"metrics": {"per_sample": rows}}, head, key, boot=boot)
            lines.append(f"| {name} | {n} | {key} | {np.mean(head['metrics']['per_sample'][key]):.4f} | "
                         f"{np.mean(rows[key]):.4f} | {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] |")
        if feats is not None and ref_feats is not None:
            real = torch.from_numpy(feats[0]).double()
            if not np.allclose(feats[0], ref_feats[0][:n], atol=1e-5):
                raise ValueError(f"{path}'s ground-truth features differ from the reference's first {n}")
            mine, theirs = torch.from_numpy(feats[1]).double(), torch.from_numpy(ref_feats[1][:n]).double()
            d = paired_fd(real, mine, theirs)
            lines.append(f"| {name} | {n} | fd_garm | {frechet_distance(real, theirs):.3f} | "
                         f"{frechet_distance(real, mine):.3f} | {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |")
    return "\n".join(lines) + "\n"


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pair-first.py", description=__doc__.split("\n")[0])
    p.add_argument("--ref", type=_named, required=True, metavar="NAME=JSON", help="the larger evaluation")
    p.add_argument("--eval", type=_named, action="append", required=True, metavar="NAME=JSON")
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--out", type=Path, help="also write the table (with the command) to this Markdown file")
    args = p.parse_args(argv)
    try:
        text = table(*args.ref, args.eval, boot=args.boot)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"pair-first.py: error: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out:
        command = "python scripts/pair-first.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        args.out.write_text(f"Reference: {args.ref[0]} ({args.ref[1]}), its first items.\n\n{text}\n"
                            f"Command: `{command}`\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
