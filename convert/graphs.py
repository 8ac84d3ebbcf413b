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


def single_call_steps(config) -> int:
    """The denoiser steps a single-call graph unrolls: a jump plan's length (config sample_jump), else the
    student's step count."""
    if config.sample_jump is None:
        return config.sample_steps
    from igr.pipeline import jump_plan

    return len(jump_plan(config, config.sample_steps, config.sample_jump, "ddim"))


def ddim_plan(config, steps: int) -> tuple[list[int], list[tuple[float, float]]]:
    """A k-step student's DDIM timesteps and (sqrt ᾱ, sqrt(1 − ᾱ)) at each, then at the end point; with a jump
    plan (config sample_jump, `igr.pipeline.jump_plan` of the config's DDIM steps) its timesteps, `steps` long."""
    from igr.pipeline import jump_plan, make_scheduler

    from distill.core import student_plan

    if config.sample_jump is None:
        plan = student_plan(config, steps)
    else:
        plan = jump_plan(config, config.sample_steps, config.sample_jump, "ddim")
        if len(plan) != steps:
            raise ValueError(f"the jump plan {plan} has {len(plan)} steps, not {steps}")
    sched = make_scheduler(config, "ddim")
    ab = sched.alphas_cumprod.double()
    alphas = [float(ab[t]) for t in plan] + [float(sched.final_alpha_cumprod)]
    return plan, [(math.sqrt(a), math.sqrt(1 - a)) for a in alphas]


class StudentGraph(nn.Module):
    """The single-call graph: uint8 person + noise -> uint8 garment. Pre-processing, both extractors (once),
    every DDIM step unrolled with its coefficients as constants, VAE decoding and post-processing. A student with
    light VAE parts (config `light`) encodes and decodes with them, as `igr.pipeline.sample` does. A jump plan
    (config sample_jump, `distill readout --jump`) may keep classifier-free guidance: the steps at or below the
    config's guidance_below run the denoiser on the conditional and unconditional halves in one batch."""

    def __init__(self, model: IGRModel, *, steps: int) -> None:
        super().__init__()
        cfg = model.config
        if cfg.guidance_scale != 1.0 and cfg.sample_jump is None:
            raise ValueError("the single-call graph runs one denoiser call per step: the model must have its "
                             f"guidance distilled (guidance_scale 1, this one {cfg.guidance_scale:g})")
        self.model = model
        self.plan, self.coef = ddim_plan(cfg, steps)
        self.guided = [cfg.guidance_scale != 1.0 and (cfg.guidance_below is None or t <= cfg.guidance_below)
                       for t in self.plan]

    def forward(self, person: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = person.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0      # (N, 3, H, W) in [-1, 1]
        cond = self.model.condition(x)                                       # once per image
        both = Conditioning.cat([cond.null(), cond]) if any(self.guided) else None
        latent = noise
        n, scale = noise.shape[0], self.model.config.guidance_scale
        for i, t in enumerate(self.plan):
            if self.guided[i]:                                               # unconditional half first
                v2 = self.model.predict(torch.cat([latent, latent]), torch.full((2 * n,), t, dtype=torch.long), both)
                v_u, v_c = v2[:n], v2[n:]                                    # slices: chunk exports as a sequence
                v = v_u + scale * (v_c - v_u)
            else:
                v = self.model.predict(latent, torch.full((n,), t, dtype=torch.long), cond)
            a, s = self.coef[i]
            a_next, s_next = self.coef[i + 1]
            x0 = a * latent - s * v                                          # v-prediction -> x0 and eps
            eps = s * latent + a * v
            latent = a_next * x0 + s_next * eps                              # DDIM (eta = 0)
        image = self.model.decode(latent, light=self.model.config.light)     # a light student's own decoder
        garment = ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return garment, latent
