"""Writing outputs whole or not at all: a temporary file beside the target, then one rename (or link)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write `data` to `path` (replacing it) through a temporary file and one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_image(image: Image.Image, path: str | os.PathLike, *, overwrite: bool = False,
                       format: str = "PNG") -> Path:
    """Save `image` to `path` so that readers see the old file or the whole new one, never a part.

    Without `overwrite` an existing file is never replaced (FileExistsError); where the file system has hard
    links this holds even against a writer racing us (elsewhere the check and the rename are two steps)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=format)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)                   # fails if `path` exists: no clobbering
            except FileExistsError:
                raise FileExistsError(f"{path} exists (pass --overwrite to replace it)") from None
            except OSError:                          # no hard links here (some network/FAT volumes)
                if path.exists():
                    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
