"""`python -m igr.probe --model DIR [--n 64] [--out reports/probe/NAME]`: does the denoiser use the person?

The swap test of DESIGN.md §2: for test pairs at each timestep t, noise the true garment latent (fixed noise),
make one denoiser call, and measure the clean-latent estimate's error (latent MSE) three ways: conditioned on
the pair's own person, on another pair's person (the batch rolled by one), and the yardstick of answering the
mean garment latent of these pairs without looking. `swap_ratio` = swapped / own error: well above 1 where
the person decides what is drawn; `vs_mean` = own / mean-latent error: below 1 where the estimate beats a
blind guess. At t = T under zero terminal SNR the input is pure noise, so that row measures what the
conditioning alone gives.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

TIMESTEPS = (50, 200, 400, 600, 800, 950, 999)


@torch.no_grad()
def swap_test(model, person: torch.Tensor, garment: torch.Tensor, *, timesteps=TIMESTEPS, seed: int = 0,
              batch: int = 16, field: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Rows {t, own, swapped, mean_latent, swap_ratio, vs_mean} over pairs (person, garment) in [-1, 1].
    `field`: a warp prior model's field for each pair instead of its WarpNet's (`IGRModel.warp_input`)."""
    model = model.eval()
    z0 = torch.cat([model.encode(garment[i:i + batch]) for i in range(0, len(garment), batch)])     # (N, 4, h, w)
    zp = torch.cat([model.encode(person[i:i + batch]) for i in range(0, len(person), batch)])
    embed = torch.cat([model.image_encoder.embed(person[i:i + batch]) for i in range(0, len(person), batch)])
    warp = None if getattr(model, "warpnet", None) is None else \
        torch.cat([model.warp_input(person[i:i + batch], None if field is None else tuple(f[i:i + batch] for f in field))
                   for i in range(0, len(person), batch)])                                          # (N, 5, h, w)
    mean = z0.mean(0, keepdim=True)                                                                # (1, 4, h, w)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    sched = model.noise_scheduler()
    ab = sched.alphas_cumprod.double()
    rows = []
    for t in timesteps:
        a, s = float(ab[t].sqrt()), float((1 - ab[t]).sqrt())
        err = {"own": [], "swapped": []}
        for i in range(0, len(z0), batch):
            sl = slice(i, i + batch)
            zt = a * z0[sl] + s * noise[sl]
            tt = torch.full((len(zt),), t, dtype=torch.long)
            for name, roll in (("own", 0), ("swapped", 1)):
                cond = model.condition_from(zp[sl].roll(roll, 0), embed[sl].roll(roll, 0),
                                            warp=None if warp is None else warp[sl].roll(roll, 0))
                v = model.predict(zt, tt, cond)
                x0 = a * zt - s * v                                                                # (b, 4, h, w)
                err[name].append(((x0 - z0[sl]) ** 2).flatten(1).mean(1))
        own, swapped = (torch.cat(err[k]).mean().item() for k in ("own", "swapped"))
        blind = ((mean - z0) ** 2).mean().item()
        rows.append({"t": t, "own": own, "swapped": swapped, "mean_latent": blind,
                     "swap_ratio": swapped / own, "vs_mean": own / blind})
    return rows


def markdown(rows: list[dict[str, float]], title: str) -> str:
    lines = [f"### Swap test: {title}", "",
             "| t | error, own person | error, another's person | swapped / own | mean latent | own / mean |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['t']} | {r['own']:.4f} | {r['swapped']:.4f} | {r['swap_ratio']:.2f} | {r['mean_latent']:.4f} | "
              f"{r['vs_mean']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.probe", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="IGR model folder")
    p.add_argument("--n", type=int, default=64, help="test-split pairs")
    p.add_argument("--out", help="write OUT.json and OUT.md (default: print the table)")
    p.add_argument("--true-warp", action="store_true",
                   help="a warp prior model: warp each person by SynthGarment's true field instead of WarpNet's")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error("--n must be at least 2 (the swap needs another pair)")
    from .eval import split_batches
    from .model import IGRModel
    from .warp import TRUE_WARP, true_field

    try:
        model = IGRModel.from_pretrained(args.model)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    if args.true_warp and getattr(model, "warpnet", None) is None:
        p.error(f"--true-warp: {args.model} has no warp prior (config warp_prior)")
    parts = list(split_batches("test", args.n, (model.config.height, model.config.width), 16))
    person, garment = (torch.cat([b[k] for b in parts]) for k in (0, 1))
    field = None
    if args.true_warp:
        field = true_field("test", range(args.n))
    rows = swap_test(model, person, garment, field=field)
    text = markdown(rows, f"{args.model}, {args.n} test pairs")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"model": args.model, "n": args.n, "rows": rows,
                                                        **({"warp": TRUE_WARP} if args.true_warp else {})},
                                                       indent=1) + "\n")
        out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
