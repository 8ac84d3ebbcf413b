"""Parity gates: a converted graph is written only if it matches its source within the spec's bounds.

fp32 ONNX vs torch, at fixed inputs: max abs error of every float output <= spec.atol (the final latent of a
single-call graph), PSNR of image outputs >= spec.min_psnr. Reduced precision (int8, QDQ, fp16, Core ML
compressions) vs the fp32 graph on >= 32 test images: PSNR >= 30 dB and SSIM to the ground truth no more
than 0.01 below the fp32 graph's; an fp32 graph with its ops rewritten (onnx-mobile) >= 40 dB. A failure raises GateError naming the variant, the figure and the bound.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .specs import ExportSpec

VARIANT_MIN_PSNR = 30.0
VARIANT_MAX_SSIM_DROP = 0.01
FP32_REWRITE_MIN_PSNR = 40.0      # an fp32 graph with its ops rewritten (onnx-mobile): the SDK's 40 dB contract


class GateError(RuntimeError):
    """A converted graph failed its parity gate and was not written."""

    def __init__(self, variant: str, figure: str, value: float, bound: str) -> None:
        super().__init__(f"{variant}: {figure} = {value:.6g} fails the bound {bound}; not written")
        self.variant, self.figure, self.value, self.bound = variant, figure, value, bound


class GraphCheckError(GateError):
    """An ONNX graph that ONNX's own checker or strict shape inference refuses: no runtime is promised to load it."""

    def __init__(self, variant: str, errors: list[str]) -> None:
        RuntimeError.__init__(self, f"{variant}: {'; '.join(errors)}; not written")
        self.variant, self.figure, self.value, self.bound = variant, "ONNX checker errors", len(errors), "= 0"


def check_graph(variant: str, path: Path) -> None:
    """`onnx.checker` full check and strict shape inference on an ONNX file; raises GraphCheckError."""
    from .onnx_export import graph_errors

    errors = graph_errors(path)
    if errors:
        raise GraphCheckError(variant, errors)


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess, names: list[str], inputs: tuple[np.ndarray, ...], batch: int = 8) -> list[np.ndarray]:
    """Run a session over inputs in batches; outputs concatenated."""
    n = len(inputs[0])
    parts = [sess.run(None, {k: v[i:i + batch] for k, v in zip(names, inputs)}) for i in range(0, n, batch)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def check_fp32(spec: ExportSpec, model, path: Path, inputs: tuple[torch.Tensor, ...] | None = None) -> dict[str, Any]:
    """fp32 ONNX against torch on the same inputs (the spec's dummy inputs unless given)."""
    inputs = inputs if inputs is not None else spec.dummy_inputs(2, seed=1)
    with torch.no_grad():
        ref = spec.build(model)(*inputs)
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    got = run(session(path), spec.input_names, tuple(x.numpy() for x in inputs))
    figures: dict[str, Any] = {}
    for t, r, g in zip(spec.outputs, ref, got):
        if t.dtype == "uint8":
            value = psnr(r, g, 255.0)
            figures[f"{t.name}_psnr_db"] = value
            if value < spec.min_psnr:
                raise GateError(f"{spec.name} onnx-fp32", f"{t.name} PSNR vs torch (dB)", value, f">= {spec.min_psnr}")
        else:
            err = float(np.abs(r - g).max())
            figures[f"{t.name}_max_abs_error"] = err
            if err > spec.atol:
                raise GateError(f"{spec.name} onnx-fp32", f"{t.name} max abs error vs torch", err, f"<= {spec.atol}")
            if t.name == "image":
                value = psnr((r + 1) * 127.5, (g + 1) * 127.5, 255.0)
                figures["image_psnr_db"] = value
                if value < spec.min_psnr:
                    raise GateError(f"{spec.name} onnx-fp32", "image PSNR vs torch (dB)", value, f">= {spec.min_psnr}")
    return figures


def ssim_to_truth(garments: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image SSIM of uint8 NHWC garments against uint8 NHWC ground truth (torchmetrics, as igr.eval)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    def t(x):
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0

    return ssim(t(garments), t(truth), data_range=1.0, reduction="none").numpy()


def check_variant(name: str, outputs: np.ndarray, reference: np.ndarray, truth: np.ndarray, *,
                  min_psnr: float = VARIANT_MIN_PSNR) -> dict[str, float]:
    """A reduced-precision (or rewritten) variant's garments against the fp32 graph's on the same test images."""
    value = psnr(outputs, reference, 255.0)
    ref_ssim, var_ssim = ssim_to_truth(reference, truth), ssim_to_truth(outputs, truth)
    drop = float(ref_ssim.mean() - var_ssim.mean())
    figures = {"psnr_vs_fp32_db": value, "ssim": float(var_ssim.mean()), "ssim_fp32": float(ref_ssim.mean()),
               "ssim_drop": drop, "n": int(len(outputs))}
    if value < min_psnr:
        raise GateError(name, "PSNR vs fp32 (dB)", value, f">= {min_psnr}")
    if drop > VARIANT_MAX_SSIM_DROP:
        raise GateError(name, "SSIM-to-ground-truth drop vs fp32", drop, f"<= {VARIANT_MAX_SSIM_DROP}")
    return figures


def gate_images(config, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `n` test-split persons and garments (uint8 NHWC) and each item's seeded noise."""
    from igr.eval import split_batches
    from igr.images import to_uint8
    from igr.pipeline import item_noise

    person, garment, _ = next(split_batches("test", n, (config.height, config.width), n))
    return (np.stack(to_uint8(person)), np.stack(to_uint8(garment)),
            item_noise(config, seed, 0, n).numpy())


Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]
