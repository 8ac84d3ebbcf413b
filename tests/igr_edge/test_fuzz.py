"""Fuzzing the whole SDK path with hypothesis: any input, valid or broken, through Restorer.restore and through
`igr-edge restore`, ends as a correct garment or an IgrEdgeError (never another exception), and the CLI leaves
each output file whole or absent (never a partial file). FAST in `make test`; SLOW (1,000 cases) with -m slow."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from PIL import Image

from igr_edge import IgrEdgeError, Restorer
from igr_edge.cli import main
from strategies import FAST, SLOW, encode, image_inputs  # tests/igr_edge is on sys.path

_RESTORERS: dict[Path, Restorer] = {}


def restorer(bundle: Path) -> Restorer:
    if bundle not in _RESTORERS:
        _RESTORERS[bundle] = Restorer(bundle, threads=1)
    return _RESTORERS[bundle]


def _restore_claim(r: Restorer, source) -> None:
    try:
        out = r.restore(source, seed=1)
    except IgrEdgeError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == r.bundle.size


@FAST
@given(source=image_inputs())
def test_any_input_restores_or_raises_an_igr_edge_error(tiny_student, source):
    _restore_claim(restorer(tiny_student), source)


@pytest.mark.slow
@SLOW
@given(source=image_inputs())
def test_any_input_restores_or_raises_an_igr_edge_error_thoroughly(tiny_student, source):
    _restore_claim(restorer(tiny_student), source)


def _cli_claim(bundle: Path, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in" / "photo.png", Path(tmp) / "out"
        src.parent.mkdir()
        src.write_bytes(data)
        status = main(["restore", str(src), "-o", str(out), "--bundle", str(bundle), "-q"])
        written = sorted(p.name for p in out.iterdir())
        if status == 0:
            assert written == ["photo.png"]
            with Image.open(out / "photo.png") as img:
                img.load()
                assert img.size == (48, 64)
        else:
            assert status == 1 and written == []                           # nothing, not a part


def _bytes_of(source) -> bytes:
    """Whatever the strategy drew, as the bytes of a file the CLI would read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        try:
            return Path(source).read_bytes()
        except (OSError, ValueError):
            return b""
    if hasattr(source, "read"):                        # binary, unseekable, or a text-mode file object
        try:
            data = source.read()
        except (OSError, ValueError):                  # UnicodeDecodeError is a ValueError
            return b""
        return data if isinstance(data, bytes) else b""
    if isinstance(source, Image.Image):               # re-encoded; a broken lazy image stays broken bytes
        for fmt in ("PNG", "TIFF"):
            try:
                return encode(source, fmt)
            except Exception:                           # noqa: BLE001 - a mode this format cannot hold, or broken
                pass
        return b"\x89PNG\r\n\x1a\n broken"
    return np.asarray(source).tobytes()            # an array's raw bytes: not an image file


@FAST
@given(source=image_inputs())
def test_the_cli_writes_a_whole_file_or_none(tiny_student, source):
    _cli_claim(tiny_student, _bytes_of(source))


@pytest.mark.slow
@SLOW
@given(source=image_inputs())
def test_the_cli_writes_a_whole_file_or_none_thoroughly(tiny_student, source):
    _cli_claim(tiny_student, _bytes_of(source))
