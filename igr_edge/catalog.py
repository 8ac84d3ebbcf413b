"""A catalog job's inputs and outputs: listing INPUT, each input's identity, seed and garment name, the output
folder, and the manifest (one row per input, kept as the job goes so that a re-run knows what is done).

Local paths need nothing beyond the SDK. URIs (s3://, gs://, hdfs://, and any scheme fsspec knows: memory://,
http://, ...) and Parquet tables need pyarrow (the `ray` extra brings it); `file://` URIs are local paths.

Identity: a folder's or a glob's inputs are named by their path below the folder (the glob's fixed part), a list's
(text or Parquet) by the entry as written, a table of image bytes by its key column or its row number. The seed
and the garment's name derive from that name alone, so a moved catalog, a re-run, a shard or another engine
gives each input the same seed and the same file.
"""
from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import io
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from .errors import IgrEdgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LIST_SUFFIXES = (".txt", ".lst", ".list")
TABLE_SUFFIXES = (".parquet", ".pq")
COLUMNS = ("input", "output", "seed", "backend", "variant", "milliseconds", "error")   # the manifest's
FORMATS = {"png": ".png", "webp": ".webp"}
MANIFEST_FORMATS = ("jsonl", "parquet")
SEED_BITS = 63                       # seeds fit a signed 64-bit column (Parquet, Arrow) as well as the SDK's range

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str) -> bool:
    """A filesystem URI (scheme://...), not a local path (file:// counts as local)."""
    return bool(_URI.match(text)) and not text.lower().startswith("file://")


def local(text: str) -> str:
    """`file:///x/y` -> `/x/y`; anything else unchanged."""
    if text.lower().startswith("file://"):
        return unquote(urlsplit(text).path)
    return text


def need(module: str, what: str):
    """Import an optional dependency, or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise IgrEdgeError(f"{what} needs {module.split('.')[0]}: pip install 'igr-edge[ray]' "
                           f"(or pip install {module.split('.')[0]})") from None


# --- identity ------------------------------------------------------------------------------------------------

def seed_for(key: str, seed: int = 0) -> int:
    """The seed of the input named `key` in a job run with base `seed`: 63 bits of SHA-256 over both.

    The manifest records it, so `igr-edge restore INPUT --seed S` redoes any one input byte for byte."""
    digest = hashlib.sha256(f"igr-edge-batch\0{int(seed)}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def garment_name(key: str, fmt: str = "png", *, keep_suffix: bool = False) -> str:
    """The garment's path inside OUTPUT/garments for the input named `key`: its path with the image suffix
    replaced (`shirts/a.jpg` -> `shirts/a.png`); a URI's scheme and a leading `/` dropped, `..` made `__`."""
    text = key.split("://", 1)[1] if _URI.match(key) else key
    parts = [("__" if p == ".." else p) for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", ".", "")]
    if not parts:
        parts = ["_"]
    name = parts[-1]
    stem, dot, suffix = name.rpartition(".")
    if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES and stem and not keep_suffix:
        name = stem
    parts[-1] = name + FORMATS[fmt]
    return "/".join(parts)


def assign_outputs(keys: Iterable[str], fmt: str, recorded: dict[str, str]) -> dict[str, str]:
    """Each key's garment name. A key the manifest already maps keeps its file; keys whose names collide
    (`a.jpg` and `a.bmp`) keep their suffix (`a.jpg.png`, `a.bmp.png`), and a name still taken gets `-2`, ..."""
    keys = list(keys)
    plain = {k: garment_name(k, fmt) for k in keys if k not in recorded}
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    taken = set(recorded.values())
    result = {}
    for k in keys:
        if k in recorded:
            result[k] = recorded[k]
            continue
        name = plain[k] if counts[plain[k]] == 1 and plain[k] not in taken else garment_name(k, fmt, keep_suffix=True)
        base, n = name, 1
        while name in taken:
            n += 1
            stem, suffix = base.rsplit(".", 1)
            name = f"{stem}-{n}.{suffix}"
        taken.add(name)
        result[k] = name
    return result


# --- file systems ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _dir_filesystem(dir_uri: str):
    """(pyarrow FileSystem, path) of a folder URI: pyarrow's own file systems first, then fsspec's (wrapped)."""
    pafs = need("pyarrow.fs", f"reading {dir_uri}")
    try:
        return pafs.FileSystem.from_uri(dir_uri)
    except Exception as arrow_error:                  # noqa: BLE001 - ArrowInvalid / NotImplemented: not a pyarrow scheme
        try:
            import fsspec
        except ImportError:
            raise IgrEdgeError(f"cannot open {dir_uri}: {arrow_error} (pip install fsspec for more schemes)") from None
        try:
            fs, path = fsspec.core.url_to_fs(dir_uri)
        except (ImportError, ValueError) as e:
            raise IgrEdgeError(f"cannot open {dir_uri}: {e}") from None
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def resolve(uri: str):
    """(pyarrow FileSystem, path) of a file URI; file systems are cached per folder."""
    head, _, name = uri.rstrip("/").rpartition("/")
    if head.endswith(":/") or not head:               # no folder part: the URI names a bucket or host itself
        return _dir_filesystem(uri)
    fs, folder = _dir_filesystem(head)
    return fs, f"{folder.rstrip('/')}/{name}" if folder else name


def read_bytes(source: str) -> bytes:
    """A whole file, local or remote; a missing or unreadable one raises OSError (FileNotFoundError when absent)."""
    if not is_uri(source):
        with open(local(source), "rb") as f:
            return f.read()
    fs, path = resolve(source)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise OSError(f"cannot read {source}: {e}") from None


def join(base: str, entry: str) -> str:
    """`entry` (a path or URI) relative to the folder `base` (a path or URI)."""
    if is_uri(entry) or entry.lower().startswith("file://") or os.path.isabs(entry):
        return local(entry)
    if is_uri(base):
        return f"{base.rstrip('/')}/{entry}"
    return os.path.join(local(base), entry)


def parent(source: str) -> str:
    return source.rstrip("/").rpartition("/")[0] if is_uri(source) else os.path.dirname(os.path.abspath(local(source)))


class Folder:
    """OUTPUT: a local folder or a folder URI. Every write is whole or absent: a temporary file beside the
    target, then one rename (object stores: one upload, which appears only once complete). Picklable."""

    def __init__(self, where: str | os.PathLike) -> None:
        self.where = os.fspath(where)
        self.remote = is_uri(self.where)
        if not self.remote:
            self.where = os.path.abspath(local(self.where))

    def __reduce__(self):
        return (Folder, (self.where,))

    def __str__(self) -> str:
        return self.where

    def _fs(self):
        return _dir_filesystem(self.where.rstrip("/"))

    def path(self, rel: str) -> str:
        return f"{self.where.rstrip('/')}/{rel}" if self.remote else os.path.join(self.where, *rel.split("/"))

    def write(self, rel: str, data: bytes) -> None:
        if not self.remote:
            from .files import atomic_write_bytes

            atomic_write_bytes(data, self.path(rel))
            return
        fs, root = self._fs()
        target = f"{root.rstrip('/')}/{rel}"
        fs.create_dir(target.rpartition("/")[0], recursive=True)
        if fs.type_name in ("s3", "gcs"):            # an object appears whole when its upload completes
            with fs.open_output_stream(target) as f:
                f.write(data)
            return
        tmp = f"{target.rpartition('/')[0]}/.{target.rpartition('/')[2]}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, target)

    def read(self, rel: str) -> bytes | None:
        try:
            return read_bytes(self.path(rel))
        except FileNotFoundError:
            return None

    def exists(self, rel: str = "") -> bool:
        if not self.remote:
            return os.path.exists(self.path(rel) if rel else self.where)
        pafs = need("pyarrow.fs", f"writing to {self.where}")
        fs, root = self._fs()
        return fs.get_file_info(f"{root.rstrip('/')}/{rel}" if rel else root).type != pafs.FileType.NotFound

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly inside `rel` (none when it does not exist)."""
        if not self.remote:
            folder = self.path(rel) if rel else self.where
            return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        pafs = need("pyarrow.fs", f"writing to {self.where}")
        fs, root = self._fs()
        sel = pafs.FileSelector(f"{root.rstrip('/')}/{rel}" if rel else root, allow_not_found=True)
        return sorted(PurePosixPath(i.path).name for i in fs.get_file_info(sel))

    def delete(self, rel: str) -> None:
        if not self.remote:
            try:
                os.unlink(self.path(rel))
            except FileNotFoundError:
                pass
            return
        fs, root = self._fs()
        try:
            fs.delete_file(f"{root.rstrip('/')}/{rel}")
        except FileNotFoundError:
            pass

    def prune(self, rel: str) -> None:
        """Remove the folder `rel` if it is empty (local folders; object stores have no empty folders)."""
        if not self.remote:
            try:
                os.rmdir(self.path(rel))
            except OSError:
                pass

    def mkdir(self) -> None:
        if self.remote:
            fs, root = self._fs()
            fs.create_dir(root, recursive=True)
        else:
            os.makedirs(self.where, exist_ok=True)


# --- listing INPUT ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One input: its identity (`key`), where its bytes are, and for a table of images the row holding them."""
    key: str
    source: str              # a local path or URI: the image file, or the Parquet table holding the image
    group: int = -1          # the table's row group (-1: `source` is the image file itself)
    row: int = -1            # the row inside that group


@dataclass
class Catalog:
    """INPUT listed: its items (sorted by key, each key once), what it was, and the table's image column."""
    items: list[Item]
    kind: str                                  # folder, glob, list, table of paths, table of images, file
    column: str | None = None                  # a table of images: its bytes column (or struct with `bytes`)
    duplicates: int = 0                        # entries whose key was listed before (restored once)
    notes: list[str] = field(default_factory=list)


def list_catalog(source: str | os.PathLike | Iterable[str], *, column: str | None = None,
                 key_column: str | None = None) -> Catalog:
    """INPUT as items: a folder (its images, recursively; names starting with `.` skipped), a glob (`**`
    recurses), a text file of paths (one a line, `#` comments; relative ones are relative to the list's
    folder), a Parquet table of paths or of image bytes, one image file, or a Python list of paths."""
    if not isinstance(source, (str, os.PathLike)):
        entries = [os.fspath(e) for e in source]
        return _catalog([Item(e, local(e)) for e in entries], "list")
    text = os.fspath(source)
    if is_uri(text):
        return _list_remote(text, column=column, key_column=key_column)
    path = local(text)
    if os.path.isdir(path):
        items = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in files:
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES:
                    full = os.path.join(folder, f)
                    items.append(Item(Path(os.path.relpath(full, path)).as_posix(), full))
        return _catalog(items, "folder")
    if not os.path.exists(path) and glob.has_magic(path):
        root = _fixed_prefix(path)
        items = [Item(Path(os.path.relpath(p, root)).as_posix(), p)
                 for p in glob.glob(path, recursive=True) if os.path.isfile(p)]
        if not items:
            raise IgrEdgeError(f"{text}: no such file, folder or match")
        return _catalog(items, "glob")
    if not os.path.isfile(path):
        raise IgrEdgeError(f"{text}: no such file, folder or match")
    return _list_file(path, column=column, key_column=key_column)


def _catalog(items: list[Item], kind: str, column: str | None = None) -> Catalog:
    seen: dict[str, Item] = {}
    for item in items:
        seen.setdefault(item.key, item)
    return Catalog(sorted(seen.values(), key=lambda i: i.key), kind, column, duplicates=len(items) - len(seen))


def _fixed_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard (`photos/2024/*/*.jpg` -> `photos/2024`)."""
    parts = pattern.replace("\\", "/").split("/")
    fixed = []
    for p in parts[:-1]:
        if glob.has_magic(p):
            break
        fixed.append(p)
    return "/".join(fixed) or "."


def _list_file(source: str, *, column: str | None, key_column: str | None) -> Catalog:
    lower = source.lower()
    if lower.endswith(TABLE_SUFFIXES):
        return _list_table(source, column=column, key_column=key_column)
    if lower.endswith(IMAGE_SUFFIXES):
        return _catalog([Item(source.rstrip("/").rpartition("/")[2] if is_uri(source) else os.path.basename(source),
                              source)], "file")
    try:
        text = read_bytes(source).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IgrEdgeError(f"{source} is neither a folder, an image, a Parquet table nor a UTF-8 list of paths "
                           f"(a list has one path or URI a line)") from None
    except OSError as e:
        raise IgrEdgeError(f"cannot read {source}: {e}") from None
    base = parent(source)
    entries = [line.strip() for line in text.splitlines()]
    return _catalog([Item(e, join(base, e)) for e in entries if e and not e.startswith("#")], "list")


def _list_remote(uri: str, *, column: str | None, key_column: str | None) -> Catalog:
    pafs = need("pyarrow.fs", f"reading {uri}")
    if glob.has_magic(uri.split("://", 1)[1]):
        root = _fixed_prefix(uri.split("://", 1)[1])
        scheme = uri.split("://", 1)[0]
        root_uri = f"{scheme}://{root}"
        pattern = uri.split("://", 1)[1][len(root):].lstrip("/").split("/")
        items = [Item(rel, f"{root_uri}/{rel}") for rel in _walk(root_uri, pafs) if _glob_match(pattern, rel.split("/"))]
        return _catalog(items, "glob")
    fs, path = _dir_filesystem(uri.rstrip("/"))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        items = [Item(rel, f"{uri.rstrip('/')}/{rel}") for rel in _walk(uri.rstrip("/"), pafs)
                 if os.path.splitext(rel)[1].lower() in IMAGE_SUFFIXES]
        return _catalog(items, "folder")
    if info.type == pafs.FileType.NotFound:
        raise IgrEdgeError(f"{uri}: no such file, folder or match")
    return _list_file(uri, column=column, key_column=key_column)


def _walk(root_uri: str, pafs) -> list[str]:
    """Files below a remote folder, relative to it (names starting with `.` skipped)."""
    fs, root = _dir_filesystem(root_uri)
    root = root.rstrip("/")
    out = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        rel = info.path[len(root):].lstrip("/")
        if info.type == pafs.FileType.File and not any(p.startswith(".") for p in rel.split("/")):
            out.append(rel)
    return out


def _glob_match(pattern: list[str], parts: list[str]) -> bool:
    """Glob semantics over path segments: `*` stays within a segment, `**` spans any number of them."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _glob_match(pattern[1:], parts[1:])


IMAGE_COLUMNS = ("image", "bytes", "content", "data", "path", "uri", "url", "file", "filename")
KEY_COLUMNS = ("id", "key")


def open_table(source: str):
    """A pyarrow ParquetFile over a local path or URI."""
    pq = need("pyarrow.parquet", f"reading the table {source}")
    if is_uri(source):
        fs, path = resolve(source)
        return pq.ParquetFile(fs.open_input_file(path))
    return pq.ParquetFile(local(source))


def table_column_kind(schema, name: str) -> str:
    """`bytes` (binary, or a struct with a binary `bytes` field: the Hugging Face datasets layout), `paths`
    (strings), else an error naming the column's type."""
    import pyarrow as pa

    t = schema.field(name).type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0:
        return "bytes"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "paths"
    raise IgrEdgeError(f"column {name!r} holds {t}; an image column holds paths (strings) or encoded images "
                       f"(binary, or a struct with a `bytes` field)")


def _list_table(source: str, *, column: str | None, key_column: str | None) -> Catalog:
    try:
        table = open_table(source)
        schema = table.schema_arrow
    except IgrEdgeError:
        raise
    except Exception as e:                              # noqa: BLE001 - ArrowInvalid and kin: not a Parquet file
        raise IgrEdgeError(f"cannot read the Parquet table {source}: {e}") from None
    names = schema.names
    if column is None:
        column = next((n for n in IMAGE_COLUMNS if n in names), None)
        if column is None:
            raise IgrEdgeError(f"{source} has none of the columns {', '.join(IMAGE_COLUMNS)} (it has "
                               f"{', '.join(names)}): name the image column with --column")
    elif column not in names:
        raise IgrEdgeError(f"{source} has no column {column!r} (it has {', '.join(names)})")
    if key_column is None:
        key_column = next((n for n in KEY_COLUMNS if n in names and n != column), None)
    elif key_column not in names:
        raise IgrEdgeError(f"{source} has no column {key_column!r} (it has {', '.join(names)})")
    kind = table_column_kind(schema, column)
    items: list[Item] = []
    start = 0
    base = parent(source)
    for g in range(table.num_row_groups):
        wanted = [c for c in dict.fromkeys([key_column, column if kind == "paths" else None]) if c]
        part = table.read_row_group(g, columns=wanted) if wanted else None
        n = table.metadata.row_group(g).num_rows
        keys = [str(k) for k in part.column(key_column).to_pylist()] if key_column else None
        if kind == "paths":
            paths = part.column(column).to_pylist()
            for i, p in enumerate(paths):
                if p is None:
                    continue
                items.append(Item(keys[i] if keys else p, join(base, p)))
        else:
            for i in range(n):
                items.append(Item(keys[i] if keys else f"{start + i:08d}", source, g, i))
        start += n
    if kind == "paths":
        return _catalog(items, "table of paths")
    return _catalog(items, "table of images", column)


def read_table_rows(source: str, group: int, rows: list[int], column: str) -> list[bytes | None]:
    """The encoded images of some rows of one row group."""
    values = open_table(source).read_row_group(group, columns=[column]).column(column)
    out = []
    for r in rows:
        v = values[r].as_py()
        if isinstance(v, dict):
            v = v.get("bytes")
        out.append(v)
    return out


# --- the manifest ----------------------------------------------------------------------------------------------

PARTS = "manifest.parts"
JOB = "job.json"


def row_is_done(row: dict[str, Any], *, retry_failed: bool) -> bool:
    """A row that a re-run skips: a garment, or (without retry_failed) an input that is itself unreadable."""
    error = row.get("error")
    if not error:
        return bool(row.get("output"))
    return not retry_failed and str(error).startswith("InvalidImageError")


class Ledger:
    """The manifest as the job goes: rows are appended to OUTPUT/manifest.parts/<run>-<n>.jsonl (each part
    written whole, every `every` rows or `seconds`), and `close` folds every part into OUTPUT/manifest.jsonl
    and/or .parquet (one row per input, the latest wins, sorted) and removes the parts it folded in.
    A job killed at any point leaves its garments and the parts flushed so far; the re-run reads both."""

    def __init__(self, folder: Folder, formats: tuple[str, ...], *, every: int = 500, seconds: float = 10.0) -> None:
        self.folder, self.formats, self.every, self.seconds = folder, formats, every, seconds
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.buffer: list[dict[str, Any]] = []
        self.seq = 0
        self.last = time.monotonic()
        self.rows: dict[str, dict[str, Any]] = {}

    def previous(self) -> dict[str, dict[str, Any]]:
        """Every row earlier runs left: the folded manifest, then the parts of runs that did not finish."""
        rows: dict[str, dict[str, Any]] = {}
        data = self.folder.read("manifest.jsonl")
        if data is not None:
            rows.update(_jsonl_rows(data))
        elif self.folder.exists("manifest.parquet"):
            pq = need("pyarrow.parquet", "reading manifest.parquet")
            table = pq.read_table(io.BytesIO(self.folder.read("manifest.parquet")))
            rows.update((r["input"], r) for r in table.to_pylist())
        for name in self.folder.listdir(PARTS):
            if name.endswith(".jsonl"):
                rows.update(_jsonl_rows(self.folder.read(f"{PARTS}/{name}") or b""))
        self.rows = dict(rows)
        return rows

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.buffer += rows
        if len(self.buffer) >= self.every or time.monotonic() - self.last > self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.folder.write(f"{PARTS}/{self.run}-{self.seq:06d}.jsonl", _jsonl(self.buffer))
            self.seq += 1
            for r in self.buffer:
                self.rows[r["input"]] = r
            self.buffer = []
        self.last = time.monotonic()

    def close(self) -> list[str]:
        """Fold everything into the manifest files; return their paths."""
        self.flush()
        folded = [n for n in self.folder.listdir(PARTS) if n.endswith(".jsonl")]
        rows = self.previous()                          # the parts of runs running beside this one too
        ordered = [rows[k] for k in sorted(rows)]
        written = []
        if "jsonl" in self.formats:
            self.folder.write("manifest.jsonl", _jsonl(ordered))
            written.append(self.folder.path("manifest.jsonl"))
        if "parquet" in self.formats:
            self.folder.write("manifest.parquet", parquet_bytes(ordered))
            written.append(self.folder.path("manifest.parquet"))
        for name in folded:
            self.folder.delete(f"{PARTS}/{name}")
        self.folder.prune(PARTS)
        return written


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps({c: r.get(c) for c in COLUMNS}, ensure_ascii=False) + "\n" for r in rows).encode()


def _jsonl_rows(data: bytes) -> Iterable[tuple[str, dict[str, Any]]]:
    for line in data.decode().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:                # a torn line cannot happen (parts are written whole)
                continue
            yield row["input"], row


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    pa = need("pyarrow", "a Parquet manifest")
    pq = need("pyarrow.parquet", "a Parquet manifest")
    schema = pa.schema([("input", pa.string()), ("output", pa.string()), ("seed", pa.int64()),
                        ("backend", pa.string()), ("variant", pa.string()), ("milliseconds", pa.float64()),
                        ("error", pa.string())])
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def check_job(folder: Folder, job: dict[str, Any]) -> None:
    """OUTPUT is new or empty (the job is recorded in job.json), or holds a job with the same options."""
    data = folder.read(JOB)
    if data is None:
        present = [n for n in folder.listdir() if not n.startswith(".")]
        if present:
            raise IgrEdgeError(f"{folder} holds {', '.join(present[:3])}{' ...' if len(present) > 3 else ''} but no "
                               f"{JOB}: give batch a new or empty output folder")
        folder.mkdir()
        folder.write(JOB, (json.dumps(job, indent=1, sort_keys=True) + "\n").encode())
        return
    try:
        before = json.loads(data)
    except json.JSONDecodeError:
        raise IgrEdgeError(f"{folder.path(JOB)} is not JSON: give batch a new output folder") from None
    changed = [f"{k} {before.get(k)!r} (now {v!r})" for k, v in job.items() if k != "igr_edge" and before.get(k) != v]
    if changed:
        raise IgrEdgeError(f"{folder} holds a job run with {'; '.join(changed)}: run with the same options to "
                           f"finish it, or give another output folder")
