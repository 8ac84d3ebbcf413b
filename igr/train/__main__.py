"""`python -m igr.train --stage {vae,decoder,encoder,coarse,hqft,baseline} --preset small --out runs/NAME [--init DIR] [--resume]`.

Stages run in order, each starting from the previous stage's `OUT/final` folder:
  vae      AutoencoderKL on SynthGarment images (L1 + KL), then frozen; sets the latent scale
  decoder  (optional, any time after vae) the VAE's decoder alone on garments (L1 + edge L1), from --init: the
           encoder, latent space and scale stay, so a trained denoiser keeps working with the new decoder
  encoder  the CLIP tower, contrastive person <-> own garment, then frozen
  coarse   all pairs, mostly at 128x96, timesteps leaning to high noise
  hqft     256x192, the high-quality subset, lower LR, timesteps leaning to low noise
  baseline the direct-regression UNet (person -> garment latent, L1) on the VAE stage's VAE, same budget

Paper scale (docs/paper-scale.md): `--preset sd15 --pretrained SD_FOLDER` starts the coarse stage from a local
Stable Diffusion 1.5 folder (no vae/encoder stage), `--data vitonhd:ROOT` trains on VITON-HD, and
`accelerate launch --config_file configs/accelerate/8gpu.yaml -m igr.train ...` runs it on many GPUs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _pair(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    if not (h.isdigit() and w.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW, e.g. 128x96")
    return int(h), int(w)


def _overrides(items: list[str], cls: type | None = None, flag: str = "--set") -> dict:
    """FIELD=VALUE pairs for dataclass `cls` (default StageConfig), values parsed as JSON where they parse
    (numbers, booleans, null, lists), else strings. A field of a nested config dataclass is named with a dot
    (`encoder.backbone=efficientnet-lite0`) and comes back nested ({"encoder": {"backbone": ...}}), the form
    `IGRConfig.replace` takes."""
    import dataclasses as dc

    from .config import StageConfig

    cls = cls or StageConfig
    nested = {f.name: f.default_factory for f in dc.fields(cls) if dc.is_dataclass(f.default_factory)}
    fields = {f.name for f in dc.fields(cls)} - set(nested)
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not (key in fields or (dot and section in nested)):
            sections = f"; or SECTION.FIELD for SECTION one of {', '.join(sorted(nested))}" if nested else ""
            raise ValueError(f"{flag} {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}"
                             f"{sections}")
        if dot and name not in {f.name for f in dc.fields(nested[section])}:
            raise ValueError(f"{flag} {item!r}: {section} has no field {name!r} (its fields: "
                             f"{', '.join(f.name for f in dc.fields(nested[section]))})")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        parsed = tuple(parsed) if isinstance(parsed, list) else parsed
        if dot:
            out.setdefault(section, {})[name] = parsed
        else:
            out[key] = parsed
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m igr.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--stage", required=True, choices=("vae", "decoder", "encoder", "coarse", "hqft", "baseline"))
    p.add_argument("--preset", default="small", choices=("tiny", "small", "sd15"))
    p.add_argument("--out", required=True, help="run folder: log.jsonl, loss.png, samples/, checkpoint/, final/")
    p.add_argument("--init", help="model folder to start from (the previous stage's OUT/final)")
    p.add_argument("--pretrained", metavar="SD_FOLDER",
                   help="start the coarse stage from a local Stable Diffusion folder (diffusers layout: unet/, vae/, "
                        "image_encoder/): the architecture comes from it, the rest from --preset")
    p.add_argument("--data", metavar="KIND:ROOT",
                   help="train on a real data set's train pairs: vitonhd:ROOT or dresscode:ROOT (default SynthGarment)")
    p.add_argument("--subset", metavar="FILE",
                   help="hqft on --data: the high-quality pairs, one name a line (python -m igr.data subset)")
    p.add_argument("--grad-accum", type=int, dest="grad_accum",
                   help="micro-batches per optimizer step (global batch = batch x processes x this)")
    p.add_argument("--gradient-checkpointing", action="store_true", dest="gradient_checkpointing",
                   help="recompute the UNets' blocks in backward: less memory, ~30%% more time")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint exactly")
    p.add_argument("--resume-compact", metavar="DIR", dest="resume_compact",
                   help="continue from a compact checkpoint (--compact-to of an earlier run): its EMA and step; "
                        "AdamW restarts under a re-warm-up")
    p.add_argument("--compact-to", metavar="DIR", dest="compact_to",
                   help="also write a compact checkpoint here at every checkpoint (the EMA in fp16, overwritten; "
                        "components equal to --init's files are linked), small enough to commit")
    p.add_argument("--until", type=int, metavar="STEP",
                   help="stop after this step (a checkpoint holds it; --resume goes on) without changing the schedule "
                        "of --steps: equal-budget tries on the schedule of a longer run")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--size", type=_pair)
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--paths", choices=("both", "low", "high"), default=None,
                   help="ablation: train with both garment extractors (default), GarmNet only, or the encoder only")
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="override stage-config fields, e.g. --set low_res_fraction=0 timestep_power=1")
    p.add_argument("--model-set", nargs="+", default=[], metavar="FIELD=VALUE", dest="model_set",
                   help="change model-config fields, e.g. --model-set zero_snr=true aligned_prior=true, or a nested "
                        "one with a dot: encoder.backbone=efficientnet-lite0; from --init, weights carry over "
                        "wherever they fit (a pretrained tower comes from its package)")
    p.add_argument("--sample-every", type=int, dest="sample_every")
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .config import StageConfig
    from .trainer import CHECKPOINT, Trainer, build_model

    changes = {k: getattr(args, k) for k in ("steps", "batch", "lr", "size", "workers", "seed", "sample_every",
                                             "checkpoint_every", "grad_accum", "data", "subset")
               if getattr(args, k) is not None}
    if args.bf16:
        changes["mixed_precision"] = "bf16"
    if args.gradient_checkpointing:
        changes["gradient_checkpointing"] = True
    from ..config import IGRConfig

    try:
        changes.update(_overrides(args.set))
        cfg = StageConfig.preset(args.stage, args.preset, **changes)
        model_changes = _overrides(args.model_set, IGRConfig, "--model-set")
    except (ValueError, TypeError) as e:
        print(f"python -m igr.train: error: {e}", file=sys.stderr)
        return 2
    if cfg.data is not None and cfg.cache is None:   # a data folder's mistakes now, as one line, not in a worker
        from ..data import DataFolderError
        from ..data.real import training_pairs

        try:
            training_pairs(cfg.data, cfg.size, subset=cfg.subset, min_quality=cfg.min_quality)
        except (DataFolderError, ValueError) as e:
            print(f"python -m igr.train: error: --data: {e}", file=sys.stderr)
            return 2
    out = Path(args.out)
    checkpoint = out / CHECKPOINT
    if args.until is not None and args.until < 1:
        print("python -m igr.train: error: --until must be a positive step", file=sys.stderr)
        return 2
    if args.resume and args.resume_compact:
        print("python -m igr.train: error: --resume and --resume-compact exclude each other", file=sys.stderr)
        return 2
    if args.resume and not (checkpoint / "trainer.json").is_file():
        print(f"python -m igr.train: error: --resume, but {checkpoint} holds no checkpoint", file=sys.stderr)
        return 2
    if not args.resume and checkpoint.exists():
        print(f"python -m igr.train: error: {out} already has a checkpoint (pass --resume, or choose another --out)",
              file=sys.stderr)
        return 2
    if args.pretrained is not None and (args.init is not None or args.resume_compact is not None):
        print("python -m igr.train: error: --pretrained starts a run; --init and --resume-compact start from a "
              "trained IGR model instead", file=sys.stderr)
        return 2
    if args.pretrained is not None and args.stage not in ("coarse", "hqft"):
        print(f"python -m igr.train: error: --pretrained gives a pretrained VAE and image tower: start at the "
              f"coarse stage (not {args.stage})", file=sys.stderr)
        return 2
    if args.stage == "decoder" and args.init is None and args.preset != "tiny":
        print("python -m igr.train: error: the decoder stage fine-tunes a trained model's decoder: give --init",
              file=sys.stderr)
        return 2
    if args.stage != "vae" and args.init is None and args.pretrained is None and args.preset != "tiny":
        print(f"python -m igr.train: note: stage {args.stage} without --init starts from random weights, "
              "so the VAE (and encoder) it relies on are untrained", file=sys.stderr)
    if model_changes and args.stage in ("vae", "decoder", "encoder", "baseline"):
        print(f"python -m igr.train: error: --model-set applies to the diffusion stages, not {args.stage}",
              file=sys.stderr)
        return 2
    try:
        model = build_model(args.preset, args.init, cfg.seed, stage=args.stage, model_changes=model_changes,
                            pretrained=args.pretrained)
    except (ValueError, TypeError) as e:       # a --model-set value the config refuses (ConfigError is one)
        if args.pretrained is not None:        # a missing or mismatched part of the SD folder (PretrainedFolderError)
            print(f"python -m igr.train: error: --pretrained: {e}", file=sys.stderr)
            return 2
        if not model_changes:
            raise
        print(f"python -m igr.train: error: --model-set: {e}", file=sys.stderr)
        return 2
    if args.paths is not None:
        model.config = model.config.replace(use_low=args.paths != "high", use_high=args.paths != "low")
    try:
        trainer = Trainer(model, cfg, out)
    except ValueError as e:                     # what this stage cannot train (trainable_modules), e.g. a pretrained tower
        print(f"python -m igr.train: error: {e}", file=sys.stderr)
        return 2
    if args.compact_to:
        trainer.compact_to = (Path(args.compact_to), Path(args.init) if args.init else None)
    if args.resume:
        trainer.load_checkpoint(checkpoint)
    elif args.resume_compact:
        try:
            trainer.load_compact(args.resume_compact)
        except (OSError, ValueError) as e:
            print(f"python -m igr.train: error: --resume-compact: {e}", file=sys.stderr)
            return 2
    if trainer.acc.is_main_process:            # rank 0 alone writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        (out / "stage.json").write_text(json.dumps(
            {"stage": dataclasses.asdict(cfg), "init": args.init, "preset": args.preset,
             "model_changes": model_changes, "pretrained": args.pretrained,
             "processes": trainer.acc.num_processes}, indent=1))
    result = trainer.run(until=args.until)
    if trainer.acc.is_main_process:
        print(f"{args.stage}: step {result.step}, last loss {result.last_loss:.4f}; final weights: {result.final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
