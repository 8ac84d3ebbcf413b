"""igr_edge.restore / Restorer on real bundles: the shipped default, and tiny real ones the converters wrote
(a 2-step single-call student, a 4-step components teacher with guidance run by the SDK's numpy sampler)."""
import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import igr_edge
from igr_edge import BundleError, IgrEdgeError, Restorer
from igr_edge.noise import normal

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "persons" / "test-00.png"


@pytest.fixture(scope="module")
def default():
    with Restorer(backend="cpu") as r:
        yield r


def test_restore_works_out_of_the_box_and_leaves_torch_out():
    code = ("import sys, igr_edge; g = igr_edge.restore(sys.argv[1], seed=3); "
            "print(g.size, g.mode, sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'diffusers'}))")
    out = subprocess.run([sys.executable, "-c", code, str(SAMPLE)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(192, 256) RGB []"


def test_same_seed_same_bytes_and_seeds_matter(default):
    a = np.asarray(default.restore(SAMPLE, seed=5))
    b = np.asarray(igr_edge.restore(SAMPLE, seed=5, backend="cpu"))
    c = np.asarray(default.restore(SAMPLE, seed=6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_every_input_kind_gives_the_same_garment(default):
    data = SAMPLE.read_bytes()
    pil = Image.open(SAMPLE)
    outs = [default.restore(x) for x in (SAMPLE, str(SAMPLE), data, io.BytesIO(data), pil, np.asarray(pil.convert("RGB")))]
    assert all(np.array_equal(np.asarray(outs[0]), np.asarray(o)) for o in outs[1:])


def test_the_default_bundle_restores_garments_nearer_their_own_truth_than_the_others(default):
    # test-split persons the model never saw in training: on average a restored garment is nearer its own
    # ground truth than another person's (the shipped student is weak: not every single one is)
    names = [f"test-{i:02d}" for i in range(4)]
    out = default.restore_batch([ROOT / "samples" / "persons" / f"{n}.png" for n in names])
    truth = [np.asarray(Image.open(ROOT / "samples" / "truth" / f"{n}.png"), dtype=np.float64) for n in names]
    err = np.array([[np.mean((np.asarray(o, dtype=np.float64) - t) ** 2) for t in truth] for o in out])
    own, other = np.diag(err).mean(), err[~np.eye(len(names), dtype=bool)].mean()
    assert own < 0.75 * other, err.round()


def test_output_size_and_letterboxed_input(default):
    assert default.restore(SAMPLE, size=512).size == (384, 512)
    assert default.restore(SAMPLE, size=(300, 300)).size == (300, 300)
    wide = Image.new("RGB", (900, 200), "white")
    assert default.restore(wide).size == (192, 256)
    with pytest.raises(IgrEdgeError, match="size"):
        default.restore(SAMPLE, size=(0, 5))


def test_low_memory_restores_the_default_bundles_garments_from_its_int8_weights(default, monkeypatch):
    # the int8 weights are expanded by the same Cast · scale on every call instead of once at load; what differs
    # is only how the convolutions are laid out (float32 rounding): measured, one level on 0.01% of the values
    with Restorer(backend="cpu", low_memory=True) as low:
        assert low.low_memory and "low_memory=True" in repr(low) and low.variant == default.variant == "onnx-w8"
        a, b = np.asarray(default.restore(SAMPLE, seed=5)), np.asarray(low.restore(SAMPLE, seed=5))
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "1")                      # the environment chooses it too
    with Restorer(backend="cpu") as restorer:
        assert restorer.low_memory and "low_memory" not in repr(default)
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "2")
    with pytest.raises(IgrEdgeError, match="IGR_EDGE_LOW_MEMORY='2'"):
        Restorer(backend="cpu")


def test_restore_batch_matches_single_calls(tiny_student):
    x = [np.random.default_rng(i).integers(0, 256, (64, 48, 3), dtype=np.uint8) for i in range(10)]
    with Restorer(tiny_student, backend="cpu") as r:
        batch = r.restore_batch(x, seeds=list(range(10)))
        single = [r.restore(img, seed=i) for i, img in enumerate(x)]
        assert r.restore_batch([]) == []
        with pytest.raises(IgrEdgeError, match="10 images but 2 seeds"):
            r.restore_batch(x, seeds=[0, 1])
        for bad_images, bad_seeds in ((5, None), (x[:1], 5), (x[:1], ["a"]), (x[:1], [-1])):
            with pytest.raises(IgrEdgeError):
                r.restore_batch(bad_images, seeds=bad_seeds)
        assert r.restore_arrays(np.zeros((0, 64, 48, 3), np.uint8), []).shape == (0, 64, 48, 3)
        with pytest.raises(IgrEdgeError, match="uint8 array"):
            r.restore_arrays([x[0]], [0])
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(batch, single))


def test_eight_threads_by_fifty_calls_equal_the_serial_results(tiny_student):
    inputs = [np.random.default_rng(i).integers(0, 256, (64, 48, 3), dtype=np.uint8) for i in range(8)]
    with Restorer(tiny_student, threads=1) as r:
        serial = {(t, k): np.asarray(r.restore(inputs[t], seed=k)) for t in range(8) for k in range(50)}
        results, errors = {}, []

        def work(t):
            try:
                for k in range(50):
                    results[(t, k)] = np.asarray(r.restore(inputs[t], seed=k))
            except Exception as e:               # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors and len(results) == 400
    assert all(np.array_equal(results[k], serial[k]) for k in serial)


@pytest.mark.parametrize("name", ["teacher", "teacher-prior"])
def test_the_components_teacher_matches_the_torch_pipeline(tiny_bundles, name):
    torch = pytest.importorskip("torch")
    from igr.model import IGRModel
    from igr.pipeline import denoise

    model = IGRModel.from_pretrained(tiny_bundles["models"] / name).eval()
    person = np.random.default_rng(0).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    with Restorer(tiny_bundles[name]) as r:
        assert r.bundle.kind == "components" and r.bundle.guidance == 2.0
        assert r.bundle.has_prior == (name == "teacher-prior")
        assert r.bundle.manifest.get("requires", []) == ([] if name == "teacher" else ["zero-snr", "aligned-prior"])
        ours = r.restore_arrays(person, [11, 12])
        ours2 = r.restore_arrays(person, [11, 12], steps=2)
        with pytest.raises(IgrEdgeError, match="from 1 to 1000"):
            r.restore(person[0], steps=2000)
    noise = torch.from_numpy(np.stack([normal(s, (4, 8, 6)) for s in (11, 12)]))
    with torch.no_grad():
        x = torch.from_numpy(person).permute(0, 3, 1, 2).float() / 127.5 - 1
        latent = denoise(model, model.condition(x), noise, steps=4)           # dpmsolver++, guidance 2
        theirs = ((model.decode(latent) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2
    assert not np.array_equal(ours, ours2)


def test_a_single_call_bundle_refuses_other_step_counts(tiny_student):
    with Restorer(tiny_student) as r:
        assert r.bundle.steps == 2
        r.restore(np.zeros((64, 48, 3), np.uint8), steps=2)
        with pytest.raises(IgrEdgeError, match="single-call 2-step graph"):
            r.restore(np.zeros((64, 48, 3), np.uint8), steps=4)


def test_a_closed_restorer_refuses_work(tiny_student):
    r = Restorer(tiny_student)
    r.close()
    with pytest.raises(IgrEdgeError, match="closed"):
        r.restore(np.zeros((64, 48, 3), np.uint8))


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_missing_escaping_and_future_bundles_are_refused(tiny_student, tmp_path):
    tampered = copy_bundle(tiny_student, tmp_path / "tampered")
    f = tampered / "onnx-int8" / "student.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        Restorer(tampered)

    missing = copy_bundle(tiny_student, tmp_path / "missing")
    (missing / "onnx-fp32" / "student.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        igr_edge.restore(SAMPLE, bundle=missing)

    escaping = copy_bundle(tiny_student, tmp_path / "escaping")
    m = json.loads((escaping / "manifest.json").read_text())
    shutil.copy(escaping / "onnx-fp32" / "student.onnx", tmp_path / "outside.onnx")
    m["files"][0]["path"] = "../outside.onnx"
    m["variants"]["onnx-fp32"]["files"]["student"] = "../outside.onnx"
    (escaping / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="leaves the bundle"):
        Restorer(escaping)

    future = copy_bundle(tiny_student, tmp_path / "future")
    m = json.loads((future / "manifest.json").read_text())
    m["schema"] = "2.0.0"
    (future / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema 2.0.0"):
        Restorer(future)

    resized = copy_bundle(tiny_student, tmp_path / "resized")       # a manifest that disagrees with its graphs
    m = json.loads((resized / "manifest.json").read_text())
    m["resolution"]["height"] = 66
    (resized / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="this SDK feeds"):
        Restorer(resized)

    garbage = copy_bundle(tiny_student, tmp_path / "garbage")       # hashes fine, but not an ONNX graph
    m = json.loads((garbage / "manifest.json").read_text())
    for v in list(m["variants"]):
        if v != "onnx-fp32":
            del m["variants"][v]
    target = garbage / "onnx-fp32" / "student.onnx"
    target.write_bytes(b"not a graph")
    import hashlib
    entry = next(f for f in m["files"] if f["path"] == "onnx-fp32/student.onnx")
    entry.update(size=target.stat().st_size, sha256=hashlib.sha256(target.read_bytes()).hexdigest())
    (garbage / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="onnxruntime cannot load student.onnx"):
        Restorer(garbage, backend="cpu")

    with pytest.raises(BundleError, match="does not exist"):
        Restorer(tmp_path / "nowhere")
    with pytest.raises(BundleError, match="folder path"):
        igr_edge.restore(SAMPLE, bundle=42)
    assert not any(p.suffix == ".pkl" or p.name.endswith(".pickle") for p in tiny_student.rglob("*"))


def test_samples_average_that_many_seeds_restores(default):
    person = np.asarray(Image.open(SAMPLE).convert("RGB"))[None]
    one = [default.restore_arrays(person, [s]) for s in (5, 6, 7)]
    mean = np.rint(np.mean([o.astype(np.float32) for o in one], axis=0)).astype(np.uint8)
    assert np.array_equal(default.restore_arrays(person, [5], samples=3), mean)
    assert np.array_equal(default.restore_arrays(person, [5], samples=1), one[0])
    assert not np.array_equal(mean, one[0])
    last = 2**64 - 1                                                # seeds wrap: the last seed, then 0
    wrap = [default.restore_arrays(person, [s]).astype(np.float32) for s in (last, 0)]
    assert np.array_equal(default.restore_arrays(person, [last], samples=2), np.rint((wrap[0] + wrap[1]) / 2))
    img = igr_edge.restore(SAMPLE, seed=5, samples=3, backend="cpu")
    assert np.array_equal(np.asarray(img), np.asarray(default.restore(SAMPLE, seed=5, samples=3)))


@pytest.mark.parametrize("samples", [0, 17, 2.0, True, "2", None])
def test_bad_samples_are_refused_before_any_work(default, samples):
    with pytest.raises(IgrEdgeError, match="samples must be an integer from 1 to 16"):
        default.restore_batch([b"not an image"], samples=samples)
