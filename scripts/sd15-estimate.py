"""FLOPs, step time and GPU memory of one `sd15` training step (coarse/hqft at 512x384), estimated without a GPU.

    .venv/bin/python scripts/sd15-estimate.py [--batch 1 4]

The model is built under FakeTensorMode: every tensor has its shape, dtype and storage size, and no arithmetic
runs. One step is replayed as the trainer runs it on one GPU: VAE encodes and image tower without gradients, the
diffusion loss under bf16 autocast with gradient checkpointing, backward, gradient clipping, AdamW (foreach, the
CUDA default) and the EMA update.
- FLOPs: `torch.utils.flop_counter.FlopCounterMode` over the step (backward includes the checkpointed recompute).
- Time: FLOPs / (30-50% of bf16 peak), plus the bytes that gradient clipping, AdamW and the EMA update read and
  write / the GPU's memory bandwidth (these elementwise ops over 1.7 B parameters do not shrink with the batch).
  A lower bound: no data loading, all-reduce, kernel launches or Python overhead.
- Memory: bytes of the storages alive at each moment (a dispatch mode that sees every op's outputs), with the
  EMA copy and AdamW's moments already there (step 2 is measured); DDP's gradient buckets (4 bytes a trained
  parameter) are added, since one process has none. Not counted: the CUDA allocator's caching and fragmentation,
  kernels' workspaces (attention, cuDNN), the CUDA context (~0.5-1 GB) and NCCL's buffers.
CPU autocast (what fake CPU tensors get) casts the same matrix products and convolutions to bf16 as CUDA
autocast; ops it keeps in fp32 may differ in detail.
"""
import argparse
import sys
import time
import weakref
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from igr.config import IGRConfig  # noqa: E402
from igr.model import IGRModel  # noqa: E402
from igr.train.config import StageConfig  # noqa: E402
from igr.train.trainer import _ema_update, trainable_modules  # noqa: E402

PEAK_TFLOPS = {"A100": 312, "H100 SXM": 989}          # dense bf16
BANDWIDTH_TBS = {"A100": 2.04, "H100 SXM": 3.35}      # HBM, the 80 GB parts
UTILISATION = (0.5, 0.3)
GB = 1e9
# fake CPU tensors take the CPU flash-attention kernel, which FlopCounterMode has no formula for; GPU kernels have one
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda g, q, k, v, *a, out_shape=None, **kw: sdpa_backward_flop_count(g, q, k, v),
}


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created while it is active and still alive, `peak` per phase (`phase` names it), and
    `moved`: bytes of every op's tensor arguments and outputs, per phase."""

    def __init__(self) -> None:
        super().__init__()
        self.alive: dict[int, weakref.ref] = {}
        self.now = 0
        self.phase = "setup"
        self.peak: dict[str, int] = {}
        self.moved: dict[str, int] = {}

    def _freed(self, key: int, n: int) -> None:
        self.now -= n
        self.alive.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # bytes an op reads and writes, if it touches each element of its inputs and outputs once (elementwise ops do)
        touched = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        self.moved[self.phase] = self.moved.get(self.phase, 0) + sum(t.numel() * t.element_size() for t in touched)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if id(st) not in self.alive:
                    n = st.nbytes()
                    self.alive[id(st)] = weakref.ref(st, lambda _, k=id(st), n=n: self._freed(k, n))
                    self.now += n
        self.peak[self.phase] = max(self.peak.get(self.phase, 0), self.now)
        return out


def step(cfg, model, ema, opt, person, garment, g, live: LiveBytes | None = None) -> dict[str, float]:
    """One training step; FLOPs (TFLOP) of its phases."""
    flops = {}

    def phase(name):
        if live is not None:
            live.phase = name
        return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)

    with phase("frozen") as fc, torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        z0, zp = model.encode(garment), model.encode(person)             # (B, 4, 64, 48)
        embed = model.image_encoder.embed(person)                          # (B, 1024)
    flops["frozen (2 VAE encodes, tower)"] = fc.get_total_flops() / 1e12
    with phase("forward") as fc, torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.diffusion_loss_from(zp, embed, z0, generator=g)
    flops["GarmNet + denoiser forward"] = fc.get_total_flops() / 1e12
    with phase("backward") as fc:
        loss.backward()
    flops["backward (with recompute)"] = fc.get_total_flops() / 1e12
    del loss, z0, zp, embed
    with phase("optimizer"):
        params = [p for p in model.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _ema_update(ema, model, cfg.stage, cfg.ema)
    return flops


def estimate(batch: int) -> None:
    config, cfg = IGRConfig.sd15(), StageConfig.preset("coarse", "sd15")
    with FakeTensorMode(), LiveBytes() as live:
        model = IGRModel(config, pretrained=False)
        trained = [p for m in trainable_modules(model, cfg.stage) for p in m.parameters()]
        model.requires_grad_(False)
        for p in trained:
            p.requires_grad_(True)
        model.enable_gradient_checkpointing()
        ema = IGRModel(config, pretrained=False).requires_grad_(False)   # as _ema_copy (fake tensors don't deepcopy)
        opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        person = torch.zeros(batch, 3, config.height, config.width)
        garment = torch.zeros_like(person)
        g = torch.Generator().manual_seed(0)
        step(cfg, model, ema, opt, person, garment, g)                    # AdamW's moments now exist
        resident = live.now
        live.peak, live.moved = {}, {}
        flops = step(cfg, model, ema, opt, person, garment, g, live)
    n_trained = sum(p.numel() for p in trained)
    parts = {"denoiser": model.denoiser, "garmnet": model.garmnet, "projection": model.image_encoder.projection(),
             "tower": model.image_encoder.tower, "vae": model.vae}
    counts = {k: sum(p.numel() for m in (v if isinstance(v, list) else [v]) for p in m.parameters())
              for k, v in parts.items()}
    buckets = 4 * n_trained
    total = sum(flops.values())
    print(f"sd15 at {config.height}x{config.width}, batch {batch} (one GPU's share), bf16 autocast, "
          f"gradient checkpointing; {n_trained / 1e9:.3f} B trained parameters")
    print("  parameters: " + ", ".join(f"{k} {n / 1e6:.1f} M" for k, n in counts.items()))
    for name, f in flops.items():
        print(f"  {name:34s} {f:6.2f} TFLOP")
    print(f"  {'a step':34s} {total:6.2f} TFLOP ({total / batch:.2f} a pair)")
    update = live.moved["optimizer"]
    print(f"  clipping, AdamW and EMA move {update / GB:.0f} GB (elementwise: bound by memory bandwidth)")
    for gpu, peak in PEAK_TFLOPS.items():
        lo, hi = (total / (u * peak) for u in UTILISATION)
        upd = update / (BANDWIDTH_TBS[gpu] * 1e12)
        print(f"  {gpu}: {lo:.3f}-{hi:.3f} s of compute at {UTILISATION[1]:.0%}-{UTILISATION[0]:.0%} of bf16 peak, "
              f"+ {upd:.3f} s for the update at full bandwidth = {lo + upd:.3f}-{hi + upd:.3f} s a step")
    print(f"  memory: resident between steps (weights, frozen parts, EMA, AdamW moments) {resident / GB:.1f} GB")
    for name, peak in live.peak.items():
        print(f"    peak during {name:10s} {peak / GB:5.1f} GB  (+{(peak - resident) / GB:.1f} over resident)")
    top = max(live.peak.values())
    print(f"  peak of the step {top / GB:.1f} GB; with DDP's gradient buckets ({buckets / GB:.1f} GB) "
          f"{(top + buckets) / GB:.1f} GB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    args = p.parse_args()
    torch.set_num_threads(1)
    for b in args.batch:
        t = time.perf_counter()
        estimate(b)
        print(f"  ({time.perf_counter() - t:.0f} s to estimate)\n")


if __name__ == "__main__":
    main()
