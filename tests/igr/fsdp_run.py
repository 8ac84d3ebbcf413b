"""Run under `torchrun --standalone --nproc_per_node 2 tests/igr/fsdp_run.py OUT` with the FSDP settings of
configs/accelerate/fsdp.yaml in the environment (`fsdp_env`, as `accelerate launch` sets them; test_fsdp.py does):
ddp_run.py's run (tiny coarse stage, batch 1 per process, 2 steps to a checkpoint, a copy of it, resume to step 4)
with the model sharded by FSDP2 on CPUs (gloo); the first part also writes samples and a compact checkpoint
(OUT/compact); then 2 steps from a latent cache (OUT/cached); 4 steps of 2 accumulated micro-batches (OUT/accum,
global batch 4); and the first run again in bf16 (OUT/bf16: 2 steps, checkpoint, resume to step 4).

accelerate 1.15 turns FSDP on for GPUs only (AcceleratorState leaves a CPU run MULTI_CPU, its FSDP plugin unused),
so this script builds the accelerator itself and sets its distributed type to FSDP: what follows (accelerate's
`_prepare_fsdp2`, `fully_shard`, the trainer) is the code path a GPU run takes, on gloo."""
import dataclasses
import shutil
import sys
from pathlib import Path

import torch
import yaml

from igr.train.trainer import CHECKPOINT, Trainer, build_model
from tests.igr.ddp_run import config, note_samples

REPO = Path(__file__).resolve().parents[2]


def fsdp_env() -> dict[str, str]:
    """The environment `accelerate launch --config_file configs/accelerate/fsdp.yaml` gives its processes."""
    fsdp = yaml.safe_load((REPO / "configs/accelerate/fsdp.yaml").read_text())["fsdp_config"]
    text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
    return {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": text(fsdp["fsdp_version"]),
            "FSDP_AUTO_WRAP_POLICY": fsdp["fsdp_auto_wrap_policy"],
            "FSDP_TRANSFORMER_CLS_TO_WRAP": fsdp["fsdp_transformer_layer_cls_to_wrap"],
            "FSDP_STATE_DICT_TYPE": fsdp["fsdp_state_dict_type"],
            **{f"FSDP_{k.upper()}": text(fsdp[f"fsdp_{k}"]) for k in
               ("offload_params", "reshard_after_forward", "cpu_ram_efficient_loading", "activation_checkpointing")}}


def fsdp_accelerator(mixed_precision: str = "no"):
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()           # from the FSDP_* environment
    if mixed_precision != "no":           # as AcceleratorState does on GPUs: bf16 parameters, reduction and inputs
        plugin.set_mixed_precision(mixed_precision)
    acc = Accelerator(cpu=True, mixed_precision=mixed_precision, fsdp_plugin=plugin)
    # both shared states: AcceleratorState copies PartialState's each time it is constructed again
    PartialState().distributed_type = acc.state.distributed_type = DistributedType.FSDP
    acc.state.fsdp_plugin = plugin
    return acc


def main(out: Path) -> None:
    torch.set_num_threads(1)
    cfg = config(1, gradient_checkpointing=True)
    acc = fsdp_accelerator()
    if acc.num_processes != 2 or not acc.is_fsdp2:
        raise SystemExit(f"expected 2 FSDP2 processes, got {acc.num_processes} {acc.distributed_type}")
    # samples at step 2 and a compact checkpoint beside the full one: both gather the sharded EMA first
    first = Trainer(build_model("tiny", None, 0), dataclasses.replace(cfg, sample_every=2), out / "run",
                    accelerator=acc)
    first.compact_to = (out / "compact", None)
    note_samples(first, out)
    first.run(until=2, progress=False)                     # the checkpoints hold step 2
    if acc.is_main_process:
        shutil.copytree(out / "run" / CHECKPOINT, out / "copy" / CHECKPOINT)
    acc.wait_for_everyone()
    second = Trainer(build_model("tiny", None, 1), cfg, out / "run", accelerator=acc)
    second.load_checkpoint(out / "run" / CHECKPOINT)
    second.run(progress=False)
    # then 2 steps from a latent cache (OUT/cached): the cache's frozen-part digests under sharding
    from igr.train.cache import build

    if acc.is_main_process:
        build(build_model("tiny", None, 0), out / "cache", sizes=[cfg.size], n=4, batch=4, workers=0, progress=False)
    acc.wait_for_everyone()
    cached = dataclasses.replace(cfg, steps=2, cache=str(out / "cache"), low_res_fraction=0)
    Trainer(build_model("tiny", None, 0), cached, out / "cached", accelerator=acc).run(progress=False)
    # gradient accumulation: 2 processes x batch 1 x 2 micro-batches, a global batch of 4
    accum = dataclasses.replace(cfg, grad_accum=2)
    Trainer(build_model("tiny", None, 0), accum, out / "accum", accelerator=acc).run(progress=False)
    # bf16: accelerate keeps one mixed-precision setting per process; a new state (the process group stays)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    acc = fsdp_accelerator("bf16")
    if acc.state.fsdp_plugin.mixed_precision_policy.param_dtype != torch.bfloat16 or not acc.native_amp:
        raise SystemExit(f"expected accelerate's bf16 FSDP2 policy, got {acc.state.fsdp_plugin.mixed_precision_policy}")
    bf16 = dataclasses.replace(cfg, mixed_precision="bf16")
    Trainer(build_model("tiny", None, 0), bf16, out / "bf16", accelerator=acc).run(until=2, progress=False)
    resumed = Trainer(build_model("tiny", None, 1), bf16, out / "bf16", accelerator=acc)
    resumed.load_checkpoint(out / "bf16" / CHECKPOINT)
    resumed.run(progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
