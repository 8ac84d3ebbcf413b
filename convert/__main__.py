"""`python -m convert bundle|default|report`: export, gate and package models for devices.

  python -m convert bundle --model models/student-4-small --out bundles/student-4 \\
      --variants onnx-fp32,onnx-int8,onnx-qdq,onnx-w8,onnx-fp16,ort,coreml-fp16,coreml-8bit,coreml-6bit
  python -m convert default --bundle bundles/student-4        # the best CPU variant -> igr_edge's default
  python -m convert report bundles/student-4 ... --out reports/convert
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "igr_edge" / "bundles" / "default"
DEFAULT_MAX_BYTES = 40 * 10**6      # the shipped default: onnx-w8 + onnx-mobile-w8 of the jump-3 model, 38.9 MB


def cmd_bundle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .bundle import write_bundle
    from .gates import GateError

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists (pass --overwrite to replace it)")
    quality = None
    if args.quality:
        rep = json.loads(Path(args.quality).read_text())
        m = rep["metrics"]
        quality = {"split": rep["split"], "n": rep["n"], "sampling": rep["sampling"], "source": args.quality,
                   **{k: m[k]["mean"] for k in ("ssim", "psnr", "ssim_mask", "fd", "kid") if k in m}}
    try:
        write_bundle(args.model, out, variants=args.variants, name=args.name, gate_n=args.gate_n,
                     calibration_n=args.calibration_n, quality=quality, skip_failing=args.skip_failing)
    except GateError as e:
        print(f"python -m convert bundle: parity gate failed: {e}", file=sys.stderr)
        return 3
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    from igr_edge.manifest import read_manifest

    from .bundle import variant_sizes

    manifest = read_manifest(out)
    for variant, size in variant_sizes(out, manifest).items():
        print(f"  {variant:<12} {size / 1e6:7.2f} MB")
    for r in manifest.get("rejected", []):
        print(f"  rejected {r['reason']}")
    print(f"wrote {out}")
    return 0


def cmd_default(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .default import install_default

    try:
        variant, size = install_default(Path(args.bundle), Path(args.dest), max_bytes=args.max_bytes,
                                        variant=args.variant, also=tuple(args.also))
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    carried = "".join(f" + {v}" for v in dict.fromkeys(args.also) if v != variant)
    print(f"default bundle: {args.bundle} variant {variant}{carried} ({size / 1e6:.2f} MB) -> {args.dest}")
    return 0


def cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .report import build, write

    try:
        rep = build([Path(b) for b in args.bundles], runs=args.runs, threads=args.threads)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    rep["command"] = "python -m convert " + " ".join(args.argv)
    for path in write(rep, Path(args.out)):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .bundle import VARIANTS

    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def variants(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown} (choose from {', '.join(VARIANTS)})")
        return names

    p = sub.add_parser("bundle", help="export a model's variants, gate each, write one bundle folder")
    p.add_argument("--model", required=True, help="model folder (a few-step student, or a teacher for components)")
    p.add_argument("--out", required=True)
    p.add_argument("--variants", type=variants, default=["onnx-fp32", "onnx-int8"])
    p.add_argument("--name", help="bundle name (default: the model folder's name)")
    p.add_argument("--gate-n", type=int, default=32, help="test images for the reduced-precision gates (32 by default; fewer only for tests)")
    p.add_argument("--calibration-n", type=int, default=32, help="val images for static int8 calibration")
    p.add_argument("--quality", help="the model's igr.eval JSON: its quality row goes into the manifest")
    p.add_argument("--skip-failing", action="store_true",
                   help="leave out a variant that fails its gate (listed under 'rejected') instead of failing")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("default", help="copy a bundle's best CPU variant into igr_edge's package data")
    p.add_argument("--bundle", required=True)
    p.add_argument("--variant", help="this variant instead of the fastest CPU variant within the size limit")
    p.add_argument("--dest", default=str(DEFAULT_DIR))
    p.add_argument("--with", dest="also", action="append", default=[], metavar="VARIANT",
                   help="also carry this variant (repeatable), e.g. onnx-mobile-w8 for NNAPI and the Core ML EP; "
                        "the CPU variant stays the default_variant")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"bound on all the variants together (default {DEFAULT_MAX_BYTES})")
    p.set_defaults(func=cmd_default)

    p = sub.add_parser("report", help="per variant: size, parity figures, ORT CPU latency as a ratio to fp32")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="output path without suffix: OUT.md and OUT.json")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if getattr(args, "gate_n", 32) < 2:
        parser.error("--gate-n must be at least 2")
    return args.func(args, parser)


if __name__ == "__main__":
    sys.exit(main())
