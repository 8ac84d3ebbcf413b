"""scripts/pair-first.py: a small evaluation paired with the first items of a larger one."""
import json

import numpy as np

from tests.script_module import script_main


def _report(folder, name, cats, ssim, real, fake, split="test"):
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"split": split, "metrics": {"per_sample": {
        "category": cats, "ssim_mask": ssim, "mask_iou": [0.8] * len(cats)}}}))
    np.savez(folder / f"{name}.features.npz", real=real, fake=fake)
    return path


def test_the_first_items_pair_and_other_items_are_refused(tmp_path, capsys):
    main = script_main("pair-first.py")
    rng = np.random.default_rng(0)
    cats = ["skirt", "tee", "dress", "hoodie"] * 4
    real = rng.normal(size=(16, 4))
    ref = _report(tmp_path, "ref", cats, [0.4] * 8 + [0.9] * 8, real, real + rng.normal(size=(16, 4)))
    small = _report(tmp_path, "small", cats[:8], [0.5] * 8, real[:8], real[:8] + 0.01)
    out = tmp_path / "t.md"
    assert main(["--ref", f"r={ref}", "--eval", f"s={small}", "--boot", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # the reference's first 8 items score 0.4 (its mean over all 16 is 0.65): the difference is +0.1 exactly
    assert "| s | 8 | ssim_mask | 0.4000 | 0.5000 | +0.1000 [+0.1000, +0.1000] |" in text
    assert "| s | 8 | mask_iou | 0.8000 | 0.8000 | +0.0000" in text
    fd_row = next(line for line in text.splitlines() if "fd_garm" in line)
    assert float(fd_row.split("|")[6].split()[0]) < 0          # nearly the truth's features: a lower FD
    assert out.read_text().count("| s | 8 |") == 3 and "Command: `python scripts/pair-first.py" in out.read_text()

    shuffled = _report(tmp_path, "shuffled", cats[1:9], [0.5] * 8, real[1:9], real[1:9])
    assert main(["--ref", f"r={ref}", "--eval", f"x={shuffled}"]) == 2
    assert "does not hold the first 8 items" in capsys.readouterr().err
    other_truth = _report(tmp_path, "other", cats[:8], [0.5] * 8, real[:8] + 1, real[:8])
    assert main(["--ref", f"r={ref}", "--eval", f"x={other_truth}"]) == 2
    assert "ground-truth features differ" in capsys.readouterr().err
