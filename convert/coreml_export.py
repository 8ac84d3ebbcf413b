"""Core ML variants of a single-call student: ML Program `.mlpackage`, image in and image out, fp16, and its
8-bit linear and 6-bit palettized weight compressions (coremltools.optimize).

fp16 everywhere but the normalization statistics: GroupNorm's mean, (x − mean)², their mean, + ε, √ and the
division by it, and the fused layer/instance norms, are computed in fp32 (coremltools' per-op precision), so a
square of an activation above 256 cannot overflow fp16's 65,504. The package carries its author, licence, a
description and one per input and output.

`torch.export` then `ct.convert` works on Linux; predictions need macOS. So on Linux the gate reloads the
saved package's spec and checks its inputs, outputs, types and ops (the numbers are the ONNX twin's, which is
gated); on macOS it also runs the model and compares it with the fp32 ONNX graph on the gate images.
"""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .gates import GateError, check_variant
from .specs import ExportSpec

MINIMUM_TARGET = "iOS16"          # image outputs of ML Programs need iOS 16 / macOS 13
COMPRESSION = {"coreml-fp16": None, "coreml-8bit": "linear-int8", "coreml-6bit": "palettize-6bit"}
AUTHOR = "IGR Edge"
LICENCE = "Apache-2.0"            # the project's (pyproject.toml); a pretrained image tower's own is added

# MIL ops of normalization statistics: coremltools writes GroupNorm as reshape, reduce_mean, sub, square, reduce_mean,
# add ε, sqrt, real_div, and LayerNorm as one layer_norm op
STATISTICS = frozenset({"reduce_mean", "square", "pow", "sqrt", "rsqrt", "reduce_sum_square", "reduce_l2_norm"})
STATISTICS_OPS = STATISTICS | {"layer_norm", "instance_norm", "batch_norm", "l2_norm"}
ELEMENTWISE_OPS = frozenset({"add", "sub", "mul", "real_div"})    # fp32 where an input is a statistic: x − mean, + ε, ÷ σ


def fp16_op(op) -> bool:
    """coremltools' op selector for FP16ComputePrecision: False keeps `op` in fp32. The normalization statistics stay
    fp32: the statistics ops themselves, and an elementwise op one of whose inputs is a statistic."""
    if op.op_type in STATISTICS_OPS:
        return False
    if op.op_type in ELEMENTWISE_OPS:
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else (value,):
                if var.op is not None and var.op.op_type in STATISTICS:
                    return False
    return True


def describe(mlmodel, variant: str, cfg, steps: int) -> None:
    """Author, licence, version and descriptions of the model and of each input and output."""
    c, h, w = cfg.latent_shape
    tower = cfg.encoder.provenance
    licence = LICENCE + (f"; image tower weights: {tower['weights']}, {tower['licence']}" if "licence" in tower else "")
    mlmodel.author, mlmodel.license, mlmodel.version = AUTHOR, licence, "1"
    mlmodel.short_description = (f"IGR garment restoration, single-call {steps}-step student ({variant}): the garment a "
                                 f"person wears, as a flat product image")
    mlmodel.input_description["person"] = (f"Person photo, RGB {cfg.width}×{cfg.height}: the photo scaled to fit "
                                           f"inside and centred on white")
    mlmodel.input_description["noise"] = (f"Standard normal noise, float32 1×{c}×{h}×{w}, drawn from a seed by the "
                                          f"splitmix64-boxmuller generator (a seed gives the same garment everywhere)")
    mlmodel.output_description["garment"] = f"Restored garment, RGB {cfg.width}×{cfg.height}"


class CoreMLStudent(nn.Module):
    """The single-call graph for Core ML: image input arrives as (1, 3, H, W) already scaled to [-1, 1] by the
    ImageType (scale 1/127.5, bias -1); the output is an RGB image (1, 3, H, W) in 0..255."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, person: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        s = self.student
        cond = s.model.condition(person)
        latent = noise
        for i, t in enumerate(s.plan):
            v = s.model.predict(latent, torch.full((noise.shape[0],), t, dtype=torch.long), cond)
            a, sd = s.coef[i]
            a_next, s_next = s.coef[i + 1]
            latent = a_next * (a * latent - sd * v) + s_next * (sd * latent + a * v)
        return ((s.model.decode(latent, light=s.model.config.light) + 1.0) * 127.5).round().clamp(0, 255)


def _canonical_manifest(package: Path) -> None:
    """coremltools names the package's items with random UUIDs: derive them from the item paths instead,
    so that the same model gives the same bytes."""
    path = package / "Manifest.json"
    manifest = json.loads(path.read_text())
    items = manifest.get("itemInfoEntries", {})
    renamed = {}
    for old, info in sorted(items.items(), key=lambda kv: kv[1].get("path", "")):
        digest = hashlib.sha256(info.get("path", old).encode()).hexdigest().upper()
        new = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        renamed[old] = new
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in items.items()}
    if manifest.get("rootModelIdentifier") in renamed:
        manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for extra in package.iterdir():          # e.g. executorch_debug_handle_mapping.json: debug only, not an item
        if extra.is_file() and extra.name != "Manifest.json":
            extra.unlink()


COMPRESSION_OPS = {"linear-int8": "constexpr_affine_dequantize", "palettize-6bit": "constexpr_lut_to_dense"}


def spec_check(package: Path, spec: ExportSpec, compression: str | None = None) -> dict[str, Any]:
    """Reload the saved package's spec (no prediction): I/O names and types, program ops, and the compression's
    dequantizing ops where the variant is compressed."""
    import coremltools as ct

    model = ct.models.MLModel(str(package), skip_model_load=True)
    proto = model.get_spec()
    inputs = {i.name: i.type.WhichOneof("Type") for i in proto.description.input}
    outputs = {o.name: o.type.WhichOneof("Type") for o in proto.description.output}
    expected_in = {"person": "imageType", "noise": "multiArrayType"}
    if inputs != expected_in or outputs != {"garment": "imageType"}:
        raise GateError(package.name, "Core ML I/O", 0.0, f"inputs {expected_in}, outputs garment image; got "
                        f"inputs {inputs}, outputs {outputs}")
    ops: dict[str, int] = {}
    for fn in proto.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                ops[op.type] = ops.get(op.type, 0) + 1
    if not ops:
        raise GateError(package.name, "Core ML program ops", 0.0, "> 0")
    if compression and not ops.get(COMPRESSION_OPS[compression]):
        raise GateError(package.name, f"Core ML {COMPRESSION_OPS[compression]} ops", 0.0,
                        f"> 0 for {compression} weights")
    fp32, statistics16 = precisions(proto)
    if statistics16:
        raise GateError(package.name, "Core ML normalization statistics ops in fp16 "
                        f"({', '.join(f'{k} {v}' for k, v in statistics16.items())})",
                        float(sum(statistics16.values())), "= 0")
    return {"inputs": inputs, "outputs": outputs, "ops": dict(sorted(ops.items())), "fp32_ops": fp32,
            "spec_version": proto.specificationVersion}


def precisions(proto) -> tuple[dict[str, int], dict[str, int]]:
    """A Core ML program's ops computed in fp32 (casts aside), and its normalization statistics ops computed in
    fp16 (none, as this exporter converts), each as {op type: count}."""
    fp32: dict[str, int] = {}
    statistics16: dict[str, int] = {}
    for fn in proto.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                dtype = op_dtype(op)
                if dtype == "FLOAT32" and op.type not in ("cast", "const"):
                    fp32[op.type] = fp32.get(op.type, 0) + 1
                elif dtype == "FLOAT16" and op.type in STATISTICS_OPS:
                    statistics16[op.type] = statistics16.get(op.type, 0) + 1
    return dict(sorted(fp32.items())), dict(sorted(statistics16.items()))


def op_dtype(op) -> str | None:
    """The element type of a Core ML program op's first tensor output ("FLOAT16", "FLOAT32", ...), or None."""
    from coremltools.proto import MIL_pb2

    for output in op.outputs:
        if output.type.WhichOneof("type") == "tensorType":
            return MIL_pb2.DataType.Name(output.type.tensorType.dataType)
    return None


def to_mlprogram(module: nn.Module, height: int, width: int, latent_shape: tuple[int, int, int], *,
                 compute_precision=None):
    """`torch.export` then `ct.convert` of a (person, noise) -> garment module: an ML Program with the person image in
    (1, 3, H, W) RGB scaled to [-1, 1], noise (1, C, h, w) float32 and the garment image out; fp16 but the
    normalization statistics unless `compute_precision` says otherwise."""
    import coremltools as ct

    c, h, w = latent_shape
    example = (torch.rand(1, 3, height, width) * 2 - 1, torch.randn(1, c, h, w))
    with torch.no_grad():
        program = torch.export.export(module, example, strict=False).run_decompositions({})
    return ct.convert(
        program, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, MINIMUM_TARGET),
        compute_precision=compute_precision or ct.transform.FP16ComputePrecision(op_selector=fp16_op),
        inputs=[ct.ImageType(name="person", shape=(1, 3, height, width), scale=1 / 127.5,
                             bias=[-1.0, -1.0, -1.0], color_layout=ct.colorlayout.RGB),
                ct.TensorType(name="noise", shape=(1, c, h, w), dtype=np.float32)],
        outputs=[ct.ImageType(name="garment", color_layout=ct.colorlayout.RGB)])


def convert_coreml(spec: ExportSpec, model, folder: Path, variant: str, *, persons: np.ndarray, truth: np.ndarray,
                   noise: np.ndarray, reference: np.ndarray) -> tuple[Path, dict[str, Any]]:
    """Convert, compress, save, reload and gate one Core ML variant; returns (package path, parity)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    module = CoreMLStudent(spec.build(model)).eval()
    mlmodel = to_mlprogram(module, cfg.height, cfg.width, cfg.latent_shape)
    mode = COMPRESSION[variant]
    if mode == "linear-int8":
        mlmodel = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")))
    elif mode == "palettize-6bit":
        mlmodel = cto.palettize_weights(mlmodel, cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=6)))
    describe(mlmodel, variant, cfg, len(module.student.plan))
    package = folder / "student.mlpackage"
    mlmodel.save(str(package))
    _canonical_manifest(package)
    parity: dict[str, Any] = {"minimum_deployment_target": MINIMUM_TARGET, "compression": mode or "none",
                              "spec": spec_check(package, spec, mode)}
    if platform.system() == "Darwin":
        parity.update(check_variant(variant, predict(package, persons, noise), reference, truth))
    else:
        parity["checked"] = "spec only on Linux (Core ML predictions need macOS; the tests marked coreml run them)"
    return package, parity


def predict(package: Path, persons: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Run a Core ML package image by image (macOS): uint8 NHWC persons -> uint8 NHWC garments."""
    import coremltools as ct
    from PIL import Image

    model = ct.models.MLModel(str(package))
    out = []
    for p, z in zip(persons, noise):
        result = model.predict({"person": Image.fromarray(p), "noise": z[None].astype(np.float32)})
        out.append(np.asarray(result["garment"].convert("RGB")))
    return np.stack(out)
