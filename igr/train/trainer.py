"""One trainer for every stage: accelerate, AdamW, EMA, gradient clipping, atomic checkpoints, exact resume.

Exact resume holds because every random draw comes from state that the checkpoint saves: the data
are a pure function of (step, row) (SynthGarment items are functions of their index), noise,
timesteps and dropout come from one CPU `torch.Generator`, and the learning rate is a function of
the step. A run of 2N steps and a run of N steps + resume + N steps give the same weights, bit for bit.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import IGRConfig
from ..data import SynthGarmentDataset
from ..files import atomic_file, atomic_folder
from ..model import IGRModel, Rows
from .cache import LatentCache, frozen_digests
from .config import StageConfig

CHECKPOINT = "checkpoint"
# stage-config fields a resumed run may change: bookkeeping only, never the schedule or the data
RESUME_MAY_CHANGE = frozenset({"workers", "log_every", "sample_every", "checkpoint_every", "eval_every", "eval_n",
                               "gradient_checkpointing"})    # memory for time: the same arithmetic
FINAL = "final"
LOG = "log.jsonl"


# -- data ---------------------------------------------------------------------------------------
class StageData(Dataset):
    """Training rows addressed by (step, row): a pure function of the address, whatever the worker."""

    def __init__(self, cfg: StageConfig, *, rank: int = 0, world: int = 1,
                 expect: dict[str, str] | None = None) -> None:
        self.cfg, self.rank, self.world, self.expect = cfg, rank, world, expect
        self._sets: dict[tuple[int, int], SynthGarmentDataset | LatentCache] = {}
        if cfg.cache is not None:       # fail now, not in a worker: every size the run will need
            for size in {cfg.size_at(0), cfg.size_at(cfg.steps - 1)}:
                self._source(size)

    def _source(self, size: tuple[int, int]) -> SynthGarmentDataset | LatentCache:
        if size not in self._sets:
            if self.cfg.cache is not None:
                self._sets[size] = LatentCache(self.cfg.cache, size, min_quality=self.cfg.min_quality,
                                               expect=self.expect)
            elif self.cfg.data is not None:
                from ..data.real import training_pairs

                self._sets[size] = training_pairs(self.cfg.data, size, subset=self.cfg.subset,
                                                  min_quality=self.cfg.min_quality)
            else:
                self._sets[size] = SynthGarmentDataset("train", size=size, min_quality=self.cfg.min_quality)
        return self._sets[size]

    def __len__(self) -> int:      # addressed by (step, row) tuples through StepBatches
        return self.cfg.steps * self.cfg.batch * self.cfg.grad_accum

    def __getitem__(self, address: tuple[int, int]) -> dict:
        """Row `row` of this process's `grad_accum` micro-batches of `step`: global row
        (micro·world + rank)·batch + r of the step, so any split of a global batch reads the same pairs."""
        step, row = address
        micro, row = divmod(row, self.cfg.batch)
        source = self._source(self.cfg.size_at(step))
        index = ((step * self.cfg.grad_accum + micro) * self.world + self.rank) * self.cfg.batch + row
        if isinstance(source, LatentCache):
            return source.item(index, self.cfg.seed)
        item = source[index % len(source)]
        if self.cfg.crop is not None:
            item = _crop(item, self.cfg.crop, np.random.default_rng([self.cfg.seed, index]))
        return {k: item[k] for k in ("person", "garment")}


def _crop(item: dict, crop: tuple[int, int], rng: np.random.Generator) -> dict:
    h, w = crop
    H, W = item["person"].shape[-2:]
    y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    return {k: (v[..., y:y + h, x:x + w] if torch.is_tensor(v) else v) for k, v in item.items()}


class StepBatches(Sampler):
    """Yields the (step, row) addresses of every (micro-)batch from `start` on: `grad_accum` batches a step."""

    def __init__(self, cfg: StageConfig, start: int) -> None:
        self.cfg, self.start = cfg, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.cfg.batch
        for step in range(self.start, self.cfg.steps):
            for micro in range(self.cfg.grad_accum):
                yield [(step, micro * b + row) for row in range(b)]

    def __len__(self) -> int:
        return max(0, self.cfg.steps - self.start) * self.cfg.grad_accum


# -- what each stage trains ---------------------------------------------------------------------
def trainable_modules(model: IGRModel, stage: str) -> list[nn.Module]:
    """The modules a stage updates; everything else stays frozen."""
    if stage == "vae":
        return [model.vae]
    if stage == "decoder":                     # what turns a latent into pixels; the encoder (the latent space) stays
        return [model.vae.post_quant_conv, model.vae.decoder]
    if stage == "encoder":
        backbone = model.image_encoder.cfg.backbone
        if backbone != "clip":
            raise ValueError(f"the encoder stage pretrains a CLIP tower contrastively; this model's tower is "
                             f"{backbone}, pretrained and frozen: skip the encoder stage (start the coarse stage "
                             f"from the VAE stage's model with --model-set encoder.backbone={backbone})")
        return [model.image_encoder.clip]
    if stage == "baseline":
        return [model.unet]
    # diffusion stages: both extractors' trainable parts, the denoiser and the aligned prior; VAE and tower frozen
    prior = [model.prior] if model.prior is not None else []
    return [model.garmnet, model.denoiser, *model.image_encoder.projection(), *prior]


def trainable_params(model: IGRModel, stage: str) -> list[nn.Parameter]:
    """The parameters of `trainable_modules`, in their order (the optimizer's, the EMA's, a checkpoint's)."""
    return [p for m in trainable_modules(model, stage) for p in m.parameters()]


def param_groups(model: nn.Module, params: list[nn.Parameter], scales: dict[str, float] | None) -> list[dict]:
    """The optimizer's groups over `params`: one group, or with `scales` ({regex: factor}, `StageConfig.lr_scale`)
    one per factor, each tensor in the first whose pattern its name in `model` matches (`re.search`), the rest in
    a group of factor 1. Each group records its "lr_scale"; a pattern that matches no trainable tensor is refused."""
    if not scales:
        return [{"params": params}]
    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[float, list[nn.Parameter]] = {}
    used = set()
    for p in params:
        name = names.get(id(p), "")
        hit = next((pat for pat in scales if re.search(pat, name)), None)
        used.add(hit)
        groups.setdefault(1.0 if hit is None else float(scales[hit]), []).append(p)
    unused = [pat for pat in scales if pat not in used]
    if unused:
        raise ValueError(f"lr_scale: no trainable tensor's name matches {', '.join(map(repr, unused))} "
                         f"(names look like {next(iter(names.values()), '?')!r})")
    return [{"params": ps, "lr_scale": f} for f, ps in sorted(groups.items())]


class StageLoss(nn.Module):
    """forward(batch) -> (loss, metrics) for one stage; the module accelerate wraps (DDP needs a forward)."""

    def __init__(self, model: IGRModel, cfg: StageConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        # CLIP's learnable temperature (Radford et al. 2021), for the contrastive encoder stage
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)), requires_grad=cfg.stage == "encoder")

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
                timesteps: torch.Tensor | None = None, rows: Rows | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """`batch` holds images (person, garment) or, from a latent cache, frozen features; `rows` places it in
        the step's global batch (random draws are made for all of it and sliced)."""
        stage = self.cfg.stage
        if "person_latent" in batch:
            if stage == "baseline":
                return self.model.loss_from(batch["person_latent"], batch["garment_latent"]), {}
            parts = {}
            loss = self.model.diffusion_loss_from(batch["person_latent"], batch["person_embed"],
                                                  batch["garment_latent"], timesteps=timesteps,
                                                  generator=generator, parts=parts, rows=rows,
                                                  warp=batch.get("warp"))
            return loss, parts
        person, garment = batch["person"], batch["garment"]
        if stage == "vae":
            return self._vae(torch.cat([person, garment]), generator, rows)
        if stage == "decoder":
            return self._decoder(garment)
        if stage == "encoder":
            return self._contrastive(person, garment)
        if stage == "baseline":
            return self.model.loss(person, garment), {}
        parts = {}
        loss = self.model.diffusion_loss(person, garment, timesteps=timesteps, generator=generator, parts=parts,
                                         rows=rows)
        return loss, parts

    def _vae(self, x: torch.Tensor, generator: torch.Generator,
             rows: Rows | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 reconstruction + a light KL (Kingma & Welling 2014; Rombach et al. 2022)."""
        posterior = self.model.vae.encode(x).latent_dist
        shape = posterior.mean.shape                                          # (2B, 4, h, w): persons, garments
        if rows is None or rows.total * 2 == shape[0]:
            eps = torch.randn(shape, generator=generator)
        else:                                  # draws for the global [persons; garments], this batch's rows of each
            b, n, lo = shape[0] // 2, rows.total, rows.start
            every = torch.randn((2 * n, *shape[1:]), generator=generator)
            eps = torch.cat([every[lo:lo + b], every[n + lo:n + lo + b]])
        eps = eps.to(x.device, x.dtype)
        z = posterior.mean + posterior.std * eps                              # (2B, 4, h, w)
        rec = self.model.vae.decode(z).sample
        l1 = F.l1_loss(rec, x)
        kl = posterior.kl().mean()
        return l1 + self.cfg.kl_weight * kl, {"l1": l1.item(), "kl": kl.item(), "psnr": _psnr(rec, x)}

    def _decoder(self, garment: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The frozen encoder's latent (its mean: what the denoiser learns to produce) decoded: L1 + edge_weight ·
        L1 of neighbour differences to the garment."""
        with torch.no_grad():
            z = self.model.vae.encode(garment).latent_dist.mode()
        rec = self.model.vae.decode(z).sample
        l1, edge = F.l1_loss(rec, garment), edge_l1(rec, garment)
        return l1 + self.cfg.edge_weight * edge, {"l1": l1.item(), "edge": edge.item(), "psnr": _psnr(rec, garment)}

    def _contrastive(self, person: torch.Tensor, garment: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Symmetric InfoNCE between a person and its own garment, one tower for both (CLIP-style)."""
        enc = self.model.image_encoder
        p = F.normalize(enc.embed(person), dim=-1)                            # (B, E)
        g = F.normalize(enc.embed(garment), dim=-1)                           # (B, E)
        logits = self.logit_scale.exp().clamp(max=100) * p @ g.T             # (B, B)
        labels = torch.arange(len(p), device=p.device)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        return loss, {"top1": (logits.argmax(1) == labels).float().mean().item()}


def _psnr(rec: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR (dB) of a reconstruction in [-1, 1] (clamped), for the log."""
    mse = F.mse_loss(rec.detach().clamp(-1, 1), x).item()
    return 10 * math.log10(4 / max(mse, 1e-10))


def edge_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and between vertical neighbour differences: edges and print, not flat colour."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]      # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]      # noqa: E731
    return (dx(pred) - dx(target)).abs().mean() + (dy(pred) - dy(target)).abs().mean()


def biased_timesteps(n: int, cfg: StageConfig, total: int, generator: torch.Generator) -> torch.Tensor:
    """t = T·(1 - u^p), u ~ U(0, 1): p > 1 leans to high noise (coarse), p < 1 to low noise (hqft)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return ((1 - u ** cfg.timestep_power) * total).long().clamp(0, total - 1)


def learning_rate(cfg: StageConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% (a pure function of the step)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


# -- the trainer --------------------------------------------------------------------------------
@dataclass
class TrainResult:
    step: int
    final: Path | None
    last_loss: float


class Trainer:
    """Runs one stage from `start` (0, or the checkpoint's step) to `cfg.steps`."""

    def __init__(self, model: IGRModel, cfg: StageConfig, out: str | Path, *, accelerator=None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg, self.out = cfg, Path(out)
        launched = int(os.environ.get("WORLD_SIZE", "1"))          # set by accelerate launch and torchrun
        # accelerate starts a process group on CPUs only when asked (cpu=True: gloo); without it each launched
        # process would train alone, N copies writing one run folder
        self.acc = accelerator or Accelerator(
            mixed_precision=cfg.mixed_precision, cpu=launched > 1 and not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.fsdp = self.acc.distributed_type.value == "FSDP"
        _check_sharding(self.acc, cfg, asked=accelerator is None)
        if accelerator is None and self.acc.num_processes != launched:
            raise RuntimeError(f"launched as {launched} processes, but accelerate runs {self.acc.num_processes}: "
                               f"check the launcher's configuration (docs/paper-scale.md)")
        self.model = model.train()
        for p in model.parameters():
            p.requires_grad_(False)
        self.params = trainable_params(model, cfg.stage)
        for p in self.params:
            p.requires_grad_(True)
        self.loss = StageLoss(model, cfg)
        extra = [self.loss.logit_scale] if cfg.stage == "encoder" else []
        self.optimizer = torch.optim.AdamW(param_groups(model, self.params + extra, cfg.lr_scale), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.keeps_ema = cfg.ema > 0
        # FSDP: the EMA is kept shard by shard beside the sharded parameters (`_ema_shards`, after prepare); rank 0
        # keeps one unsharded copy (`_host`) that gathered weights are written from, sampled and validated with
        self.ema = _ema_copy(model) if self.keeps_ema and not self.fsdp else None
        self._host = _ema_copy(model) if self.fsdp and self.acc.is_main_process else None
        self._ema_shards: list[torch.Tensor] | None = None
        if cfg.gradient_checkpointing:
            if not isinstance(model, IGRModel):
                raise ValueError(f"gradient_checkpointing applies to IGR models (the diffusion stages), not {cfg.stage}")
            model.enable_gradient_checkpointing()         # after the EMA copy: the copy never runs backward
        # one random stream, alike in every process: each draws for the global batch and keeps its rows (`Rows`)
        self.generator = torch.Generator().manual_seed(cfg.seed * 1000)
        self.step = 0
        self.rewarm_from: int | None = None
        self.compact_to: tuple[Path, Path | None] | None = None    # (folder, share_with): save_compact at checkpoints
        # under FSDP, the frozen parts' digests that a latent cache is checked against, read while every tensor is
        # whole (FSDP shards them too); otherwise `run` reads them where they are, after any resume
        self._frozen = frozen_digests(model) if cfg.cache is not None and self.fsdp else None
        # fully_shard cannot shard 0-dim parameters (the fusion scales, CLIP's temperature): under FSDP every process
        # keeps them whole (FSDP's ignored parameters) and the trainer averages their gradients itself
        self._whole = [p for p in self.loss.parameters() if p.dim() == 0] if self.fsdp else []
        if self._whole:
            with torch.no_grad():
                for p in self._whole:
                    p.data = p.data.to(self.acc.device)
            self.acc.state.fsdp_plugin.ignored_modules = [nn.ParameterList(self._whole)]
        if self.fsdp:
            # bf16 under FSDP is accelerate's autocast, as in DDP and 1 process: weights, all-gathers and the
            # gradient reduce-scatter stay fp32. accelerate's own FSDP2 policy for bf16 (bf16 parameters, bf16
            # reduction, inputs cast to bf16) would also run the loss, the noise and the frozen tower's input resize
            # in bf16 (on CPUs that resize has no bf16 kernel at all), and train other arithmetic than DDP does.
            from torch.distributed.fsdp import MixedPrecisionPolicy

            policy, self.acc.state.fsdp_plugin.mixed_precision_policy = (
                self.acc.state.fsdp_plugin.mixed_precision_policy, MixedPrecisionPolicy())
        try:
            self.wrapped, self.optimizer = self.acc.prepare(self.loss, self.optimizer)
        finally:
            if self.fsdp:                 # read by prepare alone; the plugin may prepare another trainer's model
                self.acc.state.fsdp_plugin.ignored_modules = None
                self.acc.state.fsdp_plugin.mixed_precision_policy = policy
        if self.ema is not None:          # prepare moved the model to the accelerator's device; the EMA follows it
            self.ema.to(self.acc.device)
        if self.fsdp:         # fully_shard swapped the parameters for DTensors (accelerate swapped the optimizer's)
            self.params = trainable_params(model, cfg.stage)
            if self.keeps_ema:
                self._ema_shards = [p.detach().clone() for p in self.params]

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """OUT/checkpoint/: model/, ema/, state.safetensors (optimizer, RNG), trainer.json; atomic."""
        dest = self.out / CHECKPOINT
        main = self.acc.is_main_process
        if not main and not self.fsdp:
            return dest
        # under FSDP every process takes part (each gathers its shards), rank 0 alone writes
        with atomic_folder(dest) if main else contextlib.nullcontext() as tmp:
            self._write_weights("model", tmp and tmp / "model")
            if self.keeps_ema:
                self._write_weights("ema", tmp and tmp / "ema")
            tensors = optimizer_tensors(self.optimizer, prefix="opt.", keep=main)
            logit_scale = _full(self.loss.logit_scale)
            if not main:
                return dest
            opt = self.optimizer.state_dict()
            tensors["rng.generator"] = self.generator.get_state()
            tensors["rng.torch"] = torch.get_rng_state()
            tensors["logit_scale"] = logit_scale.detach().clone()
            save_file(tensors, str(tmp / "state.safetensors"))
            (tmp / "trainer.json").write_text(json.dumps(
                {"step": self.step, "stage": self.cfg.to_dict(), "param_groups": opt["param_groups"],
                 "processes": self.acc.num_processes}, indent=1))
        return dest

    def save_compact(self, dest: str | Path, *, share_with: str | Path | None = None) -> Path:
        """A checkpoint small enough to commit: the EMA weights in fp16 (the raw weights where a stage keeps no
        EMA; components equal to `share_with`'s files linked, not copied), the step and the stage config; no
        optimizer state. `load_compact` resumes it, both the weights and the EMA from it."""
        dest = Path(dest)
        main = self.acc.is_main_process
        if not main and not self.fsdp:
            return dest
        with atomic_folder(dest) if main else contextlib.nullcontext() as tmp:
            kind = "ema" if self.keeps_ema else "model"
            self._write_weights(kind, tmp and tmp / kind, dtype=torch.float16, share_with=share_with)
            if not main:
                return dest
            (tmp / "trainer.json").write_text(json.dumps(
                {"step": self.step, "stage": self.cfg.to_dict(), "compact": True,
                 "processes": self.acc.num_processes}, indent=1) + "\n")
        return dest

    def _load_weights(self, folder: Path) -> dict:
        """The checks and weights both resume paths share: same stage and schedule, same garment paths. A compact
        checkpoint may hold only one of model/ and ema/: then both start from it."""
        meta = json.loads((folder / "trainer.json").read_text())
        if meta["stage"]["stage"] != self.cfg.stage:
            raise ValueError(f"{folder} is a {meta['stage']['stage']!r} checkpoint, this run trains {self.cfg.stage!r}")
        saved, now = StageConfig.from_dict(meta["stage"]).to_dict(), self.cfg.to_dict()
        # batch and grad_accum may change where the global batch (processes x batch x grad_accum) does not: another
        # split of it reads the same pairs and makes the same random draws
        split = {"batch", "grad_accum"}
        changed = [f"{k}: {saved.get(k)} -> {now[k]}" for k in sorted(now)
                   if k not in RESUME_MAY_CHANGE | split and saved.get(k) != now[k]]
        before = saved["batch"] * saved["grad_accum"] * meta.get("processes", 1)
        after = now["batch"] * now["grad_accum"] * self.acc.num_processes
        if before != after:
            changed.append(f"global batch (processes x batch x grad_accum): {before} -> {after}")
        if changed:
            raise ValueError(f"{folder} was trained with other settings ({', '.join(changed)}); "
                             "resuming would change the schedule mid-run: start a new run instead")
        load = type(self.model).from_pretrained
        weights = folder / "model" if (folder / "model").is_dir() else folder / "ema"
        saved_model = load(weights)
        paths = lambda c: (getattr(c, "use_low", True), getattr(c, "use_high", True),
                           getattr(c, "aligned_prior", False), getattr(c, "zero_snr", False),
                           getattr(getattr(c, "encoder", None), "backbone", "clip"))
        if paths(saved_model.config) != paths(self.model.config):
            raise ValueError(f"{folder} was trained with other garment paths: (low, high, aligned_prior, zero_snr, "
                             f"backbone) = "
                             f"{paths(saved_model.config)}, this run has {paths(self.model.config)}")
        _copy_weights(saved_model, self.model)
        if self.keeps_ema:
            saved_ema = load(folder / "ema") if (folder / "ema").is_dir() else saved_model
            if self.ema is not None:
                _copy_weights(saved_ema, self.ema)
            if self._ema_shards is not None:
                saved = trainable_params(saved_ema, self.cfg.stage)
                for e, full in zip(self._ema_shards, saved, strict=True):
                    _copy_into(e, full)
        if self._host is not None:       # its frozen parts too are the checkpoint's
            _copy_weights(saved_ema if self.keeps_ema else saved_model, self._host)
        return meta

    def load_compact(self, folder: str | Path) -> None:
        """Resume from `save_compact`: weights, EMA, step, so the learning rate and the data go on where they
        were. Not bit-exact: AdamW's moments restart (under a re-warm-up of `warmup` steps) and the random
        streams are re-seeded from (seed, step)."""
        folder = Path(folder)
        meta = self._load_weights(folder)
        if not meta.get("compact"):
            raise ValueError(f"{folder} is a full checkpoint: resume it with load_checkpoint (--resume)")
        self.step = self.rewarm_from = int(meta["step"])
        self.generator.manual_seed(self.cfg.seed * 1000 + 7919 * self.step)
        torch.manual_seed(self.cfg.seed + 7919 * self.step)
        if self.acc.is_main_process:
            truncate_log(self.out / LOG, self.step)

    def load_checkpoint(self, folder: str | Path) -> None:
        """Resume exactly where `save_checkpoint` left off."""
        folder = Path(folder)
        meta = self._load_weights(folder)
        if meta.get("compact"):
            raise ValueError(f"{folder} is a compact checkpoint (no optimizer state): resume it with load_compact")
        tensors = load_file(str(folder / "state.safetensors"))
        if self.fsdp:                    # whole moments, as every layout writes them: this process's shards of them
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            tensors = {k: _shard_like(v, params[int(k[4:].partition(".")[0])]) if k.startswith("opt.") else v
                       for k, v in tensors.items()}
        load_optimizer_tensors(self.optimizer, tensors, meta["param_groups"], prefix="opt.")
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        with torch.no_grad():
            _copy_into(self.loss.logit_scale, tensors["logit_scale"])
        self.step = int(meta["step"])
        if self.acc.is_main_process:
            truncate_log(self.out / LOG, self.step)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, until: int | None = None, progress: bool = True) -> TrainResult:
        """Train to `cfg.steps` (or stop after step `until`, e.g. to test resume); write OUT/final at the end."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        main, world, rank = self.acc.is_main_process, self.acc.num_processes, self.acc.process_index
        self.out.mkdir(parents=True, exist_ok=True)
        if self.step == 0 and main:
            truncate_log(self.out / LOG, 0)      # a fresh start: no rows of an earlier, abandoned attempt
        # a resumed checkpoint may carry other frozen weights than the init: read them again where they are whole
        expect = None if cfg.cache is None else self._frozen if self.fsdp else frozen_digests(self.model)
        workers = 0 if cfg.cache is not None else cfg.workers       # cached rows are a lookup: no worker needed
        data = DataLoader(StageData(cfg, rank=rank, world=world, expect=expect),
                          batch_sampler=StepBatches(cfg, self.step), num_workers=workers,
                          prefetch_factor=4 if workers else None)
        batches = iter(data)
        k, b = cfg.grad_accum, cfg.batch
        total = self.model.config.train_timesteps
        last = float("nan")
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.stage}", disable=not progress
                   or not self.acc.is_main_process)
        t_last = time.perf_counter()
        with open(self.out / LOG, "a") if main else contextlib.nullcontext() as log:   # rank 0 alone writes
            while self.step < cfg.steps:
                lr = learning_rate(cfg, self.step)
                if self.rewarm_from is not None:       # after a compact resume: AdamW's moments start afresh
                    lr *= min(1.0, (self.step - self.rewarm_from + 1) / max(1, cfg.warmup))
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                start = self.generator.get_state() if k > 1 else None
                losses = []
                for micro in range(k):
                    batch = {name: v.to(self.acc.device) for name, v in next(batches).items()}
                    if start is not None:              # every micro-batch slices the same global draws
                        self.generator.set_state(start)
                    rows = Rows(start=(micro * world + rank) * b, total=k * world * b)
                    t = biased_timesteps(rows.total, cfg, total, self.generator)[rows.start:rows.start + b] \
                        if cfg.stage in ("coarse", "hqft") else None
                    # gradients are reduced once per step, on the last micro-batch: DDP all-reduces them, FSDP2
                    # reduce-scatters the unsharded gradients it accumulated (the 0-dim ones: _sharded_clip_grad_norm)
                    with self.acc.no_sync(self.wrapped) if micro < k - 1 else contextlib.nullcontext():
                        with self.acc.autocast():
                            loss, metrics = self.wrapped(batch, self.generator, t, rows)
                        self.acc.backward(loss / k if k > 1 else loss)
                    losses.append(loss.detach())
                if self.fsdp:
                    grad_norm = self._sharded_clip_grad_norm(cfg.grad_clip)
                else:
                    grad_norm = self.acc.clip_grad_norm_(self.params, cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.keeps_ema:
                    decay = ema_decay(cfg.ema, self.step)
                    if self._ema_shards is not None:       # FSDP: each process its own shards, no communication
                        with torch.no_grad():
                            for e, m in zip(self._ema_shards, self.params):
                                _local(e).lerp_(_local(m), 1 - decay)
                    else:
                        _ema_update(self.ema, self.model, cfg.stage, decay)
                self.step += 1
                loss = losses[0] if k == 1 else torch.stack(losses).mean()
                if world > 1:                          # the global batch's mean, as one process at that batch
                    loss = self.acc.reduce(loss, "mean")
                last = loss.item()
                bar.update(1)
                bar.set_postfix(loss=f"{last:.4f}")
                if self.step % cfg.log_every == 0 and main:
                    now = time.perf_counter()
                    row = {"step": self.step, "loss": last, "lr": lr, "grad_norm": float(grad_norm),
                           "size": list(cfg.size_at(self.step - 1)), "sec_per_step": (now - t_last) / cfg.log_every,
                           **metrics}
                    t_last = now
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if self.fsdp and ((cfg.eval_every and self.step % cfg.eval_every == 0)
                                  or (cfg.sample_every and self.step % cfg.sample_every == 0)):
                    self._view(self._result_kind())  # every process gathers; rank 0 validates and samples
                if cfg.eval_every and self.step % cfg.eval_every == 0 and main:
                    try:
                        row = self.validate()
                    except Exception as e:      # a broken metric costs a log row, not hours of training
                        row = {"val_error": f"{type(e).__name__}: {e}"}
                        self.model.train()
                    log.write(json.dumps({"step": self.step, **row}) + "\n")
                    log.flush()
                if cfg.sample_every and self.step % cfg.sample_every == 0 and main:
                    self.write_samples()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._checkpoints()
                    if main:
                        plot_log(self.out / LOG, self.out / "loss.png")
                if until is not None and self.step >= until:
                    break
        bar.close()
        final = None
        if self.step >= cfg.steps:
            self.save_checkpoint()
            final = self.write_final()
            self.acc.wait_for_everyone()
        elif until is not None and self.step >= until and not (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
            self._checkpoints()                   # stopped early on purpose: the checkpoint holds that step
        return TrainResult(self.step, final, last)

    @torch.no_grad()
    def _sharded_clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """FSDP: average the whole (0-dim) parameters' gradients across processes (FSDP reduces only the shards),
        then clip as torch.nn.utils.clip_grad_norm_ does, over shards and whole parameters together."""
        import torch.distributed as dist

        world = self.acc.num_processes
        for p in self._whole:                      # every process reduces every one (a collective), used or not
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(world)
        grads = [p.grad for p in self.params if p.grad is not None]
        sharded = [g.to_local() for g in grads if _is_sharded(g)]
        whole = [g for g in grads if not _is_sharded(g)]
        square = torch.zeros((), device=self.acc.device)
        for g in sharded:
            square += g.float().pow(2).sum()
        dist.all_reduce(square)
        for g in whole:
            square += g.float().pow(2).sum()
        total = square.sqrt()
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in sharded + whole:
            g.mul_(coef.to(g.dtype))
        return total

    def _checkpoints(self) -> None:
        """The full checkpoint, and the compact one where `compact_to` asks for it (rank 0 writes; every process
        waits until it is in place)."""
        self.save_checkpoint()
        if self.compact_to is not None:
            self.save_compact(self.compact_to[0], share_with=self.compact_to[1])
        self.acc.wait_for_everyone()

    def result_model(self) -> IGRModel:
        """The weights a stage hands on: EMA where kept; the VAE stage also sets the latent scale. Under FSDP: rank 0's
        unsharded copy, holding what the last `_view` gathered."""
        if self.fsdp:
            return self._host
        return self.ema if self.ema is not None else self.model

    def _result_kind(self) -> str:
        return "ema" if self.keeps_ema else "model"

    def _view(self, kind: str) -> IGRModel | None:
        """FSDP: gather the sharded "model" or "ema" weights into rank 0's unsharded copy (collective: every process
        calls it, in the same order); the copy on rank 0, None elsewhere."""
        if kind == "model":
            names, tensors = zip(*self.model.state_dict().items())
        else:
            names, tensors = None, self._ema_shards
        if self._host is None:                     # gather (a collective) and let go: rank 0 alone keeps a copy
            for t in tensors:
                _full(t)
            return None
        if names is not None:
            host = self._host.state_dict()
            if list(host) != list(names):
                raise RuntimeError("the sharded model's state dict does not name what the unsharded copy's does")
            targets = [host[name] for name in names]
        else:
            targets = trainable_params(self._host, self.cfg.stage)
        if len(targets) != len(tensors):
            raise RuntimeError(f"{len(tensors)} sharded tensors for {len(targets)} in the unsharded copy")
        with torch.no_grad():
            for target, t in zip(targets, tensors):   # one tensor gathered at a time, copied, let go
                target.copy_(_full(t).cpu())
        return self._host

    def _write_weights(self, kind: str, folder: Path | None, **save) -> None:
        """save_pretrained of the raw ("model") or EMA weights into `folder` (rank 0 writes; under FSDP every
        process calls it, to gather its shards)."""
        model = self._view(kind) if self.fsdp else self.model if kind == "model" else self.ema
        if self.acc.is_main_process:
            model.save_pretrained(folder, **save)

    def write_final(self) -> Path | None:
        if self.fsdp:
            self._view(self._result_kind())
        if not self.acc.is_main_process:
            return None
        model = self.result_model()
        if self.cfg.stage == "vae":
            model.config = model.config.replace(vae=dataclasses.replace(
                model.config.vae, scaling_factor=latent_scale(model, self.cfg)))
        if self.cfg.sample_every:
            self.write_samples()
        plot_log(self.out / LOG, self.out / "loss.png")
        return model.save_pretrained(self.out / FINAL)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean val SSIM and PSNR of the EMA weights on `eval_n` val pairs at full size (for learning curves)."""
        from ..eval import split_batches
        from ..metrics import image_metrics
        from ..pipeline import sample

        if self.cfg.stage not in ("coarse", "hqft", "baseline"):
            return {}

        model = self.result_model().eval()
        device = next(model.parameters()).device          # under FSDP rank 0's unsharded copy, kept on the CPU
        per: dict[str, list[torch.Tensor]] = {}
        for person, garment, mask, *_ in split_batches("val", self.cfg.eval_n, self.cfg.size, 8):
            person, garment, mask = (x.to(device) for x in (person, garment, mask))
            pred = model.restore(person) if self.cfg.stage == "baseline" else sample(model, person, seed=0)
            for k, v in image_metrics(pred.cpu(), garment.cpu(), mask.cpu()).items():
                per.setdefault(k, []).append(v)
        self.model.train()
        return {f"val_{k}": float(torch.cat(v).float().mean()) for k, v in per.items()}

    @torch.no_grad()
    def write_samples(self, n: int = 4) -> Path | None:
        """A grid on fixed val persons: reconstructions (vae) or samples of the EMA model (diffusion)."""
        from ..data import generate, seed_for
        from ..images import contact_sheet, save_png, to_tensor, to_uint8
        from ..pipeline import sample

        if self.cfg.stage == "encoder":
            return None
        model = self.result_model().eval()
        device = next(model.parameters()).device          # under FSDP rank 0's unsharded copy, kept on the CPU
        h, w = self.cfg.size
        rows_data = [generate(seed_for("val", i), size=(h, w)) for i in range(n)]
        person = torch.stack([to_tensor(s.person) for s in rows_data]).to(device)
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        if self.cfg.stage in ("vae", "decoder"):
            garment = torch.stack([to_tensor(s.garment) for s in rows_data]).to(device)
            rec_p, rec_g = (to_uint8(model.vae.decode(model.vae.encode(x).latent_dist.mode()).sample)
                            for x in (person, garment))
            rows = [[s.person, rp, s.garment, rg] for s, rp, rg in zip(rows_data, rec_p, rec_g)]
            title = f"{self.cfg.stage} step {self.step}: person | reconstruction | garment | reconstruction"
        elif self.cfg.stage == "baseline":
            out = to_uint8(model.restore(person))
            rows = [[s.person, o, s.garment] for s, o in zip(rows_data, out)]
            title = f"regression baseline step {self.step} (EMA): person | prediction | ground truth"
        else:
            out = to_uint8(sample(model, person, seed=0))
            rows = [[s.person, o, s.garment] for s, o in zip(rows_data, out)]
            title = (f"{self.cfg.stage} step {self.step} (EMA): person | sample ({model.config.sample_steps} "
                     f"{model.config.sampler} steps, CFG {model.config.guidance_scale}) | ground truth")
        save_png(contact_sheet(rows, title=title), path)
        self.model.train()                     # the EMA copy stays in eval mode
        return path


def ema_decay(decay: float, step: int) -> float:
    """The average's decay after optimizer step `step` (from 0): warmed up as (1 + step) / (10 + step), so the
    first steps' weights are not held back by the initial ones, up to `decay`."""
    return min(decay, (1 + step) / (10 + step))


def _ema_copy(model: IGRModel) -> IGRModel:
    ema = copy.deepcopy(model).eval()          # deepcopy gives the copy its own reference banks
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def _ema_update(ema: IGRModel, model: IGRModel, stage: str, decay: float) -> None:
    for e_mod, m_mod in zip(trainable_modules(ema, stage), trainable_modules(model, stage)):
        for e, m in zip(e_mod.parameters(), m_mod.parameters()):
            e.lerp_(m, 1 - decay)


def _copy_weights(src: nn.Module, dst: nn.Module) -> None:
    with torch.no_grad():
        for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
            _copy_into(b, a)


def _is_sharded(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _local(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded (FSDP) tensor, in place; a plain tensor itself."""
    return t.to_local() if _is_sharded(t) else t


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole of a sharded tensor (collective: every process calls it); a plain tensor itself."""
    return t.full_tensor() if _is_sharded(t) else t


def _shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` split as `like` is (every process holds `full`: no communication); unchanged where `like` is not
    sharded or has another shape (AdamW's step count)."""
    if not _is_sharded(like) or full.shape != like.shape:
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements, src_data_rank=None)


@torch.no_grad()
def _copy_into(dst: torch.Tensor, full: torch.Tensor) -> None:
    """dst <- full, where dst may be a shard (FSDP): its part of `full`."""
    if _is_sharded(dst):
        dst.to_local().copy_(_shard_like(full, dst).to_local())
    else:
        dst.copy_(full)


def _check_sharding(acc, cfg: StageConfig, *, asked: bool) -> None:
    """Refuse the sharded layouts the trainer cannot train exactly: DeepSpeed, FSDP1, FSDP2 with CPU offload or
    the plugin's own activation checkpointing, FSDP for the non-diffusion stages."""
    kind = acc.distributed_type.value
    if kind == "DEEPSPEED":
        raise NotImplementedError("DEEPSPEED: not supported by the trainer (its EMA and checkpoints handle FSDP2 "
                                  "shards, not DeepSpeed's); use FSDP2 (configs/accelerate/fsdp.yaml) or DDP "
                                  "(configs/accelerate/8gpu.yaml) (docs/paper-scale.md)")
    if kind != "FSDP":
        if asked and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
            raise NotImplementedError(f"FSDP was asked for, but accelerate runs {kind}: accelerate turns FSDP on for "
                                      "GPUs (and like accelerators) only, not on CPUs (docs/paper-scale.md)")
        return
    plugin = acc.state.fsdp_plugin
    if plugin.fsdp_version != 2:
        raise NotImplementedError(f"FSDP version {plugin.fsdp_version}: the trainer supports FSDP2 only "
                                  "(fsdp_version: 2, as configs/accelerate/fsdp.yaml)")
    from torch.distributed.fsdp import CPUOffloadPolicy

    if isinstance(plugin.cpu_offload, CPUOffloadPolicy):
        raise NotImplementedError("FSDP with fsdp_offload_params: true is not supported by the trainer (untested); "
                                  "set it to false")
    if plugin.ignored_modules is not None:
        raise NotImplementedError("FSDP with fsdp_ignored_modules is not supported: the trainer sets FSDP's ignored "
                                  "parameters itself (the 0-dim ones)")
    if plugin.activation_checkpointing:
        raise NotImplementedError("FSDP with fsdp_activation_checkpointing: true is not supported; set it to false "
                                  "and pass --gradient-checkpointing (the trainer's, which restores the reference "
                                  "banks in recomputation)")
    if cfg.stage not in ("coarse", "hqft"):
        raise NotImplementedError(f"FSDP: supported for the diffusion stages (coarse, hqft), not {cfg.stage!r}; "
                                  "train it with DDP")


@torch.no_grad()
def latent_scale(model: IGRModel, cfg: StageConfig, batches: int = 8) -> float:
    """1 / std of the VAE latents of training garments (Rombach et al. 2022, §G): unit-variance latents."""
    data = StageData(dataclasses.replace(cfg, crop=None))
    zs = []
    for i in range(batches):
        x = torch.stack([data[(cfg.steps + i, r)]["garment"] for r in range(cfg.batch)])
        zs.append(model.vae.encode(x).latent_dist.mode())
    return float(1.0 / torch.cat(zs).std())


def optimizer_tensors(optimizer: torch.optim.Optimizer, *, prefix: str = "",
                      keep: bool = True) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat safetensors entries, PREFIX<param index>.<state name>. Sharded
    (FSDP) state is gathered whole: every process must call it; `keep=False` takes part and returns nothing."""
    out = {}
    for i, s in optimizer.state_dict()["state"].items():
        for k, v in s.items():
            v = v if torch.is_tensor(v) else torch.tensor(v)
            if _is_sharded(v):
                v = _full(v).cpu()                 # one tensor at a time, in the same order in every process
            if keep:
                out[f"{prefix}{i}.{k}"] = v.detach().contiguous()
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           param_groups: list[dict], *, prefix: str = "") -> None:
    """Load what `optimizer_tensors` wrote (entries without PREFIX are skipped) with these param groups."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            i, _, k = key[len(prefix):].partition(".")
            state.setdefault(int(i), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint a run resumes from."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    with atomic_file(path) as tmp:              # a reader sees the old log or the new one
        tmp.write_text("".join(r + "\n" for r in rows))


def plot_log(log: Path, out: Path) -> Path | None:
    """Loss against steps, beside the stage's metric (PSNR for vae, top-1 for encoder, val SSIM otherwise)."""
    if not log.exists():
        return None
    every = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in every if "loss" in r]
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((m for m in ("psnr", "top1") if m in rows[0]), "val_ssim")
    curve = [(r["step"], r[metric]) for r in every if metric in r]
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, axes = plt.subplots(1, 2 if curve else 1, figsize=(10 if curve else 6, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, loss, alpha=0.3, lw=0.8, label="loss")
    ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_yscale("log"), ax.legend(), ax.grid(alpha=0.3)
    if curve:
        axes[0, 1].plot(*zip(*curve), lw=1, marker="." if metric == "val_ssim" else None)
        axes[0, 1].set_xlabel("step"), axes[0, 1].set_ylabel(metric), axes[0, 1].grid(alpha=0.3)
    fig.suptitle(log.parent.name)
    fig.tight_layout()
    with atomic_file(out, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out


def build_model(preset: str, init: str | Path | None, seed: int, *, stage: str = "coarse",
                model_changes: dict | None = None, pretrained: str | Path | None = None):
    """A fresh model of `preset` (seeded) or the previous stage's folder; the baseline takes the VAE from `init`.

    `pretrained`: a Stable Diffusion folder (`igr.model.sd`): its UNet, VAE and image tower, `preset`'s other
    fields (with `model_changes`), fresh parts seeded.

    `model_changes`: IGRConfig fields to change (e.g. zero_snr, aligned_prior; a nested config's as a dict,
    {"encoder": {"backbone": "efficientnet-lite0"}}); from `init`, the new model starts from its weights wherever
    they fit (`IGRModel.transplant`), and a pretrained image tower from its package."""
    torch.manual_seed(seed)
    if pretrained is not None:
        from ..model.sd import from_sd_folder

        return from_sd_folder(pretrained, IGRConfig.preset(preset).replace(**(model_changes or {})))
    if model_changes and stage != "baseline":
        base = IGRModel.from_pretrained(init) if init is not None else None
        config = (base.config if base is not None else IGRConfig.preset(preset)).replace(**model_changes)
        model = IGRModel(config)
        if base is not None:
            model.transplant(base)
        return model
    if stage == "baseline":
        from ..baseline import RegressionConfig, RegressionModel

        reg = RegressionConfig.tiny() if preset == "tiny" else RegressionConfig()
        if init is None:
            return RegressionModel(IGRConfig.preset(preset), reg)
        return RegressionModel.from_igr(init, reg)
    if init is not None:
        return IGRModel.from_pretrained(init)
    return IGRModel(IGRConfig.preset(preset))
