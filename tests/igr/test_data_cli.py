"""`python -m igr.data`: make, sheet, bench; bad arguments fail in one line and leave nothing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import igr.data.__main__ as cli
from igr.data import generate, seed_for

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_make_writes_pngs_and_an_index_line_per_sample(tmp_path, capsys):
    out = tmp_path / "synth"
    rc, _, _ = run(["make", "--split", "test", "--n", 3, "--out", out, "--size", "64x48"], capsys)
    assert rc == 0
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert {"stem", "split", "index", "seed", "category", "print", "occlusion", "quality"} <= set(rows[0])
    for r in rows:
        assert r["seed"] == seed_for("test", r["index"]) and r["split"] == "test"
        for sub in ("person", "garment", "mask"):
            assert (out / sub / f"{r['stem']}.png").is_file()
    person = np.asarray(Image.open(out / "person" / f"{rows[1]['stem']}.png"))
    assert np.array_equal(person, generate(rows[1]["seed"], size=(64, 48)).person)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]   # no temporary sibling left


def test_make_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _, err = run(["make", "--n", 1, "--out", out, "--size", "64x48"], capsys)
    assert rc == 2 and "--overwrite" in err and (out / "keep.txt").exists()
    rc, _, _ = run(["make", "--n", 2, "--out", out, "--size", "64x48", "--overwrite"], capsys)
    assert rc == 0 and not (out / "keep.txt").exists()
    assert len((out / "index.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_make_fills_an_existing_empty_folder(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    rc, _, _ = run(["make", "--n", 1, "--out", out, "--size", "64x48"], capsys)
    assert rc == 0 and (out / "index.jsonl").is_file()


@pytest.mark.parametrize("args, says", [
    (["--n", "0"], "--n"),
    (["--n", "-4"], "--n"),
    (["--n", "two"], "--n"),
    (["--split", "dev"], "--split"),
    (["--size", "256by192"], "--size"),
    (["--size", "16x12"], "at least 32"),
    (["--start", "99999999"], "leaves split"),
])
def test_make_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, says):
    argv = ["make", "--n", "2", "--out", str(tmp_path / "out"), "--size", "64x48"] + args
    rc, _, err = run(argv, capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and says in err
    assert list(tmp_path.iterdir()) == []


def test_make_into_a_missing_parent_exits_2(tmp_path, capsys):
    rc, _, err = run(["make", "--n", "1", "--out", tmp_path / "no" / "such" / "dir"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_make_removes_its_temporary_folder_when_generation_fails(tmp_path, capsys, monkeypatch):
    calls = []

    def failing(seed, **kw):
        calls.append(seed)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return generate(seed, **kw)

    monkeypatch.setattr(cli, "generate", failing)
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["make", "--n", "3", "--out", str(tmp_path / "out"), "--size", "64x48"])
    assert list(tmp_path.iterdir()) == []


def test_sheet_draws_rows_of_person_garment_mask(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    rc, _, _ = run(["sheet", "--rows", 2, "--size", "64x48", "--out", out], capsys)
    assert rc == 0
    img = Image.open(out)
    assert img.width == 3 * 48 and img.height > 2 * 64
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_bench_reports_pairs_per_second(capsys):
    rc, out, _ = run(["bench", "--n", 2, "--size", "64x48"], capsys)
    assert rc == 0 and "pairs/s" in out


def test_module_entry_point_reports_bad_arguments_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "igr.data", "make", "--n", "0", "--out", str(tmp_path / "x")],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "error" in p.stderr
    assert list(tmp_path.iterdir()) == []
