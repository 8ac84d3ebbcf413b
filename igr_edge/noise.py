"""The bundle's noise generator, v1 `splitmix64-boxmuller` (DESIGN.md §5): the same seed gives the same
float32 noise in Python, JavaScript, Swift and Kotlin, so a seed gives the same garment on every platform.

A SplitMix64 stream (Steele, Lea & Flood 2014) seeded with the seed; each pair of outputs -> two uniforms
from their top 53 bits (u1 in (0, 1], u2 in [0, 1)) -> Box-Muller in float64 (r = sqrt(-2 ln u1);
r cos 2 pi u2, r sin 2 pi u2) -> float32, filled in C order.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import IgrEdgeError

GENERATORS = ("splitmix64-boxmuller",)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = float(2**53)


def check_seed(seed: object) -> int:
    """A seed is an integer in [0, 2**64); anything else is refused with the reason."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise IgrEdgeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise IgrEdgeError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def splitmix64(seed: int, n: int) -> np.ndarray:
    """The first `n` outputs of SplitMix64 seeded with `seed` (uint64)."""
    with np.errstate(over="ignore"):
        state = np.uint64(check_seed(seed)) + GOLDEN * np.arange(1, n + 1, dtype=np.uint64)   # wraps mod 2**64
        z = state
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def normal(seed: int, shape: tuple[int, ...], *, generator: str = "splitmix64-boxmuller") -> np.ndarray:
    """Standard normal float32 noise of `shape` from `seed` (C order)."""
    if generator not in GENERATORS:
        raise IgrEdgeError(f"noise generator {generator!r} is unknown to this igr_edge (it knows {', '.join(GENERATORS)})")
    count = math.prod(shape)
    bits = splitmix64(seed, 2 * ((count + 1) // 2)) >> np.uint64(11)     # top 53 bits of each output
    u1 = (bits[0::2].astype(np.float64) + 1.0) / _TWO53                 # (0, 1]
    u2 = bits[1::2].astype(np.float64) / _TWO53                         # [0, 1)
    r = np.sqrt(-2.0 * np.log(u1))
    pairs = np.stack([r * np.cos(2.0 * np.pi * u2), r * np.sin(2.0 * np.pi * u2)], axis=1).reshape(-1)
    return pairs[:count].astype(np.float32).reshape(shape)
