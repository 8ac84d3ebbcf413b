"""Measured tries side by side: real evaluations of tiny models, paired against one of them."""
import json

import torch

from igr.baseline import main as baseline_main
from igr.compare import main as compare_main
from igr.config import IGRConfig
from igr.eval import main as eval_main
from igr.model import IGRModel
from igr.probe import main as probe_main


def test_compare_tables_paired_diffs_swap_tests_curves_and_grid(tmp_path):
    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny().replace(zero_snr=True, aligned_prior=True)).save_pretrained(tmp_path / "prior")
    assert baseline_main(["--from-prior", str(tmp_path / "prior"), "--out", str(tmp_path / "base")]) == 0
    common = ["--features", str(tmp_path / "prior"), "--n", "4", "--batch", "2", "--boot", "10"]
    assert eval_main(["--model", str(tmp_path / "prior"), "--out", str(tmp_path / "e" / "prior"), "--steps", "2",
                      "--references", *common]) == 0
    assert eval_main(["--model", str(tmp_path / "base"), "--out", str(tmp_path / "e" / "base"), *common]) == 0
    assert probe_main(["--model", str(tmp_path / "prior"), "--n", "3", "--out", str(tmp_path / "e" / "probe")]) == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "val_ssim": 0.1 * s, "val_mask_iou": 0.2 * s}) + "\n"
                                           for s in (1, 2, 3)))
    out = tmp_path / "out" / "tries"
    assert compare_main(["--eval", f"prior={tmp_path / 'e' / 'prior.json'}", "--eval",
                         f"baseline={tmp_path / 'e' / 'base.json'}", "--against", "baseline",
                         "--probe", f"prior={tmp_path / 'e' / 'probe.json'}", "--run", f"prior={run}",
                         "--model", f"prior={tmp_path / 'prior'}", "--model", f"baseline={tmp_path / 'base'}",
                         "--out", str(out)]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert set(rep["rows"]) == {"prior", "baseline"} and set(rep["diffs"]) == {"prior"}
    assert {"ssim_mask", "mask_iou", "delta_e", "fd"} <= set(rep["diffs"]["prior"])
    md = out.with_suffix(".md").read_text()
    assert "| prior | 4 |" in md and "Swap test, prior" in md and "yardstick: blank" in md
    assert rep["split"] == "test" and "paired over the same test pairs" in md
    assert (tmp_path / "out" / "tries-curves.png").is_file() and (tmp_path / "out" / "tries-grid.png").is_file()
    assert compare_main(["--eval", f"prior={tmp_path / 'e' / 'prior.json'}", "--against", "nobody",
                         "--out", str(out)]) == 2
    # evaluations on the validation split say so in the paired table
    for name, model in (("prior", "prior"), ("base", "base")):
        assert eval_main(["--model", str(tmp_path / model), "--split", "val", "--out",
                          str(tmp_path / "v" / name), *common]) == 0
    assert compare_main(["--eval", f"prior={tmp_path / 'v' / 'prior.json'}", "--eval",
                         f"baseline={tmp_path / 'v' / 'base.json'}", "--against", "baseline",
                         "--out", str(tmp_path / "out" / "val")]) == 0
    assert "paired over the same val pairs" in (tmp_path / "out" / "val.md").read_text()


def test_a_grid_column_samples_as_its_evaluation_did(tmp_path, monkeypatch):
    """The prior-start sweep's columns: each name's eval JSON holds the settings it sampled with (strength
    included); the grid passes them on, and the model's own where the name has no evaluation."""
    import igr.pipeline
    from igr.compare import sample_grid

    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny().replace(zero_snr=True, aligned_prior=True)).save_pretrained(tmp_path / "prior")
    seen = []
    real = igr.pipeline.sample
    monkeypatch.setattr(igr.pipeline, "sample", lambda m, p, **kw: seen.append(kw) or real(m, p, **kw))
    sampling = {"s03": {"sampler": "ddim", "steps": 4, "guidance": 1.5, "seed": 0, "strength": 0.3},
                "k2": {"sampler": "ddim", "steps": 2, "guidance": 1.0, "seed": 0, "samples_averaged": 2},
                "jump": {"sampler": "ddim", "steps": 10, "guidance": 1.5, "seed": 0, "jump": 0.3,
                         "guidance_below": 299, "jump_mean": 3}}
    sample_grid({"s03": tmp_path / "prior", "own": tmp_path / "prior", "k2": tmp_path / "prior",
                 "jump": tmp_path / "prior"}, tmp_path / "grid.png", n=2, sampling=sampling)
    config = IGRModel.from_pretrained(tmp_path / "prior").config
    plain = dict(jump=None, guidance_below=None, jump_noises=[], cond=None)
    assert seen[0] == dict(steps=4, guidance_scale=1.5, sampler="ddim", strength=0.3, seed=0, **plain)
    assert seen[1] == dict(steps=config.sample_steps, guidance_scale=config.guidance_scale, sampler=config.sampler,
                           strength=1.0, seed=0, **plain)
    assert [kw["seed"] for kw in seen[2:4]] == [0, 1]                       # k2: the mean of two seeds' restores
    assert seen[4]["jump"] == 0.3 and seen[4]["guidance_below"] == 299 and len(seen) == 5
    assert [n.shape for n in seen[4]["jump_noises"]] == [(2, 4, 8, 6)] * 2  # two more estimates at T
    assert (tmp_path / "grid.png").is_file()


def test_curves_count_the_pairs_each_run_has_seen(tmp_path):
    from igr.compare import global_batch

    assert global_batch(tmp_path) == 16                     # no stage.json: the stages' batch here
    (tmp_path / "stage.json").write_text(json.dumps({"stage": {"batch": 64, "grad_accum": 2}, "processes": 2}))
    assert global_batch(tmp_path) == 256


def test_a_run_started_from_another_continues_its_curve(tmp_path):
    """abl-c2f's fine stage starts from abl-both/final: its points sit after the pairs abl-both saw, and its line
    is abl-both's continued, not a line starting again at zero."""
    from igr.compare import curve_points

    def run(name, rows, **meta):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "stage.json").write_text(json.dumps({"stage": {"batch": 16}, **meta}))
        return folder

    coarse = run("coarse", [{"step": 10, "loss": 1.0}, {"step": 50, "val_ssim": 0.2},
                            {"step": 100, "val_ssim": 0.3}, {"step": 110, "loss": 0.5}])
    fine = run("fine", [{"step": 25, "val_ssim": 0.35}, {"step": 50, "val_ssim": 0.4}], init=f"{coarse}/final")
    finer = run("finer", [{"step": 10, "val_ssim": 0.5}], init=str(fine))
    assert [(x, r["val_ssim"]) for x, r in curve_points(coarse)] == [(0.8, 0.2), (1.6, 0.3)]
    # the coarse run logged 110 steps of 16 pairs (1.76 k) before the fine one began
    assert [(round(x, 3), r["val_ssim"]) for x, r in curve_points(fine)] == [(0.8, 0.2), (1.6, 0.3), (2.16, 0.35), (2.56, 0.4)]
    assert [(round(x, 3), r["val_ssim"]) for x, r in curve_points(finer)][-2:] == [(2.56, 0.4), (2.72, 0.5)]
    lone = run("lone", [{"step": 5, "val_ssim": 0.1}], init=str(tmp_path / "gone" / "final"))
    assert [(x, r["val_ssim"]) for x, r in curve_points(lone)] == [(0.08, 0.1)]      # its init's log is not here
    a = run("a", [{"step": 5, "val_ssim": 0.1}], init=str(tmp_path / "b"))
    run("b", [{"step": 5, "val_ssim": 0.2}], init=str(a))                     # inits in a cycle: cut, not endless
    assert 1 < len(curve_points(a)) <= 9
