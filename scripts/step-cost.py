"""Seconds per training step (fwd + bwd + AdamW, batch 16) of the small IGR diffusion stage and the
regression baseline on cached latents, at 128x96 and 256x192 (latents 16x12 and 32x24).

    .venv/bin/python scripts/step-cost.py [--threads 1] [--runs 6]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from igr.baseline import RegressionConfig, RegressionModel  # noqa: E402
from igr.train.trainer import build_model  # noqa: E402


def timed(step, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])        # the first run warms up


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=6)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    m = build_model("small", None, 0)
    base = RegressionModel(m.config, RegressionConfig())
    g = torch.Generator().manual_seed(0)
    igr_params = [q for mod in (m.garmnet, m.denoiser, m.image_encoder.proj, m.image_encoder.norm)
                  for q in mod.parameters()]
    for name, params, loss_fn in (
            ("IGR diffusion", igr_params, lambda zp, e, z0: m.diffusion_loss_from(zp, e, z0, generator=g)),
            ("regression baseline", list(base.unet.parameters()), lambda zp, e, z0: base.loss_from(zp, z0))):
        opt = torch.optim.AdamW(params, 1e-4)
        for h, w in ((16, 12), (32, 24)):
            zp, z0 = torch.randn(16, 4, h, w), torch.randn(16, 4, h, w)
            e = torch.randn(16, m.config.encoder.projection_dim)

            def step():
                loss_fn(zp, e, z0).backward()
                opt.step()
                opt.zero_grad()

            print(f"{name:<20} latent 4x{h}x{w}: {timed(step, args.runs):.3f} s/step "
                  f"({args.threads} thread(s), torch {torch.__version__})")


if __name__ == "__main__":
    main()
