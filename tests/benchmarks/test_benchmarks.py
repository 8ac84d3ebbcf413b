"""The benchmark harness: its statistics on synthetic timings, and a --quick run on tiny real bundles that writes
a report valid against the bench-v1 schema, a Markdown table and plots. No timing assertions."""
import json

import pytest

from benchmarks.__main__ import main
from benchmarks.report import markdown, merge, read, targets
from igr_edge.bench import latency_stats, report
from igr_edge.manifest import schema, validation_errors


def test_latency_stats_on_synthetic_timings():
    s = latency_stats([0.010, 0.020, 0.030, 0.040, 0.050, 0.060, 0.070, 0.080, 0.090, 0.100])
    assert s["min"] == pytest.approx(10) and s["max"] == pytest.approx(100)
    assert s["p50"] == pytest.approx(55) and s["p90"] == pytest.approx(91) and s["mean"] == pytest.approx(55)
    assert latency_stats([0.005])["p90"] == pytest.approx(5)
    with pytest.raises(ValueError):
        latency_stats([])
    with pytest.raises(ValueError):
        latency_stats([0.1, float("nan")])


def synthetic_row(bundle, variant, *, p50, runtime="onnxruntime", steps=2, batch=1, peak_fraction=None, speedup=None):
    lat = {"min": p50 * 0.9, "p50": p50, "p90": p50 * 1.1, "mean": p50, "max": p50 * 1.3}
    return {"bundle": bundle, "variant": variant, "backend": "cpu", "runtime": runtime, "threads": 2, "steps": steps,
            "batch": batch, "runs": 20, "warmup": 3, "latency_ms": lat, "per_image_ms": p50 / batch,
            "cold_start_ms": 100.0, "peak_rss_mb": 200.0, "size_mb": 1.0, "denoiser_calls": steps, "flops": None,
            "gflops_per_s": None, "peak_fraction": peak_fraction, "quality": None, "speedup_vs_teacher": speedup}


def test_targets_are_ratios_of_rows_of_one_run():
    rows = [synthetic_row("teacher-small", "torch-fp32", p50=1000.0, runtime="torch", steps=50, speedup=1.0),
            synthetic_row("student-2-small", "torch-fp32", p50=120.0, runtime="torch", speedup=1000 / 120),
            synthetic_row("student-2-small", "onnx-fp32", p50=60.0, speedup=1000 / 60),
            synthetic_row("student-2-small", "onnx-qdq", p50=8.0, speedup=125.0),
            synthetic_row("teacher-small", "onnx-fp32 (denoiser alone)", p50=5.0, steps=1, peak_fraction=0.25)]
    rep = report(rows, tool="test")
    got = {t["target"].split(" ")[0]: t for t in targets(rep, default_variant=("student-2-small", "onnx-qdq"))}
    assert got["default"]["value"] == pytest.approx(125.0) and got["default"]["met"]
    ort = [t for t in targets(rep) if t["target"].startswith("ORT")]
    assert {round(t["value"], 3) for t in ort} == {2.0, 15.0} and all(t["met"] for t in ort)
    assert not got["denoiser"]["met"] and got["denoiser"]["value"] == pytest.approx(0.25)
    md = markdown(rep, command="python -m benchmarks run", default_variant=("student-2-small", "onnx-qdq"))
    assert "| student-2-small | onnx-qdq | cpu | 2 | 1 |" in md and "**no**" in md


def test_a_quick_run_writes_a_valid_report_table_and_plots(tiny_bundles, tmp_path):
    out = tmp_path / "bench"
    assert main(["run", "--quick", "--bundles", str(tiny_bundles["student"]), str(tiny_bundles["teacher"]),
                 "--teacher", str(tiny_bundles["models"] / "teacher"), "--models", str(tiny_bundles["models"]),
                 "--out", str(out), "--name", "here",
                 "--threads", "1", "--quiet", "--low-memory"]) == 0
    rep = json.loads((out / "here.json").read_text())
    assert validation_errors(rep, where="report", root=schema("bench-v1")) == []
    rows = rep["rows"]
    kinds = {(r["runtime"], r["variant"]) for r in rows}
    assert ("torch", "torch-fp32") in kinds and ("onnxruntime", "onnx-qdq") in kinds
    assert ("onnxruntime", "onnx-fp32 (denoiser alone)") in kinds
    assert {r["batch"] for r in rows if r["bundle"] == "student-2"} == {1, 2}
    low = [r for r in rows if r.get("low_memory")]         # --low-memory: one batch-1 row per single-call variant
    assert low and {r["variant"] for r in low} == {f"{r['variant']} (low memory)" for r in rows
                                                    if r["bundle"] == "student-2" and r["runtime"] == "onnxruntime"
                                                    and r["batch"] == 2}
    assert all(r["batch"] == 1 and r["speedup_vs_teacher"] > 0 and r["quality"]["n"] == 4 for r in low)
    assert all(r["runs"] == 5 and r["warmup"] == 1 for r in rows)
    assert all(r["flops"] > 0 and r["peak_fraction"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    torch_rows = [r for r in rows if r["runtime"] == "torch"]
    assert {r["bundle"] for r in torch_rows} == {"teacher", "student-2"}       # the student in torch eager too
    assert all(r["quality"]["n"] == 4 and 0 <= r["quality"]["ssim"] <= 1 and 0 <= r["quality"]["ssim_mask"] <= 1
               and 0 <= r["quality"]["mask_iou"] <= 1 for r in rows
               if r["batch"] == 1 and "alone" not in r["variant"])
    teacher = [r for r in rows if r["runtime"] == "torch" and r["bundle"] == "teacher" and r["steps"] == 4]
    assert teacher and teacher[0]["speedup_vs_teacher"] == pytest.approx(1.0)
    assert rep["peak_gflops"] > 0 and rep["device"]["cores"] >= 1
    md = (out / "here.md").read_text()
    assert "| student-2 | onnx-int8 | cpu | 2 | 2 |" in md
    for stem in ("quality-latency", "latency", "batch"):
        assert (out / f"here-{stem}.png").stat().st_size > 1000 and f"here-{stem}.png" in md
    # merge: this report twice under two device names, and a row from `igr-edge bench`
    other = dict(rep, device=dict(rep["device"], name="other-device"))
    (out / "other.json").write_text(json.dumps(other))
    assert main(["merge", str(out / "here.json"), str(out / "other.json"), "--out", str(out / "merged")]) == 0
    merged = (out / "merged" / "merged.md").read_text()
    assert f"{rep['device']['name']}/cpu" in merged and "other-device/cpu" in merged
    assert (out / "merged" / "merged.png").is_file()


def test_the_default_target_row_is_the_default_bundles_default_variant_not_its_mobile_one(tmp_path):
    """The default bundle carries the mobile variant beside its default one: a source bundle holding both graphs
    must be scored by the default one. The files are the shipped default bundle's (its manifest lists the mobile
    variant first)."""
    import shutil

    from benchmarks.__main__ import _default_variant
    from igr_edge.bundle import DEFAULT_BUNDLE, Bundle

    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    assert len(manifest["variants"]) > 1 and next(iter(manifest["variants"])) != manifest["default_variant"]
    source = tmp_path / "source"
    shutil.copytree(DEFAULT_BUNDLE, source)
    assert _default_variant([source], Bundle) == (manifest["name"], manifest["default_variant"])
    fewer = json.loads((source / "manifest.json").read_text())          # a bundle without that graph: no row
    del fewer["variants"][manifest["default_variant"]]
    fewer["default_variant"] = next(iter(fewer["variants"]))
    (source / "manifest.json").write_text(json.dumps(fewer))
    assert _default_variant([source], Bundle) is None
    assert _default_variant([source], Bundle, default=tmp_path / "nowhere") is None


def test_merge_refuses_a_file_that_is_not_a_report(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "1.0.0", "rows": []}))
    assert main(["merge", str(bad), "--out", str(tmp_path)]) == 2
    assert "not a bench-v1 report" in capsys.readouterr().err


def test_igr_edge_bench_reports_merge_with_the_harness_reports(tiny_student, tmp_path):
    from igr_edge.cli import main as cli

    assert cli(["bench", "--bundle", str(tiny_student), "--backend", "cpu", "--runs", "3", "--warmup", "0",
                "--out", str(tmp_path / "laptop.json")]) == 0
    merge([read(tmp_path / "laptop.json")], tmp_path / "m")
    assert "student-2" in (tmp_path / "m" / "merged.md").read_text()
