"""`python -m igr.data`: write SynthGarment folders, draw a sample sheet, measure generation speed.

  python -m igr.data make --split test --n 64 --out DIR [--size 256x192] [--overwrite]
  python -m igr.data sheet --split test --rows 8 --out docs/synthgarment-sheet.png
  python -m igr.data bench --n 100
  python -m igr.data subset --data vitonhd:ROOT --out hq.txt [--keep 0.2]   (the hqft subset of a real data set)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..files import atomic_file, atomic_folder
from .synth import SPLITS, generate, parse_size, seed_for


class UsageError(Exception):
    """A bad argument: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, not argparse's usage block
        raise UsageError(message)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_range(split: str, start: int, n: int) -> None:
    if start < 0 or start + n > len(SPLITS[split]):
        raise UsageError(f"--start {start} --n {n} leaves split {split!r} (it has {len(SPLITS[split]):,} items)")


def _writable_parent(out: Path) -> Path:
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"folder {parent} is not writable")
    return parent


def cmd_make(args) -> None:
    """`make`: DIR/{person,garment,mask}/STEM.png and DIR/index.jsonl, renamed into place when done."""
    from PIL import Image
    from tqdm import tqdm

    _check_range(args.split, args.start, args.n)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.overwrite)):
        raise UsageError(f"{out} exists and is not an empty folder (pass --overwrite to replace it)")
    _writable_parent(out)
    with atomic_folder(out) as tmp:
        for sub in ("person", "garment", "mask"):
            (tmp / sub).mkdir()
        with open(tmp / "index.jsonl", "w") as index:
            for i in tqdm(range(args.start, args.start + args.n), desc=f"SynthGarment {args.split}", unit="pair"):
                seed = seed_for(args.split, i)
                s = generate(seed, size=args.size)
                stem = f"{args.split}_{i:07d}"
                for sub, arr in (("person", s.person), ("garment", s.garment), ("mask", s.mask)):
                    Image.fromarray(arr).save(tmp / sub / f"{stem}.png")
                row = {"stem": stem, "split": args.split, "index": i, "seed": seed}
                row.update({k: s.meta[k] for k in ("category", "print", "occlusion", "quality")})
                index.write(json.dumps(row) + "\n")
    print(f"wrote {args.n} pairs to {out}")


def cmd_sheet(args) -> None:
    """`sheet`: rows of person | garment | mask under a small header, as one PNG."""
    from ..images import contact_sheet, save_png

    _check_range(args.split, args.start, args.rows)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out} must end in .png")
    _writable_parent(out)
    H, W = args.size
    rows, captions = [], []
    for i in range(args.start, args.start + args.rows):
        s = generate(seed_for(args.split, i), size=(H, W))
        m = s.meta
        rows.append([s.person, s.garment, s.mask])
        captions.append(f"#{i} seed {m['seed']}  {m['category']} / {m['print']}  "
                        f"occlusion {m['occlusion']:.2f}  quality {m['quality']:.2f}")
    title = f"SynthGarment  split={args.split}  {H}x{W}   person | garment (in-shop) | mask"
    save_png(contact_sheet(rows, title=title, captions=captions), out)
    print(f"wrote {out}")


def cmd_bench(args) -> None:
    """`bench`: pairs per second of generate() in this process."""
    _check_range(args.split, 0, args.n)
    generate(seed_for(args.split, 0), size=args.size)   # warm-up: textures load once per process
    t = time.perf_counter()
    for i in range(args.n):
        generate(seed_for(args.split, i), size=args.size)
    dt = time.perf_counter() - t
    H, W = args.size
    print(f"{args.n} pairs at {H}x{W} in {dt:.2f} s: {args.n / dt:.1f} pairs/s (one process)")


def cmd_subset(args) -> None:
    """The hqft subset of a real data set's train pairs: the `keep` share with the richest garment texture."""
    import numpy as np

    from .errors import DataFolderError
    from .real import open_data, texture_score

    try:
        data = open_data(args.data, "train", args.size)
    except DataFolderError as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    _writable_parent(out)
    scores = []
    for i, name in enumerate(data.names):
        item = data[i]
        garment = ((item["garment"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        scores.append((texture_score(garment, (item["mask"][0].numpy() * 255).astype(np.uint8)), name))
    ranked = sorted(scores, key=lambda s: (-s[0], s[1]))
    kept = ranked[: max(1, round(args.keep * len(ranked)))]
    lines = [f"# hqft subset of {args.data}: {len(kept)} of {len(ranked)} train pairs, ranked by garment texture "
             f"score (python -m igr.data subset --keep {args.keep}); score floor {kept[-1][0]:.3f}"]
    lines += [f"{name}  # {score:.3f}" for score, name in kept]
    with atomic_file(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(kept)} of {len(ranked)} pairs (texture score >= {kept[-1][0]:.3f})")


def _share(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {x}")
    return x


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m igr.data", description="SynthGarment data tools.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(q, *, n_flag: str, n_default: int | None):
        q.add_argument("--split", choices=list(SPLITS), default="test")
        q.add_argument(n_flag, dest="n" if n_flag == "--n" else "rows", type=_count, default=n_default,
                       required=n_default is None)
        q.add_argument("--size", type=_size, default=(256, 192), help="HxW, default 256x192")

    q = sub.add_parser("make", help="write a SynthGarment folder")
    common(q, n_flag="--n", n_default=None)
    q.add_argument("--out", required=True, help="folder to create (its parent must exist)")
    q.add_argument("--start", type=int, default=0, help="first item index in the split")
    q.add_argument("--overwrite", action="store_true", help="replace an existing non-empty folder")
    q.set_defaults(func=cmd_make)

    q = sub.add_parser("sheet", help="draw a sample sheet PNG")
    common(q, n_flag="--rows", n_default=8)
    q.add_argument("--out", default="docs/synthgarment-sheet.png")
    q.add_argument("--start", type=int, default=0)
    q.set_defaults(func=cmd_sheet)

    q = sub.add_parser("bench", help="measure pairs per second")
    common(q, n_flag="--n", n_default=100)
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("subset", help="the hqft subset of a real data set (garment texture score)")
    q.add_argument("--data", required=True, help="vitonhd:ROOT or dresscode:ROOT")
    q.add_argument("--out", required=True, help="subset file to write (one pair name a line)")
    q.add_argument("--keep", type=_share, default=0.2, help="share of the train pairs kept (default 0.2)")
    q.add_argument("--size", type=_size, default=(256, 192), help="HxW the score is measured at")
    q.set_defaults(func=cmd_subset)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        args.func(args)
    except UsageError as e:
        print(f"python -m igr.data: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"python -m igr.data: error: {e.strerror or e} ({e.filename or ''})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
