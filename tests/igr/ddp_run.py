"""Run under `torchrun --standalone --nproc_per_node 2 tests/igr/ddp_run.py OUT` (test_distributed.py does): the tiny
coarse stage at batch 1 per process, 2 steps to a checkpoint (and samples at step 2), a copy of it for a 1-process
resume, then a resume in the same 2 processes to step 4. Gradient checkpointing on, to show it under DDP too. Each
process notes its samples in OUT/sampled-by-RANK (one step a line)."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from igr.train.config import StageConfig
from igr.train.trainer import CHECKPOINT, Trainer, build_model

STEPS = 4
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 5e-4   # one process against many (test_distributed.py's docstring)
REPO = Path(__file__).resolve().parents[2]


def config(batch: int, **changes) -> StageConfig:
    return StageConfig.preset("coarse", "tiny", steps=STEPS, batch=batch, log_every=1, checkpoint_every=0, **changes)


# -- shared by test_distributed.py and test_fsdp.py -------------------------------------------------------------------
def logged(run: Path, key: str = "loss") -> list[float]:
    """`key` of every training row of a run's log."""
    return [r[key] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def torchrun_two(script: str, out: Path, env: dict[str, str] | None = None) -> Path:
    """`torchrun --standalone --nproc_per_node 2 tests/igr/SCRIPT OUT`, one thread a process; fails with its stderr."""
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(REPO / "tests/igr" / script),
                           str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def resume_in_one_process(many: Path, one: Path, tmp: Path) -> None:
    """The step-2 checkpoint of a 2-process run (MANY/copy) resumed in 1 process at the same global batch ends where
    the 1-process run (ONE) and the 2-process run itself (MANY/run) end."""
    from igr.model import IGRModel
    from igr.train.trainer import FINAL

    run = tmp / "run"
    shutil.copytree(many / "copy", run)
    meta = json.loads((run / CHECKPOINT / "trainer.json").read_text())
    assert meta["step"] == 2 and meta["processes"] == 2
    trainer = Trainer(build_model("tiny", None, 5), config(2), run)   # same global batch: 1 process x 2
    trainer.load_checkpoint(run / CHECKPOINT)
    trainer.run(progress=False)
    resumed = IGRModel.from_pretrained(run / FINAL).state_dict()
    for other in (one, many / "run"):
        assert max_diff(resumed, IGRModel.from_pretrained(other / FINAL).state_dict()) < WEIGHT_ATOL, other


def one_process_run(out: Path, batch: int = 2, **changes) -> Path:
    """1 process at a 2-process run's global batch (batch 2 for batch 1 each), STEPS steps straight. In bf16 from a
    new accelerate state, forgotten again after (accelerate keeps one mixed-precision setting per process)."""
    from accelerate.state import AcceleratorState

    fresh = changes.get("mixed_precision", "no") != "no"
    if fresh:
        AcceleratorState._reset_state()
    try:
        Trainer(build_model("tiny", None, 0), config(batch, **changes), out).run(progress=False)
    finally:
        if fresh:
            AcceleratorState._reset_state()
    return out


def note_samples(trainer: Trainer, out: Path) -> None:
    """Append the step to OUT/sampled-by-RANK whenever `trainer` writes samples."""
    write = trainer.write_samples

    def noted(*args, **kwargs):
        with open(out / f"sampled-by-{trainer.acc.process_index}", "a") as f:
            f.write(f"{trainer.step}\n")
        return write(*args, **kwargs)

    trainer.write_samples = noted


def main(out: Path) -> None:
    torch.set_num_threads(1)
    cfg = config(1, gradient_checkpointing=True)
    first = Trainer(build_model("tiny", None, 0), dataclasses.replace(cfg, sample_every=2), out / "run")
    note_samples(first, out)
    if first.acc.num_processes != 2:
        raise SystemExit(f"expected 2 processes, got {first.acc.num_processes}")
    first.run(until=2, progress=False)                     # the checkpoint holds step 2
    if first.acc.is_main_process:
        shutil.copytree(out / "run" / CHECKPOINT, out / "copy" / CHECKPOINT)
    first.acc.wait_for_everyone()
    second = Trainer(build_model("tiny", None, 1), cfg, out / "run")
    note_samples(second, out)
    second.load_checkpoint(out / "run" / CHECKPOINT)
    second.run(progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
