"""`igr-edge`: the runtime's command line (one subcommand, one small function; heavy imports inside it).

    igr-edge restore photos/ -o garments/      restore files, folders or globs into a folder
    igr-edge batch INPUT OUTPUT                a whole catalog (folder, glob, list, Parquet; local or URI), resumable
    igr-edge doctor                            Python, ONNX Runtime, each backend and why it is (not) usable,
                                               the Core ML compute units and where they came from
    igr-edge info [BUNDLE]                     a bundle's manifest, variants, quality and hash check
    igr-edge bench [--bundle B] [--out F]      quick latency on this device, in the benchmarks' JSON schema
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from . import __version__

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def parse_size(text: str) -> int | tuple[int, int]:
    """`--size 512` (height; width by the model's aspect) or `--size 384x512` (width x height)."""
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x")
            return int(w), int(h)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from None


def expand_inputs(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Files named, image files directly inside named folders, glob matches; and what matched nothing."""
    files: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        elif glob.has_magic(pattern):
            matched = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            files += matched
            if not matched:
                missing.append(pattern)
        else:
            missing.append(pattern)
    return list(dict.fromkeys(files)), missing


def output_paths(files: list[Path], out: Path) -> dict[Path, Path]:
    """OUT/<stem>.png per input; inputs whose stems collide get their parent folder's name prefixed."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    taken: set[Path] = set()
    result = {}
    for f in files:
        name = f.stem if stems[f.stem] == 1 else f"{f.parent.name}-{f.stem}"
        target, n = out / f"{name}.png", 1
        while target in taken:
            n += 1
            target = out / f"{name}-{n}.png"
        taken.add(target)
        result[f] = target
    return result


def cmd_restore(args: argparse.Namespace) -> int:
    """`igr-edge restore IN... -o OUT`: one PNG per input; a failed file is one line, the rest go on."""
    from .errors import IgrEdgeError
    from .files import atomic_write_image
    from .images import output_size
    from .noise import check_seed
    from .progress import Progress
    from .restorer import Restorer, check_samples

    files, missing = expand_inputs(args.inputs)
    for pattern in missing:
        print(f"igr-edge: {pattern}: no such file, folder or match", file=sys.stderr)
    if not files:
        print("igr-edge: nothing to restore", file=sys.stderr)
        return 1
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"igr-edge: cannot use {out} as the output folder: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        restorer = Restorer(args.bundle, backend=args.backend, threads=args.threads, variant=args.variant,
                            max_pixels=args.max_pixels, compute_units=args.compute_units,
                            low_memory=args.low_memory)
        restorer._steps(args.steps)                      # arguments checked once, not once per file
        check_seed(args.seed)
        check_samples(args.samples)
        output_size(args.size, *restorer.bundle.size)
    except IgrEdgeError as e:
        print(f"igr-edge: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    failed = len(missing)
    targets = output_paths(files, out)
    with restorer, Progress(len(files), desc=f"restore ({restorer.bundle.name}, {restorer.backend})",
                            enabled=not args.quiet) as bar:
        for src, dst in targets.items():
            try:
                if dst.resolve() == src.resolve():
                    raise FileExistsError(f"{dst} is the input itself (choose another output folder)")
                if dst.exists() and not args.overwrite:
                    raise FileExistsError(f"{dst} exists (pass --overwrite to replace it)")
                garment = restorer.restore(src, args.seed, steps=args.steps, size=args.size, samples=args.samples)
                atomic_write_image(garment, dst, overwrite=args.overwrite)
            except (IgrEdgeError, OSError) as e:
                failed += 1
                bar.write(f"igr-edge: {src}: {type(e).__name__}: {e}")
            except Exception as e:                      # noqa: BLE001 - a bug of ours: report it, go on
                failed += 1
                bar.write(f"igr-edge: {src}: internal error {type(e).__name__}: {str(e)[:200]} (please report it)")
            bar.update(1)
    done = len(files) - (failed - len(missing))
    if not args.quiet:
        print(f"restored {done} of {len(files)} file(s) into {out}" + (f"; {failed} failed" if failed else ""),
              file=sys.stderr)
    return 1 if failed else 0


def cmd_batch(args: argparse.Namespace) -> int:
    """`igr-edge batch INPUT OUTPUT`: a catalog, resumable; a failed input is a manifest row, the rest go on."""
    from .batch import restore_catalog
    from .errors import IgrEdgeError

    try:
        summary = restore_catalog(args.input, args.output, bundle=args.bundle, backend=args.backend,
                                  variant=args.variant, compute_units=args.compute_units,
                                  low_memory=args.low_memory, seed=args.seed,
                                  steps=args.steps, size=args.size,
                                  format=args.format, manifest=args.manifest, engine=args.engine, address=args.address,
                                  workers=args.workers, threads=args.threads, batch_size=args.batch_size,
                                  column=args.column, key_column=args.key_column, retry_failed=args.retry_failed,
                                  max_pixels=args.max_pixels, progress=not args.quiet)
    except IgrEdgeError as e:
        print(f"igr-edge: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"igr-edge: {summary.line()}; manifest: {', '.join(summary.manifests)}", file=sys.stderr)
    return 1 if summary.failed or summary.failed_before else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """`igr-edge doctor`: Python, ONNX Runtime's build and providers, each backend and why, the Core ML compute
    units and where they came from, and the memory mode IGR_EDGE_LOW_MEMORY sets."""
    import os
    import platform
    import warnings

    import numpy
    import PIL

    from .backends import (COMPUTE_UNITS_ENV, LOW_MEMORY_ENV, MixedBuildsWarning, available_backends, compute_units,
                           installed_builds, low_memory, mixed_builds_reason)
    from .errors import IgrEdgeError

    print(f"igr-edge     {__version__}")
    print(f"python       {platform.python_version()} ({platform.system()} {platform.machine()})")
    print(f"numpy        {numpy.__version__}")
    print(f"pillow       {PIL.__version__}")
    builds = installed_builds()
    mixed = mixed_builds_reason(builds)
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnxruntime  not importable ({e}); " + (mixed or "install it with: pip install onnxruntime"))
        return 1
    print(f"onnxruntime  {ort.__version__} (installed: {', '.join(f'{d} {v}' for d, v in builds.items()) or 'unknown'})")
    print(f"providers    {', '.join(ort.get_available_providers())}")
    print("             (listed by the build; a backend counts only once a real session gets its provider)")
    if mixed:
        print(f"warning      {mixed}")
    with warnings.catch_warnings():                    # said once above, not again as a Python warning
        warnings.simplefilter("ignore", MixedBuildsWarning)
        statuses = available_backends()
    for b in statuses:
        print(f"backend      {b.name:<7} {'available' if b.available else 'unavailable: ' + str(b.reason)}")
    try:
        units, source = compute_units(args.compute_units)
    except IgrEdgeError as e:
        print(f"compute      {e}")
        return 1
    where = {"compute_units": "from --compute-units", "default": f"the default: {COMPUTE_UNITS_ENV} is unset"}
    print(f"compute      Core ML compute units {units} ({where.get(source, f'from {source}')}; "
          "the coreml backend's, the others ignore them)")
    try:
        low = low_memory()
    except IgrEdgeError as e:
        print(f"memory       {e}")
        return 1
    print(f"memory       low_memory {'on' if low else 'off'} ("
          + (f"from {LOW_MEMORY_ENV}" if os.environ.get(LOW_MEMORY_ENV, "").strip() else
             f"the default: {LOW_MEMORY_ENV} is unset") + "; on: int8 weights expanded on every call, far less memory)")
    return 1 if mixed else 0


def cmd_info(args: argparse.Namespace) -> int:
    """`igr-edge info [BUNDLE]`: what the bundle holds and whether its files pass their SHA-256 check."""
    import json

    from .bundle import Bundle
    from .errors import BundleError
    from .manifest import variant_bytes

    try:
        bundle = Bundle.load(args.bundle, verify=False)
    except BundleError as e:
        print(f"igr-edge: BundleError: {e}", file=sys.stderr)
        return 2
    m = bundle.manifest
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
    else:
        w, h = bundle.size
        print(f"bundle       {bundle.name} {m['version']} (schema {m['schema']}) at {bundle.folder}")
        print(f"kind         {bundle.kind}, {bundle.steps} step(s), {w}×{h} RGB, latent {'×'.join(map(str, bundle.latent_shape))}")
        g = m["guidance"]
        print(f"guidance     {g['scale']:g} ({'baked in' if g.get('baked_in') else 'applied by the SDK'}); "
              f"sampler {m['scheduler']['name']}, timesteps {m['scheduler']['timesteps'][:8]}"
              f"{' …' if len(m['scheduler']['timesteps']) > 8 else ''}")
        print(f"noise        {bundle.noise_generator}")
        for name, spec in bundle.variants().items():
            size = variant_bytes(m, name)
            parity = m["variants"][name].get("parity") or {}
            psnr = parity.get("psnr_vs_fp32_db")
            figure = (f"PSNR {float(psnr):.1f} dB vs fp32" if psnr is not None
                      else "fp32 source" if "vs_torch" in parity else "spec-checked")
            default = " (default)" if name == m.get("default_variant") else ""
            print(f"variant      {name:<12}{default} {size / 1e6:7.2f} MB  {', '.join(spec[1]):<12} {figure}; "
                  f"{m['variants'][name]['precision']}")
        q = m.get("quality")
        if isinstance(q, dict) and q:
            figures = ", ".join(f"{label} {q[key]:.4g}" for key, label in (("ssim", "SSIM"), ("fd", "FD"),
                                ("psnr", "PSNR")) if isinstance(q.get(key), (int, float)))
            where = " ".join(str(q[k]) for k in ("n", "split") if k in q)
            print(f"quality      {figures or '(no figures)'}" + (f" on {where} images" if where else "")
                  + (f" ({q['source']})" if "source" in q else ""))
        for r in m.get("rejected", []):
            print(f"rejected     {r['variant']}: {r['reason']}")
        print(f"provenance   commit {m['provenance'].get('commit')}, model {m['provenance'].get('model')}")
    try:
        Bundle.load(args.bundle, verify=True)
    except BundleError as e:
        print(f"hash check   FAILED: {e}", file=sys.stderr if args.json else sys.stdout)
        return 1
    if not args.json:
        print(f"hash check   ok ({len(m['files'])} file(s), SHA-256 and size)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`igr-edge bench`: latency of one bundle on this device, one row of the benchmarks' JSON schema."""
    from .bench import run_bench
    from .errors import IgrEdgeError

    try:
        report = run_bench(bundle=args.bundle, backend=args.backend, variant=args.variant, runs=args.runs,
                           warmup=args.warmup, batch=args.batch, threads=args.threads, out=args.out,
                           compute_units=args.compute_units, low_memory=args.low_memory)
    except IgrEdgeError as e:
        print(f"igr-edge: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"igr-edge: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    for row in report["rows"]:
        lat = row["latency_ms"]
        print(f"{row['bundle']} {row['variant']} on {row['backend']}, batch {row['batch']}: p50 {lat['p50']:.1f} ms, "
              f"p90 {lat['p90']:.1f} ms, min {lat['min']:.1f} ms over {row['runs']} runs after {row['warmup']} "
              f"warm-ups; cold start {row['cold_start_ms']:.0f} ms; peak RSS {row['peak_rss_mb']:.0f} MB")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .backends import COMPUTE_UNITS               # names only: backends imports no runtime

    def compute_units_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--compute-units", default=None, choices=COMPUTE_UNITS,
                       help="the processors Core ML may use on the coreml backend (default: IGR_EDGE_COMPUTE_UNITS, "
                            "then all)")

    def low_memory_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--low-memory", action=argparse.BooleanOptionalAction, default=None,
                       help="keep int8 weights int8 in memory, expanded on every call: far less memory, slower "
                            "(default: IGR_EDGE_LOW_MEMORY, then off)")

    parser = argparse.ArgumentParser(prog="igr-edge", description="Garment restoration on devices.")
    parser.add_argument("--version", action="version", version=f"igr-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("restore", help="restore the garment in each person photo (files, folders or globs)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders of images, or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="folder for the restored PNGs")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (components bundles; default the bundle's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same garment on every platform)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="average K restores per photo (seeds SEED..SEED+K-1): K times the time, nearer the truth")
    p.add_argument("--backend", default=None, help="cpu, cuda or coreml (default: IGR_EDGE_BACKEND, then the best here)")
    p.add_argument("--bundle", default=None, help="bundle folder (default: the one shipped in the package)")
    p.add_argument("--variant", default=None, help="run this bundle variant (default: the best for the backend)")
    compute_units_flag(p)
    low_memory_flag(p)
    p.add_argument("--size", type=parse_size, default=None, help="output size: N (height) or WxH (default the model's)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (default 40 MP)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("batch", help="restore a catalog into OUTPUT/garments with a manifest; resumable, on Ray or here")
    p.add_argument("input", metavar="INPUT", help="a folder, glob, text file of paths, Parquet table of paths or image "
                   "bytes, or an image; a local path or a URI (s3://, gs://, hdfs://, ...)")
    p.add_argument("output", metavar="OUTPUT", help="folder (path or URI) for garments/, manifest.jsonl/.parquet, job.json")
    p.add_argument("--engine", choices=("auto", "threads", "ray"), default="auto",
                   help="ray (a Ray Data pipeline), threads (in this process); auto: ray when installed")
    p.add_argument("--address", default=None, help="join this Ray cluster (default: start Ray here)")
    p.add_argument("--workers", type=int, default=None,
                   help="Restorer actors (ray; default one per GPU, else CPUs / --threads) or threads (default: cores)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads per worker")
    p.add_argument("--batch-size", type=int, default=8, help="images per graph call (default 8)")
    p.add_argument("--format", choices=("png", "webp"), default="png", help="garment files (webp: lossless)")
    p.add_argument("--manifest", default="auto", help="jsonl, parquet or jsonl,parquet (auto: both when pyarrow is "
                   "installed)")
    p.add_argument("--seed", type=int, default=0, help="base seed; each input's is derived from it and its name")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (components bundles; default the bundle's)")
    p.add_argument("--size", type=parse_size, default=None, help="output size: N (height) or WxH (default the model's)")
    p.add_argument("--backend", default=None, help="cpu, cuda or coreml (default: IGR_EDGE_BACKEND, then the best)")
    p.add_argument("--bundle", default=None, help="bundle folder, readable by every worker (default: the shipped one)")
    p.add_argument("--variant", default=None, help="run this bundle variant (default: the best for the backend)")
    compute_units_flag(p)
    low_memory_flag(p)
    p.add_argument("--column", default=None, help="a Parquet INPUT's image column (default: image, bytes, path, ...)")
    p.add_argument("--key-column", default=None, help="a Parquet INPUT's identity column (default: id or key, else the "
                   "path or the row number)")
    p.add_argument("--retry-failed", action="store_true", help="retry inputs an earlier run found unreadable")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (default 40 MP)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, error lines or summary")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("doctor", help="show Python, ONNX Runtime, each backend with why it is (not) usable, and the "
                       "Core ML compute units")
    compute_units_flag(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("info", help="show a bundle's manifest, variants, quality and hash check")
    p.add_argument("bundle", nargs="?", default=None, help="bundle folder (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="quick latency of a bundle on this device (benchmarks' JSON schema)")
    p.add_argument("--bundle", default=None, help="bundle folder (default: the shipped one)")
    p.add_argument("--backend", default=None, help="cpu, cuda or coreml (default: the best here)")
    p.add_argument("--variant", default=None, help="bundle variant (default: the best for the backend)")
    compute_units_flag(p)
    low_memory_flag(p)
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("igr-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
