"""`make demo`: a SynthGarment sample sheet, then the shipped teacher restores test-split persons.

The teacher (`models/teacher-warp`; `--model models/teacher-zsnr` or `models/teacher-small` for the earlier ones) samples with the sampler,
steps and guidance scale stored in its config. `--untrained --preset P` runs the same pipeline on seeded
random weights instead (a smoke test of the pipeline: its output is noise, not a garment).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "teacher-warp"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m igr.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="folder for the PNGs (created if missing)")
    parser.add_argument("--n", type=int, default=6, help="test-split persons to restore")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="IGR model folder (default: the shipped teacher)")
    parser.add_argument("--untrained", action="store_true", help="seeded random weights of --preset instead")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n <= 0:
        parser.error(f"--n must be at least 1, got {args.n}")
    if not args.untrained and not (Path(args.model) / "config.json").is_file():
        parser.error(f"{args.model} is not a model folder (no config.json); pass --model DIR or --untrained")

    import torch

    from .config import IGRConfig
    from .data import generate, seed_for
    from .data.__main__ import main as data_main
    from .images import contact_sheet, save_png, to_tensor, to_uint8
    from .model import IGRModel
    from .pipeline import sample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if data_main(["sheet", "--split", "test", "--rows", "8", "--out", str(out / "synthgarment-sheet.png")]):
        return 1

    if args.untrained:
        torch.manual_seed(args.seed)
        model, what = IGRModel(IGRConfig.preset(args.preset)).eval(), f"IGR {args.preset}, UNTRAINED weights"
        name = "igr-untrained-sample.png"
    else:
        model, what = IGRModel.from_pretrained(args.model).eval(), f"IGR teacher ({Path(args.model).name})"
        name = "teacher-restored.png"
    cfg = model.config
    samples = [generate(seed_for("test", i), size=(cfg.height, cfg.width)) for i in range(args.n)]
    person = torch.stack([to_tensor(s.person) for s in samples])             # (B, 3, H, W)
    t0 = time.perf_counter()
    garment = sample(model, person, steps=args.steps, seed=args.seed, progress=True)
    dt = time.perf_counter() - t0
    steps = args.steps or cfg.sample_steps
    rows = [[s.person, g, s.garment] for s, g in zip(samples, to_uint8(garment))]
    title = (f"{what}: person | restored ({steps} {cfg.sampler} steps, guidance {cfg.guidance_scale:g}) | "
             "ground truth (test split)")
    path = save_png(contact_sheet(rows, title=title), out / name)
    print(f"restored {args.n} test persons in {dt:.1f} s ({steps} steps, guidance {cfg.guidance_scale:g}, "
          f"batch {args.n})")
    print(f"wrote {path}")
    if args.untrained:
        print("note: --untrained samples from random weights: the restored column is noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
