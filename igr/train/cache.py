"""`python -m igr.train.cache --model runs/encoder/final --out cache/train`: frozen features of training pairs.

Once the VAE and the image tower are frozen, a diffusion step needs only, per pair, the person latent,
the garment latent and the tower's embedding of the person. Computing them once (this command) instead
of every step removes SynthGarment generation and VAE encoding from the training loop. The cache is
tied to the weights it was made with: `meta.json` records a digest of the VAE and of the image tower
(key "clip" for our CLIP tower, "efficientnet-lite0" for that one, whose digest also covers the grid
and input size that shape its embedding), and a stage refuses a cache whose digests differ from its model's.

Layout (one folder per training size):  OUT/meta.json, OUT/<H>x<W>.safetensors with
  person_latent (N, 4, h, w) fp16, garment_latent (N, 4, h, w) fp16, person_embed (N, E) fp32 (E: 128 for
  the small CLIP tower, 320 per cell for efficientnet-lite0: 3840 at a 4x3 grid, ~15 KB a pair),
  quality (N,) fp32, index (N,) int64 (SynthGarment train item).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..files import atomic_folder

KEYS = ("person_latent", "garment_latent", "person_embed")
TRUE_FIELD = "true-field"  # the warpnet "digest" of a cache warped by SynthGarment's true field (--true-field)
WARP = "warp"          # (N, 5, h, w) fp16: a warp prior's input (IGRModel.warp_input), in caches made with --warp-from


def digest(module: nn.Module, salt: str = "") -> str:
    """SHA-256 (16 hex) over a module's weights (as fp32), after `salt` when given."""
    h = hashlib.sha256(salt.encode())
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def frozen_digests(model: nn.Module) -> dict[str, str]:
    """Digests of the frozen parts a cache depends on: the VAE and (IGR models) the image tower, keyed by its
    backbone ("clip" as ever); a pretrained tower's digest also covers the cells and input size it embeds at."""
    out = {"vae": digest(model.vae)}
    if hasattr(model, "image_encoder"):
        cfg = model.image_encoder.cfg
        salt = "" if cfg.backbone == "clip" else f"grid {list(cfg.grid)} input {list(cfg.input_size)}"
        out[cfg.backbone] = digest(model.image_encoder.tower, salt)
    if getattr(model, "warpnet", None) is not None:
        out["warpnet"] = digest(model.warpnet)
    return out


@torch.no_grad()
def encode_pairs(model: nn.Module, person: torch.Tensor, garment: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cached features of a batch of pairs (images in [-1, 1])."""
    return {"person_latent": model.encode(person).half(), "garment_latent": model.encode(garment).half(),
            "person_embed": model.image_encoder.embed(person).float()}


def build(model: nn.Module, out: str | Path, *, sizes: list[tuple[int, int]], n: int | list[int], batch: int = 32,
          workers: int = 1, progress: bool = True, device: str | torch.device = "cpu") -> Path:
    """Encode the first `n` SynthGarment train pairs at each size (`n` one count, or one per size) into `out`.
    `workers` processes generate the pairs; `device` encodes them (the rows are stored from the CPU either way)."""
    counts = n if isinstance(n, list) else [n] * len(sizes)
    if len(counts) != len(sizes):
        raise ValueError(f"{len(counts)} counts for {len(sizes)} sizes")
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..data import SynthGarmentDataset

    model = model.eval().to(device)
    with atomic_folder(out) as tmp:
        for size, n in zip(sizes, counts):
            data = SynthGarmentDataset("train", n, size=size)
            loader = DataLoader(data, batch_size=batch, num_workers=workers,
                                prefetch_factor=4 if workers else None)
            parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*KEYS, "quality")}
            for items in tqdm(loader, desc=f"cache {size[0]}x{size[1]}", disable=not progress):
                with torch.no_grad():
                    rows = encode_pairs(model, items["person"].to(device), items["garment"].to(device))
                for k, v in rows.items():
                    parts[k].append(v.cpu())
                parts["quality"].append(items["quality"].float())
            tensors = {k: torch.cat(v).contiguous() for k, v in parts.items()}
            tensors["index"] = torch.arange(n, dtype=torch.int64)
            save_file(tensors, str(tmp / f"{size[0]}x{size[1]}.safetensors"))
        (tmp / "meta.json").write_text(json.dumps({
            "split": "train", "n": dict(zip((f"{h}x{w}" for h, w in sizes), counts)), "sizes": [list(s) for s in sizes], "digests": frozen_digests(model),
            "scaling_factor": model.config.vae.scaling_factor}, indent=1) + "\n")
    return Path(out)


class _Persons(torch.utils.data.Dataset):
    """SynthGarment train items generated again, for `add_warp`: each one's person in [-1, 1] and, where `true`,
    its true field (`igr.warp.field_of`)."""

    def __init__(self, index: list[int], size: tuple[int, int], true: bool):
        self.index, self.size, self.true = index, size, true

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from ..data.synth import generate, seed_for
        from ..images import to_tensor
        from ..warp import field_of

        s = generate(seed_for("train", self.index[i]), size=self.size)
        item = {"person": to_tensor(s.person)}
        if self.true:
            coords, visible = field_of([s])
            item |= {"coords": coords[0], "visible": visible[0]}
        return item


def add_warp(model: nn.Module, source: str | Path, out: str | Path, *, batch: int = 32, progress: bool = True,
             true: bool = False, workers: int = 0, device: str | torch.device = "cpu") -> Path:
    """A copy of the cache `source` with each row's warp prior input (`model.warp_input` of the row's person, a
    model with `warp_prior`) added as "warp", and the WarpNet's digest in meta.json. The persons are generated
    again from their SynthGarment train items; `model`'s VAE must be the one `source` was made with.

    `true`: each row warped by SynthGarment's true field (`igr.warp.true_field`) instead of the WarpNet's, recorded as
    warpnet digest "true-field", which any warp prior model accepts: a measurement of what a perfect warp would
    teach, not a model that a photo alone can feed. `workers` processes generate the persons; `device` warps and
    encodes them."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if getattr(model, "warpnet", None) is None:
        raise ValueError("--warp-from needs a --model with a warp prior (config warp_prior)")
    source = Path(source)
    meta = json.loads((source / "meta.json").read_text())
    mine = frozen_digests(model)
    if meta["digests"].get("vae") != mine["vae"]:
        raise ValueError(f"{source} was made with another VAE (digest {meta['digests'].get('vae')}, this model "
                         f"{mine['vae']})")
    size = (model.config.height, model.config.width)
    if list(size) not in meta["sizes"]:
        raise ValueError(f"{source} has no {size[0]}x{size[1]} rows (sizes {meta['sizes']}): the warp works at that size")
    model = model.eval().to(device)
    with atomic_folder(out) as tmp:
        for h, w in meta["sizes"]:
            name = f"{h}x{w}.safetensors"
            t = load_file(str(source / name))
            if (h, w) == size:
                loader = DataLoader(_Persons(t["index"].tolist(), size, true), batch_size=batch,
                                    num_workers=workers, prefetch_factor=4 if workers else None)
                parts = []
                for items in tqdm(loader, desc=f"warp {h}x{w}", disable=not progress):
                    field = (items["coords"].to(device), items["visible"].to(device)) if true else None
                    with torch.no_grad():
                        parts.append(model.warp_input(items["person"].to(device), field).half().cpu())
                t[WARP] = torch.cat(parts).contiguous()
            save_file(t, str(tmp / name))
        meta["digests"] = {**meta["digests"], "warpnet": TRUE_FIELD if true else mine["warpnet"]}
        meta["warp_from"] = str(source)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return Path(out)


class LatentCache:
    """Read side: rows of one size, optionally the high-quality subset, in a seeded order per epoch."""

    def __init__(self, folder: str | Path, size: tuple[int, int], *, min_quality: float | None = None,
                 expect: dict[str, str] | None = None) -> None:
        folder = self.folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a latent cache (no meta.json; make one with python -m igr.train.cache)")
        self.meta = json.loads(meta_path.read_text())
        for part, value in (expect or {}).items():
            if part not in self.meta["digests"]:
                made = ", ".join(self.meta["digests"])
                what = "a warp prior: add one with --warp-from" if part == "warpnet" else \
                    "another image tower: rebuild it from this stage's --init model"
                raise ValueError(f"{folder} was made without this model's {part} (digests of {made}); {what}")
            if part == "warpnet" and self.meta["digests"][part] == TRUE_FIELD:
                continue                    # rows warped by the true field depend on no WarpNet
            if self.meta["digests"].get(part) != value:
                raise ValueError(f"{folder} was made with other {part} weights (digest {self.meta['digests'].get(part)}, "
                                 f"this model {value}): rebuild it from this stage's --init model")
        path = folder / f"{size[0]}x{size[1]}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {size[0]}x{size[1]} features (sizes: {self.meta['sizes']})")
        t = load_file(str(path))
        keep = torch.arange(len(t["quality"])) if min_quality is None else \
            torch.nonzero(t["quality"] >= min_quality).flatten()
        if len(keep) == 0:
            raise ValueError(f"{path}: no pair reaches quality {min_quality}")
        self.rows = {k: t[k][keep] for k in (*KEYS, WARP) if k in t}
        self.index = t["index"][keep] if "index" in t else keep        # each row's SynthGarment train item
        self.n = len(keep)
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def position(self, index: int, seed: int) -> int:
        """Row for the `index`-th draw: each pass over the cache in its own seeded order."""
        epoch, i = divmod(index, self.n)
        if (seed, epoch) not in self._orders:
            self._orders = {(seed, epoch): np.random.default_rng([seed, epoch]).permutation(self.n)}
        return int(self._orders[seed, epoch][i])

    def item(self, index: int, seed: int) -> dict[str, torch.Tensor]:
        r = self.position(index, seed)
        return {k: (v[r].float() if v.dtype == torch.float16 else v[r]) for k, v in self.rows.items()}


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.train.cache", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder with the frozen VAE and image tower (encoder stage's final)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[12_000, 8_000],
                   help="train pairs per size: one count, or one per size (comma-separated)")
    p.add_argument("--sizes", type=lambda s: [_size(x) for x in s.split(",")], default=[(128, 96), (256, 192)])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="processes generating the pairs")
    p.add_argument("--device", default="cpu", help="where the frozen parts encode (cpu, cuda, ...)")
    p.add_argument("--warp-from", metavar="CACHE", help="copy this cache and add each row's warp prior input "
                   "(--model: a model with warp_prior and the cache's VAE), instead of encoding pairs anew")
    p.add_argument("--true-field", action="store_true", help="with --warp-from: warp each row by SynthGarment's "
                   "true field instead of the model's WarpNet (what a perfect warp would teach)")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.n) or len(args.n) not in (1, len(args.sizes)):
        p.error("--n: one positive count, or one per size")
    if args.true_field and not args.warp_from:
        p.error("--true-field goes with --warp-from")
    if Path(args.out).exists():
        p.error(f"{args.out} exists; remove it first (a cache is rebuilt whole, never patched)")
    from ..model import IGRModel

    try:
        model = IGRModel.from_pretrained(args.model)
    except FileNotFoundError as e:
        p.error(str(e))
    if args.warp_from:
        try:
            out = add_warp(model, args.warp_from, args.out, batch=args.batch, true=args.true_field,
                           workers=args.workers, device=args.device)
        except (ValueError, FileNotFoundError) as e:
            p.error(str(e))
        print(f"wrote {out}: {args.warp_from} with each row's warp prior input")
        return 0
    n = args.n if len(args.n) > 1 else args.n * len(args.sizes)
    out = build(model, args.out, sizes=args.sizes, n=n, batch=args.batch, workers=args.workers, device=args.device)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out}: {n} pairs at sizes {args.sizes}, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
