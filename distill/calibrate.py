"""Calibration sampler for static int8 quantization: representative inputs at a student's own timesteps.

A static (QDQ) quantizer fixes each tensor's scale from the ranges it sees on calibration data, so the
data must look like what the graph meets in use: person images from the val split (never test), the seeded
noise, and for the denoiser the inputs it receives at each of the student's timesteps along the student's
own trajectory (the latents a 4-step student sees at t = 749 are not those of the teacher).

File: one .npz (no pickle), arrays keyed by graph and tensor name:
  person (N, H, W, 3) uint8 RGB, noise (N, 4, h, w) float32           the single-call graph's inputs
  denoiser.latent (N·k, 4, h, w), denoiser.timestep (N·k,) int64,
  denoiser.image_tokens (N·k, T, D),
  denoiser.reference_<i> (N·k, L, C), i-th fusion block in `denoiser.block_names` order   the denoiser's, per step
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from igr.files import atomic_file
from igr.model import IGRModel


@torch.no_grad()
def calibration_set(model: IGRModel, *, n: int = 64, split: str = "val", seed: int = 0,
                    batch: int = 16) -> dict[str, np.ndarray]:
    """Inputs of the single-call graph and of the denoiser at each step, for the first `n` items of `split`."""
    if split == "test":
        raise ValueError("calibration never uses the test split (the quality gates are measured on it)")
    from igr.eval import split_batches
    from igr.pipeline import denoise, item_noise

    cfg = model.config
    seen: dict[str, list[torch.Tensor]] = {}

    def hook(module, args):
        latent, timestep, image_tokens, reference = args
        refs = [(f"reference_{i}", reference[block]) for i, block in enumerate(model.denoiser.block_names)]
        for key, value in (("latent", latent), ("timestep", timestep), ("image_tokens", image_tokens), *refs):
            seen.setdefault(f"denoiser.{key}", []).append(value.detach().clone())

    persons, noises = [], []
    handle = model.denoiser.register_forward_pre_hook(hook)
    try:
        first = 0
        for person, _, _ in split_batches(split, n, (cfg.height, cfg.width), batch):
            noise = item_noise(cfg, seed, first, len(person))
            denoise(model, model.condition(person), noise)
            persons.append(((person.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
            noises.append(noise)
            first += len(person)
    finally:
        handle.remove()
    out = {"person": torch.cat(persons).numpy(), "noise": torch.cat(noises).float().numpy()}
    for key, parts in seen.items():
        value = torch.cat(parts)
        out[key] = value.numpy() if key.endswith("timestep") else value.float().numpy()
    out["denoiser.timestep"] = out["denoiser.timestep"].astype(np.int64)
    return out


def save(data: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write the set as an uncompressed .npz, atomically."""
    path = Path(path)
    with atomic_file(path, ".npz") as tmp:
        np.savez(tmp, **data)
    return path


def load(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
