"""FD_garm of light decoders against the full decoder, on the same latents: a decoder's own cost without an
evaluation's pairing noise.

The latents are one model's samples (`--latents-from`, its own sampler and light encoder, noise from `--seed`) for
the first N persons of a split. Each light model's decoder and the full decoder draw them; every image is embedded
in the FD_garm space (`--features`' image encoder, as `igr.eval` does), each quantized to uint8 first, as a restore
delivers it (`igr.eval` embeds the float images, so figures differ from its FD_garm a little). Per light model:
FD_garm of its images against the full decoder's (0 for the same images) and against the true garments'.

    python scripts/decoder-fd.py --latents-from models/student-2-warp-light --features models/teacher-small \\
        models/student-2-warp-light runs/other-light [--split val] [--n 1024] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def light_decoder(folder: str):
    """A model folder's light decoder: scaled latents -> images in [-1, 1]."""
    from igr.model import IGRModel

    model = IGRModel.from_pretrained(folder)
    if not model.config.light:
        raise ValueError(f"{folder} has no light parts (config light): no light decoder to measure")
    decoder = model.light_decoder.eval()
    return lambda latents: decoder(latents).clamp(-1, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/decoder-fd.py", description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="model folders whose light decoders are measured")
    p.add_argument("--latents-from", required=True, help="the model whose samples are decoded (its full decoder too)")
    p.add_argument("--features", required=True, help="model folder whose image encoder defines FD_garm")
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.n < 2:
        p.error("--n must be at least 2 (FD needs two samples)")

    from tqdm import tqdm

    from igr.eval import split_batches
    from igr.images import uint8_images
    from igr.metrics import GarmentFeatures, frechet_distance
    from igr.model import IGRModel
    from igr.pipeline import denoise, initial_noise

    torch.set_num_threads(args.threads)
    source = IGRModel.from_pretrained(args.latents_from).eval()
    decoders = {}
    for folder in args.models:
        try:
            decoders[folder] = light_decoder(folder)
        except ValueError as e:
            p.error(str(e))
    features = GarmentFeatures(IGRModel.from_pretrained(args.features).image_encoder)
    cfg = source.config
    feats: dict[str, list[torch.Tensor]] = {"truth": [], "full": [], **{m: [] for m in decoders}}
    batches = split_batches(args.split, args.n, (cfg.height, cfg.width), args.batch)
    with torch.no_grad():
        for k, (person, garment, _) in enumerate(tqdm(batches, total=-(-args.n // args.batch), desc="decoder-fd")):
            noise = initial_noise(cfg, len(person), args.seed + k, height=cfg.height, width=cfg.width)
            latents = denoise(source, source.condition(person, light=True), noise)
            feats["truth"].append(features(uint8_images(garment)))
            feats["full"].append(features(uint8_images(source.decode(latents, light=False))))
            for name, decoder in decoders.items():
                feats[name].append(features(uint8_images(decoder(latents))))
    f = {k: torch.cat(v) for k, v in feats.items()}
    print(f"FD_garm on {args.n} {args.split} persons' samples of {args.latents_from} (seed {args.seed}); "
          f"the full decoder against the true garments: {frechet_distance(f['truth'], f['full']):.3f}\n")
    print("| light decoder of | FD_garm to the full decoder's images | FD_garm to the true garments |")
    print("|---|---|---|")
    for name in decoders:
        print(f"| {name} | {frechet_distance(f['full'], f[name]):.4f} | {frechet_distance(f['truth'], f[name]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
