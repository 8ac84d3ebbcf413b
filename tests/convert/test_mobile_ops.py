"""The onnx-mobile rewrites, op by op: each computes what the op it replaces computed (ONNX Runtime on both), in ops
that NNAPI and the Core ML EP (ML Program) both list."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from convert.mobile_ops import rewrite_for_mobile


def _op_list(name: str) -> set[str]:
    folder = Path(ort.__file__).parent / "tools" / "mobile_helpers"
    return {line.split("|")[1].split(":")[1] for line in (folder / name).read_text().splitlines()
            if line.startswith("|ai.onnx:")}


BOTH = _op_list("nnapi_supported_ops.md") & _op_list("coreml_supported_mlprogram_ops.md")


def _model(nodes, inputs, output_shape, inits=(), out_type=TensorProto.FLOAT):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", out_type, output_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _rewritten(model, feeds, **options):
    before = _run(model, feeds)
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    done = rewrite_for_mobile(copy, **options)
    onnx.checker.check_model(copy, full_check=True)
    ops = {n.op_type for n in copy.graph.node}
    assert ops <= BOTH, ops - BOTH
    read = {name for n in copy.graph.node for name in n.input}
    assert [i.name for i in copy.graph.initializer if i.name not in read] == []   # ORT warns of each at load
    return before, _run(copy, feeds), done


rng = np.random.default_rng(0)


def test_group_and_layer_norm_become_mean_and_variance_in_shared_ops():
    x = (rng.normal(size=(1, 4, 96)) * 3 + 1).astype(np.float32)      # GroupNorm's export: (N, G, C/G·H·W)
    inorm = _model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-6)],
                   [("x", x.shape)], x.shape, [("s", np.ones(4, np.float32)), ("b", np.zeros(4, np.float32))])
    before, after, done = _rewritten(inorm, {"x": x})
    assert done == {"InstanceNormalization": 1}
    np.testing.assert_allclose(after, before, atol=2e-5)
    scale, bias = rng.normal(size=32).astype(np.float32), rng.normal(size=32).astype(np.float32)
    x = rng.normal(size=(1, 12, 32)).astype(np.float32)
    lnorm = _model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1, epsilon=1e-5)],
                   [("x", x.shape)], x.shape, [("s", scale), ("b", bias)])
    before, after, done = _rewritten(lnorm, {"x": x})
    assert done == {"LayerNormalization": 1}
    np.testing.assert_allclose(after, before, atol=2e-5)


@pytest.mark.parametrize("gelu,bound", (("tanh", 1e-3), ("sigmoid", 0.05)))
def test_exact_gelus_erf_becomes_its_approximation_within_its_known_error(gelu, bound):
    y = np.linspace(-6, 6, 4001, dtype=np.float32).reshape(1, 4001)
    model = _model([helper.make_node("Erf", ["x"], ["y"])], [("x", y.shape)], y.shape)
    before, after, done = _rewritten(model, {"x": y}, gelu=gelu)
    assert done == {"Erf": 1}
    err = np.abs(after - before).max()
    assert 1e-5 < err < bound, err                          # an approximation, and a close one


def test_round_clip_cast_rounds_the_same_and_a_constant_gather_becomes_slice_and_squeeze():
    x = (rng.normal(size=(1, 3, 8, 6)) * 200 + 100).astype(np.float32)
    post = _model([helper.make_node("Round", ["x"], ["r"]), helper.make_node("Clip", ["r", "lo", "hi"], ["c"]),
                   helper.make_node("Cast", ["c"], ["y"], to=TensorProto.UINT8)],
                  [("x", x.shape)], x.shape, [("lo", np.float32(0)), ("hi", np.float32(255))], TensorProto.UINT8)
    before, after, done = _rewritten(post, {"x": x})
    assert done == {"Round": 1} and np.array_equal(after, before)
    x = rng.normal(size=(1, 17, 32)).astype(np.float32)
    gather = _model([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], [("x", x.shape)], (1, 32),
                    [("i", np.int64(0))])
    before, after, done = _rewritten(gather, {"x": x})
    assert done == {"Gather": 1} and np.array_equal(after, before)


@pytest.mark.parametrize("target", ("sizes", "scales"))
def test_an_antialiased_resize_becomes_two_matmuls_with_the_same_weights(target):
    x = rng.normal(size=(1, 3, 64, 48)).astype(np.float32)
    if target == "sizes":
        inputs, inits, shape = ["x", "", "", "t"], [("t", np.array([1, 3, 32, 32], np.int64))], (1, 3, 32, 32)
    else:
        inputs, inits, shape = ["x", "", "t"], [("t", np.array([1, 1, 0.5, 0.75], np.float32))], (1, 3, 32, 36)
    node = helper.make_node("Resize", inputs, ["y"], mode="linear", antialias=1, exclude_outside=1,
                            coordinate_transformation_mode="half_pixel")
    before, after, done = _rewritten(_model([node], [("x", x.shape)], shape, inits), {"x": x})
    assert done == {"Resize": 1} and after.shape == before.shape == shape
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_a_resize_with_unnamed_inputs_gets_empty_constants_that_orts_checker_counts_as_fixed():
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    x = rng.normal(size=(1, 8, 2, 2)).astype(np.float32)
    node = helper.make_node("Resize", ["x", "", "", "t"], ["y"], mode="nearest", nearest_mode="floor",
                            coordinate_transformation_mode="asymmetric")
    model = _model([node], [("x", x.shape)], (1, 8, 4, 3), [("t", np.array([1, 8, 4, 3], np.int64))])

    def dynamic(m):
        return uc.check_nnapi_partitions(m, True).nodes_unsupported_due_to_dynamic_input

    assert dynamic(model) == 1                           # ORT's checker: an unnamed input has no fixed shape
    before, after, done = _rewritten(model, {"x": x})
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    rewrite_for_mobile(copy)
    assert done == {"Resize": 1} and dynamic(copy) == 0 and np.array_equal(after, before)
