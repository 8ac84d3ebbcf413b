"""scripts/pooled-fd.py: FD_garm on the union of two splits' evaluations, paired against one model; evaluations of
other pairs are refused; a stem with a dot in it ("...-g1.5") is a stem, not a suffix."""
from pathlib import Path

import numpy as np
import pytest
import torch

from igr.metrics import frechet_distance
from tests.script_module import script_main


def _main():
    return script_main("pooled-fd.py")


def _write(stem: Path, real: np.ndarray, fake: np.ndarray) -> str:
    np.savez(f"{stem}.features.npz", real=real, fake=fake)            # OUT.features.npz, as igr.eval writes it
    return str(stem)


def test_pooled_fd_is_the_fd_of_the_union_and_a_worse_model_scores_above(tmp_path, capsys):
    rng = np.random.default_rng(0)
    real = [rng.normal(size=(200, 8)).astype(np.float32) for _ in range(2)]          # two splits
    fakes = {"ref": [r + 0.3 * rng.normal(size=r.shape).astype(np.float32) for r in real],
             "worse": [1.5 * r + 0.3 * rng.normal(size=r.shape).astype(np.float32) for r in real]}
    args = ["--against", "ref", "--boot", "50"]
    for name, parts in fakes.items():
        stems = [_write(tmp_path / f"{name}-{i}-g1.5", real[i], parts[i]) for i in range(2)]   # a dot in the stem
        args += ["--model", f"{name}={','.join(stems)}"]
    assert _main()(args) == 0
    out = capsys.readouterr().out
    union = torch.from_numpy(np.concatenate(real)).double()
    fd = {n: frechet_distance(union, torch.from_numpy(np.concatenate(p)).double()) for n, p in fakes.items()}
    assert out.startswith(f"400 pairs; FD_garm ref {fd['ref']:.3f}")
    row = next(line for line in out.splitlines() if line.startswith("| worse"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{fd['worse']:.3f}" and fd["worse"] > fd["ref"]
    diff, interval = cells[2].split(" ", 1)
    lo, hi = (float(x) for x in interval.strip("[]").split(","))
    assert float(diff) == pytest.approx(fd["worse"] - fd["ref"], abs=1e-3) and 0 < lo < hi


def test_evaluations_of_other_pairs_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(50, 4)).astype(np.float32) for _ in range(2))
    args = ["--against", "x", "--model", f"x={_write(tmp_path / 'x', a, a + 0.1)}",
            "--model", f"y={_write(tmp_path / 'y', b, b + 0.1)}"]
    with pytest.raises(SystemExit):
        _main()(args)
    for bad in (["--model", "x"], ["--model", f"x={tmp_path / 'nowhere'}"]):        # no NAME=, no features file
        with pytest.raises(SystemExit):
            _main()(["--against", "x", *bad])
