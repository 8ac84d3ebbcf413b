"""How much of the person's print the person latent keeps: the shipped VAE's reconstruction of test-split persons,
scored inside the garment's visible pixels on the person (`Sample.worn`), beside two pixel-grid yardsticks (the
person average-pooled to 1/8 and 1/4 of its size and scaled back, bilinear) and the VAE's reconstruction of the
in-shop garments inside their mask. GarmNet and the aligned prior see the person only through that latent.

    PYTHONPATH=. .venv/bin/python scripts/vae-person-probe.py [--model models/teacher-zsnr] [--n 64]
"""
import argparse

import torch
import torch.nn.functional as F

from igr.data.dataset import SynthGarmentDataset
from igr.metrics import image_metrics
from igr.model.igr import IGRModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/teacher-zsnr")
    p.add_argument("--n", type=int, default=64)
    args = p.parse_args()
    model = IGRModel.from_pretrained(args.model).eval()
    ds = SynthGarmentDataset("test", args.n)
    image = lambda a: torch.tensor(a).permute(2, 0, 1).float().div(127.5).sub(1)      # noqa: E731
    mask = lambda a: torch.tensor(a > 127).float()[None]                             # noqa: E731
    samples = [ds.sample(i) for i in range(args.n)]
    person, garment = (torch.stack([image(getattr(s, k)) for s in samples]) for k in ("person", "garment"))
    worn, flat = (torch.stack([mask(getattr(s, k)) for s in samples]) for k in ("worn", "mask"))
    with torch.no_grad():
        recon = lambda x: torch.cat([model.decode(model.encode(x[i:i + 16])) for i in range(0, len(x), 16)])  # noqa
        rows = {
            "person, VAE reconstruction (inside worn)": (recon(person), person, worn),
            "person, 1/8 pixel grid (inside worn)": (F.interpolate(F.avg_pool2d(person, 8), scale_factor=8,
                                                                   mode="bilinear"), person, worn),
            "person, 1/4 pixel grid (inside worn)": (F.interpolate(F.avg_pool2d(person, 4), scale_factor=4,
                                                                   mode="bilinear"), person, worn),
            "garment, VAE reconstruction (inside mask)": (recon(garment), garment, flat),
        }
    print(f"{args.n} test pairs; garment area: {worn.mean():.3f} of the person image, {flat.mean():.3f} of the "
          f"in-shop image")
    print("| what | SSIM | PSNR |\n|---|---|---|")
    for name, (pred, target, m) in rows.items():
        r = image_metrics(pred, target, m)
        print(f"| {name} | {r['ssim_mask'].mean():.4f} | {r['psnr_mask'].mean():.2f} |")


if __name__ == "__main__":
    main()
