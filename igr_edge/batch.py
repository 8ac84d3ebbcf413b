"""Catalog-scale restore: `restore_catalog(INPUT, OUTPUT)` and `igr-edge batch INPUT OUTPUT`.

Three stages, the same functions on both engines, so both write the same bytes:

    read     (tasks)   an input's bytes -> decoded, letterboxed person (N, H, W, 3) uint8, or an error row
    restore  (actors)  a Restorer per worker, loaded once: persons + seeds -> garments (N, H, W, 3) uint8
    write    (tasks)   garment -> PNG / WebP written whole into OUTPUT/garments, and its manifest row

`engine="ray"` runs them as a Ray Data pipeline (`map_batches` over an actor pool: `num_gpus=1` per actor where
the cluster has GPUs, `threads` CPUs per actor otherwise), on the cluster at `address` or on a Ray started here.
`engine="threads"` runs them in this process on a thread pool sharing one Restorer: what an embedding
application gets without Ray. `auto` is Ray when it is installed (the `ray` extra) or an address is given.

Nothing is lost: every input ends as a garment or an error row (a bad image never stops the job), garments and
manifest parts are written whole (a temporary file, then a rename), the driver appends rows only after their
garment is written, and a re-run skips what the manifest records as done. A Ray actor that dies is restarted and
its batch retried (Ray Data's default); whatever a killed run had not recorded, the re-run does.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import catalog as _catalog
from .backends import compute_units as compute_units_of
from .backends import low_memory as low_memory_of
from .errors import IgrEdgeError, InvalidImageError
from .images import MAX_PIXELS

ENGINES = ("auto", "threads", "ray")
BATCH = 8                            # images per graph call (Restorer.restore_arrays runs up to 8 at once)


@dataclass(frozen=True)
class Settings:
    """What every stage needs, on any machine of a cluster (picklable: paths and numbers only)."""
    bundle: str | None
    backend: str | None
    variant: str | None
    threads: int | None
    steps: int | None
    size: int | tuple[int, int] | None
    format: str
    max_pixels: int
    output: str                      # OUTPUT, a folder path or URI every worker can write
    column: str | None               # a table of images: its bytes column
    width: int                       # the model's input size
    height: int
    compute_units: str = "all"       # Core ML's, resolved here (a worker's environment does not choose them)
    low_memory: bool = False         # likewise resolved here


@dataclass(frozen=True)
class Summary:
    """What a job did. `done`: garments written this run; `failed`: error rows this run; `skipped`: inputs an
    earlier run had finished; `seconds`: the whole call (listing to folded manifest)."""
    listed: int
    done: int
    failed: int
    skipped: int
    seconds: float
    engine: str
    workers: int
    output: str
    manifests: tuple[str, ...] = ()
    duplicates: int = 0
    failed_before: int = 0           # skipped inputs whose row is an error (unreadable: not retried by default)
    startup_seconds: float = 0.0     # starting Ray here (0 when joining a running one, or in-process)
    errors: tuple[str, ...] = field(default=(), repr=False)     # the first few error rows, "input: error"

    @property
    def images_per_s(self) -> float:
        """Garments written per second of the job (starting Ray excluded)."""
        busy = self.seconds - self.startup_seconds
        return self.done / busy if busy > 0 else 0.0

    def line(self) -> str:
        before = f", {self.failed_before} of them unreadable" if self.failed_before else ""
        return (f"{self.done} restored, {self.failed} failed, {self.skipped} skipped (done before{before}) of "
                f"{self.listed} in {self.seconds:.1f} s, {self.images_per_s:.2f} images/s ({self.engine}, "
                f"{self.workers} worker{'s' if self.workers != 1 else ''})")


# --- the stages ------------------------------------------------------------------------------------------------

def _error(e: BaseException) -> str:
    if isinstance(e, (IgrEdgeError, OSError)):
        return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return f"internal error {type(e).__name__}: {' '.join(str(e).split())[:200]} (please report it)"


def read_stage(batch: dict[str, np.ndarray], settings: Settings) -> dict[str, np.ndarray]:
    """Each input's bytes, decoded and letterboxed to the model's size; a failure becomes the row's error."""
    from .images import letterbox, load_image

    sources, groups, rows = list(batch["source"]), batch["group"].tolist(), batch["row"].tolist()
    n = len(sources)
    persons = np.full((n, settings.height, settings.width, 3), 255, np.uint8)
    errors, ms = [""] * n, np.zeros(n)
    table_rows: dict[tuple[str, int], list[int]] = {}
    for i in range(n):
        if groups[i] >= 0:
            table_rows.setdefault((sources[i], groups[i]), []).append(i)
    encoded: dict[int, Any] = {}
    for (source, group), members in table_rows.items():           # a row group is read once per batch
        start = time.perf_counter()
        try:
            values = _catalog.read_table_rows(source, group, [rows[i] for i in members], settings.column)
            encoded.update(zip(members, values))
        except Exception as e:                                      # noqa: BLE001 - every row of the group fails
            for i in members:
                errors[i] = _error(e)
        for i in members:
            ms[i] += (time.perf_counter() - start) * 1e3 / len(members)
    for i in range(n):
        if errors[i]:
            continue
        start = time.perf_counter()
        try:
            if groups[i] >= 0:
                data = encoded[i]
                if data is None:
                    raise InvalidImageError(f"row {rows[i]} of row group {groups[i]} holds no image bytes")
            else:
                data = _catalog.read_bytes(sources[i]) if _catalog.is_uri(sources[i]) else _catalog.local(sources[i])
            persons[i] = letterbox(load_image(data, max_pixels=settings.max_pixels), settings.width, settings.height)
        except Exception as e:                                      # noqa: BLE001 - one row's error, the rest go on
            errors[i] = _error(e)
        ms[i] += (time.perf_counter() - start) * 1e3
    out = {k: v for k, v in batch.items() if k not in ("source", "group", "row")}
    return {**out, "person": persons, "error": np.array(errors, dtype=object), "ms": ms}


class RestoreStage:
    """A Restorer loaded once (one per Ray actor; one shared by every thread in-process); with `write`, the
    write stage runs here too (CPU actors: no process of its own to start, no garment through the object store)."""

    def __init__(self, settings: Settings, restorer=None, write: bool = False) -> None:
        from .restorer import Restorer

        self.settings, self.write = settings, write
        self.restorer = restorer or Restorer(settings.bundle, backend=settings.backend, threads=settings.threads,
                                             variant=settings.variant, max_pixels=settings.max_pixels,
                                             compute_units=settings.compute_units,
                                             low_memory=settings.low_memory)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        persons = batch["person"]
        errors = [str(e) for e in batch["error"]]
        ms = np.array(batch["ms"], dtype=np.float64)
        garments = np.full_like(persons, 255)
        ok = [i for i, e in enumerate(errors) if not e]
        if ok:
            start = time.perf_counter()
            try:
                garments[ok] = self.restorer.restore_arrays(np.ascontiguousarray(persons[ok]),
                                                            [int(s) for s in batch["seed"][ok]],
                                                            steps=self.settings.steps)
            except Exception as e:                                  # noqa: BLE001 - the graph failed for the batch
                for i in ok:
                    errors[i] = _error(e)
            ms[ok] += (time.perf_counter() - start) * 1e3 / len(ok)
        n = len(errors)
        out = {k: v for k, v in batch.items() if k != "person"}
        out = {**out, "garment": garments, "error": np.array(errors, dtype=object), "ms": ms,
               "backend": np.array([self.restorer.backend] * n, dtype=object),
               "variant": np.array([self.restorer.variant] * n, dtype=object)}
        return write_stage(out, self.settings) if self.write else out


def encode(image, fmt: str) -> bytes:
    """PNG (Pillow's defaults, as `igr-edge restore` writes) or lossless WebP."""
    import io

    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_stage(batch: dict[str, np.ndarray], settings: Settings) -> dict[str, np.ndarray]:
    """Each garment encoded and written whole into OUTPUT; the rows of the manifest."""
    from .images import to_output

    folder = _catalog.Folder(settings.output)
    outputs = [str(o) for o in batch["output"]]
    errors = [str(e) for e in batch["error"]]
    ms = np.array(batch["ms"], dtype=np.float64)
    for i, garment in enumerate(batch["garment"]):
        if errors[i]:
            outputs[i] = ""
            continue
        start = time.perf_counter()
        try:
            folder.write(outputs[i], encode(to_output(np.asarray(garment), settings.size), settings.format))
        except Exception as e:                                      # noqa: BLE001 - a full disk, a lost mount, ...
            errors[i], outputs[i] = _error(e), ""
        ms[i] += (time.perf_counter() - start) * 1e3
    return {"input": batch["input"], "output": np.array(outputs, dtype=object), "seed": batch["seed"],
            "backend": batch["backend"], "variant": batch["variant"], "milliseconds": np.round(ms, 2),
            "error": np.array(errors, dtype=object)}


def manifest_rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A written batch as manifest rows (an empty string is no output / no error)."""
    columns = {c: [v.item() if isinstance(v, np.generic) else v for v in batch[c]] for c in _catalog.COLUMNS}
    return [{"input": str(columns["input"][i]), "output": columns["output"][i] or None, "seed": int(columns["seed"][i]),
             "backend": str(columns["backend"][i]), "variant": str(columns["variant"][i]),
             "milliseconds": float(columns["milliseconds"][i]), "error": columns["error"][i] or None}
            for i in range(len(columns["input"]))]


# --- the engines --------------------------------------------------------------------------------------------------

def _columns(todo: list[tuple[_catalog.Item, int, str]]) -> dict[str, np.ndarray]:
    """(item, seed, garment path) rows as the read stage's columns."""
    return {"input": np.array([t[0].key for t in todo], dtype=object),
            "source": np.array([t[0].source for t in todo], dtype=object),
            "group": np.array([t[0].group for t in todo], dtype=np.int64),
            "row": np.array([t[0].row for t in todo], dtype=np.int64),
            "seed": np.array([t[1] for t in todo], dtype=np.int64),
            "output": np.array([t[2] for t in todo], dtype=object)}


def run_threads(todo: list, settings: Settings, *, workers: int, batch_size: int, restorer,
                on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
    """The three stages per batch, `workers` batches at a time in this process, one Restorer for all."""
    stage = RestoreStage(settings, restorer, write=True)

    def one(chunk: list) -> list[dict[str, Any]]:
        return manifest_rows(stage(read_stage(_columns(chunk), settings)))

    chunks: Iterator[list] = (todo[i:i + batch_size] for i in range(0, len(todo), batch_size))
    with ThreadPoolExecutor(workers, thread_name_prefix="igr-edge-batch") as pool:
        pending = set()
        try:
            for chunk in chunks:
                pending.add(pool.submit(one, chunk))
                if len(pending) >= 2 * workers:                     # a bounded queue: memory stays flat
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        on_rows(f.result())
            for f in list(pending):
                pending.discard(f)
                on_rows(f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def ray_resources(settings: Settings, workers: int | None, threads: int | None) -> tuple[int, dict, int | None]:
    """(actors, their ray resources, ORT threads each): a GPU per actor where the cluster has GPUs and the backend
    allows CUDA, else `threads` CPUs per actor and as many actors as the CPUs hold."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus and settings.backend in (None, "cuda"):
        return workers or gpus, {"num_gpus": 1, "num_cpus": 1}, threads
    threads = threads or 1
    return workers or max(1, int(res.get("CPU", 1)) // threads), {"num_cpus": threads}, threads


def run_ray(todo: list, settings: Settings, *, workers: int, resources: dict, batch_size: int,
            on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
    """read (tasks) -> restore (an actor pool) -> write (tasks) on Ray Data; rows come back to this driver.

    GPU actors keep to the graph: reading, decoding and encoding run as CPU tasks beside them. CPU actors do all
    three: the read tasks ask for the actors' resources, so Ray Data fuses them into the actors, and the actors
    write, so no extra worker process starts and no garment crosses the object store."""
    import logging

    import pyarrow as pa
    import ray.data

    ctx = ray.data.DataContext.get_current()
    log = logging.getLogger("ray.data")
    saved = ctx.enable_progress_bars, ctx.print_on_execution_start, log.level
    ctx.enable_progress_bars, ctx.print_on_execution_start = False, False      # our bar, our summary
    log.setLevel(logging.ERROR)
    try:
        columns = _columns(todo)
        table = pa.table({k: (v.tolist() if v.dtype == object else v) for k, v in columns.items()})
        chunk = batch_size * max(1, min(32, len(todo) // (batch_size * workers * 4) or 1))
        ds = ray.data.from_arrow([table.slice(i, chunk) for i in range(0, len(todo), chunk)])
        gpu = "num_gpus" in resources
        io = {"num_cpus": 1} if gpu else resources
        ds = ds.map_batches(read_stage, fn_kwargs={"settings": settings}, batch_size=batch_size,
                            batch_format="numpy", **io)
        ds = ds.map_batches(RestoreStage, fn_constructor_kwargs={"settings": settings, "write": not gpu},
                            batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=workers), **resources)
        if gpu:
            ds = ds.map_batches(write_stage, fn_kwargs={"settings": settings}, batch_size=batch_size,
                                batch_format="numpy", **io)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            on_rows(manifest_rows(batch))
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start, level = saved
        log.setLevel(level)


def _start_ray(address: str | None, say: Callable[[str], None]) -> bool:
    """Join the cluster at `address`, or start Ray here; False when this process was connected already."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    context = ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    url = getattr(context, "dashboard_url", None)
    where = f"the cluster at {address}" if address else "a local Ray"
    say(f"igr-edge: running on {where}" + (f"; dashboard http://{url}" if url else ""))
    return True


# --- the job -----------------------------------------------------------------------------------------------------

def choose_engine(engine: str, address: str | None) -> str:
    import importlib.util

    if engine not in ENGINES:
        raise IgrEdgeError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    has_ray = importlib.util.find_spec("ray") is not None
    if engine == "auto":
        return "ray" if has_ray or address else "threads"
    if engine == "ray" and not has_ray:
        raise IgrEdgeError("engine ray needs Ray: pip install 'igr-edge[ray]' (or run with engine threads)")
    if engine == "threads" and address:
        raise IgrEdgeError("an address is a Ray cluster's: use engine ray (or auto) with it")
    return engine


def manifest_formats(manifest: str | Iterable[str]) -> tuple[str, ...]:
    """`auto`: JSONL, and Parquet too when pyarrow is installed; else a comma list of jsonl / parquet."""
    import importlib.util

    if manifest == "auto":
        return ("jsonl", "parquet") if importlib.util.find_spec("pyarrow") else ("jsonl",)
    names = tuple(dict.fromkeys(manifest.split(",") if isinstance(manifest, str) else manifest))
    bad = [n for n in names if n not in _catalog.MANIFEST_FORMATS]
    if bad or not names:
        raise IgrEdgeError(f"manifest must be auto or a comma list of {', '.join(_catalog.MANIFEST_FORMATS)}, "
                           f"got {manifest!r}")
    if "parquet" in names:
        _catalog.need("pyarrow", "a Parquet manifest")
    return names


def _positive(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IgrEdgeError(f"{name} must be a positive integer, got {value!r}")
    return value


def restore_catalog(input: str | os.PathLike | Iterable[str], output: str | os.PathLike, *,
                    bundle: str | os.PathLike | None = None, backend: str | None = None, variant: str | None = None,
                    compute_units: str | None = None, low_memory: bool | None = None, seed: int = 0,
                    steps: int | None = None,
                    size: int | tuple[int, int] | None = None, format: str = "png",
                    manifest: str | Iterable[str] = "auto", engine: str = "auto", address: str | None = None,
                    workers: int | None = None, threads: int | None = None,
                    batch_size: int = BATCH, column: str | None = None, key_column: str | None = None,
                    retry_failed: bool = False, max_pixels: int = MAX_PIXELS, progress: bool = True,
                    say: Callable[[str], None] | None = None) -> Summary:
    """Restore every image of `input` into `output`/garments, with a manifest row per input; resumable.

    input: a folder (recursively), a glob, a text file of paths, a Parquet table of paths or image bytes
    (`column`, `key_column`), one image, a list of paths; local or a URI (see igr_edge.catalog).
    Each input's seed is `igr_edge.catalog.seed_for(its name, seed)`. A re-run into the same `output` with the
    same options skips every input with a garment (and every unreadable one, unless `retry_failed`).
    `compute_units` (Core ML's; default IGR_EDGE_COMPUTE_UNITS here, else all) and `low_memory` (default
    IGR_EDGE_LOW_MEMORY here, else off; see Restorer) reach every worker as chosen here.
    Returns a Summary; raises IgrEdgeError for bad arguments, an unusable bundle or output folder."""
    from . import __version__
    from .bundle import Bundle
    from .images import output_size
    from .noise import check_seed
    from .progress import Progress
    from .restorer import Restorer

    started = time.perf_counter()
    say = say or (lambda line: print(line, file=sys.stderr))
    if format not in _catalog.FORMATS:
        raise IgrEdgeError(f"format must be one of {', '.join(_catalog.FORMATS)}, got {format!r}")
    if format == "webp":
        from PIL import features

        if not features.check("webp"):
            raise IgrEdgeError("this Pillow was built without WebP: use format png")
    formats = manifest_formats(manifest)
    engine = choose_engine(engine, address)
    workers, threads, batch_size = (_positive(workers, "workers"), _positive(threads, "threads"),
                                    _positive(batch_size, "batch_size"))
    check_seed(seed)
    units, _ = compute_units_of(compute_units)
    low = low_memory_of(low_memory)
    loaded = Bundle.load(bundle)
    Restorer._steps(SimpleNamespace(_bundle=loaded), steps)   # the Restorer's own check, without loading a session
    width, height = loaded.size
    output_size(size, width, height)
    if variant is not None and variant not in loaded.variants():
        raise IgrEdgeError(f"bundle {loaded.name} has no variant {variant!r} (it has {', '.join(loaded.variants())})")

    folder = _catalog.Folder(output)
    job = {"igr_edge": __version__, "bundle": loaded.name, "bundle_version": loaded.manifest.get("version"),
           "bundle_manifest_sha256": hashlib.sha256((loaded.folder / "manifest.json").read_bytes()).hexdigest(),
           "variant": variant, "seed": int(seed), "steps": steps, "format": format,
           "size": list(size) if isinstance(size, (tuple, list)) else size}
    catalog = _catalog.list_catalog(input, column=column, key_column=key_column)
    if not catalog.items:
        raise IgrEdgeError(f"{input}: no images found")
    _catalog.check_job(folder, job)
    ledger = _catalog.Ledger(folder, formats, every=min(1000, max(32, len(catalog.items) // 20)))
    previous = ledger.previous()
    recorded = {k: r["output"].removeprefix("garments/") for k, r in previous.items() if r.get("output")}
    todo_items = [i for i in catalog.items
                  if not (i.key in previous and _catalog.row_is_done(previous[i.key], retry_failed=retry_failed))]
    names = _catalog.assign_outputs((i.key for i in catalog.items), format, recorded)
    todo = [(i, _catalog.seed_for(i.key, seed), f"garments/{names[i.key]}") for i in todo_items]
    pending = {i.key for i in todo_items}
    failed_before = sum(1 for i in catalog.items if i.key not in pending and previous[i.key].get("error"))
    if catalog.duplicates and progress:
        say(f"igr-edge: {catalog.duplicates} input(s) listed more than once are restored once")

    # bundle None: each worker loads the default bundle of its own igr_edge (a path here means nothing on a cluster)
    settings = Settings(bundle=None if bundle is None else str(loaded.folder), backend=backend, variant=variant,
                        threads=threads, steps=steps,
                        size=tuple(size) if isinstance(size, list) else size, format=format, max_pixels=max_pixels,
                        output=folder.where, column=catalog.column, width=width, height=height, compute_units=units,
                        low_memory=low)
    counts = {"done": 0, "failed": 0}
    errors: list[str] = []
    startup = 0.0
    ray_started = False
    n_workers = workers or 1
    bar = None

    def on_rows(rows: list[dict[str, Any]]) -> None:
        ledger.add(rows)
        for r in rows:
            if r["error"]:
                counts["failed"] += 1
                if len(errors) < 20:
                    errors.append(f"{r['input']}: {r['error']}")
                if progress:
                    bar.write(f"igr-edge: {r['input']}: {r['error']}")
            else:
                counts["done"] += 1
        bar.update(len(rows))

    try:
        if todo and engine == "ray":
            t0 = time.perf_counter()
            ray_started = _start_ray(address, say if progress else (lambda line: None))
            startup = time.perf_counter() - t0 if ray_started else 0.0
            n_workers, resources, actor_threads = ray_resources(settings, workers, threads)
            settings = replace(settings, threads=actor_threads)
            with Progress(len(todo), desc=f"batch (ray, {n_workers} actor{'s' if n_workers != 1 else ''})",
                          enabled=progress) as bar:
                run_ray(todo, settings, workers=n_workers, resources=resources, batch_size=batch_size,
                        on_rows=on_rows)
        elif todo:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            n_workers = workers or cpus
            per = threads or max(1, cpus // n_workers)           # ORT threads per call: the cores shared out
            restorer = Restorer(loaded, backend=backend, threads=per, variant=variant, max_pixels=max_pixels,
                                compute_units=units, low_memory=low)
            with restorer, Progress(len(todo), desc=f"batch ({restorer.backend}, {n_workers} thread"
                                    f"{'s' if n_workers != 1 else ''})", enabled=progress) as bar:
                run_threads(todo, settings, workers=n_workers, batch_size=batch_size, restorer=restorer,
                            on_rows=on_rows)
    except IgrEdgeError:
        raise
    except Exception as e:
        if engine == "ray":
            raise IgrEdgeError(f"the Ray pipeline stopped: {' '.join(str(e).split())[:400]} (every row so far is in "
                               f"the manifest: run the same command again to finish)") from e
        raise
    finally:
        manifests = tuple(ledger.close())
        if ray_started:
            import ray

            ray.shutdown()
    return Summary(listed=len(catalog.items), done=counts["done"], failed=counts["failed"],
                   skipped=len(catalog.items) - len(todo), seconds=time.perf_counter() - started, engine=engine,
                   workers=n_workers, output=folder.where, manifests=manifests, duplicates=catalog.duplicates,
                   failed_before=failed_before, startup_seconds=startup, errors=tuple(errors))
