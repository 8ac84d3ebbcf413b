"""A light aligned prior: the student's regression UNet (person latent -> garment latent, fed to every denoiser
call) distilled into a narrower one, as the light VAE is distilled from the full VAE.

The prior is the largest single cost of a light student's restore (1.78 of student-2-light's 4.65 GFLOP). The
narrow UNet learns to answer what the full prior answers (L1 to its latent, no ground truth: the denoiser was
trained on the full prior's latents, so those are what it should keep seeing), on the person latents of a latent
cache (`python -m igr.train.cache`): the full prior's answers are computed once, then training runs on them alone.
The last `holdout` latents of the cache are never trained on; the report measures there.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from igr.config import RegressionConfig
from igr.model import IGRModel
from igr.model.igr import AlignedPrior

from .light import counted_flops

PRIOR_META = "prior.json"        # how a light prior was made, written beside the model folder's weights


def person_latents(cache: str | Path, size: str = "256x192") -> torch.Tensor:
    """The person latents of a latent cache (float32, N×4×h×w)."""
    from safetensors import safe_open

    path = Path(cache) / f"{size}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no latent cache at {path} (python -m igr.train.cache writes one)")
    with safe_open(str(path), "pt") as f:
        return f.get_tensor("person_latent").float()


@torch.no_grad()
def answers(prior: AlignedPrior, latents: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return torch.cat([prior(latents[i:i + batch]) for i in range(0, len(latents), batch)])


def relative_l1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute difference over the target's mean magnitude (the target all zero: divided by 1e-8)."""
    return float((pred - target).abs().mean() / target.abs().mean().clamp_min(1e-8))


def distill_prior(model: IGRModel, channels: tuple[int, ...], latents: torch.Tensor, *, steps: int = 2000,
                  batch: int = 32, lr: float = 1e-3, holdout: int = 512, seed: int = 0,
                  progress: bool = True) -> tuple[IGRModel, dict[str, Any]]:
    """`model` with its prior replaced by a `channels`-wide one trained to answer as it does. -> (the new model,
    a record: settings, loss curve, relative L1 on the held-out latents, GFLOP of both priors, seconds)."""
    if model.prior is None:
        raise ValueError("the model has no aligned prior (config aligned_prior) to distil")
    if len(latents) <= holdout:
        raise ValueError(f"{len(latents)} latents leave none to train on beside a holdout of {holdout}")
    full = model.prior.eval().requires_grad_(False)
    base = model.config.prior
    if len(channels) != len(base.channels):
        raise ValueError(f"the prior has {len(base.channels)} levels ({base.channels}); got {len(channels)} widths")
    # GroupNorm: the most groups, up to the prior's, that divide every width
    groups = max(g for g in range(1, base.norm_groups + 1) if all(c % g == 0 for c in channels))
    narrow = RegressionConfig(channels=tuple(channels), attention=base.attention, layers_per_block=base.layers_per_block,
                              head_dim=base.head_dim, norm_groups=groups)
    torch.manual_seed(seed)
    light = AlignedPrior(narrow, latents.shape[1])
    start = time.perf_counter()
    targets = answers(full, latents)
    train, test = slice(0, len(latents) - holdout), slice(len(latents) - holdout, None)
    opt = torch.optim.AdamW(light.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, min(100, steps // 20))             # linear warm-up, then cosine to zero
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: (k + 1) / warm if k < warm else 0.5 * (1 + math.cos(math.pi * (k - warm) / max(1, steps - warm))))
    gen = torch.Generator().manual_seed(seed)
    n = len(latents) - holdout
    curve = []
    from tqdm.auto import tqdm

    bar = tqdm(range(steps), desc="light prior", disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (batch,), generator=gen)
        loss = F.l1_loss(light(latents[train][idx]), targets[train][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            value = loss.item()
            curve.append({"step": step + 1, "l1": round(value, 5)})
            bar.set_postfix(l1=f"{value:.4f}")
    light.eval().requires_grad_(False)
    held = answers(light, latents[test])
    one = latents[:1]
    record = {
        "channels": list(channels), "from_channels": list(base.channels), "steps": steps, "batch": batch, "lr": lr,
        "seed": seed, "train_latents": n, "holdout": holdout, "seconds": round(time.perf_counter() - start, 1),
        "relative_l1_holdout": round(relative_l1(held, targets[test]), 4),
        "gflop": {"full": round(counted_flops(full, one) / 1e9, 3), "light": round(counted_flops(light, one) / 1e9, 3)},
        "parameters_m": {"full": round(sum(p.numel() for p in full.parameters()) / 1e6, 3),
                         "light": round(sum(p.numel() for p in light.parameters()) / 1e6, 3)},
        "curve": curve,
    }
    out = IGRModel(model.config.replace(prior={"channels": tuple(channels), "norm_groups": groups}))
    out.transplant(model)                      # every other component as it was; the prior is the new one
    out.prior.load_state_dict(light.state_dict())
    return out.eval(), record


def write_meta(record: dict[str, Any], source: str | Path, cache: str | Path) -> str:
    return json.dumps(dict(record, source_model=str(source), cache=str(cache)), indent=1) + "\n"
