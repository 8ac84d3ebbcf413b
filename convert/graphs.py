"""The torch modules whose forward is each exported graph (see `convert.specs` for their tensors)."""
from __future__ import annotations

import math

import torch
from torch import nn

from igr.model import Conditioning, IGRModel


class VaeEncoder(nn.Module):
    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode(image)                                   # (N, 4, h, w), scaled


class VaeDecoder(nn.Module):
    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latent)                                  # (N, 3, H, W) in [-1, 1]


class ImageEncoderGraph(nn.Module):
    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.image_encoder(image)                            # (N, T, D)


class GarmNetGraph(nn.Module):
    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, person_latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        refs = self.model.garmnet(person_latent)
        return tuple(refs[b] for b in self.model.denoiser.block_names)   # reference_0..k-1


class PriorGraph(nn.Module):
    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, person_latent: torch.Tensor) -> torch.Tensor:
        return self.model.prior(person_latent)                            # (N, 4, h, w)


class DenoiserGraph(nn.Module):
    """v from the noisy latent, the timestep, the image tokens, (with an aligned prior) its latent, and GarmNet's
    reference tokens."""

    def __init__(self, model: IGRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, image_tokens: torch.Tensor,
                *rest: torch.Tensor) -> torch.Tensor:
        prior, references = (rest[0], rest[1:]) if self.model.prior is not None else (None, rest)
        blocks = self.model.denoiser.block_names
        return self.model.predict(latent, timestep, Conditioning(dict(zip(blocks, references)), image_tokens, prior))


def ddim_plan(config, steps: int) -> tuple[list[int], list[tuple[float, float]]]:
    """A k-step student's DDIM timesteps and (sqrt ᾱ, sqrt(1 − ᾱ)) at each, then at the end point."""
    from igr.pipeline import make_scheduler

    from distill.core import student_plan

    plan = student_plan(config, steps)
    sched = make_scheduler(config, "ddim")
    ab = sched.alphas_cumprod.double()
    alphas = [float(ab[t]) for t in plan] + [float(sched.final_alpha_cumprod)]
    return plan, [(math.sqrt(a), math.sqrt(1 - a)) for a in alphas]


class StudentGraph(nn.Module):
    """The single-call graph: uint8 person + noise -> uint8 garment. Pre-processing, both extractors (once),
    every DDIM step unrolled with its coefficients as constants, VAE decoding and post-processing. A student with
    light VAE parts (config `light`) encodes and decodes with them, as `igr.pipeline.sample` does."""

    def __init__(self, model: IGRModel, *, steps: int) -> None:
        super().__init__()
        if model.config.guidance_scale != 1.0:
            raise ValueError("the single-call graph runs one denoiser call per step: the model must have its "
                             f"guidance distilled (guidance_scale 1, this one {model.config.guidance_scale:g})")
        self.model = model
        self.plan, self.coef = ddim_plan(model.config, steps)

    def forward(self, person: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = person.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0      # (N, 3, H, W) in [-1, 1]
        cond = self.model.condition(x)                                       # once per image
        latent = noise
        for i, t in enumerate(self.plan):
            v = self.model.predict(latent, torch.full((noise.shape[0],), t, dtype=torch.long), cond)
            a, s = self.coef[i]
            a_next, s_next = self.coef[i + 1]
            x0 = a * latent - s * v                                          # v-prediction -> x0 and eps
            eps = s * latent + a * v
            latent = a_next * x0 + s_next * eps                              # DDIM (eta = 0)
        image = self.model.decode(latent, light=self.model.config.light)     # a light student's own decoder
        garment = ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return garment, latent
