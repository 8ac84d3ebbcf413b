"""Converters on a tiny 2-step student: real ONNX exports, real ORT quantization and sessions, real Core ML
conversion (predictions need macOS: those tests carry the coreml marker), real bundle files."""
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from convert.__main__ import main as convert_main
from convert.bundle import _scheduler, requirements, write_bundle
from convert.default import install_default
from convert.gates import GateError, check_fp32, check_variant, run, session, gate_images
from convert.specs import specs_for
from igr.config import IGRConfig
from igr.model import IGRModel
from igr_edge.errors import BundleError
from igr_edge.manifest import read_manifest, schema, validation_errors, variant_bytes
from igr_edge.schedulers import NoiseSchedule, plan

ONNX_VARIANTS = ["onnx-fp32", "onnx-int8", "onnx-qdq", "onnx-w8", "onnx-fp16", "ort"]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2)
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    IGRModel(cfg).save_pretrained(root / "student-2", extra={"distill.json": json.dumps(meta)})
    return root / "student-2"


@pytest.fixture(scope="module")
def bundle(student_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    write_bundle(student_dir, out, variants=ONNX_VARIANTS, gate_n=6, calibration_n=6, progress=False)
    return out


def test_specs_declare_what_the_modules_return(student_dir):
    model = IGRModel.from_pretrained(student_dir)
    for name, spec in specs_for(model.config, student_steps=2).items():
        with torch.no_grad():
            out = spec.build(model)(*spec.dummy_inputs(3))
        out = out if isinstance(out, tuple) else (out,)
        assert [tuple(o.shape) for o in out] == [t.concrete(3) for t in spec.outputs], name
        assert [str(o.dtype).removeprefix("torch.") for o in out] == [t.dtype for t in spec.outputs], name


def test_bundle_manifest_validates_and_every_onnx_variant_runs_with_a_dynamic_batch(bundle, student_dir):
    manifest = read_manifest(bundle)
    assert validation_errors(manifest) == [] and manifest["schema"].startswith("1.")
    assert set(manifest["variants"]) == set(ONNX_VARIANTS) and manifest["rejected"] == []
    assert manifest["scheduler"]["timesteps"] == [999, 499] and manifest["noise"]["generator"] == "splitmix64-boxmuller"
    assert manifest["graphs"]["student"]["inputs"][0] == {"name": "person", "dtype": "uint8", "shape": ["batch", 64, 48, 3]}
    fp32 = manifest["variants"]["onnx-fp32"]["parity"]
    assert fp32["vs_torch"]["latent_max_abs_error"] <= 1e-4 and fp32["vs_torch"]["garment_psnr_db"] >= 45
    for v in ONNX_VARIANTS[1:]:
        assert manifest["variants"][v]["parity"]["psnr_vs_fp32_db"] >= 30, v
    persons, _, noise = gate_images(IGRModel.from_pretrained(student_dir).config, 3)
    for v in ONNX_VARIANTS:
        sess = session(bundle / manifest["variants"][v]["files"]["student"])
        garment, latent = sess.run(None, {"person": persons, "noise": noise})
        assert garment.shape == (3, 64, 48, 3) and garment.dtype == np.uint8 and latent.shape == (3, 4, 8, 6), v
    assert (bundle / manifest["variants"]["ort"]["files"]["required_operators"]).read_text().strip()


def test_a_tampered_or_escaping_file_is_refused(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    target = copy / "onnx-int8" / "student.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        read_manifest(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../outside.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError):
        read_manifest(copy)
    manifest["schema"] = "2.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema 2.0.0"):
        read_manifest(copy)


def _perturb(src, dst, scale):
    dst.parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load(str(src))
    for init in proto.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 64:
            noise = np.random.default_rng(0).normal(0, scale, w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(w + noise * (np.abs(w).mean() + 1e-3), init.name))
    onnx.save(proto, str(dst))
    return dst


def test_the_gates_really_refuse_a_perturbed_graph(bundle, student_dir, tmp_path):
    model = IGRModel.from_pretrained(student_dir)
    spec = specs_for(model.config, student_steps=2)["student"]
    good = bundle / "onnx-fp32" / "student.onnx"
    bad = _perturb(good, tmp_path / "bad.onnx", 0.5)
    with pytest.raises(GateError, match=r"student onnx-fp32: garment PSNR vs torch \(dB\) = .* fails the bound >= 45"):
        check_fp32(spec, model, bad)
    persons, truth, noise = gate_images(model.config, 6)
    reference = run(session(good), spec.input_names, (persons, noise))[0]
    garments = run(session(bad), spec.input_names, (persons, noise))[0]
    with pytest.raises(GateError, match=r"onnx-int8: PSNR vs fp32 \(dB\) = .* fails the bound >= 30"):
        check_variant("onnx-int8", garments, reference, truth)


def test_a_failing_variant_leaves_no_bundle_or_is_listed_as_rejected(bundle, student_dir, tmp_path, monkeypatch):
    from convert import onnx_export

    good = bundle / "onnx-fp32" / "student.onnx"
    # stand-ins for the exporter (the real one runs in the fixture): the bundle's own fp32 graph, or a perturbed one
    monkeypatch.setattr(onnx_export, "export_fp32", lambda spec, model, path: _perturb(good, path, 0.5))
    with pytest.raises(GateError, match="student onnx-fp32"):
        write_bundle(student_dir, tmp_path / "refused", variants=["onnx-fp32"], gate_n=4, progress=False)
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))
    monkeypatch.setattr(onnx_export, "export_fp32", lambda spec, model, path: _copy(good, path))
    monkeypatch.setattr(onnx_export, "quantize_int8_dynamic", lambda src, dst: _perturb(src, dst, 0.5))
    with pytest.raises(GateError, match="onnx-int8"):
        write_bundle(student_dir, tmp_path / "refused", variants=["onnx-fp32", "onnx-int8"], gate_n=4, progress=False)
    assert not (tmp_path / "refused").exists()
    write_bundle(student_dir, tmp_path / "partial", variants=["onnx-fp32", "onnx-int8"], gate_n=4,
                 skip_failing=True, progress=False)
    manifest = read_manifest(tmp_path / "partial")
    assert set(manifest["variants"]) == {"onnx-fp32"}
    assert manifest["rejected"][0]["variant"] == "onnx-int8" and manifest["rejected"][0]["bound"] == ">= 30.0"


def test_every_onnx_variant_passes_the_full_checker_and_ort_can_fix_its_batch(bundle, tmp_path):
    """onnx.checker's full check, strict shape inference, and ORT's make_dynamic_shape_fixed (batch 1), which
    crashed on onnx-fp16's float32 weights labelled FLOAT16 in its value_info."""
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    from convert.onnx_export import graph_errors

    manifest = read_manifest(bundle)
    onnx_variants = [v for v, spec in manifest["variants"].items() if spec["format"] == "onnx"]
    assert set(onnx_variants) == set(ONNX_VARIANTS) - {"ort"}
    for v in onnx_variants:
        path = bundle / manifest["variants"][v]["files"]["student"]
        assert graph_errors(path) == [], v
        proto = onnx.load(str(path))
        make_dim_param_fixed(proto.graph, "batch", 1)
        fix_output_shapes(proto)
        assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 64, 48, 3], v


def test_each_variant_declares_the_io_its_file_has(bundle):
    """Schema 1.3: `variants.<v>.io` is what ONNX Runtime reads from each file (names, dtypes, layouts, a named
    batch), so a runtime need not assume the graphs' section holds for every variant."""
    from igr_edge.manifest import consistency_errors, variant_batch

    manifest = read_manifest(bundle)
    assert manifest["schema"] == "1.3.0"
    person = {"name": "person", "dtype": "uint8", "shape": ["batch", 64, 48, 3], "layout": "NHWC"}
    for v, spec in manifest["variants"].items():
        io = spec["io"]["student"]
        assert io["inputs"][0] == person and io["inputs"][1]["layout"] == "NCHW", v
        assert [t["name"] for t in io["outputs"]] == ["garment", "latent"], v
        assert variant_batch(manifest, v) is None, v
    broken = json.loads(json.dumps(manifest))
    broken["variants"]["onnx-int8"]["io"]["student"]["inputs"][0]["name"] = "image"
    broken["variants"]["onnx-w8"]["io"]["student"]["outputs"][0]["shape"][0] = 2
    errors = consistency_errors(broken)
    assert any("onnx-int8.io.student inputs" in e for e in errors)
    assert any("onnx-w8.io.student: the batch" in e for e in errors), errors


def test_each_onnx_variant_records_what_nnapi_and_core_ml_take_as_orts_own_checker_counts(bundle):
    import re
    import subprocess
    import sys

    from convert.report import mobile_table

    manifest = read_manifest(bundle)
    assert "mobile" not in manifest["variants"]["ort"]
    for v in set(ONNX_VARIANTS) - {"ort"}:
        eps = manifest["variants"][v]["mobile"]["student"]["eps"]
        assert set(eps) == {"nnapi", "coreml-mlprogram", "coreml-neuralnetwork"}, v
        assert all(0 <= e["supported_nodes"] <= e["nodes"] and e["partitions"] >= 0 for e in eps.values()), v
    # the same figures as the tool a mobile team runs (its first analysis per EP: fixed input sizes required)
    fp32 = bundle / manifest["variants"]["onnx-fp32"]["files"]["student"]
    done = subprocess.run([sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability", str(fp32)],
                          capture_output=True, text=True, check=True)
    printed, if_fixed = {}, {}
    for parts, taken, nodes, ep in re.findall(r"(\d+) partitions with a total of (\d+)/(\d+) nodes can be handled by "
                                             r"the (NNAPI|CoreML MLProgram|CoreML NeuralNetwork) EP", done.stdout + done.stderr):
        (if_fixed if ep in printed else printed).setdefault(ep, (int(taken), int(nodes), int(parts)))
    recorded = manifest["variants"]["onnx-fp32"]["mobile"]["student"]["eps"]
    names = (("NNAPI", "nnapi"), ("CoreML MLProgram", "coreml-mlprogram"), ("CoreML NeuralNetwork", "coreml-neuralnetwork"))
    assert printed == {name: (recorded[ep]["supported_nodes"], recorded[ep]["nodes"], recorded[ep]["partitions"])
                       for name, ep in names}
    assert if_fixed == {name: (recorded[ep]["if_shapes_fixed"]["supported_nodes"], recorded[ep]["nodes"],
                               recorded[ep]["if_shapes_fixed"]["partitions"]) for name, ep in names}
    table = "\n".join(mobile_table(manifest["variants"]))
    nnapi = recorded["nnapi"]
    assert f"| onnx-fp32 | student | {nnapi['supported_nodes']}/{nnapi['nodes']} " in table
    assert "| ort |" not in table


def test_manifests_without_mobile_figures_stay_valid_and_malformed_ones_are_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema"] == "1.3.0"
    old = json.loads(json.dumps(manifest))
    old["schema"] = "1.1.0"
    for spec in old["variants"].values():
        spec.pop("mobile", None)
        spec.pop("io", None)
    assert validation_errors(old) == []
    manifest["variants"]["onnx-fp32"]["mobile"]["student"]["eps"]["nnapi"]["verdict"] = "perhaps"
    del manifest["variants"]["onnx-fp32"]["mobile"]["student"]["eps"]["coreml-mlprogram"]["partitions"]
    errors = validation_errors(manifest)
    assert any("verdict" in e and "perhaps" in e for e in errors) and any("'partitions'" in e for e in errors)


def test_the_mobile_variants_are_static_and_nnapi_and_core_ml_each_take_them_whole_within_40_db(tiny_bundles,
                                                                                                 tmp_path, monkeypatch):
    """onnx-mobile of the tiny student (the cached tiny bundle's fp32 graph): batch 1, every shape static, and ops
    that NNAPI and the Core ML EP (ML Program) both take, as ORT's own checker counts: >= 99% of the nodes in
    <= 3 partitions for each; within 40 dB of the fp32 graph. ort-mobile, the same graph in ORT format at basic
    optimizations, needs only those ops of a reduced ORT build. onnx-mobile-w8, the same graph with int8 weights
    expanded in the graph, is smaller and the EPs take as much of it (ORT folds the expansion before they look)."""
    from convert import onnx_export
    from convert.bundle import VARIANTS
    from igr_edge.manifest import variant_batch

    good = tiny_bundles["student"] / "onnx-fp32" / "student.onnx"
    monkeypatch.setattr(onnx_export, "export_fp32", lambda spec, model, path: _copy(good, path))
    write_bundle(tiny_bundles["models"] / "student-2", tmp_path / "m", variants=["onnx-fp32", "onnx-mobile", "onnx-mobile-w8",
                                                                             "ort-mobile"], gate_n=2, progress=False)
    manifest = read_manifest(tmp_path / "m")
    mobile = manifest["variants"]["onnx-mobile"]
    assert mobile["backends"] == ["cpu"] and float(mobile["parity"]["psnr_vs_fp32_db"]) >= 40
    for v in ("onnx-mobile", "onnx-mobile-w8", "ort-mobile"):   # what the files fix, said by the manifest: batch 1
        io = manifest["variants"][v]["io"]["student"]
        assert io["inputs"][0] == {"name": "person", "dtype": "uint8", "shape": [1, 64, 48, 3], "layout": "NHWC"}
        assert variant_batch(manifest, v) == 1 and variant_batch(manifest, "onnx-fp32") is None
    from igr_edge import Restorer

    persons = np.random.default_rng(0).integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)
    with Restorer(tmp_path / "m", variant="onnx-fp32") as r:
        want = r.restore_arrays(persons, [0, 1, 2])
    for v, bound in (("onnx-mobile", 40), ("onnx-mobile-w8", 30), ("ort-mobile", 40)):  # a batch of 3, one by one
        with Restorer(tmp_path / "m", variant=v) as r:
            got = r.restore_arrays(persons, [0, 1, 2])
        mse = np.mean((got.astype(float) - want) ** 2)
        assert got.shape == want.shape and (mse == 0 or 10 * np.log10(255 ** 2 / mse) >= bound), v
    proto = onnx.load(str(tmp_path / "m" / mobile["files"]["student"]))
    assert all(d.dim_value and not d.dim_param for v in [*proto.graph.input, *proto.graph.output]
               for d in v.type.tensor_type.shape.dim)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Shape", "Erf", "InstanceNormalization", "LayerNormalization", "Round", "Gather"}, ops
    before = manifest["variants"]["onnx-fp32"]["mobile"]["student"]["eps"]
    after = mobile["mobile"]["student"]["eps"]
    assert mobile["mobile"]["student"]["dynamic_values"] == 0 < manifest["variants"]["onnx-fp32"]["mobile"]["student"][
        "dynamic_values"]
    for ep in ("nnapi", "coreml-mlprogram"):
        taken, nodes, parts = after[ep]["supported_nodes"], after[ep]["nodes"], after[ep]["partitions"]
        assert taken >= 0.99 * nodes and parts <= 3, f"{ep}: {taken}/{nodes} in {parts}, refusing {after[ep]}"
        assert before[ep]["supported_nodes"] < 0.1 * before[ep]["nodes"] and parts < before[ep]["partitions"], ep
    w8 = manifest["variants"]["onnx-mobile-w8"]
    assert float(w8["parity"]["psnr_vs_fp32_db"]) >= 30 and w8["mobile"]["student"]["eps"] == after
    assert variant_bytes(manifest, "onnx-mobile-w8") < 0.6 * variant_bytes(manifest, "onnx-mobile")
    w8_nodes = onnx.load(str(tmp_path / "m" / w8["files"]["student"])).graph.node
    assert {n.op_type for n in w8_nodes} == ops and len(w8_nodes) > len(proto.graph.node)  # + Cast·Mul, folded at load
    ort_mobile = manifest["variants"]["ort-mobile"]
    assert ort_mobile["format"] == "ort" and ort_mobile["backends"] == ["cpu"] == list(VARIANTS["ort-mobile"].backends)
    assert float(ort_mobile["parity"]["psnr_vs_fp32_db"]) >= 40
    config = (tmp_path / "m" / ort_mobile["files"]["required_operators"]).read_text().splitlines()
    needed = {op for line in config if not line.startswith("#") for op in line.split(";")[2].split(",")}
    assert {line.split(";")[0] for line in config if not line.startswith("#")} == {"ai.onnx"}   # no contrib ops
    assert {"Conv", "MatMul", "ReduceMean", "Tanh"} <= needed and not needed - _ops_both_eps_take(), needed


def _ops_both_eps_take() -> set[str]:
    """ai.onnx ops in both ORT op lists that its mobile checker reads (NNAPI, Core ML ML Program)."""
    import onnxruntime

    folder = Path(onnxruntime.__file__).parent / "tools" / "mobile_helpers"
    lists = [{line.split("|")[1].split(":")[1] for line in (folder / name).read_text().splitlines()
              if line.startswith("|ai.onnx:")} for name in ("nnapi_supported_ops.md", "coreml_supported_mlprogram_ops.md")]
    return lists[0] & lists[1]


def test_a_graph_the_checker_refuses_is_not_written(bundle, student_dir, tmp_path, monkeypatch):
    from convert import onnx_export

    good = bundle / "onnx-fp32" / "student.onnx"

    def stale_fp16(src, dst):                  # what the fp16 converter used to write: a float32 weight labelled fp16
        proto = onnx.load(str(src))
        init = next(i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
        proto.graph.value_info.append(onnx.helper.make_tensor_value_info(init.name, onnx.TensorProto.FLOAT16,
                                                                         list(init.dims)))
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(dst))
        return dst

    monkeypatch.setattr(onnx_export, "export_fp32", lambda spec, model, path: _copy(good, path))
    monkeypatch.setattr(onnx_export, "convert_fp16", stale_fp16)
    write_bundle(student_dir, tmp_path / "partial", variants=["onnx-fp32", "onnx-fp16"], gate_n=2,
                 skip_failing=True, progress=False)
    manifest = read_manifest(tmp_path / "partial")
    assert set(manifest["variants"]) == {"onnx-fp32"} and not (tmp_path / "partial" / "onnx-fp16").exists()
    (rejected,) = manifest["rejected"]
    assert rejected["variant"] == "onnx-fp16" and rejected["figure"] == "ONNX checker errors"
    assert "onnx.checker full check" in rejected["reason"] and "elem type" in rejected["reason"]


def test_a_core_ml_variant_coremltools_cannot_convert_is_listed_as_rejected(bundle, student_dir, tmp_path,
                                                                            monkeypatch):
    from convert import coreml_export, onnx_export

    def fails(*args, **kwargs):                # what coremltools 9 raised on the zero-SNR student's graph
        raise NotImplementedError("Unsupported fx node alias, kind alias")

    good = bundle / "onnx-fp32" / "student.onnx"
    monkeypatch.setattr(onnx_export, "export_fp32", lambda spec, model, path: _copy(good, path))
    monkeypatch.setattr(coreml_export, "convert_coreml", fails)
    with pytest.raises(NotImplementedError):
        write_bundle(student_dir, tmp_path / "refused", variants=["onnx-fp32", "coreml-fp16"], gate_n=2,
                     progress=False)
    assert not (tmp_path / "refused").exists()
    write_bundle(student_dir, tmp_path / "partial", variants=["onnx-fp32", "coreml-fp16"], gate_n=2,
                 skip_failing=True, progress=False)
    manifest = read_manifest(tmp_path / "partial")
    assert set(manifest["variants"]) == {"onnx-fp32"} and not (tmp_path / "partial" / "coreml-fp16").exists()
    (rejected,) = manifest["rejected"]
    assert rejected["variant"] == "coreml-fp16" and "Unsupported fx node alias" in rejected["reason"]


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def test_same_inputs_give_byte_identical_bundles(bundle, student_dir, tmp_path):
    # the variants whose bytes could drift (calibration in qdq, the fp16 rewrite, ORT's flatbuffer layout in
    # ort), written again: their files must equal the fixture's
    again = tmp_path / "again"
    some = ["onnx-fp32", "onnx-qdq", "onnx-fp16", "ort"]
    assert convert_main(["bundle", "--model", str(student_dir), "--out", str(again), "--variants",
                         ",".join(some), "--gate-n", "6", "--calibration-n", "6"]) == 0
    first = sorted(p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file() and p.parts[-2] in some)
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file() and p.parts[-2] in some)
    assert first == second and {p.parts[0] for p in first} == set(some)
    for rel in first:
        assert (bundle / rel).read_bytes() == (again / rel).read_bytes(), rel


def _run_at_level(path: Path, level, output: str, persons: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """`output` of the student graph at `path`, run on the CPU at ORT graph optimization `level`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = level
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return sess.run([output], {"person": persons, "noise": noise})[0]


def test_weight_only_int8_is_a_quarter_of_fp32_and_the_same_at_every_optimization_level(bundle, student_dir):
    import onnxruntime as ort

    manifest = read_manifest(bundle)
    w8 = bundle / manifest["variants"]["onnx-w8"]["files"]["student"]
    fp32 = bundle / manifest["variants"]["onnx-fp32"]["files"]["student"]
    assert w8.stat().st_size < 0.4 * fp32.stat().st_size
    proto = onnx.load(str(w8))
    int8 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert int8 and not any(n.op_type in ("DequantizeLinear", "QuantizeLinear") for n in proto.graph.node)
    persons, _, noise = gate_images(IGRModel.from_pretrained(student_dir).config, 4)
    outputs = [_run_at_level(w8, level, "latent", persons, noise)
               for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                             ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]
    # the weights are expanded exactly whether or not they are folded: only fp32 kernel order differs
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=0, atol=1e-4)


def test_weight_only_int8_leaves_the_weights_keep_float_names_in_float32(bundle, tmp_path):
    from convert.onnx_export import quantize_weights_int8

    fp32 = bundle / read_manifest(bundle)["variants"]["onnx-fp32"]["files"]["student"]
    floats = lambda path: {i.name for i in onnx.load(str(path)).graph.initializer
                           if i.data_type == onnx.TensorProto.FLOAT}
    all_int8 = floats(quantize_weights_int8(fp32, tmp_path / "all.onnx"))
    kept = floats(quantize_weights_int8(fp32, tmp_path / "kept.onnx", keep_float=lambda n: ".denoiser." in n))
    spared = kept - all_int8
    assert spared and all(".denoiser." in n for n in spared)        # only the denoiser's weights, all of them
    int8 = [i.name for i in onnx.load(str(tmp_path / "kept.onnx")).graph.initializer
            if i.data_type == onnx.TensorProto.INT8]
    assert int8 and not any(".denoiser." in n for n in int8)
    assert (tmp_path / "kept.onnx").stat().st_size > (tmp_path / "all.onnx").stat().st_size


def test_static_int8_weights_use_7_bits_so_x86_int8_kernels_do_not_saturate(bundle, student_dir):
    """ORT's uint8 x int8 kernels on x86 CPUs without VNNI add pairs of products in int16; full 8-bit weights
    saturate there (20.6 dB against fp32 for this student on an AVX2-only host). With 7 bits the fused kernels
    compute what the unfused QDQ graph does, on any CPU that runs this test."""
    import onnxruntime as ort

    from convert.gates import psnr

    manifest = read_manifest(bundle)
    qdq = bundle / manifest["variants"]["onnx-qdq"]["files"]["student"]
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(qdq)).graph.initializer
               if i.data_type == onnx.TensorProto.INT8 and i.dims and np.prod(i.dims) > 1]
    assert weights and all(w.min() >= -64 and w.max() <= 64 for w in weights)
    persons, _, noise = gate_images(IGRModel.from_pretrained(student_dir).config, 4)
    garments = [_run_at_level(qdq, level, "garment", persons, noise)
                for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]
    assert psnr(garments[0], garments[1], 255.0) >= 30.0


def test_default_bundle_holds_one_cpu_variant_within_the_size_limit(bundle, tmp_path):
    variant, size = install_default(bundle, tmp_path / "default", max_bytes=10 * 10**6)
    manifest = read_manifest(tmp_path / "default")
    assert manifest["default_variant"] == variant and list(manifest["variants"]) == [variant]
    assert "cpu" in manifest["variants"][variant]["backends"] and size <= 10 * 10**6
    assert sum(f["size"] for f in manifest["files"]) == size
    source = read_manifest(bundle)["variants"]
    close = [v for v, spec in source.items() if float(spec["parity"]["psnr_vs_fp32_db"]) >= 40]
    assert "onnx-w8" in close and variant in close
    assert manifest["provenance"]["source_bundle"]["chosen_by"].endswith("and 40 dB of fp32")
    with pytest.raises(ValueError, match="no CPU variant"):
        install_default(bundle, tmp_path / "none", max_bytes=1000)
    assert not (tmp_path / "none").exists()


def test_default_bundle_carries_other_variants_beside_its_cpu_variant_within_one_size_bound(bundle, tmp_path):
    """`also` (`--with`): the mobile variant rides beside the CPU one, which stays default_variant; the bound
    covers both; a fixed-batch variant is never the CPU pick."""
    from convert.default import pick_cpu_variant

    source = read_manifest(bundle)
    alone, alone_size = install_default(bundle, tmp_path / "alone", max_bytes=10 * 10**6, variant="onnx-w8")
    extra = variant_bytes(source, "onnx-fp32")
    variant, size = install_default(bundle, tmp_path / "both", max_bytes=alone_size + extra, variant="onnx-w8",
                                    also=("onnx-fp32",))
    manifest = read_manifest(tmp_path / "both")
    assert variant == alone == manifest["default_variant"] and set(manifest["variants"]) == {"onnx-w8", "onnx-fp32"}
    assert size == alone_size + extra == sum(f["size"] for f in manifest["files"])
    assert manifest["variants"]["onnx-fp32"] == source["variants"]["onnx-fp32"]
    with pytest.raises(ValueError, match="over the default bundle"):
        install_default(bundle, tmp_path / "over", max_bytes=size - 1, variant="onnx-w8", also=("onnx-fp32",))
    with pytest.raises(ValueError, match="no variant onnx-nothing"):
        install_default(bundle, tmp_path / "missing", max_bytes=size, also=("onnx-nothing",))
    assert not (tmp_path / "over").exists() and not (tmp_path / "missing").exists()
    fixed = json.loads(json.dumps(source))                 # every variant but onnx-fp32 declared at batch 1
    for name, spec in fixed["variants"].items():
        if name != "onnx-fp32":
            for io in spec["io"].values():
                for t in [*io["inputs"], *io["outputs"]]:
                    t["shape"][0] = 1
    picked, timed = pick_cpu_variant(bundle, fixed, max_bytes=10**9, runs=1)
    assert picked == "onnx-fp32" and set(timed) == {"onnx-fp32"}          # the fixed-batch ones are not even timed
    # the automatic pick gets what --with leaves of the bound: with everything but onnx-w8's room taken, onnx-w8
    w8 = variant_bytes(source, "onnx-w8")
    others = [v for v in source["variants"] if v != "onnx-w8" and variant_bytes(source, v) >= w8]
    room = sum(variant_bytes(source, v) for v in others) + w8
    assert install_default(bundle, tmp_path / "auto", max_bytes=room, also=tuple(others) * 2)[0] == "onnx-w8"
    assert set(read_manifest(tmp_path / "auto")["variants"]) == {"onnx-w8", *others}   # each once


def test_default_bundle_falls_back_to_the_fastest_when_no_variant_is_within_40_db(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for spec in manifest["variants"].values():
        spec["parity"]["psnr_vs_fp32_db"] = 35.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    install_default(copy, tmp_path / "default", max_bytes=10 * 10**6)
    chosen_by = read_manifest(tmp_path / "default")["provenance"]["source_bundle"]["chosen_by"]
    assert chosen_by.endswith("(none within 40 dB of fp32)")


def test_component_bundle_of_a_multi_step_model(tiny_bundles, tmp_path):
    # the tiny teacher bundle (tests/tiny_bundles.py) was written by write_bundle(variants=["onnx-fp32"])
    with pytest.raises(ValueError, match="component graphs with onnx-fp32 only"):
        write_bundle(tiny_bundles["models"] / "teacher", tmp_path / "b", variants=["onnx-int8"], progress=False)
    assert not (tmp_path / "b").exists()
    manifest = read_manifest(tiny_bundles["teacher"])
    assert manifest["kind"] == "components" and manifest["guidance"] == {"scale": 2.0, "baked_in": False}
    assert set(manifest["variants"]["onnx-fp32"]["files"]) == {"vae_encoder", "image_encoder", "garmnet", "denoiser",
                                                              "vae_decoder"}
    assert all(f["latent_max_abs_error"] <= 1e-4 for f in
               [manifest["variants"]["onnx-fp32"]["parity"]["vs_torch"]["vae_encoder"]])


def test_only_a_components_bundle_requires_what_its_runtime_must_implement():
    cfg = IGRConfig.tiny()
    assert requirements(cfg, single_call=False) == []
    assert requirements(cfg.replace(zero_snr=True), single_call=False) == ["zero-snr"]
    assert requirements(cfg.replace(zero_snr=True, aligned_prior=True), single_call=False) == ["zero-snr",
                                                                                             "aligned-prior"]
    assert requirements(cfg.replace(zero_snr=True, aligned_prior=True), single_call=True) == []
    assert specs_for(cfg.replace(aligned_prior=True))["denoiser"].input_names[3] == "prior"


@pytest.mark.slow          # ~2 minutes here; the components bundle with a prior is in tests/tiny_bundles.py
def test_a_student_with_the_aligned_prior_bundles_as_one_graph_that_old_sdks_can_run(tmp_path):
    """A 2-step student of a zero-SNR teacher with an aligned prior (the EfficientNet tower's export is tested in
    tests/igr): the prior runs inside the single-call graph, so the bundle requires nothing of the runtime
    beyond schema 1.0, and its batch stays dynamic."""
    from igr_edge import Restorer

    torch.manual_seed(4)
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2, zero_snr=True,
                                   aligned_prior=True)
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    IGRModel(cfg).save_pretrained(tmp_path / "s2", extra={"distill.json": json.dumps(meta)})
    write_bundle(tmp_path / "s2", tmp_path / "b", variants=["onnx-fp32"], gate_n=3, progress=False)
    manifest = read_manifest(tmp_path / "b")
    assert "requires" not in manifest and set(manifest["graphs"]) == {"student"}
    assert manifest["provenance"]["image_encoder"]["backbone"] == "clip"
    assert manifest["provenance"]["vae"] == {"light": False}
    assert manifest["variants"]["onnx-fp32"]["parity"]["vs_torch"]["garment_psnr_db"] >= 45
    with Restorer(tmp_path / "b") as r:
        assert r.restore_arrays(np.full((1, 64, 48, 3), 128, np.uint8), [0]).shape == (1, 64, 48, 3)


def test_the_core_ml_program_of_a_student_with_the_aligned_prior_has_no_alias_node():
    """coremltools 9 refuses `aten.alias` ("Unsupported fx node alias"), which a no-op crop of the prior's UNet
    output exported as when the latent needed no padding: every Core ML variant of such a student failed."""
    from convert.coreml_export import CoreMLStudent

    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2, zero_snr=True,
                                   aligned_prior=True, width=64)       # an 8x8 latent: the prior's UNet needs no pad
    model = IGRModel(cfg).eval()
    c, h, w = cfg.latent_shape
    module = CoreMLStudent(specs_for(cfg, student_steps=2)["student"].build(model)).eval()
    with torch.no_grad():
        program = torch.export.export(module, (torch.rand(1, 3, cfg.height, cfg.width) * 2 - 1,
                                               torch.randn(1, c, h, w)), strict=False).run_decompositions({})
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("conv2d" in t for t in targets) and not any("alias" in t for t in targets)


def test_a_light_student_bundles_with_its_light_parts_and_says_so(tmp_path):
    """A student with light VAE parts: its single-call graph encodes and decodes with them, as igr.pipeline.sample
    does (same noise, same garment), and the manifest records which VAE it runs; a plain student says light false."""
    from igr.config import LightVAEConfig
    from igr.pipeline import sample
    from igr_edge import Restorer

    torch.manual_seed(5)
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2, light=True,
                                   light_vae=LightVAEConfig.tiny())
    model = IGRModel(cfg).eval()
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    model.save_pretrained(tmp_path / "s2", extra={"distill.json": json.dumps(meta)})
    person = torch.randint(0, 256, (2, cfg.height, cfg.width, 3), dtype=torch.uint8)
    noise = torch.randn(2, *cfg.latent_shape)
    with torch.no_grad():
        garment, _ = specs_for(cfg, student_steps=2)["student"].build(model)(person, noise)
        want = sample(model, person.permute(0, 3, 1, 2).float() / 127.5 - 1, noise=noise)
        full = sample(model, person.permute(0, 3, 1, 2).float() / 127.5 - 1, noise=noise, light=False)
    want = ((want + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert (garment.int() - want.int()).abs().max() <= 1
    assert not torch.allclose(want.float(), ((full + 1) * 127.5).permute(0, 2, 3, 1), atol=2)
    write_bundle(tmp_path / "s2", tmp_path / "b", variants=["onnx-fp32"], gate_n=3, progress=False)
    vae = read_manifest(tmp_path / "b")["provenance"]["vae"]
    assert vae["light"] is True and vae["decoder"] == list(cfg.light_vae.decoder)
    with Restorer(tmp_path / "b") as r:
        assert r.restore_arrays(person.numpy(), [0, 1]).shape == (2, cfg.height, cfg.width, 3)


def _warp_student(root: Path, *, light: bool) -> IGRModel:
    """A tiny 2-step student with an aligned prior and a warp prior (a WarpNet attached, its channels opened), at
    the WarpNet's 256x192; with `light`, light VAE parts too."""
    from igr.config import LightVAEConfig
    from igr.warp import SIZE, WarpNet, attach

    torch.manual_seed(6)
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2, zero_snr=True,
                                   aligned_prior=True, height=SIZE[0], width=SIZE[1], light=light,
                                   light_vae=LightVAEConfig.tiny())
    IGRModel(cfg).save_pretrained(root / "base")
    net = WarpNet()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    net.save_pretrained(root / "warpnet")
    attach(root / "base", root / "warpnet", root / "s2")
    model = IGRModel.from_pretrained(root / "s2")
    with torch.no_grad():
        model.denoiser.unet.conv_in.weight[:, 8:].normal_(std=0.2)
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    model.save_pretrained(root / "s2", extra={"distill.json": json.dumps(meta)})
    return model.eval()


def test_a_warp_prior_student_carries_its_warpnet_inside_the_one_graph_and_the_sdk_runs_it(tmp_path):
    """A light student with a warp prior (igr.warp): the single-call graph runs the WarpNet, resamples the photo
    (ONNX GridSample) and encodes it with the light encoder, as igr.pipeline.sample does; the bundle needs nothing
    of the runtime beyond schema 1.0, its batch stays dynamic, and the manifest names the WarpNet; its onnx-w8
    keeps the light decoder and the grid coordinates float32. A teacher with a
    warp prior is refused: only a single-call graph carries one."""
    from igr.pipeline import sample
    from igr_edge import Restorer

    model = _warp_student(tmp_path, light=True)
    cfg = model.config
    person = torch.randint(0, 256, (2, cfg.height, cfg.width, 3), dtype=torch.uint8)
    x = person.permute(0, 3, 1, 2).float() / 127.5 - 1
    noise = torch.randn(2, *cfg.latent_shape)
    with torch.no_grad():
        garment, _ = specs_for(cfg, student_steps=2)["student"].build(model)(person, noise)
        want = sample(model, x, noise=noise)
        light_warp, full_warp = model.warp_input(x), model.warp_input(x, light=False)
    assert (light_warp[:, :4] - full_warp[:, :4]).abs().mean() > 1e-3      # the warped photo's light encoding
    want = ((want + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert (garment.int() - want.int()).abs().max() <= 1
    write_bundle(tmp_path / "s2", tmp_path / "b", variants=["onnx-fp32", "onnx-w8"], gate_n=2, progress=False)
    manifest = read_manifest(tmp_path / "b")
    assert "requires" not in manifest and set(manifest["graphs"]) == {"student"}
    # int8 weights but the light decoder's and the WarpNet's grid coordinates (convert.bundle.W8_FLOAT)
    w8 = onnx.load(tmp_path / "b" / "onnx-w8" / "student.onnx").graph.initializer
    kind = {i.name: i.data_type for i in w8}
    assert kind["model.warpnet.centres"] == onnx.TensorProto.FLOAT
    light = [n for n in kind if n.startswith("model.light_decoder.") and n.endswith(".weight")]
    assert light and all(kind[n] == onnx.TensorProto.FLOAT for n in light)
    assert any(n.startswith("model.light_encoder.") and t == onnx.TensorProto.INT8 for n, t in kind.items())
    assert manifest["provenance"]["warp"]["kind"] == "warp" and manifest["provenance"]["warp"]["parameters_m"] > 0.1
    assert float(manifest["variants"]["onnx-fp32"]["parity"]["vs_torch"]["garment_psnr_db"]) >= 45
    graph = onnx.load(tmp_path / "b" / "onnx-fp32" / "student.onnx")
    assert any(n.op_type == "GridSample" for n in graph.graph.node)
    with Restorer(tmp_path / "b") as r:
        out = r.restore_arrays(person.numpy(), [0, 1])
    assert out.shape == (2, cfg.height, cfg.width, 3)
    teacher = tmp_path / "s2-teacher"
    shutil.copytree(tmp_path / "s2", teacher)
    (teacher / "distill.json").unlink()
    with pytest.raises(ValueError, match="only a few-step student's single-call graph"):
        write_bundle(teacher, tmp_path / "t", variants=["onnx-fp32"], progress=False)
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_a_warp_prior_students_core_ml_program_resamples_the_photo(tmp_path):
    """coremltools converts the WarpNet's grid_sample to Core ML's resample (iOS 16): the package saves with it."""
    _warp_student(tmp_path, light=False)
    write_bundle(tmp_path / "s2", tmp_path / "cm", variants=["onnx-fp32", "coreml-fp16"], gate_n=2, progress=False)
    parity = read_manifest(tmp_path / "cm")["variants"]["coreml-fp16"]["parity"]
    assert parity["spec"]["ops"]["resample"] == 1 and parity["minimum_deployment_target"] == "iOS16"


@pytest.mark.parametrize("zero_snr", (False, True))
def test_the_manifest_records_zero_snr_and_the_sdk_plans_what_the_graph_bakes_in(zero_snr):
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2, zero_snr=zero_snr)
    section = _scheduler(cfg, 2, single_call=True)           # a 2-step student's: coefficients from diffusers
    assert section["zero_snr"] is zero_snr
    assert validation_errors(section, schema()["properties"]["scheduler"], "scheduler") == []
    p = plan("ddim", NoiseSchedule.from_manifest(section), 2)
    assert p.timesteps.tolist() == section["timesteps"] == [999, 499]
    alphas = [*map(float, p.alphas), float(p.alphas_prev[-1])]
    np.testing.assert_allclose(section["coefficients"], [[a ** 0.5, (1 - a) ** 0.5] for a in alphas], atol=1e-6)
    assert (section["coefficients"][0] == [0.0, 1.0]) is zero_snr           # t = 999 pure noise: x0 = -v
    teacher = _scheduler(cfg.replace(sampler="dpmsolver++", sample_steps=4), 4, single_call=False)
    assert teacher["zero_snr"] is zero_snr and teacher["timesteps"] == [999, 749, 499, 249]


@pytest.mark.slow
def test_core_ml_packages_convert_save_and_reload_on_linux(student_dir, tmp_path):
    """Core ML conversion and its spec checks (I/O, ops); the numbers are checked on macOS (marker coreml)."""
    write_bundle(student_dir, tmp_path / "cm", variants=["onnx-fp32", "coreml-fp16", "coreml-8bit", "coreml-6bit"],
                 gate_n=4, progress=False)
    manifest = read_manifest(tmp_path / "cm")
    for v, op in (("coreml-fp16", None), ("coreml-8bit", "constexpr_affine_dequantize"),
                  ("coreml-6bit", "constexpr_lut_to_dense")):
        parity = manifest["variants"][v]["parity"]
        assert parity["spec"]["inputs"] == {"person": "imageType", "noise": "multiArrayType"}
        assert parity["spec"]["outputs"] == {"garment": "imageType"}
        assert op is None or op in parity["spec"]["ops"]
        assert manifest["variants"][v]["minimum_deployment_target"] == "iOS16"
        io = manifest["variants"][v]["io"]["student"]               # an image in and out, batch 1, no latent
        assert io["inputs"][0] == {"name": "person", "dtype": "uint8", "shape": [1, 64, 48, 3], "layout": "image"}
        assert [t["name"] for t in io["outputs"]] == ["garment"] and io["outputs"][0]["layout"] == "image"


@pytest.mark.coreml
def test_core_ml_predictions_match_the_onnx_twin(student_dir, tmp_path):
    """macOS only: the gate runs the package and compares it with the fp32 ONNX graph (PSNR >= 30 dB)."""
    write_bundle(student_dir, tmp_path / "cm", variants=["onnx-fp32", "coreml-fp16"], gate_n=4, progress=False)
    assert read_manifest(tmp_path / "cm")["variants"]["coreml-fp16"]["parity"]["psnr_vs_fp32_db"] >= 30
