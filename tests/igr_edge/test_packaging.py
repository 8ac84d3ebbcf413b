"""The runtime SDK stays light: no torch, a working console entry point, a wheel that holds igr_edge only."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_importing_igr_edge_leaves_torch_out():
    code = "import sys, igr_edge, igr_edge.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'diffusers', 'transformers'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_doctor_reports_onnxruntime_and_its_providers():
    out = subprocess.run([sys.executable, "-m", "igr_edge", "doctor"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "onnxruntime  1." in out.stdout and "CPUExecutionProvider" in out.stdout


def test_console_script_and_wheel_contents_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["igr-edge"] == "igr_edge.cli:main"
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["igr_edge*"]
    runtime = {re.match(r"[A-Za-z0-9._-]+", d)[0] for d in project["project"]["dependencies"]}
    assert runtime == {"numpy", "pillow", "onnxruntime"}
    assert {"train", "export", "coreml", "dev"} <= set(project["project"]["optional-dependencies"])


def test_the_runtime_dependencies_are_floors_and_test_compat_installs_exactly_them():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = [re.fullmatch(r"([a-z]+)>=([\d.]+)", d) for d in project["dependencies"]]
    assert all(floors), f"ranges with a >= floor, no pins of the users' packages: {project['dependencies']}"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "lowest-requirements.py")], capture_output=True,
                         text=True)
    if out.returncode and "run it with Python" in out.stderr:
        pytest.skip(f"not the oldest Python allowed: {out.stderr.strip()}")
    assert out.stdout.split() == [f"{f[1]}=={f[2]}" for f in floors], out.stderr


def test_installed_console_script_runs():
    script = Path(sys.executable).with_name("igr-edge")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("igr-edge ")


def test_the_wheel_holds_igr_edge_alone(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    import zipfile
    (wheel,) = tmp_path.glob("igr_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"igr_edge"}
    # the manifest schema and the default bundle, every file its manifest lists
    assert {"igr_edge/schemas/manifest-v1.schema.json", "igr_edge/schemas/bench-v1.schema.json",
            "igr_edge/probe.onnx"} <= set(names)
    manifest = json.loads((ROOT / "igr_edge" / "bundles" / "default" / "manifest.json").read_text())
    assert {f"igr_edge/bundles/default/{f['path']}" for f in manifest["files"]} | {
        "igr_edge/bundles/default/manifest.json"} <= set(names)
