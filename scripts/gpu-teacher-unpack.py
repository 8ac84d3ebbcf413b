"""Model folders from what scripts/gpu-teacher.sh sends back: RUNS/NAME/final, RUNS/NAME/log.jsonl, and a copy of
each log in reports/train-logs/NAME.jsonl.

    .venv/bin/python scripts/gpu-teacher-unpack.py FOLDER [--runs runs] [--warpnet runs/warp-joined/final]

FOLDER holds gpu-teacher.tar.gz.part*. Each run's trained components come back in fp16; they are loaded over the
run's start (models/teacher-zsnr; for gpu-truewarp that model with --warpnet attached, as on the device) and saved
in fp32, so the frozen parts (VAE, image tower, WarpNet) are the start's own, bit for bit. The config sent back must
equal the start's: a run never changes the architecture.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FROZEN = ("vae", "warpnet")     # never trained by a coarse run: the start's files serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--warpnet", type=Path, default=Path("runs/warp-joined/final"))
    p.add_argument("--logs", type=Path, default=ROOT / "reports/train-logs", help="where each run's log is copied")
    args = p.parse_args(argv)
    parts = sorted(args.folder.glob("gpu-teacher.tar.gz.part*"))
    if not parts:
        p.error(f"no gpu-teacher.tar.gz.part* in {args.folder}")
    from safetensors.torch import load_file

    from igr.config import IGRConfig
    from igr.files import atomic_folder
    from igr.model import IGRModel
    from igr.warp import attach

    data = b"".join(f.read_bytes() for f in parts)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar, atomic_folder(args.runs / "gpu-pack") as tmp:
        tar.extractall(tmp, filter="data")
        for f in (tmp / "pack").iterdir():
            f.rename(tmp / f.name)
        (tmp / "pack").rmdir()
    start = {"gpu-ctl": ROOT / "models/teacher-zsnr", "gpu-truewarp": args.runs / "gpu-warp-init"}
    if not (start["gpu-truewarp"] / "config.json").is_file():
        attach(start["gpu-ctl"], args.warpnet, start["gpu-truewarp"])
    for name, first in start.items():
        packed = args.runs / "gpu-pack" / name
        if not (packed / "config.json").is_file():
            print(f"{name}: nothing sent back (stopped before its first checkpoint)")
            continue
        model = IGRModel.from_pretrained(first)
        if IGRConfig.load(packed / "config.json") != model.config:
            raise SystemExit(f"{name}: the config sent back differs from {first}'s")
        changed = []
        for comp in model.components:
            f = packed / f"{comp}.safetensors"
            if comp in FROZEN or not f.is_file():
                continue
            state = {k: v.float() for k, v in load_file(str(f)).items()}
            missing, unexpected = model.component(comp).load_state_dict(state, strict=False)
            if unexpected or (missing and comp != "image_encoder"):   # the image tower's own weights: the package's
                raise SystemExit(f"{name}/{comp}: missing {missing[:3]}, unexpected {unexpected[:3]}")
            changed.append(comp)
        run = args.runs / name
        run.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(run / "final", share_with=[first, ROOT / "models/teacher-small"])
        for f in ("log.jsonl", "stage.json", "last-sample.png"):
            if (packed / f).is_file():
                shutil.copy(packed / f, run / f)
        shutil.copy(packed / "log.jsonl", args.logs / f"{name}.jsonl")
        print(f"{run / 'final'}: {', '.join(changed)} from the device (fp16 -> fp32), the rest from {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
