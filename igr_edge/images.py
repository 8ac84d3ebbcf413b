"""Images in and out of the model: anything a user passes becomes the model's uint8 RGB array, and back.

The exported model takes (N, H, W, 3) uint8 RGB person photos of one fixed size (the bundle says which)
and returns garments of that same size. This module does the two conversions around it:

- `load_image(source)` reads a path, bytes, a binary file object, a PIL image or a numpy array into a
  fresh RGB `PIL.Image` (EXIF orientation applied, transparency composited onto white, 16-bit scaled to 8),
  refusing anything else with an `InvalidImageError` whose one-line reason names the problem;
- `letterbox(image, width, height)` fits it, aspect kept, into the model's box, centred on white
  (the training photos have white backgrounds);
- `output_size(size, width, height)` and `to_output(garment, size=...)` turn the model's garment into the
  size the user asked for, letterboxed (never stretched) when that size has another aspect.

Decompression bombs are refused from the header, before any pixel is decoded: `max_pixels` (width × height,
40 MP unless told otherwise) is checked by this module, and Pillow's own DecompressionBombError becomes an
`InvalidImageError` too. Pillow decoders raise many exception types on malformed data (OSError, SyntaxError,
struct.error, ValueError, EOFError, ...); every one of them is reported as an `InvalidImageError`, and the
warnings Pillow emits while parsing damaged metadata are silenced, not passed on to the caller.
"""
from __future__ import annotations

import io
import os
import re
import stat
import threading
import warnings
from numbers import Integral
from typing import BinaryIO

import numpy as np
from PIL import Image

from .errors import IgrEdgeError, InvalidImageError

MAX_PIXELS = 40_000_000   # decompression-bomb limit (width * height), checked from the header before decoding
MAX_OUTPUT_SIDE = 8192    # the largest width or height `to_output` will produce
WHITE = (255, 255, 255)   # letterbox padding: the training photos have white backgrounds
FLOAT_TOLERANCE = 1e-6    # float arrays may stray this far outside [0, 1] (clipped); further is an error

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

_ORIENTATION = 0x0112     # the EXIF Orientation tag
_TRANSPOSE = {            # EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_WITH_ALPHA = {"RGBA", "LA", "PA"}
_PREMULTIPLIED = {"RGBa", "La"}
_REFUSED_FORMATS = {"EPS": "Pillow decodes them by running Ghostscript, not something to do with untrusted input"}
_METADATA_ON_LOAD = {"TIFF"}   # Pillow's TIFF load() re-reads the IFD (and applies its orientation): it warns
_EXPECTED_ARRAY = "expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array"
_EXPECTED_INPUT = "expected a path, bytes, a binary file object, a PIL image or a numpy array"

# Pillow reports damaged metadata (EXIF, TIFF tags) and headers above Image.MAX_IMAGE_PIXELS with
# warnings.warn. Silencing them needs warnings.catch_warnings, which swaps process-wide state; the lock keeps
# this module's own threads from interleaving those swaps. Only header parsing, metadata reads and the decode
# of formats that read metadata while decoding (TIFF) run under it: other decodes stay concurrent.
_WARNINGS_LOCK = threading.RLock()


class _Quiet:
    """Suppress every warning for the duration (Pillow's DecompressionBombWarning included)."""

    def __enter__(self) -> None:
        _WARNINGS_LOCK.acquire()
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc) -> None:
        try:
            self._catch.__exit__(*exc)
        finally:
            _WARNINGS_LOCK.release()


def load_image(source: ImageInput, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read `source` into a new RGB PIL image the caller owns; the input itself is never modified.

    Accepted: a path (str or os.PathLike), encoded bytes (bytes, bytearray, memoryview), a binary file
    object (read from its current position to the end), a PIL image (its current frame; a lazily opened
    one gets loaded, as any use of it would) or a numpy array.
    Encoded files are fully decoded here (truncated or corrupt data is an error, not a grey band), only
    their first frame is used (GIF, TIFF, ...), and their EXIF orientation is applied (broken EXIF: left
    as stored). A PIL image's EXIF orientation is applied too.

    Pixel values:
    - RGB as is; L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX converted to RGB;
    - transparency (RGBA, LA, PA, RGBa, La, P/L/RGB with a transparent colour) composited onto white;
    - 16- and 32-bit integer modes (I;16*, I) are read as 0..65535 (I clipped to that range), divided by 257;
    - F (32-bit float) follows Pillow's own convention: values are 0..255 (as `convert("F")` of an L image
      gives), clipped to that range and rounded; NaN or infinity is an error.

    Arrays: (H, W) gray, (H, W, 1) gray, (H, W, 3) RGB, (H, W, 4) RGBA (composited onto white). dtypes:
    uint8 as is; bool is black/white (False 0, True 255, like Pillow's mode 1); uint16 divided by 257;
    float16/32/64 must be finite and within [0, 1] (values within 1e-6 of it are clipped), scaled by 255.
    Anything else (other integer types, channels-first, 0-size, complex, object) is an error.

    Raises InvalidImageError (one line naming the problem) for anything unreadable, empty, or above
    `max_pixels` (width × height, checked from the header before decoding).
    """
    if not isinstance(max_pixels, Integral) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise IgrEdgeError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels=max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source if isinstance(source, bytes) else _bytes_of(source)
        return _decode(io.BytesIO(data), what=f"{len(data)} bytes", max_pixels=max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(source, max_pixels=max_pixels)
    if callable(getattr(source, "read", None)):
        data = _read_stream(source)
        return _decode(io.BytesIO(data), what=f"{len(data)} bytes from a file object", max_pixels=max_pixels)
    raise InvalidImageError(f"{_EXPECTED_INPUT}, got {type(source).__name__}")


def letterbox(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Fit `image` inside width × height keeping its aspect, centred on white: a (height, width, 3) uint8 array.

    The content box is round(w × s) × round(h × s) with s = min(width / w, height / h) (at least 1 px a
    side); the left/top padding is the floor of half the slack. Resampling is Lanczos (a box reduction
    first when shrinking a lot). A non-RGB image gets `load_image`'s mode conversions (not its EXIF step).
    """
    width, height = _positive_side(width, "width"), _positive_side(height, "height")
    if not isinstance(image, Image.Image):
        raise IgrEdgeError(f"letterbox takes a PIL image (use load_image first), got {type(image).__name__}")
    w, h = image.size
    if w < 1 or h < 1:
        raise InvalidImageError(f"image is {w}×{h}: it has no pixels")
    if image.mode != "RGB":
        image = _to_rgb(image)
    scale = min(width / w, height / h)
    box_w = min(width, max(1, round(w * scale)))
    box_h = min(height, max(1, round(h * scale)))
    content = image if (box_w, box_h) == (w, h) else image.resize(
        (box_w, box_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = np.full((height, width, 3), WHITE, dtype=np.uint8)   # (H, W, 3)
    top, left = (height - box_h) // 2, (width - box_w) // 2
    canvas[top:top + box_h, left:left + box_w] = np.asarray(content, dtype=np.uint8)
    return canvas


def output_size(size: int | tuple[int, int] | None, width: int, height: int) -> tuple[int, int]:
    """The (width, height) the user asked for, given the model's own `width` × `height`.

    None -> the model's size; an int n -> height n and the model's aspect (width rounded, at least 1);
    a (w, h) pair -> as given. Every side must be a positive integer of at most 8192, else IgrEdgeError.
    """
    width, height = _positive_side(width, "width"), _positive_side(height, "height")
    if size is None:
        return width, height
    if isinstance(size, Integral) and not isinstance(size, bool):
        out_h = _positive_side(size, "size", limit=MAX_OUTPUT_SIDE)
        out_w = max(1, round(out_h * width / height))
        if out_w > MAX_OUTPUT_SIDE:
            raise IgrEdgeError(f"size={size} gives a width of {out_w} px at the model's aspect "
                               f"{width}:{height}, above the {MAX_OUTPUT_SIDE} px limit")
        return out_w, out_h
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (_positive_side(size[0], "size width", limit=MAX_OUTPUT_SIDE),
                _positive_side(size[1], "size height", limit=MAX_OUTPUT_SIDE))
    raise IgrEdgeError(f"size must be None, a height in pixels or a (width, height) pair, got {size!r}")


def to_output(garment: np.ndarray, size: int | tuple[int, int] | None = None) -> Image.Image:
    """The model's (H, W, 3) uint8 garment as an RGB PIL image of `output_size(size, W, H)`.

    None and an int keep the model's aspect (a plain resize); a (w, h) of another aspect gets the
    garment letterboxed into it on white, never stretched.
    """
    if not (isinstance(garment, np.ndarray) and garment.dtype == np.uint8 and garment.ndim == 3
            and garment.shape[2] == 3 and garment.shape[0] > 0 and garment.shape[1] > 0):
        found = (f"{garment.dtype} array of shape {garment.shape}" if isinstance(garment, np.ndarray)
                 else type(garment).__name__)
        raise IgrEdgeError(f"to_output takes an (H, W, 3) uint8 garment array, got {found}")
    height, width = garment.shape[:2]
    out_w, out_h = output_size(size, width, height)
    image = Image.fromarray(np.ascontiguousarray(garment))   # RGB: Pillow copies, the caller's array is not shared
    if (out_w, out_h) == (width, height):
        return image
    if size is None or not isinstance(size, (tuple, list)):
        return image.resize((out_w, out_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return Image.fromarray(letterbox(image, out_w, out_h))


# --- sources ---------------------------------------------------------------------------------------------

def _bytes_of(buffer: bytearray | memoryview) -> bytes:
    try:
        return memoryview(buffer).tobytes()
    except (TypeError, ValueError) as e:   # a released memoryview, an unusual buffer format
        raise InvalidImageError(f"cannot read the buffer's bytes: {e}") from None


def _from_path(path: str | os.PathLike, *, max_pixels: int) -> Image.Image:
    try:
        name = os.fsdecode(os.fspath(path))
    except (TypeError, ValueError) as e:
        raise InvalidImageError(f"not a usable path: {_short(repr(path))} ({e})") from None
    shown = _short(name)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidImageError(f"is a directory, not an image file: {shown}")
        if not stat.S_ISREG(info.st_mode):   # a FIFO would block, a device would never end
            raise InvalidImageError(f"not a regular file: {shown}")
        stream = open(name, "rb")
    except FileNotFoundError:
        raise InvalidImageError(f"file not found: {shown}") from None
    except PermissionError:
        raise InvalidImageError(f"cannot read {shown}: permission denied") from None
    except (OSError, ValueError) as e:   # ValueError: an embedded NUL byte; OSError: a name too long, ...
        raise InvalidImageError(f"cannot open {shown}: {getattr(e, 'strerror', None) or e}") from None
    with stream:
        return _decode(stream, what=f"{shown} ({info.st_size} bytes)", max_pixels=max_pixels)


def _short(text: str, *, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 4:]} ({len(text)} characters)"


def _read_stream(stream: BinaryIO) -> bytes:
    if isinstance(stream, io.TextIOBase):
        raise InvalidImageError("the file object is open in text mode; open the image with mode 'rb'")
    try:
        data = stream.read()
    except Exception as e:   # closed file (ValueError), an I/O error, a stream that refuses to be read
        raise InvalidImageError(f"cannot read from the file object: {type(e).__name__}: {e}") from None
    if isinstance(data, str):
        raise InvalidImageError("the file object returned text, not bytes; open the image with mode 'rb'")
    if data is None:
        raise InvalidImageError("the file object had no data ready (a non-blocking stream?)")
    try:
        return data if isinstance(data, bytes) else memoryview(data).tobytes()
    except TypeError:
        raise InvalidImageError(f"the file object's read() returned {type(data).__name__}, not bytes") from None


# --- decoding --------------------------------------------------------------------------------------------

def _check_size(width: int, height: int, *, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"image is {width}×{height}: it has no pixels")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"image is {width}×{height} = {_mp(width * height)}, above the {_mp(max_pixels)} limit "
            f"(max_pixels={max_pixels}); a decompression bomb, or raise max_pixels")


def _mp(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.3g} MP"


def _decode(stream: BinaryIO, *, what: str, max_pixels: int) -> Image.Image:
    """Open lazily, check the header's size, then decode fully; every failure is an InvalidImageError."""
    try:
        with _Quiet():
            image = Image.open(stream)
    except Image.DecompressionBombError as e:
        raise InvalidImageError(_bomb_reason(e, what=what, max_pixels=max_pixels)) from None
    except Image.UnidentifiedImageError:
        raise InvalidImageError(f"not an image: cannot identify the format of {what}") from None
    except Exception as e:   # Pillow's format plugins raise many types on malformed headers
        raise InvalidImageError(f"not a readable image ({what}): {_reason(e)}") from None
    with image:
        if image.format in _REFUSED_FORMATS:
            raise InvalidImageError(f"{image.format} files are not read here ({what}): {_REFUSED_FORMATS[image.format]}")
        _check_size(*image.size, max_pixels=max_pixels)
        _load(image, what=what, max_pixels=max_pixels)
        return _from_pil(image, max_pixels=max_pixels)


def _load(image: Image.Image, *, what: str, max_pixels: int) -> None:
    """The full decode, now, so truncated or corrupt data fails here rather than as a grey band later."""
    try:
        if image.format in _METADATA_ON_LOAD:
            with _Quiet():
                image.load()
        else:
            image.load()
    except Image.DecompressionBombError as e:
        raise InvalidImageError(_bomb_reason(e, what=what, max_pixels=max_pixels)) from None
    except Exception as e:
        raise InvalidImageError(f"corrupt or truncated {image.format or 'image'} ({what}): {_reason(e)}") from None


def _bomb_reason(error: Exception, *, what: str, max_pixels: int) -> str:
    """Pillow refused the header itself (above 2 × Image.MAX_IMAGE_PIXELS): say so in this module's terms."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    if found is None:
        return f"{what} is a decompression bomb: {_reason(error)}"
    pixels = int(found.group(1))
    if pixels > max_pixels:
        return (f"image is {_mp(pixels)} ({what}), above the {_mp(max_pixels)} limit "
                f"(max_pixels={max_pixels}); a decompression bomb, or raise max_pixels")
    return (f"image is {_mp(pixels)} ({what}), above Pillow's own decompression-bomb limit of "
            f"{_mp(2 * (Image.MAX_IMAGE_PIXELS or 0))} (raise PIL.Image.MAX_IMAGE_PIXELS to read it)")


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _from_pil(image: Image.Image, *, max_pixels: int) -> Image.Image:
    _check_size(*image.size, max_pixels=max_pixels)
    _load(image, what=f"the {image.mode} PIL image", max_pixels=max_pixels)
    try:
        rgb = _to_rgb(image)
        return _orient(rgb, orientation=_orientation(image))
    except IgrEdgeError:
        raise
    except Exception as e:   # an exotic mode, a broken palette or transparency entry
        raise InvalidImageError(f"cannot convert the {image.mode} image to RGB: {_reason(e)}") from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8), or 1 when there is none or the EXIF block is broken."""
    try:
        with _Quiet():
            value = image.getexif().get(_ORIENTATION, 1)
        return int(value) if int(value) in _TRANSPOSE else 1
    except Exception:
        return 1


def _orient(image: Image.Image, *, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _to_rgb(image: Image.Image) -> Image.Image:
    """A new RGB image of `image`'s pixels (see load_image for each mode's rule)."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image.copy()
    if mode in _SIXTEEN_BIT:
        values = np.asarray(image)                                     # (H, W) uint16 or int32
        return _rgb_from_gray(_sixteen_to_eight(values))
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)                   # (H, W)
        if not np.isfinite(values).all():
            raise InvalidImageError("the F (float) image has NaN or infinite pixels")
        return _rgb_from_gray(np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8))
    if mode in _PREMULTIPLIED:                                         # Pillow cannot convert La; do both here
        values = np.asarray(image)                                     # (H, W, 2) or (H, W, 4)
        alpha = values[..., -1:].astype(np.int16)
        colour = np.clip(values[..., :-1].astype(np.int16) + 255 - alpha, 0, 255).astype(np.uint8)
        return _rgb_from_gray(colour[..., 0]) if mode == "La" else Image.fromarray(colour)
    if mode in _WITH_ALPHA or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))                       # (H, W, 4)
        return Image.fromarray(_over_white(rgba))
    return image.convert("RGB")


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    scaled = np.clip(values, 0, 65535).astype(np.uint32)
    return ((scaled * 2 + 257) // 514).astype(np.uint8)   # round(v / 257), in integers


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA composited onto white: (H, W, 3) uint8."""
    colour = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:].astype(np.uint16)
    mixed = colour * alpha + 255 * (255 - alpha)   # at most 255 * 255: uint16 holds it
    return ((mixed + 127) // 255).astype(np.uint8)


def _rgb_from_gray(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


# --- arrays ----------------------------------------------------------------------------------------------

def _from_array(array: np.ndarray, *, max_pixels: int) -> Image.Image:
    shape = array.shape
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 3, 4)):
        hint = " (channels-first? transpose it to (H, W, C))" if array.ndim == 3 and shape[0] in (1, 3, 4) else ""
        raise InvalidImageError(f"{_EXPECTED_ARRAY}, got shape {shape}{hint}")
    if array.size == 0:
        raise InvalidImageError(f"{_EXPECTED_ARRAY} with pixels, got the empty shape {shape}")
    _check_size(shape[1], shape[0], max_pixels=max_pixels)
    values = _array_to_uint8(array)
    if values.ndim == 2 or values.shape[2] == 1:
        return _rgb_from_gray(values.reshape(shape[0], shape[1]))
    if values.shape[2] == 4:
        return Image.fromarray(_over_white(values))
    return Image.fromarray(np.ascontiguousarray(values))


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    """The array's values as uint8 (a new array when it had to convert; never written to)."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if dtype.kind == "u" and dtype.itemsize == 2:
        return _sixteen_to_eight(array)
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        values = array.astype(np.float64 if dtype.itemsize == 8 else np.float32, copy=False)
        if not np.isfinite(values).all():
            raise InvalidImageError(f"the {dtype} array has NaN or infinite values; float images must be in [0, 1]")
        low, high = float(values.min()), float(values.max())
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise InvalidImageError(f"float images must be in [0, 1], this {dtype} array spans "
                                    f"[{low:.6g}, {high:.6g}] (divide by 255 if it is 0..255)")
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise InvalidImageError(f"{_EXPECTED_ARRAY} of uint8, uint16, bool or float (in [0, 1]), got dtype {dtype}")


def _positive_side(value: object, name: str, *, limit: int | None = None) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise IgrEdgeError(f"{name} must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise IgrEdgeError(f"{name} must be at most {limit} px, got {value}")
    return int(value)
