"""`igr-edge` restore / info / bench and `python -m igr_edge.demo`, on real files and a tiny real bundle."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from igr_edge.cli import main, output_paths
from igr_edge.demo import main as demo_main
from igr_edge.manifest import read_manifest, schema, validation_errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (80, 60, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_restore_writes_each_good_file_reports_each_bad_one_and_exits_nonzero(photos, tmp_path, tiny_student, capsys):
    out = tmp_path / "out"
    assert main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_student), "--size", "32x40"]) == 1
    err = capsys.readouterr().err
    assert files_in(out) == ["p0.png", "p1.png", "p2.png"]                  # no broken.png, no temporary files
    assert Image.open(out / "p1.png").size == (32, 40)
    bad = [line for line in err.splitlines() if "broken.png" in line]
    assert len(bad) == 1 and "InvalidImageError" in bad[0] and "restored 3 of 4" in err


def test_restore_never_overwrites_without_the_flag(photos, tmp_path, tiny_student, capsys):
    out = tmp_path / "out"
    args = ["restore", str(photos / "p0.png"), str(photos / "p1.png"), "-o", str(out), "--bundle", str(tiny_student)]
    assert main(args) == 0
    (out / "p0.png").write_bytes(b"mine")
    assert main(args) == 1
    assert (out / "p0.png").read_bytes() == b"mine" and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--seed", "3"]) == 0
    assert Image.open(out / "p0.png").size == (48, 64) and files_in(out) == ["p0.png", "p1.png"]


def test_restore_takes_globs_and_reports_what_matched_nothing(photos, tmp_path, tiny_student, capsys):
    out = tmp_path / "out"
    assert main(["restore", str(photos / "p[01].png"), str(photos / "nope*.jpg"), "-o", str(out),
                 "--bundle", str(tiny_student), "-q"]) == 1
    assert files_in(out) == ["p0.png", "p1.png"] and "nope*.jpg: no such file" in capsys.readouterr().err


def test_restore_with_an_unusable_backend_or_bundle_fails_clearly(photos, tmp_path, capsys):
    assert main(["restore", str(photos), "-o", str(tmp_path / "o"), "--backend", "cuda"]) == 2
    assert "BackendUnavailableError" in capsys.readouterr().err
    assert main(["restore", str(photos), "-o", str(tmp_path / "o"), "--bundle", str(tmp_path)]) == 2
    assert "BundleError" in capsys.readouterr().err


def test_compute_units_are_checked_before_any_file(photos, tmp_path, tiny_student, capsys, monkeypatch):
    out = tmp_path / "o"
    with pytest.raises(SystemExit):
        main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_student), "--compute-units", "gpu"])
    assert "invalid choice: 'gpu' (choose from 'all', 'cpu_and_gpu', 'cpu_and_ne', 'cpu_only')" in capsys.readouterr().err
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "gpu")
    assert main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_student)]) == 2
    assert "IGR_EDGE_COMPUTE_UNITS='gpu': unknown Core ML compute units" in capsys.readouterr().err
    assert main(["batch", str(photos), str(tmp_path / "b"), "--bundle", str(tiny_student), "--engine", "threads",
                 "-q"]) == 2
    assert "IGR_EDGE_COMPUTE_UNITS='gpu'" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert list(out.iterdir()) == []
    assert main(["restore", str(photos / "p0.png"), "-o", str(out), "--bundle", str(tiny_student), "--backend", "cpu",
                 "--compute-units", "cpu_only", "-q"]) == 0        # the flag beats the variable; cpu ignores it
    assert files_in(out) == ["p0.png"]


def test_doctor_reports_the_compute_units_and_where_they_came_from(capsys, monkeypatch):
    assert main(["doctor"]) == 0
    assert ("compute      Core ML compute units all (the default: IGR_EDGE_COMPUTE_UNITS is unset; the coreml "
            "backend's, the others ignore them)") in capsys.readouterr().out
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "cpu_and_ne")
    assert main(["doctor"]) == 0
    assert "Core ML compute units cpu_and_ne (from IGR_EDGE_COMPUTE_UNITS;" in capsys.readouterr().out
    assert main(["doctor", "--compute-units", "cpu_only"]) == 0
    assert "Core ML compute units cpu_only (from --compute-units;" in capsys.readouterr().out
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "ane")
    assert main(["doctor"]) == 1
    assert ("compute      IGR_EDGE_COMPUTE_UNITS='ane': unknown Core ML compute units (choose from all, cpu_and_gpu, "
            "cpu_and_ne, cpu_only)") in capsys.readouterr().out


def test_doctor_reports_the_memory_mode_and_refuses_a_bad_setting(capsys, monkeypatch):
    assert main(["doctor"]) == 0
    assert "memory       low_memory off (the default: IGR_EDGE_LOW_MEMORY is unset;" in capsys.readouterr().out
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "yes")
    assert main(["doctor"]) == 0
    assert "memory       low_memory on (from IGR_EDGE_LOW_MEMORY;" in capsys.readouterr().out
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "lots")
    assert main(["doctor"]) == 1
    assert "memory       IGR_EDGE_LOW_MEMORY='lots': expected 1 or 0" in capsys.readouterr().out


def test_bad_arguments_fail_once_before_any_file(photos, tmp_path, tiny_student, tiny_teacher, capsys):
    out = tmp_path / "o"
    assert main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_student), "--steps", "4"]) == 2
    assert main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_teacher), "--steps", "5000"]) == 2
    assert main(["restore", str(photos), "-o", str(out), "--bundle", str(tiny_student), "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("single-call 2-step graph") == 1 and "from 1 to 1000" in err and "seed must be" in err
    assert list(out.iterdir()) == []


def test_the_inputs_are_never_overwritten(photos, tiny_student, capsys):
    before = (photos / "p0.png").read_bytes()
    assert main(["restore", str(photos / "p0.png"), "-o", str(photos), "--bundle", str(tiny_student), "--overwrite"]) == 1
    assert (photos / "p0.png").read_bytes() == before and "the input itself" in capsys.readouterr().err


def test_outputs_of_colliding_names_stay_apart(tmp_path):
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.jpg"
    assert output_paths([a, b], tmp_path / "o") == {a: tmp_path / "o" / "a-x.png", b: tmp_path / "o" / "b-x.png"}


def test_info_shows_variants_and_the_hash_check(tiny_student, tmp_path, capsys):
    assert main(["info", str(tiny_student)]) == 0
    out = capsys.readouterr().out
    assert "single-call, 2 step(s), 48×64" in out and "onnx-int8" in out and "hash check   ok" in out
    copy = tmp_path / "b"
    shutil.copytree(tiny_student, copy)
    (copy / "onnx-fp32" / "student.onnx").write_bytes(b"changed")
    assert main(["info", str(copy)]) == 1
    assert "hash check   FAILED" in capsys.readouterr().out
    default = read_manifest(Path(__file__).resolve().parents[2] / "igr_edge" / "bundles" / "default", verify=False)
    assert main(["info"]) == 0 and f"bundle       {default['name']} " in capsys.readouterr().out   # the default bundle
    m = json.loads((copy / "manifest.json").read_text())
    m["quality"] = {"ssim": 0.5, "n": 4}                    # the schema allows a partial quality row
    (copy / "manifest.json").write_text(json.dumps(m))
    shutil.copy(tiny_student / "onnx-fp32" / "student.onnx", copy / "onnx-fp32" / "student.onnx")
    assert main(["info", str(copy)]) == 0 and "SSIM 0.5 on 4 images" in capsys.readouterr().out


def test_bench_writes_a_report_in_the_benchmarks_schema(tiny_student, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--bundle", str(tiny_student), "--backend", "cpu", "--runs", "5", "--warmup", "1",
                 "--batch", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert validation_errors(report, where="report", root=schema("bench-v1")) == []
    row = report["rows"][0]
    assert row["runs"] == 5 and row["batch"] == 2 and row["denoiser_calls"] == 2 and row["backend"] == "cpu"
    lat = row["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"] and "p50" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS from /proc (Linux)")
def test_bench_low_memory_peaks_far_lower_on_the_default_bundle(tmp_path):
    # each in its own process, so each peak is its own: the default bundle's onnx-w8, batch 1, one thread; measured
    # here 261 MB against 171 MB (scripts/low-memory.py), so about half that gap is asked for
    import subprocess
    import sys

    peaks = {}
    for mode in ("default", "low"):
        out = tmp_path / f"{mode}.json"
        args = ["bench", "--backend", "cpu", "--threads", "1", "--runs", "2", "--warmup", "0", "--out", str(out)]
        subprocess.run([sys.executable, "-m", "igr_edge", *args, *(["--low-memory"] if mode == "low" else [])],
                       check=True, capture_output=True, cwd=ROOT)
        report = json.loads(out.read_text())
        assert validation_errors(report, where=mode, root=schema("bench-v1")) == []
        row = report["rows"][0]
        assert row["variant"] == "onnx-w8" and row.get("low_memory", False) is (mode == "low")
        peaks[mode] = row["peak_rss_mb"]
    assert peaks["low"] < peaks["default"] - 40, peaks


def test_demo_writes_a_contact_sheet_of_the_samples(tiny_student, tmp_path, capsys):
    assert demo_main(["--bundle", str(tiny_student), "--out", str(tmp_path / "demo"),
                      "--samples", str(ROOT / "samples")]) == 0
    sheet = Image.open(tmp_path / "demo" / "contact-sheet.png")
    n = len(list((ROOT / "samples" / "persons").iterdir()))
    assert sheet.width > 3 * 48 and sheet.height > n * 64
    assert len(list((tmp_path / "demo").glob("*-garment.png"))) == n
    assert "contact-sheet.png" in capsys.readouterr().out


def test_restore_samples_writes_the_apis_mean_and_refuses_a_bad_count(photos, tmp_path, tiny_student, capsys):
    from igr_edge import Restorer

    out = tmp_path / "out"
    assert main(["restore", str(photos / "p0.png"), "-o", str(out), "--bundle", str(tiny_student), "--seed", "4",
                 "--samples", "3", "-q"]) == 0
    with Restorer(tiny_student, backend="cpu") as r:
        expected = np.asarray(r.restore(photos / "p0.png", 4, samples=3))
    assert np.array_equal(np.asarray(Image.open(out / "p0.png")), expected)
    assert main(["restore", str(photos / "p1.png"), "-o", str(out), "--bundle", str(tiny_student),
                 "--samples", "0"]) == 2
    assert "samples must be an integer from 1 to 16" in capsys.readouterr().err and files_in(out) == ["p0.png"]
