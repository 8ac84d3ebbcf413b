"""How much of the full VAE decoder's energy per spatial frequency a light decoder keeps, on the same latents.

A decoder that blurs keeps the low bands (ratio ~1) and loses the high ones (ratio < 1). Two sets of latents of
the first N persons of a split: the true garments' (full encoder) and the model's own samples (its sampler from
seed 0, the light encoder where it has one), each decoded by the full decoder and by the light one; beside the
bands, the two images' mean pixel difference and their colour difference inside the true garment's mask.

    python scripts/decoder-spectrum.py models/student-2-warp-light runs/other-light [--split val] [--n 32]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# radial frequency bands, in cycles per pixel (0.5 is the Nyquist limit along an axis; corners reach 0.71)
EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.8)


def band_energy(images: torch.Tensor, edges: tuple[float, ...] = EDGES) -> list[float]:
    """Mean energy (orthonormal 2-D Fourier transform, squared amplitude, summed per band) of images (B, C, H, W)
    in each band [edges[i], edges[i + 1])."""
    power = torch.fft.rfft2(images.float(), norm="ortho").abs() ** 2
    h, w = images.shape[-2:]
    radius = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
    return [float(power[..., (radius >= lo) & (radius < hi)].sum(-1).mean()) for lo, hi in zip(edges, edges[1:])]


def kept(model, latents: torch.Tensor, mask: torch.Tensor) -> tuple[list[float], float, float]:
    """Light decoder's band energy over the full decoder's, per band; the mean absolute pixel difference; the mean
    CIE76 colour difference between the two inside `mask` (B, 1, H, W)."""
    from igr.metrics import delta_e76, masked_mean

    full, light = model.decode(latents, light=False), model.decode(latents, light=True)
    colour = masked_mean(delta_e76((light + 1) / 2, (full + 1) / 2), mask).mean()
    return ([a / b for a, b in zip(band_energy(light), band_energy(full))], float((light - full).abs().mean()),
            float(colour))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/decoder-spectrum.py", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="model folders with light parts (config light)")
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from igr.eval import split_batches
    from igr.model import IGRModel
    from igr.pipeline import denoise, initial_noise

    torch.set_num_threads(args.threads)
    bands = " | ".join(f"{lo:g}–{hi:g}" for lo, hi in zip(EDGES, EDGES[1:]))
    print(f"Light decoder's energy over the full decoder's per band (cycles/pixel), {args.n} {args.split} persons\n")
    print(f"| model | latents | {bands} | pixel L1 to full | ΔE76 to full in the true garment mask |")
    print("|---" * (len(EDGES) + 3) + "|")
    for folder in args.models:
        model = IGRModel.from_pretrained(folder).eval()
        if not model.config.light:
            p.error(f"{folder} has no light parts (config light): nothing to compare with its full decoder")
        cfg = model.config
        person, garment, mask = next(split_batches(args.split, args.n, (cfg.height, cfg.width), args.n))
        with torch.no_grad():
            cond = model.condition(person, light=True)
            rows = {"true garments": model.encode(garment),
                    "own samples": denoise(model, cond, initial_noise(cfg, len(person), 0, height=cfg.height,
                                                                      width=cfg.width))}
            for name, latents in rows.items():
                ratios, l1, colour = kept(model, latents, mask)
                print(f"| {folder} | {name} | " + " | ".join(f"{r:.3f}" for r in ratios)
                      + f" | {l1:.4f} | {colour:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
