"""The teacher report compares models pairwise over the same test items and says plainly what holds."""
import json

import numpy as np
import pytest

from igr.report import main as report_main, paired


def _eval(path, ssim, fd, fd_ci, sampling=None, shift=None):
    """An igr.eval JSON with the given per-item SSIM values and FD_garm figure, and (with `shift`) its
    features file: the ground-truth features of the same pairs, and restored ones moved by `shift`."""
    ssim = np.asarray(ssim, dtype=float)
    if shift is not None:
        rng = np.random.default_rng(0)
        real = rng.normal(size=(len(ssim), 4))
        fake = real + shift + np.random.default_rng(int(shift * 100)).normal(scale=0.1, size=real.shape)
        np.savez(path.with_suffix(".features.npz"), real=real, fake=fake)
    m = {k: {"mean": float(ssim.mean()), "ci95": [float(ssim.min()), float(ssim.max())]}
         for k in ("ssim", "ms_ssim", "psnr", "ssim_mask", "psnr_mask")}
    m["fd"] = {"mean": fd, "ci95": fd_ci}
    m["kid"] = {"mean": 0.01, "std": 0.001}
    m["per_sample"] = {"ssim": ssim.tolist()}
    path.write_text(json.dumps({"n": len(ssim), "metrics": m, "sampling": sampling or "one regression forward",
                                "split": "test", "features": "encoder sha256 0"}))


def test_paired_difference_sees_a_consistent_small_gain_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, 200)      # items differ a lot from one another...
    a = {"metrics": {"per_sample": {"ssim": (base + 0.01).tolist()}}}
    b = {"metrics": {"per_sample": {"ssim": base.tolist()}}}
    noise = {"metrics": {"per_sample": {"ssim": (base + rng.normal(0, 0.05, 200)).tolist()}}}
    assert paired(a, b)["verdict"] == "a better"          # ...but the paired gain is the same on each
    assert paired(b, a)["verdict"] == "b better"
    assert paired(noise, b)["verdict"] == "no difference shown"


def test_report_states_targets_and_claims(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.4, 0.8, 64)
    sampling = {"sampler": "ddim", "steps": 20, "guidance": 2.0, "seed": 0}
    _eval(tmp_path / "teacher.json", base - 0.01, 3.0, [2.5, 3.5], sampling, shift=0.3)
    _eval(tmp_path / "baseline.json", base, 6.0, [5.5, 6.5], shift=1.0)
    _eval(tmp_path / "abl-both.json", base + 0.05, 4.0, [3.5, 4.5], sampling)
    _eval(tmp_path / "abl-low.json", base, 5.0, [4.5, 5.5], sampling)
    _eval(tmp_path / "abl-high.json", base + 0.05 + rng.normal(0, 0.05, 64), 4.2, [3.5, 4.9], sampling)
    _eval(tmp_path / "abl-c2f.json", base - 0.05, 4.0, [3.5, 4.5], sampling)
    _eval(tmp_path / "abl-single.json", base, 4.0, [3.5, 4.5], sampling)
    assert report_main(["--evals", str(tmp_path), "--out", str(tmp_path / "out" / "teacher")]) == 0
    rep = json.loads((tmp_path / "out" / "teacher.json").read_text())
    assert rep["test"]["ssim"] == pytest.approx(base.mean() - 0.01) and rep["baseline"]["fd"] == 6.0
    assert rep["targets"]["fd_beats_baseline"] and rep["targets"]["ssim_within_0.02"]
    assert rep["targets"]["fd_compare"]["diff"]["ci95"][1] < 0       # the paired FD difference is clear
    assert rep["guidance"] == {"scale": 2.0, "steps": 20, "sampler": "ddim"}
    assert set(rep["ablations"]) == {"both", "low_only", "high_only", "coarse_to_fine", "single_stage"}
    # both beats low clearly, but not high (noise): the claim is not shown; c2f loses: reversed
    assert rep["claims"]["both paths beat either alone"]["holds"] == "not shown"
    assert rep["claims"]["coarse-to-fine beats single stage"]["holds"] == "no (reversed)"
    md = (tmp_path / "out" / "teacher.md").read_text()
    assert "**met**" in md and "not Inception" in md and "not shown" in md


def test_report_refuses_evaluations_that_are_not_comparable(tmp_path, capsys):
    sampling = {"sampler": "ddim", "steps": 20, "guidance": 2.0, "seed": 0}
    _eval(tmp_path / "teacher.json", np.full(8, 0.5), 3.0, [2.5, 3.5], sampling)
    _eval(tmp_path / "baseline.json", np.full(16, 0.5), 6.0, [5.5, 6.5])
    with pytest.raises(SystemExit) as e:
        report_main(["--evals", str(tmp_path), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "differ in n" in capsys.readouterr().err


def test_fd_interval_contains_the_estimate_and_paired_differences_see_a_shift():
    import torch
    from igr.metrics import bootstrap_fd, frechet_distance, paired_fd

    g = torch.Generator().manual_seed(0)
    real = torch.randn(128, 8, generator=g, dtype=torch.float64)
    near = real + 0.2 + 0.3 * torch.randn(128, 8, generator=g, dtype=torch.float64)
    far = real + 0.6 + 0.3 * torch.randn(128, 8, generator=g, dtype=torch.float64)
    lo, hi = bootstrap_fd(real, near, n=100)
    assert lo <= frechet_distance(real, near) <= hi
    d = paired_fd(real, near, far, n=100)
    assert d["mean"] < 0 and d["ci95"][1] < 0


def test_report_needs_the_teacher_and_baseline_evaluations(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        report_main(["--evals", str(tmp_path), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "teacher.json" in capsys.readouterr().err


def _eval_with_headline(path, delta_e, categories, shift=0.0):
    """An igr.eval JSON of today's shape: headline metrics per sample, garment categories, means per category."""
    _eval(path, np.full(len(delta_e), 0.6), 3.0, [2.5, 3.5], {"sampler": "ddim", "steps": 20, "guidance": 2.0,
                                                               "seed": 0} if shift else None)
    rep = json.loads(path.read_text())
    m = rep["metrics"]
    delta_e = np.asarray(delta_e, dtype=float)
    per = {"ssim_mask": 0.4 + shift, "psnr_mask": 14.0, "mask_iou": 0.8 + shift, "effnet_dist": 0.5 - shift}
    for k, v in per.items():
        m[k] = {"mean": v, "ci95": [v - 0.01, v + 0.01]}
        m["per_sample"][k] = [v] * len(delta_e)
    m["delta_e"] = {"mean": float(delta_e.mean()), "ci95": [float(delta_e.min()), float(delta_e.max())]}
    m["per_sample"]["delta_e"] = delta_e.tolist()
    m["per_sample"]["category"] = categories
    m["by_category"] = {c: {"n": categories.count(c), "delta_e": float(delta_e[np.asarray(categories) == c].mean()),
                            **per} for c in sorted(set(categories))}
    path.write_text(json.dumps(rep))


def test_report_leads_with_headline_metrics_and_shows_one_row_per_category(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.uniform(10, 30, 40)
    categories = ["skirt", "tee", "dress", "tank"] * 10
    _eval_with_headline(tmp_path / "teacher.json", base - 3, categories, shift=0.05)   # lower ΔE: better
    _eval_with_headline(tmp_path / "baseline.json", base, categories)
    assert report_main(["--evals", str(tmp_path), "--out", str(tmp_path / "out" / "teacher")]) == 0
    rep = json.loads((tmp_path / "out" / "teacher.json").read_text())
    assert rep["headline_diffs"]["delta_e"]["verdict"] == "a better"        # a lower colour error wins
    assert rep["headline_diffs"]["effnet_dist"]["verdict"] == "a better"    # so does a lower distance
    assert rep["headline_diffs"]["mask_iou"]["verdict"] == "a better"       # and a higher IoU
    md = (tmp_path / "out" / "teacher.md").read_text()
    table = next(line for line in md.splitlines() if line.startswith("| model |"))
    cols = [c.strip() for c in table.strip("|").split("|")]
    assert cols.index("SSIM mask [95% CI]") < cols.index("SSIM (whole) [95% CI]")
    assert {"mask IoU", "ΔE76 mask", "EffNet-L0 dist (ours)", "FD_garm [95% CI]"} <= set(cols)
    assert "| ΔE76 mask |" in md and "teacher better" in md
    skirt = next(line for line in md.splitlines() if line.startswith("| skirt |"))
    assert skirt.startswith("| skirt | 10 |") and f"{base[0::4].mean() - 3:.2f} / {base[0::4].mean():.2f}" in skirt


def test_an_evaluation_written_before_the_headline_metrics_shows_them_as_dashes(tmp_path):
    sampling = {"sampler": "ddim", "steps": 20, "guidance": 2.0, "seed": 0}
    _eval(tmp_path / "teacher.json", np.full(8, 0.5), 3.0, [2.5, 3.5], sampling)
    _eval(tmp_path / "baseline.json", np.full(8, 0.6), 6.0, [5.5, 6.5])
    assert report_main(["--evals", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    teacher = next(line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| IGR teacher"))
    assert teacher.count("| – ") == 3 and "0.5000" in teacher           # IoU, ΔE, EffNet: not measured then
