"""The guidance sweep tunes on val, picks the best row, and writes it into config.json."""
import json

from igr.config import IGRConfig
from igr.sweep import best, main


def test_best_is_the_lowest_fd_near_the_best_ssim_with_ties_to_fewer_steps():
    rows = [{"ssim_mask": 0.5, "fd": 1.0, "steps": 20, "sampler": "ddim", "scale": 1.0},      # best FD, SSIM too low
            {"ssim_mask": 0.7, "fd": 3.0, "steps": 50, "sampler": "ddim", "scale": 3.0},
            {"ssim_mask": 0.695, "fd": 2.0, "steps": 50, "sampler": "ddim", "scale": 4.0},
            {"ssim_mask": 0.70, "fd": 2.0, "steps": 20, "sampler": "dpmsolver++", "scale": 2.0}]
    assert best(rows) == rows[3]
    assert best(rows[:3]) == rows[2]
    # whole-image SSIM (which a blank image can win) does not enter the choice
    assert best([{**r, "ssim": 1.0 - r["ssim_mask"]} for r in rows])["scale"] == rows[3]["scale"]


def test_sweep_cli_reports_every_setting_and_writes_the_choice(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    assert main(["--model", str(folder), "--n", "2", "--batch", "2", "--scales", "1,3", "--steps", "2",
                 "--samplers", "ddim,dpmsolver++", "--out", str(tmp_path / "sweep"), "--write"]) == 0
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert len(report["rows"]) == 4 and report["split"] == "val"
    assert all(0 <= r["ssim_mask"] <= 1 and 0 <= r["mask_iou"] <= 1 for r in report["rows"])
    assert "SSIM mask" in (tmp_path / "sweep.md").read_text()
    choice = report["choice"]
    cfg = IGRConfig.load(folder / "config.json")
    assert (cfg.sampler, cfg.sample_steps, cfg.guidance_scale) == (choice["sampler"], choice["steps"], choice["scale"])
    assert (tmp_path / "sweep.png").stat().st_size > 1000
