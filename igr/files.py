"""Writing files and folders atomically: build beside the destination, then rename into place."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_folder(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces `dest`, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{time.time_ns()}.tmp"
    tmp.mkdir()   # a plain mkdir (not mkdtemp's 0700): the folder gets the user's usual permissions
    try:
        yield tmp
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(new: Path, dest: Path) -> None:
    """Move `new` to `dest`; an earlier `dest` is moved aside first and removed only after the swap."""
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.replace(dest, old / dest.name)
        os.replace(new, dest)
        shutil.rmtree(old)
    else:
        os.replace(new, dest)


@contextmanager
def atomic_file(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path to write (ending in `suffix`, for writers that go by it: np.savez's ".npz",
    matplotlib's ".png"); on success it replaces `dest` in one rename, on error it is removed. Readers see the old
    file or the whole new one, never a part."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{time.time_ns()}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
