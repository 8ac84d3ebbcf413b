"""One declarative export spec per graph: tensor names, dtypes, shapes (the dynamic axis named), the torch
module to export, dummy inputs and the parity tolerance. The ONNX and Core ML exporters read these; neither
names a component itself (as optimum's export configs, and Apple's ml-stable-diffusion's gates).

Graphs (the same tensor names in Python, ONNX, Core ML, JS, Swift and Kotlin):
  vae_encoder    image (N, 3, H, W) float32 in [-1, 1]              -> latent (N, 4, h, w), scaled
  image_encoder  image (N, 3, H, W) float32 in [-1, 1]              -> image_tokens (N, T, D)
  garmnet        person_latent (N, 4, h, w)                         -> reference_0..k-1 (N, L_i, C_i)
  prior          person_latent (N, 4, h, w)                         -> prior (N, 4, h, w)   (aligned prior only)
  denoiser       latent, timestep (N,) int64, image_tokens, [prior,] reference_0..k-1  -> v (N, 4, h, w)
  vae_decoder    latent (N, 4, h, w)                                -> image (N, 3, H, W) in [-1, 1]
  student        person (N, H, W, 3) uint8 RGB, noise (N, 4, h, w)  -> garment (N, H, W, 3) uint8 RGB,
                 latent (N, 4, h, w) (the final latent, for parity checks)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from igr.config import IGRConfig

BATCH = "batch"              # the name of the one dynamic axis


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dtype and shape (BATCH marks the dynamic axis)."""
    name: str
    dtype: str                                   # float32 | uint8 | int64
    shape: tuple[int | str, ...]
    low: float | None = None                     # dummy inputs: integers drawn in [low, high)
    high: float | None = None

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else int(d) for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ExportSpec:
    """What to export and how to check it: the module factory, its I/O and the tolerance of its fp32 twin."""
    name: str
    module: Callable[..., nn.Module]             # (model, **options) -> the module whose forward is the graph
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    atol: float = 1e-4                           # fp32 ONNX vs torch, max abs error on float outputs
    min_psnr: float = 45.0                       # fp32 ONNX vs torch, on image outputs (dB)
    options: dict = field(default_factory=dict)  # passed to `module` (e.g. the student's steps)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dummy_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Seeded example inputs of the declared dtypes and shapes (batch 2: a dynamic batch needs it)."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for t in self.inputs:
            shape = t.concrete(batch)
            if t.dtype == "uint8":
                out.append(torch.randint(0, 256, shape, generator=g, dtype=torch.uint8))
            elif t.dtype == "int64":
                out.append(torch.randint(int(t.low or 0), int(t.high or 1000), shape, generator=g))
            else:
                x = torch.randn(shape, generator=g)
                out.append(x.clamp(-1, 1) if (t.low, t.high) == (-1, 1) else x)
        return tuple(out)

    def build(self, model) -> nn.Module:
        return self.module(model, **self.options).eval()

    def to_dict(self) -> dict:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}


def reference_shapes(config: IGRConfig) -> list[tuple[int, int]]:
    """(tokens, channels) of GarmNet's output per fusion block, in `block_names` order."""
    from igr.model import IGRModel

    with torch.device("meta"):
        model = IGRModel(config)
    c, h, w = config.latent_shape
    with torch.no_grad():
        refs = model.garmnet(torch.zeros(1, c, h, w, device="meta"))
    return [(int(refs[b].shape[1]), int(refs[b].shape[2])) for b in model.denoiser.block_names]


def specs_for(config: IGRConfig, *, student_steps: int | None = None) -> dict[str, ExportSpec]:
    """The export specs of a model with this config (and of its single-call graph at `student_steps`)."""
    from . import graphs

    c, h, w = config.latent_shape
    H, W = config.height, config.width
    tokens, dim = config.encoder.num_tokens, config.unet.cross_attention_dim
    image = TensorSpec("image", "float32", (BATCH, 3, H, W), -1, 1)
    latent = TensorSpec("latent", "float32", (BATCH, c, h, w))
    image_tokens = TensorSpec("image_tokens", "float32", (BATCH, tokens, dim))
    refs = tuple(TensorSpec(f"reference_{i}", "float32", (BATCH, n, ch))
                 for i, (n, ch) in enumerate(reference_shapes(config)))
    person_latent = TensorSpec("person_latent", "float32", (BATCH, c, h, w))
    prior = (TensorSpec("prior", "float32", (BATCH, c, h, w)),) if config.aligned_prior else ()
    specs = {
        "vae_encoder": ExportSpec("vae_encoder", graphs.VaeEncoder, (image,), (latent,)),
        "image_encoder": ExportSpec("image_encoder", graphs.ImageEncoderGraph, (image,), (image_tokens,)),
        "garmnet": ExportSpec("garmnet", graphs.GarmNetGraph, (person_latent,), refs),
        "denoiser": ExportSpec("denoiser", graphs.DenoiserGraph,
                               (latent, TensorSpec("timestep", "int64", (BATCH,), 0, config.train_timesteps),
                                image_tokens, *prior, *refs),
                               (TensorSpec("v", "float32", (BATCH, c, h, w)),)),
        "vae_decoder": ExportSpec("vae_decoder", graphs.VaeDecoder, (latent,), (image,)),
    }
    if config.aligned_prior:
        specs["prior"] = ExportSpec("prior", graphs.PriorGraph, (person_latent,), prior)
    if student_steps is not None:
        specs["student"] = ExportSpec(
            "student", graphs.StudentGraph,
            (TensorSpec("person", "uint8", (BATCH, H, W, 3)), TensorSpec("noise", "float32", (BATCH, c, h, w))),
            (TensorSpec("garment", "uint8", (BATCH, H, W, 3)), latent),
            options={"steps": student_steps})
    return specs


COMPONENT_GRAPHS = ("vae_encoder", "image_encoder", "garmnet", "denoiser", "vae_decoder")


def component_graphs(config: IGRConfig) -> list[str]:
    """The graphs of a components bundle: COMPONENT_GRAPHS, plus the aligned prior where the model has one."""
    return [*COMPONENT_GRAPHS[:3], *(("prior",) if config.aligned_prior else ()), *COMPONENT_GRAPHS[3:]]
