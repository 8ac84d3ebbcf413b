"""A tiny model with a warp prior (a random WarpNet attached), for the tests of what a warp-prior model encodes."""
from pathlib import Path

import torch

from igr.config import IGRConfig
from igr.model import IGRModel


def tiny_warp_model(folder: Path) -> Path:
    """folder/base: a tiny model at the WarpNet's size; folder/teacher: the same with a random WarpNet (seeded,
    its output layer scaled so the warp moves pixels) attached by `igr.warp.attach`. Returns folder/teacher."""
    from igr.warp import SIZE, WarpNet, attach

    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny().replace(height=SIZE[0], width=SIZE[1])).save_pretrained(folder / "base")
    net = WarpNet()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    net.save_pretrained(folder / "warpnet")
    attach(folder / "base", folder / "warpnet", folder / "teacher")
    return folder / "teacher"
