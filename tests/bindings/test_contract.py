"""bindings/contract: the vectors every binding checks itself against still describe the Python SDK and the
shipped default bundle (regenerate with scripts/make-contract.py when the default bundle changes)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

from igr_edge import Restorer
from igr_edge.bench import cpu_model
from igr_edge.noise import normal, splitmix64

CONTRACT = Path(__file__).resolve().parents[2] / "bindings" / "contract"


def test_noise_vectors_match_the_generator():
    data = json.loads((CONTRACT / "noise.json").read_text())
    assert data["generator"] == "splitmix64-boxmuller" and len(data["vectors"]) >= 5
    for v in data["vectors"]:
        seed = int(v["seed"])
        z = normal(seed, tuple(v["shape"]))
        assert [str(int(x)) for x in splitmix64(seed, 4)] == v["splitmix64_first"]
        assert z.ravel()[:8].tolist() == v["first"]
        assert hashlib.sha256(z.astype("<f4").tobytes()).hexdigest() == v["sha256_le_float32"]
        assert abs(z.astype(np.float64).sum() - v["sum"]) < 1e-9


def test_cases_are_the_default_bundles_outputs():
    data = json.loads((CONTRACT / "cases.json").read_text())
    with Restorer(backend="cpu") as r:
        assert {f["path"]: f["sha256"] for f in r.bundle.manifest["files"]} == data["bundle_files_sha256"]
        for case in data["cases"]:
            person = np.asarray(Image.open(CONTRACT / case["person"]).convert("RGB"))
            expected = np.asarray(Image.open(CONTRACT / case["garment"]).convert("RGB")).astype(np.float64)
            got = r.restore_arrays(person[None], [int(case["seed"])])[0].astype(np.float64)
            mse = np.mean((got - expected) ** 2)
            assert mse == 0 or 10 * np.log10(255**2 / mse) >= case["min_psnr_db"], case
            # the bytes, only where they were written (cases.json's written_on: the ORT version and CPU model):
            # ORT's fp32 kernels round differently on other CPUs (an AVX2-only x86 one, and an AMD EPYC with
            # AVX-512, against vectors written on another AVX-512 CPU: 95-100 dB, pixels at most 1 apart)
            where = data.get("written_on")
            if where and where == {"onnxruntime": onnxruntime.__version__, "cpu": cpu_model()}:
                assert hashlib.sha256(got.astype(np.uint8).tobytes()).hexdigest() == case["garment_sha256"], case


def test_the_contract_persons_are_the_samples_letterboxed():
    from igr_edge.images import letterbox, load_image

    samples = Path(__file__).resolve().parents[2] / "samples" / "persons"
    for case in json.loads((CONTRACT / "cases.json").read_text())["cases"]:
        stem = Path(case["person"]).name.removesuffix("-person.png")
        source = next(samples.glob(f"{stem}.*"))
        person = np.asarray(Image.open(CONTRACT / case["person"]).convert("RGB"))
        assert np.array_equal(person, letterbox(load_image(source), 192, 256)), case["person"]
