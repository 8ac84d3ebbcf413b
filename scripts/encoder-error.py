"""How far light encoders' latents are from the full encoder's, on the two images a warp-prior model encodes.

A model with a warp prior encodes two images per restore (`IGRModel.condition`): the person photo, and that photo
resampled into the in-shop frame by its WarpNet (`IGRModel.warp_input`). For the first N persons of a split, each
light encoder's latent of both images against the full encoder's: relative L1 (mean |light - full| / mean |full|
per image; mean and 90th percentile over the images) and the largest bias over the latent channels (the mean signed
difference of a channel over all images, over the full latents' mean |value|): an offset the denoiser reads on every
restore, which a relative L1 barely shows.

    python scripts/encoder-error.py --model models/student-2-warp-light models/student-2-warp-light runs/enc/final \
        [--split val] [--n 256]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def relative_l1(light: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Per image (B,): mean |light - full| over mean |full|."""
    return (light - full).abs().flatten(1).mean(1) / full.abs().flatten(1).mean(1)


def errors(model, encoders: list, person: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """For each light encoder, on the persons and on the warped persons: the relative L1 of its latents (B,) and,
    under KIND_bias, its signed difference and the full latent's |value| summed per image and channel (B, C, 2)."""
    from igr.warp import warp

    coords, _ = model.warpnet(person)
    images = {"person": person, "warped": warp(person, coords.to(person.dtype))}
    full = {k: model.encode(x, light=False) for k, x in images.items()}
    out = []
    for encoder in encoders:
        row = {}
        for k, x in images.items():
            light = encoder(x)
            row[k] = relative_l1(light, full[k])
            row[f"{k}_bias"] = torch.stack([(light - full[k]).sum((2, 3)), full[k].abs().sum((2, 3))], -1)
        out.append(row)
    return out


def channel_bias(sums: torch.Tensor) -> float:
    """The largest |mean signed difference| over channels, over the mean |full latent|, from `errors`' sums."""
    total = sums.sum(0)                                     # (C, 2)
    return float(total[:, 0].abs().max() / total[:, 1].mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/encoder-error.py", description=__doc__.splitlines()[0])
    p.add_argument("light", nargs="+", help="light parts: light-vae run folders (OUT/final, OUT/step-N) or model "
                   "folders with light parts")
    p.add_argument("--model", required=True, help="a model with a warp prior: its WarpNet and full VAE")
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from igr.eval import split_batches
    from igr.model import IGRModel
    from igr.model.light import encoder_flops, load_light

    torch.set_num_threads(args.threads)
    model = IGRModel.from_pretrained(args.model).eval()
    if model.warpnet is None:
        p.error(f"--model {args.model} has no warp prior (config warp_prior): it encodes the person alone")
    configs, encoders = [], []
    for folder in args.light:
        light, _, encoder, _ = load_light(folder)
        if encoder is None:
            p.error(f"{folder} has no light encoder: its model encodes with the full VAE")
        configs.append(light)
        encoders.append(encoder.eval())
    cfg = model.config
    parts: list[dict[str, list[torch.Tensor]]] = [{} for _ in encoders]
    with torch.no_grad():
        for person, _, _ in split_batches(args.split, args.n, (cfg.height, cfg.width), args.batch):
            for acc, err in zip(parts, errors(model, encoders, person)):
                for k, v in err.items():
                    acc.setdefault(k, []).append(v)
    print(f"Light encoders' latents against the full encoder's, relative L1, {args.n} {args.split} persons "
          f"(WarpNet of {args.model})\n")
    print("| light parts | encoder widths | GFLOP per image | person: mean | person: p90 | person: channel bias "
          "| warped: mean | warped: p90 | warped: channel bias |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder, light, acc in zip(args.light, configs, parts):
        cells = []
        for k in ("person", "warped"):
            v = torch.cat(acc[k])
            cells += [f"{float(v.mean()):.4f}", f"{float(v.quantile(0.9)):.4f}",
                      f"{channel_bias(torch.cat(acc[f'{k}_bias'])):.4f}"]
        gflop = encoder_flops(light, cfg.height, cfg.width) / 1e9
        print(f"| {folder} | {','.join(map(str, light.encoder))} | {gflop:.3f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
