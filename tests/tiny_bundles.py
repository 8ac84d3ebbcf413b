"""Tiny real bundles for the tests, written by the converters from tiny random-weight models (64×48 images): a
2-step single-call student (fp32, int8 and QDQ variants), a 4-step components teacher with classifier-free
guidance, one with a zero-SNR schedule, an aligned prior and the EfficientNet image tower, and a teacher
trained 2 steps from a tiny Stable Diffusion folder (the diffusers SD 1.5 layout, random weights; `sd`), plus their
model folders.

Exporting them takes ~3 minutes here, so they are kept in .cache/test-bundles/<key>/, the key hashing every
source file that shapes them (a change to the model, the converters or this file builds them afresh).
`python -m tests.tiny_bundles` builds them (needs torch) and prints the folder: `make test-compat` does so with .venv,
then runs the SDK tests in a venv without torch, where the fixture finds them cached."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["igr/config.py", "igr/model", "igr/pipeline.py", "igr/train", "convert", "distill/core.py",
           "igr_edge/manifest.py",
           "igr_edge/schemas/manifest-v1.schema.json",
           "tests/tiny_bundles.py"]


def _key() -> str:
    h = hashlib.sha256()
    for entry in SOURCES:
        path = REPO / entry
        for f in sorted([path] if path.is_file() else path.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def tiny_bundles(tmp_path_factory) -> dict[str, Path]:
    """The bundles and their model folders, built once per change of their sources."""
    root = REPO / ".cache" / "test-bundles" / _key()
    if not (root / "done").is_file():
        staging = tmp_path_factory.mktemp("sdk-bundles")
        _build(staging)
        (staging / "done").write_text("")
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(staging, partial)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)                           # whole or not at all
        for old in root.parent.iterdir():              # bundles of older sources are not needed again
            if old != root:
                shutil.rmtree(old, ignore_errors=True)
    return {"student": root / "student", "teacher": root / "teacher", "teacher-prior": root / "teacher-prior",
            "sd": root / "sd", "models": root / "models"}


def tiny_sd_config():
    """The SD 1.x UNet layout at test size (attention at the upper level and in the mid block, two layers per
    block) with a CLIP tower normalised as IP-Adapter's image encoder is."""
    from igr.config import IGRConfig, UNetConfig

    return IGRConfig.tiny().replace(
        unet=UNetConfig(channels=(16, 32), attention=(True, False), layers_per_block=2, heads=2,
                        cross_attention_dim=32, prompt_tokens=2, norm_groups=8, mid_attention=True),
        encoder={"hidden_act": "gelu", "normalize": "clip"})


def _build(root: Path) -> None:
    torch = pytest.importorskip("torch")
    from convert.bundle import write_bundle
    from igr.config import IGRConfig
    from igr.model import IGRModel

    torch.manual_seed(0)
    student = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2)
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    IGRModel(student).save_pretrained(root / "models" / "student-2", extra={"distill.json": json.dumps(meta)})
    write_bundle(root / "models" / "student-2", root / "student", variants=["onnx-fp32", "onnx-int8", "onnx-qdq"], gate_n=4,
                 calibration_n=4, progress=False)
    torch.manual_seed(1)
    teacher = IGRConfig.tiny().replace(guidance_scale=2.0, sampler="dpmsolver++", sample_steps=4)
    IGRModel(teacher).save_pretrained(root / "models" / "teacher")
    write_bundle(root / "models" / "teacher", root / "teacher", variants=["onnx-fp32"], gate_n=4, progress=False)
    torch.manual_seed(2)                               # the next teacher's shape: zero SNR, aligned prior, EfficientNet
    IGRModel(teacher.replace(zero_snr=True, aligned_prior=True, encoder={"backbone": "efficientnet-lite0"})
             ).save_pretrained(root / "models" / "teacher-prior")
    write_bundle(root / "models" / "teacher-prior", root / "teacher-prior", variants=["onnx-fp32"], gate_n=4,
                 progress=False)
    _build_sd(root)


def _build_sd(root: Path) -> None:
    """2 coarse steps from a tiny SD folder through `igr.train --pretrained`, then the components bundle."""
    from convert.bundle import write_bundle
    from igr.model.sd import write_sd_folder
    from igr.train.__main__ import main as train_main

    folder = write_sd_folder(tiny_sd_config(), root / "sd-folder", seed=3)
    run = root / "sd-run"
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--pretrained", str(folder), "--out", str(run),
                       "--steps", "2", "--gradient-checkpointing"]) == 0
    shutil.copytree(run / "final", root / "models" / "sd")
    shutil.rmtree(run)
    shutil.rmtree(folder)
    write_bundle(root / "models" / "sd", root / "sd", variants=["onnx-fp32"], gate_n=2, progress=False)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        class _Mktemp:                                 # what tiny_bundles needs of pytest's tmp_path_factory
            def mktemp(self, name: str) -> Path:
                (Path(tmp) / name).mkdir()
                return Path(tmp) / name

        print(tiny_bundles(_Mktemp())["student"].parent)
