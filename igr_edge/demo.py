"""`make demo`: restore the sample photos shipped in the repo with the default bundle and write a contact
sheet (person as the model sees it | restored garment | ground truth, when the samples have it).

    python -m igr_edge.demo [--samples samples] [--out out/demo] [--bundle B] [--backend cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw


def contact_sheet(rows: list[list[Image.Image]], *, header: list[str], title: str) -> Image.Image:
    """One row per sample, one column per stage, labelled; every cell is shown at the first cell's size."""
    w, h = rows[0][0].size
    pad, top = 6, 40
    sheet = Image.new("RGB", (pad + len(header) * (w + pad), top + len(rows) * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), title, fill="black")
    for c, label in enumerate(header):
        draw.text((pad + c * (w + pad), 22), label, fill="black")
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            sheet.paste(cell.convert("RGB").resize((w, h)), (pad + c * (w + pad), top + r * (h + pad)))
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m igr_edge.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="samples", help="folder with persons/ (and truth/) (default samples)")
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--bundle", default=None, help="bundle folder (default: the one shipped in the package)")
    parser.add_argument("--backend", default=None, help="cpu, cuda or coreml (default: the best here)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from .cli import expand_inputs
    from .errors import IgrEdgeError
    from .files import atomic_write_image
    from .images import letterbox, load_image
    from .restorer import Restorer

    persons, _ = expand_inputs([str(Path(args.samples) / "persons")])
    if not persons:
        print(f"igr_edge.demo: no images in {Path(args.samples) / 'persons'}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        restorer = Restorer(args.bundle, backend=args.backend)
        load = time.perf_counter() - t0
        with restorer:
            w, h = restorer.bundle.size
            seen = [Image.fromarray(letterbox(load_image(p), w, h)) for p in persons]
            t0 = time.perf_counter()
            garments = restorer.restore_batch(persons, [args.seed] * len(persons))
            dt = time.perf_counter() - t0
    except IgrEdgeError as e:
        print(f"igr_edge.demo: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    truth_dir = Path(args.samples) / "truth"
    has_truth = all((truth_dir / f"{p.stem}.png").is_file() for p in persons)
    rows = []
    for p, s, g in zip(persons, seen, garments):
        atomic_write_image(g, out / f"{p.stem}-garment.png", overwrite=True)
        truth = []
        if has_truth:
            with Image.open(truth_dir / f"{p.stem}.png") as t:
                truth = [t.convert("RGB")]
        rows.append([s, g] + truth)
    b = restorer.bundle
    header = ["person (as the model sees it)", "restored"] + (["ground truth"] if has_truth else [])
    title = f"igr_edge {b.name} ({restorer.variant}, {b.steps} steps) on {restorer.backend}"
    sheet = atomic_write_image(contact_sheet(rows, header=header, title=title), out / "contact-sheet.png",
                               overwrite=True)
    print(f"restored {len(persons)} sample photos with {b.name} ({restorer.variant}) on {restorer.backend}: "
          f"load {load:.1f} s, restore {dt:.2f} s ({dt / len(persons) * 1e3:.0f} ms per image, batch {len(persons)})")
    print(f"wrote {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
