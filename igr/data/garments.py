"""Parametric garment silhouettes and their flat, in-shop rendering.

Geometry lives in *garment units*: x to the image right, y down, origin at the centre of the
neck line (the waist band for skirts); the shoulder half-width of a tee is about 1. The same
geometry is drawn flat on white (in-shop image) and draped on the procedural person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ("tee", "long_sleeve", "tank", "shirt", "dress", "jacket", "hoodie", "skirt")


@dataclass(frozen=True, eq=False)
class Sleeve:
    """One sleeve, a rigid piece hinged at the shoulder joint."""
    side: int              # -1 image left, +1 image right
    joint: np.ndarray      # (2,) units: axis origin, between the shoulder point and the armpit
    axis: np.ndarray       # (2,) unit vector along the sleeve as laid flat
    length: float          # units from joint to cuff
    polygon: np.ndarray    # (K, 2) units


@dataclass(frozen=True, eq=False)
class Detail:
    """A drawing op in units: polygon, line (a polyline) or ellipse (two corners)."""
    kind: str
    points: np.ndarray     # (K, 2) units
    fill: tuple | None = None
    outline: tuple | None = None
    width: float = 0.03    # units


@dataclass(frozen=True, eq=False)
class GarmentGeom:
    """A garment's cut: body polygon(s), sleeves, draping profile and drawn details."""
    category: str
    anchor: str                      # "shoulder": y=0 is the neck line; "waist": the waist band
    body: tuple[np.ndarray, ...]     # polygons (K, 2) of the body piece (with collar, hood)
    sleeves: tuple[Sleeve, ...]
    profile_y: np.ndarray            # (R,) rows, units
    profile_w: np.ndarray            # (R,) half-width of the body under the garment, units
    details: tuple[Detail, ...] = field(default=())
    chest: tuple[float, float, float, float] = (-0.6, 0.35, 0.6, 1.35)  # print box, units

    def half_width(self, y: np.ndarray) -> np.ndarray:
        """Draping half-width (units) at rows y (units)."""
        return np.interp(y, self.profile_y, self.profile_w)

    def points(self) -> np.ndarray:
        """(N, 2) every outline point, for framing."""
        return np.concatenate(list(self.body) + [s.polygon for s in self.sleeves])


@dataclass(frozen=True)
class Fit:
    """Units -> pixels of the in-shop image: px = offset + scale * units."""
    scale: float
    ox: float
    oy: float

    def px(self, pts: np.ndarray) -> np.ndarray:
        return np.stack([self.ox + self.scale * pts[..., 0], self.oy + self.scale * pts[..., 1]], -1)


def _shade(c, f: float) -> tuple:
    return tuple(int(v) for v in np.clip(np.asarray(c, np.float32) * f, 0, 255))


def _neckline(kind: str, nw: float, nd: float, n: int = 9) -> np.ndarray:
    """Points from (-nw, 0) through (0, nd) to (nw, 0)."""
    if kind == "v":
        return np.array([[-nw, 0.0], [0.0, nd], [nw, 0.0]])
    a = np.linspace(0, np.pi, n)
    return np.stack([-nw * np.cos(a), nd * np.sin(a)], -1)


def _curve(p0, ctrl, p1, n: int = 6) -> np.ndarray:
    """Quadratic Bezier from p0 to p1, (n, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    p0, ctrl, p1 = (np.asarray(p, float) for p in (p0, ctrl, p1))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t ** 2 * p1


def _mirror(right: np.ndarray) -> np.ndarray:
    """Left side points (mirrored, reversed) for a right-side list ordered top to bottom."""
    return (right * [-1, 1])[::-1]


def _torso(neck: np.ndarray, right: np.ndarray, hem_sag: float = 0.0) -> np.ndarray:
    """Closed body polygon: neckline left->right, right side down, hem, left side up."""
    hem = np.array([[0.0, right[-1, 1] + hem_sag]]) if hem_sag else np.zeros((0, 2))
    return np.concatenate([neck, right, hem, _mirror(right)])


def _sleeve(side: int, shoulder, armpit, angle: float, length: float, cuff: float) -> Sleeve:
    """A sleeve from the armhole (shoulder point .. armpit) out along `angle` from vertical."""
    sx = np.array([side, 1.0])
    p_s, p_a = np.asarray(shoulder) * sx, np.asarray(armpit) * sx
    joint = (p_s + p_a) / 2
    axis = np.array([side * np.sin(angle), np.cos(angle)])
    normal = np.array([-axis[1], axis[0]])
    normal = normal if normal[1] < 0 else -normal  # points up, away from the armpit
    end = joint + length * axis
    poly = np.stack([p_s, end + cuff * normal, end - cuff * normal, p_a])
    return Sleeve(side, joint, axis, float(length), poly)


def _band(sleeve: Sleeve, depth: float, cuff: float) -> np.ndarray:
    """The last `depth` units of a sleeve: a cuff band polygon."""
    n = np.array([-sleeve.axis[1], sleeve.axis[0]])
    a, b = sleeve.joint + (sleeve.length - depth) * sleeve.axis, sleeve.joint + sleeve.length * sleeve.axis
    return np.stack([a + cuff * n, b + cuff * n, b - cuff * n, a - cuff * n])


def build(rng: np.random.Generator, category: str, base, trim) -> GarmentGeom:
    """Random proportions for `category`; `base`/`trim` colours are used by the details."""
    u = rng.uniform
    dark, seam = _shade(base, 0.55), _shade(base, 0.75)
    trim = tuple(int(c) for c in trim)
    details: list[Detail] = []
    if category == "skirt":
        ww, length, hw = u(0.72, 0.86), u(1.4, 2.5), u(0.95, 1.6)
        band = u(0.1, 0.18)
        body = np.array([[-ww, 0], [ww, 0], [hw, length], [0, length + 0.05], [-hw, length]])
        details.append(Detail("line", np.array([[-ww, band], [ww, band]]), outline=seam, width=0.03))
        if rng.random() < 0.5:  # pleats
            for x in np.linspace(-0.7, 0.7, int(rng.integers(3, 7))):
                details.append(Detail("line", np.array([[x * ww, band], [x * hw, length]]),
                                      outline=seam, width=0.02))
        prof_y, prof_w = np.array([0, length]), np.array([ww, hw])
        return GarmentGeom(category, "waist", (body,), (), prof_y, prof_w, tuple(details),
                           chest=(-0.45 * hw, 0.3 * length, 0.45 * hw, 0.75 * length))

    sw = u(0.95, 1.08)                                   # shoulder half-width
    drop = u(0.1, 0.22)                                  # shoulder slope
    ay, aw = u(0.75, 0.95), sw * u(0.95, 1.05)           # armpit row and half-width
    length = {"dress": u(3.5, 4.6), "jacket": u(2.4, 2.9), "tank": u(2.2, 2.7)}.get(category, u(2.35, 2.9))
    wy, ww = (u(1.45, 1.8), aw * u(0.78, 0.9)) if category == "dress" else (0.55 * length, aw * u(0.9, 1.02))
    hw = u(1.3, 1.9) if category == "dress" else aw * u(0.92, 1.12)
    nw, neck_kind = u(0.3, 0.42), rng.choice(["crew", "crew", "v", "scoop"])
    nd = {"crew": u(0.12, 0.25), "v": u(0.45, 0.8), "scoop": u(0.3, 0.55)}[neck_kind]
    if category in ("shirt", "jacket", "hoodie"):
        neck_kind, nw, nd = "crew", u(0.28, 0.36), u(0.12, 0.2)
    straps = category == "tank" or (category == "dress" and rng.random() < 0.5)
    if straps:
        strap_out, nw = u(0.55, 0.72), u(0.3, 0.44)
        nd = u(0.45, 0.85)
        ay = u(0.85, 1.1)
        arm = _curve([strap_out, 0.02], [strap_out, ay * 0.9], [aw, ay])
        right = np.concatenate([[[nw + 0.02, 0.0]], arm, [[ww, wy], [hw, length]]])
    else:
        right = np.array([[nw + 0.02, 0.0], [sw, drop], [aw, ay], [ww, wy], [hw, length]])
    hem_sag = u(0.1, 0.25) if category == "shirt" and rng.random() < 0.6 else 0.0
    body = [_torso(_neckline(neck_kind, nw, nd), right, hem_sag)]
    prof_y = np.array([drop, ay, wy, length])
    prof_w = np.array([sw if not straps else max(sw, 0.95), aw, ww, hw])

    sleeves: tuple[Sleeve, ...] = ()
    if not straps:
        long = category in ("long_sleeve", "jacket", "hoodie") or (category == "shirt" and rng.random() < 0.5)
        if long:
            angle, sl, cuff = u(0.22, 0.42), u(1.85, 2.1), u(0.17, 0.23)
        elif category == "dress":
            angle, sl, cuff = u(0.6, 0.9), u(0.35, 0.6), u(0.3, 0.38)
        else:
            angle, sl, cuff = u(0.6, 0.9), u(0.55, 0.9), u(0.3, 0.4)
        sleeves = tuple(_sleeve(s, [sw, drop], [aw, ay], angle, sl, cuff) for s in (-1, 1))
        if long and category in ("long_sleeve", "hoodie", "jacket"):  # ribbed cuffs
            for s in sleeves:
                band = trim if category == "jacket" else seam
                details.append(Detail("polygon", _band(s, 0.14, cuff), fill=band))

    # Category details, drawn over the print.
    def add(kind, *pts, **kw):
        details.append(Detail(kind, np.array(pts, float), **kw))

    if category in ("long_sleeve", "tee", "tank") and neck_kind != "v":   # ribbed neckline
        details.append(Detail("line", _neckline(neck_kind, nw, nd) + [0, 0.04], outline=seam, width=0.06))
    if category in ("hoodie", "jacket") or (category == "long_sleeve" and rng.random() < 0.3):   # hem band
        add("polygon", *_rect(-hw, length - 0.16, hw, length), fill=trim if category == "jacket" else seam)
    if category == "shirt":
        add("polygon", *_rect(-0.08, nd, 0.08, length + hem_sag), outline=seam, width=0.025)   # placket
        for y in np.linspace(nd + 0.2, length - 0.15, int(rng.integers(5, 8))):
            add("ellipse", [-0.035, y - 0.035], [0.035, y + 0.035], fill=(235, 235, 230))
        collar_w = u(0.35, 0.5)
        for s in (-1, 1):
            flap = np.array([[0.0, nd + 0.02], [s * (nw + 0.06), -0.08], [s * (nw + 0.12), 0.1],
                             [s * collar_w * 1.1, nd + 0.25]])
            body.append(flap)
            details.append(Detail("polygon", flap, outline=dark, width=0.03))
        if rng.random() < 0.6:  # chest pocket on the wearer's left (image right)
            add("polygon", [0.3, 0.6], [0.65, 0.6], [0.65, 1.0], [0.475, 1.06], [0.3, 1.0],
                outline=seam, width=0.03)
    if category == "jacket":
        add("line", [0.0, nd], [0.0, length], outline=(60, 60, 62), width=0.07)                # zip
        add("ellipse", [-0.05, nd + 0.05], [0.05, nd + 0.22], fill=(200, 200, 205))           # zip pull
        for s in (-1, 1):                                                                     # welt pockets
            add("line", [s * 0.4, length * 0.62], [s * 0.65, length * 0.8], outline=dark, width=0.05)
        if rng.random() < 0.5:  # stand collar
            collar = np.array(_rect(-nw - 0.05, -0.2, nw + 0.05, 0.05))
            body.append(collar)
            details.append(Detail("polygon", collar, fill=trim, outline=dark, width=0.02))
        else:
            _add_hood(body, details, u, nw, nd, dark)
    if category == "hoodie":
        _add_hood(body, details, u, nw, nd, dark)
        py = length * u(0.55, 0.62)
        add("polygon", [-0.55, py], [0.55, py], [0.72, length - 0.2], [-0.72, length - 0.2],   # kangaroo pocket
            outline=dark, width=0.04)
        for s in (-1, 1):                                                                     # drawstrings
            add("line", [s * 0.12, 0.08], [s * 0.14, u(0.7, 1.0)], outline=trim, width=0.035)
    if category == "dress" and rng.random() < 0.6:  # waist seam or belt
        add("polygon", *_rect(-ww, wy - 0.06, ww, wy + 0.06), fill=trim if rng.random() < 0.5 else seam)
    chest = (-0.62 * aw, max(nd, 0.2) + 0.15, 0.62 * aw, max(nd, 0.2) + 1.15)
    return GarmentGeom(category, "shoulder", tuple(body), sleeves, prof_y, prof_w, tuple(details), chest)


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _add_hood(body: list, details: list, u, nw: float, nd: float, dark) -> None:
    """A hood laid flat above the neckline (it closes the neck opening)."""
    hw, hh = nw + u(0.1, 0.22), u(0.75, 0.95)
    a = np.linspace(0, np.pi, 11)
    arc = np.stack([hw * np.cos(a), -0.1 - hh * np.sin(a)], -1)
    hood = np.concatenate([[[nw + 0.05, 0.1]], arc, [[-nw - 0.05, 0.1], [0.0, nd + 0.03]]])
    body.insert(0, hood)
    inner = np.stack([(hw - 0.16) * np.cos(a), -0.05 - (hh - 0.2) * np.sin(a)], -1)
    details.append(Detail("line", inner, outline=dark, width=0.04))


def fit_flat(geom: GarmentGeom, size: tuple[int, int], fill: float = 0.86) -> Fit:
    """Centre the garment in an (H, W) frame, filling `fill` of the tighter side."""
    H, W = size
    pts = geom.points()
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    scale = fill * min(W / (x1 - x0), H / (y1 - y0))
    return Fit(scale, W / 2 - scale * (x0 + x1) / 2, H / 2 - scale * (y0 + y1) / 2)


def _xy(fit: Fit, pts: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in fit.px(pts)]


def render_flat(geom: GarmentGeom, fit: Fit, canvas: np.ndarray, base) -> tuple[np.ndarray, np.ndarray]:
    """In-shop image and part bitmask: (H, W, 3) uint8 on white, (H, W) uint8 bits 1 body, 2|4 sleeves."""
    H, W = canvas.shape[:2]
    bits = np.zeros((H, W), np.uint8)
    pieces = [(1, list(geom.body))] + [(2 if s.side < 0 else 4, [s.polygon]) for s in geom.sleeves]
    for bit, polys in pieces:
        m = Image.new("L", (W, H), 0)
        d = ImageDraw.Draw(m)
        for poly in polys:
            d.polygon(_xy(fit, poly), fill=255)
        bits |= np.where(np.asarray(m) > 0, np.uint8(bit), np.uint8(0))
    img = Image.fromarray(np.where(bits[..., None] > 0, canvas, np.uint8(255)))
    draw = ImageDraw.Draw(img)
    px = lambda w: max(1, round(w * fit.scale))  # noqa: E731
    seam = _shade(base, 0.7)
    for s in geom.sleeves:  # seams make the pieces readable
        draw.line(_xy(fit, s.polygon[[0, 3]]), fill=seam, width=px(0.025))
    for d in geom.details:
        xy = _xy(fit, d.points)
        if d.kind == "polygon":
            draw.polygon(xy, fill=d.fill, outline=d.outline, width=px(d.width))
        elif d.kind == "line":
            draw.line(xy, fill=d.outline, width=px(d.width), joint="curve")
        else:
            draw.ellipse(xy, fill=d.fill, outline=d.outline)
    out = np.asarray(img).copy()
    inside = bits > 0
    out[inside] = out[inside].clip(6, 238)  # a garment is never paper-white: mask == non-white
    out[~inside] = 255
    return out, bits
