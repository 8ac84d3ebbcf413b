"""Backends: one small protocol, a registry, and a choice that says why each candidate was rejected.

A backend runs one bundle variant's graphs. `cpu` is ONNX Runtime's CPU execution provider; `cuda` is ORT's
CUDA provider, usable only when a real session gets it (onnxruntime-gpu imports and lists CUDA without a GPU,
then silently runs on the CPU); `coreml` is, on macOS, the bundle's .mlpackage through coremltools, else ORT's
Core ML provider (ML Program) on an ONNX variant. Choice: the argument, then IGR_EDGE_BACKEND, then
cuda > coreml > cpu, each only if the bundle has a variant for it.

Core ML compute units (which processors Core ML may use: all, cpu_and_gpu, cpu_and_ne, cpu_only) come from the
argument, then IGR_EDGE_COMPUTE_UNITS, else all; both coreml implementations take them (coremltools'
`compute_units`, the ORT Core ML provider's `MLComputeUnits` option), the other backends ignore them.
"""
from __future__ import annotations

import os
import platform
import re
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Protocol

from .errors import BackendUnavailableError, BundleError, IgrEdgeError

PREFERENCE = ("cuda", "coreml", "cpu")
ENV = "IGR_EDGE_BACKEND"
OS_NAMES = {"Darwin": "macOS"}
PROBE = Path(__file__).parent / "probe.onnx"      # a one-node graph: does a real session get the provider?

# Core ML compute units by the SDK's names, and each as the ORT Core ML provider's `MLComputeUnits` value and as
# coremltools' ComputeUnit member (Apple's MLComputeUnits: .all, .cpuAndGPU, .cpuAndNeuralEngine, .cpuOnly)
COMPUTE_UNITS = ("all", "cpu_and_gpu", "cpu_and_ne", "cpu_only")
COMPUTE_UNITS_ENV = "IGR_EDGE_COMPUTE_UNITS"
ORT_COMPUTE_UNITS = {"all": "ALL", "cpu_and_gpu": "CPUAndGPU", "cpu_and_ne": "CPUAndNeuralEngine",
                     "cpu_only": "CPUOnly"}
COREMLTOOLS_COMPUTE_UNITS = {"all": "ALL", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE",
                             "cpu_only": "CPU_ONLY"}


def compute_units(requested: str | None = None) -> tuple[str, str]:
    """The Core ML compute units and where they came from: the argument ("compute_units"), else
    IGR_EDGE_COMPUTE_UNITS, else "all" ("default"). Raises IgrEdgeError naming the allowed values."""
    if requested is not None:
        value, source = requested, "compute_units"
    elif os.environ.get(COMPUTE_UNITS_ENV):
        value, source = os.environ[COMPUTE_UNITS_ENV], COMPUTE_UNITS_ENV
    else:
        return "all", "default"
    if value not in COMPUTE_UNITS:
        raise IgrEdgeError(f"{source}={value!r}: unknown Core ML compute units (choose from {', '.join(COMPUTE_UNITS)})")
    return value, source


LOW_MEMORY_ENV = "IGR_EDGE_LOW_MEMORY"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def low_memory(requested: bool | None = None) -> bool:
    """Whether ONNX Runtime sessions keep int8 weights int8 (see session_options): the argument, else
    IGR_EDGE_LOW_MEMORY (1/true/yes/on or 0/false/no/off), else False. Raises IgrEdgeError on anything else."""
    if requested is not None:
        if not isinstance(requested, bool):
            raise IgrEdgeError(f"low_memory must be True, False or None, got {requested!r}")
        return requested
    value = os.environ.get(LOW_MEMORY_ENV, "").strip().lower()
    if value in _TRUE or value in _FALSE + ("",):
        return value in _TRUE
    raise IgrEdgeError(f"{LOW_MEMORY_ENV}={os.environ[LOW_MEMORY_ENV]!r}: expected 1 or 0 (true/false, yes/no, on/off)")


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here, and if not, why."""
    name: str
    available: bool
    reason: str | None = None


class Session(Protocol):
    def run(self, output_names: list[str] | None, feeds: dict[str, Any]) -> list[Any]: ...


class Backend(Protocol):
    name: str
    formats: tuple[str, ...]                          # the variant formats it runs ("onnx", "ort", ...)

    def probe(self) -> str | None: ...               # None = usable here, else the reason why not

    def session(self, path: Path, *, threads: int | None = None, compute_units: str = "all",
                low_memory: bool = False) -> Session: ...


class MixedBuildsWarning(RuntimeWarning):
    """Two onnxruntime builds are installed side by side (they write the same files and break each other)."""


def _ort():
    _warn_if_mixed()
    import onnxruntime

    return onnxruntime


@lru_cache(maxsize=1)
def _warn_if_mixed() -> None:
    """Once per process, when the SDK first reaches for onnxruntime: say so if two builds are installed."""
    mixed = mixed_builds_reason(installed_builds())
    if mixed:
        warnings.warn(f"igr_edge: {mixed}", MixedBuildsWarning, stacklevel=3)


def installed_builds(path: list[str] | None = None) -> dict[str, str]:
    """The installed distributions that ship the `onnxruntime` import package (onnxruntime, onnxruntime-gpu,
    -directml, -openvino, ort-nightly, ...), name -> version: more than one shadow each other and break both.
    `path` is where to look (default sys.path; the tests pass a folder of dist-info records). Only records named
    like a build are read, so this costs about a millisecond, not the tens that reading every package's take."""
    from importlib import metadata

    builds: dict[str, str] = {}
    for entry in sys.path if path is None else path:
        try:
            records = sorted(f for f in Path(entry or ".").iterdir() if f.suffix in (".dist-info", ".egg-info")
                             and f.name.lower().replace("-", "_").startswith(("onnxruntime", "ort_nightly")))
        except OSError:                                 # a missing folder, a zip
            continue
        for record in records:
            dist = metadata.PathDistribution(record)
            try:
                name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
                if name and _ships_onnxruntime(dist):
                    builds.setdefault(name, dist.version)
            except Exception:                           # a record left half-written (an interrupted uninstall)
                continue
    return dict(sorted(builds.items()))


def _ships_onnxruntime(dist) -> bool:
    """Whether the distribution installs the `onnxruntime` package (onnxruntime-extensions, -genai do not)."""
    top = dist.read_text("top_level.txt")
    if top is not None:
        return "onnxruntime" in top.split()
    return any(f.parts[:1] == ("onnxruntime",) for f in dist.files or ())


def mixed_builds_reason(builds: dict[str, str]) -> str | None:
    if len(builds) > 1:
        names = " and ".join(f"{d} {v}" for d, v in builds.items())
        return (f"{names} are installed together and shadow each other; keep one: pip uninstall -y "
                f"{' '.join(builds)} && pip install onnxruntime-gpu (CUDA) or onnxruntime (CPU)")
    return None


# ONNX Runtime's optimizer that expands a variant's int8 weights (Cast · scale) into float32 constants at load
LOW_MEMORY_CONFIG = (("optimization.disable_specified_optimizers", "ConstantFolding"),)


def session_options(threads: int | None, *, low_memory: bool = False):
    """ORT session options: `threads` intra-op threads (one inter-op); `low_memory` turns off constant folding,
    so that int8 weights stay int8 in memory and are expanded on every call (slower, far smaller: see the README)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if low_memory:
        for key, value in LOW_MEMORY_CONFIG:
            opts.add_session_config_entry(key, value)
    return opts


@dataclass(frozen=True)
class OrtBackend:
    """An ONNX Runtime execution provider (CPU's is the fallback for nodes the provider lacks)."""
    name: str
    provider: str
    formats: tuple[str, ...] = ("onnx",)
    provider_options: tuple[tuple[str, str], ...] = ()
    system: str | None = None                          # the OS the provider needs, if any
    providers: Callable[[], list[str]] | None = None   # tests fake the build's provider list here
    compute_units_option: str | None = None            # the provider option that takes Core ML compute units

    def options(self, compute_units: str = "all") -> dict[str, str]:
        """The provider's options as ORT takes them: the registry's, and the Core ML compute units where the
        provider has an option for them (e.g. {"ModelFormat": "MLProgram", "MLComputeUnits": "CPUAndNeuralEngine"})."""
        options = dict(self.provider_options)
        if self.compute_units_option:
            options[self.compute_units_option] = ORT_COMPUTE_UNITS[compute_units]
        return options

    def _providers(self, compute_units: str = "all") -> list[tuple[str, dict[str, str]]]:
        ours = (self.provider, self.options(compute_units))
        return [ours] if self.provider == "CPUExecutionProvider" else [ours, ("CPUExecutionProvider", {})]

    def probe(self) -> str | None:
        if self.system and platform.system() != self.system:
            return f"needs {OS_NAMES.get(self.system, self.system)} (this is {platform.system()})"
        try:
            ort = _ort()
        except ImportError as e:
            return mixed_builds_reason(installed_builds()) or f"onnxruntime does not import ({e}); pip install onnxruntime"
        listed = self.providers() if self.providers else ort.get_available_providers()
        if self.provider not in listed:
            mixed = mixed_builds_reason(installed_builds())
            return mixed or (f"this onnxruntime build ({ort.__version__}) has no {self.provider}"
                             + ("; pip install onnxruntime-gpu in place of onnxruntime" if self.name == "cuda" else ""))
        if self.providers:                              # a faked list: no real session to ask
            return None
        return _real_session_reason(self.provider, self._providers())

    def session(self, path: Path, *, threads: int | None = None, compute_units: str = "all",
                low_memory: bool = False) -> Session:
        """An ORT session on `path` that really runs on this provider. Raises BackendUnavailableError when the
        provider is not in this build or the session drops it, BundleError when ORT cannot load the graph."""
        ort = _ort()
        if self.provider not in ort.get_available_providers():
            raise BackendUnavailableError(f"{self.name}: this onnxruntime build has no {self.provider}")
        try:
            sess = ort.InferenceSession(str(path), sess_options=session_options(threads, low_memory=low_memory),
                                        providers=self._providers(compute_units))
        except Exception as e:                         # ORT's own exception types (InvalidProtobuf, Fail, ...)
            raise BundleError(f"onnxruntime cannot load {path.name} on {self.name}: {first_line(e)}") from None
        if self.provider not in sess.get_providers():
            raise BackendUnavailableError(f"{self.name}: a session on {path.name} fell back to "
                                          f"{', '.join(sess.get_providers())}")
        return sess


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _real_session_reason(provider: str, providers: list) -> str | None:
    """None when a real session on the probe graph keeps `provider`, else why not."""
    return _probe_cached(provider, tuple((p, tuple(sorted(o.items()))) for p, o in providers))


@lru_cache(maxsize=None)
def _probe_cached(provider: str, providers: tuple) -> str | None:
    ort = _ort()
    if provider not in ort.get_available_providers():      # asking for it would only warn and fall back
        return f"this onnxruntime build ({ort.__version__}) has no {provider}"
    try:
        sess = ort.InferenceSession(str(PROBE), sess_options=session_options(1),
                                    providers=[(p, dict(o)) for p, o in providers])
    except Exception as e:                            # ORT raises its own exception types; all mean "not here"
        return f"a session with {provider} fails: {first_line(e)}"
    if provider not in sess.get_providers():
        mixed = mixed_builds_reason(installed_builds())
        return mixed or (f"{provider} is listed but a real session falls back to {', '.join(sess.get_providers())} "
                         "(no usable device or driver)")
    return None


class MLModelSession:
    """A Core ML package run image by image through coremltools (macOS): the student's uint8 NHWC persons and
    noise in, uint8 NHWC garments out (the package's image output has no `latent`)."""

    def __init__(self, path: Path, compute_units: str = "all") -> None:
        import threading

        import coremltools as ct

        self.model = ct.models.MLModel(str(path),
                                       compute_units=getattr(ct.ComputeUnit, COREMLTOOLS_COMPUTE_UNITS[compute_units]))
        self.lock = threading.Lock()                 # one prediction at a time per model

    def run(self, output_names: list[str] | None, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np
        from PIL import Image

        out = []
        for person, noise in zip(feeds["person"], feeds["noise"]):
            with self.lock:
                result = self.model.predict({"person": Image.fromarray(person), "noise": noise[None].astype(np.float32)})
            out.append(np.asarray(result["garment"].convert("RGB")))
        return [np.stack(out)]


@dataclass(frozen=True)
class CoremltoolsBackend:
    """Core ML through coremltools with the bundle's .mlpackage (macOS; the ORT Core ML provider runs ONNX)."""
    name: str = "coreml"
    formats: tuple[str, ...] = ("mlpackage",)

    def probe(self) -> str | None:
        if platform.system() != "Darwin":
            return f"needs {OS_NAMES['Darwin']} (this is {platform.system()})"
        try:
            import coremltools  # noqa: F401 - only whether it imports
        except ImportError:
            return "coremltools is not installed (pip install 'igr-edge[coreml]')"
        return None

    def session(self, path: Path, *, threads: int | None = None, compute_units: str = "all",
                low_memory: bool = False) -> Session:
        return MLModelSession(path, compute_units)      # Core ML loads its own weights: low_memory does not apply


def default_registry() -> dict[str, tuple[Backend, ...]]:
    """Each backend name and its implementations, tried in order (coreml: the .mlpackage, then ORT's provider)."""
    return {
        "cuda": (OrtBackend("cuda", "CUDAExecutionProvider"),),
        "coreml": (CoremltoolsBackend(),
                   OrtBackend("coreml", "CoreMLExecutionProvider", provider_options=(("ModelFormat", "MLProgram"),),
                              system="Darwin", compute_units_option="MLComputeUnits")),
        "cpu": (OrtBackend("cpu", "CPUExecutionProvider", formats=("onnx", "ort")),),
    }


REGISTRY: dict[str, tuple[Backend, ...]] = default_registry()
Registry = dict[str, tuple[Backend, ...]]


def available_backends(registry: Registry | None = None) -> list[BackendStatus]:
    """Every registered backend, whether it can run here and why not (cuda, coreml, cpu)."""
    registry = REGISTRY if registry is None else registry
    out = []
    for name, impls in registry.items():
        reasons = [impl.probe() for impl in impls]
        usable = any(r is None for r in reasons)
        out.append(BackendStatus(name, usable, None if usable else "; ".join(dict.fromkeys(reasons))))
    return out


def candidates(requested: str | None, registry: Registry) -> list[str]:
    """Backend names to try, in order: the argument, else IGR_EDGE_BACKEND, else cuda > coreml > cpu."""
    chosen = requested if requested is not None else (os.environ.get(ENV) or None)
    if chosen is None:
        return [n for n in PREFERENCE if n in registry] + [n for n in registry if n not in PREFERENCE]
    names = [n.strip() for n in str(chosen).split(",") if n.strip()] if isinstance(chosen, str) else []
    unknown = [n for n in names if n not in registry]
    source = "backend" if requested is not None else ENV
    if not names or unknown:
        raise BackendUnavailableError(f"{source}={chosen!r}: unknown backend {', '.join(unknown) or '(empty)'} "
                                      f"(choose from {', '.join(registry)})")
    return names


def usable(requested: str | None, variants: dict[str, tuple[str, tuple[str, ...]]] | None = None,
           registry: Registry | None = None, reasons: dict[str, list[str]] | None = None):
    """Every usable (backend, variant) in the order of choice; why the others were rejected goes in `reasons`.
    `variants`: {variant: (format, backend names)} of the bundle, in its order of preference (None: any)."""
    registry = REGISTRY if registry is None else registry
    reasons = {} if reasons is None else reasons
    for name in candidates(requested, registry):
        for impl in registry[name]:
            variant = None
            if variants is not None:
                fits = [v for v, (fmt, names) in variants.items() if name in names and fmt in impl.formats]
                if not fits:
                    have = "; ".join(f"{v} ({fmt}) for {', '.join(names) or 'none'}" for v, (fmt, names) in variants.items())
                    reasons.setdefault(name, []).append(f"the bundle has no {'/'.join(impl.formats)} variant for it "
                                                        f"(it has {have})")
                    continue
                variant = fits[0]
            reason = impl.probe()
            if reason is None:
                yield impl, variant
            else:
                reasons.setdefault(name, []).append(reason)


def unavailable(reasons: dict[str, list[str]]) -> BackendUnavailableError:
    return BackendUnavailableError("no usable backend: " + "; ".join(f"{n}: {', '.join(dict.fromkeys(r))}"
                                                                   for n, r in reasons.items()))


def choose(requested: str | None, variants: dict[str, tuple[str, tuple[str, ...]]] | None = None,
           registry: Registry | None = None) -> tuple[Backend, str | None]:
    """The first usable backend and the bundle variant it runs. Raises BackendUnavailableError naming each
    candidate and why it was rejected."""
    reasons: dict[str, list[str]] = {}
    for impl, variant in usable(requested, variants, registry, reasons):
        return impl, variant
    raise unavailable(reasons)
