"""`igr-edge batch` / `restore_catalog`: a catalog of ~200 generated photos (10 of them corrupt) on a local Ray and
in-process, with the tiny real student bundle. The Ray tests skip where Ray is not installed (the SDK's base install)."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from igr_edge import Restorer
from igr_edge.batch import restore_catalog
from igr_edge.catalog import assign_outputs, garment_name, list_catalog, seed_for
from igr_edge.cli import main
from igr_edge.errors import IgrEdgeError

ROOT = Path(__file__).resolve().parents[2]
GOOD, BAD = 190, 10


def _png(rng, w, h) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """190 photos (PNG and JPEG, 40-120 px, in three folders) and 10 corrupt files of eight kinds."""
    root = tmp_path_factory.mktemp("catalog")
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        folder = root / ("tops", "dresses", "")[i % 3]
        folder.mkdir(exist_ok=True)
        w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:03d}.{'jpg' if i % 2 else 'png'}", quality=90)
    bad = root / "bad"
    bad.mkdir()
    whole = _png(rng, 60, 80)
    (bad / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    (bad / "noise.webp").write_bytes(rng.bytes(300))
    (bad / "cut-1.png").write_bytes(whole[: len(whole) // 2])
    (bad / "cut-2.png").write_bytes(whole[: len(whole) // 3])
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    (bad / "cut-3.jpg").write_bytes(jpeg.getvalue()[:300])
    (bad / "cut-4.jpg").write_bytes(jpeg.getvalue()[:100])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpeg").write_text("not an image at all\n")
    (bad / "zero.png").write_bytes(b"\0" * 64)
    bomb = bytearray(whole)                              # a header claiming 60000 x 60000 pixels (3.6 GP)
    bomb[16:24] = (60000).to_bytes(4, "big") * 2
    (bad / "bomb.png").write_bytes(bytes(bomb))
    return root


def good_inputs(photos: Path) -> list[str]:
    return sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*") if p.is_file() and "bad" not in p.parts)


def manifest(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["input"]: r for r in rows}


def without_times(rows: dict[str, dict]) -> dict[str, dict]:
    return {k: {c: v for c, v in r.items() if c != "milliseconds"} for k, r in rows.items()}


def garments(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out / "garments").as_posix(): p.read_bytes()
            for p in (out / "garments").rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def in_process(photos, tiny_student, tmp_path_factory):
    """The catalog restored by the in-process engine (no Ray): OUTPUT and the summary."""
    out = tmp_path_factory.mktemp("threads") / "out"
    summary = restore_catalog(photos, out, bundle=tiny_student, engine="threads", workers=2, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_every_input_ends_as_a_garment_or_an_error_row(in_process, photos):
    out, summary = in_process
    rows = manifest(out)
    assert (summary.done, summary.failed, summary.skipped, summary.listed) == (GOOD, BAD, 0, GOOD + BAD)
    assert len(rows) == GOOD + BAD
    errors = {k: r["error"] for k, r in rows.items() if r["error"]}
    assert sorted(errors) == sorted(f"bad/{p.name}" for p in (photos / "bad").iterdir())
    assert all(e.startswith("InvalidImageError: ") and "\n" not in e for e in errors.values())
    assert all(rows[k]["output"] is None for k in errors)
    names = garments(out)
    assert sorted(f"garments/{n}" for n in names) == sorted(r["output"] for r in rows.values() if r["output"])
    assert {r["backend"] for r in rows.values()} == {"cpu"} and all(r["milliseconds"] > 0 for r in rows.values())
    assert rows["tops/p000.png"]["output"] == "garments/tops/p000.png"
    assert rows["dresses/p001.jpg"]["output"] == "garments/dresses/p001.png"
    try:
        import pyarrow.parquet as pq
    except ImportError:                                  # the base install writes the JSONL manifest alone
        assert not (out / "manifest.parquet").exists()
    else:
        assert {r["input"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()} == rows


def test_garments_are_the_bytes_igr_edge_restore_writes_with_the_recorded_seed(in_process, photos, tiny_student,
                                                                               tmp_path):
    out, _ = in_process
    rows, written = manifest(out), garments(out)
    inputs = good_inputs(photos)
    with Restorer(tiny_student, threads=1) as r:         # the restore command's own path: one image at a time
        for key in inputs:
            buffer = io.BytesIO()
            r.restore(photos / key, rows[key]["seed"]).save(buffer, format="PNG")
            assert written[rows[key]["output"].removeprefix("garments/")] == buffer.getvalue(), key
    for key in inputs[::48]:                             # and the command itself, on a sample
        assert main(["restore", str(photos / key), "-o", str(tmp_path / "cli"), "--bundle", str(tiny_student),
                     "--seed", str(rows[key]["seed"]), "-q"]) == 0
        assert (tmp_path / "cli" / f"{Path(key).stem}.png").read_bytes() == written[garment_name(key)]
    assert rows[inputs[0]]["seed"] == seed_for(inputs[0]) != seed_for(inputs[0], 1) != seed_for(inputs[1])


def test_ray_restores_the_same_bytes_and_an_actor_killed_mid_run_loses_nothing(local_ray, in_process, photos,
                                                                                tiny_student, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "ray"
    killed: list[tuple[int, int]] = []
    done = threading.Event()

    def kill_an_actor_once_garments_appear() -> None:
        while not done.is_set():
            written = sum(1 for p in (out / "garments").rglob("*.png")) if (out / "garments").exists() else 0
            if written:
                for p in psutil.process_iter(["cmdline"]):
                    command = " ".join(p.info["cmdline"] or [])
                    if command.startswith("ray::MapWorker(") and "RestoreStage" in command:
                        os.kill(p.pid, signal.SIGKILL)
                        killed.append((p.pid, written))
                        return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_an_actor_once_garments_appear)
    killer.start()
    try:
        summary = restore_catalog(photos, out, bundle=tiny_student, engine="ray", progress=False)
    finally:
        done.set()
        killer.join()
    assert killed and killed[0][1] < GOOD, f"no actor was killed while garments were still missing: {killed}"
    assert (summary.engine, summary.workers, summary.done, summary.failed) == ("ray", 2, GOOD, BAD)
    threads_out, _ = in_process
    assert garments(out) == garments(threads_out)            # every garment, byte for byte, and nothing else
    assert without_times(manifest(out)) == without_times(manifest(threads_out))   # seeds, names, errors


@pytest.mark.parametrize("engine", ["threads", "ray"])
def test_a_rerun_does_nothing_new(in_process, photos, engine, tiny_student):
    out, _ = in_process
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    if engine == "ray":
        pytest.importorskip("ray")
    summary = restore_catalog(photos, out, bundle=tiny_student, engine=engine, progress=False)
    assert (summary.done, summary.failed, summary.skipped, summary.failed_before) == (0, 0, GOOD + BAD, BAD)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert {p: v for p, v in after.items() if not p.name.startswith("manifest")} == \
           {p: v for p, v in before.items() if not p.name.startswith("manifest")}
    assert [after[p][1] for p in sorted(after) if p.name.startswith("manifest")] == \
           [before[p][1] for p in sorted(before) if p.name.startswith("manifest")]


def test_a_process_killed_mid_run_loses_nothing_and_the_rerun_finishes(photos, in_process, tiny_student, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "igr_edge", "batch", str(photos), str(out), "--bundle", str(tiny_student),
               "--engine", "threads"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command + ["--workers", "1", "--batch-size", "1", "-q"], cwd=ROOT, env=env)
    while job.poll() is None and not list((out / "manifest.parts").glob("*.jsonl") if out.exists() else []):
        time.sleep(0.005)                                # until the first rows are recorded
    job.send_signal(signal.SIGKILL)
    job.wait()
    partial = garments(out)
    assert 0 < len(partial) < GOOD, "the run was not killed mid-way"
    reference = garments(in_process[0])
    assert all(reference[name] == data for name, data in partial.items())     # whole files, never a part
    finish = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)   # workers: not the job's
    assert finish.returncode == 1                                            # the corrupt inputs
    assert garments(out) == reference and len(manifest(out)) == GOOD + BAD
    assert not (out / "manifest.parts").exists()
    done, failed, skipped = (int(w) for w in re.match(r"igr-edge: (\d+) restored, (\d+) failed, (\d+) skipped",
                                                      finish.stderr.strip().splitlines()[-1]).groups())
    assert skipped > 0 and done + failed + skipped == GOOD + BAD           # what the killed run recorded is kept


def test_inputs_are_named_by_their_place_in_the_catalog(photos, tmp_path):
    folder = list_catalog(photos)
    assert folder.kind == "folder" and len(folder.items) == GOOD + BAD
    assert folder.items[0].key == "bad/bomb.png" and "tops/p000.png" in {i.key for i in folder.items}
    matched = list_catalog(f"{photos}/**/p00[0-3].*")
    assert [i.key for i in matched.items] == ["dresses/p001.jpg", "p002.png", "tops/p000.png", "tops/p003.jpg"]
    listing = tmp_path / "lists" / "photos.txt"
    listing.parent.mkdir()
    relative = os.path.relpath(photos / "tops" / "p000.png", listing.parent)
    listing.write_text(f"# a comment\n{relative}\n\n{photos / 'p002.png'}\n{relative}\n")
    listed = list_catalog(listing)
    assert [i.key for i in listed.items] == sorted([relative, str(photos / "p002.png")]) and listed.duplicates == 1
    assert {Path(i.source).resolve() for i in listed.items} == {photos / "tops" / "p000.png", photos / "p002.png"}
    with pytest.raises(IgrEdgeError, match="no such file, folder or match"):
        list_catalog(tmp_path / "nothing-*.png")


def test_garment_names_stay_inside_the_output_and_apart():
    assert garment_name("tops/a.JPG") == "tops/a.png" and garment_name("sku-1", "webp") == "sku-1.webp"
    assert garment_name("s3://bucket/x/a.jpg") == "bucket/x/a.png" and garment_name("/data/a.png") == "data/a.png"
    assert garment_name("../../etc/a.png") == "__/__/etc/a.png"
    names = assign_outputs(["a.bmp", "a.jpg", "b.png"], "png", {})
    assert names == {"a.bmp": "a.bmp.png", "a.jpg": "a.jpg.png", "b.png": "b.png"}
    # a name an earlier run recorded stays that input's, and nobody else's
    assert assign_outputs(["a.bmp", "a.jpg"], "png", {"a.jpg": "a.png"}) == {"a.bmp": "a.bmp.png", "a.jpg": "a.png"}


def test_a_parquet_table_of_image_bytes_restores_each_row_as_its_id_names_it(photos, in_process, tiny_student,
                                                                              tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    keys = ["tops/p000.png", "dresses/p001.jpg", "p002.png", "broken", "missing"]
    data = [(photos / k).read_bytes() for k in keys[:3]] + [b"\x89PNG not really", None]
    pq.write_table(pa.table({"id": keys, "image": pa.array(data, pa.binary())}), tmp_path / "t.parquet",
                   row_group_size=2)
    out = tmp_path / "out"
    summary = restore_catalog(tmp_path / "t.parquet", out, bundle=tiny_student, engine="threads", progress=False)
    assert (summary.done, summary.failed) == (3, 2)
    reference = garments(in_process[0])
    assert {k: garments(out)[garment_name(k)] for k in keys[:3]} == {k: reference[garment_name(k)] for k in keys[:3]}
    rows = manifest(out)
    assert rows["broken"]["error"].startswith("InvalidImageError") and "no image bytes" in rows["missing"]["error"]


def test_uris_in_and_out_give_the_same_bytes(photos, in_process, tiny_student):
    pytest.importorskip("pyarrow")
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    keys = ["tops/p000.png", "dresses/p001.jpg"]
    for k in keys:
        memory.pipe(f"/catalog/{k}", (photos / k).read_bytes())
    summary = restore_catalog("memory://catalog", "memory://out", bundle=tiny_student, engine="threads",
                              manifest="parquet", progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    reference = garments(in_process[0])
    assert {k: memory.cat(f"/out/garments/{garment_name(k)}") for k in keys} == \
           {k: reference[garment_name(k)] for k in keys}
    assert not [p for p in memory.find("/out") if p.rsplit("/", 1)[1].startswith(".")]     # no temporary files
    table = pytest.importorskip("pyarrow.parquet").read_table(io.BytesIO(memory.cat("/out/manifest.parquet")))
    assert sorted(table.column("input").to_pylist()) == sorted(keys)


def test_the_cli_writes_webp_refuses_other_options_on_a_job_and_foreign_folders(photos, tiny_student, tmp_path,
                                                                                 capsys):
    out = tmp_path / "out"
    args = ["batch", f"{photos}/tops/p00*", str(out), "--bundle", str(tiny_student), "--engine", "threads",
            "--format", "webp", "--size", "36x48", "--manifest", "jsonl"]
    assert main(args) == 0
    rows = manifest(out)
    assert sorted(rows) == ["p000.png", "p003.jpg", "p006.png", "p009.jpg"]
    assert Image.open(out / rows["p003.jpg"]["output"]).format == "WEBP"
    assert Image.open(out / rows["p003.jpg"]["output"]).size == (36, 48) and not (out / "manifest.parquet").exists()
    assert "4 restored, 0 failed, 0 skipped" in capsys.readouterr().err
    assert main(args + ["--seed", "1"]) == 2
    assert "seed 0 (now 1)" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    assert main(args[:2] + [str(tmp_path / "other")] + args[3:]) == 2
    assert "no job.json" in capsys.readouterr().err and (tmp_path / "other" / "mine.txt").read_text() == "keep me"
    assert main(["batch", str(photos / "bad"), str(tmp_path / "bad"), "--bundle", str(tiny_student), "--engine",
                 "threads", "-q"]) == 1
    assert main(["batch", str(photos / "bad"), str(tmp_path / "bad"), "--bundle", str(tiny_student), "--engine",
                 "threads", "-q"]) == 1          # still failed inputs: not retried, still reported
    assert main(["batch", str(photos), str(tmp_path / "o"), "--bundle", str(tiny_student), "--steps", "4"]) == 2
    assert "single-call 2-step graph" in capsys.readouterr().err


def test_low_memory_reaches_the_restorer_and_a_bad_setting_stops_the_job_before_it_starts(photos, tiny_student,
                                                                                           tmp_path, monkeypatch):
    import igr_edge.restorer

    one = [str(p) for p in sorted(photos.rglob("*.png")) if "bad" not in p.parts][:1]
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "sometimes")
    with pytest.raises(IgrEdgeError, match="IGR_EDGE_LOW_MEMORY='sometimes'"):
        restore_catalog(one, tmp_path / "out", bundle=tiny_student, engine="threads", progress=False)
    assert not (tmp_path / "out").exists()
    seen, made = [], igr_edge.restorer.Restorer.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("low_memory"))
        made(self, *args, **kwargs)

    monkeypatch.setattr(igr_edge.restorer.Restorer, "__init__", spy)
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "1")                   # resolved here, once, for every worker
    summary = restore_catalog(one, tmp_path / "out", bundle=tiny_student, engine="threads", progress=False)
    assert summary.done == 1 and seen == [True]
    # a Ray actor builds its own Restorer from the Settings it is handed: the value chosen here reaches it
    from igr_edge.batch import RestoreStage, Settings

    seen.clear()
    settings = Settings(bundle=str(tiny_student), backend="cpu", variant=None, threads=1, steps=None, size=None,
                        format="png", max_pixels=10**6, output=str(tmp_path / "ray"), column=None, width=48,
                        height=64, low_memory=True)
    assert RestoreStage(settings).restorer.low_memory and seen == [True]


def test_the_sdk_imports_neither_ray_nor_pyarrow():
    code = ("import sys, igr_edge, igr_edge.cli, igr_edge.batch, igr_edge.catalog; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'ray', 'pyarrow', 'pandas', 'fsspec'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
