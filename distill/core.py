"""Distillation: the teacher's guided prediction in one call (guidance), then few-step students (steps).

Guidance distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models"): the student's
single denoiser call learns the teacher's classifier-free-guided v at the teacher's guidance scale, on
noised training latents at uniform timesteps.

Step distillation learns from the source model's recorded trajectories: the PF-ODE sampler (its own
sampler and step count, timesteps merged with the students') is run once per training pair and the
latent entering each student timestep is stored with the final latent. A k-step student runs DDIM
(`timestep_spacing="trailing"`, so 999, 749, 499, 249 for k = 4; the 2- and 1-step plans are subsets)
and predicts x0 at each of its timesteps:
  - `consistency` (Song et al. 2023; latent consistency models, Luo et al. 2023): the x0 target at every
    student timestep is the trajectory's end point.
  - `progressive` (Salimans & Ho 2022): the target is the x0 whose DDIM step lands exactly on the
    trajectory's next recorded point, so the student's k steps retrace the teacher's many. The halving
    rounds of the paper are replaced by one round against the recorded N-step trajectory.
`gt_weight` adds ||x0 - garment latent||² against the SynthGarment ground truth (for the 1-step student).
GarmNet, the image encoder and the VAE are frozen and shared with the teacher: only the denoiser trains,
and the conditioning is computed once per training pair (stored with the trajectory).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from igr.config import ConfigError, _from_dict
from igr.files import atomic_folder
from igr.model import Conditioning, IGRModel
from igr.pipeline import denoise, make_scheduler
from igr.train.cache import TRUE_FIELD, WARP, LatentCache, digest
from igr.train.trainer import learning_rate      # warm-up then cosine: reads .lr, .warmup, .steps

KINDS = ("guidance", "steps")
METHODS = ("consistency", "progressive")
META = "distill.json"          # beside a student's config.json: how it was made


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run: `guidance` (CFG baked in) or `steps` (a k-step DDIM student)."""
    kind: str = "guidance"
    steps: int = 800                  # optimizer steps
    batch: int = 16
    lr: float = 5e-5
    warmup: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    student_steps: int = 4            # steps: denoiser calls per image
    method: str = "progressive"       # steps: consistency | progressive
    gt_weight: float = 0.0            # steps: weight of the ground-truth term
    token_fit: int = 0                # steps, a student whose tower input differs from the source's: cache persons
                                      # its token projection is first fitted on (then frozen); 0: it trains with
                                      # the denoiser on the trajectories' persons instead
    log_every: int = 10
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown distillation kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r} (one of {', '.join(METHODS)})")
        if self.steps < 1 or self.batch < 1 or self.student_steps < 1:
            raise ConfigError("steps, batch and student_steps must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        return _from_dict(cls, data, "distill config")


def frozen_parts_digest(model: IGRModel) -> str:
    """One digest over what students share with their teacher: VAE, image encoder, GarmNet (and the aligned
    prior and the WarpNet, where the model has them)."""
    parts = [m for m in (model.vae, model.image_encoder, model.garmnet, model.prior, model.warpnet) if m is not None]
    return digest(torch.nn.ModuleList(parts))


def student_plan(config, steps: int) -> list[int]:
    """A k-step student's DDIM timesteps (trailing spacing: 999, 749, 499, 249 for k = 4).

    k must divide the training timesteps: diffusers' DDIM steps from t to t - T // k, which is the plan's next
    timestep only then (the students' targets and the single-call graph step to the plan's next timestep)."""
    if config.train_timesteps % steps:
        raise ValueError(f"a {steps}-step student: the step count must divide {config.train_timesteps} "
                         f"(DDIM with trailing spacing), e.g. 1, 2, 4, 5, 8, 10")
    sched = make_scheduler(config, "ddim")
    sched.set_timesteps(steps)
    return [int(t) for t in sched.timesteps]


def student_config(config, *, kind: str, steps: int | None = None):
    """The config a student ships with: guidance baked in (scale 1); a step student samples with k-step DDIM."""
    if kind == "guidance":
        return config.replace(guidance_scale=1.0)
    return config.replace(guidance_scale=1.0, sampler="ddim", sample_steps=steps)


def readout_model(teacher: IGRModel, *, jump: float | None = None, guidance: float | None = None,
                  guidance_below: int | None = None) -> tuple[IGRModel, dict[str, Any]]:
    """The teacher's one-call estimate at t = T as a 1-step model, with nothing trained: one conditional
    denoiser call (guidance 1) from pure noise, its x0, decoded. Under a zero terminal SNR schedule t = T holds no
    signal, so the denoiser trained with an L2 loss regresses there on E[x0 | person], the posterior mean: it
    scores the pixel metrics (masked SSIM, ΔE) above a sample of the same teacher and draws less print.

    `jump` J: the readout carried on by the teacher's own DDIM steps at and below J·T of its `sample_steps` plan
    (`igr.pipeline.jump_plan`; 0.04 of 50 steps: timesteps 999, 39, 19), those steps at `guidance` (default the
    teacher's) from `guidance_below` down (default just below T, so the call at T stays conditional alone).

    Returns the model (the teacher's weights, a 1-step student's config: DDIM, guidance 1; or the jump plan's) and
    its distill.json, which the converter reads as a few-step student's (a single-call graph)."""
    cfg = teacher.config
    if not cfg.zero_snr:
        raise ConfigError("a readout needs a zero terminal SNR teacher (config zero_snr): on another schedule t = T "
                          "keeps some of the garment's signal, which pure noise lacks, and the estimate is off")
    if jump is None:
        if guidance is not None or guidance_below is not None:
            raise ConfigError("guidance and guidance_below are for the steps after a jump (give jump)")
        config = student_config(cfg, kind="steps", steps=1)
    else:
        from igr.pipeline import jump_plan

        scale = cfg.guidance_scale if guidance is None else guidance
        below = cfg.train_timesteps - 2 if guidance_below is None else guidance_below
        config = cfg.replace(sampler="ddim", sample_jump=jump, guidance_scale=scale, guidance_below=below)
        try:
            plan = jump_plan(config, config.sample_steps, jump, "ddim")
        except ValueError as e:
            raise ConfigError(str(e)) from e
    model = IGRModel(config)
    model.load_state_dict(teacher.state_dict())
    if jump is None:
        plan, method, how = student_plan(cfg, 1), "readout", {"guidance": 1.0}
    else:
        method = "readout-jump"
        how = {"guidance": scale, "guidance_below": below, "jump": jump, "of_steps": config.sample_steps,
               "guided_timesteps": [t for t in plan if scale != 1.0 and t <= below]}
    meta = {"kind": "steps", "method": method, "steps": len(plan), "timesteps": plan, **how,
            "source_denoiser": digest(teacher.denoiser), "frozen": frozen_parts_digest(teacher)}
    return model, meta


# -- data -----------------------------------------------------------------------------------------
def open_cache(model: IGRModel, folder: str | Path, *, check_rows: int = 2, tolerance: float = 0.05) -> LatentCache:
    """The latent cache at the model's size, after checking that the model re-encodes its first rows alike
    (a cache made from the teacher's fp32 parts serves its fp16 shipped copy; another VAE is refused), and with a
    warp prior that its WarpNet warps them alike."""
    from igr.data import SynthGarmentDataset

    from .prior import relative_l1                  # not at the top: .prior imports .light, which imports this module

    cfg = model.config
    cache = LatentCache(folder, (cfg.height, cfg.width))
    data = SynthGarmentDataset("train", check_rows, size=(cfg.height, cfg.width))
    person = torch.stack([data[i]["person"] for i in range(check_rows)])
    with torch.no_grad():
        z = model.encode(person)
    err = relative_l1(z, cache.rows["person_latent"][:check_rows].float())
    if err > tolerance:
        raise ValueError(f"{folder} was not made with this model's VAE (relative latent difference {err:.3f} > "
                         f"{tolerance}): rebuild it with python -m igr.train.cache --model <this model>")
    if model.warpnet is not None:
        # a student restores from the photo alone: the rows must be warped by this model's WarpNet, never by
        # SynthGarment's true field (which a teacher's training run accepts)
        made = cache.meta["digests"].get("warpnet")
        add = "python -m igr.train.cache --model <this model> --warp-from <a cache without warp rows>"
        if made is None or WARP not in cache.rows:
            raise ValueError(f"{folder} has no warp rows, which this model reads: add them with {add}")
        if made == TRUE_FIELD:
            raise ValueError(f"{folder} was warped by SynthGarment's true field: distillation needs rows warped by "
                             f"the model's own WarpNet ({add})")
        with torch.no_grad():
            err = relative_l1(model.warp_input(person), cache.rows[WARP][:check_rows].float())
        if err > tolerance:
            raise ValueError(f"{folder} was not warped by this model's WarpNet (relative difference {err:.3f} > "
                             f"{tolerance}): add warp rows with {add}")
    return cache


def cache_batch(cache: LatentCache, step: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """The `step`-th batch of cached rows (seeded order per epoch)."""
    items = [cache.item(step * batch + i, seed) for i in range(batch)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def row_noise(shape: tuple[int, ...], rows: range, seed: int) -> torch.Tensor:
    """Starting noise per trajectory row, from (seed, row): independent of batching."""
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(seed * 1_000_003 + r))
                      for r in rows])


@torch.no_grad()
def record_trajectories(source: IGRModel, cache: LatentCache, *, n: int, timesteps: list[int], batch: int = 32,
                        seed: int = 0, progress: bool = True) -> dict[str, torch.Tensor]:
    """Run `source`'s own sampler (with its guidance) from seeded noise on the first `n` cached pairs and keep
    the latent entering each of `timesteps` plus the final latent.

    Returns x (n, R + 1, 4, h, w) float32 (R recorded points, descending, then the end point),
    garment_latent (n, 4, h, w), image_tokens (n, N, D), the GarmNet tokens as ref.<block> (fp16), with an
    aligned prior its latent as prior (n, 4, h, w) and with a warp prior the cache's rows as warp (n, 5, h, w, fp16).
    """
    from tqdm.auto import tqdm

    if n > cache.n:
        raise ValueError(f"asked for {n} trajectories, the cache has {cache.n} pairs")
    cfg = source.config
    sched = make_scheduler(cfg)
    sched.set_timesteps(cfg.sample_steps)
    own = [int(t) for t in sched.timesteps]
    plan = None if set(timesteps) <= set(own) else sorted(set(own) | set(timesteps), reverse=True)
    if plan is not None and cfg.sampler != "dpmsolver++":
        raise ValueError(f"timesteps {sorted(set(timesteps) - set(own), reverse=True)} are not in the {cfg.sampler} "
                         f"plan of {cfg.sample_steps} steps, and only dpmsolver++ takes a merged plan")
    out: dict[str, list[torch.Tensor]] = {"x": [], "garment_latent": [], "image_tokens": []}
    bar = tqdm(total=n, desc=f"trajectories ({cfg.sampler}, {len(plan or own)} steps)", disable=not progress)
    for start in range(0, n, batch):
        rows = range(start, min(n, start + batch))
        zp = cache.rows["person_latent"][start:rows.stop].float()
        embed = cache.rows["person_embed"][start:rows.stop].float()
        warp = cache.rows[WARP][start:rows.stop].float() if source.warpnet is not None else None
        cond = source.condition_from(zp, embed, warp=warp)
        noise = row_noise(tuple(zp.shape[1:]), rows, seed)
        record: dict[int, torch.Tensor] = {}
        final = denoise(source, cond, noise, timesteps=plan, record=record)
        out["x"].append(torch.stack([record[t] for t in timesteps] + [final], dim=1))
        out["garment_latent"].append(cache.rows["garment_latent"][start:rows.stop].float())
        out["image_tokens"].append(cond.image_tokens)
        for k, v in cond.reference.items():
            out.setdefault(f"ref.{k}", []).append(v.half())
        if cond.prior is not None:
            out.setdefault("prior", []).append(cond.prior)
        if cond.warp is not None:
            out.setdefault(WARP, []).append(cond.warp.half())
        bar.update(len(rows))
    bar.close()
    return {k: torch.cat(v).contiguous() for k, v in out.items()}


def trajectory_meta(source: IGRModel, timesteps: list[int], n: int, seed: int) -> dict[str, Any]:
    cfg = source.config
    return {"source_denoiser": digest(source.denoiser), "frozen": frozen_parts_digest(source),
            "sampler": cfg.sampler, "steps": cfg.sample_steps, "guidance": cfg.guidance_scale,
            "timesteps": list(timesteps), "n": n, "seed": seed}


def load_or_record(source: IGRModel, cache_dir: str | Path, folder: str | Path, *, n: int, timesteps: list[int],
                   seed: int = 0, batch: int = 32, progress: bool = True) -> dict[str, torch.Tensor]:
    """Trajectories from `folder` when it holds exactly these (same source, plan, n, seed); else record them."""
    folder = Path(folder)
    meta = trajectory_meta(source, timesteps, n, seed)
    if (folder / "meta.json").is_file():
        stored = json.loads((folder / "meta.json").read_text())
        stored.pop("seconds", None)                  # how long recording took: informative, not part of the match
        if stored == meta:
            return load_file(str(folder / "trajectories.safetensors"))
    cache = open_cache(source, cache_dir)
    t0 = time.perf_counter()
    traj = record_trajectories(source, cache, n=n, timesteps=timesteps, batch=batch, seed=seed, progress=progress)
    with atomic_folder(folder) as tmp:
        save_file(traj, str(tmp / "trajectories.safetensors"))
        (tmp / "meta.json").write_text(json.dumps({**meta, "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    return traj


# -- losses ---------------------------------------------------------------------------------------
def guidance_loss(teacher: IGRModel, student: IGRModel, batch: dict[str, torch.Tensor],
                  generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE between the student's v and the teacher's guided v_u + w (v_c - v_u) at a noised training latent."""
    z0 = batch["garment_latent"]
    b = z0.shape[0]
    t = torch.randint(0, teacher.config.train_timesteps, (b,), generator=generator)
    noise = torch.randn(z0.shape, generator=generator)
    w = teacher.config.guidance_scale
    with torch.no_grad():
        cond = teacher.condition_from(batch["person_latent"], batch["person_embed"],  # shared, frozen
                                      warp=batch.get(WARP))
        zt = teacher.noise_scheduler().add_noise(z0, noise, t)
        v_u, v_c = teacher.predict(torch.cat([zt, zt]), torch.cat([t, t]),
                                   Conditioning.cat([cond.null(), cond])).chunk(2)
        target = v_u + w * (v_c - v_u)
    loss = F.mse_loss(student.predict(zt, t, cond), target)
    return loss, {"loss": float(loss.detach())}


class StepTargets:
    """x0 targets of a k-step student on recorded trajectories (see the module docstring)."""

    def __init__(self, config, recorded: list[int], steps: int, method: str) -> None:
        self.plan = student_plan(config, steps)
        missing = [t for t in self.plan if t not in recorded]
        if missing:
            raise ValueError(f"the trajectories do not hold timesteps {missing} of the {steps}-step plan "
                             f"(recorded: {recorded}); record them again with this student in --steps")
        sched = make_scheduler(config, "ddim")
        ab = sched.alphas_cumprod.double()
        self.index = [recorded.index(t) for t in self.plan] + [len(recorded)]     # last: the end point
        alphas = [float(ab[t]) for t in self.plan] + [float(sched.final_alpha_cumprod)]
        self.a = torch.tensor([math.sqrt(x) for x in alphas])                      # sqrt(ᾱ)
        self.s = torch.tensor([math.sqrt(1 - x) for x in alphas])                  # sqrt(1 - ᾱ)
        self.method = method

    def __call__(self, x: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows' trajectories x (B, R + 1, 4, h, w) and student step j (B,) -> (x_in, timestep, x0 target)."""
        rows = torch.arange(len(j))
        idx = torch.tensor(self.index)
        x_in, x_next, end = x[rows, idx[j]], x[rows, idx[j + 1]], x[:, -1]
        t = torch.tensor(self.plan)[j]
        if self.method == "consistency":
            return x_in, t, end
        shape = (-1, 1, 1, 1)
        a, s = self.a[j].view(shape).float(), self.s[j].view(shape).float()
        a_n, s_n = self.a[j + 1].view(shape).float(), self.s[j + 1].view(shape).float()
        # DDIM: x_next = a_n x0 + s_n (x_in - a x0) / s  ->  the x0 that lands on the recorded x_next
        return x_in, t, (x_next - (s_n / s) * x_in) / (a_n - s_n * a / s)

    def x0(self, v: torch.Tensor, x_in: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """x0 from a v prediction at student step j: x0 = sqrt(ᾱ) x - sqrt(1 - ᾱ) v."""
        shape = (-1, 1, 1, 1)
        return self.a[j].view(shape).float() * x_in - self.s[j].view(shape).float() * v


def stored_conditioning(batch: dict[str, torch.Tensor], student: IGRModel | None = None) -> Conditioning:
    """The conditioning recorded with trajectory rows (see `record_trajectories`), as `student` takes it: without
    the prior when it has none, and with image tokens of its own (its trainable projection of `student_embed`)
    when its image tower embeds differently from the source's (`tower_embeds`)."""
    tokens = batch["image_tokens"]
    if student is not None and "student_embed" in batch:
        tokens = student.image_encoder.tokens(batch["student_embed"])
    prior = None if student is not None and student.prior is None else batch.get("prior")
    warp = batch.get(WARP)
    return Conditioning({k[4:]: v.float() for k, v in batch.items() if k.startswith("ref.")}, tokens, prior,
                        None if warp is None else warp.float())


def step_loss(student: IGRModel, targets: StepTargets, batch: dict[str, torch.Tensor], generator: torch.Generator,
              gt_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """x0-space MSE of the student at a random one of its steps, plus the optional ground-truth term."""
    x = batch["x"]
    j = torch.randint(0, len(targets.plan), (x.shape[0],), generator=generator)
    x_in, t, target = targets(x, j)
    cond = stored_conditioning(batch, student)
    x0 = targets.x0(student.predict(x_in, t, cond), x_in, j)
    distill = F.mse_loss(x0, target)
    logs = {"distill": float(distill.detach())}
    loss = distill
    if gt_weight > 0:
        gt = F.mse_loss(x0, batch["garment_latent"])
        loss = loss + gt_weight * gt
        logs["gt"] = float(gt.detach())
    logs["loss"] = float(loss.detach())
    return loss, logs


def trajectory_batch(traj: dict[str, torch.Tensor], step: int, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """The `step`-th batch of trajectory rows, in a seeded order per epoch."""
    n = len(traj["x"])
    picks = []
    for i in range(step * batch, (step + 1) * batch):
        epoch, k = divmod(i, n)
        picks.append(int(np.random.default_rng([seed, epoch]).permutation(n)[k]) if n > 1 else 0)
    idx = torch.tensor(picks)
    return {k: v[idx] for k, v in traj.items()}


# -- the loop ---------------------------------------------------------------------------------------
def optimizer_step(loss: torch.Tensor, params, opt: torch.optim.Optimizer, grad_clip: float, *, what: str,
                   step: int) -> None:
    """One optimizer step: refuse a non-finite loss (naming `what` and the step), backward, clip, step, zero."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} loss is {float(loss)} at step {step}")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def fit(student: IGRModel, cfg: DistillConfig, out: str | Path,
        next_batch: Callable[[int], dict[str, torch.Tensor]],
        loss_fn: Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, dict[str, float]]],
        *, meta: dict[str, Any], progress: bool = True, also: list[torch.nn.Module] | None = None) -> dict[str, Any]:
    """Train the student's denoiser (and the modules in `also`; everything else frozen) and write OUT/final
    (+ OUT/checkpoint on the way), OUT/log.jsonl and OUT/loss.png. Returns the summary also stored as
    final/distill.json."""
    from tqdm.auto import tqdm

    from igr.train.trainer import plot_log

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    for p in student.parameters():
        p.requires_grad_(False)
    params = [p for m in [student.denoiser, *(also or [])] for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    student.train()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    log = out / "log.jsonl"
    log.write_text("")
    t0 = time.perf_counter()
    first, recent = None, []
    bar = tqdm(range(cfg.steps), desc=f"distill {cfg.kind}", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, logs = loss_fn(next_batch(step), generator)
        optimizer_step(loss, params, opt, cfg.grad_clip, what="distillation", step=step)
        first = logs["loss"] if first is None else first
        recent = (recent + [logs["loss"]])[-50:]
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            with log.open("a") as f:
                f.write(json.dumps({"step": step, "lr": learning_rate(cfg, step),
                                    "seconds": round(time.perf_counter() - t0, 2), **logs}) + "\n")
            bar.set_postfix(loss=f"{float(np.mean(recent)):.4f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            student.eval()
            student.save_pretrained(out / "checkpoint")
            student.train()
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    summary = {**meta, "config": cfg.to_dict(), "first_loss": first, "final_loss_mean50": float(np.mean(recent)),
               "hours": round((time.perf_counter() - t0) / 3600, 3)}
    student.save_pretrained(out / "final", extra={META: json.dumps(summary, indent=1) + "\n"})
    plot_log(log, out / "loss.png")
    return summary


def distill_guidance(teacher: IGRModel, cache_dir: str | Path, out: str | Path, cfg: DistillConfig, *,
                     progress: bool = True) -> dict[str, Any]:
    """Guidance distillation: a student initialized from the teacher that needs one call per step."""
    if teacher.config.guidance_scale == 1.0:
        raise ValueError("the teacher's guidance scale is 1: there is no guidance to distill")
    cache = open_cache(teacher, cache_dir)
    student = copy.deepcopy(teacher)             # deepcopy gives the copy its own reference banks
    student.config = student_config(teacher.config, kind="guidance")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    meta = {"kind": "guidance", "guidance_baked": teacher.config.guidance_scale,
            "teacher_denoiser": digest(teacher.denoiser), "frozen": frozen_parts_digest(teacher),
            "sampler": teacher.config.sampler, "sample_steps": teacher.config.sample_steps}
    return fit(student, cfg, out, lambda step: cache_batch(cache, step, cfg.batch, cfg.seed),
               lambda batch, g: guidance_loss(teacher, student, batch, g), meta=meta, progress=progress)


def lean_student(init: IGRModel, changes: dict[str, Any]) -> tuple[IGRModel, list[str]]:
    """A student of another architecture than `init`: `init`'s config with `changes` (`--model-set`), its weights
    taken from `init` wherever they fit (`IGRModel.transplant`). Only changes that leave the stored conditioning
    usable are taken: dropping the aligned prior (`aligned_prior=false`: the denoiser keeps its latent channels'
    input weights and learns to do without the prior) and the image tower's input size (`encoder.input_size`:
    the token projection then learns anew, see `distill_steps`). -> (student, tensors not taken)."""
    allowed = {"aligned_prior": None, "encoder": {"input_size"}}
    for key, value in changes.items():
        if key not in allowed or (isinstance(value, dict) and not set(value) <= allowed[key]):
            raise ValueError(f"a step student can change only aligned_prior=false and encoder.input_size, not {key} "
                             f"({value}): the trajectories' stored conditioning fixes the rest")
    if changes.get("aligned_prior", False):
        raise ValueError("aligned_prior=true: a step student can drop the source's prior, not add one")
    student = IGRModel(init.config.replace(**copy.deepcopy(changes)))
    return student, student.transplant(init)


@torch.no_grad()
def tower_embeds(student: IGRModel, index: torch.Tensor, *, size: tuple[int, int], batch: int = 64,
                 progress: bool = True) -> torch.Tensor:
    """The student's image-tower embedding of SynthGarment train persons `index` (a latent cache's index column)
    at the training size: what its token projection trains on when its tower's input differs from the source's."""
    from tqdm.auto import tqdm

    from igr.data import SynthGarmentDataset

    data = SynthGarmentDataset("train", int(index.max()) + 1, size=size)
    out = []
    for start in tqdm(range(0, len(index), batch), desc="person embeddings", disable=not progress):
        person = torch.stack([data[int(i)]["person"] for i in index[start:start + batch]])
        out.append(student.image_encoder.embed(person).float())
    return torch.cat(out)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return digest(a) == digest(b)


def fit_tokens(student: IGRModel, source: IGRModel, cache: LatentCache, n: int, *, steps: int = 1500,
               batch: int = 256, lr: float = 1e-3, holdout: int = 512, seed: int = 0,
               progress: bool = True) -> dict[str, Any]:
    """Fit the student's token projection so that its tower (another input size) gives the tokens the source's
    gives, on the first `n` cache persons (the source's embeddings are the cache's), the last `holdout` of them
    (at most a quarter) held out; the projection is then frozen. Many more persons than the trajectories hold, so
    the projection does not learn the trajectories' few. -> a record: relative L2 of the tokens on the held-out
    persons, before and after."""
    holdout = min(holdout, n // 4)
    if n > cache.n or holdout < 1:
        raise ValueError(f"token fit on {n} persons: the cache has {cache.n}, and a quarter (at most {holdout}) is "
                         f"held out")
    embeds = tower_embeds(student, cache.index[:n], size=(source.config.height, source.config.width),
                          progress=progress)
    with torch.no_grad():
        target = torch.cat([source.image_encoder.tokens(cache.rows["person_embed"][i:i + 512].float())
                            for i in range(0, n, 512)])
    proj = student.image_encoder.projection()
    params = [p for m in proj for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    train, test = slice(0, n - holdout), slice(n - holdout, n)

    def held_out() -> float:
        with torch.no_grad():
            out = student.image_encoder.tokens(embeds[test])
            return float((out - target[test]).norm() / target[test].norm())

    before = held_out()
    from tqdm.auto import tqdm

    for step in tqdm(range(steps), desc="token fit", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, n - holdout, (batch,), generator=gen)
        loss = F.mse_loss(student.image_encoder.tokens(embeds[train][idx]), target[train][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)
    return {"persons": n, "holdout": holdout, "steps": steps, "relative_l2_holdout_before": round(before, 4),
            "relative_l2_holdout": round(held_out(), 4)}


def distill_steps(init: IGRModel, traj: dict[str, torch.Tensor], recorded: list[int], out: str | Path,
                  cfg: DistillConfig, *, source_meta: dict[str, Any], progress: bool = True,
                  changes: dict[str, Any] | None = None, cache: LatentCache | str | Path | None = None,
                  source: IGRModel | None = None) -> dict[str, Any]:
    """Step distillation of a `cfg.student_steps`-step student, initialized from `init`, on trajectories.

    `changes` makes a leaner student than `init` (`lean_student`). `init` may carry another aligned prior than the
    trajectories' `source` (a light one, `python -m distill light-prior`): the student then sees its own prior's
    answers, computed once on the cache's person latents, and learns to follow the trajectories with them. Those
    and a tower input other than the source's need `cache`, the latent cache the trajectories were recorded from
    (its first rows are theirs; a folder is opened only then)."""
    as_recorded = frozen_parts_digest(init) == source_meta["frozen"]
    if not as_recorded and not (source is not None and frozen_parts_digest(source) == source_meta["frozen"]
                                and all(_same(a, b) for a, b in ((init.vae, source.vae), (init.garmnet, source.garmnet),
                                                                 (init.image_encoder.tower, source.image_encoder.tower)))):
        raise ValueError("the student's VAE / image encoder / GarmNet differ from the trajectories' source: the "
                         "stored conditioning would not be the student's own")
    own_prior = not as_recorded and init.prior is not None          # another prior than the source's (or none)
    n = len(traj["x"])
    student, fresh = lean_student(init, changes) if changes else (copy.deepcopy(init), [])
    own_tower = student.config.encoder != (source or init).config.encoder     # the stored tokens are the source's
    if own_prior or own_tower:
        if cache is None:
            raise ValueError("a student with its own prior or another image-tower input than the source's needs "
                             "the trajectories' cache")
        if not isinstance(cache, LatentCache):
            cache = LatentCache(cache, (init.config.height, init.config.width))
    also: list[torch.nn.Module] = []
    token_fit = None
    if own_tower:
        if cfg.token_fit:
            token_fit = fit_tokens(student, source or init, cache, cfg.token_fit, seed=cfg.seed, progress=progress)
        traj = {**traj, "student_embed": tower_embeds(student, cache.index[:n], size=(init.config.height,
                                                                                       init.config.width),
                                                      progress=progress)}
        also = [] if token_fit else list(student.image_encoder.projection())
    if own_prior and student.prior is not None:
        from .prior import answers

        traj = {**traj, "prior": answers(student.prior, cache.rows["person_latent"][:n].float())}
    student.config = student_config(student.config, kind="steps", steps=cfg.student_steps)
    targets = StepTargets(student.config, recorded, cfg.student_steps, cfg.method)
    meta = {"kind": "steps", "method": cfg.method, "steps": cfg.student_steps, "timesteps": targets.plan,
            "init_denoiser": digest(init.denoiser), "trajectories": source_meta,
            "frozen": frozen_parts_digest(student)}
    if changes:
        meta["model_set"] = changes
        meta["not_from_init"] = fresh
    if own_prior:
        meta["own_prior"] = digest(init.prior)
    if token_fit:
        meta["token_fit"] = token_fit
    return fit(student, cfg, out, lambda step: trajectory_batch(traj, step, cfg.batch, cfg.seed),
               lambda batch, g: step_loss(student, targets, batch, g, cfg.gt_weight), meta=meta, progress=progress,
               also=also)
