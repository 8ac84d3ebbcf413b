"""IGR from a local Stable Diffusion folder: the layout diffusers' `save_pretrained` writes for SD 1.5.

    FOLDER/unet/config.json           + diffusion_pytorch_model.safetensors   (UNet2DConditionModel)
    FOLDER/vae/config.json            + diffusion_pytorch_model.safetensors   (AutoencoderKL)
    FOLDER/image_encoder/config.json  + model.safetensors                     (CLIPVisionModelWithProjection,
                                                                               as IP-Adapter's image_encoder/)

The architecture comes from the three config.json files (`sd_config`), everything else (resolution, noise
schedule, sampler, image tokens) from a base IGR config such as the `sd15` preset. `from_sd_folder` loads
the weights: GarmDenoiser and GarmNet both start from the UNet (GarmNet a copy, as in the paper), the VAE
and the image tower as they are (both frozen by the diffusion stages), the IP-Adapter branch of each
cross-attention from its text branch's K/V (as IP-Adapter initialises it); the image-token projection, the
learned prompt tokens and an aligned prior start fresh. Files are read as safetensors only (never a pickle),
fp32, fp16 or sharded; the VAE's pre-0.14 attention names (query/key/value/proj_attn) are renamed. Any part
that is missing or does not fit raises one `PretrainedFolderError` naming the file and what was expected.

`write_sd_folder` writes a folder of that layout with random weights from an IGR config: the tests' tiny
stand-ins, and a smoke run of the paper-scale commands without a download.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import CLIPVisionModelWithProjection

from ..config import ConfigError, EncoderConfig, IGRConfig, UNetConfig, VAEConfig
from .igr import DecoupledCrossAttention, IGRModel, build_unet, build_vae, clip_vision_config

# part -> (weights file stem, the class its config.json describes)
PARTS = {"unet": ("diffusion_pytorch_model", "UNet2DConditionModel"),
         "vae": ("diffusion_pytorch_model", "AutoencoderKL"),
         "image_encoder": ("model", "CLIPVisionModelWithProjection")}
# config.json fields that do not change the weights' shapes or the computation IGR runs
_FREE = {"unet": {"sample_size"},
         "vae": {"sample_size", "scaling_factor", "force_upcast", "shift_factor", "latents_mean", "latents_std"},
         "image_encoder": set()}
_CLIP_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
                "patch_size", "projection_dim", "num_channels", "hidden_act", "layer_norm_eps")
_OLD_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


class PretrainedFolderError(ConfigError):
    """A Stable Diffusion folder with a missing part, or a part that does not fit the layout IGR loads."""


def _read_config(folder: Path, part: str) -> dict:
    path = folder / part / "config.json"
    if not path.is_file():
        raise PretrainedFolderError(f"{path} is missing: --pretrained expects the diffusers SD 1.5 layout "
                                    f"(unet/, vae/, image_encoder/, each config.json + safetensors weights)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PretrainedFolderError(f"{path} is not readable JSON: {e}") from e
    cls = data.get("_class_name") or (data.get("architectures") or [None])[0]
    if cls is not None and cls != PARTS[part][1]:
        raise PretrainedFolderError(f"{path} describes a {cls}; {part}/ must hold a {PARTS[part][1]}")
    return data


def _field(path: Path, data: dict, name: str, kind: type | tuple[type, ...]):
    if not isinstance(data.get(name), kind):
        raise PretrainedFolderError(f"{path}: {name} is {data.get(name)!r}, expected {getattr(kind, '__name__', kind)}")
    return data[name]


def _compare(path: Path, theirs: dict, ours: dict, free: set[str], what: str) -> None:
    """Every field of `theirs` that `ours` also has must agree (JSON-normalised), but the `free` ones."""
    norm = lambda v: json.loads(json.dumps(v))
    for key, value in theirs.items():
        if key.startswith("_") or key in free or key not in ours:
            continue
        if norm(value) != norm(ours[key]):
            raise PretrainedFolderError(f"{path}: {key} is {json.dumps(value)}, {what} expects "
                                        f"{json.dumps(norm(ours[key]))}")


def sd_config(folder: str | Path, base: IGRConfig) -> IGRConfig:
    """The IGR config of a Stable Diffusion folder: its UNet, VAE and image tower, with `base`'s other fields."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainedFolderError(f"--pretrained {folder} is not a folder")
    unet, vae, enc = (_read_config(folder, p) for p in PARTS)
    upath, vpath, epath = (folder / p / "config.json" for p in PARTS)

    vae_cfg = VAEConfig(channels=tuple(_field(vpath, vae, "block_out_channels", list)),
                        layers_per_block=_field(vpath, vae, "layers_per_block", int),
                        latent_channels=_field(vpath, vae, "latent_channels", int),
                        norm_groups=_field(vpath, vae, "norm_num_groups", int),
                        scaling_factor=float(vae.get("scaling_factor", 0.18215)))
    with torch.device("meta"):
        _compare(vpath, vae, dict(build_vae(vae_cfg).config), _FREE["vae"], "IGR's AutoencoderKL")

    down = _field(upath, unet, "down_block_types", list)
    if set(down) - {"CrossAttnDownBlock2D", "DownBlock2D"}:
        raise PretrainedFolderError(f"{upath}: down_block_types {down}; IGR builds CrossAttnDownBlock2D and "
                                    "DownBlock2D only (the SD 1.x layout)")
    mid = unet.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid not in ("UNetMidBlock2DCrossAttn", None):
        raise PretrainedFolderError(f"{upath}: mid_block_type {mid!r}; IGR builds UNetMidBlock2DCrossAttn or none")
    unet_cfg = UNetConfig(channels=tuple(_field(upath, unet, "block_out_channels", list)),
                          attention=tuple(t == "CrossAttnDownBlock2D" for t in down),
                          layers_per_block=_field(upath, unet, "layers_per_block", int),
                          heads=_field(upath, unet, "attention_head_dim", int),
                          cross_attention_dim=_field(upath, unet, "cross_attention_dim", int),
                          prompt_tokens=base.unet.prompt_tokens,
                          norm_groups=_field(upath, unet, "norm_num_groups", int),
                          mid_attention=mid is not None)
    with torch.device("meta"):
        ours = dict(build_unet(unet_cfg, vae_cfg.latent_channels).config)
    _compare(upath, unet, ours, _FREE["unet"], f"IGR's denoiser on this VAE's {vae_cfg.latent_channels}-channel latent")

    if enc.get("model_type", "clip_vision_model") != "clip_vision_model":
        raise PretrainedFolderError(f"{epath}: model_type {enc.get('model_type')!r}; image_encoder/ must hold a "
                                    "CLIPVisionModelWithProjection (model_type clip_vision_model), as IP-Adapter's")
    enc_cfg = dataclasses.replace(
        base.encoder if base.encoder.backbone == "clip" else EncoderConfig(tokens=base.encoder.num_tokens),
        image_size=_field(epath, enc, "image_size", int), patch_size=_field(epath, enc, "patch_size", int),
        hidden_size=_field(epath, enc, "hidden_size", int), layers=_field(epath, enc, "num_hidden_layers", int),
        heads=_field(epath, enc, "num_attention_heads", int),
        intermediate_size=_field(epath, enc, "intermediate_size", int),
        projection_dim=_field(epath, enc, "projection_dim", int), hidden_act=enc.get("hidden_act", "quick_gelu"),
        normalize="clip")
    clip = clip_vision_config(enc_cfg).to_dict()
    _compare(epath, {k: enc[k] for k in _CLIP_FIELDS if k in enc}, clip, set(), "IGR's CLIP tower")

    config = base.replace(vae=vae_cfg, unet=unet_cfg, encoder=enc_cfg)
    multiple = config.latent_factor * 2 ** (len(unet_cfg.channels) - 1)
    if config.height % multiple or config.width % multiple:
        raise ConfigError(f"{config.height}x{config.width} images: this VAE and UNet need sides that are multiples "
                          f"of {multiple}")
    return config


def _weights_file(folder: Path, part: str) -> list[Path]:
    """The part's safetensors file(s): plain, fp16 variant, or sharded with an index."""
    base = folder / part
    stem = PARTS[part][0]
    for name in (f"{stem}.safetensors", f"{stem}.fp16.safetensors"):
        if (base / name).is_file():
            return [base / name]
    for name in (f"{stem}.safetensors.index.json", f"{stem}.safetensors.index.fp16.json"):
        if (base / name).is_file():
            shards = sorted(set(json.loads((base / name).read_text())["weight_map"].values()))
            missing = [s for s in shards if not (base / s).is_file()]
            if missing:
                raise PretrainedFolderError(f"{base / name} lists {base / missing[0]}, which is missing")
            return [base / s for s in shards]
    pickles = sorted(p.name for p in base.glob("*.bin"))
    hint = (f" ({', '.join(pickles)} is a pickle, which IGR never loads: convert it with "
            f"safetensors' convert script or save_pretrained(safe_serialization=True))") if pickles else ""
    raise PretrainedFolderError(f"{base / (stem + '.safetensors')} is missing{hint}")


def _rename(part: str, key: str) -> str:
    if part == "vae" and ".attentions." in key:
        for old, new in _OLD_VAE_ATTENTION.items():
            key = key.replace(old, new)
    return key


def _shapes(files: list[Path], part: str) -> dict[str, tuple[tuple[int, ...], Path]]:
    out = {}
    for path in files:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                if part == "image_encoder" and key.endswith("position_ids"):
                    continue                         # a buffer older transformers saved; rebuilt, not loaded
                out[_rename(part, key)] = (tuple(f.get_slice(key).get_shape()), path)
    return out


def check_part(folder: str | Path, part: str, expected: dict[str, tuple[int, ...]]) -> list[Path]:
    """Compare a part's tensors (names and shapes, read from the file headers) with `expected`; one error for the
    first problem, naming the file and the expected shape. Returns the part's files."""
    files = _weights_file(Path(folder), part)
    found = _shapes(files, part)
    config = Path(folder) / part / "config.json"
    problems = []
    for key, shape in expected.items():
        if key not in found:
            problems.append(f"{files[0]} lacks {key} (expected shape {shape}, from {config})")
        elif found[key][0] != shape:
            problems.append(f"{found[key][1]}: {key} has shape {found[key][0]}, {config} implies {shape}")
    for key in sorted(set(found) - set(expected)):
        problems.append(f"{found[key][1]} holds {key} {found[key][0]}, which {config}'s layout has no place for")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PretrainedFolderError(problems[0] + more)
    return files


def _load(files: list[Path], part: str) -> dict[str, torch.Tensor]:
    out = {}
    for path in files:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                if not (part == "image_encoder" and key.endswith("position_ids")):
                    out[_rename(part, key)] = f.get_tensor(key).float()
    return out


def from_sd_folder(folder: str | Path, base: IGRConfig) -> IGRModel:
    """An IGR model whose UNets, VAE and image tower start from a Stable Diffusion folder (see the module doc)."""
    folder = Path(folder)
    config = sd_config(folder, base)
    c = config.vae.latent_channels
    with torch.device("meta"):                        # the shapes each file must have, at no memory cost
        expected = {"unet": build_unet(config.unet, c).state_dict(), "vae": build_vae(config.vae).state_dict(),
                    "image_encoder": CLIPVisionModelWithProjection(clip_vision_config(config.encoder)).state_dict()}
    files = {part: check_part(folder, part, {k: tuple(v.shape) for k, v in expected[part].items()})
             for part in PARTS}
    model = IGRModel(config, pretrained=False)
    with torch.no_grad():
        model.vae.load_state_dict(_load(files["vae"], "vae"))
        model.image_encoder.clip.load_state_dict(_load(files["image_encoder"], "image_encoder"))
        unet = _load(files["unet"], "unet")
        garm = model.garmnet.unet.state_dict()
        model.garmnet.unet.load_state_dict({k: v for k, v in unet.items() if k in garm})       # a copy, cut short
        conv_in = unet.pop("conv_in.weight")
        missing, _ = model.denoiser.unet.load_state_dict(unet, strict=False)
        own = [k for k in missing if ".processor." not in k and k != "conv_in.weight"]
        if own:
            raise RuntimeError(f"denoiser tensors left unloaded: {own[:3]}")
        weight = model.denoiser.unet.conv_in.weight       # (C, c or 2c with an aligned prior, 3, 3)
        weight.zero_()[:, :c].copy_(conv_in)              # the prior's channels start at zero: SD's function first
        for name, proc in model.denoiser.unet.attn_processors.items():
            if isinstance(proc, DecoupledCrossAttention):  # IP-Adapter: the image branch starts as the text branch
                attn = model.denoiser.unet.get_submodule(name.removesuffix(".processor"))
                proc.to_k_ip.weight.copy_(attn.to_k.weight)
                proc.to_v_ip.weight.copy_(attn.to_v.weight)
    return model


def write_sd_folder(config: IGRConfig, folder: str | Path, *, seed: int = 0) -> Path:
    """A Stable Diffusion folder of `config`'s UNet, VAE and CLIP tower with random weights, written by diffusers'
    and transformers' own `save_pretrained` (the tests' stand-ins; a smoke run without a download)."""
    if config.encoder.backbone != "clip":
        raise ConfigError("an SD folder's image_encoder/ is a CLIP tower: encoder.backbone must be clip")
    folder = Path(folder)
    torch.manual_seed(seed)
    build_unet(config.unet, config.vae.latent_channels).save_pretrained(folder / "unet")
    build_vae(config.vae).save_pretrained(folder / "vae")
    CLIPVisionModelWithProjection(clip_vision_config(config.encoder)).save_pretrained(folder / "image_encoder")
    return folder


__all__ = ["PARTS", "PretrainedFolderError", "check_part", "from_sd_folder", "sd_config", "write_sd_folder"]
