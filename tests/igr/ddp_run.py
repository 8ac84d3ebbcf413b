"""Run under `torchrun --standalone --nproc_per_node 2 tests/igr/ddp_run.py OUT` (test_distributed.py does): the tiny
coarse stage at batch 1 per process, 2 steps to a checkpoint, a copy of it for a 1-process resume, then a resume in
the same 2 processes to step 4. Gradient checkpointing on, to show it under DDP too."""
import shutil
import sys
from pathlib import Path

import torch

from igr.train.config import StageConfig
from igr.train.trainer import CHECKPOINT, Trainer, build_model

STEPS = 4


def config(batch: int, **changes) -> StageConfig:
    return StageConfig.preset("coarse", "tiny", steps=STEPS, batch=batch, log_every=1, checkpoint_every=0, **changes)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    cfg = config(1, gradient_checkpointing=True)
    first = Trainer(build_model("tiny", None, 0), cfg, out / "run")
    if first.acc.num_processes != 2:
        raise SystemExit(f"expected 2 processes, got {first.acc.num_processes}")
    first.run(until=2, progress=False)                     # the checkpoint holds step 2
    if first.acc.is_main_process:
        shutil.copytree(out / "run" / CHECKPOINT, out / "copy" / CHECKPOINT)
    first.acc.wait_for_everyone()
    second = Trainer(build_model("tiny", None, 1), cfg, out / "run")
    second.load_checkpoint(out / "run" / CHECKPOINT)
    second.run(progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
