"""SynthGarment: seeded, procedural (person, in-shop garment, mask) triples for garment try-off.

`generate(seed)` is a pure function of the seed (and size, config): the same seed gives
byte-identical arrays on any machine with the same numpy/Pillow. Splits are disjoint seed ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import person
from .garments import CATEGORIES, build, fit_flat, render_flat
from .person import SceneConfig
from .prints import PRINT_WEIGHTS, PRINTS, contrast, random_colour, render_print

__all__ = ["CATEGORIES", "PRINTS", "SPLITS", "Sample", "SceneConfig", "generate", "quality_score", "seed_for"]

SPLITS: dict[str, range] = {
    "train": range(0, 10_000_000),
    "val": range(10_000_000, 10_100_000),
    "test": range(10_100_000, 10_200_000),
}


@dataclass(frozen=True, eq=False)
class Sample:
    """One SynthGarment triple plus the garment's visible region on the person."""
    person: np.ndarray     # (H, W, 3) uint8, the person wearing the garment
    garment: np.ndarray    # (H, W, 3) uint8, the garment flat on white (in-shop)
    mask: np.ndarray       # (H, W) uint8 {0, 255}, the garment in the in-shop image
    worn: np.ndarray       # (H, W) uint8 {0, 255}, the garment's visible pixels on the person
    meta: dict = field(default_factory=dict)
    flat_xy: np.ndarray | None = None   # (H, W, 2) float32: the in-shop (x, y) px that each visible
                                        # garment pixel of `person` shows; NaN elsewhere (`igr.warp`)


def seed_for(split: str, index: int) -> int:
    """The seed of item `index` of `split` ('train', 'val' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    seeds = SPLITS[split]
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < len(seeds):
        raise IndexError(f"index {index!r} is out of range for split {split!r} "
                         f"(0 <= index < {len(seeds):,})")
    return seeds[int(index)]


def parse_size(size) -> tuple[int, int]:
    """(H, W) from a pair or an 'HxW' string; both at least 32 px."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"size {size!r} is not HxW, e.g. 256x192")
        size = tuple(int(p) for p in parts)
    try:
        H, W = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size {size!r} is not a pair (H, W), e.g. (256, 192)") from None
    if H < 32 or W < 32:
        raise ValueError(f"size {H}x{W} is too small: both sides need at least 32 px")
    return H, W


def texture_richness(garment: np.ndarray, mask: np.ndarray) -> float:
    """Mean luminance gradient inside the garment (silhouette edges excluded), scaled to [0, 1]."""
    lum = garment.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)   # (H, W)
    gx, gy = np.abs(np.diff(lum, axis=1))[:-1], np.abs(np.diff(lum, axis=0))[:, :-1]  # (H-1, W-1)
    inner = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
    if not inner.any():
        return 0.0
    return float(min(1.0, (gx + gy)[inner].mean() / 12.0))


def quality_score(occlusion: float, blur: float, noise: float, jpeg: int, richness: float) -> float:
    """Sample quality in [0, 1]: high when unoccluded, sharp, clean and richly textured.

    q = (1 - occlusion)^2                      hidden garment pixels cost most
        * (1 - 0.5 min(blur / 1.5, 1))         blur: gaussian sigma in px at 256 rows
        * (1 - 0.4 min(noise / 10, 1))         noise: std in uint8 levels
        * (1 - 0.3 (100 - jpeg) / 70)          jpeg: quality, 100 = not compressed
        * (0.5 + 0.5 richness)                 richness: texture_richness of the in-shop garment
    """
    q = ((1 - occlusion) ** 2 * (1 - 0.5 * min(blur / 1.5, 1.0)) * (1 - 0.4 * min(noise / 10.0, 1.0))
         * (1 - 0.3 * min((100 - jpeg) / 70, 1.0)) * (0.5 + 0.5 * richness))
    return float(np.clip(q, 0.0, 1.0))


def generate(seed: int, *, size=(256, 192), config: SceneConfig = SceneConfig()) -> Sample:
    """The SynthGarment sample of `seed`: a pure function of (seed, size, config)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    H, W = parse_size(size)
    r_garment, r_print, r_scene = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))

    category = CATEGORIES[r_garment.integers(len(CATEGORIES))]
    base = random_colour(r_garment)
    accent, trim = contrast(r_garment, base), random_colour(r_garment)
    geom = build(r_garment, category, base, trim)
    fit = fit_flat(geom, (H, W))

    kind = PRINTS[r_print.choice(len(PRINTS), p=PRINT_WEIGHTS)]
    (x0, y0), (x1, y1) = fit.px(np.array(geom.chest[:2])), fit.px(np.array(geom.chest[2:]))
    canvas = render_print(r_print, kind, (H, W), (x0, y0, x1, y1), base, accent)   # (H, W, 3)
    garment, bits = render_flat(geom, fit, canvas, base)                          # (H, W, 3), (H, W)

    seen = person.render(r_scene, geom, fit, garment, bits, config)
    on_body = int(seen.garment.sum())
    occlusion = float(seen.occluder.sum() / on_body) if on_body else 1.0
    richness = texture_richness(garment, bits > 0)
    meta = {
        "category": category, "seed": int(seed), "print": kind,
        "occlusion": round(occlusion, 4),
        "quality": round(quality_score(occlusion, seen.blur, seen.noise, seen.jpeg, richness), 4),
        "blur": round(seen.blur, 3), "noise": round(seen.noise, 3), "jpeg": seen.jpeg,
        "richness": round(richness, 4), "size": [H, W],
    }
    mask = np.where(bits > 0, np.uint8(255), np.uint8(0))
    worn = np.where(seen.garment & ~seen.occluder, np.uint8(255), np.uint8(0))
    return Sample(seen.image, garment, mask, worn, meta, seen.flat_xy)
