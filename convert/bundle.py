"""The bundle writer: export, gate and package a model's variants into one folder with manifest.json (schema v1).

Written into a temporary sibling folder and renamed at the end, so there is never a half bundle; a variant
that fails its parity gate is never written (the whole bundle fails, or with `skip_failing` the variant is
left out and listed under `rejected` with its figure and bound; so is a Core ML variant that coremltools cannot
convert, with the error). Same inputs, same bytes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from igr_edge.manifest import MANIFEST, read_manifest, sha256_file, validation_errors, variant_bytes

from . import onnx_export
from .gates import (FP32_REWRITE_MIN_PSNR, VARIANT_MIN_PSNR, GateError, check_fp32, check_graph, check_variant, run,
                    session, gate_images)
from .graphs import single_call_steps
from .specs import component_graphs, specs_for

SCHEMA_VERSION = "1.3.0"           # 1.1: `requires`; 1.2: variants' `mobile` (ORT's mobile usability check);
                                   # 1.3: variants' `io` (the I/O each variant's files declare) and tensors' `layout`
BUNDLE_VERSION = "0.1.0"


@dataclass(frozen=True)
class Variant:
    format: str
    precision: str
    backends: tuple[str, ...]


VARIANTS = {
    "onnx-fp32": Variant("onnx", "fp32", ("cpu", "cuda")),
    "onnx-int8": Variant("onnx", "int8 dynamic (MatMul, Gemm), rest fp32", ("cpu",)),
    "onnx-qdq": Variant("onnx", "int8 QDQ static (Conv, MatMul, Gemm), calibrated at the student's timesteps",
                        ("cpu", "coreml")),
    "onnx-w8": Variant("onnx", "int8 weights (per channel) dequantized in the graph, fp32 compute: the same pixels "
                       "on every ONNX Runtime build; a light decoder's weights and a warp's grid coordinates "
                       "stay fp32", ("cpu", "cuda")),
    "onnx-fp16": Variant("onnx", "fp16 (normalizations, softmax and reductions fp32)", ("cuda",)),
    # batch fixed at 1, which `io` declares (schema 1.3) and the SDK honours image by image; gated and timed on the
    # CPU here, NNAPI / the Core ML EP by ORT's checker (their coverage in `mobile`), not run on a phone
    "onnx-mobile": Variant("onnx", "fp32, batch fixed at 1 and every shape static, constant-folded, in ops that "
                           "NNAPI and the Core ML EP take (GELU in its tanh form; for ORT Mobile)", ("cpu",)),
    # onnx-mobile's graph at a quarter of its size: ORT's basic optimizations, which run before the graph is split
    # between execution providers, fold the expansion back into fp32 constants, so NNAPI and the Core ML EP see
    # onnx-mobile's nodes (ORT's checker measures the graph after exactly those optimizations)
    "onnx-mobile-w8": Variant("onnx", "onnx-mobile with int8 weights (per channel) expanded in the graph as onnx-w8's "
                              "(Cast · scale, folded by ONNX Runtime at load): fp32 compute, batch fixed at 1",
                              ("cpu",)),
    "ort": Variant("ort", "the onnx-int8 graph in ORT format (ORT Mobile)", ("cpu",)),
    # as onnx-mobile: for NNAPI and the Core ML EP in a reduced ORT Mobile build, batch fixed at 1
    "ort-mobile": Variant("ort", "the onnx-mobile graph in ORT format, basic optimizations only (no CPU-only fused "
                          "ops, so NNAPI and the Core ML EP can take its nodes)", ("cpu",)),
    "coreml-fp16": Variant("mlpackage", "fp16 ML Program", ("coreml",)),
    "coreml-8bit": Variant("mlpackage", "8-bit linear weights (fp16 compute)", ("coreml",)),
    "coreml-6bit": Variant("mlpackage", "6-bit palettized weights (fp16 compute)", ("coreml",)),
}
# weights the int8-weight variants leave float32 (scripts/w8-sensitivity.py; reports/w8-sensitivity*.json, on the
# warp prior's light student): the light decoder's (0.2 MB; in int8 alone they put the output 45.9 dB from fp32)
# and the WarpNet's token-grid coordinates (`centres`, 384 values multiplied by attention weights, not a learned
# weight; alone 43.4 dB). With both float32 the rest in int8 gives 43.4 dB; with both in int8 38.9 dB.
W8_FLOAT = ("model.light_decoder.", "model.warpnet.centres")


def w8_keeps_float(name: str) -> bool:
    return name.startswith(W8_FLOAT)


MOBILE_VARIANTS = ("onnx-mobile", "onnx-mobile-w8", "ort-mobile")    # batch fixed at 1, ops rewritten for the EPs
FP32_REWRITES = ("onnx-mobile", "ort-mobile")                          # of those, the fp32 ones (the 40 dB gate)
NORMALIZATION = {
    "person": "uint8 RGB, N×H×W×3, 0..255 (the graph maps it to [-1, 1])",
    "garment": "uint8 RGB, N×H×W×3, 0..255",
    "image": "float32 RGB, N×3×H×W, in [-1, 1]",
    "noise": "float32 N×4×h×w, standard normal from the manifest's noise generator",
    "latent": "float32 N×4×h×w, VAE latent times the VAE scaling factor",
}


def finite(value: Any) -> Any:
    """JSON-safe figures: an infinite PSNR (identical outputs) is written as the string "inf"."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _git_commit() -> str | None:
    """HEAD of the checkout the converter runs from, marked "-dirty" when its tracked files have changes."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=here)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _model_files(folder: Path) -> dict[str, str]:
    from igr.model import component_file, folder_components

    return {name: sha256_file(component_file(folder, name)) for name in folder_components(folder)}


ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int64)": "int64"}


def _layout(name: str, shape: list) -> str | None:
    """uint8 images are N×H×W×3 (person, garment), 4-d float tensors N×C×H×W."""
    if len(shape) != 4:
        return None
    return "NHWC" if name in ("person", "garment") else "NCHW"


def file_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The inputs and outputs a variant's file declares: an ONNX or .ort graph as ONNX Runtime loads it (a
    named dimension is the batch, a number is fixed), a Core ML package from its spec (images are `image`)."""
    if path.suffix == ".mlpackage":
        import coremltools as ct

        desc = ct.models.MLModel(str(path), skip_model_load=True).get_spec().description

        def tensor(f) -> dict[str, Any]:
            kind = f.type.WhichOneof("Type")
            if kind == "imageType":
                return {"name": f.name, "dtype": "uint8", "shape": [1, f.type.imageType.height,
                                                                      f.type.imageType.width, 3], "layout": "image"}
            shape = [int(d) for d in f.type.multiArrayType.shape]
            return {"name": f.name, "dtype": "float32", "shape": shape, **({"layout": "NCHW"} if len(shape) == 4
                                                                            else {})}
        return {"inputs": [tensor(f) for f in desc.input], "outputs": [tensor(f) for f in desc.output]}
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL      # only the I/O is read
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def tensor(arg) -> dict[str, Any]:
        shape = [d if isinstance(d, int) else "batch" for d in arg.shape]
        layout = _layout(arg.name, shape)
        return {"name": arg.name, "dtype": ORT_DTYPES[arg.type], "shape": shape, **({"layout": layout} if layout else {})}
    return {"inputs": [tensor(a) for a in sess.get_inputs()], "outputs": [tensor(a) for a in sess.get_outputs()]}


def vae_provenance(model_dir: Path, config) -> dict[str, Any]:
    """Which VAE the graphs run: `light` false (the full VAE) or the light parts' sizes and, from the model's
    `light.json` (written by `python -m distill light-attach`), the digest of the VAE they were distilled from."""
    if not config.light:
        return {"light": False}
    record: dict[str, Any] = {"light": True, **dataclasses.asdict(config.light_vae)}
    meta = model_dir / "light.json"
    if meta.is_file():
        light = json.loads(meta.read_text())
        record.update({k: light[k] for k in ("vae", "flops") if k in light})
    return record


def warp_provenance(model) -> dict[str, Any]:
    """The WarpNet a warp prior student carries inside its graph (`igr.warp`): its architecture and size."""
    return {**model.warpnet.config(), "parameters_m": round(sum(p.numel() for p in model.warpnet.parameters()) / 1e6, 3)}


def requirements(config, single_call: bool) -> list[str]:
    """What a runtime must implement beyond schema 1.0 to run the bundle right (the manifest's `requires`; an SDK
    refuses a bundle that requires what it does not know). A single-call graph carries its whole sampler, so it
    requires nothing; a components bundle's runtime samples and feeds the graphs itself."""
    if single_call:
        return []
    return [name for name, used in (("zero-snr", config.zero_snr), ("aligned-prior", config.aligned_prior)) if used]


def _scheduler(config, steps: int, single_call: bool) -> dict[str, Any]:
    from .graphs import ddim_plan

    out = {"name": config.sampler, "prediction": config.prediction, "train_timesteps": config.train_timesteps,
           "beta_schedule": config.beta_schedule, "beta_start": config.beta_start, "beta_end": config.beta_end,
           "zero_snr": bool(getattr(config, "zero_snr", False)), "timestep_spacing": "trailing"}
    if single_call:
        plan, coef = ddim_plan(config, steps)
        out.update(name="ddim", timesteps=plan, coefficients=[list(c) for c in coef])
    else:
        from igr.pipeline import make_scheduler

        sched = make_scheduler(config)
        sched.set_timesteps(steps)
        out["timesteps"] = [int(t) for t in sched.timesteps]
    return out


def write_bundle(model_dir: str | Path, out: str | Path, *, variants: list[str], name: str | None = None,
                 gate_n: int = 32, calibration_n: int = 32, quality: dict | None = None,
                 skip_failing: bool = False, progress: bool = True) -> Path:
    """Export `model_dir` into bundle folder `out` with `variants`; returns `out`."""
    from tqdm.auto import tqdm

    from igr.files import atomic_folder
    from igr.model import IGRModel

    variants = list(dict.fromkeys(variants))                  # each once, in the order given
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    model_dir = Path(model_dir)
    model = IGRModel.from_pretrained(model_dir)
    cfg = model.config
    meta_path = model_dir / "distill.json"
    distill = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    single_call = distill.get("kind") == "steps"
    if cfg.warp_prior and not single_call:
        raise ValueError(f"{model_dir} reads a warp prior (igr.warp): only a few-step student's single-call graph "
                         f"carries the WarpNet, not a teacher's component graphs")
    if not single_call and set(variants) - {"onnx-fp32"}:
        raise ValueError("a multi-step model (teacher or guided) is bundled as component graphs with onnx-fp32 only: "
                         "reduced precision is gated end to end, on the single-call graph of a few-step student")
    steps = single_call_steps(cfg) if single_call else cfg.sample_steps
    specs = specs_for(cfg, student_steps=steps if single_call else None)
    graphs = ["student"] if single_call else component_graphs(cfg)
    name = name or model_dir.name
    rejected: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(variants) + 1, desc=f"bundle {name}", disable=not progress)
    with atomic_folder(out) as tmp:
        staging = tmp / ".staging"
        staging.mkdir()
        # fp32 export of every graph, each gated against torch
        fp32: dict[str, Path] = {}
        parity32: dict[str, Any] = {}
        if single_call:
            persons, truth, noise = gate_images(cfg, gate_n)
        for g in graphs:
            bar.set_postfix_str(f"onnx-fp32 {g}")
            path = onnx_export.export_fp32(specs[g], model, staging / "onnx-fp32" / f"{g}.onnx")
            check_graph(f"{g} onnx-fp32", path)
            inputs = None
            if single_call:
                import torch

                inputs = (torch.from_numpy(persons[:2]), torch.from_numpy(noise[:2]))
            parity32[g] = check_fp32(specs[g], model, path, inputs)
            fp32[g] = path
        parity32 = {"vs_torch": parity32}
        if single_call:
            reference = run(session(fp32["student"]), specs["student"].input_names, (persons, noise))[0]
            parity32 = {"vs_torch": parity32["vs_torch"]["student"],
                        **check_variant("onnx-fp32", reference, reference, truth)}
        bar.update(1)

        def accept(variant: str, files: dict[str, Path], parity: dict[str, Any], **extra) -> None:
            dest = tmp / variant
            dest.mkdir(exist_ok=True)
            rel = {}
            for g, f in files.items():
                target = dest / f.name
                if f.is_dir():
                    shutil.copytree(f, target, copy_function=shutil.copyfile)
                else:
                    shutil.copyfile(f, target)
                rel[g] = f"{variant}/{f.name}"
            records[variant] = {"format": VARIANTS[variant].format, "precision": VARIANTS[variant].precision,
                                "files": rel, "backends": list(VARIANTS[variant].backends), "parity": parity,
                                "io": {g: file_io(dest / f.name) for g, f in files.items() if g in graphs}, **extra}
            if VARIANTS[variant].format == "onnx":       # per graph: the nodes NNAPI and the Core ML EP take
                from .mobile import mobile_usability

                records[variant]["mobile"] = {g: mobile_usability(f) for g, f in files.items()}

        for variant in variants:
            bar.set_postfix_str(variant)
            try:
                if variant == "onnx-fp32":
                    accept(variant, dict(fp32), parity32)
                elif VARIANTS[variant].format == "mlpackage":
                    from .coreml_export import convert_coreml

                    try:
                        made, parity = convert_coreml(specs["student"], model, staging / variant, variant,
                                                      persons=persons, truth=truth, noise=noise, reference=reference)
                    except GateError:
                        raise
                    except Exception as e:                 # coremltools cannot convert the graph at all
                        if not skip_failing:
                            raise
                        rejected.append({"variant": variant,
                                         "reason": f"{variant}: Core ML conversion failed: {type(e).__name__}: {e}"[:500]})
                        bar.update(1)
                        continue
                    accept(variant, {"student": made}, parity, minimum_deployment_target=parity["minimum_deployment_target"])
                else:
                    made = _onnx_variant(variant, fp32["student"], staging / variant, model, calibration_n)
                    if VARIANTS[variant].format == "onnx":
                        check_graph(variant, made["student"])
                    mobile = variant in MOBILE_VARIANTS                         # batch fixed at 1
                    garments = run(session(made["student"]), specs["student"].input_names, (persons, noise),
                                   batch=1 if mobile else 8)[0]
                    bound = FP32_REWRITE_MIN_PSNR if variant in FP32_REWRITES else VARIANT_MIN_PSNR
                    parity = check_variant(variant, garments, reference, truth, min_psnr=bound)
                    accept(variant, made, parity)
            except GateError as e:
                if not skip_failing:
                    raise
                rejected.append({"variant": variant, "reason": str(e), "figure": e.figure, "value": e.value,
                                 "bound": e.bound})
            bar.update(1)
        bar.close()
        shutil.rmtree(staging)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "schema": SCHEMA_VERSION, "name": name, "version": BUNDLE_VERSION,
            "kind": "single-call" if single_call else "components",
            "resolution": {"height": cfg.height, "width": cfg.width}, "latent": list(cfg.latent_shape),
            "steps": steps,
            "guidance": {"scale": float(distill.get("guidance_baked", distill.get("trajectories", {}).get("guidance",
                                                                                                         cfg.guidance_scale))),
                         "baked_in": bool(distill)},
            "scheduler": _scheduler(cfg, steps, single_call),
            "noise": {"generator": "splitmix64-boxmuller", "shape": list(cfg.latent_shape), "dtype": "float32",
                      "order": "C"},
            "graphs": {g: specs[g].to_dict() for g in graphs},
            "normalization": NORMALIZATION,
            "variants": records,
            "files": [{"path": p.relative_to(tmp).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in files],
            "provenance": {"model": model_dir.name, "model_sha256": _model_files(model_dir),
                           "image_encoder": cfg.encoder.provenance, "vae": vae_provenance(model_dir, cfg),
                           "distill": distill or None, "commit": _git_commit(),
                           "exporter": {"opset": onnx_export.OPSET}},
            "quality": quality,
            "rejected": rejected,
        }
        if model.warpnet is not None:                  # the key only where there is one: other manifests unchanged
            manifest["provenance"]["warp"] = warp_provenance(model)
        needs = requirements(cfg, single_call)
        if needs:                                    # absent otherwise: bundles an older SDK runs stay as they were
            manifest["requires"] = needs
        errors = validation_errors(manifest)
        if errors:
            raise ValueError("the manifest does not conform to schema v1: " + "; ".join(errors[:5]))
        (tmp / MANIFEST).write_text(json.dumps(finite(manifest), indent=1, sort_keys=True) + "\n")
        read_manifest(tmp)                           # what the runtime will do: every hash, every path
    return Path(out)


def _onnx_variant(variant: str, fp32: Path, folder: Path, model, calibration_n: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if variant == "onnx-int8":
        return {"student": onnx_export.quantize_int8_dynamic(fp32, folder / "student.onnx")}
    if variant == "onnx-qdq":
        from distill.calibrate import calibration_set

        data = calibration_set(model, n=calibration_n, split="val")
        calib = {"person": data["person"], "noise": data["noise"]}
        return {"student": onnx_export.quantize_int8_qdq(fp32, folder / "student.onnx", calib)}
    if variant == "onnx-w8":
        return {"student": onnx_export.quantize_weights_int8(fp32, folder / "student.onnx",
                                                             keep_float=w8_keeps_float)}
    if variant == "onnx-mobile":
        return {"student": onnx_export.fix_batch(fp32, folder / "student.onnx", mobile_ops=True)}
    if variant == "onnx-mobile-w8":
        with _mobile_graph(fp32, folder) as source:
            return {"student": onnx_export.quantize_weights_int8(source, folder / "student.onnx",
                                                                 keep_float=w8_keeps_float)}
    if variant == "onnx-fp16":
        return {"student": onnx_export.convert_fp16(fp32, folder / "student.onnx")}
    if variant == "ort":
        int8 = onnx_export.quantize_int8_dynamic(fp32, folder / "int8.onnx")
        made, ops = onnx_export.convert_ort(int8, folder / "student.ort")
        int8.unlink()
        return {"student": made, "required_operators": ops}
    if variant == "ort-mobile":
        with _mobile_graph(fp32, folder) as source:
            made, ops = onnx_export.convert_ort(source, folder / "student.ort", level="basic")
        return {"student": made, "required_operators": ops}
    raise ValueError(variant)


@contextlib.contextmanager
def _mobile_graph(fp32: Path, folder: Path):
    """The onnx-mobile graph the variants built on it start from: onnx-mobile's own file when the bundle has just
    written it (a sibling folder), else one made here for the duration and removed after."""
    written = folder.parent / "onnx-mobile" / "student.onnx"
    if written.is_file():
        yield written
        return
    made = onnx_export.fix_batch(fp32, folder / "mobile.onnx", mobile_ops=True)
    try:
        yield made
    finally:
        made.unlink(missing_ok=True)


def variant_sizes(folder: Path, manifest: dict) -> dict[str, int]:
    """Bytes per variant (its files, or every file under its .mlpackage)."""
    return {variant: variant_bytes(manifest, variant) for variant in manifest["variants"]}


def latency(path: Path, spec_inputs: list[str], inputs: tuple[np.ndarray, ...], *, runs: int, warmup: int = 2,
            threads: int | None = None) -> list[float]:
    """Seconds per call (batch 1) of one ORT CPU session."""
    from igr_edge.bench import time_calls

    sess = session(path, threads)
    feeds = {k: v[:1] for k, v in zip(spec_inputs, inputs)}
    return time_calls(lambda: sess.run(None, feeds), runs=runs, warmup=warmup)
