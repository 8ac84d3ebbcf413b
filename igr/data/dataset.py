"""SynthGarment as a map-style torch Dataset, generated on the fly (nothing on disk)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..images import to_tensor
from .synth import CATEGORIES, SPLITS, Sample, SceneConfig, generate, parse_size, seed_for

TRIES = 32   # candidate seeds per item when selecting the high-quality subset


def to_item(person: np.ndarray, garment: np.ndarray, mask: np.ndarray, *, category: int,
            quality: float, seed: int) -> dict:
    """The training dict shared by synthetic and real data: images in [-1, 1], mask in {0, 1}."""
    def image(a: np.ndarray) -> torch.Tensor:
        # torch.tensor copies: arrays from PIL are read-only
        return torch.tensor(a).permute(2, 0, 1).float().div_(127.5).sub_(1.0)  # (3, H, W)

    return {
        "person": image(person),
        "garment": image(garment),
        "mask": torch.tensor(mask > 127).float()[None],     # (1, H, W)
        "category": int(category),
        "quality": float(quality),
        "seed": int(seed),
    }


class SynthGarmentDataset(Dataset):
    """Item i is `generate(seed_for(split, i))`, a function of i alone, so any worker count agrees.

    With `min_quality`, item i is the first of the seeds seed_for(split, i*TRIES + j), j < TRIES,
    whose quality reaches `min_quality`: a deterministic high-quality subset, disjoint across items.
    """

    def __init__(self, split: str = "train", n: int | None = None, *, size=(256, 192),
                 min_quality: float | None = None, config: SceneConfig = SceneConfig()):
        seed_for(split, 0)  # raises on an unknown split
        if min_quality is not None and not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must be in [0, 1] (quality is a score in [0, 1]), got {min_quality}")
        self.split, self.size, self.min_quality, self.config = split, parse_size(size), min_quality, config
        cap = len(SPLITS[split]) // (TRIES if min_quality is not None else 1)
        if n is None:
            n = cap
        if not isinstance(n, int) or not 0 < n <= cap:
            raise ValueError(f"n must be an int in [1, {cap:,}] for split {split!r}"
                             f"{' with min_quality' if min_quality is not None else ''}, got {n!r}")
        self.n = n

    def __len__(self) -> int:
        return self.n

    def sample(self, index: int) -> Sample:
        """The numpy Sample behind item `index`."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} is out of range for a dataset of {self.n} items")
        if self.min_quality is None:
            return generate(seed_for(self.split, index), size=self.size, config=self.config)
        for j in range(TRIES):
            s = generate(seed_for(self.split, index * TRIES + j), size=self.size, config=self.config)
            if s.meta["quality"] >= self.min_quality:
                return s
        raise RuntimeError(f"no seed among the {TRIES} candidates of item {index} reaches quality "
                           f"{self.min_quality} (lower min_quality, or use SceneConfig.clean())")

    def __getitem__(self, index: int) -> dict:
        s = self.sample(int(index))
        return to_item(s.person, s.garment, s.mask, category=CATEGORIES.index(s.meta["category"]),
                       quality=s.meta["quality"], seed=s.meta["seed"])
