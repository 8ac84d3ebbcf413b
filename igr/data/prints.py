"""Garment prints for SynthGarment: solids, stripes, checks, dots, textures, text, logos, graphics.

Every print is a full (H, W, 3) uint8 canvas in the in-shop frame; the garment is cut from it.
Textures are the images scikit-image ships inside its wheel (no download), loaded once per process.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PRINTS = ("solid", "stripes", "checks", "dots", "texture", "text", "logo", "graphic")
PRINT_WEIGHTS = (0.12, 0.18, 0.14, 0.12, 0.14, 0.10, 0.12, 0.08)

# Grey textures that read as fabric once tinted; colour ones serve as all-over or chest graphics.
GREY_TEXTURES = ("brick", "grass", "gravel", "moon", "cell", "camera", "coins", "page")
COLOUR_TEXTURES = ("hubble_deep_field", "immunohistochemistry", "coffee", "colorwheel")
GRAPHICS = ("astronaut", "chelsea", "rocket", "coffee", "camera", "coins", "clock", "horse", "logo")
WORDS = ("IGR", "EDGE", "SALE", "TOKYO", "NYC", "SUMMER", "WAVE", "ZERO", "MILANO", "1987",
         "STAY WILD", "OK", "LOVE", "SPORT", "CLUB", "NORTH", "LAB", "ROOKIE", "GOOD DAY")

_cache: dict[str, np.ndarray] = {}


def texture(name: str) -> np.ndarray:
    """A scikit-image bundled image as uint8 (h, w) or (h, w, 3), loaded once and cached."""
    if name not in _cache:
        from skimage import data  # heavy import, only when the first texture is asked for

        img = np.asarray(getattr(data, name)())
        if img.dtype == bool:
            img = np.where(img, 0, 255).astype(np.uint8)  # horse: dark silhouette on white
        if img.ndim == 3 and img.shape[2] == 4:  # skimage logo: RGBA -> over white
            a = img[..., 3:4].astype(np.float32) / 255
            img = (img[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
        _cache[name] = np.ascontiguousarray(img)
    return _cache[name]


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at `size` px (cached)."""
    return ImageFont.load_default(size=max(6, int(size)))


def random_colour(rng: np.random.Generator, *, dark: bool | None = None) -> np.ndarray:
    """A garment colour (3,) uint8, never near-white so the in-shop mask stays unambiguous."""
    h = rng.random()
    s = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.35, 0.95)], p=[0.25, 0.75])
    v = rng.uniform(0.15, 0.45) if dark else rng.uniform(0.35, 0.9)
    return np.array([round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)], np.uint8)


def contrast(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """A second colour that stands out against `base`."""
    for _ in range(8):
        c = random_colour(rng)
        if np.abs(c.astype(int) - base).sum() > 150:
            return c
    return np.full(3, 30 if int(base.astype(int).sum()) > 330 else 225, np.uint8)


def _bands(n: int, rng: np.random.Generator, colours: np.ndarray, period: float) -> np.ndarray:
    """(n, 3) colours of stripes of varied widths along a line of n pixels, repeating."""
    widths = rng.uniform(0.2, 1.0, len(colours)) * period
    cum = np.cumsum(widths)
    pos = (np.arange(n) + rng.uniform(0, cum[-1])) % cum[-1]
    return colours[np.searchsorted(cum, pos, side="right").clip(0, len(colours) - 1)]


def stripes(rng, size, base, accent) -> np.ndarray:
    H, W = size
    colours = np.stack([base, accent] + [random_colour(rng) for _ in range(rng.integers(0, 2))])
    period = rng.uniform(0.04, 0.14) * W
    orient = rng.choice(["horizontal", "vertical", "diagonal", "diagonal"])
    if orient == "horizontal":
        return np.broadcast_to(_bands(H, rng, colours, period)[:, None], (H, W, 3)).copy()
    if orient == "vertical":
        return np.broadcast_to(_bands(W, rng, colours, period)[None, :], (H, W, 3)).copy()
    sign = rng.choice([-1, 1])
    lut = _bands(H + W, rng, colours, period * 1.4)
    y, x = np.ogrid[:H, :W]
    return lut[y + (x if sign > 0 else W - 1 - x)]


def checks(rng, size, base, accent) -> np.ndarray:
    """Gingham or plaid: horizontal and vertical band masks mixed over a base colour."""
    H, W = size
    period = rng.uniform(0.06, 0.2) * W
    duty = rng.uniform(0.3, 0.6)
    y, x = np.ogrid[:H, :W]
    ph, pw = rng.uniform(0, period, 2)
    h = (((y + ph) % period) < duty * period).astype(np.float32)  # (H, 1)
    v = (((x + pw) % period) < duty * period).astype(np.float32)  # (1, W)
    a = (0.5 * (h + v))[..., None]  # (H, W, 1) in {0, .5, 1}
    out = base * (1 - a) + accent * a
    if rng.random() < 0.5:  # plaid: thin lines of a third colour
        line = random_colour(rng)
        lw = max(1.0, 0.012 * W)
        thin = ((((y + ph + period / 2) % period) < lw) | (((x + pw + period / 2) % period) < lw))
        out = np.where(thin[..., None], line, out)
    return out.astype(np.uint8)


def dots(rng, size, base, accent) -> np.ndarray:
    H, W = size
    step = rng.uniform(0.06, 0.16) * W
    r = step * rng.uniform(0.15, 0.35)
    y, x = np.ogrid[:H, :W]
    row = np.floor(y / step)
    shift = (row % 2) * step / 2 * (rng.random() < 0.6)  # staggered rows
    dy = (y % step) - step / 2
    dx = ((x + shift) % step) - step / 2
    inside = (dx * dx + dy * dy) < r * r
    return np.where(inside[..., None], accent, base).astype(np.uint8)


def tiled_texture(rng, size, base, accent) -> np.ndarray:
    """A bundled texture, rescaled, tiled over the canvas; grey ones tinted from base to accent."""
    H, W = size
    if rng.random() < 0.75:
        img = texture(GREY_TEXTURES[rng.integers(len(GREY_TEXTURES))])
    else:
        img = texture(COLOUR_TEXTURES[rng.integers(len(COLOUR_TEXTURES))])
    scale = rng.uniform(0.25, 0.8) * H / 256
    th, tw = max(8, int(img.shape[0] * scale)), max(8, int(img.shape[1] * scale))
    tile = np.asarray(Image.fromarray(img).resize((tw, th), Image.BILINEAR))
    oy, ox = rng.integers(0, th), rng.integers(0, tw)
    tile = tile[(np.arange(H) + oy) % th][:, (np.arange(W) + ox) % tw]
    if tile.ndim == 2:
        g = tile.astype(np.float32)[..., None] / 255
        g = (g - g.mean()) * rng.uniform(1.0, 2.0) + 0.5  # stretch contrast around the middle
        tile = base * (1 - g.clip(0, 1)) + accent * g.clip(0, 1)
    return np.clip(tile, 0, 255).astype(np.uint8)


def solid(rng, size, base, accent) -> np.ndarray:
    H, W = size
    return np.broadcast_to(base, (H, W, 3)).copy()


def _mark(draw: ImageDraw.ImageDraw, rng, box, colour) -> None:
    """A geometric logo mark (ring, disc, triangle, star, square, swoosh) inside `box`."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
    w = max(1, int(r * 0.25))
    kind = rng.integers(6)
    col = tuple(int(c) for c in colour)
    if kind == 0:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col, width=w)
    elif kind == 1:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
    elif kind == 2:
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=col)
    elif kind == 3:
        a = np.linspace(0, 2 * np.pi, 11)[:-1] - np.pi / 2
        rr = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        draw.polygon(list(zip(cx + rr * np.cos(a), cy + rr * np.sin(a))), fill=col)
    elif kind == 4:
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), outline=col, width=w)
    else:
        draw.arc((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), 20, 160, fill=col, width=w * 2)


def _text_box(draw, xy, text, size, colour, anchor="mm") -> None:
    draw.text(xy, text, fill=tuple(int(c) for c in colour), font=font(size), anchor=anchor)


def logo(rng, size, base, accent, chest) -> np.ndarray:
    """Solid or subtly textured base with a mark and letters on the chest box (x0, y0, x1, y1)."""
    img = Image.fromarray(solid(rng, size, base, accent))
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = chest
    w, h = x1 - x0, y1 - y0
    left = rng.random() < 0.4  # small mark on the wearer's left chest, else centred
    if left:
        cx, cy, r = x0 + 0.78 * w, y0 + 0.22 * h, 0.11 * w
    else:
        cx, cy, r = x0 + 0.5 * w, y0 + 0.3 * h, rng.uniform(0.14, 0.24) * w
    _mark(draw, rng, (cx - r, cy - r, cx + r, cy + r), accent)
    letters = "".join(chr(65 + i) for i in rng.integers(0, 26, rng.integers(2, 5)))
    if rng.random() < 0.3:
        letters = WORDS[rng.integers(len(WORDS))]
    _text_box(draw, (cx, cy + r * 1.6), letters, max(r * 0.9, 6), accent)
    return np.asarray(img)


def text(rng, size, base, accent, chest) -> np.ndarray:
    """A slogan across the chest, or words repeated all over."""
    H, W = size
    img = Image.fromarray(solid(rng, size, base, accent))
    draw = ImageDraw.Draw(img)
    word = WORDS[rng.integers(len(WORDS))]
    if rng.random() < 0.5:
        x0, y0, x1, y1 = chest
        fs = min((x1 - x0) / max(len(word), 2) * 1.5, (y1 - y0) * 0.4)
        _text_box(draw, ((x0 + x1) / 2, y0 + 0.4 * (y1 - y0)), word, fs, accent)
        if rng.random() < 0.6:
            sub = WORDS[rng.integers(len(WORDS))]
            _text_box(draw, ((x0 + x1) / 2, y0 + 0.4 * (y1 - y0) + fs), sub, fs * 0.5, accent)
    else:
        fs = rng.uniform(0.045, 0.09) * H
        step_y = fs * rng.uniform(1.3, 2.0)
        for i, y in enumerate(np.arange(-fs, H + fs, step_y)):
            off = (i % 2) * fs * 2
            for x in np.arange(-off, W, fs * (len(word) * 0.75 + 1.5)):
                _text_box(draw, (x, y), word, fs, accent, anchor="lm")
    return np.asarray(img)


def graphic(rng, size, base, accent, chest) -> np.ndarray:
    """A photo graphic (a bundled image) printed on the chest of a solid base."""
    img = Image.fromarray(solid(rng, size, base, accent))
    x0, y0, x1, y1 = chest
    pic = texture(GRAPHICS[rng.integers(len(GRAPHICS))])
    pw = int((x1 - x0) * rng.uniform(0.55, 0.85))
    ph = max(4, int(pw * pic.shape[0] / pic.shape[1]))
    ph = min(ph, int(y1 - y0))
    tile = Image.fromarray(pic).convert("RGB").resize((max(4, pw), ph), Image.BILINEAR)
    img.paste(tile, (int((x0 + x1 - pw) / 2), int(y0 + 0.05 * (y1 - y0))))
    return np.asarray(img)


def render_print(rng: np.random.Generator, kind: str, size: tuple[int, int],
                 chest: tuple[float, float, float, float], base: np.ndarray,
                 accent: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 print canvas of `kind`; `chest` is the logo box in pixels."""
    if kind in ("logo", "text", "graphic"):
        return {"logo": logo, "text": text, "graphic": graphic}[kind](rng, size, base, accent, chest)
    fn = {"solid": solid, "stripes": stripes, "checks": checks, "dots": dots,
          "texture": tiled_texture}[kind]
    return fn(rng, size, base, accent)
