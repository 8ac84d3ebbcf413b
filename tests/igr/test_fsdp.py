"""The model sharded (FSDP2, configs/accelerate/fsdp.yaml): 2 CPU processes (gloo, through torchrun) train what 1
process trains at the same global batch, with and without gradient accumulation, in fp32 and in bf16 autocast, and a
checkpoint written under FSDP resumes under FSDP and in 1 process.

Tolerance: as for DDP (test_distributed.py), the same pairs and random draws reach both runs; what differs is the order
of float32 sums (reduce-scattered half-batch gradients, a clip norm summed shard by shard), so losses and gradient
norms agree to 1e-5 relative and weights after 4 AdamW steps to 5e-4 absolute (the weights 1.6e-4 apart on an
AVX2-only EPYC; measured on an AVX-512 Xeon: 2.1e-7, 8.2e-7, 1.1e-5;
with 2 accumulated micro-batches against 1 process at batch 4: 1.8e-7, 6.1e-7, 1.5e-5). In bf16 the first step agrees
to 1e-5 too (the same weights, the same autocast arithmetic on half the rows); after it, bf16 roundings of slightly
different sums compound: losses and gradient norms agree to 1e-2 relative (measured: 1.1e-3 and 2.9e-3; bf16 against
fp32 differs by 3.4e-3 at step 1). AdamW moves a weight by up to the learning rate whatever the size of its gradient, so
bf16 noise reaches single weights at the size of the update itself (largest difference 7.8e-4, largest move 5.9e-4):
the weights after 4 steps are compared as a share of the update's norm, within 0.1 (measured: 0.037; bf16 against
fp32: 0.19)."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from igr.model import IGRModel
from igr.train.config import StageConfig
from igr.train.trainer import CHECKPOINT, FINAL, _check_sharding, build_model
from tests.igr.ddp_run import (LOSS_RTOL, STEPS, WEIGHT_ATOL, config, logged, max_diff, one_process_run,
                               resume_in_one_process, torchrun_two)
from tests.igr.fsdp_run import fsdp_env

REPO = Path(__file__).resolve().parents[2]
BF16_RTOL, BF16_UPDATE_RTOL = 1e-2, 0.1


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    """fsdp_run.py in 2 processes: OUT/run (2 steps, checkpoint, resume to 4), OUT/copy (step 2), OUT/compact,
    OUT/cached, OUT/accum (grad_accum 2, 4 steps), OUT/bf16 (as OUT/run, in bf16)."""
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
    assert sorted(p.name for p in sharded.glob("sampled-by-*")) == ["sampled-by-0"], "rank 0 alone samples"
    assert not [p.name for p in (sharded / "run").iterdir() if p.name.startswith(".")], "temporary files left"


def test_fsdp_gradient_accumulation_follows_the_larger_batch(sharded, tmp_path_factory):
    """2 processes x batch 1 x grad_accum 2 train what 1 process trains at batch 4: the first micro-batch's gradients
    accumulate unsharded (accelerate's no_sync: FSDP2 without gradient sync), the last one's reduce-scatter the sum."""
    one = one_process_run(tmp_path_factory.mktemp("one4"), batch=4)
    accum = sharded / "accum"
    assert logged(accum) == pytest.approx(logged(one), rel=LOSS_RTOL)
    assert logged(accum, "grad_norm") == pytest.approx(logged(one, "grad_norm"), rel=LOSS_RTOL)
    assert logged(accum)[0] != pytest.approx(logged(sharded / "run")[0], rel=1e-3), "global batch 4, not 2"
    final = IGRModel.from_pretrained(accum / FINAL).state_dict()
    assert max_diff(final, IGRModel.from_pretrained(one / FINAL).state_dict()) < WEIGHT_ATOL


def test_fsdp_trains_in_bf16_as_one_process_does(sharded, one_process, tmp_path_factory):
    """bf16 under FSDP is autocast over fp32 weights, as in 1 process (the trainer replaces accelerate's FSDP2 policy
    of bf16 parameters and reduction, which fsdp_run.py's accelerator carries, as a GPU launch's does); the run
    passes a checkpoint at step 2 and resumes from it."""
    one = one_process_run(tmp_path_factory.mktemp("one_bf16"), mixed_precision="bf16")
    two = logged(sharded / "bf16")
    assert len(two) == STEPS and all(map(math.isfinite, two))
    assert two[0] == pytest.approx(logged(one)[0], rel=LOSS_RTOL), "step 1: the same weights, the same arithmetic"
    assert logged(one)[0] != pytest.approx(logged(one_process)[0], rel=1e-3), "autocast is on: bf16 is not fp32"
    assert two == pytest.approx(logged(one), rel=BF16_RTOL)
    assert logged(sharded / "bf16", "grad_norm") == pytest.approx(logged(one, "grad_norm"), rel=BF16_RTOL)
    final = IGRModel.from_pretrained(sharded / "bf16" / FINAL).state_dict()
    assert {v.dtype for v in final.values()} == {torch.float32}, "bf16 computes; the weights stay fp32"
    init = build_model("tiny", None, 0).state_dict()
    assert _off_the_update(final, IGRModel.from_pretrained(one / FINAL).state_dict(), init) < BF16_UPDATE_RTOL
    fp32 = IGRModel.from_pretrained(one_process / FINAL).state_dict()
    assert _off_the_update(fp32, IGRModel.from_pretrained(one / FINAL).state_dict(), init) > BF16_UPDATE_RTOL, \
        "the bound tells bf16 from fp32"


def _off_the_update(a: dict, b: dict, init: dict) -> float:
    """|a - b| / |b - init| over all weights: how far `a` is from `b`, as a share of how far `b` moved."""
    diff = torch.cat([(a[k].float() - b[k].float()).flatten() for k in b])
    update = torch.cat([(b[k].float() - init[k].float()).flatten() for k in b])
    return (diff.norm() / update.norm()).item()


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
