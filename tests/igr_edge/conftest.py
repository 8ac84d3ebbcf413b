"""Tiny real bundles for the SDK's tests, written by the converters from tiny random-weight models (64×48
images): a 2-step single-call student and a 4-step components teacher with classifier-free guidance. The
shipped default bundle is used where a test needs the real model.

Exporting them takes ~2 minutes here, so they are kept in .cache/test-bundles/<key>/, the key hashing every
source file that shapes them (a change to the model, the converters or this file builds them afresh)."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["igr/config.py", "igr/model", "igr/pipeline.py", "convert", "distill/core.py", "igr_edge/manifest.py",
           "igr_edge/schemas", "tests/igr_edge/conftest.py"]


def _key() -> str:
    h = hashlib.sha256()
    for entry in SOURCES:
        path = REPO / entry
        for f in sorted([path] if path.is_file() else path.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
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
    return {"student": root / "student", "teacher": root / "teacher", "models": root / "models"}


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


@pytest.fixture(autouse=True)
def no_backend_from_the_environment(monkeypatch):
    """Tests choose their backend themselves: IGR_EDGE_BACKEND from the shell must not leak in."""
    monkeypatch.delenv("IGR_EDGE_BACKEND", raising=False)


@pytest.fixture(scope="session")
def tiny_student(tiny_bundles):
    return tiny_bundles["student"]


@pytest.fixture(scope="session")
def tiny_teacher(tiny_bundles):
    return tiny_bundles["teacher"]
