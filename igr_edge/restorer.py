"""`Restorer`: load a bundle once on a backend, then restore garments from person photos, from many threads.

A single-call bundle (a few-step student) is one graph call per batch: person uint8 + noise -> garment uint8.
A components bundle (the teacher) runs its sampler here, in numpy (`igr_edge.schedulers`), over the five
component graphs, with classifier-free guidance when the bundle does not have it baked in. Noise always comes
from each image's seed through the bundle's generator, so a seed gives the same garment on every platform.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from . import backends as _backends
from . import images as _images
from .bundle import COMPONENT_GRAPHS, Bundle
from .errors import BundleError, IgrEdgeError
from .noise import check_seed, normal

MAX_BATCH = 8                                   # images per graph call in restore_batch


def _threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise IgrEdgeError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8, rounded as the single-call graph rounds."""
    return np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class SingleCallRunner:
    """One call of the student graph per batch."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, persons: np.ndarray, noise: np.ndarray, steps: int | None) -> np.ndarray:
        return self.session.run(["garment"] if hasattr(self.session, "get_outputs") else None,
                                {"person": persons, "noise": noise})[0]


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
        s = self.sessions
        image = persons.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)  # (N, 3, H, W)
        person_latent = s["vae_encoder"].run(None, {"image": image})[0]                      # (N, 4, h, w)
        tokens = s["image_encoder"].run(None, {"image": image})[0]                            # (N, T, D)
        refs = s["garmnet"].run(None, {"person_latent": person_latent})                       # (N, L_i, C_i) each
        guided = self.guidance != 1.0
        if guided:                                                                            # unconditional half first
            tokens = np.concatenate([np.zeros_like(tokens), tokens])
            refs = [np.concatenate([np.zeros_like(r), r]) for r in refs]
        cond = {"image_tokens": tokens, **dict(zip(self.references, refs))}

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
    """A bundle loaded on one backend. `restore(image, seed=0)` -> PIL image; safe to call from many threads."""

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, *, backend: str | None = None,
                 threads: int | None = None) -> None:
        self._bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        impl, variant = _backends.choose(backend, self._bundle.variants())
        self._backend = impl.name
        self.variant = variant
        threads = _threads(threads)
        if self._bundle.kind == "single-call":
            self._run = SingleCallRunner(impl.session(self._bundle.file(variant, "student"), threads=threads))
        else:
            sessions = {g: impl.session(self._bundle.file(variant, g), threads=threads) for g in COMPONENT_GRAPHS}
            self._run = ComponentRunner(sessions, self._bundle)

    # -- what it is ------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    def __repr__(self) -> str:
        return f"Restorer(bundle={self._bundle.name!r}, variant={self.variant!r}, backend={self._backend!r})"

    # -- restoring -------------------------------------------------------------------------------
    def _steps(self, steps: Any) -> int | None:
        if steps is None:
            return None
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise IgrEdgeError(f"steps must be a positive integer or None, got {steps!r}")
        if self._bundle.kind == "single-call" and steps != self._bundle.steps:
            raise IgrEdgeError(f"bundle {self._bundle.name} is a single-call {self._bundle.steps}-step graph; "
                               f"steps={steps} needs that student's own bundle or a components bundle")
        return int(steps)

    def restore_arrays(self, persons: np.ndarray, seeds: Sequence[int], *, steps: int | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 persons at the model's size + one seed each -> (N, H, W, 3) uint8 garments."""
        run = self._run
        if run is None:
            raise IgrEdgeError("this Restorer is closed")
        steps = self._steps(steps)
        width, height = self._bundle.size
        if persons.dtype != np.uint8 or persons.shape[1:] != (height, width, 3) or len(persons) != len(seeds):
            raise IgrEdgeError(f"persons must be (N, {height}, {width}, 3) uint8 with one seed each, "
                               f"got {persons.shape} {persons.dtype} and {len(seeds)} seeds")
        noise = np.stack([normal(check_seed(s), self._bundle.latent_shape, generator=self._bundle.noise_generator)
                          for s in seeds])
        out = []
        for i in range(0, len(persons), MAX_BATCH):
            out.append(run(np.ascontiguousarray(persons[i:i + MAX_BATCH]), noise[i:i + MAX_BATCH], steps))
        return np.concatenate(out)

    def restore(self, image: _images.ImageInput, seed: int = 0, *, steps: int | None = None,
                size: int | tuple[int, int] | None = None) -> Image.Image:
        """The garment the person in `image` wears, as an RGB image of `size` (default: the model's)."""
        return self.restore_batch([image], [seed], steps=steps, size=size)[0]

    def restore_batch(self, images: Iterable[_images.ImageInput], seeds: Sequence[int] | None = None, *,
                      steps: int | None = None, size: int | tuple[int, int] | None = None) -> list[Image.Image]:
        """`restore` over many images (seeds: one per image, default 0 each), run in batches of up to 8."""
        if isinstance(images, (str, bytes, os.PathLike, Image.Image, np.ndarray)):
            raise IgrEdgeError("restore_batch takes a list of images; use restore() for one image")
        images = list(images)
        seeds = [0] * len(images) if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise IgrEdgeError(f"{len(images)} images but {len(seeds)} seeds")
        width, height = self._bundle.size
        _images.output_size(size, width, height)             # a bad size fails before any work
        if not images:
            return []
        persons = []
        for i, image in enumerate(images):
            try:
                persons.append(_images.letterbox(_images.load_image(image), width, height))
            except IgrEdgeError as e:
                if len(images) == 1:
                    raise
                raise type(e)(f"image {i}: {e}") from None
        garments = self.restore_arrays(np.stack(persons), seeds, steps=steps)
        return [_images.to_output(g, size) for g in garments]

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the sessions; later calls raise IgrEdgeError."""
        self._run = None

    def __enter__(self) -> "Restorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_CACHE: dict[tuple, Restorer] = {}
_CACHE_LOCK = threading.Lock()


def restore(image: _images.ImageInput, *, steps: int | None = None, seed: int = 0, backend: str | None = None,
            bundle: str | os.PathLike | None = None, size: int | tuple[int, int] | None = None) -> Image.Image:
    """Restore the garment worn in `image` with the default bundle (or `bundle`): an RGB PIL image.

    The Restorer behind it is made once per (bundle, backend) and reused by later calls."""
    if bundle is not None and not isinstance(bundle, (str, os.PathLike)):
        raise BundleError(f"bundle must be a folder path, got {type(bundle).__name__}")
    key = (os.path.realpath(bundle) if bundle is not None else None, backend,
           os.environ.get(_backends.ENV) if backend is None else None)
    with _CACHE_LOCK:
        restorer = _CACHE.get(key)
        if restorer is None:
            restorer = _CACHE[key] = Restorer(bundle, backend=backend)
    return restorer.restore(image, seed, steps=steps, size=size)
