"""A learned warp from the person photo to the in-shop frame: the print carried by resampling, not painted.

`WarpNet` looks at the person (at a quarter of the size) and says, for each cell of a 64x48 grid over the in-shop
frame, where in the person photo that part of the garment is seen, and whether it is seen at all. Resampling the
full-size photo there (`warp`) moves the worn print into the in-shop frame pixel for pixel, with its shading and
folds (`deshade` exchanges those for a reference's flat colour). The network only has to get the smooth geometry
right and never has to draw the print, which none of our diffusion models has learned to.

It learns from SynthGarment's correspondences (`Sample.flat_xy`: the in-shop pixel each visible garment pixel
shows), as optical-flow networks learn from synthetic scenes whose flow is known; real pairs carry no such
field.

    python -m igr.warp data  --out runs/warp-data.npz --n 8000
    python -m igr.warp train --data runs/warp-data.npz --out runs/warp --steps 3000
    python -m igr.warp train --data runs/warp-data.npz --out runs/warp --steps 3000 --resume   # after a stop
    python -m igr.warp train --data runs/warp-data.npz --out runs/warp-long --init runs/warp/final --steps 50000 \
        --batch 64 --lr 3e-4 --device cuda                                                     # where one is lent
    python -m igr.warp data  --out runs/warp-data-more.npz --first 8000 --n 16000                  # more items, then
    python -m igr.warp train --data runs/warp-data-more.npz --data runs/warp-data.npz --out runs/warp-joined \
        --init runs/warp/final --steps 9000 --batch 16 --lr 3e-4     # both files (the last one's last items validate)
    python -m igr.warp train --data runs/warp-data.npz --out runs/warp-refine --init runs/warp/final --refine 2 --steps 1000
    python -m igr.warp eval  --model runs/warp/final --prior-of models/teacher-zsnr --n 128 --out reports/eval-zsnr/warp
    scripts/warp-prior.sh     # all of it, and the report: reports/warp-prior.md
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .files import atomic_file, atomic_folder

KIND = "warp"
SIZE = (256, 192)          # person and in-shop frame, px
SPREAD = 4.0               # px: a cell whose person pixels scatter wider than this is ambiguous (front and back)


TRUE_WARP = "true field"   # an evaluation's "warp" when it fed the true field (igr.eval/igr.probe --true-warp)
# what `igr.eval --true-warp MODE` feeds a warp prior model, as its JSON's "warp" names it (`diagnostic_field`)
WARP_FIELDS = {
    "field": TRUE_WARP,
    "placement": "WarpNet's field, placed by the true field (one similarity per item)",
    "shape": "the true field, at WarpNet's placement (one similarity per item)",
    "coords": "WarpNet's coordinates, the true visibility",
    "visibility": "the true coordinates, WarpNet's visibility",
}


def field_of(samples) -> tuple[torch.Tensor, torch.Tensor]:
    """SynthGarment's true field of these samples (`Sample.flat_xy`), on WarpNet's grid (a quarter of SIZE): (coords
    (N, 2, 64, 48), visible (N, 1, 64, 48)), what WarpNet's (coords, sigmoid(logit)) estimate from the photo alone."""
    grid = (SIZE[0] // 4, SIZE[1] // 4)
    pairs = [correspondence(s.flat_xy, grid) for s in samples]
    return (torch.from_numpy(np.stack([c for c, _ in pairs])), torch.from_numpy(np.stack([w for _, w in pairs]))[:, None])


def true_field(split: str, items) -> tuple[torch.Tensor, torch.Tensor]:
    """`field_of` the SynthGarment items `items` of `split`, generated again."""
    from .data.synth import generate, seed_for

    return field_of(generate(seed_for(split, i), size=SIZE) for i in items)


def diagnostic_field(mode: str, warpnet: "WarpNet", person: torch.Tensor, split: str, items
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """A field (coords, visible) for a warp prior model, made from SynthGarment's true field of `items` (`mode` in
    `WARP_FIELDS`): "field", the true field itself; "placement", `warpnet`'s own field with each item's similarity
    onto the true one applied (a right placement, WarpNet's shape and visibility); "shape", the true field with
    each item's similarity onto `warpnet`'s applied (WarpNet's placement, the true shape and visibility); "coords"
    and "visibility", one half of the field from `warpnet`, the other from the truth. They split a WarpNet's
    error: where it finds the garment in the photo (coordinates: placement and shape) against what of the in-shop
    frame it says is seen (visibility)."""
    if mode not in WARP_FIELDS:
        raise ValueError(f"unknown warp field {mode!r}: choose one of {', '.join(WARP_FIELDS)}")
    coords, visible = true_field(split, items)
    if mode == "field":
        return coords, visible
    with torch.no_grad():
        mine, logit = warpnet(person)
    weight = visible[:, 0]
    if mode == "coords":
        return mine, visible
    if mode == "visibility":
        return coords, torch.sigmoid(logit)
    if mode == "placement":
        return align(mine, coords, weight), torch.sigmoid(logit)
    return align(coords, mine, weight), visible


def _px_per_unit() -> torch.Tensor:
    return torch.tensor([SIZE[1] / 2, SIZE[0] / 2], dtype=torch.float64).view(1, 2, 1)


def _px(field: torch.Tensor) -> torch.Tensor:
    """(B, 2, gh, gw) grid_sample units -> (B, 2, cells) px of the full image, float64."""
    return field.double().flatten(2) * _px_per_unit()


def align(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`src` (B, 2, gh, gw) moved by each item's similarity (one scale, one shift, in px) that best maps it onto
    `dst` in least squares over the cells `weight` (B, gh, gw) marks; applied to every cell."""
    p, t = _px(src), _px(dst)
    w = weight.double().flatten(1)[:, None]
    n = w.sum(-1, keepdim=True).clamp(min=1)
    pm, tm = (p * w).sum(-1, keepdim=True) / n, (t * w).sum(-1, keepdim=True) / n
    s = ((p - pm) * (t - tm) * w).sum((1, 2), keepdim=True) / ((p - pm) ** 2 * w).sum((1, 2), keepdim=True).clamp(
        min=1e-9)
    moved = (p - pm) * s + tm
    return (moved / _px_per_unit()).reshape(src.shape).to(src.dtype)


def correspondence(flat_xy: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """In-shop cells -> where the person photo shows them, from a `Sample.flat_xy` (H, W, 2) field.

    Returns (coords (2, gh, gw) float32: mean person (x, y) of the pixels showing each cell, in grid_sample's
    [-1, 1] units (align_corners=False); weight (gh, gw) float32: 1 where the cell is seen unambiguously)."""
    H, W = flat_xy.shape[:2]
    gh, gw = grid
    seen = ~np.isnan(flat_xy[..., 0])
    Y, X = np.nonzero(seen)
    fx, fy = flat_xy[seen, 0], flat_xy[seen, 1]
    row = np.clip((fy + 0.5) * gh / H, 0, gh - 1).astype(np.int64)
    col = np.clip((fx + 0.5) * gw / W, 0, gw - 1).astype(np.int64)
    cell, size = row * gw + col, gh * gw
    px, py = (X + 0.5) / W * 2 - 1, (Y + 0.5) / H * 2 - 1
    n = np.bincount(cell, minlength=size).astype(np.float64)
    mean = [np.bincount(cell, v, size) / np.maximum(n, 1) for v in (px, py)]
    var = [np.bincount(cell, v * v, size) / np.maximum(n, 1) - m * m for v, m in zip((px, py), mean)]
    spread = np.sqrt(np.maximum(var[0] * (W / 2) ** 2 + var[1] * (H / 2) ** 2, 0))     # px
    ok = (n > 0) & (spread <= SPREAD)
    coords = np.stack([np.where(ok, m, 0) for m in mean]).reshape(2, gh, gw).astype(np.float32)
    return coords, ok.reshape(gh, gw).astype(np.float32)


def base_grid(grid: tuple[int, int]) -> torch.Tensor:
    """(2, gh, gw): each cell's own centre in [-1, 1] units: the identity warp."""
    gh, gw = grid
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) / gh * 2 - 1
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) / gw * 2 - 1
    return torch.stack([xs[None].expand(gh, gw), ys[:, None].expand(gh, gw)])


class _Res(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class Refiner(nn.Module):
    """One correction of a field, made in the in-shop frame: the person (at half size) resampled by the field so
    far, with those coordinates, the visibility and each cell's own position, through a small UNet (here the two
    frames do line up, so its skips join what belongs together), gives an offset to the coordinates and to the
    visibility logit. Its last convolution starts at zero: a new Refiner returns the field it was given."""

    def __init__(self, channels=(32, 64, 128)):
        super().__init__()
        c = self.channels = tuple(channels)
        self.stem = nn.Conv2d(3 + 2 + 1 + 2, c[0], 3, padding=1)
        self.enc0 = _Res(c[0], c[0])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(c[:-1], c[1:]))
        self.enc = nn.ModuleList(_Res(b, b) for b in c[1:])
        self.mid = _Res(c[-1], c[-1])
        self.dec = nn.ModuleList(_Res(b + a, a) for a, b in zip(c[:-1], c[1:]))
        self.out = nn.Conv2d(c[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("grid", base_grid((SIZE[0] // 4, SIZE[1] // 4)), persistent=False)

    def forward(self, person: torch.Tensor, coords: torch.Tensor, logit: torch.Tensor):
        half = F.interpolate(person, scale_factor=0.5, mode="area")
        seen = F.grid_sample(half, coords.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                             align_corners=False)                                 # (B, 3, 64, 48) in-shop frame
        x = self.enc0(self.stem(torch.cat([seen, coords, torch.tanh(logit / 4),
                                           self.grid.expand(seen.shape[0], -1, -1, -1)], 1)))
        skips = [x]
        for down, enc in zip(self.down, self.enc):
            skips.append(x := enc(down(x)))
        x = self.mid(x)
        for dec, skip in zip(reversed(self.dec), reversed(skips[:-1])):
            x = dec(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        d = self.out(x)
        return coords + 0.1 * d[:, :2], logit + d[:, 2:]


class WarpNet(nn.Module):
    """Person (B, 3, 256, 192) in [-1, 1] -> coords (B, 2, 64, 48) in [-1, 1], visibility logits (B, 1, 64, 48).

    The two frames do not line up, so nothing is passed across at the same position (no UNet skips). The person
    at a quarter size (geometry needs no print) becomes 16x12 tokens (convolutions, then a transformer over
    them); each cell of a 32x24 in-shop grid is a learned query that attends to those tokens, and its last
    attention points: the cell's coordinates are the attention-weighted mean of the token centres plus a small
    offset. Coordinates and visibility are upsampled to 64x48. With `refine` > 0, a `Refiner` then corrects
    that field `refine` times (the same weights each time), looking at the photo resampled by it."""

    def __init__(self, channels=(32, 64, 128), layers: int = 2, heads: int = 4, refine: int = 0):
        super().__init__()
        if refine < 0:
            raise ValueError(f"refine is a number of corrections, 0 or more, not {refine}")
        self.channels, self.layers, self.heads, self.refine = tuple(channels), layers, heads, refine
        self.refiner = Refiner() if refine else None
        c, d = self.channels, self.channels[-1]
        self.stem = nn.Conv2d(5, c[0], 3, padding=1)
        self.enc0 = _Res(c[0], c[0])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(c[:-1], c[1:]))
        self.enc = nn.ModuleList(_Res(b, b) for b in c[1:])
        tokens, cells = (SIZE[0] // 16, SIZE[1] // 16), (SIZE[0] // 8, SIZE[1] // 8)
        self.pos = nn.Parameter(torch.randn(1, tokens[0] * tokens[1], d) * 0.02)
        self.mid = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0,
                                                                    batch_first=True, norm_first=True), layers,
                                         enable_nested_tensor=False)
        self.queries = nn.Parameter(torch.randn(1, cells[0] * cells[1], d) * 0.02)
        self.cross = nn.ModuleList(nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(layers))
        self.norm_q = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers + 1))
        self.mlp = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                                 for _ in range(layers))
        self.point_q, self.point_k = nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, 3)                       # (dx, dy) offset, visibility logit
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("grid", base_grid((SIZE[0] // 4, SIZE[1] // 4)), persistent=False)
        self.register_buffer("centres", base_grid(tokens).flatten(1).T.contiguous(), persistent=False)   # (T, 2)
        self.cells = cells

    def forward(self, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.refined(person, *self.coarse(person))[-1]

    def refined(self, person: torch.Tensor, coords: torch.Tensor, logit: torch.Tensor) -> list[tuple]:
        """The field after each of the `refine` corrections of (coords, logit), the coarse field last where none."""
        out = [(coords, logit)]
        for _ in range(self.refine):
            out.append(self.refiner(person, *out[-1]))
        return out[1:] or out

    def coarse(self, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The field before any correction: attention from the in-shop cells to the person's tokens."""
        if tuple(person.shape[-2:]) != SIZE:
            raise ValueError(f"WarpNet takes {SIZE[0]}x{SIZE[1]} person images, got {tuple(person.shape[-2:])}")
        x = F.interpolate(person, scale_factor=0.25, mode="area")
        x = self.enc0(self.stem(torch.cat([x, self.grid.expand(x.shape[0], -1, -1, -1)], 1)))
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x))
        B = x.shape[0]                     # not len(): an exported graph keeps its batch dynamic
        k = self.mid(x.flatten(2).transpose(1, 2) + self.pos)                   # (B, T, d) person tokens
        q = self.queries.expand(B, -1, -1)
        for attn, norm, mlp in zip(self.cross, self.norm_q, self.mlp):
            h = norm(q)
            q = q + attn(h, k, k, need_weights=False)[0]
            q = q + mlp(q)
        q = self.norm_q[-1](q)
        logits = self.point_q(q) @ self.point_k(k).transpose(1, 2) / math.sqrt(k.shape[-1])   # (B, Q, T)
        xy = logits.softmax(-1) @ self.centres                                   # (B, Q, 2) where it points
        out = self.out(q)
        xy = xy + 0.1 * torch.tanh(out[..., :2])
        gh, gw = self.cells
        field = torch.cat([xy, out[..., 2:]], -1).transpose(1, 2).reshape(B, 3, gh, gw)
        field = F.interpolate(field, size=self.grid.shape[-2:], mode="bilinear", align_corners=False)
        return field[:, :2], field[:, 2:]

    def config(self) -> dict:
        return {"kind": KIND, "channels": list(self.channels), "layers": self.layers, "heads": self.heads,
                "refine": self.refine, "size": list(SIZE)}

    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> Path:
        with atomic_folder(folder) as tmp:
            (tmp / "config.json").write_text(json.dumps({**self.config(), **(extra or {})}, indent=2) + "\n")
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp / "warp.safetensors"))
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "WarpNet":
        """A WarpNet folder (`save_pretrained`), or an IGR model folder with a warp prior, whose frozen WarpNet
        (in the folder or linked by its shared.json) comes out in float32: `igr.warp train --init
        models/teacher-warp` goes on training a shipped model's WarpNet."""
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        if cfg.get("kind") != KIND and "warp_prior" in cfg:
            if not cfg["warp_prior"]:
                raise ValueError(f"{folder} is an IGR model without a warp prior: it holds no WarpNet")
            from .model.igr import component_file

            net = cls()
            net.load_state_dict({k: v.float() for k, v in load_file(str(component_file(folder, "warpnet"))).items()})
            return net.eval()
        if cfg.get("kind") != KIND:
            raise ValueError(f"{folder} is not a {KIND} folder (config.json kind {cfg.get('kind')!r})")
        net = cls(cfg["channels"], cfg["layers"], cfg["heads"], cfg.get("refine", 0))
        net.load_state_dict(load_file(str(folder / "warp.safetensors")))
        return net.eval()


def warp(person: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Resample the full-size person (B, 3, H, W) at `coords` (B, 2, gh, gw), upsampled: the in-shop frame."""
    H, W = person.shape[-2:]
    grid = F.interpolate(coords, size=(H, W), mode="bilinear", align_corners=False)
    return F.grid_sample(person, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False)


def deshade(warped: torch.Tensor, reference: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """`warped` with its low frequencies replaced by `reference`'s: the photo's lighting and folds exchanged for
    the reference's flat colour, the print kept. Images in [-1, 1]; gaussian of `sigma` px."""
    k = int(3 * sigma) * 2 + 1
    x = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = (g / g.sum()).to(warped)

    def blur(a):
        c = a.shape[1]
        a = F.pad(a, (k // 2,) * 4, mode="replicate")
        a = F.conv2d(a, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
        return F.conv2d(a, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)

    w, r = (warped + 1) / 2, (reference + 1) / 2
    return ((w * (blur(r) + 0.02) / (blur(w) + 0.02)).clamp(0, 1)) * 2 - 1


def composite(warped: torch.Tensor, visible: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """The warped print where the photo shows the garment (`visible` (B, 1, gh, gw) in [0, 1], upsampled) and the
    fallback image has garment (not white: `igr.metrics.garment_region`), the fallback elsewhere: the fallback's
    silhouette, the photo's print."""
    from .metrics import garment_region

    v = F.interpolate(visible, size=warped.shape[-2:], mode="bilinear", align_corners=False)
    v = v * garment_region((fallback + 1) / 2).float()
    return v * warped + (1 - v) * fallback


# ---------------------------------------------------------------- data, training, evaluation


def _item(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    split, index = args
    from .data.synth import generate, seed_for

    s = generate(seed_for(split, index), size=SIZE)
    coords, weight = correspondence(s.flat_xy, (SIZE[0] // 4, SIZE[1] // 4))
    return s.person, coords, weight


def make_data(out: Path, split: str, n: int, workers: int = 2, first: int = 0) -> None:
    """Person photos (uint8) and their correspondence targets for `n` SynthGarment items from `first` on, one .npz."""
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    with get_context("spawn").Pool(workers) as pool:
        items = list(tqdm(pool.imap(_item, [(split, i) for i in range(first, first + n)], chunksize=16), total=n, desc="warp data"))
    with atomic_file(out, ".npz") as tmp:
        np.savez(tmp, person=np.stack([p for p, _, _ in items]), coords=np.stack([c for _, c, _ in items]),
                 weight=np.stack([w for _, _, w in items]), split=split, first=first)


def mirror(person: torch.Tensor, coords: torch.Tensor, weight: torch.Tensor) -> tuple:
    """The left-right mirror of training items: the photo (B, 3, H, W) and the in-shop frame both flipped, so each
    cell's coordinates come from its mirror cell with x negated (grid_sample units are symmetric about 0), and so
    does its weight (B, gh, gw). warp(mirrored photo, mirrored field) is the mirrored in-shop image."""
    c = coords.flip(-1)
    return person.flip(-1), torch.cat([-c[:, :1], c[:, 1:]], 1), weight.flip(-1)


def loss_fn(net: WarpNet, person: torch.Tensor, coords: torch.Tensor, weight: torch.Tensor) -> tuple:
    """L1 on the coordinates where a cell is seen (in px of the full image), BCE on whether it is."""
    return field_loss(*net(person), coords, weight)


def field_loss(pred: torch.Tensor, logit: torch.Tensor, coords: torch.Tensor, weight: torch.Tensor) -> tuple:
    """`loss_fn` of a field already computed: (loss, L1 px, BCE)."""
    w = weight[:, None]
    scale = _px_per_unit().to(pred.dtype)[..., None]
    l1 = ((pred - coords).abs() * scale * w).sum() / (2 * w.sum()).clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(logit, w)
    return l1 + bce, l1.detach(), bce.detach()


def error_parts(pred: torch.Tensor, coords: torch.Tensor, weight: torch.Tensor) -> dict[str, float]:
    """How much of a field's error is one shift or one similarity per item: the mean L1 (px, over the items' seen
    cells, each item weighted by its cells as `field_loss`) of `pred` as it is, after each item's mean offset is
    removed, and after each item's least-squares similarity (one scale and one shift) to the truth is applied."""
    p, t = _px(pred), _px(coords)                                                   # (B, 2, cells) px
    w = weight.double().flatten(1)[:, None]                                         # (B, 1, cells)
    n = w.sum(-1, keepdim=True).clamp(min=1)
    mean = lambda a: (a * w).sum(-1, keepdim=True) / n                              # noqa: E731
    l1 = lambda a: float((a.abs() * w).sum() / (2 * w.sum()).clamp(min=1))          # noqa: E731
    return {"l1_px": l1(p - t), "after_shift_px": l1(p - mean(p) - t + mean(t)),
            "after_similarity_px": l1(_px(align(pred, coords, weight)) - t)}


def with_refiner(init: Path, refine: int) -> WarpNet:
    """The WarpNet of `init` with a Refiner applied `refine` times: a new (zero, so the same field) one where `init`
    has none, its own where it has one."""
    if refine < 1:
        raise ValueError(f"refine is the number of corrections, at least 1, not {refine}")
    base = WarpNet.from_pretrained(init)
    net = WarpNet(base.channels, base.layers, base.heads, refine)
    net.load_state_dict(base.state_dict(), strict=base.refine > 0)
    return net


def coarse_fields(net: WarpNet, img, n: int, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`net`'s coarse field (coords, logit) of photos 0..n-1, `img(indices)` giving them in [-1, 1], with a
    progress bar."""
    from tqdm.auto import tqdm

    with torch.no_grad():
        out = [net.coarse(img(idx)) for idx in tqdm(torch.arange(n).split(chunk), desc="coarse fields")]
    return torch.cat([c for c, _ in out]), torch.cat([lg for _, lg in out])


def load_data(data: "Path | list[Path]") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Persons (N, H, W, 3) uint8, coordinates and weights of one `make_data` file, or of several joined in the order
    given (the last file's last items then validate). Files whose items overlap in the same split are refused: an
    item would be trained on and validated on at once."""
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    parts, seen = [], []
    for path in paths:
        d = np.load(path)
        parts.append((d["person"], d["coords"], d["weight"]))
        if len(paths) == 1:
            break
        if not {"split", "first"} <= set(d.files):
            raise ValueError(f"{path} does not record which items it holds (written before `data --first`): "
                             "make it again to join it with other files")
        n, split, first = len(d["person"]), str(d["split"]), int(d["first"])
        for other, (s2, f2, n2) in seen:
            if s2 == split and first < f2 + n2 and f2 < first + n:
                raise ValueError(f"{path} ({split} items {first}-{first + n - 1}) overlaps {other} "
                                 f"({s2} items {f2}-{f2 + n2 - 1})")
        seen.append((path, (split, first, n)))
    return tuple(torch.from_numpy(np.concatenate(a) if len(a) > 1 else a[0]) for a in zip(*parts))


def _checkpoint_settings(data: "Path | list[Path]", steps: int, batch: int, lr: float, seed: int, val: int, log_every: int,
                         init: Path | None, refine: int, flip: bool = False) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint for the resume to be exact."""
    names = [str(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    return {"data": names[0] if len(names) == 1 else names, "steps": steps, "batch": batch,
            "lr": lr, "seed": seed, "val": val,
            "log_every": log_every, "init": None if init is None else str(init), "refine": refine, "flip": flip}


def train(data: "Path | list[Path]", out: Path, *, steps: int, batch: int = 32, lr: float = 1e-3, seed: int = 0,
          val: int = 256, log_every: int = 50, init: Path | None = None, refine: int = 0,
          device: str = "cpu", resume: bool = False, until: int | None = None, flip: bool = False) -> None:
    """A WarpNet from scratch; with `init` alone, the WarpNet of `init` trained on (all its weights, a new
    schedule); with `init` and `refine`, a Refiner trained on the frozen WarpNet of `init` (whose coarse fields are
    computed once), every correction's field in the loss (the last weighted most).

    Every validation (each `log_every` × 10 steps) also writes OUT/checkpoint/state.pt: the weights, the optimizer,
    the schedule and the data order's generator. `resume` goes on from it with the same settings, bit for bit on
    the same device; `until` stops after that step (and its checkpoint). `flip` mirrors each item left-right with
    probability 1/2 (`mirror`: the photo and its targets together), which a Refiner cannot (its coarse fields are
    computed once, unmirrored). The batches are drawn on the CPU whatever
    `device` computes, so a run moved between devices sees the same data order."""
    from tqdm.auto import tqdm

    settings = _checkpoint_settings(data, steps, batch, lr, seed, val, log_every, init, refine, flip)
    ckpt_path = out / "checkpoint" / "state.pt"
    ckpt = None
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume: {ckpt_path} (a run writes one at each validation)")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        written = {"flip": False, **ckpt["settings"]}        # a checkpoint from before `flip` never flipped
        differ = {k: (written.get(k), v) for k, v in settings.items() if written.get(k) != v}
        if differ:
            raise ValueError("resume needs the settings of the run that wrote the checkpoint; these differ "
                             "(checkpoint, now): " + ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in differ.items()))
    if until is not None and not 0 < until <= steps:
        raise ValueError(f"until is a step in 1..{steps}, not {until}")
    dev = torch.device(device)
    person, coords, weight = load_data(data)            # person: (N, H, W, 3) uint8
    val = max(1, min(val, len(person) // 8))             # the (last) file's last items, never trained on
    n_train = len(person) - val
    torch.manual_seed(seed)
    img = lambda idx: person[idx].to(dev).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # noqa: E731
    if refine and init is None:
        raise ValueError("--refine needs --init: a Refiner is trained on a trained WarpNet")
    if refine and flip:
        raise ValueError("--flip cannot train a Refiner: its coarse fields are computed once, on unmirrored photos")
    refining = bool(refine)
    net = with_refiner(init, refine) if refining else WarpNet() if init is None else WarpNet.from_pretrained(init)
    net.to(dev)
    if refining:
        net.requires_grad_(False).refiner.requires_grad_(True)
        net.eval().refiner.train()
        coarse = coarse_fields(net, img, len(person))

    def fields(p: torch.Tensor, idx: torch.Tensor) -> list[tuple]:
        return net.refined(p, coarse[0][idx], coarse[1][idx]) if refining else [net(p)]

    def loss_of(p, idx, flips=None) -> tuple:
        c, w = coords[idx].to(dev), weight[idx].to(dev)
        if flips is not None:                           # mirror the items drawn to be (photo and targets alike)
            m = flips.to(dev).view(-1, 1, 1, 1)
            p, c, w = (torch.where(m[:, 0] if a.dim() == 3 else m, b, a) for a, b in zip((p, c, w), mirror(p, c, w)))
        parts = [field_loss(*f, c, w) for f in fields(p, idx)]
        total = sum(0.8 ** (len(parts) - 1 - i) * part[0] for i, part in enumerate(parts))
        return total, parts[-1][1], parts[-1][2]

    train_net = net.refiner if refining else net.train()
    opt = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad], lr=lr, weight_decay=1e-4)
    warmup = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)

    def validate() -> dict:
        """The validation items' L1 and BCE, and how much of the L1 one shift or similarity per item explains."""
        train_net.eval()
        with torch.no_grad():
            idx = torch.arange(n_train, len(person))
            pred, logit = zip(*(fields(img(i), i)[-1] for i in idx.split(64)))
            pred, logit = torch.cat(pred), torch.cat(logit)
        train_net.train()
        pred, logit = pred.cpu(), logit.cpu()
        _, l1, bce = field_loss(pred, logit, coords[idx], weight[idx])
        parts = error_parts(pred, coords[idx], weight[idx])
        return {"val_l1_px": round(float(l1), 4), "val_bce": round(float(bce), 4),
                **{f"val_{k}": round(v, 4) for k, v in parts.items() if k != "l1_px"}}

    start = 0
    if ckpt is not None:
        train_net.load_state_dict(ckpt["train_net"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        g.set_state(ckpt["generator"])
        start = ckpt["step"]
        kept = [line for line in (out / "log.jsonl").read_text().splitlines() if json.loads(line)["step"] <= start]
        log = open(out / "log.jsonl", "w")              # the rows past the checkpoint are done again
        log.write("".join(line + "\n" for line in kept))
    else:
        log = open(out / "log.jsonl", "w")              # a run starts from scratch: its own log
        if init is not None:                            # where it starts: the WarpNet of `init`
            log.write(json.dumps({"step": 0, **validate()}) + "\n")
    meta = lambda n: {"step": n, "data": settings["data"], **({"init": str(init)} if init else {})}  # noqa: E731

    def save_checkpoint(n: int) -> None:
        state = {"step": n, "settings": settings, "train_net": train_net.state_dict(), "opt": opt.state_dict(),
                 "sched": sched.state_dict(), "generator": g.get_state(), "seconds": time.perf_counter() - t0}
        with atomic_folder(ckpt_path.parent) as tmp:    # never half-written
            torch.save(state, tmp / ckpt_path.name)

    stop = steps if until is None else until
    t0 = time.perf_counter() - (ckpt or {}).get("seconds", 0.0)
    for step in tqdm(range(start, stop), desc="warp train", initial=start, total=stop):
        idx = torch.randint(0, n_train, (batch,), generator=g)
        p = img(idx)
        if torch.rand((), generator=g) < 0.5:      # photometric jitter: the warp must not key on colour
            p = (p * (0.8 + 0.4 * torch.rand(batch, 3, 1, 1, generator=g)).to(dev)).clamp(-1, 1)
        loss, l1, bce = loss_of(p, idx, torch.rand(batch, generator=g) < 0.5 if flip else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train_net.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == stop:
            row = {"step": step + 1, "l1_px": round(float(l1), 4), "bce": round(float(bce), 4),
                   "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 1)}
            checkpoint = (step + 1) % (log_every * 10) == 0 or step + 1 == stop
            if checkpoint:
                row.update(validate())
                net.save_pretrained(out / "final", meta(step + 1))
            log.write(json.dumps(row) + "\n")
            log.flush()
            if checkpoint:                              # the last step's too: OUT/final is already its weights
                save_checkpoint(step + 1)
    log.close()


def attach(model: Path, warpnet: Path, out: Path, *, replace: bool = False) -> list[str]:
    """`model`'s IGR model with a warp prior: the WarpNet of `warpnet` (frozen) inside it, its warped photo's latent
    and visibility concatenated to the denoiser's input, whose new input channels start at zero (so it computes what
    `model` did until trained: `IGRModel.transplant`). `replace`: `model` has a warp prior already, and only its
    WarpNet is exchanged (a denoiser trained on one warp, sampled with another). Writes `out`; returns the tensors
    not taken from `model`."""
    from .model import IGRModel

    base = IGRModel.from_pretrained(model)
    if base.config.warp_prior and not replace:
        raise ValueError(f"{model} already has a warp prior (exchange its WarpNet with --replace)")
    if replace and not base.config.warp_prior:
        raise ValueError(f"{model} has no warp prior to replace: attach one without --replace")
    net = WarpNet.from_pretrained(warpnet)
    with_warp = IGRModel(base.config.replace(warp_prior=True), pretrained=False)
    if net.config() != with_warp.warpnet.config():
        raise ValueError(f"{warpnet} is a WarpNet of another shape ({net.config()}) than a model's "
                         f"({with_warp.warpnet.config()})")
    fresh = [k for k in with_warp.transplant(base) if not k.startswith("warpnet.")]
    with_warp.warpnet.load_state_dict(net.state_dict())
    with_warp.save_pretrained(out)
    return fresh


VARIANTS = {
    "baseline": "the regression baseline (the teacher's aligned prior, decoded)",
    "warp": "the warped photo where WarpNet sees the garment, the baseline elsewhere",
    "warp-deshaded": "as warp, the photo's low frequencies exchanged for the baseline's (`deshade`)",
    "oracle-deshaded": "as warp-deshaded with SynthGarment's true correspondences: the ceiling of this warp",
}


def teacher_from(model, person: torch.Tensor, start_image: torch.Tensor, first: int, *, strength: float,
                 as_prior: bool = False, seed: int = 0) -> torch.Tensor:
    """The teacher's sampler entered at the first of its timesteps at or below strength·T from `start_image`'s latent
    noised there (SDEdit, as `igr.pipeline.prior_start` does from the aligned prior), each item from its own noise.
    `as_prior`: the start's latent also replaces the aligned prior the denoiser reads beside its input."""
    import dataclasses

    from .pipeline import denoise, item_noise, make_scheduler

    cfg = model.config
    cond = model.condition(person)
    z = model.encode(start_image)
    if as_prior:
        cond = dataclasses.replace(cond, prior=z)
    sched = make_scheduler(cfg, None)
    sched.set_timesteps(cfg.sample_steps)
    plan = [int(t) for t in sched.timesteps if int(t) <= strength * cfg.train_timesteps]
    if not plan:
        raise ValueError(f"strength {strength} leaves none of the {cfg.sample_steps} timesteps")
    noise = item_noise(cfg, seed, first, len(person), height=person.shape[-2], width=person.shape[-1])
    x = model.noise_scheduler().add_noise(z, noise, torch.tensor([plan[0]]))
    return model.decode(denoise(model, cond, x, from_timestep=plan[0]))


def restorers(net: "WarpNet | None", prior, split: str, *, teacher=None, strengths: tuple[float, ...] = ()) -> dict:
    """restore(person, first) per variant, for `igr.eval.evaluate`; with `teacher`, also the teacher sampled from
    each composite at each of `strengths` ("teacher-from-warp-s0.3", "teacher-from-oracle-s0.3"), and with the composite
    also as the aligned prior the denoiser reads ("teacher-on-warp-s0.3", "teacher-on-oracle-s0.3"); and from the true
    garment ("teacher-from-truth-s0.3": what noising and the teacher's steps alone cost)."""
    from .data.synth import generate, seed_for

    def truth(first: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return true_field(split, range(first, first + n))

    def learned(person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coords, logit = net(person)
        return coords, torch.sigmoid(logit)

    def make(kind: str):
        def restore(person: torch.Tensor, first: int) -> torch.Tensor:
            base = prior.restore(person)
            if kind == "baseline":
                return base
            coords, visible = truth(first, len(person)) if kind.startswith("oracle") else learned(person)
            warped = warp(person, coords)
            if kind.endswith("deshaded"):
                warped = deshade(warped, base)
            return composite(warped, visible, base)
        return restore

    def garments(person: torch.Tensor, first: int) -> torch.Tensor:       # the true in-shop images
        items = [generate(seed_for(split, first + i), size=SIZE).garment for i in range(len(person))]
        return torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def refine(kind: str, strength: float, as_prior: bool = False):
        start = garments if kind == "truth" else make(f"{kind}-deshaded")
        return lambda person, first: teacher_from(teacher, person, start(person, first), first, strength=strength,
                                                  as_prior=as_prior)

    fns = {k: make(k) for k in VARIANTS if net is not None or not k.startswith("warp")}
    if teacher is not None:
        for kind in ("warp", "oracle"):
            if net is not None or kind == "oracle":
                fns.update({f"teacher-from-{kind}-s{s:g}": refine(kind, s) for s in strengths})
                fns.update({f"teacher-on-{kind}-s{s:g}": refine(kind, s, True) for s in strengths})
        fns.update({f"teacher-from-truth-s{s:g}": refine("truth", s) for s in strengths})   # the refinement's ceiling
    return fns


@torch.no_grad()
def evaluate_variants(net: "WarpNet | None", prior_of: Path, features_of: Path, *, split: str, n: int, out: Path,
                      variants: list[str], strengths: tuple[float, ...] = (), grid_n: int = 8, boot: int = 250,
                      command: str = "") -> dict:
    """Each variant through `igr.eval.evaluate` (the same pairs, FD_garm in `features_of`'s encoder), one report per
    variant (OUT-VARIANT.json/.md/.features.npz, as `igr.eval` writes them), and a grid OUT-grid.png."""
    from PIL import Image

    from .baseline import RegressionModel
    from .eval import evaluate, file_digest, markdown
    from .metrics import GarmentFeatures
    from .model import IGRModel

    prior = RegressionModel.from_aligned_prior(prior_of)
    teacher = IGRModel.from_pretrained(prior_of).eval() if strengths else None
    features = GarmentFeatures(IGRModel.from_pretrained(features_of).image_encoder)
    fns = restorers(net, prior, split, teacher=teacher, strengths=strengths)
    unknown = [v for v in variants if v not in fns]
    if unknown:
        raise ValueError(f"unknown or unavailable variants {unknown}: choose from {sorted(fns)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = {}
    for v in variants:
        metrics = evaluate(fns[v], features, split=split, n=n, size=SIZE, boot=boot)
        feats = metrics.pop("features")
        refined = v.startswith("teacher-")
        what = VARIANTS.get(v)
        if refined:
            source = v.split("-")[2]
            start = "true garment" if source == "truth" else f"{source}-deshaded composite"
            what = (f"{prior_of} sampled from the {start} at strength {v.split('-s')[-1]}"
                    + (", the composite also as its aligned prior" if v.startswith("teacher-on-") else ""))
        report = {"model": f"warp variant {v}: {what}", "split": split, "n": n,
                  "sampling": "one regression forward + one warp" + (" + the teacher's sampler" if refined else ""),
                  "features": f"{features_of} image_encoder sha256 {file_digest(features_of, 'image_encoder.safetensors')}",
                  "metrics": metrics, "command": command}
        stem = f"{out.name}-{v}"                       # names hold dots (s0.15): no with_suffix
        np.savez_compressed(out.with_name(f"{stem}.features.npz"), **feats)
        out.with_name(f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        out.with_name(f"{stem}.md").write_text(markdown(report))
        rows[v] = {k: metrics[k]["mean"] for k in ("ssim_mask", "mask_iou", "delta_e", "effnet_dist", "fd")}
        print(f"{v:16s} " + "  ".join(f"{k} {x:.4f}" for k, x in rows[v].items()), flush=True)
    # the grid: person, each variant, the truth
    from .eval import split_batches

    person, garment, _ = next(split_batches(split, grid_n, SIZE, grid_n))
    cols = [person] + [fns[v](person, 0) for v in variants] + [garment]
    tiles = torch.stack(cols, 1).flatten(0, 1)                          # (rows*cols, 3, H, W)
    img = ((tiles.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    r, c = grid_n, len(cols)
    sheet = img.reshape(r, c, *img.shape[1:]).transpose(0, 2, 1, 3, 4).reshape(r * SIZE[0], c * SIZE[1], 3)
    Image.fromarray(sheet).save(out.with_name(f"{out.name}-grid.png"))
    return rows


def report(prefix: Path, variants: list[str], logs: dict[str, Path], out: Path, *, title: str, command: str) -> str:
    """OUT.md, OUT.json and OUT-curves.png from `evaluate_variants`' reports (PREFIX-VARIANT.json) and training logs:
    each variant's headline means, its paired difference from the baseline with a 95% bootstrap interval, the
    warp's validation error over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import LABELS, bootstrap

    keys = ("ssim_mask", "mask_iou", "delta_e", "effnet_dist")
    rows = {v: json.loads(prefix.with_name(f"{prefix.name}-{v}.json").read_text()) for v in variants}
    base = rows["baseline"]["metrics"]["per_sample"]
    table = {}
    for v, r in rows.items():
        m = r["metrics"]
        table[v] = {"what": r["model"].split(": ", 1)[1], **{k: m[k]["mean"] for k in keys}, "fd": m["fd"]["mean"]}
        if v != "baseline":
            for k in keys:
                d = np.asarray(m["per_sample"][k]) - np.asarray(base[k])
                table[v][f"{k}_vs_baseline"] = [float(d.mean()), *bootstrap(d)]
    curves = {name: [json.loads(line) for line in path.read_text().splitlines()] for name, path in logs.items()}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, log in curves.items():
        val = [r for r in log if "val_l1_px" in r]
        ax.plot([r["step"] for r in val], [r["val_l1_px"] for r in val], marker="o", label=name)
    ax.set_xlabel("step (batch 16)")
    ax.set_ylabel("validation L1, px")
    ax.set_title("WarpNet: where each in-shop cell is seen")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_name(out.name + "-curves.png"), dpi=110)
    plt.close(fig)
    n = rows["baseline"]["n"]
    lines = [f"# {title}", "", f"{n} {rows['baseline']['split']} pairs; `{command}`.", "",
             "| variant | " + " | ".join(LABELS[k] for k in keys) + " | FD_garm | " +
             f"{LABELS['ssim_mask']} vs baseline (95%) |", "|" + "---|" * (len(keys) + 3)]
    for v, t in table.items():
        d = t.get("ssim_mask_vs_baseline")
        diff = "" if d is None else f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"
        lines.append(f"| {v} | " + " | ".join(f"{t[k]:.4f}" if k != "delta_e" else f"{t[k]:.2f}" for k in keys)
                     + f" | {t['fd']:.2f} | {diff} |")
    lines += ["", "Variants:", ""] + [f"- **{v}**: {t['what']}" for v, t in table.items()]
    text = "\n".join(lines) + "\n"
    out.with_suffix(".json").write_text(json.dumps({"title": title, "n": n, "command": command, "rows": table,
                                                    "curves": curves}, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.warp", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("data", help="person photos and correspondence targets as one .npz")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--split", default="train")
    q.add_argument("--n", type=int, default=8000)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--first", type=int, default=0, help="the first item (e.g. past a latent cache's items, so that a "
                   "WarpNet trained on these warps the cache's persons as it warps unseen ones)")
    q = sub.add_parser("train", help="train a WarpNet")
    q.add_argument("--data", type=Path, required=True, action="append",
                   help="a `data` file; give it again to join several (the last file's last items validate)")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--steps", type=int, default=3000)
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--init", type=Path, help="a trained WarpNet (OUT/final, or an IGR model folder with a warp prior, "
                   "e.g. models/teacher-warp) to go on training; with --refine, kept frozen while a Refiner learns to "
                   "correct its field")
    q.add_argument("--refine", type=int, default=0, help="with --init: how many times the Refiner corrects the field")
    q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the steps run (the batches are drawn "
                   "on the CPU alike)")
    q.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint (written at every validation), "
                   "with the same settings")
    q.add_argument("--until", type=int, help="stop after this step, with a checkpoint (--resume goes on)")
    q.add_argument("--flip", action="store_true", help="mirror half the items left-right, the photo and its targets "
                   "together (not with --refine)")
    q = sub.add_parser("attach", help="an IGR model with a trained WarpNet as its warp prior (to fine-tune)")
    q.add_argument("--model", type=Path, required=True, help="IGR model folder (e.g. models/teacher-zsnr)")
    q.add_argument("--warp", type=Path, required=True, help="WarpNet folder (python -m igr.warp train's OUT/final)")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--replace", action="store_true", help="MODEL has a warp prior: exchange its WarpNet, keep the rest")
    q = sub.add_parser("eval", help="the warp variants beside the baseline, through igr.eval's metrics")
    q.add_argument("--model", type=Path, help="WarpNet folder (leave out for the baseline and oracle only)")
    q.add_argument("--prior-of", type=Path, required=True, help="IGR model folder with an aligned prior")
    q.add_argument("--features", type=Path, default=Path("models/teacher-small"),
                   help="IGR model folder whose image encoder defines FD_garm (the reports' default)")
    q.add_argument("--split", default="test", choices=("val", "test"))
    q.add_argument("--n", type=int, default=128)
    q.add_argument("--variants", default=",".join(VARIANTS))
    q.add_argument("--strengths", default="", help="comma-separated: also the teacher (--prior-of) sampled from each "
                   "composite noised to strength·T, e.g. 0.3,0.5")
    q.add_argument("--boot", type=int, default=250, help="bootstrap resamples (FD_garm's: a fifth, at least 20)")
    q.add_argument("--out", type=Path, required=True, help="output prefix: OUT-VARIANT.json/.md, OUT-grid.png")
    q = sub.add_parser("report", help="one table and a curves plot from eval's reports and training logs")
    q.add_argument("--prefix", type=Path, required=True, help="eval's --out")
    q.add_argument("--variants", required=True)
    q.add_argument("--log", action="append", default=[], metavar="NAME=LOG.jsonl", help="a WarpNet training log")
    q.add_argument("--title", default="The print carried by a warp")
    q.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.json, OUT-curves.png")
    args = p.parse_args(argv)
    if args.cmd == "report":
        logs = dict(item.split("=", 1) for item in args.log)
        text = report(args.prefix, args.variants.split(","), {k: Path(v) for k, v in logs.items()}, args.out,
                      title=args.title, command="python -m igr.warp " + " ".join(argv if argv is not None else sys.argv[1:]))
        md = args.out.with_suffix(".md")
        if md.exists() and "<!-- findings -->" in md.read_text():        # keep the hand-written findings below the table
            text += "\n<!-- findings -->" + md.read_text().split("<!-- findings -->", 1)[1]
        md.write_text(text)
    elif args.cmd == "eval":
        net = WarpNet.from_pretrained(args.model) if args.model else None
        evaluate_variants(net, args.prior_of, args.features, split=args.split, n=args.n, out=args.out,
                          variants=args.variants.split(","), boot=args.boot,
                          strengths=tuple(float(x) for x in args.strengths.split(",") if x),
                          command="python -m igr.warp " + " ".join(argv if argv is not None else sys.argv[1:]))
    elif args.cmd == "attach":
        try:
            fresh = attach(args.model, args.warp, args.out, replace=args.replace)
        except (ValueError, FileNotFoundError) as e:
            print(f"python -m igr.warp: error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}: {args.model} with the warp prior of {args.warp}; new: {', '.join(fresh) or 'none'}")
    elif args.cmd == "data":
        make_data(args.out, args.split, args.n, args.workers, args.first)
    elif args.cmd == "train":
        if args.refine < 0 or (args.refine and args.init is None):
            p.error("--refine (1 or more) needs --init: a Refiner is trained on a trained WarpNet")
        missing = [d for d in args.data if not d.is_file()]
        if missing:
            print(f"python -m igr.warp: error: no data file {missing[0]} (python -m igr.warp data)", file=sys.stderr)
            return 2
        if args.init is not None and not (args.init / "config.json").is_file():
            print(f"python -m igr.warp: error: {args.init} is not a WarpNet folder (no config.json)", file=sys.stderr)
            return 2
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print(f"python -m igr.warp: error: --device {args.device}, but torch sees no CUDA device here",
                  file=sys.stderr)
            return 2
        try:
            train(args.data, args.out, steps=args.steps, batch=args.batch, lr=args.lr, init=args.init,
                  refine=args.refine, device=args.device, resume=args.resume, until=args.until, flip=args.flip)
        except (ValueError, FileNotFoundError) as e:
            print(f"python -m igr.warp: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
