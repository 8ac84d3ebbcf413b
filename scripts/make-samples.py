"""Write the sample photos `make demo` restores: SynthGarment test-split persons (never seen in training) and
their ground-truth garments, in a few of the forms users pass (PNG at the model's size, a larger JPEG with an
EXIF rotation, a wide RGBA PNG). Reproducible: `PYTHONPATH=. .venv/bin/python scripts/make-samples.py samples`."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from igr.data import generate, seed_for

N = 6


def main(out: str) -> int:
    root = Path(out)
    (root / "persons").mkdir(parents=True, exist_ok=True)
    (root / "truth").mkdir(parents=True, exist_ok=True)
    for i in range(N):
        s = generate(seed_for("test", i), size=(256, 192))
        person, garment = Image.fromarray(s.person), Image.fromarray(s.garment)
        name = f"test-{i:02d}"
        garment.save(root / "truth" / f"{name}.png", optimize=True)
        if i == 4:                                       # a phone photo: 2x larger, stored rotated + EXIF 6
            big = person.resize((384, 512), Image.Resampling.BICUBIC).transpose(Image.Transpose.ROTATE_90)
            exif = Image.Exif()
            exif[0x0112] = 6                             # "rotate 90 CW to display"
            big.save(root / "persons" / f"{name}.jpg", quality=92, exif=exif)
        elif i == 5:                                     # a wide RGBA picture: letterboxed, transparency -> white
            wide = Image.new("RGBA", (384, 256), (0, 0, 0, 0))
            wide.paste(person.convert("RGBA"), (96, 0))
            wide.save(root / "persons" / f"{name}.png", optimize=True)
        else:
            person.save(root / "persons" / f"{name}.png", optimize=True)
    print(f"wrote {N} persons and their garments under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "samples"))
