"""Whatever a user passes becomes the model's (H, W, 3) uint8 input or a one-line InvalidImageError."""
from __future__ import annotations

import io
import os
import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from PIL import Image, ImageOps

from igr_edge.errors import IgrEdgeError, InvalidImageError
from igr_edge.images import MAX_PIXELS, letterbox, load_image, output_size, to_output

from strategies import FAST, SLOW, Unseekable, blocky, encode, image_inputs, png_header, valid_image_inputs

WIDTH, HEIGHT = 192, 256   # the shipped bundles' input size


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.fixture
def rgb():
    return blocky(7, 31, 17, 3)   # (17, 31, 3): not square, so a transpose would show


def test_every_input_kind_gives_the_same_pixels(tmp_path, rgb):
    image = Image.fromarray(rgb)
    png = encode(image, "PNG")
    (tmp_path / "p.png").write_bytes(png)
    sources = {
        "str path": str(tmp_path / "p.png"),
        "Path": tmp_path / "p.png",
        "bytes": png,
        "bytearray": bytearray(png),
        "memoryview": memoryview(png),
        "BytesIO": io.BytesIO(png),
        "unseekable stream": Unseekable(png),
        "lazy PIL": Image.open(io.BytesIO(png)),
        "PIL": image,
        "TIFF": encode(image, "TIFF"),
        "BMP": encode(image, "BMP"),
        "lossless WEBP": _webp_lossless(image),
        "uint8 array": rgb,
        "Fortran uint8 array": np.asfortranarray(rgb),
        "strided uint8 array": np.repeat(rgb, 2, axis=1)[:, ::2],
        "uint16 array": rgb.astype(np.uint16) * 257,
        "float16 array": (rgb / 255).astype(np.float16),
        "float32 array": (rgb / 255).astype(np.float32),
        "float64 array": rgb / 255,
        "RGBA opaque array": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
    }
    for kind, source in sources.items():
        assert np.array_equal(_pixels(load_image(source)), rgb), kind


def _webp_lossless(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", lossless=True, exact=True)
    return out.getvalue()


def test_gray_and_bool_arrays_become_gray_rgb():
    gray = blocky(3, 9, 5, 1)
    expected = np.repeat(gray, 3, axis=2)
    assert np.array_equal(_pixels(load_image(gray[..., 0])), expected)
    assert np.array_equal(_pixels(load_image(gray)), expected)
    mask = np.array([[True, False], [False, True]])
    assert _pixels(load_image(mask))[..., 0].tolist() == [[255, 0], [0, 255]]


def test_the_input_is_left_alone_and_the_result_is_the_callers(rgb):
    array, image = rgb.copy(), Image.fromarray(rgb)
    from_array, from_image = load_image(array), load_image(image)
    from_array.putpixel((0, 0), (1, 2, 3))
    from_image.putpixel((0, 0), (1, 2, 3))
    assert np.array_equal(array, rgb)
    assert np.array_equal(np.asarray(image), rgb)
    assert from_image is not image


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])   # (Pillow applies a TIFF's orientation itself, in load())
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(orientation, fmt, rgb):
    data = encode(Image.fromarray(rgb), fmt, orientation=orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert expected.shape[:2] == (rgb.shape[:2] if orientation < 5 else rgb.shape[1::-1])
    assert np.array_equal(_pixels(load_image(data)), expected)
    assert np.array_equal(_pixels(load_image(Image.open(io.BytesIO(data)))), expected)


def test_exif_orientation_6_turns_a_landscape_photo_upright():
    ys, xs = np.mgrid[0:40, 0:64]
    stored = np.dstack([xs * 4, ys * 6, np.full_like(xs, 90)]).astype(np.uint8)   # smooth, so JPEG keeps it
    loaded = load_image(encode(Image.fromarray(stored), "JPEG", orientation=6))
    assert loaded.size == (40, 64)           # stored 64 wide, 40 high
    upright = np.rot90(stored, k=-1)         # orientation 6: the camera was turned 90° clockwise
    error = np.abs(_pixels(loaded).astype(int) - upright).mean()
    assert error < 3, error                  # the other way round (orientation 8) is ~80 off


def test_broken_exif_is_ignored_not_fatal(rgb):
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_image(out.getvalue())
    assert loaded.size == (31, 17)
    assert not caught


def test_transparent_pixels_become_white_whatever_the_container():
    rgba = np.array([[[200, 10, 30, 0], [200, 10, 30, 255], [200, 10, 30, 128], [0, 0, 0, 0]]], dtype=np.uint8)
    expected = [[255, 255, 255], [200, 10, 30], [228, 132, 142], [255, 255, 255]]
    image = Image.fromarray(rgba)
    for kind, source in {"array": rgba, "PIL": image, "PNG": encode(image, "PNG"), "TIFF": encode(image, "TIFF"),
                         "premultiplied PIL": image.convert("RGBa")}.items():
        assert np.abs(_pixels(load_image(source))[0].astype(int) - expected).max() <= 1, kind
    gray_alpha = Image.fromarray(np.array([[[90, 0], [90, 255]]], dtype=np.uint8), mode="LA")
    for source in (gray_alpha, gray_alpha.convert("La"), encode(gray_alpha, "PNG")):
        assert _pixels(load_image(source))[0].tolist() == [[255, 255, 255], [90, 90, 90]]
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    palette.putpalette([200, 10, 30, 5, 6, 7])
    palette.info["transparency"] = 0
    for source in (palette, encode(palette, "PNG"), encode(palette, "GIF")):
        assert _pixels(load_image(source))[0].tolist() == [[255, 255, 255], [5, 6, 7]]


def test_sixteen_bit_images_are_divided_by_257():
    values = np.array([[0, 128, 257, 32896, 65535]], dtype=np.uint16)
    expected = [0, 0, 1, 128, 255]
    for source in (values, Image.fromarray(values), encode(Image.fromarray(values), "PNG"),
                   encode(Image.fromarray(values), "TIFF"), Image.frombytes("I;16B", (5, 1), values.astype(">u2").tobytes()),
                   Image.frombytes("I;16L", (5, 1), values.astype("<u2").tobytes())):
        assert _pixels(load_image(source))[0, :, 0].tolist() == expected
    wide = np.array([[-5, 257, 70000]], dtype=np.int32)   # mode I: clipped to 0..65535 first
    assert _pixels(load_image(Image.fromarray(wide)))[0, :, 0].tolist() == [0, 1, 255]
    assert _pixels(load_image(encode(Image.fromarray(wide), "TIFF")))[0, :, 0].tolist() == [0, 1, 255]


def test_float_arrays_are_zero_to_one_and_float_images_zero_to_255():
    for dtype in (np.float16, np.float32, np.float64):
        values = np.array([[0.0, 0.2, 0.5, 1.0, 1 + 5e-7]], dtype=dtype)
        assert _pixels(load_image(values))[0, :, 1].tolist() == [0, 51, 128, 255, 255]
    f_mode = Image.fromarray(np.array([[-5.0, 0.0, 127.6, 255.0, 300.0]], dtype=np.float32))
    assert _pixels(load_image(f_mode))[0, :, 2].tolist() == [0, 0, 128, 255, 255]
    assert _pixels(load_image(encode(f_mode, "TIFF")))[0, :, 2].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("array, message", [
    (np.full((4, 4, 3), 1.5), r"must be in \[0, 1\], this float64 array spans \[1.5, 1.5\]"),
    (np.array([[0.0, 255.0]], dtype=np.float32), r"spans \[0, 255\] \(divide by 255"),
    (np.array([[0.0, np.nan]]), "NaN or infinite"),
    (np.array([[0.0, -np.inf]], dtype=np.float16), "NaN or infinite"),
    (np.zeros((3, 16, 12), np.uint8), r"got shape \(3, 16, 12\) \(channels-first"),
    (np.zeros((4, 4, 2), np.uint8), r"\(H, W, 4\) array, got shape \(4, 4, 2\)"),
    (np.zeros((4, 4, 5), np.uint8), r"got shape \(4, 4, 5\)"),
    (np.zeros((1, 4, 4, 3), np.uint8), r"got shape \(1, 4, 4, 3\)"),
    (np.zeros((0, 4, 3), np.uint8), r"with pixels, got the empty shape \(0, 4, 3\)"),
    (np.zeros((4, 4), np.int32), "got dtype int32"),
    (np.zeros((4, 4), np.complex64), "got dtype complex64"),
    (np.zeros((4, 4), object), "got dtype object"),
])
def test_unusable_arrays_are_refused_saying_what_was_expected(array, message):
    with pytest.raises(InvalidImageError, match=message):
        load_image(array)


@pytest.mark.parametrize("source, message", [
    (b"x" * 37, "not an image: cannot identify the format of 37 bytes"),
    (b"", "cannot identify the format of 0 bytes"),
    ("no/such/file.png", "file not found: no/such/file.png"),
    ("bad\x00name.png", "cannot open"),
    (io.StringIO("hello"), "text mode"),
    (3, "expected a path, bytes, a binary file object, a PIL image or a numpy array, got int"),
    (Image.new("RGB", (0, 4)), "0×4: it has no pixels"),
    (Image.fromarray(np.full((2, 2), np.nan, np.float32)), "NaN or infinite"),
])
def test_unreadable_sources_name_the_problem(source, message):
    with pytest.raises(InvalidImageError, match=message) as raised:
        load_image(source)
    assert "\n" not in str(raised.value)


def test_directories_and_empty_files_are_refused(tmp_path):
    with pytest.raises(InvalidImageError, match="is a directory"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty.png"):
        load_image(tmp_path / "empty.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidImageError, match="not a regular file"):
        load_image(tmp_path / "pipe")


def test_eps_is_refused_before_pillow_runs_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n"
    with pytest.raises(InvalidImageError, match="EPS files are not read here"):
        load_image(eps)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP"])
def test_truncated_files_are_refused(fmt):
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), fmt)
    for cut in (len(data) // 2, len(data) * 9 // 10):   # (a PNG cut inside IEND alone still has all its pixels)
        with pytest.raises(InvalidImageError):
            load_image(data[:cut])


def test_a_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    bomb = png_header(50_000, 50_000)   # declares 2500 MP, carries no pixels
    (tmp_path / "bomb.png").write_bytes(bomb)
    for source in (bomb, tmp_path / "bomb.png", io.BytesIO(bomb)):
        start = time.perf_counter()
        with pytest.raises(InvalidImageError, match=r"2500 MP .*above the 40 MP limit"):
            load_image(source)
        assert time.perf_counter() - start < 0.5
    with pytest.raises(InvalidImageError, match=r"7000×7000 = 49 MP, above the 40 MP limit \(max_pixels=40000000\)"):
        load_image(png_header(7_000, 7_000, with_data=True))   # a "truncated" error here would mean it decoded


def test_pillows_own_bomb_warning_never_reaches_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImageError, match="10000×10000 = 100 MP"):
            load_image(png_header(10_000, 10_000))
    assert not caught


def test_max_pixels_applies_to_every_input_kind(rgb):
    for source in (rgb, Image.fromarray(rgb), encode(Image.fromarray(rgb), "PNG")):
        assert load_image(source, max_pixels=31 * 17).size == (31, 17)
        with pytest.raises(InvalidImageError, match=r"31×17 = 0.000527 MP, above the 0.000526 MP limit \(max_pixels=526\)"):
            load_image(source, max_pixels=31 * 17 - 1)
    assert MAX_PIXELS == 40_000_000


def test_multi_frame_files_give_their_first_frame(rgb):
    first = Image.fromarray(rgb)
    for fmt in ("TIFF", "GIF"):
        data = encode(first.convert("P") if fmt == "GIF" else first, fmt, frames=3)
        assert Image.open(io.BytesIO(data)).n_frames == 3
        expected = first.convert("P").convert("RGB") if fmt == "GIF" else first
        assert np.array_equal(_pixels(load_image(data)), np.asarray(expected)), fmt


@pytest.mark.parametrize("size, box, pad", [
    ((100, 50), (0, 80, 192, 96), "rows"),     # wide: full width, white above and below
    ((50, 200), (64, 0, 64, 256), "columns"),  # tall: full height, white left and right
    ((96, 128), (0, 0, 192, 256), None),       # the model's aspect: no padding
])
def test_letterbox_keeps_the_aspect_and_centres_on_white(size, box, pad):
    colour = (10, 200, 30)
    out = letterbox(Image.new("RGB", size, colour), WIDTH, HEIGHT)
    assert out.shape == (HEIGHT, WIDTH, 3) and out.dtype == np.uint8
    left, top, w, h = box
    assert (out[top:top + h, left:left + w] == colour).all()
    mask = np.ones((HEIGHT, WIDTH), bool)
    mask[top:top + h, left:left + w] = False
    assert (out[mask] == 255).all()
    assert mask.any() == (pad is not None)


def test_letterbox_of_the_models_size_is_the_image_itself(rgb):
    exact = blocky(1, WIDTH, HEIGHT, 3)
    assert np.array_equal(letterbox(Image.fromarray(exact), WIDTH, HEIGHT), exact)


def test_output_size_reads_none_int_and_pairs():
    assert output_size(None, WIDTH, HEIGHT) == (192, 256)
    assert output_size(512, WIDTH, HEIGHT) == (384, 512)
    assert output_size(101, WIDTH, HEIGHT) == (76, 101)   # 75.75 rounded
    assert output_size(1, WIDTH, HEIGHT) == (1, 1)
    assert output_size((300, 300), WIDTH, HEIGHT) == (300, 300)
    assert output_size(np.int64(64), WIDTH, HEIGHT) == (48, 64)


@pytest.mark.parametrize("size", [0, -1, 8193, 2.5, True, "512", (0, 5), (5,), (5, 6, 7), (1.5, 2), (9000, 10), [10, None]])
def test_bad_sizes_are_refused(size):
    with pytest.raises(IgrEdgeError, match="size"):
        output_size(size, WIDTH, HEIGHT)


def test_to_output_resizes_or_letterboxes_never_stretches():
    colour = (10, 200, 30)
    garment = np.full((HEIGHT, WIDTH, 3), colour, np.uint8)
    same = to_output(garment)
    assert same.mode == "RGB" and np.array_equal(np.asarray(same), garment)
    garment[0, 0] = (9, 9, 9)
    assert np.asarray(same)[0, 0].tolist() == list(colour)   # not a view of the caller's array
    garment[0, 0] = colour
    assert to_output(garment, size=512).size == (384, 512)
    square = np.asarray(to_output(garment, size=(300, 300)))   # content 225×300, white 37 | 38 px either side
    assert square.shape == (300, 300, 3)
    assert (square[:, :37] == 255).all() and (square[:, 37 + 225:] == 255).all()
    assert (square[:, 37 + 1:37 + 225 - 1] == colour).all()
    with pytest.raises(IgrEdgeError, match="uint8"):
        to_output(garment.astype(np.float32))


def _load_and_fit(source) -> None:
    """The fuzz claim: a (256, 192, 3) uint8 array or a one-line InvalidImageError, and no warning either way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = letterbox(load_image(source), WIDTH, HEIGHT)
        except InvalidImageError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert out.shape == (HEIGHT, WIDTH, 3) and out.dtype == np.uint8
    assert not [f"{w.category.__name__}: {w.message}" for w in caught]


@FAST
@given(source=valid_image_inputs())
def test_every_valid_input_loads_and_fits(source):
    assert letterbox(load_image(source), WIDTH, HEIGHT).shape == (HEIGHT, WIDTH, 3)


@FAST
@given(source=image_inputs())
def test_any_input_loads_and_fits_or_is_an_invalid_image(source):
    _load_and_fit(source)


@pytest.mark.slow
@SLOW
@given(source=image_inputs())
def test_any_input_loads_and_fits_or_is_an_invalid_image_thoroughly(source):
    _load_and_fit(source)
