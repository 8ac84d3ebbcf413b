"""Training stage configs: one dataclass, a preset per (stage, model preset)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, _from_dict

STAGES = ("vae", "decoder", "encoder", "coarse", "hqft", "baseline")
PRESETS = ("tiny", "small", "sd15")
DATA_SETS = ("vitonhd", "dresscode")


@dataclass(frozen=True)
class StageConfig:
    """One stage of the coarse-to-fine recipe (DESIGN.md §2)."""
    stage: str = "coarse"
    steps: int = 10_000
    batch: int = 16
    lr: float = 2e-4
    lr_scale: dict[str, float] | None = None  # {regex: factor}: trainable tensors whose name (e.g.
    #   "denoiser.unet.down_blocks.0.attentions.0.proj_out.weight") matches train at lr·factor; first match wins
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema: float = 0.999                        # 0 keeps no EMA
    size: tuple[int, int] = (256, 192)        # training resolution (H, W)
    low_res: tuple[int, int] = (128, 96)      # coarse: the first `low_res_fraction` of steps run here
    low_res_fraction: float = 0.0
    crop: tuple[int, int] | None = None       # vae: random crops of this size from `size` images
    timestep_power: float = 1.0               # t = T·(1 - u^p): p > 1 biases to high noise, p < 1 to low noise
    min_quality: float | None = None          # hqft: the high-quality subset
    cache: str | None = None                  # coarse/hqft/baseline: a latent cache folder (python -m igr.train.cache)
    kl_weight: float = 1e-6                   # vae
    edge_weight: float = 0.5                  # decoder: L1 of neighbour differences (edges, print) beside the L1
    mixed_precision: str = "no"               # no | bf16 (autocast)
    grad_accum: int = 1                       # micro-batches per optimizer step: global batch = batch·processes·this
    gradient_checkpointing: bool = False      # recompute GarmNet's and the denoiser's blocks in backward (memory)
    data: str | None = None                   # None: SynthGarment; "vitonhd:ROOT" or "dresscode:ROOT": its train pairs
    subset: str | None = None                 # hqft on a real data set: a file naming the high-quality pairs
    seed: int = 0
    workers: int = 1                          # data-generating processes
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 250
    eval_every: int = 1000                    # val SSIM / PSNR in the log (diffusion and baseline stages)
    eval_n: int = 16

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r} (one of {', '.join(STAGES)})")
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if not isinstance(self.grad_accum, int) or self.grad_accum < 1:
            raise ConfigError(f"grad_accum must be a positive integer, got {self.grad_accum!r}")
        for pattern, factor in (self.lr_scale or {}).items():
            try:
                re.compile(pattern)
            except (re.error, TypeError) as e:
                raise ConfigError(f"lr_scale: {pattern!r} is not a regular expression ({e})") from None
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
                raise ConfigError(f"lr_scale: the factor of {pattern!r} must be a positive number, got {factor!r}")
        if self.data is not None and self.data.partition(":")[0] not in DATA_SETS:
            raise ConfigError(f"data must be KIND:ROOT with KIND one of {', '.join(DATA_SETS)}, got {self.data!r}")

    def size_at(self, step: int) -> tuple[int, int]:
        """Training resolution at `step` (coarse runs mostly at `low_res`)."""
        return self.low_res if step < self.low_res_fraction * self.steps else self.size

    @classmethod
    def preset(cls, stage: str, preset: str = "small", **changes: Any) -> StageConfig:
        base = {
            "vae": dict(stage="vae", steps=3000, batch=8, lr=3e-4, ema=0.0, crop=(128, 96), sample_every=500),
            # the VAE's decoder alone, on garments, from a trained model (--init): latents and encoder unchanged
            "decoder": dict(stage="decoder", steps=4000, batch=8, lr=1e-4, warmup=100, ema=0.0, crop=(128, 96),
                            sample_every=500),
            "encoder": dict(stage="encoder", steps=2000, batch=64, lr=3e-4, ema=0.0, size=(128, 96)),
            "coarse": dict(stage="coarse", steps=10_000, lr=2e-4, low_res_fraction=0.8, timestep_power=2.0),
            "hqft": dict(stage="hqft", steps=3000, lr=5e-5, warmup=100, timestep_power=0.5, min_quality=0.55),
            # the regression baseline gets the teacher's diffusion budget: coarse + hqft steps, same sizes
            "baseline": dict(stage="baseline", steps=13_000, lr=2e-4, low_res_fraction=8000 / 13_000),
        }
        if stage not in base:
            raise ConfigError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})")
        cfg = dict(base[stage])
        if preset == "tiny":
            cfg.update(steps=4, batch=2, warmup=1, size=(96, 64), low_res=(64, 32), workers=0,
                       log_every=1, sample_every=0, checkpoint_every=2, eval_every=0, eval_n=2)
            if stage in ("vae", "decoder"):
                cfg.update(crop=(32, 24))
        elif preset == "sd15":
            if stage not in ("coarse", "hqft"):
                raise ConfigError(f"the sd15 preset starts from a pretrained Stable Diffusion folder (--pretrained): "
                                  f"its stages are coarse and hqft, not {stage}")
            # paper scale (docs/paper-scale.md): full size from the first step, 4 pairs per GPU, bf16, checkpointing;
            # fine-tuning learning rates (the UNets are pretrained); our defaults, not figures from the paper
            cfg.update(size=(512, 384), low_res_fraction=0.0, batch=4, mixed_precision="bf16",
                       gradient_checkpointing=True, workers=4, warmup=500, sample_every=1000, checkpoint_every=1000,
                       eval_every=2000, eval_n=32)
            cfg.update(dict(coarse=dict(steps=20_000, lr=2e-5), hqft=dict(steps=5000, lr=5e-6, warmup=200))[stage])
        elif preset != "small":
            raise ConfigError(f"unknown preset {preset!r} (one of {', '.join(PRESETS)})")
        cfg.update(changes)
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageConfig:
        return _from_dict(cls, data, "stage config")
