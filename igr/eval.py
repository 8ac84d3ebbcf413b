"""`python -m igr.eval --model DIR --split test --n 256 --out reports/eval-NAME`: metrics with 95% intervals.

On SynthGarment by default; `--data vitonhd:ROOT` or `--data dresscode:ROOT` evaluates on that data set's test pairs
instead (all of them unless `--n`), read and letterboxed to the model's size as `igr.train --data` reads its train
pairs, with the data set's cloth masks as the true garment masks where it has them (docs/paper-scale.md).

Writes NAME.json and NAME.md. Headline metrics, judged on the garment: SSIM and PSNR inside the true garment
mask, garment-mask IoU (output pixels with any channel below 0.9 in [0, 1], against the true mask), CIE76 ΔE
inside the mask, FD_garm and KID in the embedding space of IGR's own garment encoder (not Inception), and our
LPIPS-style distance on pretrained EfficientNet-Lite0 features (uniform layer weights, no learned layers: not
LPIPS). Whole-image SSIM, MS-SSIM and PSNR beside them. Bootstrap intervals over samples; means per garment
category (SynthGarment's, DressCode's; VITON-HD names none).
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

from .metrics import (HEADLINE, LABELS, PER_SAMPLE, WHITE_THRESHOLD, WHOLE_IMAGE, GarmentFeatures, OnnxMetric,
                      bootstrap, feature_distances, image_metrics, parse_metric_files, summarize)
from .warp import WARP_FIELDS


def data_pairs(spec: str, split: str, n: int | None, size: tuple[int, int]):
    """The `split` pairs of a data set ("vitonhd:ROOT", "dresscode:ROOT": `igr.data.real.open_data`, which
    `igr.train --data` reads through, letterboxing to `size`): all of them, or `n` spread evenly over its pair
    lists (DressCode's run category by category), in list order. -> (data set, pairs in its lists).
    A missing folder, pair list or file raises `DataFolderError` naming it."""
    from .data import DataFolderError
    from .data.real import open_data

    data = open_data(spec, split, size)
    total = len(data)
    if n is not None:
        if not 0 < n <= total:
            raise DataFolderError(f"--n {n}, but {spec} has {total} {split} pairs "
                                  f"({', '.join(map(str, data.pair_lists))})")
        data.records = [data.records[(2 * i + 1) * total // (2 * n)] for i in range(n)]   # the middle of n strata
    return data, total


def split_batches(split: str, n: int, size: tuple[int, int], batch: int, *, categories: bool = False, data=None):
    """(person, garment, mask) tensors of the first `n` SynthGarment items of `split`, in batches; with
    `categories`, a fourth element: the items' garment categories (`igr.data.CATEGORIES` names).

    `data`: a data set from `data_pairs` instead (`split` and `n` unused): all its pairs, categories the data set's
    own (DressCode's folders; None where it names none, as VITON-HD)."""
    if data is None:
        from .data import CATEGORIES, SynthGarmentDataset

        data = SynthGarmentDataset(split, n, size=size)
        category = lambda i, item: CATEGORIES[item["category"]]
    else:
        n, names = len(data), data.pair_categories
        category = lambda i, item: names[i]
    for start in range(0, n, batch):
        items = [data[i] for i in range(start, min(n, start + batch))]
        tensors = tuple(torch.stack([it[k] for it in items]) for k in ("person", "garment", "mask"))   # (B, C, H, W)
        cats = [category(start + j, it) for j, it in enumerate(items)]
        yield (*tensors, cats) if categories else tensors


def by_category(values: dict[str, np.ndarray], categories: list[str]) -> dict[str, dict]:
    """Mean of each per-sample metric over the items of each garment category, with the count n."""
    cats = np.asarray(categories)
    return {c: {"n": int((cats == c).sum()), **{k: float(v[cats == c].mean()) for k, v in values.items()}}
            for c in dict.fromkeys(sorted(categories))}


@torch.no_grad()
def evaluate(restore: Callable[[torch.Tensor, int], torch.Tensor], features: GarmentFeatures, *, split: str = "test",
             n: int = 256, size: tuple[int, int] = (256, 192), batch: int = 16, boot: int = 1000,
             extra: list[OnnxMetric] = (), progress: bool = True, data=None) -> dict:
    """Run `restore(person, first)` (person in [-1, 1] -> garment in [-1, 1]; `first`: the split index of the
    batch's first item, for per-item noise) over the split and summarize the metrics.

    `data`: a data set from `data_pairs`: its pairs instead of SynthGarment's (`split` and `n` unused); means per
    category where it names categories (DressCode), none where it does not (VITON-HD).

    `extra`: metrics from user-supplied ONNX files (LPIPS, DISTS, Inception-FID...), reported under their names.
    The result keeps each per-sample value under "per_sample" so that two runs can be compared pairwise.
    """
    from tqdm.auto import tqdm

    from .perceptual import EffNetDistance

    perceptual = EffNetDistance()
    pairwise = [m for m in extra if m.kind == "pairwise"]
    embedding = [m for m in extra if m.kind == "embedding"]
    per: dict[str, list[np.ndarray]] = {k: [] for k in (*PER_SAMPLE, *(m.name for m in pairwise))}
    real, fake, categories = [], [], []
    ext_real: dict[str, list[torch.Tensor]] = {m.name: [] for m in embedding}
    ext_fake: dict[str, list[torch.Tensor]] = {m.name: [] for m in embedding}
    n = n if data is None else len(data)
    t0 = time.perf_counter()
    first = 0
    for person, garment, mask, cats in tqdm(split_batches(split, n, size, batch, categories=True, data=data),
                                            total=-(-n // batch), desc=f"eval {split}", disable=not progress):
        pred = restore(person, first)
        first += len(person)
        categories += cats
        for k, v in image_metrics(pred, garment, mask, perceptual=perceptual).items():
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
    named = None not in categories
    result["by_category"] = by_category({k: values[k] for k in PER_SAMPLE}, categories) if named else {}
    result["per_sample"] = {k: [round(float(x), 6) for x in v] for k, v in values.items()}
    if named:
        result["per_sample"]["category"] = categories
    if data is not None:
        result["per_sample"]["pair"] = data.names
    result["features"] = {"real": torch.cat(real).numpy(), "fake": torch.cat(fake).numpy()}   # for paired FD
    return result


def flat_colour(garment: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The garment (B, 3, H, W) with every pixel inside its mask (B, 1, H, W) set to its mean colour there."""
    m = mask.float().expand_as(garment)
    mean = (garment * m).flatten(2).sum(2) / m.flatten(2).sum(2).clamp(min=1)
    return torch.where(m > 0.5, mean[..., None, None].expand_as(garment), garment)


@torch.no_grad()
def reference_rows(model, *, split: str, n: int, size: tuple[int, int], batch: int = 16,
                   data=None) -> dict[str, dict]:
    """Four yardsticks on the same pairs: a blank (all-white) image, which scores high whole-image SSIM on these
    white backgrounds; the VAE's reconstruction of the true garment, the ceiling of any model decoding through
    it; the true garment's silhouette filled with its own mean colour (`flat_colour`: perfect shape and colour,
    no print), which masked SSIM rewards and the print correlation scores 0; and the ground truth itself,
    perfect everywhere but in mask IoU, whose value there is the ceiling of the white-threshold rule
    (`igr.metrics.garment_region`). `data`: as in `evaluate`."""
    from .perceptual import EffNetDistance

    perceptual = EffNetDistance()
    per: dict[str, dict[str, list[np.ndarray]]] = {"blank": {}, "vae_reconstruction": {}, "flat_colour": {},
                                                   "ground_truth": {}}
    for person, garment, mask in split_batches(split, n, size, batch, data=data):
        preds = {"blank": torch.ones_like(garment), "vae_reconstruction": model.decode(model.encode(garment)),
                 "flat_colour": flat_colour(garment, mask), "ground_truth": garment}
        for name, pred in preds.items():
            for k, v in image_metrics(pred, garment, mask, perceptual=perceptual).items():
                per[name].setdefault(k, []).append(v.numpy())
    return {name: {k: float(np.concatenate(v).mean()) for k, v in rows.items()} for name, rows in per.items()}


def file_digest(folder: Path, name: str) -> str:
    return hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]


def fmt(key: str, value) -> str:
    """One figure as the tables print it; a figure an older report lacks prints as "–"."""
    if value is None:
        return "–"
    return f"{value:.2f}" if key in ("psnr", "psnr_mask", "delta_e") else f"{value:.4f}"


NOTES = ("Headline metrics first, judged on the garment; read them against the blank-image yardstick: mask IoU "
         "and ΔE are the two an empty output cannot win; masked SSIM and the EffNet distance punish wrong texture "
         "more than none, so an output full of noise-like texture can score worse than a blank one on them. "
         "*mask IoU*: the output's garment is every "
         f"pixel with any channel below {WHITE_THRESHOLD} in [0, 1] (off white), no morphological cleanup, against "
         "the true garment mask (the ground-truth yardstick row shows the rule's own ceiling). *ΔE76 mask*: "
         "CIE76 colour difference (Euclidean in L*a*b*, D65) per pixel, averaged inside the true mask. *EffNet-L0 "
         "dist (ours)*: an LPIPS-style distance on ImageNet EfficientNet-Lite0 features from five stages, unit-"
         "normalised per position, squared differences, spatial mean, uniform weights (no learned layers, so not "
         "LPIPS); 0 for identical images. *print corr (ours)*: inside the true mask, the correlation of the output's "
         "and the truth's colour deviations from their own mean colour: 1 for the truth's print layout at any "
         "contrast, 0 for a flat garment, about 0 for texture in the wrong places (`igr.metrics.print_correlation`); "
         "masked SSIM cannot tell a missing print from a restored one: the flat-colour yardstick (the truth's "
         "silhouette filled with its mean colour) outscores every model on it. Lower is better for ΔE, the EffNet "
         "distance, FD_garm and KID.")


def markdown(report: dict) -> str:
    m = report["metrics"]

    def metric_row(k: str) -> str:
        v = m[k]
        return f"| {LABELS.get(k, k)} | {fmt(k, v['mean'])} | [{fmt(k, v['ci95'][0])}, {fmt(k, v['ci95'][1])}] |"

    rows = [metric_row(k) for k in (*HEADLINE, "fd") if k in m]
    rows.append(f"| KID | {m['kid']['mean']:.5f} | ± {m['kid']['std']:.5f} (std over subsets) |")
    rows += ["| *whole image (a blank image scores well here)* | | |", *(metric_row(k) for k in WHOLE_IMAGE if k in m)]
    for k, v in m.items():
        if k.startswith("kid_"):
            rows.append(f"| {k} | {v['mean']:.5f} | ± {v['std']:.5f} (std over subsets) |")
        elif isinstance(v, dict) and "ci95" in v and k not in (*PER_SAMPLE, "fd"):
            rows.append(f"| {k} (from {v.get('source', v.get('space'))}) | {v['mean']:.4f} | "
                        f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] |")
    cols = (*HEADLINE, *WHOLE_IMAGE)
    head = " | ".join(LABELS[k] for k in cols)
    refs = report.get("references") or {}
    data = report.get("data")
    if data:
        source = (f"Data `{data['spec']}`, split `{report['split']}`: n = {report['n']} of its {data['pairs']} pairs "
                  f"({', '.join(f'`{p}`' for p in data['pair_lists'])}), sampling: {report['sampling']}. "
                  f"True garment masks: {data['mask_source']}.")
    else:
        source = f"SynthGarment split `{report['split']}`, n = {report['n']}, sampling: {report['sampling']}."
    lines = [
        f"# Evaluation: {report['model']}",
        "",
        f"{source} FD and KID are in the embedding space of IGR's garment encoder ({report['features']}), "
        "not Inception: compare them only between runs that share that encoder.",
        "",
        NOTES,
        "",
        "| metric | mean | 95% bootstrap interval |",
        "|---|---|---|",
        *rows,
    ]
    if refs:
        lines += ["", f"| yardstick (same pairs) | {head} |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(fmt(c, v.get(c)) for c in cols) + " |" for k, v in refs.items()]
    if m.get("by_category"):
        lines += ["", f"| garment category | n | {head} |", "|---" * (len(cols) + 2) + "|"]
        lines += [f"| {c} | {v['n']} | " + " | ".join(fmt(k, v.get(k)) for k in cols) + " |"
                  for c, v in m["by_category"].items()]
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m igr.eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="IGR model folder (config.json + safetensors)")
    p.add_argument("--features", help="model folder whose image encoder defines FD_garm (default: --model's)")
    p.add_argument("--data", metavar="KIND:ROOT",
                   help="evaluate on a real data set's pairs (of --split; VITON-HD and DressCode have no val): "
                        "vitonhd:ROOT or dresscode:ROOT, as igr.train --data takes (default SynthGarment)")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--n", type=int, help="items to evaluate (default: 256 of SynthGarment; all pairs of --data)")
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--sampler", choices=("ddim", "dpmsolver++"))
    p.add_argument("--strength", type=float,
                   help="models with an aligned prior: start from the prior noised to strength·T (SDEdit), not pure noise")
    p.add_argument("--jump", type=float, metavar="J",
                   help="zero terminal SNR models: leave out the sampler's timesteps between T and J·T (one call at T, "
                        "the posterior mean, then the plan from J·T; igr.pipeline.jump_plan)")
    p.add_argument("--jump-mean", type=int, default=1, metavar="K",
                   help="with --jump: start the jump from K estimates at T averaged (K - 1 more denoiser calls)")
    p.add_argument("--guidance-below", type=int, metavar="T",
                   help="guide only at timesteps <= T, the calls above it conditional alone (a guidance interval)")
    p.add_argument("--true-warp", nargs="?", const="field", choices=tuple(WARP_FIELDS),
                   help="models with a warp prior, SynthGarment only: warp each person by its true field instead of "
                   "WarpNet's (what a perfect warp would give); 'placement': WarpNet's field placed by the true one; "
                   "'shape': the true field at WarpNet's placement; 'coords', 'visibility': that half from WarpNet, "
                   "the other true (igr.warp.diagnostic_field)")
    p.add_argument("--full-vae", nargs="?", const="both", choices=("both", "encoder", "decoder"),
                   help="a model with light VAE parts (config light): encode and decode with the full VAE instead; "
                        "'encoder' or 'decoder' swaps that part alone, to tell which part holds a gap")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="restore each item K times (seeds SEED..SEED+K-1) and score the pixel mean of the K "
                        "samples: an estimate of the posterior mean (K times the denoiser calls)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=PATH.onnx",
                   help="an extra metric from a local ONNX file: two inputs (LPIPS, DISTS: per-sample distance) "
                        "or one (Inception, CLIP: features for FD_NAME and KID_NAME); images float32 NCHW in [0, 1]")
    p.add_argument("--references", action="store_true",
                   help="also score yardsticks on the same pairs: a blank image, the VAE reconstruction of the "
                        "truth, the truth's silhouette filled with its mean colour, and the truth")
    p.add_argument("--out", required=True, help="output path without suffix: writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    if args.n is None and args.data is None:
        args.n = 256
    if args.n is not None and args.n < 2:
        p.error("--n must be at least 2 (FD and KID need two samples)")
    if args.data is not None and args.split != "test":
        p.error(f"--data {args.data}: VITON-HD and DressCode have train and test pairs, no {args.split} (--split test)")
    try:
        extra = parse_metric_files(args.metric)
    except ValueError as e:
        p.error(str(e))

    from .baseline import KIND, RegressionModel
    from .model import IGRModel
    from .pipeline import mean_of_samples
    from .warp import diagnostic_field

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
    jump = args.jump if args.jump is not None else None if baseline else cfg.sample_jump        # the config's plan
    below = args.guidance_below if args.guidance_below is not None else None if baseline else cfg.guidance_below
    light = False if baseline else model.uses_light(False if args.full_vae == "both" else None)
    if args.full_vae in ("encoder", "decoder"):
        if not light:
            p.error(f"--full-vae {args.full_vae}: {model_dir} has no light VAE parts (config light)")
        if args.full_vae == "encoder" and model.light_encoder is None:
            p.error(f"--full-vae encoder: {model_dir} has no light encoder; it encodes with the full VAE already")
        setattr(model, f"light_{args.full_vae}", None)  # IGRModel.encode / decode fall back to the full VAE's part
    if args.true_warp and (baseline or getattr(model, "warpnet", None) is None):
        p.error(f"--true-warp: {model_dir} has no warp prior (config warp_prior)")
    if args.samples < 1:
        p.error(f"--samples must be at least 1, got {args.samples}")
    if args.samples > 1 and baseline:
        p.error("--samples: a regression baseline restores deterministically; there is nothing to average")
    if args.true_warp and args.data is not None:
        p.error("--true-warp needs SynthGarment's correspondences; --data pairs carry none")
    if baseline and (args.jump is not None or args.guidance_below is not None):
        p.error("--jump, --guidance-below: a regression baseline has no sampler")
    if jump is not None and args.strength is not None:
        p.error("--jump and --strength are two different starts: give one")
    if args.jump_mean != 1 and (jump is None or args.jump_mean < 1):
        p.error(f"--jump-mean {args.jump_mean}: a count of at least 1, with --jump")
    if jump is not None:
        try:
            from .pipeline import jump_plan
            jump_plan(cfg, steps, jump, sampler)
        except ValueError as e:
            p.error(f"--jump: {e}")

    from .data import DataFolderError

    def refuse(e: Exception | str) -> int:              # one line that names the folder or file
        print(f"python -m igr.eval: error: --data: {e}", file=sys.stderr)
        return 2

    data, source = None, {}
    if args.data is not None:
        try:
            data, total = data_pairs(args.data, args.split, args.n, (cfg.height, cfg.width))
        except DataFolderError as e:
            return refuse(e)
        if len(data) < 2:
            return refuse(f"{args.data} has {len(data)} {args.split} pair; FD and KID need two")
        args.n = len(data)
        mask, mask_source = data.mask_source()
        source = {"data": {"spec": args.data, "pairs": total, "pair_lists": [str(f) for f in data.pair_lists],
                           "mask": mask, "mask_source": mask_source}}

    def restore(person: torch.Tensor, first: int) -> torch.Tensor:
        if baseline:
            return model.restore(person)
        cond = None
        if args.true_warp:
            cond = model.condition(person, light=light, field=diagnostic_field(
                args.true_warp, model.warpnet, person, args.split, range(first, first + len(person))))
        return mean_of_samples(model, person, first, args.samples, steps=steps, guidance_scale=scale,
                               sampler=sampler, seed=args.seed, strength=args.strength, light=light, cond=cond,
                               jump=jump, guidance_below=below, jump_mean=args.jump_mean)

    try:
        metrics = evaluate(restore, features, split=args.split, n=args.n, size=(cfg.height, cfg.width),
                           batch=args.batch, boot=args.boot, extra=extra, data=data)
    except DataFolderError as e:                        # a file of a pair that cannot be read
        return refuse(e)
    feats = metrics.pop("features")
    report = {
        "model": str(model_dir), "split": args.split, "n": args.n, **source,       # source: --data's spec, pairs, masks
        "sampling": "one regression forward" if baseline else
                    {"sampler": sampler, "steps": steps, "guidance": scale, "seed": args.seed,
                     **({"samples_averaged": args.samples} if args.samples > 1 else {}),
                     **({"strength": args.strength} if args.strength is not None else {}),
                     **({"jump": jump} if jump is not None else {}),
                     **({"jump_mean": args.jump_mean} if args.jump_mean > 1 else {}),
                     **({"guidance_below": below} if below is not None else {}),
                     **({"light": True} if light else {}),
                     **({"full_vae": args.full_vae} if light and args.full_vae else {}), **({"warp": WARP_FIELDS[args.true_warp]} if args.true_warp else {})},
        "features": f"{feat_dir} image_encoder sha256 {file_digest(feat_dir, 'image_encoder.safetensors')}",
        "metrics": metrics,
        "command": "python -m igr.eval " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.references:
        vae_owner = IGRModel.from_pretrained(feat_dir) if baseline else model
        report["references"] = reference_rows(vae_owner, split=args.split, n=args.n, size=(cfg.height, cfg.width),
                                              batch=args.batch, data=data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    named = lambda suffix: out.with_name(out.name + suffix)     # OUT as given: a name like "g1.5" keeps its ".5"
    np.savez_compressed(named(".features.npz"), **feats)       # FD_garm features, for paired FD
    named(".json").write_text(json.dumps(report, indent=1) + "\n")
    named(".md").write_text(markdown(report))
    m = metrics
    print(f"SSIM mask {m['ssim_mask']['mean']:.4f}  mask IoU {m['mask_iou']['mean']:.4f}  "
          f"ΔE76 {m['delta_e']['mean']:.2f}  EffNet dist {m['effnet_dist']['mean']:.4f}  "
          f"FD_garm {m['fd']['mean']:.3f} {m['fd']['ci95']}  (whole-image SSIM {m['ssim']['mean']:.4f})  "
          f"-> {named('.json')}" + (f"  [{args.data} {args.split}, {args.n} pairs]" if data else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
