"""The teacher as a components bundle in the SDK (ORT + numpy DPM-Solver++ + guidance) against the torch pipeline at
the same noise, 8 SynthGarment test persons. Needs bundles/teacher-small:
    python -m convert bundle --model models/teacher-small --out bundles/teacher-small --variants onnx-fp32
Run: PYTHONPATH=. .venv/bin/python scripts/sdk-teacher-parity.py"""
import time

import numpy as np
import torch

from igr.data import generate, seed_for
from igr.model import IGRModel
from igr.pipeline import denoise
from igr_edge import Restorer
from igr_edge.noise import normal

torch.set_num_threads(2)
persons = np.stack([generate(seed_for("test", i), size=(256, 192)).person for i in range(8)])
seeds = list(range(100, 108))
with Restorer("bundles/teacher-small", backend="cpu", threads=2) as r:
    r.restore_arrays(persons[:1], seeds[:1], steps=2)
    t = time.perf_counter(); ours = r.restore_arrays(persons, seeds); t_ort = time.perf_counter() - t
model = IGRModel.from_pretrained("models/teacher-small").float().eval()
noise = torch.from_numpy(np.stack([normal(s, (4, 32, 24)) for s in seeds]))
with torch.no_grad():
    t = time.perf_counter()
    x = torch.from_numpy(persons).permute(0, 3, 1, 2).float() / 127.5 - 1
    lat = denoise(model, model.condition(x), noise)
    theirs = ((model.decode(lat) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    t_torch = time.perf_counter() - t
d = np.abs(ours.astype(int) - theirs.astype(int))
mse = ((ours.astype(float) - theirs.astype(float)) ** 2).mean()
print(f"max diff {d.max()}, mean {d.mean():.4f}, PSNR {10*np.log10(255**2/max(mse,1e-12)):.1f} dB; "
      f"ORT {t_ort:.1f} s, torch {t_torch:.1f} s for 8 images (50 dpmsolver++ steps, guidance 2)")
