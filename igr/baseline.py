"""The baseline IGR must beat: a direct-regression UNet, person latent -> garment latent, L1.

Same frozen VAE as the teacher, about the same number of trainable parameters as IGR's diffusion stages
(GarmNet + denoiser + image-token projection) and the same training steps and batch: what a
deterministic model achieves for the same budget.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .config import ConfigError, IGRConfig, RegressionConfig, _from_dict
from .files import atomic_folder
from .model.igr import build_regression_unet, build_vae, regress

KIND = "regression-baseline"


class RegressionModel(nn.Module):
    """person image -> VAE latent -> UNet -> garment latent -> VAE decoder -> garment image."""

    def __init__(self, igr: IGRConfig, config: RegressionConfig) -> None:
        super().__init__()
        self.config, self.regression = igr, config
        self.vae = build_vae(igr.vae)
        self.unet = build_regression_unet(config, igr.vae.latent_channels)

    @classmethod
    def from_igr(cls, folder: str | Path, config: RegressionConfig) -> RegressionModel:
        """A baseline sharing the (frozen) VAE of an IGR model folder, e.g. the VAE stage's output."""
        from .model import IGRModel

        igr = IGRModel.from_pretrained(folder)
        model = cls(igr.config, config)
        model.vae.load_state_dict(igr.vae.state_dict())
        return model

    @classmethod
    def from_aligned_prior(cls, folder: str | Path) -> RegressionModel:
        """The aligned prior of an IGR model folder as a stand-alone baseline: its VAE and its regression UNet,
        which trained on the baseline's loss (L1 to the garment latent) with no gradient from the denoiser."""
        from .model import IGRModel

        igr = IGRModel.from_pretrained(folder)
        if igr.prior is None:
            raise ConfigError(f"{folder} has no aligned prior (its config.json has aligned_prior false)")
        model = cls(igr.config.replace(aligned_prior=False), igr.config.prior)
        model.vae.load_state_dict(igr.vae.state_dict())
        model.unet.load_state_dict(igr.prior.unet.state_dict())
        return model.eval()

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.mode() * self.config.vae.scaling_factor

    def predict(self, person: torch.Tensor) -> torch.Tensor:
        """Person image in [-1, 1] (B, 3, H, W) -> garment latent (B, 4, h, w)."""
        with torch.no_grad():
            z = self.encode(person)
        return self.predict_from(z)

    def predict_from(self, z: torch.Tensor) -> torch.Tensor:
        """Person latent (B, 4, h, w) -> garment latent."""
        return regress(self.unet, z)

    def loss(self, person: torch.Tensor, garment: torch.Tensor) -> torch.Tensor:
        """L1 between the predicted and the true garment latent."""
        with torch.no_grad():
            target = self.encode(garment)
        return F.l1_loss(self.predict(person), target)

    def loss_from(self, person_latent: torch.Tensor, garment_latent: torch.Tensor) -> torch.Tensor:
        """`loss` on cached latents."""
        return F.l1_loss(self.predict_from(person_latent), garment_latent)

    @torch.no_grad()
    def restore(self, person: torch.Tensor) -> torch.Tensor:
        z = self.predict(person)
        return self.vae.decode(z / self.config.vae.scaling_factor).sample.clamp(-1, 1)

    def save_pretrained(self, folder: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        with atomic_folder(folder) as tmp:
            (tmp / "config.json").write_text(json.dumps(
                {"kind": KIND, "igr": self.config.to_dict(), "regression": self.regression.__dict__},
                indent=2, sort_keys=True, default=list) + "\n")
            for name in ("vae", "unet"):
                state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                         for k, v in getattr(self, name).state_dict().items()}
                save_file(state, str(tmp / f"{name}.safetensors"))
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> RegressionModel:
        folder = Path(folder)
        data = json.loads((folder / "config.json").read_text())
        if data.get("kind") != KIND:
            raise ConfigError(f"{folder} is not a {KIND} folder")
        model = cls(IGRConfig.from_dict(data["igr"]), _from_dict(RegressionConfig, data["regression"], "regression"))
        for name in ("vae", "unet"):
            getattr(model, name).load_state_dict(load_file(str(folder / f"{name}.safetensors")))
        return model.float().eval()


def main(argv: list[str] | None = None) -> int:
    """`python -m igr.baseline --from-prior IGR_DIR --out DIR`: write an IGR model's aligned prior as a baseline folder."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m igr.baseline", description=main.__doc__.split(": ", 1)[1])
    p.add_argument("--from-prior", required=True, dest="source", help="IGR model folder with an aligned prior")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        model = RegressionModel.from_aligned_prior(args.source)
    except (FileNotFoundError, ConfigError) as e:
        print(f"python -m igr.baseline: error: {e}", file=sys.stderr)
        return 2
    print(model.save_pretrained(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
