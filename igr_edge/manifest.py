"""Bundle manifests (schema v1): validation against the published JSON Schema, path confinement and SHA-256.

The schema file ships with the package (`igr_edge/schemas/manifest-v1.schema.json`); the converters write
against it and the runtime reads with it. The validator below covers the JSON Schema keywords that file
uses (type, required, properties, additionalProperties, items, enum, const, pattern, minimum, $ref), so
the runtime needs no extra dependency. Nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BundleError

SCHEMA_MAJOR = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 2**20
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


@lru_cache(maxsize=4)
def schema(name: str = "manifest-v1") -> dict[str, Any]:
    """A JSON Schema shipped in igr_edge/schemas (manifest-v1, bench-v1)."""
    return json.loads((Path(__file__).parent / "schemas" / f"{name}.schema.json").read_text())


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


@lru_cache(maxsize=64)
def _pattern(pattern: str) -> re.Pattern:
    """A JSON Schema pattern in Python: its `$` is the end of the text (Python's also matches before a last \\n)."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def validation_errors(value: Any, node: dict[str, Any] | None = None, where: str = "manifest", *,
                      root: dict[str, Any] | None = None) -> list[str]:
    """Every way `value` breaks the schema `root` (default: the manifest's) (empty when it conforms)."""
    root = schema() if root is None else root
    node = root if node is None else node
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    errors: list[str] = []
    if "type" in node:
        kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{where}: {value!r} is not one of {node['enum']}")
    if "const" in node and value != node["const"]:
        errors.append(f"{where}: must be {node['const']!r}")
    if "pattern" in node and isinstance(value, str) and not _pattern(node["pattern"]).search(value):
        errors.append(f"{where}: {value!r} does not match {node['pattern']}")
    if "minimum" in node and _is(value, "number") and value < node["minimum"]:
        errors.append(f"{where}: {value} is below {node['minimum']}")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key!r}")
        props = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += validation_errors(item, props[key], f"{where}.{key}", root=root)
            elif extra is False:
                errors.append(f"{where}: unknown field {key!r}")
            elif isinstance(extra, dict):
                errors += validation_errors(item, extra, f"{where}.{key}", root=root)
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            errors += validation_errors(item, node["items"], f"{where}[{i}]", root=root)
    return errors


def consistency_errors(manifest: dict[str, Any]) -> list[str]:
    """What the schema cannot say: fields that must agree with one another."""
    errors = []
    steps, sched = manifest["steps"], manifest["scheduler"]
    if manifest["kind"] == "single-call" and len(sched["timesteps"]) != steps:
        errors.append(f"scheduler.timesteps has {len(sched['timesteps'])} entries for {steps} steps")
    if "coefficients" in sched and (len(sched["coefficients"]) != len(sched["timesteps"]) + 1
                                    or any(len(c) != 2 for c in sched["coefficients"])):
        errors.append("scheduler.coefficients must hold one (sqrt a, sqrt 1-a) pair per timestep, then the end's")
    if len(manifest["latent"]) != 3 or manifest["noise"]["shape"] != manifest["latent"]:
        errors.append("latent must be (channels, height, width) and equal noise.shape")
    if "default_variant" in manifest and manifest["default_variant"] not in manifest["variants"]:
        errors.append(f"default_variant {manifest['default_variant']!r} is not one of the variants")
    for variant, record in manifest["variants"].items():             # schema 1.3: the I/O each variant declares
        for graph, io in record.get("io", {}).items():
            spec = manifest["graphs"].get(graph)
            if spec is None or graph not in record["files"]:
                errors.append(f"variants.{variant}.io names graph {graph}, which the variant does not run")
                continue
            names = [t["name"] for t in io["inputs"]]
            if sorted(names) != sorted(t["name"] for t in spec["inputs"]):
                errors.append(f"variants.{variant}.io.{graph} inputs {names} differ from graphs.{graph}'s")
            extra = {t["name"] for t in io["outputs"]} - {t["name"] for t in spec["outputs"]}
            if extra or not io["outputs"]:
                errors.append(f"variants.{variant}.io.{graph} outputs {sorted(extra) or 'none'} are not graphs.{graph}'s")
            batches = {t["shape"][0] for t in io["inputs"] + io["outputs"] if t["shape"]}
            if len(batches) > 1 or batches - {"batch", 1}:
                errors.append(f"variants.{variant}.io.{graph}: the batch must be 'batch' or 1 in every tensor, "
                              f"got {sorted(map(str, batches))}")
    return errors


def variant_batch(manifest: dict[str, Any], variant: str) -> int | None:
    """The batch a variant's graphs take: 1 where its `io` fixes it (mobile and Core ML variants), None (any) where
    it is variable or, before schema 1.3, undeclared."""
    fixed = {t["shape"][0] for io in manifest["variants"][variant].get("io", {}).values()
             for t in io["inputs"] if t["shape"] and isinstance(t["shape"][0], int)}
    return min(fixed) if fixed else None


def variant_files(manifest: dict[str, Any], variant: str) -> list[dict[str, Any]]:
    """The `files` entries a variant runs: each file it names, or every file under a folder it names (.mlpackage)."""
    rels = manifest["variants"][variant]["files"].values()
    return [f for f in manifest["files"] if any(f["path"] == rel or f["path"].startswith(rel + "/") for rel in rels)]


def variant_bytes(manifest: dict[str, Any], variant: str) -> int:
    return sum(f["size"] for f in variant_files(manifest, variant))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def confined(folder: Path, relative: str) -> Path:
    """`folder / relative`, refused if it leaves the folder (absolute paths, '..', links out)."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        raise BundleError(f"bundle path {relative!r} is not a relative path inside the bundle")
    root = folder.resolve()
    path = (folder / relative).resolve()
    if path != root and root not in path.parents:
        raise BundleError(f"bundle path {relative!r} leaves the bundle folder")
    return path


def read_manifest(folder: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Load and check FOLDER/manifest.json: known major schema, conforming fields, every file inside the
    folder and (with `verify`) matching its size and SHA-256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a bundle: no {MANIFEST}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} has {path.stat().st_size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BundleError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("schema"), str):
        raise BundleError(f"{path} has no schema version")
    major = manifest["schema"].split(".", 1)[0]
    if major != str(SCHEMA_MAJOR):
        raise BundleError(f"{path} has schema {manifest['schema']}; this igr_edge reads schema {SCHEMA_MAJOR}.x "
                          f"(upgrade igr-edge, or convert the model again)")
    try:
        errors = validation_errors(manifest) or consistency_errors(manifest)
    except RecursionError:
        errors = ["nested too deeply"]
    if errors:
        raise BundleError(f"{path} does not conform to schema v1: " + "; ".join(errors[:5]))
    listed = {f["path"] for f in manifest["files"]}
    for variant, spec in manifest["variants"].items():
        for rel in spec["files"].values():       # a file, or a folder (an .mlpackage) whose files are listed
            confined(folder, rel)
            if rel not in listed and not any(p.startswith(rel.rstrip("/") + "/") for p in listed):
                raise BundleError(f"{path}: variant {variant} names {rel}, which the file list lacks")
    for entry in manifest["files"]:
        target = confined(folder, entry["path"])
        if not target.is_file():
            raise BundleError(f"{folder}: {entry['path']} is missing")
        if verify:
            if target.stat().st_size != entry["size"]:
                raise BundleError(f"{folder}: {entry['path']} has {target.stat().st_size} bytes, the manifest says "
                                  f"{entry['size']} (tampered or truncated)")
            if sha256_file(target) != entry["sha256"]:
                raise BundleError(f"{folder}: {entry['path']} fails its SHA-256 check (tampered or corrupted)")
    return manifest
