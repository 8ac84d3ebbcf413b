"""`make test-wheel`'s checks, run by the clean venv's Python from .cache/wheel-check/ (not the checkout):

    venv/bin/python scripts/check-wheel.py DIST RESTORED.png

the sdist holds the package data the wheel needs (the default bundle, whole), igr_edge is imported from the installed
wheel with no torch in the venv, and the restored sample is a real 192×256 garment image."""
from __future__ import annotations

import json
import sys
import tarfile
from importlib import metadata, util
from pathlib import Path

from PIL import Image, ImageStat

import igr_edge


def fail(why: str) -> None:
    sys.exit(f"check-wheel: {why}")


def main(dist: Path, restored: Path) -> None:
    sdists, wheels = sorted(dist.glob("igr_edge-*.tar.gz")), sorted(dist.glob("igr_edge-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        fail(f"expected one sdist and one wheel in {dist}, found {[p.name for p in sdists + wheels]}")
    with tarfile.open(sdists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        manifest = json.load(tar.extractfile(next(m for m in tar.getmembers()
                                                  if m.name.endswith("/igr_edge/bundles/default/manifest.json"))))
    wanted = {"pyproject.toml", "README.md", "igr_edge/probe.onnx", "igr_edge/schemas/manifest-v1.schema.json"}
    wanted |= {f"igr_edge/bundles/default/{f['path']}" for f in manifest["files"]}
    if wanted - names:
        fail(f"the sdist lacks {sorted(wanted - names)}")
    if util.find_spec("torch") is not None:
        fail("torch is installed in the clean venv: the wheel must not need it")
    where = Path(igr_edge.__file__).resolve()
    if not where.is_relative_to(Path(sys.prefix).resolve()):
        fail(f"igr_edge was imported from {where}, not from the venv's installed wheel")
    with Image.open(restored) as image:
        image.load()
        if (image.size, image.mode) != ((192, 256), "RGB"):
            fail(f"{restored} is {image.size[0]}×{image.size[1]} {image.mode}, expected 192×256 RGB")
        spread = max(ImageStat.Stat(image).stddev)
    if spread < 5:
        fail(f"{restored} is nearly one flat colour (channel std {spread:.1f})")
    versions = ", ".join(f"{d} {metadata.version(d)}" for d in ("numpy", "pillow", "onnxruntime"))
    print(f"wheel check: {sdists[0].name} and {wheels[0].name} built; the wheel installed without torch "
          f"({versions}) restored {restored.name}, 192×256")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
