"""A loaded bundle: its checked manifest, its folder, and the files each variant runs.

`Bundle.load(None)` is the default bundle inside the package; `Bundle.load(folder)` any bundle folder the
converters wrote. Loading verifies every file's size and SHA-256 and refuses paths that leave the folder
(see `igr_edge.manifest`); nothing is ever unpickled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BundleError
from .manifest import confined, read_manifest, variant_batch

DEFAULT_BUNDLE = Path(__file__).parent / "bundles" / "default"
SINGLE_CALL_GRAPHS = ("student",)
COMPONENT_GRAPHS = ("vae_encoder", "image_encoder", "garmnet", "denoiser", "vae_decoder")
# What a manifest's `requires` may name that this SDK implements (schema 1.1): zero-terminal-SNR noise schedules in
# the numpy samplers, and the aligned prior's graph, whose latent the denoiser takes as input `prior`.
FEATURES = ("zero-snr", "aligned-prior")


@dataclass(frozen=True)
class Bundle:
    """A bundle folder and its verified manifest (schema v1)."""
    folder: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None, *, verify: bool = True) -> "Bundle":
        """The bundle in `folder` (None: the default bundle shipped in the package), checked."""
        if folder is None:
            folder = DEFAULT_BUNDLE
            if not (folder / "manifest.json").is_file():
                raise BundleError(f"the default bundle is missing from {folder} (reinstall igr-edge)")
        if not isinstance(folder, (str, os.PathLike)):
            raise BundleError(f"bundle must be a folder path, got {type(folder).__name__}")
        path = Path(folder)
        if not path.is_dir():
            raise BundleError(f"bundle folder {path} does not exist" if not path.exists()
                              else f"bundle {path} is not a folder")
        manifest = read_manifest(path, verify=verify)
        unknown = [r for r in manifest.get("requires", []) if r not in FEATURES]
        if unknown:
            from . import __version__

            raise BundleError(f"{path} requires {', '.join(unknown)}, which igr-edge {__version__} does not implement "
                              f"(it implements {', '.join(FEATURES)}): upgrade igr-edge")
        bundle = cls(path.resolve(), manifest)
        for variant, spec in manifest["variants"].items():
            missing = [g for g in bundle.graph_names if g not in spec["files"]]
            if missing:
                raise BundleError(f"{path}: variant {variant} lacks the {', '.join(missing)} graph(s) a "
                                  f"{bundle.kind} bundle runs")
        problems = bundle.contract_errors()
        if problems:
            raise BundleError(f"{path}: " + "; ".join(problems[:3]))
        return bundle

    def contract_errors(self) -> list[str]:
        """Where the manifest's graphs disagree with the I/O this SDK feeds (DESIGN.md §5), or its scheduler
        with the numpy samplers."""
        m = self.manifest
        w, h = self.size
        latent = ["batch", *self.latent_shape]
        expected = ({"student": ({"person": ("uint8", ["batch", h, w, 3]), "noise": ("float32", latent)},
                                 {"garment": ("uint8", ["batch", h, w, 3])})}
                    if self.kind == "single-call" else
                    {"vae_encoder": ({"image": ("float32", ["batch", 3, h, w])}, {"latent": ("float32", latent)}),
                     "image_encoder": ({"image": ("float32", ["batch", 3, h, w])}, {}),
                     "garmnet": ({"person_latent": ("float32", latent)}, {}),
                     "denoiser": ({"latent": ("float32", latent), "timestep": ("int64", ["batch"]),
                                   **({"prior": ("float32", latent)} if self.has_prior else {})},
                                  {"v": ("float32", latent)}),
                     "vae_decoder": ({"latent": ("float32", latent)}, {"image": ("float32", ["batch", 3, h, w])})})
        if self.has_prior:
            expected["prior"] = ({"person_latent": ("float32", latent)}, {"prior": ("float32", latent)})
        errors = []
        for graph, (inputs, outputs) in expected.items():
            spec = m["graphs"].get(graph)
            if spec is None:
                errors.append(f"graphs lacks {graph}")
                continue
            for side, want in (("inputs", inputs), ("outputs", outputs)):
                have = {t["name"]: (t["dtype"], t["shape"]) for t in spec[side]}
                for name, (dtype, shape) in want.items():
                    if have.get(name) != (dtype, shape):
                        errors.append(f"graph {graph} {side[:-1]} {name} is {have.get(name)}, this SDK feeds "
                                      f"{(dtype, shape)}")
        if self.kind == "components":
            from .schedulers import NoiseSchedule, plan

            sched = m["scheduler"]
            try:
                timesteps = plan(sched["name"], NoiseSchedule.from_manifest(sched), self.steps).timesteps.tolist()
            except ValueError as e:
                return errors + [f"scheduler: {e}"]
            if timesteps != sched["timesteps"]:
                errors.append(f"scheduler.timesteps {sched['timesteps'][:4]}… differ from the {sched['name']} plan "
                              f"for {self.steps} steps {timesteps[:4]}…")
        return errors

    # -- what the manifest says ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]                        # single-call | components

    @property
    def has_prior(self) -> bool:
        """A components bundle whose denoiser takes the aligned prior's latent (the `prior` graph's output)."""
        return self.kind == "components" and "aligned-prior" in self.manifest.get("requires", [])

    @property
    def graph_names(self) -> tuple[str, ...]:
        """The graphs every variant must hold and the runtime opens."""
        if self.kind == "single-call":
            return SINGLE_CALL_GRAPHS
        return COMPONENT_GRAPHS + (("prior",) if self.has_prior else ())

    @property
    def steps(self) -> int:
        return int(self.manifest["steps"])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the model's images."""
        r = self.manifest["resolution"]
        return int(r["width"]), int(r["height"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.manifest["noise"]["shape"])

    @property
    def noise_generator(self) -> str:
        return self.manifest["noise"]["generator"]

    @property
    def guidance(self) -> float:
        """The classifier-free guidance the SDK applies (1 when the bundle has it baked in)."""
        g = self.manifest["guidance"]
        return 1.0 if g.get("baked_in") else float(g["scale"])

    def variants(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """{variant: (format, backends)}, the manifest's default variant first."""
        names = list(self.manifest["variants"])
        first = self.manifest.get("default_variant")
        if first in names:
            names.remove(first)
            names.insert(0, first)
        return {v: (self.manifest["variants"][v]["format"], tuple(self.manifest["variants"][v]["backends"]))
                for v in names}

    def batch(self, variant: str) -> int | None:
        """The batch `variant`'s files take: 1 where its declared `io` fixes it (schema 1.3: the mobile and Core ML
        variants), None where any batch runs (or, in older manifests, where nothing is declared)."""
        return variant_batch(self.manifest, variant)

    def file(self, variant: str, graph: str) -> Path:
        """The file (or .mlpackage folder) of `graph` in `variant`, confined to the bundle."""
        try:
            rel = self.manifest["variants"][variant]["files"][graph]
        except KeyError:
            raise BundleError(f"bundle {self.name} has no {graph} graph in variant {variant!r}") from None
        return confined(self.folder, rel)
