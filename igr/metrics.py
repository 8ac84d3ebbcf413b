"""Garment-restoration metrics. Headline, judged on the garment: SSIM and PSNR inside the true garment mask,
garment-mask IoU, CIE76 colour error ΔE inside the mask, FD_garm / KID in the embedding space of our own
garment encoder, and an LPIPS-style distance on pretrained EfficientNet-Lite0 features (`igr.perceptual`,
ours, not LPIPS). Whole-image SSIM, MS-SSIM and PSNR are kept beside them: on garments that sit on white,
whole-image SSIM rewards an empty output (a blank white image scores 0.73, above the first teacher's 0.59).
Measured on 32 test pairs, mask IoU and ΔE are the two an empty output cannot win (blank white: IoU 0, ΔE 62;
the first teacher: 0.57, 35). Masked SSIM and the EffNet distance punish wrong texture more than none (blank:
0.36 and 0.95; the first teacher, which paints noise-like texture: 0.31 and 1.10): read them beside the others.
Masked SSIM also rewards a flat garment: the truth's silhouette filled with its mean colour scores 0.62 on 128 test
pairs, above every model; the print correlation (`print_correlation`, ours) scores that fill 0.008.

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

# per-sample metrics: HEADLINE judged on the garment (lead the tables), WHOLE_IMAGE beside them
HEADLINE = ("ssim_mask", "psnr_mask", "mask_iou", "delta_e", "effnet_dist", "print_corr")
WHOLE_IMAGE = ("ssim", "ms_ssim", "psnr")
PER_SAMPLE = (*HEADLINE, *WHOLE_IMAGE)
LOWER_IS_BETTER = frozenset({"delta_e", "effnet_dist", "fd", "kid"})
LABELS = {"ssim_mask": "SSIM mask", "psnr_mask": "PSNR mask", "mask_iou": "mask IoU", "delta_e": "ΔE76 mask",
          "effnet_dist": "EffNet-L0 dist (ours)", "fd": "FD_garm", "kid": "KID", "ssim": "SSIM", "ms_ssim": "MS-SSIM",
          "psnr": "PSNR", "print_corr": "print corr (ours)"}
WHITE_THRESHOLD = 0.9   # a pixel is garment when any channel, in [0, 1], is below this (see `garment_region`)


@torch.no_grad()
def image_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
                  perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Per-sample metrics of images in [-1, 1] (B, 3, H, W) against ground truth; mask (B, 1, H, W) in {0, 1}.

    `perceptual`: an `igr.perceptual.EffNetDistance`, adding "effnet_dist"; left out, the pretrained network is
    not loaded (the trainer's validation reads SSIM and PSNR only).
    """
    p, t = (pred.float().clamp(-1, 1) + 1) / 2, (target.float().clamp(-1, 1) + 1) / 2     # [0, 1]
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none", return_full_image=True)
    ssim_per, ssim_map = ssim(p, t)                                                         # (B,), (B, 3, H, W)
    ms = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, reduction="none",
                                                    betas=ms_ssim_betas(*p.shape[-2:]))(p, t)  # (B,)
    m = mask.float().expand_as(p)
    err = (p - t) ** 2
    mse = err.flatten(1).mean(1)
    mse_mask = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)
    out = {
        "ssim_mask": (ssim_map * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1),
        "psnr_mask": 10 * torch.log10(1 / mse_mask.clamp(min=1e-10)),
        "mask_iou": mask_iou(garment_region(p), mask),
        "delta_e": masked_mean(delta_e76(p, t), mask),
        "print_corr": print_correlation(p, t, mask),
        "ssim": ssim_per,
        "ms_ssim": ms,
        "psnr": 10 * torch.log10(1 / mse.clamp(min=1e-10)),
    }
    if perceptual is not None:
        out["effnet_dist"] = perceptual(pred, target)
    return out


def print_correlation(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Whether the print is where the truth has it: inside the true mask (B, 1, H, W), the Pearson correlation of
    the two images' colour deviations (in [0, 1], B, 3, H, W) from their own mean colour there, the three channels
    pooled. -> (B,): 1 for the truth's layout of print at any contrast, 0 for a flat garment (no deviation: the
    correlation is undefined and counted as 0), about 0 for texture in the wrong places, below 0 for inverted print.

    Masked SSIM cannot tell a missing print from a restored one: the truth's own silhouette filled with its mean
    colour (the `flat_colour` yardstick of `igr.eval --references`) outscores every model on it. This one gives that
    fill 0.008 on 128 test pairs (its anti-aliased edge pixels keep the truth's); it ignores contrast and colour
    (ΔE and PSNR judge those), so it is read beside them."""
    m = mask.float().expand_as(pred)
    area = m.flatten(2).sum(2).clamp(min=1)[..., None, None]                        # (B, 3, 1, 1)
    dp = (pred - (pred * m).flatten(2).sum(2)[..., None, None] / area) * m
    dt = (target - (target * m).flatten(2).sum(2)[..., None, None] / area) * m
    num = (dp * dt).flatten(1).sum(1)
    den = (dp.pow(2).flatten(1).sum(1) * dt.pow(2).flatten(1).sum(1)).sqrt()
    return torch.where(den > 1e-12, num / den.clamp(min=1e-12), torch.zeros_like(num))


def garment_region(images: torch.Tensor, threshold: float = WHITE_THRESHOLD) -> torch.Tensor:
    """Where an image in [0, 1] (B, 3, H, W) shows garment rather than its white background: any channel below
    `threshold` (0.9: 229.5 of 255), no morphological cleanup. -> (B, 1, H, W) bool.

    SynthGarment never draws a garment colour near white (`igr.data.prints.random_colour`), so on the ground
    truth this recovers the mask almost exactly (the "ground truth" yardstick row of `igr.eval --references`).
    """
    return (images < threshold).any(1, keepdim=True)


def mask_iou(region: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Intersection over union of two masks (B, 1, H, W), per sample; 1 when both are empty."""
    a, b = region.bool().flatten(1), mask.bool().flatten(1)
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of a per-pixel map (B, 1, H, W) over the pixels where mask (B, 1, H, W) is set, per sample."""
    m = mask.float()
    return (values * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B, 3, H, W) -> CIE L*a*b* (D65, 2° observer), the constants of skimage.color.rgb2lab."""
    c = rgb.double()
    linear = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _XYZ_FROM_RGB.to(c), linear)                 # (B, 3, H, W)
    r = xyz / _D65_WHITE.to(c).view(1, 3, 1, 1)
    f = torch.where(r > 0.008856, r.clamp(min=0.008856) ** (1 / 3), 7.787 * r + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1).to(rgb.dtype)


_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def delta_e76(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CIE76 colour difference ΔE*ab (Euclidean distance in L*a*b*) of two sRGB images in [0, 1]: (B, 1, H, W).

    ΔE ≈ 2.3 is a just-noticeable difference; pure red against pure green is 170.6.
    """
    return (rgb_to_lab(a) - rgb_to_lab(b)).norm(dim=1, keepdim=True)


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
        self.num_features = encoder.cfg.embed_dim

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
