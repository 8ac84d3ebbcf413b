"""The procedural person who wears a SynthGarment: body, pose, draping, scene and camera.

The garment's body piece is draped on an elliptic cylinder (torso turn = rotating it), its
sleeves are rigid pieces re-hinged onto the arms (upper arm and forearm), a smooth random
displacement field and fold bands deform and shade it, and occluders drawn after it (head,
hair, crossing arms, hands, bag, strap, a foreground object) are recorded in an occluder mask
so the occlusion is measured, not guessed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .garments import Fit, GarmentGeom, Sleeve
from .prints import GREY_TEXTURES, random_colour, texture

T_EDGE = 1.35      # radians of the body cylinder that the flat front panel spans
FIT = 0.85         # a garment laid flat is wider than its projection on the body
# Body under the clothes, rows in units below the neck line -> half-width in units.
BODY_Y = np.array([0.05, 0.5, 1.0, 1.7, 2.3, 3.0])
BODY_W = np.array([0.9, 0.97, 0.9, 0.78, 0.88, 0.92])
SKIN = np.array([[250, 220, 200], [234, 192, 160], [205, 155, 115], [160, 110, 75],
                 [112, 72, 48], [72, 46, 32]], np.float32)
HAIR = [(25, 20, 18), (60, 40, 25), (110, 75, 40), (200, 160, 90), (150, 60, 30),
        (130, 130, 130), (90, 40, 110), (30, 60, 120)]   # six natural, then two dyed
POSES = ("down", "out", "raised", "akimbo", "cross")


@dataclass(frozen=True)
class SceneConfig:
    """Probabilities and strengths of clutter, occluders and camera damage."""
    turn_max: float = 0.6          # radians of torso turn
    p_pose: tuple[float, ...] = (0.45, 0.12, 0.1, 0.18, 0.15)   # per arm, over POSES
    p_long_hair: float = 0.4
    p_bag: float = 0.25
    p_object: float = 0.15
    clutter: bool = True
    max_blur: float = 1.5          # gaussian sigma in px at 256 rows
    max_noise: float = 10.0        # std in uint8 levels
    p_jpeg: float = 0.4

    @classmethod
    def clean(cls) -> "SceneConfig":
        """No props, long hair or arms across the body; a sharp, noiseless camera."""
        return cls(p_pose=(0.6, 0.25, 0.15, 0.0, 0.0), p_long_hair=0.0, p_bag=0.0, p_object=0.0,
                   max_blur=0.0, max_noise=0.0, p_jpeg=0.0)

    @classmethod
    def occluded(cls) -> "SceneConfig":
        """Every occluder on: an arm across the body, long hair, a bag, a foreground object."""
        return cls(p_pose=(0.0, 0.0, 0.0, 0.0, 1.0), p_long_hair=1.0, p_bag=1.0, p_object=1.0)


@dataclass
class Rendered:
    """The person image, the garment's full on-body mask and the occluder mask."""
    image: np.ndarray      # (H, W, 3) uint8
    garment: np.ndarray    # (H, W) bool: garment pixels before occluders (in frame)
    occluder: np.ndarray   # (H, W) bool: drawn over the garment by something else
    blur: float            # gaussian sigma, px at 256 rows
    noise: float           # noise std, uint8 levels
    jpeg: int              # JPEG quality, 100 = none
    flat_xy: np.ndarray | None = None   # (H, W, 2) float32: in-shop (x, y) px of each visible garment pixel, else NaN


class _Layer:
    """A PIL canvas whose shapes can also be recorded in an occluder mask."""

    def __init__(self, img: Image.Image):
        self.img, self.mask = img, Image.new("L", img.size, 0)
        self.d, self.m = ImageDraw.Draw(img), ImageDraw.Draw(self.mask)

    def __call__(self, method: str, xy, fill, *, occ: bool = False, **kw) -> None:
        getattr(self.d, method)(xy, fill=fill, **kw)
        if occ:
            getattr(self.m, method)(xy, fill=255, **kw)

    def repaint(self, canvas: np.ndarray, uncover: np.ndarray | None = None) -> None:
        """Replace the picture by a float (H, W, 3) canvas; clear the occluder mask where `uncover`."""
        self.img = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
        self.d = ImageDraw.Draw(self.img)
        if uncover is not None:
            mask = np.asarray(self.mask).copy()
            mask[uncover] = 0
            self.mask = Image.fromarray(mask)
            self.m = ImageDraw.Draw(self.mask)


def _tup(c) -> tuple:
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _smooth_field(rng, size, grid, amp) -> np.ndarray:
    """(H, W) float32 smooth random field, std ~ amp, from a coarse grid upsampled bicubic."""
    H, W = size
    g = (rng.standard_normal(grid) * amp).astype(np.float32)
    return np.asarray(Image.fromarray(g).resize((W, H), Image.BICUBIC))


def background(rng, size) -> Image.Image:
    """A cluttered room: smooth colour gradient, floor, furniture boxes, a texture poster, blobs."""
    H, W = size
    corners = rng.uniform(40, 230, (2, 2, 3)) * rng.uniform(0.6, 1.0, 3)
    img = Image.fromarray(corners.astype(np.uint8)).resize((W, H), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    mute = lambda: _tup(random_colour(rng) * 0.6 + rng.uniform(40, 110))  # noqa: E731
    if rng.random() < 0.6:
        fy = rng.uniform(0.6, 0.85) * H
        d.polygon([(0, fy + rng.uniform(-0.05, 0.05) * H), (W, fy), (W, H), (0, H)], fill=mute())
    for _ in range(rng.integers(1, 6)):
        x0, y0 = rng.uniform(-0.2, 0.9) * W, rng.uniform(-0.1, 0.9) * H
        w, h = rng.uniform(0.1, 0.6) * W, rng.uniform(0.05, 0.5) * H
        d.rectangle((x0, y0, x0 + w, y0 + h), fill=mute(), outline=mute() if rng.random() < 0.5 else None,
                    width=max(1, W // 96))
    if rng.random() < 0.5:
        tex = texture(GREY_TEXTURES[rng.integers(len(GREY_TEXTURES))])
        tw, th = int(rng.uniform(0.2, 0.5) * W), int(rng.uniform(0.15, 0.4) * H)
        ty, tx = rng.integers(0, tex.shape[0] - 32), rng.integers(0, tex.shape[1] - 32)
        patch = Image.fromarray(tex[ty:, tx:]).resize((max(tw, 2), max(th, 2)))
        tint = Image.new("RGB", patch.size, mute())
        at = (int(rng.uniform(0, W - tw)), int(rng.uniform(0, H * 0.7)))
        img.paste(Image.blend(patch.convert("RGB"), tint, 0.5), at)
    for _ in range(rng.integers(0, 5)):
        x, y, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.03, 0.15) * W
        d.ellipse((x - r, y - r * rng.uniform(0.6, 1.6), x + r, y + r), fill=mute())
    return img


def _arm(side, joint, pose, rng, s) -> tuple[np.ndarray, np.ndarray, bool]:
    """Elbow and wrist (px) for a pose; True if the forearm passes in front of the torso."""
    u = rng.uniform
    a1, a2 = {
        "down": lambda: (u(0.08, 0.3), u(0.05, 0.45)),
        "out": lambda: (u(0.55, 1.0), u(0.3, 1.3)),
        "raised": lambda: (u(2.0, 2.7), u(2.2, 3.0)),
        "akimbo": lambda: (u(0.55, 0.85), -u(0.6, 1.0)),
        "cross": lambda: (u(0.0, 0.25), -u(1.35, 1.85)),
    }[pose]()
    up, fore = u(0.95, 1.1) * s, u(0.95, 1.05) * s
    elbow = joint + up * np.array([side * np.sin(a1), np.cos(a1)])
    wrist = elbow + fore * np.array([side * np.sin(a2), np.cos(a2)])
    return elbow, wrist, pose in ("akimbo", "cross")


@dataclass(frozen=True)
class _Body:
    cx: float          # torso axis, px
    y0: float          # row of garment y=0 (neck line, or waist band for skirts), px
    s: float           # px per garment unit
    squash: float      # projected width factor of the turned torso
    delta: float       # angular shift of the turned torso, radians


def _drape_body(geom: GarmentGeom, b: _Body, X, Y):
    """Person px -> flat garment units for the body piece: (ux, uy, psi, inside)."""
    uy = (Y - b.y0) / b.s
    w = geom.half_width(uy)
    r = (X - b.cx) / (w * b.s * FIT * b.squash)
    inside = np.abs(r) < 1
    psi = np.arcsin(np.clip(r, -1, 1))                 # surface normal angle seen by the camera
    t = psi - b.delta
    t = np.where(t > T_EDGE, 2 * T_EDGE - t, np.where(t < -T_EDGE, -2 * T_EDGE - t, t))  # back panel
    return t / T_EDGE * w, uy, psi, inside


def _drape_limb(origin_px, d, s, flat_joint, flat_axis, offset, X, Y):
    """Person px -> flat units for a rigid sleeve segment along unit vector d from origin_px."""
    px, py = X - origin_px[0], Y - origin_px[1]
    t = (px * d[0] + py * d[1]) / s
    n = (-px * d[1] + py * d[0]) / (s * FIT)
    fa = flat_axis
    ux = flat_joint[0] + (t + offset) * fa[0] - n * fa[1]
    uy = flat_joint[1] + (t + offset) * fa[1] + n * fa[0]
    return ux, uy, t, n


def _sample(flat: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Bilinear lookup of (N,) float coords in an (H, W, 3) uint8 image -> (N, 3) float32."""
    H, W = flat.shape[:2]
    fx, fy = fx.clip(0, W - 1.001), fy.clip(0, H - 1.001)
    x0, y0 = fx.astype(np.int32), fy.astype(np.int32)
    ax, ay = (fx - x0)[:, None], (fy - y0)[:, None]
    f = flat.reshape(-1, 3)
    i = y0 * W + x0
    top = f[i] * (1 - ax) + f[i + 1] * ax
    bot = f[i + W] * (1 - ax) + f[i + W + 1] * ax
    return top * (1 - ay) + bot * ay


def _folds(rng, size, b: _Body, n: int) -> np.ndarray:
    """(H, W) float32 multiplicative fold shading: gaussian-windowed sinusoidal bands.

    Computed at half resolution and upsampled: folds are smooth.
    """
    H, W = size
    h, w = (H + 1) // 2, (W + 1) // 2
    y, x = np.ogrid[:h, :w]
    x, y = x * (W / w), y * (H / h)
    out = np.ones((h, w), np.float32)
    for _ in range(n):
        cx, cy = b.cx + rng.normal(0, 0.6) * b.s, b.y0 + rng.uniform(0.3, 2.6) * b.s
        ang = rng.normal(0, 0.5) + (np.pi / 2 if rng.random() < 0.3 else 0)  # mostly vertical drape
        lam = rng.uniform(0.25, 0.5) * b.s                      # crease spacing
        sig_a, sig_l = lam * rng.uniform(0.5, 0.9), rng.uniform(0.5, 1.2) * b.s   # window: ~1-2 creases, long
        across = (x - cx) * np.cos(ang) + (y - cy) * np.sin(ang)
        along = -(x - cx) * np.sin(ang) + (y - cy) * np.cos(ang)
        win = np.exp(-0.5 * (across / sig_a) ** 2 - 0.5 * (along / sig_l) ** 2)
        out *= (1 + rng.uniform(0.1, 0.3) * win * np.sin(across / lam * 2 * np.pi)).astype(np.float32)
    return np.asarray(Image.fromarray(out).resize((W, H), Image.BILINEAR))


@dataclass
class _Piece:
    """A draped garment piece inside a box of the person image."""
    box: tuple[slice, slice]
    m: np.ndarray          # (h, w) bool: the piece covers this pixel
    fx: np.ndarray         # (h, w) float: x in the in-shop image
    fy: np.ndarray         # (h, w) float: y in the in-shop image
    shade: np.ndarray      # (h, w) float: shading multiplier


class _Drape:
    """Maps person pixels into the flat garment through one shared displacement field."""

    def __init__(self, rng, fit: Fit, flat, bits, b: _Body):
        H, W = bits.shape
        self.fit, self.flat, self.bits, self.b, self.size = fit, flat, bits, b, (H, W)
        amp = rng.uniform(0.008, 0.03) * W
        Y, X = np.mgrid[0:H, 0:W].astype(np.float32)
        self.X = X + _smooth_field(rng, (H, W), (4, 3), amp)   # (H, W) displaced coordinates
        self.Y = Y + _smooth_field(rng, (H, W), (4, 3), amp)
        self.margin = 3 * amp
        self.light, self.ambient = rng.uniform(-0.8, 0.8), rng.uniform(0.45, 0.7)
        self.folds = _folds(rng, (H, W), b, int(rng.integers(2, 6)))
        self.flat_xy = np.full((H, W, 2), np.nan, np.float32)   # where each painted pixel comes from

    def _box(self, x0, y0, x1, y1) -> tuple[slice, slice] | None:
        H, W = self.size
        m = self.margin
        r0, r1 = max(0, int(y0 - m)), min(H, int(np.ceil(y1 + m)) + 1)
        c0, c1 = max(0, int(x0 - m)), min(W, int(np.ceil(x1 + m)) + 1)
        return (slice(r0, r1), slice(c0, c1)) if r1 > r0 and c1 > c0 else None

    def _piece(self, box, ux, uy, bit, valid, shade) -> _Piece:
        H, W = self.size
        fx, fy = self.fit.ox + self.fit.scale * ux, self.fit.oy + self.fit.scale * uy
        ok = valid & (fx >= 0) & (fx <= W - 1) & (fy >= 0) & (fy <= H - 1)
        xi, yi = fx.clip(0, W - 1).astype(np.int32), fy.clip(0, H - 1).astype(np.int32)
        return _Piece(box, ok & ((self.bits[yi, xi] & bit) > 0), fx, fy, shade)

    def body(self, geom: GarmentGeom) -> list[_Piece]:
        b = self.b
        pts = np.concatenate(geom.body)
        half = geom.profile_w.max() * b.s * FIT * b.squash
        box = self._box(b.cx - half, b.y0 + pts[:, 1].min() * b.s, b.cx + half, b.y0 + pts[:, 1].max() * b.s)
        if box is None:
            return []
        ux, uy, psi, inside = _drape_body(geom, b, self.X[box], self.Y[box])
        shade = self.ambient + (1 - self.ambient) * np.maximum(np.cos(psi - self.light), 0)
        return [self._piece(box, ux, uy, 1, inside, shade)]

    def sleeve(self, sl: Sleeve, joint, elbow, wrist) -> list[_Piece]:
        """Forearm then upper-arm segment of a sleeve hinged at the person's shoulder `joint`."""
        s = self.b.s
        up = np.linalg.norm(elbow - joint)
        d1, d2 = (elbow - joint) / up, (wrist - elbow) / np.linalg.norm(wrist - elbow)
        reach = np.abs(sl.polygon - sl.joint).max() + 0.1    # units from the joint to any sleeve point
        out = []
        segments = [(joint, d1, 0.0, up / s, lambda t: (t >= -0.1) & (t <= up / s + 0.1))]
        if sl.length > up / s:
            segments.insert(0, (elbow, d2, up / s, sl.length - up / s, lambda t: t >= -0.05))
        for origin, d, offset, length, keep in segments:
            end = origin + d * length * s
            r = reach * s if offset == 0 else 0.6 * s
            box = self._box(min(origin[0], end[0]) - r, min(origin[1], end[1]) - r,
                            max(origin[0], end[0]) + r, max(origin[1], end[1]) + r)
            if box is None:
                continue
            ux, uy, t, n = _drape_limb(origin, d, s, sl.joint, sl.axis, offset, self.X[box], self.Y[box])
            shade = self.ambient + (1 - self.ambient) * (1 - 0.5 * np.clip(n / 0.45, -1, 1) ** 2)
            out.append(self._piece(box, ux, uy, 2 if sl.side < 0 else 4, keep(t), shade))
        return out

    def composite(self, canvas: np.ndarray, full: np.ndarray, pieces: list[_Piece]) -> np.ndarray:
        """Paint pieces over `canvas` (H, W, 3) float32 in order; mark them in `full` (H, W) bool."""
        cover = np.zeros_like(full)
        for p in pieces:
            if not p.m.any():
                continue
            shade = (p.shade * self.folds[p.box])[p.m][:, None]
            canvas[p.box][p.m] = _sample(self.flat, p.fx[p.m], p.fy[p.m]) * shade
            self.flat_xy[p.box][p.m] = np.stack([p.fx[p.m], p.fy[p.m]], 1)
            cover[p.box] |= p.m
        full |= cover
        return cover


@dataclass(frozen=True)
class _Arm:
    side: int
    sleeve: Sleeve | None
    joint: np.ndarray      # (2,) px, shoulder
    elbow: np.ndarray      # (2,) px
    wrist: np.ndarray      # (2,) px
    front: bool            # forearm passes in front of the torso


@dataclass(frozen=True)
class _Figure:
    """The wearer, in person pixels."""
    body: _Body            # the garment's frame on the body (neck line, or waist for skirts)
    y_neck: float
    theta: float           # torso turn, radians
    head: tuple            # (x0, y0, x1, y1) face ellipse
    neck: float            # neck half-width, px
    skin: np.ndarray       # (3,) float32
    arms: tuple[_Arm, ...]
    r_up: float            # upper-arm radius, px
    r_fore: float          # forearm radius, px

    def half(self, uy: float) -> float:
        """Projected half-width (px) of the bare torso at uy units below the neck line."""
        b = self.body
        return float(np.interp(uy, BODY_Y, BODY_W)) * b.s * FIT * b.squash


def _figure(rng, geom: GarmentGeom, cfg: SceneConfig, size) -> _Figure:
    """Body proportions, turn and arm pose for a wearer of `geom`."""
    H, W = size
    u = rng.uniform
    bw = u(0.15, 0.19) * W if geom.category in ("dress", "skirt") else u(0.17, 0.23) * W  # shoulders
    s = bw / FIT                                                   # px per garment unit
    theta = u(-cfg.turn_max, cfg.turn_max) if rng.random() < 0.7 else 0.0
    depth = u(0.55, 0.7)                                           # torso depth / width
    squash = float(np.hypot(np.cos(theta), depth * np.sin(theta)))
    delta = float(np.arctan2(depth * np.sin(theta), np.cos(theta)))
    rx = u(0.36, 0.42) * s
    ry, neck_len = rx * u(1.2, 1.3), u(0.12, 0.25) * s
    y_neck = u(0.03, 0.08) * H + 2 * ry + neck_len
    cx = W / 2 + rng.normal(0, 0.03) * W
    y0 = y_neck + (u(1.9, 2.2) * s if geom.anchor == "waist" else 0.0)
    body = _Body(cx, y0, s, squash, delta)
    hx = cx + np.sin(theta) * 0.25 * s
    head = (hx - rx, y_neck - neck_len - 2 * ry, hx + rx, y_neck - neck_len)
    skin = SKIN[rng.integers(len(SKIN))] * u(0.92, 1.05, 3).astype(np.float32)

    arms = []
    poses = list(rng.choice(len(POSES), 2, p=np.asarray(cfg.p_pose) / sum(cfg.p_pose)))
    if poses == [4, 4]:                               # one arm at most crosses the body
        poses[rng.integers(2)] = 0
    for side, pose in zip((-1, 1), poses):
        sl = next((q for q in geom.sleeves if q.side == side), None)
        if sl is not None:                            # hinge where the sleeve's axis starts
            jy, w = sl.joint[1], geom.half_width(sl.joint[1])
            jx = abs(sl.joint[0]) / w
        else:
            jy, jx = 0.5, 0.9
            w = float(np.interp(jy, BODY_Y, BODY_W))
        edge = w * s * FIT * squash * np.sin(np.clip(side * jx * T_EDGE + delta, -np.pi / 2, np.pi / 2))
        joint = np.array([cx + edge - side * 0.12 * s, y_neck + jy * s])
        elbow, wrist, front = _arm(side, joint, POSES[pose], rng, s)
        arms.append(_Arm(side, sl, joint, elbow, wrist, front))
    return _Figure(body, y_neck, theta, head, neck=rx * u(0.45, 0.55), skin=skin, arms=tuple(arms),
                   r_up=u(0.16, 0.2) * s, r_fore=u(0.12, 0.15) * s)


def _draw_under(layer: _Layer, fig: _Figure, geom: GarmentGeom, rng) -> None:
    """Torso skin and neck, then trousers or bare legs; a plain tucked-in top under a skirt."""
    b, H = fig.body, layer.img.size[1]
    cx, yn, s = b.cx, fig.y_neck, b.s
    skin = _tup(fig.skin)
    rows = np.linspace(0.05, 3.0, 9)
    outline = [(cx + fig.half(r), yn + r * s) for r in rows] + [(cx - fig.half(r), yn + r * s) for r in rows[::-1]]
    layer("polygon", outline, skin)
    hx, top = (fig.head[0] + fig.head[2]) / 2, fig.head[3] - 0.15 * (fig.head[3] - fig.head[1])
    layer("polygon", [(hx - fig.neck, top), (hx + fig.neck, top), (cx + fig.neck * 1.3, yn + 0.1 * s),
                      (cx - fig.neck * 1.3, yn + 0.1 * s)], _tup(fig.skin * 0.85))
    bare = geom.category in ("dress", "skirt")
    leg = fig.skin if bare else random_colour(rng, dark=rng.random() < 0.6).astype(np.float32)
    hip_y, crotch_y, hw = yn + (2.8 if bare else 2.1) * s, yn + 3.1 * s, fig.half(2.6)
    for side in (-1, 1):
        gap, knee_x = side * 0.05 * s, cx + side * hw * rng.uniform(0.75, 0.95)
        layer("polygon", [(cx + gap, crotch_y), (cx + side * hw, hip_y), (knee_x, H + 5),
                          (cx + gap + side * 0.1 * s, H + 5)], _tup(leg * (0.9 if side < 0 else 1.0)))
    if not bare:
        layer("polygon", [(cx - hw, hip_y), (cx + hw, hip_y), (cx + hw * 0.9, crotch_y + 0.2 * s),
                          (cx - hw * 0.9, crotch_y + 0.2 * s)], _tup(leg))
    if geom.anchor == "waist":
        rows = rows[:7]
        layer("polygon", [(cx + fig.half(r) * 1.04, yn + r * s) for r in rows] +
              [(cx - fig.half(r) * 1.04, yn + r * s) for r in rows[::-1]], _tup(random_colour(rng)))


def _draw_arm(layer: _Layer, fig: _Figure, arm: _Arm, *, occ: bool) -> None:
    skin, (j, e, w) = _tup(fig.skin), (tuple(arm.joint), tuple(arm.elbow), tuple(arm.wrist))
    layer("line", [j, e], skin, width=int(2 * fig.r_up), occ=occ)
    layer("line", [e, w], skin, width=int(2 * fig.r_fore), occ=occ)
    for (x, y), r in ((e, fig.r_fore), (j, fig.r_up)):
        layer("ellipse", (x - r, y - r, x + r, y + r), skin, occ=occ)


def _draw_hand(layer: _Layer, fig: _Figure, arm: _Arm) -> None:
    d = (arm.wrist - arm.elbow) / np.linalg.norm(arm.wrist - arm.elbow)
    (x, y), r = arm.wrist + d * fig.r_fore * 0.9, fig.r_fore * 1.1
    layer("ellipse", (x - r, y - r, x + r, y + r), _tup(fig.skin), occ=True)


def _draw_head(layer: _Layer, fig: _Figure, rng, cfg: SceneConfig) -> None:
    """Face, simple features and hair; long hair falls over the shoulders."""
    x0, y0, x1, y1 = fig.head
    rx, ry, hx = (x1 - x0) / 2, (y1 - y0) / 2, (x0 + x1) / 2
    hair = HAIR[rng.integers(6)] if rng.random() < 0.9 else HAIR[rng.integers(6, len(HAIR))]  # some dyed
    if rng.random() < cfg.p_long_hair:
        bottom = fig.y_neck + rng.uniform(0.3, 1.3) * fig.body.s
        for side in (-1, 1):
            a, b = hx + side * rx * 0.55, hx + side * rx * rng.uniform(1.15, 1.45)
            layer("rounded_rectangle", (min(a, b), y0 + ry * 0.5, max(a, b), bottom), hair, occ=True,
                  radius=int(rx * 0.4))
    layer("ellipse", fig.head, _tup(fig.skin), occ=True)
    layer("chord", (x0 - rx * 0.08, y0 - ry * 0.06, x1 + rx * 0.08, y1 - ry * rng.uniform(0.4, 0.8)), hair,
          occ=True, start=180, end=360)
    ex, ey, er = hx + np.sin(fig.theta) * 0.3 * rx, y0 + ry * 1.05, max(1.0, rx * 0.09)
    for side in (-1, 1):
        layer("ellipse", (ex + side * rx * 0.38 - er, ey - er, ex + side * rx * 0.38 + er, ey + er), (30, 25, 25))
    layer("line", [(ex - rx * 0.22, y0 + ry * 1.5), (ex + rx * 0.22, y0 + ry * 1.5)], _tup(fig.skin * 0.6),
          width=max(1, int(rx * 0.07)))


def _draw_props(layer: _Layer, fig: _Figure, rng, cfg: SceneConfig) -> None:
    """A bag on a strap across the body, and an object in the foreground."""
    W, H = layer.img.size
    b, u = fig.body, rng.uniform
    if rng.random() < cfg.p_bag:
        side, colour = rng.choice([-1, 1]), random_colour(rng)
        bx, by = b.cx - side * fig.half(2.4) * u(0.7, 1.1), fig.y_neck + u(1.9, 2.4) * b.s
        layer("line", [(b.cx + side * 0.55 * b.s, fig.y_neck + 0.05 * b.s), (bx, by)], _tup(colour * 0.7),
              width=max(1, int(u(0.06, 0.12) * b.s)), occ=True)
        bw, bh = u(0.5, 0.9) * b.s, u(0.4, 0.7) * b.s
        layer("rounded_rectangle", (bx - bw / 2, by, bx + bw / 2, by + bh), _tup(colour), occ=True,
              radius=int(bh * 0.2))
    if rng.random() < cfg.p_object:
        ox, oy, ow, oh = u(0.1, 0.9) * W, u(0.65, 0.95) * H, u(0.15, 0.35) * W, u(0.1, 0.3) * H
        kind = "ellipse" if rng.random() < 0.5 else "rectangle"
        layer(kind, (ox - ow / 2, oy - oh / 2, ox + ow / 2, oy + oh / 2), _tup(random_colour(rng)), occ=True)


def _camera(img: Image.Image, rng, cfg: SceneConfig) -> tuple[np.ndarray, float, float, int]:
    """Exposure and white balance, gaussian blur, sensor noise, JPEG: (image, blur, noise, jpeg)."""
    W, H = img.size
    gains = (rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, 3)).astype(np.float32)
    blur = rng.uniform(0, cfg.max_blur) if rng.random() < 0.6 else 0.0
    noise = rng.uniform(0, cfg.max_noise) if rng.random() < 0.6 else 0.0
    jpeg = int(rng.integers(30, 92)) if rng.random() < cfg.p_jpeg else 100
    if blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(blur * H / 256))
    arr = np.asarray(img).astype(np.float32) * gains
    if noise > 0:
        arr += rng.standard_normal((H, W, 3), dtype=np.float32) * noise
    out = arr.clip(0, 255).astype(np.uint8)
    if jpeg < 100:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=jpeg)
        out = np.asarray(Image.open(buf).convert("RGB"))
    return out, float(blur), float(noise), jpeg


def render(rng: np.random.Generator, geom: GarmentGeom, fit: Fit, flat: np.ndarray,
           bits: np.ndarray, cfg: SceneConfig) -> Rendered:
    """A person wearing the flat garment (`flat`, part `bits` from garments.render_flat).

    Layers, back to front: room, torso skin, legs, arms beside the body, the garment's body
    piece and sleeves, head and hair, arms in front with their sleeves, hands, bag, object.
    Everything drawn after the garment is recorded as an occluder.
    """
    H, W = bits.shape
    fig = _figure(rng, geom, cfg, (H, W))
    bg = background(rng, (H, W)) if cfg.clutter else Image.new("RGB", (W, H), _tup(rng.uniform(150, 240, 3)))
    layer = _Layer(bg)
    _draw_under(layer, fig, geom, rng)
    for arm in fig.arms:
        if not arm.front:
            _draw_arm(layer, fig, arm, occ=False)

    drape = _Drape(rng, fit, flat, bits, fig.body)   # one displacement field: the print deforms as one
    full = np.zeros((H, W), bool)                     # garment pixels before occluders
    pieces = drape.body(geom) + [p for a in fig.arms if a.sleeve is not None and not a.front
                                 for p in drape.sleeve(a.sleeve, a.joint, a.elbow, a.wrist)]
    canvas = np.asarray(layer.img).astype(np.float32)
    drape.composite(canvas, full, pieces)
    layer.repaint(canvas)

    _draw_head(layer, fig, rng, cfg)
    fronts = [a for a in fig.arms if a.front]
    for arm in fronts:
        _draw_arm(layer, fig, arm, occ=True)
    pieces = [p for a in fronts if a.sleeve is not None for p in drape.sleeve(a.sleeve, a.joint, a.elbow, a.wrist)]
    if pieces:
        canvas = np.asarray(layer.img).astype(np.float32)
        layer.repaint(canvas, uncover=drape.composite(canvas, full, pieces))  # a sleeve is garment, not occluder
    for arm in fig.arms:
        _draw_hand(layer, fig, arm)
    _draw_props(layer, fig, rng, cfg)

    image, blur, noise, jpeg = _camera(layer.img, rng, cfg)
    occluder = np.asarray(layer.mask) > 0
    drape.flat_xy[~full | occluder] = np.nan          # seen: garment pixels nothing was drawn over
    return Rendered(image, full, occluder & full, blur, noise, jpeg, drape.flat_xy)
