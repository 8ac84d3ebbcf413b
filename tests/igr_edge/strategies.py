"""Hypothesis strategies for what users pass as an image: every kind `load_image` takes, valid and broken.

`image_inputs()` draws one input in one container: an encoded file (PNG, JPEG, WEBP, GIF, TIFF, BMP; any
mode the format stores; sometimes with an EXIF orientation or several frames) given as a path, bytes,
bytearray, memoryview, a file object or a lazily opened PIL image; an in-memory PIL image of any mode; or
a numpy array of each dtype and shape `load_image` documents, contiguous or not. Broken inputs: random
bytes (some behind a real format's magic), truncated and corrupted encodings, headers that declare a
decompression bomb with no pixel data behind them, arrays of the wrong dtype or shape or with NaN, inf or
out-of-range floats, missing paths, directories, text-mode files and objects that are no image at all.

Images are 1..600 px a side but blocky (a few random cells scaled up), so encoding stays fast; each case
`note`s what it is, so a failing example reads "path to TIFF I;16 31×7" rather than a wall of bytes.
`FAST` (40 cases) is for the normal suite, `SLOW` (1000) for tests marked slow.
"""
from __future__ import annotations

import atexit
import io
import itertools
import shutil
import struct
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from PIL import Image

_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=_RELAXED)
SLOW = settings(max_examples=1000, deadline=None, suppress_health_check=_RELAXED)

def _reads_back(mode: str, fmt: str) -> bool:
    """Whether the installed Pillow reads back what it writes: the lowest Pillow test-compat installs (10.1) writes
    YCbCr TIFFs it then calls truncated, a Pillow bug, not an input load_image should read."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (2, 2)).save(buf, fmt)
    try:
        Image.open(io.BytesIO(buf.getvalue())).load()
    except OSError:
        return False
    return True


# the modes each format writes and reads back (Pillow 13, all of them); I and F are TIFF-only, PA too
FORMAT_MODES: dict[str, tuple[str, ...]] = {
    "PNG": ("1", "L", "LA", "P", "P+transparency", "RGB", "RGB+transparency", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("P", "L", "P+transparency"),
    "TIFF": ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I", "F", "LAB")
    + (("YCbCr",) if _reads_back("YCbCr", "TIFF") else ()),
    "BMP": ("1", "L", "P", "RGB"),
}
EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
MULTI_FRAME_FORMATS = ("GIF", "TIFF")
PIL_MODES = ("1", "L", "LA", "La", "P", "P+transparency", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
             "YCbCr", "LAB", "HSV", "I;16", "I;16B", "I;16L", "I", "F")
ARRAY_DTYPES = ("uint8", "bool", "uint16", "float16", "float32", "float64")
ARRAY_CHANNELS = (None, 1, 3, 4)   # None: (H, W)
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"\x00\x00\x01\x00")

sides = st.one_of(st.integers(1, 48), st.integers(1, 600))

_files = itertools.count()
_default_directory: Path | None = None


def _directory(directory: Path | None) -> Path:
    """Where path inputs are written: the caller's folder, else one temporary folder removed at exit."""
    global _default_directory
    if directory is not None:
        return Path(directory)
    if _default_directory is None:
        _default_directory = Path(tempfile.mkdtemp(prefix="igr-edge-images-"))
        atexit.register(shutil.rmtree, _default_directory, ignore_errors=True)
    return _default_directory


def _write(directory: Path | None, data: bytes, suffix: str) -> Path:
    path = _directory(directory) / f"case-{next(_files)}{suffix}"
    path.write_bytes(data)
    return path


class Unseekable:
    """A binary stream with read() and nothing else (a pipe, a socket, an HTTP body)."""

    def __init__(self, data: bytes):
        self._data = data

    def read(self, size: int = -1) -> bytes:
        data, self._data = (self._data, b"") if size is None or size < 0 else (self._data[:size], self._data[size:])
        return data


# --- pixels and images -----------------------------------------------------------------------------------

def blocky(seed: int, width: int, height: int, channels: int) -> np.ndarray:
    """(height, width, channels) uint8: a few random cells scaled up, with some flat 0 and 255 cells."""
    rng = np.random.default_rng(seed)
    cells_h, cells_w = min(height, int(rng.integers(1, 9))), min(width, int(rng.integers(1, 9)))
    cells = rng.integers(0, 256, (cells_h, cells_w, channels), dtype=np.uint8)
    cells[rng.random((cells_h, cells_w)) < 0.2] = 0
    cells[rng.random((cells_h, cells_w)) < 0.2] = 255
    rows = np.arange(height) * cells_h // height
    cols = np.arange(width) * cells_w // width
    return cells[rows][:, cols]


def make_image(mode: str, width: int, height: int, *, seed: int) -> Image.Image:
    """A `mode` PIL image ("P+transparency": a palette with a transparent index; "RGB+transparency" alike)."""
    base = mode.split("+")[0]
    rgba = Image.fromarray(blocky(seed, width, height, 4))
    if base in ("I;16", "I;16B", "I;16L", "I"):
        values = blocky(seed, width, height, 2).astype(np.uint16)
        wide = values[..., 0] * np.uint16(256) + values[..., 1]
        if base in ("I;16B", "I;16L"):   # Pillow's convert("I;16B") clips at 255: build from the raw bytes
            return Image.frombytes(base, (width, height), wide.astype(">u2" if base == "I;16B" else "<u2").tobytes())
        return Image.fromarray(wide.astype(np.int32 if base == "I" else np.uint16))
    if base == "F":
        return Image.fromarray(blocky(seed, width, height, 1)[..., 0].astype(np.float32) * np.float32(1.003) - 0.4)
    if base == "La":   # premultiplied LA: Pillow 10.1 converts nothing to it, so build it from LA's bytes
        return Image.frombytes("La", (width, height), rgba.convert("LA").tobytes())
    image = rgba.convert(base) if base not in ("L", "1", "P") else rgba.convert("RGB").convert(base)
    if mode == "P+transparency":
        image.info["transparency"] = int(np.asarray(image)[0, 0])
    elif mode == "RGB+transparency":
        image.info["transparency"] = tuple(int(v) for v in np.asarray(image)[0, 0])
    return image


def encode(image: Image.Image, fmt: str, *, orientation: int | None = None, frames: int = 1) -> bytes:
    """`image` saved as `fmt` (bytes), with an EXIF orientation and extra frames when asked."""
    out = io.BytesIO()
    options: dict[str, Any] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    if frames > 1:
        options.update(save_all=True, append_images=[image.rotate(90 * i) for i in range(1, frames)])
    if "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    image.save(out, fmt, **options)
    return out.getvalue()


def png_header(width: int, height: int, *, with_data: bool = False) -> bytes:
    """A well-formed PNG that declares width × height RGB but carries (almost) no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64)) if with_data else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


# --- valid inputs ----------------------------------------------------------------------------------------

@st.composite
def encoded_images(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """(data, format, description) of a valid encoded image."""
    fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    width, height = draw(sides), draw(sides)
    seed = draw(st.integers(0, 2**32 - 1))
    orientation = draw(st.none() | st.integers(1, 8)) if fmt in EXIF_FORMATS else None
    frames = draw(st.integers(1, 3)) if fmt in MULTI_FRAME_FORMATS else 1
    data = encode(make_image(mode, width, height, seed=seed), fmt, orientation=orientation, frames=frames)
    return data, fmt, f"{fmt} {mode} {width}×{height} orientation={orientation} frames={frames}"


@st.composite
def valid_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(ARRAY_DTYPES))
    channels = draw(st.sampled_from(ARRAY_CHANNELS))
    width, height = draw(sides), draw(sides)
    layout = draw(st.sampled_from(("contiguous", "fortran", "strided", "flipped")))
    pixels = blocky(draw(st.integers(0, 2**32 - 1)), width * 2, height * 2, channels or 1)
    if dtype == "uint8":
        values = pixels
    elif dtype == "bool":
        values = pixels > 127
    elif dtype == "uint16":
        values = pixels.astype(np.uint16) * np.uint16(257) - (pixels > 0).astype(np.uint16)
    else:
        values = (pixels / 255.0).astype(dtype)
        if draw(st.booleans()):   # within the documented tolerance of [0, 1]
            values = np.where(pixels == 255, np.asarray(1 + 5e-7, dtype), values).astype(dtype)
    values = values if channels else values[..., 0]
    if layout == "strided":
        array = values[::2, ::2]
    elif layout == "flipped":
        array = values[:height, :width][::-1, ::-1]
    elif layout == "fortran":
        array = np.asfortranarray(values[:height, :width])
    else:
        array = np.ascontiguousarray(values[:height, :width])
    note(f"array {array.dtype} {array.shape} {layout}")
    event(f"array {dtype}")
    return array


@st.composite
def valid_image_inputs(draw: st.DrawFn, *, directory: Path | None = None) -> Any:
    """An image load_image must read: encoded in any container, a PIL image of any mode, or an array."""
    kind = draw(st.sampled_from(("encoded", "pil", "array")))
    if kind == "array":
        return draw(valid_arrays())
    if kind == "pil":
        mode = draw(st.sampled_from(PIL_MODES))
        width, height = draw(sides), draw(sides)
        note(f"PIL {mode} {width}×{height}")
        event(f"PIL {mode}")
        return make_image(mode, width, height, seed=draw(st.integers(0, 2**32 - 1)))
    data, fmt, description = draw(encoded_images())
    return _contained(draw, data, fmt=fmt, description=description, directory=directory)


def _contained(draw: st.DrawFn, data: bytes, *, fmt: str, description: str, directory: Path | None) -> Any:
    container = draw(st.sampled_from(("str path", "Path", "bytes", "bytearray", "memoryview",
                                      "BytesIO", "unseekable", "lazy PIL")))
    note(f"{container} of {description} ({len(data)} bytes)")
    event(f"{container} {fmt}")
    if container in ("str path", "Path"):
        path = _write(directory, data, "." + fmt.lower())
        return str(path) if container == "str path" else path
    return {
        "bytes": lambda: data,
        "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "BytesIO": lambda: io.BytesIO(data),
        "unseekable": lambda: Unseekable(data),
        "lazy PIL": lambda: _lazy(data),
    }[container]()


def _lazy(data: bytes) -> Any:
    """Image.open without load (as users hand them over); falls back to the bytes when Pillow refuses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # DecompressionBombWarning and metadata warnings: not the test's
            return Image.open(io.BytesIO(data))
    except Exception:
        return data


# --- broken inputs ---------------------------------------------------------------------------------------

@st.composite
def broken_encodings(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """(data, format, description): random, truncated, corrupted, or a header declaring a huge image."""
    how = draw(st.sampled_from(("random", "magic", "truncated", "corrupted", "huge header")))
    event(f"broken encoding {how}")
    if how == "random":
        data = draw(st.binary(max_size=300))
        return data, "bin", f"{len(data)} random bytes"
    if how == "magic":
        magic = draw(st.sampled_from(MAGIC))
        return magic + draw(st.binary(max_size=300)), "bin", f"random bytes behind {magic!r}"
    if how == "huge header":
        width, height = draw(st.sampled_from([(50_000, 50_000), (7_000, 7_000), (10_000, 10_000),
                                              (100_000_000, 1), (2**31 - 1, 2**31 - 1), (0, 10)])
                             | st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)))
        with_data = draw(st.booleans())
        return png_header(width, height, with_data=with_data), "png", f"PNG header {width}×{height}"
    data, fmt, description = draw(encoded_images())
    if how == "truncated":
        cut = draw(st.integers(0, max(0, len(data) - 1)))
        return data[:cut], fmt, f"{description} truncated to {cut} of {len(data)} bytes"
    corrupted = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        corrupted[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(corrupted), fmt, f"{description} with bytes overwritten"


@st.composite
def broken_arrays(draw: st.DrawFn) -> np.ndarray:
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    how = draw(st.sampled_from(("dtype", "shape", "empty", "non-finite", "out of range")))
    if how == "dtype":
        dtype = draw(st.sampled_from(("int8", "int16", "int32", "int64", "uint32", "uint64",
                                      "complex64", "object", "U1", "datetime64[s]", "longdouble")))
        array = np.zeros((height, width, 3), dtype=dtype)
    elif how == "shape":
        shape = draw(st.sampled_from([(3, height, width + 4), (height, width, 2), (height, width, 5),
                                      (width,), (1, height, width, 3), (), (height, width, 3, 1)]))
        array = np.zeros(shape, dtype=np.uint8)
    elif how == "empty":
        shape = draw(st.sampled_from([(0, width), (height, 0, 3), (0, 0, 4), (0,)]))
        array = np.zeros(shape, dtype=draw(st.sampled_from(("uint8", "float32"))))
    else:
        dtype = draw(st.sampled_from(("float16", "float32", "float64")))
        array = np.full((height, width, 3), 0.5, dtype=dtype)
        bad = (draw(st.sampled_from((np.nan, np.inf, -np.inf))) if how == "non-finite"
               else draw(st.sampled_from((-1e-3, 1.001, 255.0, -0.5, 2.0))))
        array[draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))] = bad
    note(f"broken array ({how}) {array.dtype} {array.shape}")
    event(f"broken array {how}")
    return array


@st.composite
def broken_image_inputs(draw: st.DrawFn, *, directory: Path | None = None) -> Any:
    """Something load_image must refuse with an InvalidImageError (or, for corrupted bytes, may read)."""
    kind = draw(st.sampled_from(("encoding", "array", "pil", "object", "path")))
    if kind == "encoding":
        data, fmt, description = draw(broken_encodings())
        return _contained(draw, data, fmt=fmt, description=description, directory=directory)
    if kind == "array":
        return draw(broken_arrays())
    if kind == "pil":
        which = draw(st.sampled_from(("F with NaN", "F with inf", "empty", "empty P")))
        note(f"broken PIL image: {which}")
        event(f"broken PIL {which}")
        if which.startswith("F"):
            values = np.full((4, 5), np.nan if which.endswith("NaN") else np.inf, dtype=np.float32)
            return Image.fromarray(values)
        return Image.new("RGB" if which == "empty" else "P", draw(st.sampled_from([(0, 5), (5, 0), (0, 0)])))
    if kind == "object":
        value = draw(st.sampled_from((None, 3, 2.5, [[0, 1]], {"a": 1}, io.StringIO("not an image"),
                                      io.TextIOWrapper(io.BytesIO(b"\x89PNG")), object())))
        note(f"object {type(value).__name__}")
        event(f"object {type(value).__name__}")
        return value
    which = draw(st.sampled_from(("missing", "directory", "empty file", "nul byte")))
    note(f"path: {which}")
    event(f"path {which}")
    folder = _directory(directory)
    if which == "missing":
        return str(folder / f"missing-{next(_files)}.png")
    if which == "directory":
        return folder
    if which == "empty file":
        return _write(directory, b"", ".png")
    return str(folder / "bad\x00name.png")


def image_inputs(*, directory: Path | None = None) -> st.SearchStrategy[Any]:
    """Any input load_image may be given, valid or broken, in any container; paths go under `directory`."""
    return st.one_of(valid_image_inputs(directory=directory), broken_image_inputs(directory=directory))
