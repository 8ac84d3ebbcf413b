"""Many processes, one recipe: 2 CPU processes (gloo, through torchrun) train what 1 process trains at the same
global batch, and a checkpoint written by 2 processes resumes in 2 and in 1.

Tolerance: the same pairs and random draws reach both runs (`igr.model.Rows`); what differs is the order of float32
sums (DDP averages two half-batch gradients, one process one full batch), so losses agree to 1e-5 relative and
weights after 4 AdamW steps to 5e-4 absolute (measured: 2e-7 and 1.1e-5 on an AVX-512 Xeon; the weights 1.6e-4 on an
AVX2-only EPYC, whose float32 kernels sum in another order)."""
import shutil
from pathlib import Path

import pytest

from igr.model import IGRModel
from igr.train.trainer import CHECKPOINT, FINAL, Trainer, build_model
from tests.igr.ddp_run import (LOSS_RTOL, STEPS, WEIGHT_ATOL, config, logged, max_diff, one_process_run,
                               resume_in_one_process, torchrun_two)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """The 2-process run of ddp_run.py: OUT/run (2 steps, samples, checkpoint, resume to 4), OUT/copy (step 2) and
    OUT/sampled-by-RANK."""
    return torchrun_two("ddp_run.py", tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    return one_process_run(tmp_path_factory.mktemp("one"))


def test_two_processes_follow_the_one_process_loss_trajectory(two_processes, one_process):
    two, one = logged(two_processes / "run"), logged(one_process)
    assert len(two) == len(one) == STEPS, "rank 0 alone writes the log, each step once (across the resume too)"
    assert two == pytest.approx(one, rel=LOSS_RTOL)
    assert len(set(one)) == STEPS, "the losses move, so agreeing means something"
    final = IGRModel.from_pretrained(two_processes / "run" / FINAL).state_dict()
    assert max_diff(final, IGRModel.from_pretrained(one_process / FINAL).state_dict()) < WEIGHT_ATOL
    assert not [p.name for p in (two_processes / "run").iterdir() if p.name.startswith(".")], "temporary files left"


def test_rank_0_alone_writes_samples(two_processes):
    assert [p.name for p in (two_processes / "run" / "samples").iterdir()] == ["step_000002.png"]
    assert sorted(p.name for p in two_processes.glob("sampled-by-*")) == ["sampled-by-0"]
    assert (two_processes / "sampled-by-0").read_text() == "2\n", "at step 2, in the loop; not again at the end"


def test_a_two_process_checkpoint_resumes_in_one_process(two_processes, one_process, tmp_path):
    resume_in_one_process(two_processes, one_process, tmp_path)


def test_resume_refuses_another_global_batch(two_processes, tmp_path):
    shutil.copytree(two_processes / "copy", tmp_path / "run")
    trainer = Trainer(build_model("tiny", None, 0), config(1), tmp_path / "run")      # 1 process x 1: half of it
    with pytest.raises(ValueError, match=r"global batch \(processes x batch x grad_accum\): 2 -> 1"):
        trainer.load_checkpoint(tmp_path / "run" / CHECKPOINT)


def test_gradient_accumulation_equals_the_larger_batch(one_process, tmp_path):
    Trainer(build_model("tiny", None, 0), config(1, grad_accum=2), tmp_path).run(progress=False)
    assert logged(tmp_path) == pytest.approx(logged(one_process), rel=LOSS_RTOL)
    final = IGRModel.from_pretrained(tmp_path / FINAL).state_dict()
    assert max_diff(final, IGRModel.from_pretrained(one_process / FINAL).state_dict()) < WEIGHT_ATOL


def test_shipped_accelerate_configs_name_their_layout():
    import yaml

    folder = REPO / "configs" / "accelerate"
    configs = {p.stem: yaml.safe_load(p.read_text()) for p in folder.glob("*.yaml")}
    assert set(configs) >= {"1gpu", "8gpu", "fsdp", "2nodes"}
    assert configs["1gpu"]["num_processes"] == 1 and configs["1gpu"]["distributed_type"] == "NO"
    assert configs["8gpu"]["num_processes"] == 8 and configs["8gpu"]["distributed_type"] == "MULTI_GPU"
    assert configs["fsdp"]["distributed_type"] == "FSDP"
    two = configs["2nodes"]
    assert two["num_machines"] == 2 and two["num_processes"] == 16 and "main_process_ip" in two
    for name, c in configs.items():
        assert c.get("mixed_precision") == "bf16", name       # what the sd15 stage preset trains in
