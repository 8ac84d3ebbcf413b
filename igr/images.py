"""Image plumbing shared by the tools: uint8 arrays <-> model tensors, contact sheets, atomic PNG writes."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_file


def to_tensor(image: np.ndarray):
    """uint8 (H, W, 3) -> float32 tensor (3, H, W) in [-1, 1]."""
    import torch

    return torch.tensor(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def uint8_images(images):
    """Tensor (B, 3, H, W) in [-1, 1] -> uint8 tensor (B, 3, H, W), rounded: the pixels a restore delivers."""
    import torch

    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8(images) -> list[np.ndarray]:
    """Tensor (B, 3, H, W) in [-1, 1] -> list of uint8 (H, W, 3)."""
    return list(uint8_images(images).permute(0, 2, 3, 1).cpu().numpy())


def as_rgb(a: np.ndarray) -> np.ndarray:
    """A uint8 image (H, W) or (H, W, 3) as (H, W, 3)."""
    return np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (temporary file beside it, then rename)."""
    with atomic_file(path, ".png") as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], *, title: str,
                  captions: Sequence[str] | None = None) -> Image.Image:
    """Rows of equally sized uint8 images side by side under a title, each row under an optional caption."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    head, label = 28, (14 if captions else 0)
    sheet = Image.new("RGB", (cols * w, head + len(rows) * (h + label)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), title, fill=(20, 20, 20), font=ImageFont.load_default(size=13))
    small = ImageFont.load_default(size=10)
    for r, row in enumerate(rows):
        y = head + r * (h + label)
        if captions:
            draw.text((4, y + 1), captions[r], fill=(60, 60, 60), font=small)
        sheet.paste(Image.fromarray(np.concatenate([as_rgb(a) for a in row], 1)), (0, y + label))
    return sheet
