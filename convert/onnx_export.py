"""ONNX Runtime variants of a graph: fp32 export, int8 dynamic, int8 QDQ (static, calibrated), fp16, .ort.

Every function reads an `ExportSpec` and writes one file; none names a component.
"""
from __future__ import annotations

import inspect
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
import torch

from igr.files import atomic_file

from .specs import BATCH, ExportSpec

OPSET = 18
# ops kept in float32 in the fp16 variant: normalizations, softmax and the reductions around them
FP32_OPS = ["GroupNormalization", "LayerNormalization", "InstanceNormalization", "Softmax", "ReduceMean",
            "ReduceSum", "Pow", "Sqrt", "Div", "Exp", "Log", "Resize", "Cast", "Round", "Clip"]


def export_fp32(spec: ExportSpec, model, path: str | Path, *, batch: int = 2) -> Path:
    """torch.onnx.export (dynamo, opset 18) with the spec's names and a dynamic batch; metadata stripped."""
    path = Path(path)
    module = spec.build(model)
    args = spec.dummy_inputs(batch)
    # Dim.AUTO, not a named Dim with a range: a range the model's guards narrow (the exporter suggests batch <= 63
    # for some graphs) makes torch.onnx trace everything twice; the symbol is renamed to BATCH below
    dynamic = tuple({0: torch.export.Dim.AUTO} if BATCH in t.shape else None for t in spec.inputs)
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):    # forward(a, b, *rest): rest is one tuple to export
        named = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        dynamic = (*dynamic[:named], tuple(dynamic[named:]))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, input_names=spec.input_names,
                                    output_names=spec.output_names, dynamic_shapes=dynamic, optimize=True,
                                    verbose=False)
    proto = program.model_proto
    _name_batch(proto, spec)
    fixed = [f"{v.name} (batch {v.type.tensor_type.shape.dim[0].dim_value})"
             for v, t in zip([*proto.graph.input, *proto.graph.output], [*spec.inputs, *spec.outputs])
             if BATCH in t.shape and not v.type.tensor_type.shape.dim[0].dim_param]
    if fixed:
        raise ValueError(f"the exported {spec.name} graph fixed the batch of {', '.join(fixed)}: an op in its torch "
                         f"code reads the batch as a Python int (len(x), int(x.shape[0])); derive it from a tensor")
    clean(proto)
    save(proto, path)
    return path


def _name_batch(proto: onnx.ModelProto, spec: ExportSpec) -> None:
    """Rename the exporter's symbol for the batch (s0, s81...) to BATCH in every shape of the graph."""
    symbols = {v.type.tensor_type.shape.dim[0].dim_param for v, t in zip(proto.graph.input, spec.inputs)
               if BATCH in t.shape} - {""}
    if not symbols:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(symbols))) + r")\b")
    for v in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_param = pattern.sub(BATCH, d.dim_param)


def clean(proto: onnx.ModelProto) -> None:
    """Drop what makes files bulky or unreproducible: metadata props, doc strings, producer version."""
    del proto.metadata_props[:]
    proto.doc_string = ""
    proto.producer_version = ""
    for node in proto.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    for f in proto.functions:
        for node in f.node:
            node.doc_string = ""
            del node.metadata_props[:]
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        value.doc_string = ""
        del value.metadata_props[:]
    for init in proto.graph.initializer:
        init.doc_string = ""
        del init.metadata_props[:]


def save(proto: onnx.ModelProto, path: Path) -> Path:
    """Check, then write atomically (one file, no external data)."""
    onnx.checker.check_model(proto)
    with atomic_file(path) as tmp:
        tmp.write_bytes(proto.SerializeToString(deterministic=True))
    return path


def _tidy(path: Path) -> Path:
    proto = onnx.load(str(path))
    clean(proto)
    return save(proto, path)


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so that each comes after the producers of its inputs (stable otherwise)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input near node {rest[0].name}")
        pending = rest
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def quantize_int8_dynamic(src: Path, dst: Path) -> Path:
    """Dynamic int8 for CPUs: MatMul and Gemm weights int8, activations quantized on the fly (accuracy-safe)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8,
                     per_channel=True)
    return _tidy(dst)


W8_MIN_ELEMENTS = 256          # smaller weights (tiny projections) stay float32


def quantize_weights_int8(src: Path, dst: Path, *, min_elements: int = W8_MIN_ELEMENTS,
                          keep_float: Callable[[str], bool] | None = None) -> Path:
    """Weight-only int8: every float32 weight of a Conv, ConvTranspose, MatMul or Gemm is stored as int8
    (symmetric, per output channel) and expanded in the graph by Cast(int8 -> float32) · scale; activations
    and arithmetic stay float32.

    About a quarter of the fp32 file, and portable: the expansion is one exact conversion and one correctly
    rounded multiply of constants, so every build (x86, ARM, wasm) gets the same float32 weights, and outputs
    differ between builds only as fp32 kernels do. ONNX Runtime folds the expansion at load (basic
    optimizations, on by default), so the graph then runs at fp32's speed; with optimizations off it
    recomputes the same weights on every call. (A DequantizeLinear would also be exact, but ORT keeps it unfolded
    for its QDQ fusions: weights are then expanded on every call, unpacked, and fused differently per level.)
    Int8 activation variants (dynamic, QDQ) are faster on x86 CPUs but their rounding moves between builds.

    `keep_float`: true for the names of weights that stay float32 (e.g. a sensitive sub-network's); a Linear
    weight the exporter wrote behind a Transpose is named by that Transpose's output once folded."""
    from onnx import helper, numpy_helper

    proto = onnx.load(str(src))
    graph = proto.graph
    _fold_weight_transposes(graph)
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, k))

    def axis_of(node: onnx.NodeProto, w: np.ndarray) -> int | None:
        """The output-channel axis of `node`'s weight `w`, or None when it is not a weight input."""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            return 0
        if node.op_type == "ConvTranspose":
            return 1 if attrs.get("group", 1) == 1 else None
        if node.op_type == "Gemm":
            return 0 if attrs.get("transB", 0) else 1
        if node.op_type == "MatMul":
            return w.ndim - 1 if w.ndim >= 2 else None
        return None

    new_inits, new_nodes = [], []
    for name, init in inits.items():
        uses = consumers.get(name, [])
        if init.data_type != onnx.TensorProto.FLOAT or not uses:
            continue
        w = numpy_helper.to_array(init)
        if w.size < min_elements or (keep_float is not None and keep_float(name)):
            continue
        axes = {axis_of(node, w) if k == 1 else None for node, k in uses}
        if len(axes) != 1 or None in axes:
            continue                                 # also used as something other than a weight: leave it
        axis = axes.pop()
        shape = [1] * w.ndim
        shape[axis] = w.shape[axis]
        scale = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1).astype(np.float32) / 127
        scale = np.where(scale > 0, scale, 1).astype(np.float32).reshape(shape)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        q_name, f_name, s_name = f"{name}_int8", f"{name}_int8_float", f"{name}_int8_scale"
        new_inits += [numpy_helper.from_array(q, q_name), numpy_helper.from_array(scale, s_name)]
        new_nodes += [helper.make_node("Cast", [q_name], [f_name], name=f"{name}_expand_cast", to=onnx.TensorProto.FLOAT),
                      helper.make_node("Mul", [f_name, s_name], [name], name=f"{name}_expand_scale")]
    replaced = {n.output[0] for n in new_nodes}
    kept = [i for i in graph.initializer if i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    clean(proto)
    return save(proto, dst)


def _fold_weight_transposes(graph: onnx.GraphProto) -> None:
    """Replace Transpose(initializer) by the transposed initializer (the exporter writes Linear weights as
    W and a Transpose before the MatMul), so that the weight itself can be quantized."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    keep, folded, dropped = [], [], set()
    for node in graph.node:
        source = node.input[0] if node.op_type == "Transpose" and node.input else None
        if source in inits and source not in outputs:
            perm = [a.ints for a in node.attribute if a.name == "perm"]
            w = numpy_helper.to_array(inits[source])
            folded.append(numpy_helper.from_array(np.ascontiguousarray(
                np.transpose(w, list(perm[0]) if perm else None)), node.output[0]))
            users[source] -= 1
            if users[source] == 0:
                dropped.add(source)
            continue
        keep.append(node)
    kept = [i for i in graph.initializer if i.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + folded)
    del graph.node[:]
    graph.node.extend(keep)


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over arrays keyed by input name, in batches."""

    def __init__(self, data: dict[str, np.ndarray], batch: int = 4) -> None:
        n = len(next(iter(data.values())))
        self.feeds = iter([{k: v[i:i + batch] for k, v in data.items()} for i in range(0, n, batch)])

    def get_next(self):
        return next(self.feeds, None)


def quantize_int8_qdq(src: Path, dst: Path, calibration: dict[str, np.ndarray], *,
                      op_types: Iterable[str] = ("Conv", "MatMul", "Gemm")) -> Path:
    """Static int8 in QDQ format (for NPUs: QNN, Core ML EP), ranges calibrated on `calibration` (the spec's
    inputs at the student's own timesteps, from `python -m distill calibrate`). uint8 activations, int8
    per-channel weights in 7 bits ([-64, 64], `reduce_range`); MinMax calibration.

    The 7 bits are for x86 CPUs without VNNI (AVX2, AVX-512 before VNNI): ONNX Runtime's uint8 x int8 kernels
    there sum pairs of products in int16 (VPMADDUBSW), which saturates with full 8-bit weights. On the tiny test
    student, an AVX2-only CPU gave 20.6 dB against fp32 with 8-bit weights, 33.2 dB with 7 bits; the QDQ graph
    run unfused (the arithmetic an NPU does) gave 33.8 dB."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(dst), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        calibration_cache_path=None, extra_options={"CalibTensorRangeSymmetric": False})
    return _tidy(dst)


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute for GPUs, inputs and outputs kept as declared; norms and softmax in fp32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=FP32_OPS)
    toposort(proto.graph)                    # the converter appends its input casts after their users
    _drop_initializer_value_info(proto.graph)
    clean(proto)
    return save(proto, dst)


def _drop_initializer_value_info(graph: onnx.GraphProto) -> None:
    """Remove value_info entries that describe initializers: the converter keeps the weights of blocked ops
    (LayerNormalization's scale, ...) in float32 but relabels their value_info FLOAT16, which the full checker
    and ORT's make_dynamic_shape_fixed refuse. An initializer carries its own type and shape."""
    inits = {i.name for i in graph.initializer}
    kept = [v for v in graph.value_info if v.name not in inits]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def graph_errors(path: str | Path) -> list[str]:
    """What ONNX's own tools say against a graph: `onnx.checker.check_model(full_check=True)` and strict shape
    inference with type checks and data propagation (empty when it passes both)."""
    proto = onnx.load(str(path))
    errors = []
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        errors.append(f"onnx.checker full check: {str(e).strip().splitlines()[0][:300]}")
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as e:
        errors.append(f"strict shape inference: {str(e).strip().splitlines()[0][:300]}")
    return errors


def fix_batch(src: Path, dst: Path, *, batch: int = 1, mobile_ops: bool = False, gelu: str = "tanh") -> Path:
    """The graph with its batch fixed at `batch` and every shape static, then constant-folded (onnxscript's
    optimizer): the Shape/Slice/Concat chains a dynamic batch needs fold away, so NNAPI and the Core ML EP, which
    refuse dynamic shapes, can take the nodes. Same ops and arithmetic otherwise, unless `mobile_ops`: then the
    ops that NNAPI or the Core ML EP refuse are written in ops both take (`convert.mobile_ops`; exact GELU becomes
    its `gelu` approximation, the rest is the same arithmetic in other ops)."""
    import onnxscript.optimizer
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    proto = onnx.load(str(src))
    make_dim_param_fixed(proto.graph, BATCH, batch)
    fix_output_shapes(proto)
    proto = onnxscript.optimizer.optimize(proto)
    dynamic = [v.name for v in [*proto.graph.input, *proto.graph.output]
               if any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    if dynamic:
        raise ValueError(f"{src}: {', '.join(dynamic)} kept a dynamic shape after fixing the batch")
    if mobile_ops:
        from .mobile_ops import rewrite_for_mobile

        rewrite_for_mobile(proto, gelu=gelu)
    clean(proto)
    return save(proto, dst)


_TO_ORT = """
import onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_{level}
so.optimized_model_filepath = "model.ort"
so.add_session_config_entry("session.save_model_format", "ORT")
so.intra_op_num_threads = so.inter_op_num_threads = 1
ort.InferenceSession("model.onnx", so, providers=["CPUExecutionProvider"])
"""


def _no_aslr() -> list[str]:
    """The command prefix that runs a process without address-space randomization, if this system has one."""
    import platform

    setarch = shutil.which("setarch")
    if setarch is None:
        return []
    probe = subprocess.run([setarch, platform.machine(), "-R", "true"], capture_output=True)
    return [setarch, platform.machine(), "-R"] if probe.returncode == 0 else []


def convert_ort(src: Path, dst: Path, *, level: str = "extended") -> tuple[Path, Path]:
    """ORT Mobile format (.ort, graph optimizations at `level` fixed in, as the converter's Fixed style) and the
    required-operators config that a reduced mobile build needs.

    `extended` fuses for ORT's CPU kernels (contrib ops such as FusedConv, QuickGelu, MatMulIntegerToFloat that
    only the CPU EP runs); `basic` only folds constants and removes redundant nodes, so NNAPI and the Core ML EP can
    still take the nodes (ORT's mobile usability checker measures the graph after exactly these optimizations).

    ORT's serializer orders parts of the flatbuffer by memory address, so the bytes change from run to run.
    The conversion runs in a fresh interpreter with a fixed hash seed, fixed file names, one thread and, where
    `setarch -R` can turn address randomization off (Linux), a fixed layout: then the same graph gives the
    same bytes. Elsewhere the content is the same and the layout may differ."""
    import os

    dst.parent.mkdir(parents=True, exist_ok=True)
    if level not in ("basic", "extended"):
        raise ValueError(f"level must be 'basic' or 'extended', not {level!r}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(src, Path(tmp) / "model.onnx")
        env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
        subprocess.run([*_no_aslr(), sys.executable, "-c", _TO_ORT.replace("{level}", level.upper())], cwd=tmp,
                       env=env, check=True, capture_output=True)
        from onnxruntime.tools.ort_format_model import create_config_from_models

        create_config_from_models([Path(tmp) / "model.ort"], Path(tmp) / "model.config", False)
        shutil.copy(Path(tmp) / "model.ort", dst)
        ops = dst.with_name(f"{dst.stem}.required_operators.config")
        # comment lines name the temporary folder: keep the operator lines only
        lines = [line for line in (Path(tmp) / "model.config").read_text().splitlines(keepends=True)
                 if not line.startswith("#")]
        ops.write_text("# operators (domain;opset;ops) that a reduced ORT build must include for this model\n"
                       + "".join(lines))
    return dst, ops
