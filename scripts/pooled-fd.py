"""FD_garm on the union of several evaluations' pairs (e.g. 512 val + 512 test), paired between models.

FD on 512 pairs moves by about ±0.3 between two draws of pairs for the same model; pooling splits halves that
noise. Every model must have an evaluation on each split (`igr.eval` writes OUT.features.npz beside OUT.json),
the true garments' features equal across models on a split.

    python scripts/pooled-fd.py --against teacher \\
        --model teacher=reports/eval-warp/decoder/val512-teacher,reports/eval-warp/decoder/teacher-n512 \\
        --model default=reports/eval-warp/decoder/val512-shipped,reports/eval-warp/decoder/student-2-light-w8-n512
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igr.metrics import frechet_distance, paired_fd  # noqa: E402


def load(stems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    real, fake = [], []
    for stem in stems:
        with np.load(Path(f"{stem}.features.npz")) as z:     # as igr.eval names it: a stem like "g1.5" keeps its ".5"
            real.append(z["real"])
            fake.append(z["fake"])
    return np.concatenate(real), np.concatenate(fake)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, metavar="NAME=STEM,STEM,...",
                   help="evaluation paths without suffix, one per split, in the same split order for every model")
    p.add_argument("--against", required=True, help="the --model NAME each other one is compared with")
    p.add_argument("--boot", type=int, default=200)
    args = p.parse_args(argv)
    models = {}
    for item in args.model:
        name, sep, stems = item.partition("=")
        if not sep or not name or not stems:
            p.error(f"--model {item!r}: expected NAME=STEM,STEM,...")
        try:
            models[name] = load(stems.split(","))
        except (FileNotFoundError, KeyError) as e:
            p.error(f"--model {name}: {e} (an igr.eval output path without suffix, its .features.npz beside it)")
    if args.against not in models:
        p.error(f"--against {args.against!r} is not a --model name")
    real = models[args.against][0]
    for name, (r, _) in models.items():
        if r.shape != real.shape or not np.allclose(r, real, atol=1e-5):
            p.error(f"{name}: its true garments' features differ from {args.against}'s (other pairs or splits)")
    t = {name: torch.from_numpy(f).double() for name, (_, f) in models.items()}
    real_t = torch.from_numpy(real).double()
    ref = frechet_distance(real_t, t[args.against])
    print(f"{len(real)} pairs; FD_garm {args.against} {ref:.3f}")
    print("| model | FD_garm | − " + args.against + " [95%] | relative |")
    print("|---|---|---|---|")
    for name, fake in t.items():
        if name == args.against:
            continue
        d = paired_fd(real_t, fake, t[args.against], n=args.boot)
        lo, hi = d["ci95"]
        print(f"| {name} | {ref + d['mean']:.3f} | {d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] "   # FD(name) − FD(ref)
              f"| {100 * d['mean'] / ref:+.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
