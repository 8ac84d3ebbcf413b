"""`igr-edge`: the runtime's command line (one subcommand, one small function)."""
from __future__ import annotations

import argparse
import sys

from . import __version__


def cmd_doctor(args: argparse.Namespace) -> int:
    """`igr-edge doctor`: what this Python and ONNX Runtime offer."""
    import platform
    from importlib import metadata

    import numpy
    import PIL

    print(f"igr-edge     {__version__}")
    print(f"python       {platform.python_version()} ({platform.system()} {platform.machine()})")
    print(f"numpy        {numpy.__version__}")
    print(f"pillow       {PIL.__version__}")
    builds = {}
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            builds[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnxruntime  not importable ({e}); install it with: pip install onnxruntime")
        return 1
    print(f"onnxruntime  {ort.__version__} (installed: {', '.join(f'{d} {v}' for d, v in builds.items()) or 'unknown'})")
    print(f"providers    {', '.join(ort.get_available_providers())}")
    print("             (listed by the build; a provider counts only once a real session gets it)")
    if len(builds) > 1:
        print("warning      onnxruntime and onnxruntime-gpu are both installed and shadow each other; fix with:\n"
              "             pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igr-edge", description="Garment restoration on devices.")
    parser.add_argument("--version", action="version", version=f"igr-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="show Python, ONNX Runtime and its execution providers").set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
