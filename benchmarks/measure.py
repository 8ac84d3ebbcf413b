"""What the benchmark rows are divided by: FLOPs per restore (counted on the torch model a bundle came from),
this machine's float32 matrix-multiply peak, and quality on a fixed test subset."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sgemm_peak_gflops(*, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n×n×n matrix product with numpy's BLAS, all cores (2n³ FLOPs per product)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b                                                          # warm-up (threads, pages)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def model_dir_for(bundle_manifest: dict[str, Any], models: Path) -> Path | None:
    """The model folder a bundle was converted from (its provenance names it), if it is here."""
    name = (bundle_manifest.get("provenance") or {}).get("model")
    folder = models / name if name else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Q·Kᵀ and attention·V of one scaled-dot-product attention: 2·2·B·h·Lq·Lk·d (FlopCounterMode has no
    formula for the CPU flash-attention kernel and would count 0)."""
    b, h, lq, d = query_shape
    return 4 * b * h * lq * key_shape[-2] * d


def flop_counter():
    """torch's FlopCounterMode, counting the CPU attention kernel too."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    return FlopCounterMode(display=False, custom_mapping={cpu_sdpa: _sdpa_flops, cpu_sdpa.default: _sdpa_flops})


def flops_per_restore(model_dir: Path, *, steps: int | None = None, guidance: float | None = None,
                      sampler: str | None = None) -> dict[str, float]:
    """FLOPs of one restore at batch 1 (extractors, every denoiser call incl. guidance's, VAE decoding) and of
    one denoiser call, counted by torch's FlopCounterMode (matmuls, convolutions, and attention via
    `flop_counter`)."""
    import torch

    from igr.model import IGRModel
    from igr.pipeline import sample

    model = IGRModel.from_pretrained(model_dir).eval().requires_grad_(False)   # FlopCounterMode's module hooks
    cfg = model.config                                                       # need tensors without grad here
    person = torch.zeros(1, 3, cfg.height, cfg.width)
    with torch.inference_mode(False):
        with flop_counter() as total:
            sample(model, person, steps=steps, guidance_scale=guidance, sampler=sampler)
        cond = model.condition(person)
        latent = torch.zeros(1, *cfg.latent_shape)
        with flop_counter() as one:
            model.predict(latent, torch.tensor([500]), cond)
    return {"restore": float(total.get_total_flops()), "denoiser_call": float(one.get_total_flops())}


def quality(restore: Callable[[np.ndarray, list[int]], np.ndarray], *, n: int, teacher_dir: Path,
            size: tuple[int, int], batch: int = 8) -> dict[str, Any]:
    """SSIM inside the true garment mask (which a blank image cannot win), mask IoU, whole-image SSIM and our
    Fréchet distance (FD_garm, in the garment encoder of the model folder `teacher_dir`) on the first `n` test
    persons; `restore(persons uint8 NHWC, seeds) -> garments uint8 NHWC`, seed = item index."""
    import torch

    from igr.eval import evaluate
    from igr.metrics import GarmentFeatures
    from igr.model import IGRModel

    features = GarmentFeatures(IGRModel.from_pretrained(teacher_dir).image_encoder)

    def run(person: torch.Tensor, first: int) -> torch.Tensor:
        x = ((person + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = restore(np.ascontiguousarray(x), list(range(first, first + len(x))))
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1

    result = evaluate(run, features, n=n, size=size, batch=batch, boot=200, progress=False)
    return {"n": n, "split": "test", "ssim_mask": result["ssim_mask"]["mean"],
            "ssim_mask_ci95": list(result["ssim_mask"]["ci95"]), "mask_iou": result["mask_iou"]["mean"],
            "ssim": result["ssim"]["mean"], "ssim_ci95": list(result["ssim"]["ci95"]),
            "fd": result["fd"]["mean"], "psnr": result["psnr"]["mean"]}
