"""`python -m benchmarks run [--quick] [--bundles ...] [--backends ...] [--out reports/bench]` and
`python -m benchmarks merge reports/bench/*.json [--out reports/bench]`,
`python -m benchmarks summary reports/bench/DEVICE.json` (the batch-1 rows, as in the README),
`python -m benchmarks batch [--n 192]` (catalog images/s, in-process vs a local Ray: reports/bench/batch-DEVICE.*)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

QUICK = dict(batches=(1, 2), runs=5, warmup=1, quality_n=4, peak_n=512, teacher_steps=(2,))


def cmd_run(args: argparse.Namespace) -> int:
    from igr_edge.bundle import Bundle
    from igr_edge.files import atomic_write_bytes

    from . import report as rep_mod
    from .run import Plan, default_bundles, run

    bundles = [Path(b) for b in args.bundles] if args.bundles else default_bundles()
    teacher = None if args.no_teacher else Path(args.teacher)
    if teacher is not None and not (teacher / "config.json").is_file():
        print(f"benchmarks: {teacher} is not a model folder (pass --teacher DIR or --no-teacher)", file=sys.stderr)
        return 2
    plan = Plan(bundles=bundles, teacher=teacher, backends=args.backends.split(",") if args.backends else None,
                threads=args.threads, models=Path(args.models),
                features=Path(args.features) if args.features else None, low_memory=args.low_memory)
    if args.quick:
        for k, v in QUICK.items():
            setattr(plan, k, v)
    for k in ("runs", "warmup", "quality_n"):
        if getattr(args, k) is not None:
            setattr(plan, k, getattr(args, k))
    if args.batches:
        plan.batches = tuple(int(b) for b in args.batches.split(","))
    result = run(plan, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or result["device"]["name"]
    json_path = atomic_write_bytes((json.dumps(result, indent=1) + "\n").encode(), out / f"{stem}.json")
    pngs = rep_mod.plots(result, out, stem)
    default = _default_variant(bundles, Bundle)
    command = "python -m benchmarks run " + " ".join(sys.argv[2:] if args.command_line is None else args.command_line)
    md = out / f"{stem}.md"
    md.write_text(rep_mod.markdown(result, command=command.strip(), plots=[p.name for p in pngs],
                                   default_variant=default))
    for p in (json_path, md, *pngs):
        print(f"wrote {p}")
    return 0


def _default_variant(bundles: list[Path], Bundle, default: Path | None = None) -> tuple[str, str] | None:
    """(bundle name, variant) of the row that is the SDK's default: the variant whose graph files (SHA-256) are those
    of the default bundle's `default_variant` (`default`: that bundle's folder; None: the SDK's). Not any variant the
    default bundle carries: it also carries a mobile one beside it."""
    from igr_edge.bundle import DEFAULT_BUNDLE

    try:
        manifest = Bundle.load(DEFAULT_BUNDLE if default is None else default, verify=False).manifest
    except Exception:                                   # noqa: BLE001 - no default bundle: no such target row
        return None
    chosen = set(manifest["variants"][manifest["default_variant"]]["files"].values())
    digests = {f["sha256"] for f in manifest["files"] if f["path"] in chosen}
    for path in bundles:
        m = Bundle.load(path, verify=False).manifest
        for variant, spec in m["variants"].items():
            files = {f["sha256"] for f in m["files"] if f["path"] in spec["files"].values()}
            if files and files == digests:
                return m["name"], variant
    return None


def cmd_merge(args: argparse.Namespace) -> int:
    from . import report as rep_mod

    reports = []
    for path in args.reports:
        try:
            reports.append(rep_mod.read(path))
        except (OSError, ValueError) as e:
            print(f"benchmarks: {path}: {e}", file=sys.stderr)
            return 2
    for p in rep_mod.merge(reports, Path(args.out)):
        print(f"wrote {p}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from . import report as rep_mod

    print(rep_mod.summary(rep_mod.read(args.report)), end="")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from igr_edge.errors import IgrEdgeError
    from igr_edge.files import atomic_write_bytes

    from .batch import markdown, run_batch

    try:
        result = run_batch(n=args.n, bundle=args.bundle, workers=args.workers, threads=args.threads,
                           batch_size=args.batch_size, progress=not args.quiet)
    except (IgrEdgeError, RuntimeError, ImportError) as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    stem = f"batch-{args.name or result['device']['name']}"
    command = "python -m benchmarks batch " + " ".join(sys.argv[2:] if args.command_line is None else args.command_line)
    table = markdown(result, command=command.strip())
    for path, data in ((out / f"{stem}.json", json.dumps(result, indent=1) + "\n"), (out / f"{stem}.md", table)):
        atomic_write_bytes(data.encode(), path)
        print(f"wrote {path}")
    print(table, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="measure this machine: bundles × variants × backends × steps × batch, and torch")
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run, e.g. for tests)")
    p.add_argument("--bundles", nargs="*", default=None, help="bundle folders (default: bundles/*, else the SDK's default)")
    p.add_argument("--backends", default=None, help="comma list (default: every available one)")
    p.add_argument("--teacher", default="models/teacher-zsnr", help="the torch teacher (and, without --features, "
                   "the garment encoder of FD_garm)")
    p.add_argument("--features", help="model folder whose garment encoder defines FD_garm (default: the teacher's; "
                   "the reports use models/teacher-small's)")
    p.add_argument("--no-teacher", action="store_true", help="no torch rows, no quality")
    p.add_argument("--models", default="models", help="where the bundles' source models are (FLOPs, torch rows)")
    p.add_argument("--batches", default=None, help="comma list (default 1,2,4,8)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per row (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs per row (default 3)")
    p.add_argument("--quality-n", type=int, default=None, help="test persons for SSIM / FD (default 64)")
    p.add_argument("--threads", type=int, default=None, help="threads for ORT and torch (default: all cores)")
    p.add_argument("--low-memory", action="store_true", help="also a batch-1 row per single-call ONNX variant with "
                   "the SDK's low_memory (int8 weights expanded on every call)")
    p.add_argument("--name", default=None, help="report file stem (default: the device's name)")
    p.add_argument("--out", default="reports/bench")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_run, command_line=None)
    p = sub.add_parser("merge", help="one table and plot from several devices' reports")
    p.add_argument("reports", nargs="+")
    p.add_argument("--out", default="reports/bench")
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser("summary", help="print a report's batch-1 rows as a short Markdown table")
    p.add_argument("report")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("batch", help="catalog images/s: igr-edge batch in-process vs on a local Ray, same photos")
    p.add_argument("--n", type=int, default=192, help="photos (the samples, cycled; default 192)")
    p.add_argument("--bundle", default=None, help="bundle folder (default: the SDK's default bundle)")
    p.add_argument("--workers", type=int, default=None, help="threads / actors (default: each engine's own)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per worker")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--name", default=None, help="report file stem after batch- (default: the device's name)")
    p.add_argument("--out", default="reports/bench")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_batch, command_line=None)
    args = parser.parse_args(argv)
    if args.command in ("run", "batch") and argv is not None:
        args.command_line = argv[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
