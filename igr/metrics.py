"""Garment-restoration metrics: SSIM, MS-SSIM, PSNR (whole image and inside the garment mask) from
torchmetrics, and a Fréchet distance / KID in the embedding space of our own garment encoder.

The Fréchet distance here is *not* Inception-FID: its features come from IGR's contrastively trained
image encoder (`FD_garm`). Inception-FID, CLIP-FID, LPIPS and DISTS need pretrained weights that this
project cannot download: `OnnxMetric` runs them from local ONNX files the user passes (`--metric`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

PER_SAMPLE = ("ssim", "ms_ssim", "psnr", "ssim_mask", "psnr_mask")


@torch.no_grad()
def image_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample metrics of images in [-1, 1] (B, 3, H, W) against ground truth; mask (B, 1, H, W) in {0, 1}."""
    p, t = (pred.float().clamp(-1, 1) + 1) / 2, (target.float().clamp(-1, 1) + 1) / 2     # [0, 1]
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none", return_full_image=True)
    ssim_per, ssim_map = ssim(p, t)                                                         # (B,), (B, 3, H, W)
    ms = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, reduction="none",
                                                    betas=ms_ssim_betas(*p.shape[-2:]))(p, t)  # (B,)
    m = mask.float().expand_as(p)
    err = (p - t) ** 2
    mse = err.flatten(1).mean(1)
    mse_mask = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)
    return {
        "ssim": ssim_per,
        "ms_ssim": ms,
        "psnr": 10 * torch.log10(1 / mse.clamp(min=1e-10)),
        "ssim_mask": (ssim_map * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1),
        "psnr_mask": 10 * torch.log10(1 / mse_mask.clamp(min=1e-10)),
    }


def ms_ssim_betas(h: int, w: int, kernel: int = 11) -> tuple[float, ...]:
    """MS-SSIM scale weights (Wang et al. 2003): all five at 256×192, the first few (renormalized) on small images."""
    betas = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    scales = max(s for s in range(1, 6) if min(h, w) // max(1, s - 1) ** 2 > kernel - 1)
    kept = betas[:scales]
    return tuple(b / sum(kept) for b in kept)


class GarmentFeatures(nn.Module):
    """Embeddings of garment images (uint8 (B, 3, H, W)) by IGR's image encoder: the FD_garm feature space."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.num_features = encoder.cfg.projection_dim

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
        return self.encoder.embed(x)


class _Precomputed(nn.Module):
    """Features already computed: lets torchmetrics' FD and KID run on cached embeddings (for the bootstrap)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between two feature sets (N, D) (Heusel et al. 2017), via torchmetrics."""
    fd = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    fd.update(real.double(), real=True)
    fd.update(fake.double(), real=False)
    return float(fd.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, *, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018) between two feature sets: (mean, std over subsets), via torchmetrics."""
    n = min(len(real), len(fake))
    torch.manual_seed(seed)
    kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=50, subset_size=max(2, n // 2))
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    mean, std = kid.compute()
    return float(mean), float(std)


def bootstrap(values: np.ndarray, *, n: int = 1000, seed: int = 0, stat=np.mean) -> tuple[float, float]:
    """95% percentile bootstrap interval of `stat` over samples (Efron 1979)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    stats = np.array([stat(values[i]) for i in idx])
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def bootstrap_fd(real: torch.Tensor, fake: torch.Tensor, *, n: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% basic-bootstrap interval of FD_garm, resampling the test pairs (real and fake together).

    Resampling with replacement repeats samples, which inflates FD (a biased statistic): the plain
    percentile interval sits above the estimate. The basic interval (2·FD − q97.5, 2·FD − q2.5)
    reflects the resampled spread around the estimate instead. Compare two models with a paired
    bootstrap of their FD difference (`paired_fd`), where the bias largely cancels.
    """
    rng = np.random.default_rng(seed)
    point = frechet_distance(real, fake)
    stats = []
    for _ in range(n):
        i = torch.from_numpy(rng.integers(0, len(real), len(real)))
        stats.append(frechet_distance(real[i], fake[i]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(max(0.0, 2 * point - hi)), float(2 * point - lo)


def paired_fd(real: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor, *, n: int = 200,
              seed: int = 0) -> dict:
    """FD(a) − FD(b) on the same test pairs, with a 95% interval from resampling the pairs for both at once."""
    rng = np.random.default_rng(seed)
    point = frechet_distance(real, fake_a) - frechet_distance(real, fake_b)
    stats = []
    for _ in range(n):
        i = torch.from_numpy(rng.integers(0, len(real), len(real)))
        stats.append(frechet_distance(real[i], fake_a[i]) - frechet_distance(real[i], fake_b[i]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return {"mean": float(point), "ci95": [float(2 * point - hi), float(2 * point - lo)]}   # basic interval


def summarize(per_sample: dict[str, np.ndarray], real: torch.Tensor, fake: torch.Tensor, *,
              boot: int = 1000) -> dict[str, dict[str, float]]:
    """Mean and 95% interval of every per-sample metric, plus FD_garm (with interval) and KID."""
    out = {k: {"mean": float(v.mean()), "ci95": bootstrap(v, n=boot)} for k, v in per_sample.items()}
    out["fd"], out["kid"] = feature_distances(real, fake, boot=boot, space="IGR image-encoder embeddings")
    out["fd"]["space"] = "FD_garm: IGR image-encoder embeddings, not Inception"
    return out


def feature_distances(real: torch.Tensor, fake: torch.Tensor, *, boot: int, space: str) -> tuple[dict, dict]:
    """FD (with its bootstrap interval) and KID (mean, std over subsets) between two feature sets."""
    kid_mean, kid_std = kernel_distance(real, fake)
    fd = {"mean": frechet_distance(real, fake), "ci95": bootstrap_fd(real, fake, n=max(20, boot // 5)), "space": space}
    return fd, {"mean": kid_mean, "std": kid_std, "space": space}


class OnnxMetric:
    """A metric whose network the user supplies as a local ONNX file (LPIPS, DISTS, Inception, CLIP...).

    Their weights cannot be downloaded here, so `igr.eval` takes them as files and runs them with
    ONNX Runtime (no pickle). Two kinds, told apart by the graph's inputs:
    - *pairwise* (two inputs, e.g. LPIPS, DISTS): images `a`, `b` float32 (N, 3, H, W) in [0, 1]
      -> one distance per sample (N,) or (N, 1, 1, 1); lower is better;
    - *embedding* (one input, e.g. Inception pool3 for FID, a CLIP image tower for CLIP-FID): images
      float32 (N, 3, H, W) in [0, 1] -> features (N, D); FD and KID are computed on them.
    Resizing and normalization to the network's own convention belong inside the graph.
    """

    def __init__(self, name: str, path: str) -> None:
        import onnxruntime as ort

        if not name.replace("_", "").isalnum():
            raise ValueError(f"metric name {name!r}: use letters, digits and '_'")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{name}: cannot load ONNX file {path}: {e}".splitlines()[0]) from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        if len(self.inputs) not in (1, 2):
            raise ValueError(f"{name}: {path} has {len(self.inputs)} inputs; expected 1 (embedding) or 2 (pairwise)")
        self.name, self.path = name, str(path)
        self.kind = "pairwise" if len(self.inputs) == 2 else "embedding"

    def _run(self, *images: torch.Tensor) -> np.ndarray:
        feeds = {k: ((x.float().clamp(-1, 1) + 1) / 2).numpy() for k, x in zip(self.inputs, images)}
        return self.session.run(None, feeds)[0]

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        """Per-sample distance (pairwise kind) of images in [-1, 1]."""
        out = self._run(pred, target)
        return out.reshape(len(pred), -1).mean(1).astype(np.float64)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, D) (embedding kind) of images in [-1, 1]."""
        return torch.from_numpy(self._run(images).reshape(len(images), -1).astype(np.float64))


def parse_metric_files(specs: list[str]) -> list[OnnxMetric]:
    """`NAME=PATH.onnx` strings (the --metric option) -> loaded metrics; a bad spec raises ValueError."""
    metrics = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--metric {spec!r}: expected NAME=PATH.onnx, e.g. lpips=weights/lpips_alex.onnx")
        metrics.append(OnnxMetric(name, path))
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"--metric names repeat: {names}")
    return metrics
