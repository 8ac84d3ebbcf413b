"""The light VAE: a TAESD-style decoder and encoder (Bohan 2023, "Tiny AutoEncoder for Stable Diffusion") that a
few-step student runs in place of the full AutoencoderKL, distilled from it (`python -m distill light-vae`).

Both work in the *scaled* latent space of `IGRModel.encode` / `decode` (latent = VAE mode × scaling_factor), so
a student's denoiser sees the same latents. They are plain `nn.Module`s of 3×3 convolutions, ReLU, nearest
upsampling and additions, with every shape fixed by the input's: no normalization, no attention, nothing an
ONNX or Core ML converter has to special-case. Widths per level come from `LightVAEConfig` (`igr.config`).

Decoder, coarse to fine: conv(4 -> w_L), then per level its residual blocks, and between levels
conv(w_l -> w_{l-1}) at the coarse size, nearest ×2, conv(w_{l-1} -> w_{l-1}) (so the full-resolution work is
one w_0 -> w_0 convolution plus the output convolution when that level has no blocks); conv(w_0 -> 3).
With `rgb_skip`, a 1×1 convolution of the latent to RGB, upsampled bilinearly, is added to the output: a path
for colour that does not squeeze through the narrow full-resolution levels (one Resize, linear, more).
Encoder, fine to coarse: conv(3 -> w_0), per level its blocks, a stride-2 conv(w_l -> w_{l+1}) between levels,
conv(w_L -> 4).

A model folder records them in config.json (`light: true`, `light_vae: {...}`) and holds them as
`light_decoder.safetensors` and `light_encoder.safetensors` (components of `IGRModel`); a distillation run's
folder holds the same two files beside `light.json` (`LIGHT_META`: the config and the VAE they were distilled
from), which `attach_light` reads into a student.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import ConfigError, LightVAEConfig, _from_dict
from ..files import atomic_folder

LIGHT_META = "light.json"            # a distillation run's folder: config, VAE digest, how it was trained
LIGHT_PARTS = ("light_decoder", "light_encoder")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1)


class Block(nn.Module):
    """Residual block: ReLU(x + conv(ReLU(conv(x))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(c, c), _conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class LightDecoder(nn.Module):
    """Scaled latent (B, 4, h, w) -> image (B, 3, f·h, f·w), f = `cfg.factor`, about [-1, 1] (not clamped:
    `IGRModel.decode(light=True)` clamps, as the full decoder's output is)."""

    def __init__(self, cfg: LightVAEConfig) -> None:
        super().__init__()
        w = cfg.decoder
        self.conv_in = _conv(cfg.latent_channels, w[-1])
        self.levels = nn.ModuleList()
        for level in reversed(range(len(w))):                       # coarse to fine
            parts = nn.Module()
            parts.blocks = nn.Sequential(*[Block(w[level]) for _ in range(cfg.blocks[level])])
            if level > 0:
                parts.narrow, parts.after_up = _conv(w[level], w[level - 1]), _conv(w[level - 1], w[level - 1])
            self.levels.append(parts)
        self.conv_out = _conv(w[0], 3)
        self.factor = cfg.factor
        self.rgb = nn.Conv2d(cfg.latent_channels, 3, 1) if cfg.rgb_skip else None

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_in(latent))                             # (B, w_L, h, w)
        for parts in self.levels:
            x = parts.blocks(x)
            if hasattr(parts, "narrow"):
                x = F.interpolate(F.relu(parts.narrow(x)), scale_factor=2.0, mode="nearest")   # (B, w_l-1, 2·, 2·)
                x = F.relu(parts.after_up(x))
        out = self.conv_out(x)                                       # (B, 3, f·h, f·w)
        if self.rgb is not None:
            out = out + F.interpolate(self.rgb(latent), scale_factor=float(self.factor), mode="bilinear",
                                      align_corners=False)
        return out


class LightEncoder(nn.Module):
    """Image in [-1, 1] (B, 3, H, W) -> scaled latent (B, 4, H/f, W/f), what `IGRModel.encode` gives."""

    def __init__(self, cfg: LightVAEConfig) -> None:
        super().__init__()
        w = cfg.encoder
        self.conv_in = _conv(3, w[0])
        self.levels = nn.ModuleList()
        for level in range(len(w)):                                  # fine to coarse
            parts = nn.Module()
            parts.blocks = nn.Sequential(*[Block(w[level]) for _ in range(cfg.blocks[level])])
            if level < len(w) - 1:
                parts.down = _conv(w[level], w[level + 1], stride=2)
            self.levels.append(parts)
        self.conv_out = _conv(w[-1], cfg.latent_channels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_in(image))                              # (B, w_0, H, W)
        for parts in self.levels:
            x = parts.blocks(x)
            if hasattr(parts, "down"):
                x = F.relu(parts.down(x))                            # (B, w_l+1, ·/2, ·/2)
        return self.conv_out(x)                                      # (B, 4, H/f, W/f)


def build_light(cfg: LightVAEConfig) -> tuple[LightDecoder, LightEncoder | None]:
    return LightDecoder(cfg), (LightEncoder(cfg) if cfg.encoder else None)


# -- FLOPs --------------------------------------------------------------------------------------------
def _conv_flops(cin: int, cout: int, h: int, w: int) -> int:
    """A 3×3 convolution's multiply-adds ×2 at output size h×w (bias not counted, as torch's counter does)."""
    return 2 * 9 * cin * cout * h * w


def decoder_flops(cfg: LightVAEConfig, height: int, width: int) -> int:
    """FLOPs of one light decoding of a height×width image (what torch's FlopCounterMode counts:
    `distill.light.counted_flops`)."""
    w, f = cfg.decoder, cfg.factor
    h_, w_ = height // f, width // f
    total = _conv_flops(cfg.latent_channels, w[-1], h_, w_)
    for level in reversed(range(len(w))):
        total += cfg.blocks[level] * 2 * _conv_flops(w[level], w[level], h_, w_)
        if level > 0:
            total += _conv_flops(w[level], w[level - 1], h_, w_)
            h_, w_ = h_ * 2, w_ * 2
            total += _conv_flops(w[level - 1], w[level - 1], h_, w_)
    skip = 2 * cfg.latent_channels * 3 * (height // f) * (width // f) if cfg.rgb_skip else 0   # the 1×1 colour path
    return total + _conv_flops(w[0], 3, h_, w_) + skip


def encoder_flops(cfg: LightVAEConfig, height: int, width: int) -> int:
    """FLOPs of one light encoding of a height×width image (0 without a light encoder)."""
    w = cfg.encoder
    if not w:
        return 0
    h_, w_ = height, width
    total = _conv_flops(3, w[0], h_, w_)
    for level in range(len(w)):
        total += cfg.blocks[level] * 2 * _conv_flops(w[level], w[level], h_, w_)
        if level < len(w) - 1:
            h_, w_ = -(-h_ // 2), -(-w_ // 2)
            total += _conv_flops(w[level], w[level + 1], h_, w_)
    return total + _conv_flops(w[-1], cfg.latent_channels, h_, w_)


# -- a distillation run's folder ------------------------------------------------------------------------
def save_light(folder: str | Path, cfg: LightVAEConfig, decoder: LightDecoder, encoder: LightEncoder | None,
               meta: dict) -> Path:
    """Write light.json (config + `meta`) and the parts' safetensors, atomically."""
    with atomic_folder(folder) as tmp:
        (tmp / LIGHT_META).write_text(json.dumps({"config": _config_dict(cfg), **meta}, indent=1) + "\n")
        for name, part in zip(LIGHT_PARTS, (decoder, encoder)):
            if part is not None:
                state = {k: v.detach().cpu().contiguous() for k, v in part.state_dict().items()}
                save_file(state, str(tmp / f"{name}.safetensors"), metadata={"format": "pt"})
    return Path(folder)


def _config_dict(cfg: LightVAEConfig) -> dict:
    import dataclasses

    return dataclasses.asdict(cfg)


def load_light(folder: str | Path) -> tuple[LightVAEConfig, LightDecoder, LightEncoder | None, dict]:
    """Read a folder written by `save_light` -> (config, decoder, encoder or None, the rest of light.json)."""
    folder = Path(folder)
    if not (folder / LIGHT_META).is_file():
        raise FileNotFoundError(f"{folder} has no {LIGHT_META} (not a light VAE folder: make one with "
                                f"python -m distill light-vae)")
    meta = json.loads((folder / LIGHT_META).read_text())
    cfg = _from_dict(LightVAEConfig, meta.pop("config"), f"{folder / LIGHT_META}: config")
    decoder, encoder = build_light(cfg)
    for name, part in zip(LIGHT_PARTS, (decoder, encoder)):
        if part is not None:
            _load_into(part, folder / f"{name}.safetensors")
    return cfg, decoder.eval(), (encoder.eval() if encoder is not None else None), meta


def can_grow(old: LightVAEConfig, new: LightVAEConfig) -> bool:
    """Whether `grow_into` can carry parts of `old` into parts of `new`: the same levels, latent channels, colour
    path and encoder presence; no width or block count smaller."""
    def ge(a, b):
        return len(a) == len(b) and all(x >= y for x, y in zip(a, b))

    return (len(new.decoder) == len(old.decoder) and new.latent_channels == old.latent_channels
            and new.rgb_skip == old.rgb_skip and bool(new.encoder) == bool(old.encoder)
            and ge(new.decoder, old.decoder) and ge(new.blocks, old.blocks)
            and (not new.encoder or ge(new.encoder, old.encoder)))


@torch.no_grad()
def grow_into(new: nn.Module, old: nn.Module) -> None:
    """Copy a narrower or shallower light part (`old`) into a wider or deeper one of the same kind (`new`, built
    from a config that `can_grow` accepts), so that `new` computes what `old` did (net2net-style). Each kept
    weight goes into the leading slice of its wider tensor; weights that read the added channels are zeroed, so
    those channels (random on their way in) reach nothing until training moves them; an added residual block
    gets a zero second convolution, so it passes its input (non-negative, after a ReLU) through unchanged."""
    before = old.state_dict()
    for name, param in new.state_dict().items():
        if name in before:
            src = before[name]
            if param.dim() > 1 and param.shape[1] > src.shape[1]:
                param[:, src.shape[1]:] = 0.0                      # reads the added input channels: silent
            param[tuple(slice(0, n) for n in src.shape)] = src
        elif ".conv2." in name:                                     # an added block: its residual starts at zero
            param.zero_()


def _load_into(module: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (its config lists this part)")
    missing, unexpected = module.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")


def attach_light(model, folder: str | Path):
    """Give an `IGRModel` (a student) the light parts of a distillation run's folder, in place; returns it.

    Refuses parts distilled from another VAE than the model's (light.json records the VAE's digest)."""
    from ..train.cache import digest

    cfg, decoder, encoder, meta = load_light(folder)
    mine = digest(model.vae)
    if meta.get("vae") != mine:
        raise ConfigError(f"{folder} was distilled from another VAE (digest {meta.get('vae')}, this model's {mine}): "
                          f"distill them again with python -m distill light-vae --vae <this model>")
    model.config = model.config.replace(light=True, light_vae=cfg)   # checks the level count against the VAE
    model.light_decoder, model.light_encoder = decoder, encoder
    return model


__all__ = ["LIGHT_META", "LIGHT_PARTS", "Block", "LightDecoder", "LightEncoder", "attach_light", "build_light",
           "decoder_flops", "encoder_flops", "load_light", "save_light"]
