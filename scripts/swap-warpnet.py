"""Exchange a shipped model's WarpNet in place, and relink every model folder that links it.

    .venv/bin/python scripts/swap-warpnet.py --model models/teacher-warp --warp runs/s36/warp-more/final [--models models]

A WarpNet trained on (`python -m igr.warp train --init models/teacher-warp`) changes no other weight, and the
students share the teacher's frozen WarpNet by a link (shared.json: path + SHA-256), so shipping it is one file and
one hash per linking folder. This writes MODEL/warpnet.safetensors in the old file's dtype, and in every folder
under --models whose shared.json links that file, the link's new SHA-256; then loads each of those folders
(`IGRModel.from_pretrained`) as a check. Nothing else in any folder changes. Everything is written beside its
destination first and renamed into place last. Refused: a MODEL whose WarpNet is itself a link (swap the folder it
links), a WarpNet of another shape, and a link that already does not match the old file (a folder broken before).
Prints the folders it relinked.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igr.files import atomic_file  # noqa: E402
from igr.model.igr import SHARED, IGRModel, sha256_file  # noqa: E402
from igr.warp import WarpNet  # noqa: E402


def linking(models: Path, target: Path) -> dict[Path, tuple[dict, list[str]]]:
    """The shared.json files under `models` (one level down) with a link that resolves to `target`: each one's links
    and the names of those that do."""
    found = {}
    for shared in sorted(models.glob(f"*/{SHARED}")):
        links = json.loads(shared.read_text())
        names = [n for n, link in links.items() if (shared.parent / link["path"]).resolve() == target.resolve()]
        if names:
            found[shared] = (links, names)
    return found


def swap(model: Path, warp: Path, models: Path) -> list[Path]:
    target = model / "warpnet.safetensors"
    if not target.is_file():
        raise ValueError(f"{model} has no warpnet.safetensors of its own (a linked one: swap the folder it links)")
    old = load_file(str(target))
    new = WarpNet.from_pretrained(warp).state_dict()
    if {k: v.shape for k, v in new.items()} != {k: v.shape for k, v in old.items()}:
        raise ValueError(f"{warp} is a WarpNet of another shape than {target}'s")
    old_sha = sha256_file(target)
    sharers = linking(models, target)
    for shared, (links, names) in sharers.items():
        for name in names:
            if links[name]["sha256"] != old_sha:
                raise ValueError(f"{shared} links {name} to {target} with a SHA-256 that file does not have now: "
                                 "mend that folder first")
    dtype = next(iter(old.values())).dtype
    with atomic_file(target) as staged:                   # renamed into place when the block ends
        save_file({k: v.to(dtype).contiguous() for k, v in new.items()}, str(staged), metadata={"format": "pt"})
        new_sha = sha256_file(staged)
    for shared, (links, names) in sharers.items():
        for name in names:
            links[name]["sha256"] = new_sha
        with atomic_file(shared) as tmp:
            tmp.write_text(json.dumps(links, indent=1, sort_keys=True) + "\n")
    for folder in [model, *(s.parent for s in sharers)]:
        got = IGRModel.from_pretrained(folder).warpnet.state_dict()
        if not all(torch.equal(got[k], new[k].to(dtype).float()) for k in new):
            raise RuntimeError(f"{folder} does not load the new WarpNet")
    return [s.parent for s in sharers]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swap-warpnet.py", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="the model folder that holds the WarpNet file")
    p.add_argument("--warp", type=Path, required=True, help="the new WarpNet (igr.warp train's OUT/final)")
    p.add_argument("--models", type=Path, default=Path("models"), help="where the folders that link it live")
    args = p.parse_args(argv)
    try:
        relinked = swap(args.model, args.warp, args.models)
    except (ValueError, FileNotFoundError) as e:
        print(f"swap-warpnet.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.model}/warpnet.safetensors <- {args.warp}; relinked: {', '.join(map(str, relinked)) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
