"""`Restorer`: load a bundle once on a backend, then restore garments from person photos, from many threads.

A single-call bundle (a few-step student) is one graph call per batch: person uint8 + noise -> garment uint8.
A components bundle (the teacher) runs its sampler here, in numpy (`igr_edge.schedulers`), over the five
component graphs, with classifier-free guidance when the bundle does not have it baked in. Noise always comes
from each image's seed through the bundle's generator, so a seed gives the same garment on every platform.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from . import backends as _backends
from . import images as _images
from .bundle import Bundle
from .errors import BackendUnavailableError, BundleError, IgrEdgeError
from .noise import check_seed, normal

MAX_BATCH = 8                                   # images per graph call in restore_batch


def _threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise IgrEdgeError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _seeds(seeds: Any) -> list[int]:
    """One valid seed per image (a list, tuple or range of integers in [0, 2**64))."""
    if isinstance(seeds, (str, bytes)) or not _iterable(seeds):
        raise IgrEdgeError(f"seeds must be a sequence of integers, one per image, got {type(seeds).__name__}")
    return [check_seed(s) for s in seeds]


MAX_SAMPLES = 16        # restores averaged per image at most (`samples`)


def check_samples(samples: Any) -> int:
    """A valid number of restores to average per image."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES:
        raise IgrEdgeError(f"samples must be an integer from 1 to {MAX_SAMPLES}, got {samples!r}")
    return int(samples)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8, rounded as the single-call graph rounds."""
    return np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def run_graph(session, name: str, outputs: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """One graph call; a runtime failure (ORT's own exception types) becomes an IgrEdgeError naming the graph."""
    try:
        return session.run(outputs, feeds)
    except Exception as e:                              # noqa: BLE001 - ORT / Core ML raise their own types
        raise IgrEdgeError(f"the {name} graph failed: {_backends.first_line(e)}") from None


class SingleCallRunner:
    """One call of the student graph per batch, or per image where the variant's file fixes its batch at 1."""

    def __init__(self, session, batch: int | None = None) -> None:
        self.session = session
        self.batch = batch

    def __call__(self, persons: np.ndarray, noise: np.ndarray, steps: int | None) -> np.ndarray:
        outputs = ["garment"] if hasattr(self.session, "get_outputs") else None
        if self.batch is None or len(persons) <= self.batch:
            return run_graph(self.session, "student", outputs, {"person": persons, "noise": noise})[0]
        return np.concatenate([run_graph(self.session, "student", outputs,
                                         {"person": persons[i:i + self.batch], "noise": noise[i:i + self.batch]})[0]
                               for i in range(0, len(persons), self.batch)])


class _Named:
    """A session whose failures name its graph."""

    def __init__(self, session, name: str) -> None:
        self.session, self.name = session, name

    def run(self, outputs, feeds):
        return run_graph(self.session, self.name, outputs, feeds)


class ComponentRunner:
    """The teacher's loop: both extractors once per image, `steps` denoiser calls (2 images each with
    guidance: the unconditional half sees zero references and zero image tokens), then the VAE decoder."""

    def __init__(self, sessions: dict[str, Any], bundle: Bundle) -> None:
        from . import schedulers

        self.sessions = sessions
        self.schedulers = schedulers
        self.schedule = schedulers.NoiseSchedule.from_manifest(bundle.manifest["scheduler"])
        self.sampler = bundle.manifest["scheduler"]["name"]
        self.default_steps = bundle.steps
        self.guidance = bundle.guidance
        self.references = [o.name for o in sessions["garmnet"].get_outputs()]

    def __call__(self, persons: np.ndarray, noise: np.ndarray, steps: int | None) -> np.ndarray:
        s = {g: _Named(sess, g) for g, sess in self.sessions.items()}
        image = persons.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)  # (N, 3, H, W)
        person_latent = s["vae_encoder"].run(None, {"image": image})[0]                      # (N, 4, h, w)
        tokens = s["image_encoder"].run(None, {"image": image})[0]                            # (N, T, D)
        refs = s["garmnet"].run(None, {"person_latent": person_latent})                       # (N, L_i, C_i) each
        cond = {"image_tokens": tokens, **dict(zip(self.references, refs))}
        if "prior" in s:                                                                      # the aligned prior's latent
            cond["prior"] = s["prior"].run(None, {"person_latent": person_latent})[0]         # (N, 4, h, w)
        guided = self.guidance != 1.0
        if guided:                                                       # unconditional half first: every signal zero
            cond = {k: np.concatenate([np.zeros_like(v), v]) for k, v in cond.items()}

        def predict(x: np.ndarray, t: int) -> np.ndarray:
            x_in = np.concatenate([x, x]) if guided else x
            timestep = np.full((x_in.shape[0],), t, dtype=np.int64)
            v = s["denoiser"].run(None, {"latent": x_in.astype(np.float32), "timestep": timestep, **cond})[0]
            if guided:
                v_uncond, v_cond = np.split(v, 2)
                v = v_uncond + np.float32(self.guidance) * (v_cond - v_uncond)   # classifier-free guidance
            return v

        plan = self.schedulers.plan(self.sampler, self.schedule, steps or self.default_steps)
        latent = self.schedulers.sample(plan, noise, predict)
        return to_uint8(s["vae_decoder"].run(None, {"latent": latent.astype(np.float32)})[0])


class Restorer:
    """A bundle loaded on one backend. `restore(image, seed=0)` -> PIL image; safe to call from many threads.

    `compute_units` (all, cpu_and_gpu, cpu_and_ne, cpu_only; default IGR_EDGE_COMPUTE_UNITS, else all): the
    processors Core ML may use on the coreml backend; the other backends ignore it.

    `low_memory` (default IGR_EDGE_LOW_MEMORY, else False): ONNX Runtime keeps an int8-weight variant's weights
    int8 and expands them on every call instead of once at load. For the default bundle on the CPU, batch 1:
    about 90 MB less peak memory, each restore about a third slower (figures in the README). It applies to ONNX
    Runtime sessions (cpu, cuda, ORT's Core ML provider); a Core ML package (.mlpackage) ignores it."""

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, *, backend: str | None = None,
                 threads: int | None = None, variant: str | None = None,
                 max_pixels: int = _images.MAX_PIXELS, compute_units: str | None = None,
                 low_memory: bool | None = None) -> None:
        threads = _threads(threads)
        self.low_memory = _backends.low_memory(low_memory)
        self.compute_units, self.compute_units_source = _backends.compute_units(compute_units)
        self.max_pixels = max_pixels
        self._bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        variants = self._bundle.variants()
        if variant is not None:                          # this variant only (e.g. to benchmark it)
            if variant not in variants:
                raise BundleError(f"bundle {self._bundle.name} has no variant {variant!r} "
                                  f"(it has {', '.join(variants)})")
            variants = {variant: variants[variant]}
        reasons: dict[str, list[str]] = {}
        broken: BundleError | None = None
        for impl, variant in _backends.usable(backend, variants, reasons=reasons):
            try:                                         # a real session may still fail: try the next candidate
                self._run = self._runner(impl, variant, threads)
            except BackendUnavailableError as e:
                reasons.setdefault(impl.name, []).append(str(e))
                continue
            except BundleError as e:
                broken = broken or e
                reasons.setdefault(impl.name, []).append(str(e))
                continue
            self._backend, self.variant = impl.name, variant
            return
        if broken is not None and all(r for r in reasons.values()) and "cpu" in reasons:
            raise broken                                 # the graph itself will not load, even on the CPU
        raise _backends.unavailable(reasons)

    def _runner(self, impl, variant: str, threads: int | None):
        how = {"threads": threads, "compute_units": self.compute_units}
        if self.low_memory:                              # only when asked: backends without the keyword keep working
            how["low_memory"] = True
        if self._bundle.kind == "single-call":
            return SingleCallRunner(impl.session(self._bundle.file(variant, "student"), **how),
                                    batch=self._bundle.batch(variant))
        sessions = {g: impl.session(self._bundle.file(variant, g), **how) for g in self._bundle.graph_names}
        return ComponentRunner(sessions, self._bundle)

    # -- what it is ------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    def __repr__(self) -> str:
        units = f", compute_units={self.compute_units!r}" if self._backend == "coreml" else ""
        low = ", low_memory=True" if self.low_memory else ""
        return (f"Restorer(bundle={self._bundle.name!r}, variant={self.variant!r}, backend={self._backend!r}"
                f"{units}{low})")

    # -- restoring -------------------------------------------------------------------------------
    def _steps(self, steps: Any) -> int | None:
        if steps is None:
            return None
        most = int(self._bundle.manifest["scheduler"]["train_timesteps"])
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= most:
            raise IgrEdgeError(f"steps must be an integer from 1 to {most}, or None, got {steps!r}")
        if self._bundle.kind == "single-call" and steps != self._bundle.steps:
            raise IgrEdgeError(f"bundle {self._bundle.name} is a single-call {self._bundle.steps}-step graph; "
                               f"steps={steps} needs that student's own bundle or a components bundle")
        return int(steps)

    def restore_arrays(self, persons: np.ndarray, seeds: Sequence[int], *, steps: int | None = None,
                       samples: int = 1) -> np.ndarray:
        """(N, H, W, 3) uint8 persons at the model's size + one seed each -> (N, H, W, 3) uint8 garments.

        `samples` K > 1: restore each person K times, from seeds seed, seed + 1, ... (modulo 2**64), and return the
        pixel mean, rounded: K times the work, a garment nearer the truth on average (docs/sdk.md has the figures)."""
        run = self._run
        if run is None:
            raise IgrEdgeError("this Restorer is closed")
        steps = self._steps(steps)
        samples = check_samples(samples)
        seeds = _seeds(seeds)
        width, height = self._bundle.size
        if (not isinstance(persons, np.ndarray) or persons.dtype != np.uint8
                or persons.shape[1:] != (height, width, 3) or len(persons) != len(seeds)):
            got = f"{persons.shape} {persons.dtype}" if isinstance(persons, np.ndarray) else type(persons).__name__
            raise IgrEdgeError(f"persons must be an (N, {height}, {width}, 3) uint8 array with one seed each, "
                               f"got {got} and {len(seeds)} seeds")
        if len(persons) == 0:
            return np.zeros((0, height, width, 3), np.uint8)
        total = None
        for k in range(samples):
            noise = np.stack([normal((s + k) % 2**64, self._bundle.latent_shape, generator=self._bundle.noise_generator)
                              for s in seeds])
            out = np.concatenate([run(np.ascontiguousarray(persons[i:i + MAX_BATCH]), noise[i:i + MAX_BATCH], steps)
                                  for i in range(0, len(persons), MAX_BATCH)])
            if samples == 1:
                return out
            total = out.astype(np.float32) if total is None else total + out
        return np.rint(total / samples).astype(np.uint8)

    def restore(self, image: _images.ImageInput, seed: int = 0, *, steps: int | None = None,
                size: int | tuple[int, int] | None = None, samples: int = 1) -> Image.Image:
        """The garment the person in `image` wears, as an RGB image of `size` (default: the model's). `samples`:
        the mean of that many restores (`restore_arrays`)."""
        return self.restore_batch([image], [seed], steps=steps, size=size, samples=samples)[0]

    def restore_batch(self, images: Iterable[_images.ImageInput], seeds: Sequence[int] | None = None, *,
                      steps: int | None = None, size: int | tuple[int, int] | None = None,
                      samples: int = 1) -> list[Image.Image]:
        """`restore` over many images (seeds: one per image, default 0 each), run in batches of up to 8."""
        if isinstance(images, (str, bytes, os.PathLike, Image.Image, np.ndarray)) or not _iterable(images):
            raise IgrEdgeError("restore_batch takes a list of images; use restore() for one image "
                               "(and restore_arrays() for an (N, H, W, 3) array)")
        images = list(images)
        seeds = [0] * len(images) if seeds is None else _seeds(seeds)
        if len(seeds) != len(images):
            raise IgrEdgeError(f"{len(images)} images but {len(seeds)} seeds")
        width, height = self._bundle.size
        _images.output_size(size, width, height)             # a bad size fails before any work
        check_samples(samples)
        if not images:
            return []
        persons = []
        for i, image in enumerate(images):
            try:
                persons.append(_images.letterbox(_images.load_image(image, max_pixels=self.max_pixels), width, height))
            except IgrEdgeError as e:
                if len(images) == 1:
                    raise
                raise type(e)(f"image {i}: {e}") from None
        garments = self.restore_arrays(np.stack(persons), seeds, steps=steps, samples=samples)
        return [_images.to_output(g, size) for g in garments]

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the sessions; later calls raise IgrEdgeError."""
        self._run = None

    def __enter__(self) -> "Restorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_CACHE: "OrderedDict[tuple, Restorer]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 4          # Restorers kept by restore(); beyond that the oldest is dropped (freed once no call uses it)


def clear_cache() -> None:
    """Forget the Restorers that restore() keeps (their sessions are freed once no call still uses them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def restore(image: _images.ImageInput, *, steps: int | None = None, seed: int = 0, backend: str | None = None,
            bundle: str | os.PathLike | None = None, size: int | tuple[int, int] | None = None,
            compute_units: str | None = None, low_memory: bool | None = None, samples: int = 1) -> Image.Image:
    """Restore the garment worn in `image` with the default bundle (or `bundle`): an RGB PIL image. `samples` K:
    the pixel mean of K restores from seeds seed .. seed + K - 1 (K times the time; `Restorer.restore_arrays`).

    The Restorer behind it is made once per (bundle, backend, compute units, low_memory) and reused by later calls
    (up to CACHE_SIZE)."""
    if bundle is not None and not isinstance(bundle, (str, os.PathLike)):
        raise BundleError(f"bundle must be a folder path, got {type(bundle).__name__}")
    units, _ = _backends.compute_units(compute_units)
    low = _backends.low_memory(low_memory)
    key = (os.path.realpath(bundle) if bundle is not None else None, backend,
           os.environ.get(_backends.ENV) if backend is None else None, units, low)
    with _CACHE_LOCK:
        restorer = _CACHE.get(key)
        if restorer is None:
            restorer = _CACHE[key] = Restorer(bundle, backend=backend, compute_units=compute_units, low_memory=low)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
    return restorer.restore(image, seed, steps=steps, size=size, samples=samples)
