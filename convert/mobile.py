"""ONNX Runtime Mobile's own usability check on an ONNX graph: how many of its nodes NNAPI and the Core ML EP take,
in how many partitions.

The same steps as `python -m onnxruntime.tools.check_onnx_model_mobile_usability MODEL`: ORT's basic graph
optimizations (what an ORT-format conversion also does), ONNX shape inference, then ORT's per-EP op lists
(`onnxruntime/tools/mobile_helpers/*_supported_ops.md`) with fixed input sizes required, as the EPs require
them at run time. The checker counts by operator type and shape, not by each op's caveats (e.g. NNAPI's 2-D
Conv only), so its figures are an upper bound that a device run can only lower.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

# name in the manifest -> the op list ORT's checker reads (None: NNAPI's, found by its own helper)
EPS = {"nnapi": None, "coreml-mlprogram": "coreml_supported_mlprogram_ops.md",
       "coreml-neuralnetwork": "coreml_supported_neuralnetwork_ops.md"}


def mobile_usability(path: str | Path) -> dict[str, Any]:
    """Per EP: nodes, nodes it takes, partitions, the ops it refuses, the nodes refused for a dynamic shape,
    ORT's verdict (yes / maybe / no: 1 partition over 75% of the nodes is yes, 2 is at best maybe), and where
    shapes cost nodes, what it would take with every shape fixed (`if_shapes_fixed`)."""
    import onnxruntime as ort
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "model.onnx"
        optimize_model(Path(path), optimized, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(optimized).model_with_shape_info
        _, dynamic_values = uc.check_shapes(model.graph, logging.getLogger("convert.mobile"))
        eps = {}
        for name, ops in EPS.items():
            info, fixed = ((uc.check_nnapi_partitions(model, fixed_sizes) if ops is None
                            else uc.check_coreml_partitions(model, fixed_sizes, ops)) for fixed_sizes in (True, False))
            eps[name] = {"nodes": info.num_nodes, "supported_nodes": info.num_supported_nodes,
                         "partitions": info.num_partitions, "unsupported_ops": sorted(info.unsupported_ops),
                         "dynamic_shape_nodes": info.nodes_unsupported_due_to_dynamic_input,
                         "verdict": info.suitability().name.lower()}
            if info.nodes_unsupported_due_to_dynamic_input:     # what fixing the shapes would give (ORT's 2nd pass)
                eps[name]["if_shapes_fixed"] = {"supported_nodes": fixed.num_supported_nodes,
                                                "partitions": fixed.num_partitions}
    return {"checker": f"onnxruntime {ort.__version__} mobile usability checker", "dynamic_values": dynamic_values,
            "eps": eps}


def summary(mobile: dict[str, Any]) -> str:
    """One line per variant for reports: `NNAPI 314/3419 in 20 (no)` per EP."""
    label = {"nnapi": "NNAPI", "coreml-mlprogram": "Core ML MLProgram", "coreml-neuralnetwork": "Core ML NN"}
    return "; ".join(f"{label.get(ep, ep)} {e['supported_nodes']}/{e['nodes']} in {e['partitions']} ({e['verdict']})"
                     for ep, e in mobile["eps"].items())
