"""`python -m distill guidance|steps|readout|calibrate|report|latents|light-vae|light-sweep|light-attach|light-prior`: from the teacher to few-step students.

  python -m distill guidance --teacher models/teacher-small --cache runs/cache --out runs/distill/guided [--guidance 1.5]
  python -m distill steps --from models/teacher-small --init runs/distill/guided/final --cache runs/cache \\
      --steps 4,2,1 --method progressive --out runs/distill
  python -m distill readout --model models/teacher-warp --light models/student-2-warp-light --out DIR [--jump 0.04]
  python -m distill calibrate --model models/student-4-small --out runs/calib/student-4.npz
  python -m distill report --teacher models/teacher-small --rows guided=models/guided-small,... --out reports/students
  python -m distill latents --model models/student-2-warp-light --out runs/latents/student-2.safetensors
  python -m distill light-vae --vae models/teacher-small --widths 8,16,32,64 --out runs/light-vae/w8-16-32-64
  python -m distill light-sweep --vae models/teacher-small --widths 4,8,16,32 8,16,32,64 12,24,48,64 \\
      --runs runs/light-vae --out reports/light-vae
  python -m distill light-attach --model models/student-2-zsnr --light runs/light-vae/w8-16-32-64/final --out DIR
  python -m distill light-prior --model models/student-2-zsnr-light --channels 32,64,96 --cache runs/cache-effnet --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _load(parser: argparse.ArgumentParser, folder: str):
    from igr.model import IGRModel

    try:
        model = IGRModel.from_pretrained(folder)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    return model


def _guidance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 1.0:
        raise argparse.ArgumentTypeError(f"a guidance scale is 1 (none) or more, got {text!r}")
    return value


def _at_guidance(model, scale: float | None):
    """`model` sampling at classifier-free guidance `scale` instead of its config's (None: as it is); the scale then
    goes wherever the config's would (the trajectories' meta and each student's distill.json, the baked scale)."""
    if scale is not None:
        model.config = model.config.replace(guidance_scale=scale)
    return model


def _save(model, args: argparse.Namespace, extra: dict[str, str], *, carry: tuple[str, ...] = ()) -> Path:
    """`model` saved to `args.out` at `args.dtype`, linking `args.share_with`, with the `extra` files and those of
    `carry` that `args.model` holds (how the student, its light parts or its prior were made travel with it)."""
    import torch

    for name in carry:
        if (Path(args.model) / name).is_file():
            extra.setdefault(name, (Path(args.model) / name).read_text())
    return model.save_pretrained(args.out, dtype={"fp16": torch.float16, "fp32": None}[args.dtype],
                                 share_with=args.share_with or None, extra=extra)


def _train_settings(p: argparse.ArgumentParser, steps: int, lr: float) -> None:
    p.add_argument("--train-steps", type=int, default=steps, help="optimizer steps (per student)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")


def cmd_guidance(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .core import DistillConfig, distill_guidance

    teacher = _at_guidance(_load(parser, args.teacher), args.guidance)
    cfg = DistillConfig(kind="guidance", steps=args.train_steps, batch=args.batch, lr=args.lr, seed=args.seed)
    try:
        summary = distill_guidance(teacher, args.cache, args.out, cfg)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    print(f"guidance-distilled student (scale {summary['guidance_baked']:g} baked in): loss "
          f"{summary['first_loss']:.4f} -> {summary['final_loss_mean50']:.4f} in {summary['hours']:.2f} h "
          f"-> {Path(args.out) / 'final'}")
    return 0


def cmd_steps(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from igr.model import IGRModel

    from .core import DistillConfig, distill_steps, load_or_record, student_plan, trajectory_meta

    source = _at_guidance(_load(parser, args.source), args.guidance)
    try:
        plans = {k: student_plan(source.config, k) for k in {*args.steps, *(args.record_steps or [])}}
    except ValueError as e:
        parser.error(str(e))
    recorded = sorted({t for plan in plans.values() for t in plan}, reverse=True)
    out = Path(args.out)
    traj_dir = Path(args.trajectories) if args.trajectories else out / "trajectories"
    try:
        traj = load_or_record(source, args.cache, traj_dir, n=args.n, timesteps=recorded, seed=args.seed,
                              batch=args.record_batch)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    meta = trajectory_meta(source, recorded, args.n, args.seed)
    if args.record_only:
        print(f"trajectories of {args.n} pairs at timesteps {recorded} -> {traj_dir}")
        return 0
    init = _load(parser, args.init) if args.init else source
    changes = {}
    if args.model_set:
        from igr.config import IGRConfig
        from igr.train.__main__ import _overrides

        try:
            changes = _overrides(args.model_set, IGRConfig, "--model-set")
        except ValueError as e:
            parser.error(str(e))
    for k in args.steps:
        cfg = DistillConfig(kind="steps", steps=args.train_steps, batch=args.batch, lr=args.lr, seed=args.seed,
                            student_steps=k, method=args.method, gt_weight=args.gt_weight if k == 1 else 0.0,
                            token_fit=args.token_fit)
        try:
            summary = distill_steps(init, traj, recorded, out / f"student-{k}", cfg, source_meta=meta,
                                    changes=changes, cache=args.cache, source=source)
        except ValueError as e:
            parser.error(str(e))
        made = Path(args.init or args.source) / "prior.json"        # how --init's light prior was made
        if summary.get("own_prior") and made.is_file():
            (out / f"student-{k}" / "final" / "prior.json").write_text(made.read_text())
        print(f"{k}-step student ({args.method}, timesteps {summary['timesteps']}): loss "
              f"{summary['first_loss']:.4f} -> {summary['final_loss_mean50']:.4f} in {summary['hours']:.2f} h "
              f"-> {out / f'student-{k}' / 'final'}")
        if args.chain:
            init = IGRModel.from_pretrained(out / f"student-{k}" / "final")
    return 0


def cmd_readout(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from igr.config import ConfigError
    from igr.model.light import LIGHT_META, attach_light

    from .core import META, readout_model

    teacher = _load(parser, args.model)
    try:
        model, meta = readout_model(teacher, jump=args.jump, guidance=args.guidance, guidance_below=args.guidance_below)
        if args.light:
            attach_light(model, args.light)
    except (FileNotFoundError, ConfigError) as e:
        parser.error(str(e))
    extra = {META: json.dumps(meta, indent=1) + "\n"}
    if args.light:
        extra[LIGHT_META] = (Path(args.light) / LIGHT_META).read_text()
    out = _save(model, args, extra)
    what = (f"a {meta['steps']}-step model (timesteps {meta['timesteps']}, guidance {meta['guidance']:g} at "
            f"{meta['guided_timesteps'] or 'none'})" if args.jump is not None else "a 1-step model")
    print(f"wrote {out}: {args.model}'s one-call estimate at t = {meta['timesteps'][0]} as {what}"
          + (f", with the light parts of {args.light}" if args.light else ""))
    return 0


def cmd_calibrate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .calibrate import calibration_set, save

    model = _load(parser, args.model)
    data = calibration_set(model, n=args.n, split=args.split, seed=args.seed, batch=args.batch)
    path = save(data, args.out)
    print(f"wrote {path}: {args.n} {args.split} inputs, denoiser inputs at timesteps "
          f"{sorted(set(data['denoiser.timestep'].tolist()), reverse=True)}")
    return 0


def cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .report import build, write

    rows = {}
    for spec in args.rows:
        name, sep, folder = spec.partition("=")
        if not sep:
            parser.error(f"--rows wants NAME=MODEL_DIR, got {spec!r}")
        rows[name] = folder
    try:
        rep = build(args.teacher, rows, evals=Path(args.evals), timing_images=args.timing_images,
                    timing_runs=args.timing_runs, grid_n=args.grid_n)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    for path in write(rep, Path(args.out), command="python -m distill " + " ".join(args.argv)):
        print(f"wrote {path}")
    return 0


def _widths(text: str) -> tuple[int, ...]:
    if text in ("none", ""):
        return ()
    return tuple(_ints(text))


def _blocks(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected counts of at least 0, got {text!r}")
    return values


def _light_setup(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The full VAE, the training settings and the pool, shared by light-vae and light-sweep."""
    from .light import FullVAE, LightTrainConfig, build_pool

    try:
        vae = FullVAE.from_folder(args.vae)
        cfg = LightTrainConfig(steps=args.train_steps, batch=args.batch, lr=args.lr, seed=args.seed,
                               edge_weight=args.edge_weight, perceptual_weight=args.perceptual_weight,
                               spectrum_weight=args.spectrum_weight,
                               checkpoint_every=args.checkpoint_every, ema=args.ema,
                               encoder_only=getattr(args, "encoder_only", False))
        pool_dir = Path(args.pool) if args.pool else Path(args.runs if hasattr(args, "runs") else args.out) / "pool"
        pool = build_pool(vae, pool_dir, n=args.pool_n, extra_latents=args.extra_latents, warp_from=args.warp_from)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    meta = json.loads((pool_dir / "meta.json").read_text())
    return vae, cfg, pool, meta


def _light_config(parser: argparse.ArgumentParser, widths, encoder_widths, blocks, rgb_skip=False):
    from igr.config import LightVAEConfig

    try:
        return LightVAEConfig(decoder=widths, encoder=widths if encoder_widths is None else encoder_widths,
                              blocks=blocks, rgb_skip=rgb_skip)
    except ValueError as e:
        parser.error(str(e))


def cmd_light_vae(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from igr.model.light import decoder_flops, encoder_flops

    from .light import distill_light

    light = _light_config(parser, args.widths, args.encoder_widths, args.blocks, args.rgb_skip)
    vae, cfg, pool, meta = _light_setup(args, parser)
    try:
        summary = distill_light(vae, light, pool, args.out, cfg, pool_meta=meta, source=args.vae, init=args.init,
                                keep_at=tuple(args.keep_at or ()))
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    h, w = vae.config.height, vae.config.width
    print(f"light VAE {list(light.decoder)} / {list(light.encoder) or 'full'}: decoder "
          f"{decoder_flops(light, h, w) / 1e9:.3f} GFLOP, encoder {encoder_flops(light, h, w) / 1e9:.3f} GFLOP at "
          f"{h}x{w}; loss {summary['first_loss']:.4f} -> {summary['final_loss_mean50']:.4f} in "
          f"{summary['hours']:.2f} h -> {Path(args.out) / 'final'}")
    return 0


def cmd_latents(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .light import sample_latents

    model = _load(parser, args.model)
    out = sample_latents(model, args.out, n=args.n, batch=args.batch, seed=args.seed)
    print(f"{args.n} latents {args.model} decodes -> {out} (for light-vae --extra-latents)")
    return 0


def cmd_light_sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .light import sweep, write_report

    lights = [_light_config(parser, w, args.encoder_widths, args.blocks, args.rgb_skip) for w in args.widths]
    vae, cfg, pool, meta = _light_setup(args, parser)
    try:
        rep, images = sweep(vae, lights, pool, args.runs, cfg, pool_meta=meta, eval_n=args.eval_n, source=args.vae,
                            student_gflop=args.student_gflop)
    except ValueError as e:
        parser.error(str(e))
    for path in write_report(rep, images, args.out, command="python -m distill " + " ".join(args.argv)):
        print(f"wrote {path}")
    return 0


def cmd_light_attach(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from igr.config import ConfigError
    from igr.model.light import LIGHT_META, attach_light

    model = _load(parser, args.model)
    try:
        attach_light(model, args.light)
    except (FileNotFoundError, ConfigError) as e:
        parser.error(str(e))
    out = _save(model, args, {LIGHT_META: (Path(args.light) / LIGHT_META).read_text()},
                carry=("distill.json", "prior.json"))
    print(f"wrote {out}: {args.model} with the light parts of {args.light} (config light: true)")
    return 0


def cmd_light_prior(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from .prior import PRIOR_META, distill_prior, person_latents, write_meta

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(parser, args.model)
    try:
        latents = person_latents(args.cache)
        new, record = distill_prior(model, tuple(args.channels), latents, steps=args.train_steps, batch=args.batch,
                                    lr=args.lr, holdout=args.holdout, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    out = _save(new, args, {PRIOR_META: write_meta(record, args.model, args.cache)},
                carry=("distill.json", "light.json"))
    print(f"wrote {out}: {args.model} with a {args.channels} prior ({record['gflop']['light']} GFLOP against "
          f"{record['gflop']['full']}), relative L1 to the full prior on {args.holdout} held-out latents "
          f"{record['relative_l1_holdout']}")
    return 0


def _light_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vae", required=True, help="model folder whose full VAE is distilled (e.g. the teacher)")
    p.add_argument("--encoder-widths", type=_widths,
                   help="light encoder widths (default: the decoder's; 'none': no light encoder)")
    p.add_argument("--blocks", type=_blocks, default=(0, 0, 1, 2), help="residual blocks per level, full size first")
    p.add_argument("--rgb-skip", action="store_true", help="decoder: a 1x1 colour path from the latent to the output")
    p.add_argument("--pool", help="folder of the training pool (default OUT/pool, or RUNS/pool for a sweep)")
    p.add_argument("--pool-n", type=int, default=512, help="train pairs in the pool (full VAE run once on each)")
    p.add_argument("--extra-latents", help="more latents for the decoder: a safetensors file with `latent`, or "
                   "a distillation trajectories file (its final latents)")
    p.add_argument("--warp-from", metavar="MODEL", help="a model folder with a warp prior: its WarpNet's warped "
                   "persons join the encoder's training images (the light encoder encodes them too)")
    p.add_argument("--edge-weight", type=float, default=0.5)
    p.add_argument("--perceptual-weight", type=float, default=0.0, help="EffNet-Lite0 distance weight (slow)")
    p.add_argument("--spectrum-weight", type=float, default=0.0,
                   help="weight of an L1 on the images' Fourier amplitudes (energy per frequency: charges a blur)")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="write an exponential moving average of the weights (e.g. 0.999) instead of the last ones")
    _train_settings(p, 600, 1e-3)
    p.set_defaults(batch=8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("guidance", help="bake classifier-free guidance into one denoiser call per step")
    p.add_argument("--teacher", required=True, help="teacher model folder (its config's guidance scale is baked in)")
    p.add_argument("--guidance", type=_guidance, help="bake in this scale instead of the teacher config's")
    p.add_argument("--cache", required=True, help="latent cache of training pairs (python -m igr.train.cache)")
    p.add_argument("--out", required=True, help="run folder: writes OUT/final, OUT/log.jsonl, OUT/loss.png")
    _train_settings(p, 800, 5e-5)
    p.set_defaults(func=cmd_guidance)

    p = sub.add_parser("steps", help="few-step students (DDIM, trailing timesteps) on the source's trajectories")
    p.add_argument("--from", dest="source", required=True,
                   help="model whose sampler (with its guidance) makes the trajectories, e.g. the teacher")
    p.add_argument("--guidance", type=_guidance,
                   help="the trajectories' guidance scale instead of --from's config's (recorded in their meta)")
    p.add_argument("--init", help="weights the first student starts from (default: --from), e.g. the guided model")
    p.add_argument("--cache", required=True, help="latent cache of training pairs")
    p.add_argument("--steps", type=_ints, default=[4, 2, 1], help="student step counts, in training order")
    p.add_argument("--method", choices=("progressive", "consistency"), default="progressive")
    p.add_argument("--gt-weight", type=float, default=0.0, help="ground-truth term weight for the 1-step student")
    p.add_argument("--token-fit", type=int, default=0,
                   help="with --model-set encoder.input_size: fit the token projection to the source's tokens on this "
                        "many cache persons first, then keep it frozen (default 0: it trains with the denoiser)")
    p.add_argument("--chain", action=argparse.BooleanOptionalAction, default=True,
                   help="start each student from the previous one (as progressive distillation does)")
    p.add_argument("--n", type=int, default=1536, help="training pairs (trajectories recorded once, reused)")
    p.add_argument("--model-set", nargs="+", default=[], metavar="FIELD=VALUE", dest="model_set",
                   help="a leaner student than --init: aligned_prior=false (the denoiser learns to do without the "
                        "prior) and/or encoder.input_size=[128,96] (the image tower at a smaller input; its token "
                        "projection trains too, or is fitted first with --token-fit)")
    p.add_argument("--record-batch", type=int, default=32)
    p.add_argument("--trajectories", help="trajectory folder (default OUT/trajectories)")
    p.add_argument("--record-only", action="store_true", help="record the trajectories, train nothing")
    p.add_argument("--record-steps", type=_ints,
                   help="also hold these students' timesteps in the trajectories (to share one recording between runs)")
    p.add_argument("--out", required=True, help="writes OUT/trajectories and OUT/student-K per student")
    _train_settings(p, 1200, 5e-5)
    p.set_defaults(func=cmd_steps)

    p = sub.add_parser("readout", help="a teacher's one-call estimate at t = T (its posterior mean) as a 1-step "
                       "model, nothing trained")
    p.add_argument("--model", required=True, help="a zero terminal SNR teacher")
    p.add_argument("--light", help="light parts to attach: a light-vae run's final folder or a light model folder")
    p.add_argument("--jump", type=float, metavar="J",
                   help="carry the readout on with the teacher's DDIM steps at and below J·T of its sample_steps plan "
                        "(igr.pipeline.jump_plan): a few-step model of the teacher's weights, nothing trained")
    p.add_argument("--guidance", type=float, help="with --jump: the guidance of those steps (default the teacher's)")
    p.add_argument("--guidance-below", type=int, metavar="T",
                   help="with --jump: guide the steps at timesteps <= T (default every step after the one at T)")
    p.add_argument("--out", required=True)
    p.add_argument("--share-with", nargs="*", help="folders whose identical files are linked, not copied")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp16", help="weights as saved")
    p.set_defaults(func=cmd_readout)

    p = sub.add_parser("calibrate", help="representative inputs at a student's own timesteps (static int8)")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help=".npz file")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--split", choices=("train", "val"), default="val", help="never the test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("report", help="the students' quality table, timing ratios and sample grid")
    p.add_argument("--teacher", required=True, help="teacher model folder")
    p.add_argument("--rows", nargs="+", required=True, metavar="NAME=MODEL_DIR",
                   help="each student; its evaluation is EVALS/NAME.json (python -m igr.eval)")
    p.add_argument("--evals", default="reports/eval", help="folder of evaluations; the teacher's is teacher.json")
    p.add_argument("--timing-images", type=int, default=8)
    p.add_argument("--timing-runs", type=int, default=3)
    p.add_argument("--grid-n", type=int, default=6)
    p.add_argument("--out", required=True, help="output path without suffix: OUT.md, OUT.json, OUT-grid.png")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("light-vae", help="distill a light decoder and encoder from a model's full VAE")
    p.add_argument("--widths", type=_widths, default=(8, 16, 32, 64),
                   help="decoder channels per level, full resolution first")
    p.add_argument("--out", required=True, help="run folder: OUT/final (light.json + safetensors), OUT/log.jsonl")
    p.add_argument("--init", help="start from the light parts in this folder (a run's OUT/final or a light model "
                   "folder; same levels and colour path; narrower parts or fewer blocks are grown into these, with "
                   "the same outputs at step 0), e.g. after the full VAE's decoder was fine-tuned")
    p.add_argument("--encoder-only", action="store_true",
                   help="train the light encoder alone; the decoder stays as --init has it")
    p.add_argument("--keep-at", type=int, action="append", metavar="STEP",
                   help="also write the parts after this step as OUT/step-STEP (repeatable; not a training setting)")
    _light_settings(p)
    p.set_defaults(func=cmd_light_vae)

    p = sub.add_parser("latents", help="the latents a model hands its decoder on train persons (light-vae "
                       "--extra-latents)")
    p.add_argument("--model", required=True, help="e.g. the student whose light decoder is distilled")
    p.add_argument("--n", type=int, default=1536, help="the first N SynthGarment train persons")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--out", required=True, help="a .safetensors file with `latent`")
    p.set_defaults(func=cmd_latents)

    p = sub.add_parser("light-sweep", help="light VAEs of several widths, evaluated on the test split, one report")
    p.add_argument("--widths", type=_widths, nargs="+", required=True, help="one decoder width list per run")
    p.add_argument("--runs", required=True, help="one run folder per width under it (taken up again when re-run)")
    p.add_argument("--eval-n", type=int, default=64, help="test-split pairs scored")
    p.add_argument("--student-gflop", type=float,
                   help="a student's GFLOP per restore with the full VAE (python -m benchmarks), to say what it becomes")
    p.add_argument("--out", required=True, help="report path without suffix: OUT.json, OUT.md, OUT.png, OUT-grid.png")
    _light_settings(p)
    p.set_defaults(func=cmd_light_sweep)

    p = sub.add_parser("light-attach", help="a model folder with light parts (config light: true)")
    p.add_argument("--model", required=True, help="the student (or any model with the same VAE)")
    p.add_argument("--light", required=True, help="a light-vae run's final folder")
    p.add_argument("--out", required=True)
    p.add_argument("--share-with", nargs="*", help="folders whose identical files are linked, not copied")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                   help="weights as saved (fp16 links a packed student's and teacher's fp16 files)")
    p.set_defaults(func=cmd_light_attach)

    p = sub.add_parser("light-prior", help="a model folder whose aligned prior is distilled into a narrower UNet")
    p.add_argument("--model", required=True, help="a student (or teacher) with an aligned prior")
    p.add_argument("--channels", type=_ints, required=True, help="the narrow prior's widths per level, e.g. 32,64,96")
    p.add_argument("--cache", required=True, help="a latent cache (python -m igr.train.cache): its person latents")
    p.add_argument("--holdout", type=int, default=512, help="the cache's last latents, never trained on, measured on")
    p.add_argument("--out", required=True)
    p.add_argument("--share-with", nargs="*", help="folders whose identical files are linked, not copied")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp16", help="weights as saved")
    _train_settings(p, 2000, 1e-3)
    p.set_defaults(func=cmd_light_prior)

    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be at least 1")
    return args.func(args, parser)


if __name__ == "__main__":
    sys.exit(main())
