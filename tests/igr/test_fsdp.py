"""The model sharded (FSDP2, configs/accelerate/fsdp.yaml): 2 CPU processes (gloo, through torchrun) train what 1
process trains at the same global batch, and a checkpoint written under FSDP resumes under FSDP and in 1 process.

Tolerance: as for DDP (test_distributed.py), the same pairs and random draws reach both runs; what differs is the order
of float32 sums (reduce-scattered half-batch gradients, a clip norm summed shard by shard), so losses and gradient
norms agree to 1e-5 relative and weights after 4 AdamW steps to 1e-4 absolute."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from igr.model import IGRModel
from igr.train.config import StageConfig
from igr.train.trainer import CHECKPOINT, FINAL, _check_sharding, build_model
from tests.igr.ddp_run import (STEPS, config, logged, max_diff, one_process_run, resume_in_one_process,
                                torchrun_two)
from tests.igr.fsdp_run import fsdp_env

REPO = Path(__file__).resolve().parents[2]
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    """fsdp_run.py in 2 processes: OUT/run (2 steps, checkpoint, resume to 4), OUT/copy (step 2), OUT/compact."""
    return torchrun_two("fsdp_run.py", tmp_path_factory.mktemp("fsdp"), fsdp_env())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    return one_process_run(tmp_path_factory.mktemp("one"))


def test_fsdp_follows_the_one_process_loss_trajectory(sharded, one_process):
    two, one = logged(sharded / "run", "loss"), logged(one_process, "loss")
    assert len(two) == len(one) == STEPS, "rank 0 alone writes the log, each step once (across the resume too)"
    assert two == pytest.approx(one, rel=LOSS_RTOL)
    assert len(set(one)) == STEPS, "the losses move, so agreeing means something"
    assert logged(sharded / "run", "grad_norm") == pytest.approx(logged(one_process, "grad_norm"), rel=LOSS_RTOL)
    final = IGRModel.from_pretrained(sharded / "run" / FINAL).state_dict()         # whole weights, gathered
    assert max_diff(final, IGRModel.from_pretrained(one_process / FINAL).state_dict()) < WEIGHT_ATOL
    assert [p.name for p in (sharded / "run" / "samples").iterdir()] == ["step_000002.png"]
    assert not [p.name for p in (sharded / "run").iterdir() if p.name.startswith(".")], "temporary files left"


def test_the_compact_checkpoint_holds_the_gathered_ema(sharded):
    meta = json.loads((sharded / "compact" / "trainer.json").read_text())
    assert meta["step"] == 2 and meta["processes"] == 2
    compact = IGRModel.from_pretrained(sharded / "compact" / "ema").state_dict()
    full = IGRModel.from_pretrained(sharded / "copy" / CHECKPOINT / "ema").state_dict()
    assert max_diff(compact, {k: v.half().float() for k, v in full.items()}) == 0    # the EMA at step 2, in fp16
    init = build_model("tiny", None, 0).state_dict()
    moved = {k for k, v in full.items() if not torch.equal(v, init[k])}
    assert moved, "two steps moved the EMA, so agreeing with it means something"


def test_an_fsdp_checkpoint_resumes_in_one_process(sharded, one_process, tmp_path):
    resume_in_one_process(sharded, one_process, tmp_path)


def _accelerator(kind: str = "FSDP", **plugin):
    from torch.distributed.fsdp import OffloadPolicy

    settings = dict(fsdp_version=2, cpu_offload=OffloadPolicy(), ignored_modules=None, activation_checkpointing=False)
    return SimpleNamespace(distributed_type=SimpleNamespace(value=kind),
                           state=SimpleNamespace(fsdp_plugin=SimpleNamespace(**{**settings, **plugin})))


@pytest.mark.parametrize("kind, plugin, stage, match", [
    ("DEEPSPEED", {}, "coarse", "DEEPSPEED: not supported"),
    ("FSDP", {"fsdp_version": 1}, "coarse", "FSDP version 1"),
    ("FSDP", {"cpu_offload": "cpu"}, "coarse", "fsdp_offload_params"),
    ("FSDP", {"ignored_modules": "x"}, "coarse", "fsdp_ignored_modules"),
    ("FSDP", {"activation_checkpointing": True}, "coarse", "--gradient-checkpointing"),
    ("FSDP", {}, "vae", "diffusion stages"),
])
def test_unsupported_sharding_is_refused_by_name(kind, plugin, stage, match):
    from torch.distributed.fsdp import CPUOffloadPolicy

    if plugin.get("cpu_offload") == "cpu":
        plugin["cpu_offload"] = CPUOffloadPolicy()
    with pytest.raises(NotImplementedError, match=match):
        _check_sharding(_accelerator(kind, **plugin), StageConfig.preset(stage, "tiny"), asked=True)
    _check_sharding(_accelerator("FSDP"), config(1), asked=True)                    # FSDP2 as shipped: accepted


def test_fsdp_asked_for_on_cpus_is_refused(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(NotImplementedError, match="GPUs"):
        _check_sharding(_accelerator("MULTI_CPU"), config(1), asked=True)
    _check_sharding(_accelerator("MULTI_CPU"), config(1), asked=False)             # an accelerator given: its own


def test_an_fsdp_run_trains_from_a_latent_cache(sharded):
    """The cache's digests of the frozen parts are read before FSDP shards them (after, they are DTensors)."""
    assert (sharded / "cache" / "meta.json").is_file() and len(logged(sharded / "cached")) == 2
    assert IGRModel.from_pretrained(sharded / "cached" / FINAL) is not None
