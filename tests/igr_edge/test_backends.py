"""Backend choice. This machine has no CUDA device and is not a Mac: the CUDA and Core ML *selection* logic is
tested with faked provider lists (said in each test); their real sessions run in the tests marked cuda/coreml,
on hardware that has them."""
from pathlib import Path

import numpy as np
import pytest

import igr_edge
from igr_edge import backends
from igr_edge.backends import OrtBackend, available_backends, choose
from igr_edge.errors import BackendUnavailableError, IgrEdgeError

GPU_AND_CPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def fake_registry(cuda_listed: bool):
    """FAKED provider lists (no GPU here): a cuda backend that believes the build lists CUDA, or not."""
    listing = (lambda: GPU_AND_CPU) if cuda_listed else (lambda: ["CPUExecutionProvider"])
    return {"cuda": (OrtBackend("cuda", "CUDAExecutionProvider", providers=listing),),
            "coreml": backends.default_registry()["coreml"],
            "cpu": backends.default_registry()["cpu"]}


BOTH = {"onnx-fp32": ("onnx", ("cpu", "cuda")), "onnx-int8": ("onnx", ("cpu",))}


def test_cpu_is_available_here_and_every_backend_says_why_not(monkeypatch):
    status = {s.name: s for s in available_backends()}
    assert list(status) == ["cuda", "coreml", "cpu"]
    assert status["cpu"].available and status["cpu"].reason is None
    assert all(s.available or s.reason for s in status.values())
    assert isinstance(igr_edge.available_backends()[0], igr_edge.BackendStatus)


class FakeCoreML:
    """FAKED (this is not a Mac): a coreml backend that says it is usable."""
    name, formats = "coreml", ("onnx",)

    def probe(self):
        return None


def test_preference_is_cuda_then_coreml_then_cpu_with_faked_listings():
    every = {"onnx-fp32": ("onnx", ("cpu", "cuda", "coreml"))}
    registry = fake_registry(cuda_listed=True)
    registry["coreml"] = (FakeCoreML(),)
    assert choose(None, every, registry)[0].name == "cuda"
    registry = fake_registry(cuda_listed=False)
    registry["coreml"] = (FakeCoreML(),)
    assert choose(None, every, registry)[0].name == "coreml"
    impl, variant = choose(None, BOTH, fake_registry(cuda_listed=False))
    assert (impl.name, variant) == ("cpu", "onnx-fp32")


def test_the_argument_beats_the_environment_which_beats_the_default(monkeypatch):
    registry = fake_registry(cuda_listed=True)               # FAKED: CUDA listed
    monkeypatch.setenv("IGR_EDGE_BACKEND", "cpu")
    assert choose(None, BOTH, registry)[0].name == "cpu"
    assert choose("cuda", BOTH, registry)[0].name == "cuda"
    monkeypatch.setenv("IGR_EDGE_BACKEND", "tpu")
    with pytest.raises(BackendUnavailableError, match="IGR_EDGE_BACKEND='tpu'.*choose from cuda, coreml, cpu"):
        choose(None, BOTH, registry)


def test_a_variant_is_chosen_for_the_backend_and_a_bundle_without_one_is_refused_with_reasons(monkeypatch):
    monkeypatch.delenv("IGR_EDGE_BACKEND", raising=False)
    registry = fake_registry(cuda_listed=True)               # FAKED: CUDA listed
    cpu_only = {"onnx-qdq": ("onnx", ("cpu", "coreml"))}
    assert choose(None, cpu_only, registry) == (registry["cpu"][0], "onnx-qdq")
    with pytest.raises(BackendUnavailableError) as e:
        choose("cuda,coreml", cpu_only, registry)
    msg = str(e.value)
    assert "cuda: the bundle has no onnx variant for it" in msg and "coreml:" in msg and "macOS" in msg


def test_cuda_refused_here_names_the_reason():
    if any(s.name == "cuda" and s.available for s in available_backends()):
        pytest.skip("this machine has a usable CUDA provider")
    with pytest.raises(BackendUnavailableError, match="cuda: this onnxruntime build .* has no CUDAExecutionProvider"):
        choose("cuda", BOTH)


def test_a_listed_provider_that_a_real_session_drops_is_unavailable(monkeypatch):
    # onnxruntime-gpu without a GPU lists CUDA, then silently runs on the CPU. FAKED here: the listing says CUDA,
    # the real session (this CPU build, on the probe graph) cannot keep it.
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_AND_CPU)
    backends._probe_cached.cache_clear()
    reason = OrtBackend("cuda", "CUDAExecutionProvider").probe()
    backends._probe_cached.cache_clear()
    assert reason and ("falls back" in reason or "fails" in reason)


def test_a_broken_mix_of_onnxruntime_builds_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(backends, "installed_builds", lambda: {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    reason = OrtBackend("cuda", "CUDAExecutionProvider").probe()
    assert "shadow each other" in reason and "pip uninstall -y onnxruntime onnxruntime-gpu" in reason


MIX = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}


def dist_info(folder, name: str, version: str, *, top_level: str = "onnxruntime") -> None:
    """An installed distribution's record, as pip writes it (METADATA and top_level.txt)."""
    record = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    record.mkdir()
    (record / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (record / "top_level.txt").write_text(f"{top_level}\n")


def test_the_builds_installed_are_read_from_the_distribution_records(tmp_path):
    # FAKED records: onnxruntime-gpu cannot be installed here. A companion that ships another package is no build.
    dist_info(tmp_path, "onnxruntime", "1.32.0")
    dist_info(tmp_path, "onnxruntime-extensions", "0.14.0", top_level="onnxruntime_extensions")
    dist_info(tmp_path, "numpy", "2.3.5", top_level="numpy")
    (tmp_path / "onnxruntime_gpu-1.30.0.dist-info").mkdir()          # left behind by an interrupted uninstall
    assert backends.installed_builds([str(tmp_path)]) == {"onnxruntime": "1.32.0"}
    assert backends.mixed_builds_reason(backends.installed_builds([str(tmp_path)])) is None
    dist_info(tmp_path, "onnxruntime-gpu", "1.31.1")
    assert backends.installed_builds([str(tmp_path)]) == MIX
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in backends.mixed_builds_reason(MIX)


def test_the_real_environment_holds_exactly_one_build():
    assert len(backends.installed_builds()) == 1        # onnxruntime here, onnxruntime-gpu on a CUDA machine


def test_the_first_use_of_onnxruntime_warns_once_about_a_mix(monkeypatch, recwarn):
    monkeypatch.setattr(backends, "installed_builds", lambda: MIX)   # FAKED: two builds side by side
    backends._warn_if_mixed.cache_clear()
    with pytest.warns(backends.MixedBuildsWarning, match="shadow each other; keep one: pip uninstall -y onnxruntime"):
        backends._ort()
    recwarn.clear()
    backends._ort()
    assert not [w for w in recwarn if issubclass(w.category, backends.MixedBuildsWarning)]
    backends._warn_if_mixed.cache_clear()


def test_doctor_says_what_to_do_about_a_mix_and_fails(monkeypatch, capsys, recwarn):
    from igr_edge.cli import main

    monkeypatch.setattr(backends, "installed_builds", lambda: MIX)   # FAKED: two builds side by side
    backends._warn_if_mixed.cache_clear()
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "warning      onnxruntime 1.32.0 and onnxruntime-gpu 1.31.1 are installed together" in out
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in out
    assert not [w for w in recwarn if issubclass(w.category, backends.MixedBuildsWarning)]   # said once, as a line
    backends._warn_if_mixed.cache_clear()


def test_a_session_that_loses_its_provider_is_refused(monkeypatch):
    import onnxruntime as ort

    if any(s.name == "cuda" and s.available for s in available_backends()):
        pytest.skip("this machine has a usable CUDA provider")
    with pytest.raises(BackendUnavailableError, match="has no CUDAExecutionProvider"):
        OrtBackend("cuda", "CUDAExecutionProvider").session(backends.PROBE)
    # FAKED listing: the build claims CUDA, the real session comes back CPU-only and is refused
    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_AND_CPU)
    with pytest.raises(BackendUnavailableError, match="fell back to CPUExecutionProvider"):
        OrtBackend("cuda", "CUDAExecutionProvider").session(backends.PROBE)


def test_the_restorer_falls_back_when_a_chosen_backends_real_session_fails(tiny_student, monkeypatch):
    class Flaky:
        """FAKED: a cuda backend whose probe passes but whose real session is refused (as on a broken driver)."""
        name, formats = "cuda", ("onnx",)

        def probe(self):
            return None

        def session(self, path, *, threads=None, compute_units="all", low_memory=False):
            raise BackendUnavailableError("cuda: a session on student.onnx fell back to CPUExecutionProvider")

    monkeypatch.setattr(backends, "REGISTRY", {"cuda": (Flaky(),), "cpu": backends.default_registry()["cpu"]})
    with igr_edge.Restorer(tiny_student) as r:
        assert r.backend == "cpu"
    with pytest.raises(BackendUnavailableError, match="cuda: cuda: a session on student.onnx fell back"):
        igr_edge.Restorer(tiny_student, backend="cuda")


@pytest.mark.cuda
def test_cuda_runs_the_student_for_real(tiny_student):
    if "cuda" not in {s.name for s in available_backends() if s.available}:
        pytest.skip("no usable CUDA execution provider here")
    with igr_edge.Restorer(tiny_student, backend="cuda") as gpu, igr_edge.Restorer(tiny_student, backend="cpu") as cpu:
        x = np.random.default_rng(0).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
        a, b = gpu.restore_arrays(x, [0, 1]), cpu.restore_arrays(x, [0, 1])
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2


@pytest.mark.coreml
def test_coreml_runs_the_student_for_real(tiny_student):
    # the ORT Core ML provider on the QDQ variant (the .mlpackage path needs a coreml-* variant: see the
    # converters' coreml tests)
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    with igr_edge.Restorer(tiny_student, backend="coreml") as mac, igr_edge.Restorer(tiny_student, backend="cpu") as cpu:
        assert mac.variant == "onnx-qdq"
        a, b = mac.restore_arrays(x, [0, 1]), cpu.restore_arrays(x, [0, 1])
        assert a.shape == (2, 64, 48, 3) and np.abs(a.astype(int) - b.astype(int)).mean() < 4


# -- low memory ----------------------------------------------------------------------------------------------
def test_low_memory_comes_from_the_argument_then_the_environment_then_off(monkeypatch):
    assert backends.low_memory() is False
    for value, expected in (("1", True), ("TRUE", True), (" on ", True), ("yes", True), ("0", False), ("off", False),
                            ("", False)):
        monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", value)
        assert backends.low_memory() is expected
        assert backends.low_memory(not expected) is (not expected)        # the argument wins
    monkeypatch.setenv("IGR_EDGE_LOW_MEMORY", "maybe")
    with pytest.raises(IgrEdgeError, match=r"IGR_EDGE_LOW_MEMORY='maybe': expected 1 or 0"):
        backends.low_memory()
    for bad in (1, "yes", 0.0):
        with pytest.raises(IgrEdgeError, match=f"low_memory must be True, False or None, got {bad!r}"):
            backends.low_memory(bad)


def test_low_memory_session_options_turn_off_constant_folding_only_when_asked():
    def config(opts):
        return opts.get_session_config_entry("optimization.disable_specified_optimizers")

    assert config(backends.session_options(2, low_memory=True)) == "ConstantFolding"
    with pytest.raises(RuntimeError):       # ORT raises for a key that was never set
        config(backends.session_options(2))


# -- Core ML compute units ---------------------------------------------------------------------------------------
UNITS_ERROR = r"unknown Core ML compute units \(choose from all, cpu_and_gpu, cpu_and_ne, cpu_only\)"


def test_compute_units_come_from_the_argument_then_the_environment_then_all(monkeypatch):
    assert backends.compute_units() == ("all", "default")
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "cpu_only")
    assert backends.compute_units() == ("cpu_only", "IGR_EDGE_COMPUTE_UNITS")
    assert backends.compute_units("cpu_and_ne") == ("cpu_and_ne", "compute_units")
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "gpu")
    with pytest.raises(IgrEdgeError, match="IGR_EDGE_COMPUTE_UNITS='gpu': " + UNITS_ERROR):
        backends.compute_units()
    for bad in ("ALL", "cpuAndNeuralEngine", "", 3):
        with pytest.raises(IgrEdgeError, match=f"compute_units={bad!r}: " + UNITS_ERROR):
            backends.compute_units(bad)


def test_the_core_ml_provider_takes_the_compute_units_as_orts_MLComputeUnits_option():
    # ORT's Core ML provider (absent from this Linux build) reads MLComputeUnits: CPUOnly, CPUAndNeuralEngine,
    # CPUAndGPU or ALL; the options are built here, the session that takes them runs on a Mac (marker coreml)
    coreml = backends.default_registry()["coreml"][1]
    assert coreml.provider == "CoreMLExecutionProvider"
    for units, flag in (("all", "ALL"), ("cpu_and_gpu", "CPUAndGPU"), ("cpu_and_ne", "CPUAndNeuralEngine"),
                        ("cpu_only", "CPUOnly")):
        assert coreml.options(units) == {"ModelFormat": "MLProgram", "MLComputeUnits": flag}
    assert coreml._providers("cpu_only") == [("CoreMLExecutionProvider", {"ModelFormat": "MLProgram",
                                                                          "MLComputeUnits": "CPUOnly"}),
                                             ("CPUExecutionProvider", {})]
    cpu = backends.default_registry()["cpu"][0]
    assert cpu.options("cpu_only") == {} and cpu._providers("cpu_only") == [("CPUExecutionProvider", {})]


def test_an_ort_core_ml_session_is_created_with_the_compute_units(monkeypatch):
    import onnxruntime as ort

    made = []

    class FakeSession:
        """FAKED (this ORT build has no Core ML provider): records what the SDK asks ORT for."""

        def __init__(self, path, sess_options=None, providers=None):
            made.append(providers)

        def get_providers(self):
            return ["CoreMLExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CoreMLExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    backends.default_registry()["coreml"][1].session(backends.PROBE, compute_units="cpu_and_ne")
    assert made == [[("CoreMLExecutionProvider", {"ModelFormat": "MLProgram", "MLComputeUnits": "CPUAndNeuralEngine"}),
                     ("CPUExecutionProvider", {})]]


def test_a_core_ml_package_is_loaded_with_the_compute_units(monkeypatch, tmp_path):
    ct = pytest.importorskip("coremltools")
    loaded = []

    class FakeMLModel:
        """FAKED (loading a package needs macOS): records what coremltools is asked for."""

        def __init__(self, path, **kwargs):
            loaded.append(kwargs)

    monkeypatch.setattr(ct.models, "MLModel", FakeMLModel)
    for units in backends.COMPUTE_UNITS:
        backends.CoremltoolsBackend().session(tmp_path / "student.mlpackage", compute_units=units)
    assert [k["compute_units"] for k in loaded] == [ct.ComputeUnit.ALL, ct.ComputeUnit.CPU_AND_GPU,
                                                    ct.ComputeUnit.CPU_AND_NE, ct.ComputeUnit.CPU_ONLY]


class RecordingCoreML:
    """FAKED (this is not a Mac): a coreml backend that records the compute units each session is opened with and
    runs the graph on ORT's CPU provider."""
    name, formats = "coreml", ("onnx",)

    def __init__(self):
        self.units = []

    def probe(self):
        return None

    def session(self, path, *, threads=None, compute_units="all", low_memory=False):
        self.units.append(compute_units)
        # the variant listed for coreml is onnx-qdq, whose ORT 1.32 quantization the oldest ONNX Runtime that
        # test-compat installs cannot run: the same bundle's fp32 graph stands in (these tests check plumbing)
        fp32 = Path(path).parent.parent / "onnx-fp32" / Path(path).name
        return backends.default_registry()["cpu"][0].session(fp32, threads=threads)


def test_the_restorer_opens_its_core_ml_sessions_with_the_chosen_compute_units(tiny_student, monkeypatch):
    fake = RecordingCoreML()
    monkeypatch.setattr(backends, "REGISTRY", {"coreml": (fake,), "cpu": backends.default_registry()["cpu"]})
    with igr_edge.Restorer(tiny_student, backend="coreml", compute_units="cpu_and_ne") as r:
        assert (r.compute_units, r.compute_units_source) == ("cpu_and_ne", "compute_units")
        assert "compute_units='cpu_and_ne'" in repr(r)
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "cpu_only")
    with igr_edge.Restorer(tiny_student, backend="coreml") as r:
        assert (r.compute_units, r.compute_units_source) == ("cpu_only", "IGR_EDGE_COMPUTE_UNITS")
    assert fake.units == ["cpu_and_ne", "cpu_only"]
    with igr_edge.Restorer(tiny_student, backend="cpu") as r:         # other backends ignore them
        assert r.backend == "cpu" and "compute_units" not in repr(r)
    with pytest.raises(IgrEdgeError, match="compute_units='npu': " + UNITS_ERROR):
        igr_edge.Restorer(tiny_student, compute_units="npu")


def test_restore_keeps_one_restorer_per_compute_units(tiny_student, monkeypatch):
    from igr_edge import restorer

    fake = RecordingCoreML()
    monkeypatch.setattr(backends, "REGISTRY", {"coreml": (fake,), "cpu": backends.default_registry()["cpu"]})
    restorer.clear_cache()
    person = np.full((64, 48, 3), 128, np.uint8)
    for units in ("cpu_only", "cpu_only", "cpu_and_gpu"):
        igr_edge.restore(person, bundle=tiny_student, backend="coreml", compute_units=units)
    monkeypatch.setenv("IGR_EDGE_COMPUTE_UNITS", "cpu_and_gpu")
    igr_edge.restore(person, bundle=tiny_student, backend="coreml")             # the same as the argument's
    assert fake.units == ["cpu_only", "cpu_and_gpu"]
    restorer.clear_cache()


def test_bench_notes_the_compute_units_it_ran_core_ml_with(tiny_student, monkeypatch):
    from igr_edge.bench import run_bench

    monkeypatch.setattr(backends, "REGISTRY", {"coreml": (RecordingCoreML(),), "cpu": backends.default_registry()["cpu"]})
    report = run_bench(bundle=tiny_student, backend="coreml", compute_units="cpu_and_gpu", runs=1, warmup=0)
    assert report["notes"] == ["Core ML compute units: cpu_and_gpu (compute_units)"]
    assert run_bench(bundle=tiny_student, backend="cpu", runs=1, warmup=0)["notes"] == []
