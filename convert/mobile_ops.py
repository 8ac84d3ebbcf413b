"""Rewrite a static-shape ONNX graph into ops that both NNAPI and the Core ML EP (ML Program) take, for `onnx-mobile`.

ORT Mobile's op lists (`onnxruntime/tools/mobile_helpers/nnapi_supported_ops.md`, `coreml_supported_mlprogram_ops.md`)
share Add, Sub, Mul, Div, Sqrt, Tanh, Sigmoid, ReduceMean, MatMul, Reshape, Transpose, Slice, Squeeze, Clip, Cast, ...
but not Erf, InstanceNormalization or LayerNormalization (NNAPI), Round (NNAPI) or Gather (Core ML). Each of those is
written here in shared ops, node by node, on the graph the fp32 export wrote (batch fixed, shapes static), so no
other variant changes:

  Erf(y)                    tanh(y·(a + b·y²)), a = 2/√π, b = 0.0894·a: exact GELU becomes its tanh form
                            (max abs error 4.7e-4 in GELU's units)
  InstanceNormalization     (x − mean) / √(var + ε) over the spatial axes, · scale + bias (GroupNorm's export)
  LayerNormalization        the same over the trailing axes
  Round → Clip → Cast(int)  Add 0.5 → Clip → Cast: the cast truncates, so round half up (ties only move)
  Gather(x, constant i)     Slice(i, i + 1) + Squeeze: `x[:, 0]`
  Resize(antialias=1)       the same linear map as two 2-D MatMuls with constant weights (ORT's own weights,
                            read off the op on unit vectors); 2-D so that NNAPI's FULLY_CONNECTED takes them
  Resize's unnamed roi / scales inputs   empty constants: ORT's checker counts an unnamed input as a dynamic
                            shape, which split the graph at every upsampling

Everything else is left as it is. Ranks stay at most 4 (NNAPI's limit); every new constant is an initializer, and an
initializer that no node reads any more is dropped.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GELU_TANH = 0.044715                       # Hendrycks & Gimpel's tanh approximation of GELU


def rewrite_for_mobile(proto: onnx.ModelProto, *, gelu: str = "tanh") -> Counter:
    """Rewrite `proto` in place (see the module doc); returns how many nodes of each op were rewritten.
    `gelu`: "tanh" (default) or "sigmoid" (x·σ(1.702x), cheaper and less exact) for Erf."""
    graph = proto.graph
    shapes = _shapes(proto)
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    new_inits: list[onnx.TensorProto] = []
    done: Counter = Counter()

    def const(name: str, value, dtype=np.float32) -> str:
        new_inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def constant(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        p = node.name or node.output[0]
        made = None
        if node.op_type == "Erf":
            made = _erf(node, p, const, gelu)
        elif node.op_type in ("InstanceNormalization", "LayerNormalization"):
            made = _normalization(node, p, const, constant, shapes, graph_outputs, consumers)
        elif node.op_type == "Round":
            made = _round(node, p, const, constant, consumers, graph_outputs)
        elif node.op_type == "Gather":
            made = _gather(node, p, const, constant, shapes)
        elif node.op_type == "Resize":
            made = _resize(node, p, const, constant, shapes)
        if made is None:
            nodes.append(node)
        else:
            nodes.extend(made)
            done[node.op_type] += 1
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_inits)
    # the rewritten ops' own scale / bias initializers (copied into the new constants) are read by no node now:
    # ORT would warn about each one at every session start
    used = _inputs_read(graph) | graph_outputs | {i.name for i in graph.input}   # an input's default stays
    unused = [i for i in graph.initializer if i.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return done


def _inputs_read(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of `graph` reads, subgraphs (If / Loop bodies) included."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names |= _inputs_read(sub)
    return names


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    out = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[v.name] = [d.dim_value for d in dims]
    for i in proto.graph.initializer:
        out[i.name] = list(i.dims)
    return out


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _erf(node, p, const, gelu):
    y, out = node.input[0], node.output[0]
    if gelu == "sigmoid":                     # 0.5(1 + erf(x/√2)) ≈ σ(1.702x): erf(y) ≈ 2σ(1.702√2·y) − 1
        return [helper.make_node("Mul", [y, const(f"{p}_k", 1.702 * math.sqrt(2))], [f"{p}_ky"], name=f"{p}_ky"),
                helper.make_node("Sigmoid", [f"{p}_ky"], [f"{p}_s"], name=f"{p}_s"),
                helper.make_node("Mul", [f"{p}_s", const(f"{p}_two", 2.0)], [f"{p}_2s"], name=f"{p}_2s"),
                helper.make_node("Sub", [f"{p}_2s", const(f"{p}_one", 1.0)], [out], name=p)]
    if gelu != "tanh":
        raise ValueError(f"gelu must be 'tanh' or 'sigmoid', not {gelu!r}")
    a = 2 / math.sqrt(math.pi)                # GELU's tanh form with x = √2·y
    return [helper.make_node("Mul", [y, y], [f"{p}_y2"], name=f"{p}_y2"),
            helper.make_node("Mul", [f"{p}_y2", const(f"{p}_b", 2 * GELU_TANH * a)], [f"{p}_by2"], name=f"{p}_by2"),
            helper.make_node("Add", [f"{p}_by2", const(f"{p}_a", a)], [f"{p}_poly"], name=f"{p}_poly"),
            helper.make_node("Mul", [y, f"{p}_poly"], [f"{p}_arg"], name=f"{p}_arg"),
            helper.make_node("Tanh", [f"{p}_arg"], [out], name=p)]


def _normalization(node, p, const, constant, shapes, graph_outputs, consumers):
    x, out = node.input[0], node.output[0]
    if x not in shapes or any(o and (o in graph_outputs or consumers.get(o)) for o in node.output[1:]):
        return None                          # LayerNormalization's mean / inv-std-dev outputs in use: leave it
    rank, at = len(shapes[x]), _attrs(node)
    eps = at.get("epsilon", 1e-5)
    if node.op_type == "InstanceNormalization":
        axes = list(range(2, rank))
        affine_shape = [shapes[x][1]] + [1] * (rank - 2)
    else:
        axis = at.get("axis", -1) % rank
        if at.get("stash_type", 1) != 1:
            return None
        axes = list(range(axis, rank))
        affine_shape = shapes[x][axis:]
    weights = [node.input[k] if len(node.input) > k else "" for k in (1, 2)]
    scale, bias = (constant(w) if w else None for w in weights)
    if any(w and v is None for w, v in zip(weights, (scale, bias))):
        return None                          # a scale or bias computed at run time: not in our graphs
    made = [helper.make_node("ReduceMean", [x, const(f"{p}_axes", axes, np.int64)], [f"{p}_mean"], name=f"{p}_mean"),
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_d"], name=f"{p}_d"),
            helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_d2"], name=f"{p}_d2"),
            helper.make_node("ReduceMean", [f"{p}_d2", f"{p}_axes"], [f"{p}_var"], name=f"{p}_var"),
            helper.make_node("Add", [f"{p}_var", const(f"{p}_eps", eps)], [f"{p}_vareps"], name=f"{p}_vareps"),
            helper.make_node("Sqrt", [f"{p}_vareps"], [f"{p}_std"], name=f"{p}_std")]
    steps = [(op, value) for op, value, neutral in (("Mul", scale, 1), ("Add", bias, 0))
             if value is not None and np.any(value != neutral)]   # GroupNorm's export: scale 1, bias 0
    last = f"{p}_d"
    for k, (op, value) in enumerate([("Div", None), *steps]):
        operand = f"{p}_std" if value is None else const(f"{p}_{op.lower()}_w", value.reshape(affine_shape))
        target = out if k == len(steps) else f"{p}_{op.lower()}"
        made.append(helper.make_node(op, [last, operand], [target], name=target if target != out else p))
        last = target
    return made


def _round(node, p, const, constant, consumers, graph_outputs):
    """Round → Clip(min ≥ 0) → Cast(to an integer type), as the post-processing writes it: Add 0.5 → Clip → Cast,
    since a cast truncates, and after the clip every value is ≥ 0 (round half up instead of half to even)."""
    out = node.output[0]
    users = consumers.get(out, [])
    if out in graph_outputs or len(users) != 1 or users[0].op_type != "Clip":
        return None
    clip = users[0]
    low = constant(clip.input[1]) if len(clip.input) > 1 and clip.input[1] else None
    casts = consumers.get(clip.output[0], [])
    integer = {TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16, TensorProto.INT32,
               TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64}
    if low is None or float(low) < 0 or clip.output[0] in graph_outputs or not casts or \
            not all(c.op_type == "Cast" and _attrs(c)["to"] in integer for c in casts):
        return None
    return [helper.make_node("Add", [node.input[0], const(f"{p}_half", 0.5)], [out], name=p)]


def _gather(node, p, const, constant, shapes):
    """Gather of one constant index (`x[:, 0]`): Slice of that index, then Squeeze its axis."""
    index = constant(node.input[1])
    x = node.input[0]
    if index is None or index.size != 1 or x not in shapes:
        return None
    rank = len(shapes[x])
    axis = _attrs(node).get("axis", 0) % rank
    i = int(index.reshape(())) % shapes[x][axis]
    sliced = node.output[0] if index.ndim == 1 else f"{p}_slice"
    made = [helper.make_node("Slice", [x, const(f"{p}_start", [i], np.int64), const(f"{p}_end", [i + 1], np.int64),
                                       const(f"{p}_axis", [axis], np.int64)], [sliced], name=f"{p}_slice")]
    if index.ndim == 0:
        made.append(helper.make_node("Squeeze", [sliced, f"{p}_axis"], [node.output[0]], name=p))
    return made


def _resize(node, p, const, constant, shapes):
    at = _attrs(node)
    inputs = list(node.input) + [""] * (4 - len(node.input))
    x = inputs[0]
    if at.get("antialias", 0) and x in shapes:
        made = _resize_as_matmuls(node, p, const, constant, shapes, at, inputs)
        if made is not None:
            return made
    if "" not in inputs[1:3] or (not inputs[2] and not inputs[3]):
        return None
    roi = inputs[1] or const(f"{p}_roi", np.zeros(0, np.float32))
    scales = inputs[2] or const(f"{p}_scales", np.zeros(0, np.float32))
    new = onnx.NodeProto.FromString(node.SerializeToString())
    del new.input[:]
    new.input.extend([x, roi, scales] + ([inputs[3]] if inputs[3] else []))
    return [new]


def _resize_as_matmuls(node, p, const, constant, shapes, at, inputs):
    """An antialiased (linear) Resize over the last two axes of a 4-D tensor as X·Wᵀ, then (·)ᵀ·Hᵀ: 2-D MatMuls."""
    shape = shapes[inputs[0]]
    if len(shape) != 4 or at.get("axes") or at.get("keep_aspect_ratio_policy", b"stretch") != b"stretch" \
            or at.get("coordinate_transformation_mode", b"half_pixel") == b"tf_crop_and_resize":
        return None
    sizes = constant(inputs[3]) if inputs[3] else None
    scales = constant(inputs[2]) if inputs[2] else None
    if sizes is not None and sizes.size == 4:
        out, factors = [int(s) for s in sizes], [None] * 4
    elif scales is not None and scales.size == 4:
        out, factors = [int(math.floor(d * s)) for d, s in zip(shape, scales)], [float(s) for s in scales]
    else:
        return None
    n, c, h, w = shape
    if out[:2] != [n, c]:
        return None
    ho, wo = out[2:]
    weights_h = _axis_weights(node, h, ho, 2, factors[2]).T            # (h, ho)
    weights_w = _axis_weights(node, w, wo, 3, factors[3]).T            # (w, wo)
    y = node.output[0]
    shape_of = lambda name, dims: const(f"{p}_shape_{name}", dims, np.int64)  # noqa: E731
    return [
        helper.make_node("Reshape", [inputs[0], shape_of("rows", [n * c * h, w])], [f"{p}_rows"], name=f"{p}_rows"),
        helper.make_node("MatMul", [f"{p}_rows", const(f"{p}_ww", weights_w)], [f"{p}_mw"], name=f"{p}_mw"),
        helper.make_node("Reshape", [f"{p}_mw", shape_of("s1", [n, c, h, wo])], [f"{p}_r1"], name=f"{p}_r1"),
        helper.make_node("Transpose", [f"{p}_r1"], [f"{p}_t1"], name=f"{p}_t1", perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", [f"{p}_t1", shape_of("cols", [n * c * wo, h])], [f"{p}_cols"], name=f"{p}_cols"),
        helper.make_node("MatMul", [f"{p}_cols", const(f"{p}_wh", weights_h)], [f"{p}_mh"], name=f"{p}_mh"),
        helper.make_node("Reshape", [f"{p}_mh", shape_of("s2", [n, c, wo, ho])], [f"{p}_r2"], name=f"{p}_r2"),
        helper.make_node("Transpose", [f"{p}_r2"], [y], name=p, perm=[0, 1, 3, 2]),
    ]


def _axis_weights(node, size: int, out: int, axis: int, factor: float | None) -> np.ndarray:
    """The (out, size) matrix the Resize applies along `axis` (to `out` elements, or by `factor` where the node
    gives scales), read off ONNX Runtime running the same node on unit vectors: one per channel, the other
    spatial axis of size 1, which a resize leaves as it is."""
    import onnxruntime as ort

    shape_in = [1, size, 1, 1]
    shape_in[axis] = size
    shape_out = [1, size, 1, 1]
    shape_out[axis] = out
    basis = np.eye(size, dtype=np.float32).reshape(shape_in)
    keep = _attrs(node)
    if factor is None:
        target = ["", "", "sizes"], numpy_helper.from_array(np.array(shape_out, np.int64), "sizes")
    else:
        factors = [1.0, 1.0, 1.0, 1.0]
        factors[axis] = factor
        target = ["", "scales"], numpy_helper.from_array(np.array(factors, np.float32), "scales")
    resize = helper.make_node("Resize", ["x", *target[0]], ["y"], **keep)
    graph = helper.make_graph([resize], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)], [target[1]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": basis})[0]                                # (1, size, ...out...)
    return y.reshape(size, out).T.astype(np.float32)                   # row j: the weights of output j
