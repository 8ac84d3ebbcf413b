"""Light VAE distillation: a TAESD-style decoder and encoder (`igr.model.light`) learn the full VAE's mappings.

The decoder learns the full decoder's image from latents it actually decodes: SynthGarment train garments
encoded by the full encoder (and, with `extra_latents`, sampled latents such as a teacher's or a student's
final latents), with L1 plus an L1 on image gradients (finite differences, for edges and print) and
optionally our EfficientNet-Lite0 feature distance (`igr.perceptual`, differentiable here). The encoder learns
the full encoder's scaled latents of train persons (L1). Both train in one loop, one AdamW.

The training rows come from a pool computed once per VAE (`build_pool`: the images, the full VAE's latents and
decodings), shared by every width of a sweep. A run is resumable (`OUT/checkpoint`, written atomically, taken up
again when the settings match), logs compact JSONL rows and writes `OUT/final` (`igr.model.light.save_light`).
`evaluate` scores parts on the test split against the full VAE and the true garments; `write_report` writes a
sweep's table, plot and grid.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from igr.config import ConfigError, IGRConfig, LightVAEConfig, _from_dict
from igr.files import atomic_file, atomic_folder
from igr.images import uint8_images
from igr.model.light import (LightDecoder, LightEncoder, build_light, can_grow, decoder_flops, encoder_flops,
                             grow_into, load_light, save_light)
from igr.train.cache import digest
from igr.train.trainer import edge_l1

from .core import optimizer_step

POOL = "pool.safetensors"


@dataclass(frozen=True)
class LightTrainConfig:
    """One light-VAE distillation run."""
    steps: int = 600                  # optimizer steps
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    edge_weight: float = 0.5          # L1 of horizontal and vertical image differences, beside the pixel L1
    perceptual_weight: float = 0.0    # EffNet-Lite0 feature distance (slow on a CPU: about 3x a step)
    spectrum_weight: float = 0.0      # L1 of the images' 2-D Fourier amplitudes (`spectrum_l1`): energy missing
                                      # at high frequencies (a blur) costs even where the pixel L1 is small
    log_every: int = 10
    checkpoint_every: int = 100
    ema: float = 0.0                  # decay of an exponential moving average of the weights; the parts written
                                      # (final and kept) are then the average's; 0: the trained weights
    encoder_only: bool = False        # train the encoder alone; the decoder stays as the run's `init` has it

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ConfigError("steps and batch must be at least 1")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema is a decay in [0, 1), got {self.ema}")
        if min(self.edge_weight, self.perceptual_weight, self.spectrum_weight) < 0:
            raise ConfigError("loss weights must be at least 0")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a run records them; `ema`, `spectrum_weight` and `encoder_only` (added later) only when
        on, so runs made before them still match their checkpoints."""
        out = dataclasses.asdict(self)
        for later in ("ema", "spectrum_weight", "encoder_only"):
            if not out[later]:
                del out[later]
        return out


class FullVAE(nn.Module):
    """A model folder's full AutoencoderKL and config, without the rest of the model: the teacher of the light
    parts. `encode` / `decode` are `IGRModel.encode` / `decode` (scaled latents, images in [-1, 1])."""

    def __init__(self, config: IGRConfig, vae: nn.Module) -> None:
        super().__init__()
        self.config, self.vae = config, vae

    @classmethod
    def from_folder(cls, folder: str | Path) -> FullVAE:
        from igr.model.igr import build_vae, component_file

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no config.json (not an IGR model folder)")
        config = IGRConfig.load(folder / "config.json")
        vae = build_vae(config.vae)
        vae.load_state_dict(load_file(str(component_file(folder, "vae"))))
        return cls(config, vae.float().eval().requires_grad_(False))

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.mode() * self.config.vae.scaling_factor

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent / self.config.vae.scaling_factor).sample.clamp(-1, 1)

    def digest(self) -> str:
        return digest(self.vae)


def _float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


# -- the pool ---------------------------------------------------------------------------------------
def _extra(path: str | Path) -> torch.Tensor:
    """Latents to decode from a safetensors file: key `latent` (N, 4, h, w), or a distillation trajectories
    file's `x` (N, R + 1, 4, h, w), whose last point is the sampler's final latent."""
    t = load_file(str(path))
    if "latent" in t:
        return t["latent"].float()
    if "x" in t:
        return t["x"][:, -1].float()
    raise ValueError(f"{path} holds neither `latent` nor trajectories (`x`): keys {sorted(t)[:5]}")


def build_pool(vae: FullVAE, folder: str | Path, *, n: int, extra_latents: str | Path | None = None,
               warp_from: str | Path | None = None, batch: int = 16, progress: bool = True) -> dict[str, torch.Tensor]:
    """The training rows, computed once (reused when `folder` holds the same: VAE digest, n, size, extras, warp).

    latent (N, 4, h, w): the full encoder's latents of the first `n` SynthGarment train garments, then the
    extra latents; decoded (N, 3, H, W) fp16: the full decoder's images of them; person (n, 3, H, W) uint8 and
    person_latent (n, 4, h, w): the train persons and their full-encoder latents. `warp_from`: a model folder
    with a warp prior; the persons resampled into the in-shop frame by its WarpNet (what such a model's light
    encoder also encodes, `IGRModel.warp_input`) follow the persons in `person` and `person_latent` (2n rows)."""
    from tqdm.auto import tqdm

    from igr.data import SynthGarmentDataset

    folder = Path(folder)
    cfg = vae.config
    warpnet = _warpnet_of(warp_from) if warp_from is not None else None
    meta = {"vae": vae.digest(), "n": n, "size": [cfg.height, cfg.width],
            "extra": None if extra_latents is None else str(extra_latents)}
    if warpnet is not None:                             # only when given: pools made before it still match
        meta["warp"] = {"from": str(warp_from), "warpnet": digest(warpnet)}
    if (folder / "meta.json").is_file() and json.loads((folder / "meta.json").read_text()) == meta:
        return load_file(str(folder / POOL))
    data = SynthGarmentDataset("train", n, size=(cfg.height, cfg.width))
    extra = _extra(extra_latents) if extra_latents is not None else torch.zeros(0, *cfg.latent_shape)
    parts: dict[str, list[torch.Tensor]] = {"latent": [], "decoded": [], "person": [], "person_latent": []}
    warped: dict[str, list[torch.Tensor]] = {"person": [], "person_latent": []}
    bar = tqdm(total=n + len(extra), desc="pool (full VAE)", disable=not progress)
    for start in range(0, n, batch):
        items = [data[i] for i in range(start, min(n, start + batch))]
        garment = torch.stack([it["garment"] for it in items])               # (B, 3, H, W)
        person = torch.stack([it["person"] for it in items])
        z = vae.encode(garment)                                                # (B, 4, h, w)
        parts["latent"].append(z)
        parts["decoded"].append(vae.decode(z).half())
        parts["person"].append(uint8_images(person))
        parts["person_latent"].append(vae.encode(person))
        if warpnet is not None:
            from igr.warp import warp

            coords, _ = warpnet(person)
            image = warp(person, coords.to(person.dtype))
            warped["person"].append(uint8_images(image))
            warped["person_latent"].append(vae.encode(image))
        bar.update(len(items))
    for start in range(0, len(extra), batch):
        z = extra[start:start + batch]
        parts["latent"].append(z)
        parts["decoded"].append(vae.decode(z).half())
        bar.update(len(z))
    bar.close()
    pool = {k: torch.cat(v + warped.get(k, [])).contiguous() for k, v in parts.items()}
    with atomic_folder(folder) as tmp:
        save_file(pool, str(tmp / POOL))
        (tmp / "meta.json").write_text(json.dumps(meta) + "\n")
    return pool


def _warpnet_of(folder: str | Path) -> nn.Module:
    from igr.model import IGRModel

    model = IGRModel.from_pretrained(folder)
    if model.warpnet is None:
        raise ValueError(f"{folder} has no warp prior (config warp_prior): no WarpNet to warp the persons with")
    return model.warpnet.eval()


@torch.no_grad()
def sample_latents(model, out: str | Path, *, n: int, batch: int = 16, seed: int = 0,
                   progress: bool = True) -> Path:
    """The latents `model` hands its decoder when it restores the first `n` SynthGarment train persons (its own
    sampler, steps, guidance and VAE path; each item from its own noise, `igr.pipeline.item_noise`) -> a
    safetensors file `out` with `latent` (n, 4, h, w), written atomically, for `build_pool`'s `extra_latents`:
    a light decoder then also learns what the full decoder draws from the latents a student makes."""
    from tqdm.auto import tqdm

    from igr.data import SynthGarmentDataset
    from igr.pipeline import denoise, item_noise

    cfg = model.config
    data = SynthGarmentDataset("train", n, size=(cfg.height, cfg.width))
    light = model.uses_light(None)
    latents = []
    for start in tqdm(range(0, n, batch), desc="sample latents", disable=not progress):
        person = torch.stack([data[i]["person"] for i in range(start, min(n, start + batch))])
        noise = item_noise(cfg, seed, start, len(person), height=cfg.height, width=cfg.width)
        latents.append(denoise(model, model.condition(person, light=light), noise))
    with atomic_file(out) as tmp:
        save_file({"latent": torch.cat(latents).contiguous()}, str(tmp),
                  metadata={"n": str(n), "seed": str(seed), "denoiser": digest(model.denoiser),
                            "sampler": f"{cfg.sampler} {cfg.sample_steps} steps, guidance {cfg.guidance_scale:g}"})
    return Path(out)


def rows(n: int, step: int, batch: int, seed: int) -> torch.Tensor:
    """The `step`-th batch of row indices of n rows: each pass in its own seeded order (a pure function of the
    step, so a resumed run draws what an unbroken one would)."""
    picks = []
    for i in range(step * batch, (step + 1) * batch):
        epoch, k = divmod(i, n)
        picks.append(int(np.random.default_rng([seed, epoch]).permutation(n)[k]))
    return torch.tensor(picks)


# -- losses -------------------------------------------------------------------------------------------
def effnet_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`igr.perceptual.EffNetDistance` with gradients through `pred` (the network stays frozen), batch mean."""
    from igr.perceptual import pretrained

    net = pretrained()
    feats_p, feats_t = net.features(net.preprocess(pred)), net.features(net.preprocess(target))
    total = 0.0
    for a, b in zip(feats_p, feats_t):
        a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-10)
        b = (b / b.norm(dim=1, keepdim=True).clamp(min=1e-10)).detach()
        total = total + ((a - b) ** 2).sum(1).mean()
    return total / len(feats_p)


def spectrum_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the amplitudes of the images' 2-D Fourier transforms (orthonormal, per channel): blind to
    where a frequency's energy sits (the pixel L1 sees that), it charges energy missing at any frequency, which is
    what a blur does."""
    amp = lambda x: torch.fft.rfft2(x.float(), norm="ortho").abs()     # noqa: E731
    return (amp(pred) - amp(target)).abs().mean()


def light_loss(decoder: LightDecoder, encoder: LightEncoder | None, pool: dict[str, torch.Tensor], step: int,
               cfg: LightTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Decoder: L1 + edge_weight · gradient L1 (+ spectrum_weight · Fourier amplitude L1, + perceptual_weight ·
    EffNet distance) to the full decoder's image; encoder: L1 to the full encoder's latent. Batches are a pure
    function of the step. `cfg.encoder_only`: the encoder's term alone."""
    loss, logs = torch.zeros(()), {}
    if not cfg.encoder_only:
        loss, logs = _decoder_loss(decoder, pool, step, cfg)
    if encoder is not None:
        j = rows(len(pool["person"]), step, cfg.batch, cfg.seed + 1)
        enc = (encoder(_float(pool["person"][j])) - pool["person_latent"][j]).abs().mean()
        loss = loss + enc
        logs["enc_l1"] = float(enc.detach())
    logs["loss"] = float(loss.detach())
    return loss, logs


def _decoder_loss(decoder: LightDecoder, pool: dict[str, torch.Tensor], step: int,
                  cfg: LightTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    i = rows(len(pool["latent"]), step, cfg.batch, cfg.seed)
    out = decoder(pool["latent"][i])                                         # (B, 3, H, W)
    target = pool["decoded"][i].float()
    l1, edge = (out - target).abs().mean(), edge_l1(out, target)
    loss = l1 + cfg.edge_weight * edge
    logs = {"dec_l1": float(l1.detach()), "dec_edge": float(edge.detach())}
    if cfg.spectrum_weight > 0:
        f = spectrum_l1(out, target)
        loss = loss + cfg.spectrum_weight * f
        logs["dec_spectrum"] = float(f.detach())
    if cfg.perceptual_weight > 0:
        p = effnet_distance(out.clamp(-1, 1), target)
        loss = loss + cfg.perceptual_weight * p
        logs["dec_effnet"] = float(p.detach())
    return loss, logs


# -- the run ----------------------------------------------------------------------------------------------
def _parts(decoder: nn.Module, encoder: nn.Module | None) -> dict[str, torch.Tensor]:
    out = {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    if encoder is not None:
        out.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _load_parts(weights: dict[str, torch.Tensor], decoder: nn.Module, encoder: nn.Module | None) -> None:
    decoder.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("decoder.")})
    if encoder is not None:
        encoder.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("encoder.")})


@torch.no_grad()
def _ema_update(average: list[nn.Module | None], parts: list[nn.Module | None], decay: float) -> None:
    """Move the averaged parts toward the trained ones (floating tensors; any other is copied)."""
    for avg, part in zip(average, parts):
        if part is None:
            continue
        for a, v in zip(avg.state_dict().values(), part.state_dict().values()):
            if a.is_floating_point():
                a.lerp_(v, 1 - decay)
            else:
                a.copy_(v)


ADDED_LATER = {"rgb_skip": False}      # LightVAEConfig fields newer than the first runs, and their defaults


def _settings(light: LightVAEConfig, cfg: LightTrainConfig, vae: FullVAE, pool_meta: dict,
              init: dict | None = None) -> dict[str, Any]:
    """What a run's result depends on, as its JSON reads back (tuples become lists). A field added later is left
    out at its default, so a run made before it still matches; so is `init` when the run starts from scratch."""
    parts = {k: v for k, v in dataclasses.asdict(light).items() if ADDED_LATER.get(k, object()) != v}
    out = {"light": parts, "train": cfg.to_dict(), "vae": vae.digest(), "pool": pool_meta}
    return json.loads(json.dumps(out | ({"init": init} if init else {})))


def _start_from(folder: str | Path, light: LightVAEConfig, decoder: nn.Module, encoder: nn.Module | None) -> dict:
    """Load the parts of an earlier light folder (`save_light`'s, or a model folder's light parts) into the new
    ones; its config must be `light` or one `can_grow` carries into it (then the parts are grown: the same
    outputs, `grow_into`). Returns what the run's settings record of it: its path, the VAE it was distilled from, a
    digest of its parts and, when grown, the config it grew from."""
    cfg, dec, enc, meta = load_light(folder)
    grown = dataclasses.asdict(cfg) != dataclasses.asdict(light)
    if grown and not can_grow(cfg, light):
        raise ConfigError(f"{folder} holds light parts of another shape ({dataclasses.asdict(cfg)}); this run's are "
                          f"{dataclasses.asdict(light)}: start from parts of the same levels, colour path and "
                          f"encoder, no wider and with no more blocks")
    for part, src in ((decoder, dec), (encoder, enc)):
        if part is not None:
            grow_into(part, src)                # parts of the same shape: a plain copy
    return {"folder": str(folder), "vae": meta.get("vae"),
            "parts": [digest(part) for part in (dec, enc) if part is not None]} | (
        {"grown_from": dataclasses.asdict(cfg)} if grown else {})


def distill_light(vae: FullVAE, light: LightVAEConfig, pool: dict[str, torch.Tensor], out: str | Path,
                  cfg: LightTrainConfig, *, pool_meta: dict | None = None, source: str = "",
                  progress: bool = True, stop_after: int | None = None,
                  init: str | Path | None = None, keep_at: tuple[int, ...] = ()) -> dict[str, Any]:
    """Train the light parts of `light` on `pool` and write OUT/final (light.json + the parts' safetensors).
    `keep_at`: steps after which the parts are also written whole, as OUT/step-N (light.json records `step`;
    a later-step checkpoint can be worth more than the final parts on a metric the loss does not see).
    `cfg.ema`: the parts written (final and kept) are an exponential moving average of the trained weights.
    `init`: a light folder to start from instead of random weights (e.g. the parts distilled from the VAE before
    its decoder was fine-tuned): of the same shape, or narrower / with fewer blocks, grown into this shape.
    `cfg.encoder_only`: only the encoder trains; the decoder is `init`'s, written unchanged (needs `init`).

    OUT/checkpoint (atomic) is taken up again when its settings equal this run's; a finished OUT/final with
    the same settings is returned as is. OUT/log.jsonl: one row every `log_every` steps. `stop_after`: stop
    after that many steps with a checkpoint and no final (tests of the resume)."""
    from tqdm.auto import tqdm

    from igr.train.trainer import ema_decay, learning_rate, load_optimizer_tensors, optimizer_tensors, truncate_log

    out = Path(out)
    torch.manual_seed(cfg.seed)
    decoder, encoder = build_light(light)
    if cfg.encoder_only and (init is None or encoder is None):
        raise ConfigError("encoder_only trains a light encoder beside a decoder that stays as it is: it needs a light "
                          "encoder (encoder widths) and parts to start from (init)")
    started = _start_from(init, light, decoder, encoder) if init else None
    settings = _settings(light, cfg, vae, pool_meta or {}, started)
    final = out / "final" / "light.json"
    if final.is_file():
        done = json.loads(final.read_text())
        if done.get("settings") == settings:
            return done
    if len(light.decoder) != len(vae.config.vae.channels):
        raise ConfigError(f"light widths {list(light.decoder)} have {len(light.decoder)} levels, the VAE has "
                          f"{len(vae.config.vae.channels)} (one width per level, full resolution first)")
    out.mkdir(parents=True, exist_ok=True)
    params = ([] if cfg.encoder_only else list(decoder.parameters())) + (
        list(encoder.parameters()) if encoder is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    start, spent, first, recent = 0, 0.0, None, []
    ckpt = out / "checkpoint"
    log = out / "log.jsonl"
    if (ckpt / "trainer.json").is_file():
        state = json.loads((ckpt / "trainer.json").read_text())
        if state["settings"] != settings:
            raise ValueError(f"{ckpt} was made with other settings (widths, training, VAE or pool): remove {out} "
                             f"or run with the same settings")
        _load_parts(load_file(str(ckpt / "parts.safetensors")), decoder, encoder)
        load_optimizer_tensors(opt, load_file(str(ckpt / "optimizer.safetensors")), opt.state_dict()["param_groups"])
        start, spent, first, recent = state["step"], state["seconds"], state["first_loss"], state["recent"]
        truncate_log(log, start - 1)                   # the rows of steps the checkpoint has done
    else:
        log.write_text("")
    # with `cfg.ema`, the written parts are an average of the weights (`average`; its decay warms up as the
    # trainer's does), checkpointed beside the trained ones
    average = [copy.deepcopy(part) if part is not None else None for part in (decoder, encoder)] if cfg.ema else None
    if average is not None and (ckpt / "trainer.json").is_file():
        _load_parts(load_file(str(ckpt / "average.safetensors")), *average)
    written = average or [decoder, encoder]
    decoder.train(not cfg.encoder_only)
    if encoder is not None:
        encoder.train()
    h, w = vae.config.height, vae.config.width
    keep_at = set(keep_at)

    def summary(loss_mean50: float, seconds: float, **extra) -> dict[str, Any]:
        return {"vae": settings["vae"], "scaling_factor": vae.config.vae.scaling_factor, "source": source,
                "size": [h, w], "flops": {"decoder": decoder_flops(light, h, w), "encoder": encoder_flops(light, h, w)},
                "first_loss": first, "final_loss_mean50": loss_mean50, "hours": round(seconds / 3600, 3),
                **extra, "settings": settings}

    t0 = time.perf_counter() - spent
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"light {'-'.join(map(str, light.decoder))}",
               disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, logs = light_loss(decoder, encoder, pool, step, cfg)
        optimizer_step(loss, params, opt, cfg.grad_clip, what="light VAE", step=step)
        if average is not None:
            _ema_update(average, [decoder, encoder], ema_decay(cfg.ema, step))
        first = logs["loss"] if first is None else first
        recent = (recent + [logs["loss"]])[-50:]
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            with log.open("a") as f:
                f.write(json.dumps({"step": step, "lr": round(learning_rate(cfg, step), 7),
                                    "seconds": round(time.perf_counter() - t0, 1),
                                    **{k: round(v, 5) for k, v in logs.items()}}) + "\n")
            bar.set_postfix(loss=f"{float(np.mean(recent)):.4f}")
        if (cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps) \
                or step + 1 == end < cfg.steps:
            with atomic_folder(ckpt) as tmp:
                save_file(_parts(decoder, encoder), str(tmp / "parts.safetensors"))
                save_file(optimizer_tensors(opt), str(tmp / "optimizer.safetensors"))
                if average is not None:
                    save_file(_parts(*average), str(tmp / "average.safetensors"))
                (tmp / "trainer.json").write_text(json.dumps({
                    "step": step + 1, "seconds": time.perf_counter() - t0, "first_loss": first, "recent": recent,
                    "settings": settings}) + "\n")
        if step + 1 in keep_at and step + 1 < cfg.steps:
            save_light(out / f"step-{step + 1}", light, *written,
                       summary(float(np.mean(recent)), time.perf_counter() - t0, step=step + 1))
    bar.close()
    if end < cfg.steps:
        return {"stopped_at": end}
    for part in written:
        if part is not None:
            part.eval()
    final = summary(float(np.mean(recent)), time.perf_counter() - t0)
    save_light(out / "final", light, *written, final)
    try:
        from igr.train.trainer import plot_log

        plot_log(log, out / "loss.png")
    except ImportError:
        pass
    return {"config": dataclasses.asdict(light), **final}


# -- evaluation ---------------------------------------------------------------------------------------------
@torch.no_grad()
def reference_set(vae: FullVAE, *, n: int, split: str = "test", batch: int = 16) -> dict[str, torch.Tensor]:
    """The first `n` items of `split` with the full VAE's work on them: garment, mask, person, the garment's
    latent and its full decoding, the person's latent."""
    from igr.data import SynthGarmentDataset

    cfg = vae.config
    data = SynthGarmentDataset(split, n, size=(cfg.height, cfg.width))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, n, batch):
        items = [data[i] for i in range(start, min(n, start + batch))]
        b = {k: torch.stack([it[k] for it in items]) for k in ("garment", "mask", "person")}
        b["latent"] = vae.encode(b["garment"])
        b["full"] = vae.decode(b["latent"])
        b["person_latent"] = vae.encode(b["person"])
        for k, v in b.items():
            parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def _means(m: dict[str, torch.Tensor], keys=("psnr", "ssim", "psnr_mask", "ssim_mask", "delta_e")) -> dict[str, float]:
    return {k: round(float(m[k].mean()), 4) for k in keys}


@torch.no_grad()
def evaluate(vae: FullVAE, ref: dict[str, torch.Tensor], decoder: LightDecoder, encoder: LightEncoder | None, *,
             batch: int = 16) -> tuple[dict[str, Any], torch.Tensor]:
    """The light decoder alone on the true garments' latents, against the full decoder's images and against the
    true garments (PSNR, SSIM, both whole and inside the garment mask, and the colour error ΔE76 inside the
    mask); the light encoder against the full one
    on the persons (relative L1 of the latents, and PSNR of their full decodings). -> (figures, the light
    decoder's images)."""
    from igr.metrics import image_metrics

    decoded = torch.cat([decoder(ref["latent"][i:i + batch]).clamp(-1, 1) for i in range(0, len(ref["latent"]), batch)])
    result = {"vs_full": _means(image_metrics(decoded, ref["full"], ref["mask"])),
              "vs_true": _means(image_metrics(decoded, ref["garment"], ref["mask"]))}
    if encoder is not None:
        z = torch.cat([encoder(ref["person"][i:i + batch]) for i in range(0, len(ref["person"]), batch)])
        zf = ref["person_latent"]
        mask = torch.ones_like(ref["mask"])
        via = torch.cat([vae.decode(z[i:i + batch]) for i in range(0, len(z), batch)])
        full = torch.cat([vae.decode(zf[i:i + batch]) for i in range(0, len(z), batch)])
        result["encoder"] = {"latent_rel_l1": round(float((z - zf).abs().mean() / zf.abs().mean()), 4),
                             "decoded_psnr": round(float(image_metrics(via, full, mask)["psnr"].mean()), 3)}
    return result, decoded


def counted_flops(fn, *args) -> int:
    """FLOPs of `fn(*args)` as the benchmarks count them (`benchmarks.measure.flop_counter`: torch's
    FlopCounterMode with the CPU attention kernel, which the full VAE's mid block runs, counted too)."""
    from benchmarks.measure import flop_counter

    with torch.no_grad(), flop_counter() as counter:
        fn(*args)
    return int(counter.get_total_flops())


@torch.no_grad()
def latency_ms(fn, x: torch.Tensor, *, runs: int = 5) -> float:
    """Best wall time of fn(x) over `runs` after one warm-up, in milliseconds (torch's current threads)."""
    from igr_edge.bench import time_calls

    return round(min(time_calls(lambda: fn(x), runs=runs, warmup=1)) * 1e3, 2)


# -- the sweep and its report --------------------------------------------------------------------------------
def run_name(light: LightVAEConfig) -> str:
    return "w" + "-".join(map(str, light.decoder)) + ("" if light.encoder == light.decoder else
                                                      "_e" + ("-".join(map(str, light.encoder)) or "none")) \
        + ("_rgb" if light.rgb_skip else "")


def file_kb(folder: Path) -> dict[str, float]:
    return {p.stem: round(p.stat().st_size / 1024, 1) for p in sorted(folder.glob("*.safetensors"))}


def sweep(vae: FullVAE, lights: list[LightVAEConfig], pool: dict[str, torch.Tensor], runs: str | Path,
          cfg: LightTrainConfig, *, pool_meta: dict, eval_n: int, source: str = "", grid_n: int = 6,
          student_gflop: float | None = None, progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (or take up, or reuse) one run per config under `runs`, evaluate each on the test split beside the
    full VAE -> (report, images for the grid). `student_gflop`: a student's restore with the full VAE (from the
    benchmarks), to say what it becomes with each row's parts."""
    from igr.metrics import image_metrics
    from igr.model.light import load_light

    runs = Path(runs)
    cfgv = vae.config
    h, w = cfgv.height, cfgv.width
    ref = reference_set(vae, n=eval_n)
    z1, x1 = ref["latent"][:1], ref["person"][:1]
    full = {"decoder_gflop": counted_flops(vae.decode, z1) / 1e9, "encoder_gflop": counted_flops(vae.encode, x1) / 1e9,
            "vs_true": _means(image_metrics(ref["full"], ref["garment"], ref["mask"])),
            "decoder_ms": latency_ms(vae.decode, z1), "encoder_ms": latency_ms(vae.encode, x1)}
    rows_out, images = [], {"true": ref["garment"][:grid_n], "full": ref["full"][:grid_n]}
    for light in lights:
        name = run_name(light)
        summary = distill_light(vae, light, pool, runs / name, cfg, pool_meta=pool_meta, source=source,
                                progress=progress)
        _, decoder, encoder, _ = load_light(runs / name / "final")
        scores, decoded = evaluate(vae, ref, decoder, encoder)
        images[name] = decoded[:grid_n]
        rows_out.append({
            "name": name, "decoder_widths": list(light.decoder), "encoder_widths": list(light.encoder),
            "blocks": list(light.blocks),
            "decoder_gflop": decoder_flops(light, h, w) / 1e9, "encoder_gflop": encoder_flops(light, h, w) / 1e9,
            "decoder_params": sum(p.numel() for p in decoder.parameters()),
            "encoder_params": sum(p.numel() for p in encoder.parameters()) if encoder is not None else 0,
            "files_kb": file_kb(runs / name / "final"),
            "decoder_ms": latency_ms(decoder, z1), "encoder_ms": latency_ms(encoder, x1) if encoder else None,
            "final_loss_mean50": summary["final_loss_mean50"], "train_hours": summary["hours"], **scores,
            "folder": str(runs / name / "final")})
    report = {"tool": "python -m distill light-sweep", "vae": source, "vae_digest": vae.digest(), "size": [h, w],
              "eval": {"split": "test", "n": eval_n}, "train": cfg.to_dict(), "pool": pool_meta,
              "threads": torch.get_num_threads(), "full": full, "rows": rows_out, "student_gflop": student_gflop}
    return report, images


def _g(x, fmt=".3f") -> str:
    return "–" if x is None else format(x, fmt)


def markdown(rep: dict[str, Any], command: str) -> str:
    f = rep["full"]
    h, w = rep["size"]
    lines = [
        "# Light VAE: decoder and encoder distilled from the full VAE", "",
        f"`{command}`", "",
        f"The light decoder alone on the latents of the first {rep['eval']['n']} {rep['eval']['split']}-split true "
        f"garments (full encoder), against the full decoder's image and against the true garment; the light "
        f"encoder against the full encoder on the same persons. {h}×{w}, FLOPs counted as torch's FlopCounterMode "
        f"does (the light parts' formula, `igr.model.light`, equals its count). Trained "
        f"{rep['train']['steps']} steps at batch {rep['train']['batch']} (lr {rep['train']['lr']:g}, edge weight "
        f"{rep['train']['edge_weight']:g}, EffNet weight {rep['train']['perceptual_weight']:g}) on a pool of "
        f"{rep['pool'].get('n')} train pairs. Latencies: best of 5 at batch 1 on {rep['threads']} torch thread(s) "
        f"of this shared CPU, so read them as ratios.", "",
        "| decoder widths | encoder widths | blocks | dec GFLOP | enc GFLOP | dec ms | PSNR vs full | SSIM vs full "
        "| SSIM mask vs full | PSNR vs true | SSIM vs true | SSIM mask vs true | enc latent rel. L1 | enc→full-dec PSNR "
        "| ΔE mask vs full | ΔE mask vs true | size KB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| full VAE | full VAE | – | {f['decoder_gflop']:.2f} | {f['encoder_gflop']:.2f} | {f['decoder_ms']:.1f} "
        f"| – | – | – | {f['vs_true']['psnr']:.2f} | {f['vs_true']['ssim']:.4f} | {f['vs_true']['ssim_mask']:.4f} "
        f"| – | – | – | {f['vs_true']['delta_e']:.1f} | – |"]
    for r in rep["rows"]:
        enc = r.get("encoder") or {}
        lines.append(
            f"| {','.join(map(str, r['decoder_widths']))} | {','.join(map(str, r['encoder_widths'])) or 'full'} "
            f"| {','.join(map(str, r['blocks']))} | {r['decoder_gflop']:.3f} | {r['encoder_gflop']:.3f} "
            f"| {r['decoder_ms']:.1f} | {r['vs_full']['psnr']:.2f} | {r['vs_full']['ssim']:.4f} "
            f"| {r['vs_full']['ssim_mask']:.4f} | {r['vs_true']['psnr']:.2f} | {r['vs_true']['ssim']:.4f} "
            f"| {r['vs_true']['ssim_mask']:.4f} | {_g(enc.get('latent_rel_l1'), '.4f')} "
            f"| {_g(enc.get('decoded_psnr'), '.2f')} | {r['vs_full']['delta_e']:.1f} | {r['vs_true']['delta_e']:.1f} "
            f"| {sum(r['files_kb'].values()):.0f} |")
    lines += ["", "Per restore, the light parts replace the full decoder and encoder: "
              + "; ".join(f"{r['name']} saves {f['decoder_gflop'] + f['encoder_gflop'] - r['decoder_gflop'] - r['encoder_gflop']:.2f}"
                          f" GFLOP ({f['decoder_gflop'] + f['encoder_gflop']:.2f} -> "
                          f"{r['decoder_gflop'] + r['encoder_gflop']:.2f})" for r in rep["rows"]) + ".", ""]
    if rep.get("student_gflop"):
        g = rep["student_gflop"]
        lines += [f"A student restore of {g:.2f} GFLOP with the full VAE (the benchmarks' figure) becomes "
                  + "; ".join(f"{g - f['decoder_gflop'] - f['encoder_gflop'] + r['decoder_gflop'] + r['encoder_gflop']:.2f}"
                              f" with {r['name']}" for r in rep["rows"]) + ".", ""]
    return "\n".join(lines)


def plot(rep: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows_ = rep["rows"]
    x = [r["decoder_gflop"] for r in rows_]
    ys = [[r["vs_full"]["psnr"] for r in rows_], [r["vs_true"]["ssim_mask"] for r in rows_]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(x, ys[0], marker="o")
    axes[0].set_ylabel("PSNR vs the full decoder (dB)")
    axes[1].plot(x, ys[1], marker="o", label="light decoder")
    axes[1].axhline(rep["full"]["vs_true"]["ssim_mask"], color="k", ls="--", lw=1,
                    label=f"full decoder ({rep['full']['decoder_gflop']:.2f} GFLOP)")
    axes[1].set_ylabel("masked SSIM vs the true garment")
    axes[1].legend(fontsize=8)
    for ax, y in zip(axes, ys):
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:.2g}" for v in x])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("light decoder GFLOP at {}×{}".format(*rep["size"]))
        ax.grid(alpha=0.3)
        for r, xi, yi in zip(rows_, x, y):
            ax.annotate(",".join(map(str, r["decoder_widths"])), (xi, yi), fontsize=7, textcoords="offset points",
                        xytext=(3, 3))
    fig.suptitle("Light decoder: FLOPs against quality (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(rep: dict[str, Any], images: dict[str, torch.Tensor], out: str | Path, *, command: str) -> list[Path]:
    """OUT.json, OUT.md, OUT.png (FLOPs against quality) and OUT-grid.png (true, full decoder, each width)."""
    from igr.images import contact_sheet, save_png, to_uint8

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".json"), out.with_suffix(".md"), out.with_suffix(".png"),
             out.parent / f"{out.name}-grid.png"]
    paths[0].write_text(json.dumps({**rep, "command": command}, indent=1) + "\n")
    paths[1].write_text(markdown(rep, command))
    plot(rep, paths[2])
    cols = list(images)
    per = {k: to_uint8(v) for k, v in images.items()}
    grid = [[per[c][i] for c in cols] for i in range(len(images["true"]))]
    save_png(contact_sheet(grid, title="columns: " + " | ".join(cols)), paths[3])
    return paths
