"""`python -m igr.model summary --preset small`: parameters per component and one denoiser forward's time.

`python -m igr.model pack --from runs/hqft/final --out models/teacher-small`: the model folder as fp16
safetensors + config.json (what ships), written atomically; refuses to replace a folder without --overwrite.
`--share-with models/teacher-small` links components identical to that folder's (a student's frozen parts).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


def cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from ..config import IGRConfig
    from . import IGRModel

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = IGRConfig.preset(args.preset)
    model = IGRModel(cfg).eval()
    counts = model.num_parameters()
    print(f"IGR preset {args.preset}: image {cfg.height}x{cfg.width}, latent {'x'.join(map(str, cfg.latent_shape))}")
    for name, n in counts.items():
        print(f"  {name:<14} {n / 1e6:7.3f} M parameters")
    print(f"  {'total':<14} {sum(counts.values()) / 1e6:7.3f} M  ({sum(counts.values()) * 2 / 2**20:.1f} MiB at fp16)")
    person = torch.rand(args.batch, 3, cfg.height, cfg.width) * 2 - 1
    z = torch.randn(args.batch, *cfg.latent_shape)
    t = torch.full((args.batch,), 500)
    with torch.no_grad():
        cond = model.condition(person)
        for _ in range(args.warmup):
            model.predict(z, t, cond)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model.predict(z, t, cond)
            times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=10)
    print(f"  denoiser forward, batch {args.batch}, torch {torch.__version__} eager, {torch.get_num_threads()} threads: "
          f"median {statistics.median(times):.1f} ms, p90 {q[-1]:.1f} ms over {args.runs} runs ({args.warmup} warm-up)")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    import torch
    from pathlib import Path

    from . import IGRModel

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"python -m igr.model pack: {out} exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        model = IGRModel.from_pretrained(args.source)
    except FileNotFoundError as e:
        print(f"python -m igr.model pack: {e}", file=sys.stderr)
        return 2
    # how the model was made travels with it (a student's distill.json)
    extra = {f.name: f.read_text() for f in (Path(args.source) / "distill.json",) if f.is_file()}
    model.save_pretrained(out, dtype={"fp16": torch.float16, "fp32": None}[args.dtype], share_with=args.share_with,
                          extra=extra)
    size = sum(f.stat().st_size for f in out.iterdir())
    shared = (f", linking identical components from {', '.join(args.share_with)}" if (out / "shared.json").is_file()
              else "")
    print(f"wrote {out}: {size / 2**20:.1f} MiB ({args.dtype}){shared}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m igr.model")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="parameter counts and denoiser forward latency")
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("pack", help="write a model folder as fp16 safetensors for shipping")
    p.add_argument("--from", dest="source", required=True, help="model folder (e.g. runs/hqft/final)")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--share-with", metavar="DIR", action="append",
                   help="model folder whose identical component files are linked (shared.json), not copied; "
                        "repeat it for several, tried in order")
    p.set_defaults(func=cmd_pack)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
