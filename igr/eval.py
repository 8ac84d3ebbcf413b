"""`python -m igr.eval --model DIR --split test --n 256 --out reports/eval-NAME`: metrics with 95% intervals.

Writes NAME.json and NAME.md: SSIM, MS-SSIM, PSNR (whole image and inside the garment mask), FD_garm and
KID in the embedding space of IGR's own garment encoder (not Inception), bootstrap intervals over samples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .metrics import (PER_SAMPLE, GarmentFeatures, OnnxMetric, bootstrap, feature_distances, image_metrics,
                      parse_metric_files, summarize)


def split_batches(split: str, n: int, size: tuple[int, int], batch: int):
    """(person, garment, mask) tensors of the first `n` SynthGarment items of `split`, in batches."""
    from .data import SynthGarmentDataset

    data = SynthGarmentDataset(split, n, size=size)
    for start in range(0, n, batch):
        items = [data[i] for i in range(start, min(n, start + batch))]
        yield tuple(torch.stack([it[k] for it in items]) for k in ("person", "garment", "mask"))


@torch.no_grad()
def evaluate(restore: Callable[[torch.Tensor, int], torch.Tensor], features: GarmentFeatures, *, split: str = "test",
             n: int = 256, size: tuple[int, int] = (256, 192), batch: int = 16, boot: int = 1000,
             extra: list[OnnxMetric] = (), progress: bool = True) -> dict:
    """Run `restore(person, first)` (person in [-1, 1] -> garment in [-1, 1]; `first`: the split index of the
    batch's first item, for per-item noise) over the split and summarize the metrics.

    `extra`: metrics from user-supplied ONNX files (LPIPS, DISTS, Inception-FID...), reported under their names.
    The result keeps each per-sample value under "per_sample" so that two runs can be compared pairwise.
    """
    from tqdm.auto import tqdm

    pairwise = [m for m in extra if m.kind == "pairwise"]
    embedding = [m for m in extra if m.kind == "embedding"]
    per: dict[str, list[np.ndarray]] = {k: [] for k in (*PER_SAMPLE, *(m.name for m in pairwise))}
    real, fake = [], []
    ext_real: dict[str, list[torch.Tensor]] = {m.name: [] for m in embedding}
    ext_fake: dict[str, list[torch.Tensor]] = {m.name: [] for m in embedding}
    t0 = time.perf_counter()
    first = 0
    for person, garment, mask in tqdm(split_batches(split, n, size, batch), total=-(-n // batch),
                                      desc=f"eval {split}", disable=not progress):
        pred = restore(person, first)
        first += len(person)
        for k, v in image_metrics(pred, garment, mask).items():
            per[k].append(v.numpy())
        for m in pairwise:
            per[m.name].append(m.distance(pred, garment))
        for m in embedding:
            ext_real[m.name].append(m.embed(garment))
            ext_fake[m.name].append(m.embed(pred))
        real.append(features(garment))
        fake.append(features(pred))
    seconds = time.perf_counter() - t0
    values = {k: np.concatenate(v) for k, v in per.items()}
    result = summarize({k: values[k] for k in PER_SAMPLE}, torch.cat(real), torch.cat(fake), boot=boot)
    for m in pairwise:
        v = values[m.name]
        result[m.name] = {"mean": float(v.mean()), "ci95": bootstrap(v, n=boot), "source": m.path}
    for m in embedding:
        result[f"fd_{m.name}"], result[f"kid_{m.name}"] = feature_distances(
            torch.cat(ext_real[m.name]), torch.cat(ext_fake[m.name]), boot=boot, space=f"embeddings of {m.path}")
    result["seconds_per_image"] = seconds / n
    result["per_sample"] = {k: [round(float(x), 6) for x in v] for k, v in values.items()}
    result["features"] = {"real": torch.cat(real).numpy(), "fake": torch.cat(fake).numpy()}   # for paired FD
    return result


@torch.no_grad()
def reference_rows(model, *, split: str, n: int, size: tuple[int, int], batch: int = 16) -> dict[str, dict]:
    """Two yardsticks on the same pairs: a blank (all-white) image, which scores high SSIM on these white
    backgrounds, and the VAE's reconstruction of the true garment, the ceiling of any model decoding through it."""
    per: dict[str, dict[str, list[np.ndarray]]] = {"blank": {}, "vae_reconstruction": {}}
    for person, garment, mask in split_batches(split, n, size, batch):
        for name, pred in (("blank", torch.ones_like(garment)), ("vae_reconstruction", model.decode(model.encode(garment)))):
            for k, v in image_metrics(pred, garment, mask).items():
                per[name].setdefault(k, []).append(v.numpy())
    return {name: {k: float(np.concatenate(v).mean()) for k, v in rows.items()} for name, rows in per.items()}


def file_digest(folder: Path, name: str) -> str:
    return hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]


def markdown(report: dict) -> str:
    m = report["metrics"]
    rows = [f"| {k} | {m[k]['mean']:.4f} | [{m[k]['ci95'][0]:.4f}, {m[k]['ci95'][1]:.4f}] |"
            for k in (*PER_SAMPLE, "fd")]
    rows.append(f"| kid | {m['kid']['mean']:.5f} | ± {m['kid']['std']:.5f} (std over subsets) |")
    for k, v in m.items():
        if k.startswith("kid_"):
            rows.append(f"| {k} | {v['mean']:.5f} | ± {v['std']:.5f} (std over subsets) |")
        elif isinstance(v, dict) and "ci95" in v and k not in (*PER_SAMPLE, "fd"):
            rows.append(f"| {k} (from {v.get('source', v.get('space'))}) | {v['mean']:.4f} | "
                        f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] |")
    return "\n".join([
        f"# Evaluation: {report['model']}",
        "",
        f"Split `{report['split']}`, n = {report['n']}, sampling: {report['sampling']}. "
        f"FD and KID are in the embedding space of IGR's garment encoder ({report['features']}), "
        "not Inception: compare them only between runs that share that encoder.",
        "",
        "| metric | mean | 95% bootstrap interval |",
        "|---|---|---|",
        *rows,
        *(["", "| yardstick (same pairs) | SSIM | PSNR | SSIM mask | PSNR mask |", "|---|---|---|---|---|"]
          + [f"| {k} | {v['ssim']:.4f} | {v['psnr']:.2f} | {v['ssim_mask']:.4f} | {v['psnr_mask']:.2f} |"
             for k, v in report.get("references", {}).items()] if report.get("references") else []),
        "",
        f"Command: `{report['command']}`",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="IGR model folder (config.json + safetensors)")
    p.add_argument("--features", help="model folder whose image encoder defines FD_garm (default: --model's)")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--sampler", choices=("ddim", "dpmsolver++"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=PATH.onnx",
                   help="an extra metric from a local ONNX file: two inputs (LPIPS, DISTS: per-sample distance) "
                        "or one (Inception, CLIP: features for FD_NAME and KID_NAME); images float32 NCHW in [0, 1]")
    p.add_argument("--references", action="store_true",
                   help="also score a blank image and the VAE reconstruction of the truth on the same pairs")
    p.add_argument("--out", required=True, help="output path without suffix: writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error("--n must be at least 2 (FD and KID need two samples)")
    try:
        extra = parse_metric_files(args.metric)
    except ValueError as e:
        p.error(str(e))

    from .baseline import KIND, RegressionModel
    from .model import IGRModel
    from .pipeline import sample_items

    model_dir = Path(args.model)
    baseline = json.loads((model_dir / "config.json").read_text()).get("kind") == KIND
    if baseline and not args.features:
        p.error("a regression baseline has no image encoder: pass --features IGR_MODEL_DIR for FD_garm")
    feat_dir = Path(args.features) if args.features else model_dir
    model = RegressionModel.from_pretrained(model_dir) if baseline else IGRModel.from_pretrained(model_dir)
    encoder = IGRModel.from_pretrained(feat_dir).image_encoder if args.features else model.image_encoder
    features = GarmentFeatures(encoder)
    cfg = model.config
    steps = args.steps or cfg.sample_steps
    scale = cfg.guidance_scale if args.guidance is None else args.guidance
    sampler = args.sampler or cfg.sampler

    def restore(person: torch.Tensor, first: int) -> torch.Tensor:
        if baseline:
            return model.restore(person)
        return sample_items(model, person, first, steps=steps, guidance_scale=scale, sampler=sampler, seed=args.seed)

    metrics = evaluate(restore, features, split=args.split, n=args.n, size=(cfg.height, cfg.width),
                       batch=args.batch, boot=args.boot, extra=extra)
    feats = metrics.pop("features")
    report = {
        "model": str(model_dir), "split": args.split, "n": args.n,
        "sampling": "one regression forward" if baseline else
                    {"sampler": sampler, "steps": steps, "guidance": scale, "seed": args.seed},
        "features": f"{feat_dir} image_encoder sha256 {file_digest(feat_dir, 'image_encoder.safetensors')}",
        "metrics": metrics,
        "command": "python -m igr.eval " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.references:
        vae_owner = IGRModel.from_pretrained(feat_dir) if baseline else model
        report["references"] = reference_rows(vae_owner, split=args.split, n=args.n, size=(cfg.height, cfg.width),
                                              batch=args.batch)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out.with_suffix(".features.npz"), **feats)       # FD_garm features, for paired FD
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    m = metrics
    print(f"SSIM {m['ssim']['mean']:.4f} {m['ssim']['ci95']}  PSNR {m['psnr']['mean']:.2f}  "
          f"FD_garm {m['fd']['mean']:.3f} {m['fd']['ci95']}  -> {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
