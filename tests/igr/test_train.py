"""The trainer: exact resume, atomic checkpoints, what each stage trains, the stage recipes."""
import json

import pytest
import torch

from igr.train.config import StageConfig
from igr.train.trainer import CHECKPOINT, Trainer, biased_timesteps, build_model, learning_rate
from igr.train.__main__ import main as train_main


def _weights(trainer):
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    if trainer.ema is not None:
        state.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    return state


@pytest.mark.parametrize("stage", ["coarse", "vae"])
def test_resume_is_bit_exact(tmp_path, stage):
    cfg = StageConfig.preset(stage, "tiny", steps=4, checkpoint_every=0, log_every=1)
    straight = Trainer(build_model("tiny", None, 0), cfg, tmp_path / "straight")
    straight.run(progress=False)

    first = Trainer(build_model("tiny", None, 0), cfg, tmp_path / "split")
    first.run(until=2, progress=False)
    first.save_checkpoint()
    second = Trainer(build_model("tiny", None, 1), cfg, tmp_path / "split")   # other init: the checkpoint rules
    second.load_checkpoint(tmp_path / "split" / CHECKPOINT)
    second.run(progress=False)

    a, b = _weights(straight), _weights(second)
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, differing[:5]
    untrained = _weights(Trainer(build_model("tiny", None, 0), cfg, tmp_path / "x"))
    trained = [k for k in a if not torch.equal(a[k], untrained[k])]
    assert trained, "training changed nothing, so the comparison proves nothing"
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4], "the log holds each step once after a resume"


def test_checkpoint_is_written_atomically_and_refuses_another_stage(tmp_path):
    cfg = StageConfig.preset("coarse", "tiny", steps=2, checkpoint_every=1)
    trainer = Trainer(build_model("tiny", None, 0), cfg, tmp_path)
    trainer.run(progress=False)
    assert sorted(p.name for p in (tmp_path / CHECKPOINT).iterdir()) == ["ema", "model", "state.safetensors",
                                                                         "trainer.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    other = Trainer(build_model("tiny", None, 0), StageConfig.preset("hqft", "tiny"), tmp_path / "o")
    with pytest.raises(ValueError, match="is a 'coarse' checkpoint"):
        other.load_checkpoint(tmp_path / CHECKPOINT)


def test_each_stage_trains_only_its_modules(tmp_path):
    for stage, moved, frozen in [("vae", ["vae"], ["garmnet", "denoiser", "image_encoder"]),
                                 ("encoder", ["image_encoder"], ["vae", "garmnet", "denoiser"]),
                                 ("coarse", ["garmnet", "denoiser"], ["vae"])]:
        model = build_model("tiny", None, 0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        Trainer(model, StageConfig.preset(stage, "tiny", steps=2, checkpoint_every=0), tmp_path / stage) \
            .run(progress=False)
        after = model.state_dict()
        changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
        assert set(moved) <= changed and not set(frozen) & changed, (stage, changed)
        if stage == "coarse":
            assert not any(k.startswith("image_encoder.clip") and not torch.equal(before[k], after[k]) for k in before)


def test_stage_recipes_follow_the_paper():
    coarse, hqft = StageConfig.preset("coarse"), StageConfig.preset("hqft")
    assert coarse.size_at(0) == (128, 96) and coarse.size_at(coarse.steps - 1) == (256, 192)
    assert hqft.size_at(0) == (256, 192) and hqft.min_quality is not None and hqft.lr < coarse.lr
    g = torch.Generator().manual_seed(0)
    high = biased_timesteps(4000, coarse, 1000, g).float().mean()
    low = biased_timesteps(4000, hqft, 1000, g).float().mean()
    assert high > 600 and low < 400


def test_learning_rate_warms_up_then_decays():
    cfg = StageConfig.preset("coarse", steps=1000, warmup=100, lr=1e-3)
    assert learning_rate(cfg, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 99) == pytest.approx(1e-3)
    assert learning_rate(cfg, 999) == pytest.approx(1e-4, rel=0.01)


def test_vae_stage_sets_the_latent_scale_and_the_cli_chains_stages(tmp_path):
    assert train_main(["--stage", "vae", "--preset", "tiny", "--out", str(tmp_path / "vae")]) == 0
    final = json.loads((tmp_path / "vae" / "final" / "config.json").read_text())
    assert final["vae"]["scaling_factor"] != 1.0
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path / "coarse"),
                       "--init", str(tmp_path / "vae" / "final")]) == 0
    chained = json.loads((tmp_path / "coarse" / "final" / "config.json").read_text())
    assert chained["vae"]["scaling_factor"] == final["vae"]["scaling_factor"]
    assert (tmp_path / "coarse" / "loss.png").stat().st_size > 1000


def test_decoder_stage_changes_only_the_decoder_of_a_trained_model(tmp_path, capsys):
    from safetensors.torch import load_file

    assert train_main(["--stage", "vae", "--preset", "tiny", "--out", str(tmp_path / "vae")]) == 0
    init = tmp_path / "vae" / "final"
    assert train_main(["--stage", "decoder", "--preset", "tiny", "--out", str(tmp_path / "dec"),
                       "--init", str(init), "--lr", "1e-2"]) == 0
    before, after = load_file(init / "vae.safetensors"), load_file(tmp_path / "dec" / "final" / "vae.safetensors")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed)
    assert any(k.startswith("decoder.") for k in changed)
    old, new = (json.loads((d / "config.json").read_text()) for d in (init, tmp_path / "dec" / "final"))
    assert new["vae"] == old["vae"]                     # the latent scale, so a trained denoiser's latents, stay
    rows = [json.loads(line) for line in (tmp_path / "dec" / "log.jsonl").read_text().splitlines()]
    assert {"l1", "edge", "psnr"} <= rows[-1].keys()
    # a decoder needs a trained model to fine-tune
    assert train_main(["--stage", "decoder", "--preset", "small", "--out", str(tmp_path / "none")]) == 2
    assert "give --init" in capsys.readouterr().err


def test_cli_refuses_to_clobber_or_to_resume_nothing(tmp_path, capsys):
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path), "--resume"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path)]) == 2
    assert "already has a checkpoint" in capsys.readouterr().err
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path), "--resume"]) == 0


def test_regression_baseline_trains_on_the_vae_stage_vae_and_evaluates(tmp_path):
    from igr.eval import main as eval_main

    assert train_main(["--stage", "vae", "--preset", "tiny", "--out", str(tmp_path / "vae")]) == 0
    vae = tmp_path / "vae" / "final"
    assert train_main(["--stage", "baseline", "--preset", "tiny", "--out", str(tmp_path / "base"),
                       "--init", str(vae)]) == 0
    from igr.baseline import RegressionModel
    from igr.model import IGRModel

    base = RegressionModel.from_pretrained(tmp_path / "base" / "final")
    igr_vae = IGRModel.from_pretrained(vae).vae.state_dict()
    assert all(torch.equal(v, base.vae.state_dict()[k]) for k, v in igr_vae.items()), "the baseline's VAE stays frozen"
    assert eval_main(["--model", str(tmp_path / "base" / "final"), "--n", "2", "--batch", "2", "--boot", "10",
                      "--features", str(vae), "--out", str(tmp_path / "report")]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["sampling"] == "one regression forward"


def test_bf16_autocast_trains(tmp_path):
    # its own process: accelerate keeps one mixed-precision setting per process
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "igr.train", "--stage", "coarse", "--preset", "tiny", "--bf16",
                          "--steps", "2", "--out", str(tmp_path)], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "stage.json").read_text())["stage"]["mixed_precision"] == "bf16"
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(x)) for x in losses)


def test_validation_rows_feed_the_learning_curve(tmp_path):
    cfg = StageConfig.preset("coarse", "tiny", steps=2, eval_every=1, checkpoint_every=2)
    Trainer(build_model("tiny", None, 0), cfg, tmp_path).run(progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val_ssim" in r]
    assert [r["step"] for r in val] == [1, 2] and all(-1 <= r["val_ssim"] <= 1 for r in val)
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_latent_cache_matches_the_image_path_and_trains(tmp_path):
    """A cached step computes the same loss as the step that encodes images itself; a stale cache is refused."""
    from igr.data import SynthGarmentDataset
    from igr.train.cache import LatentCache, build, main as cache_main

    model = build_model("tiny", None, 0)
    cfg = StageConfig.preset("coarse", "tiny", steps=5)
    assert cfg.size_at(0) == cfg.low_res and cfg.size_at(cfg.steps - 1) == cfg.size
    folder = build(model, tmp_path / "cache", sizes=[cfg.low_res, cfg.size], n=6, batch=4, workers=0, progress=False)
    cache = LatentCache(folder, cfg.size)
    data = SynthGarmentDataset("train", 6, size=cfg.size)
    items = [data[i] for i in range(3)]
    person, garment = (torch.stack([it[k] for it in items]) for k in ("person", "garment"))
    rows = torch.tensor([cache.position(i, 0) for i in range(6)])
    assert sorted(rows.tolist()) == list(range(6)), "one pass visits every cached pair once"
    with torch.no_grad():
        direct = model.diffusion_loss(person, garment, generator=torch.Generator().manual_seed(0))
        zp, z0 = model.encode(person), model.encode(garment)
        cached = model.diffusion_loss_from(zp.half().float(), model.image_encoder.embed(person), z0.half().float(),
                                           generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cache.rows["person_latent"][:3].float(), zp.half().float())
    assert cached.item() == pytest.approx(direct.item(), rel=1e-2)        # fp16 latents: close, not equal

    trainer = Trainer(model, StageConfig.preset("coarse", "tiny", cache=str(folder), steps=5), tmp_path / "run")
    result = trainer.run(progress=False)
    assert result.step == 5 and result.final is not None and torch.isfinite(torch.tensor(result.last_loss))

    other = build_model("tiny", None, 1)          # other VAE/CLIP weights
    stale = Trainer(other, StageConfig.preset("coarse", "tiny", cache=str(folder), steps=1), tmp_path / "stale")
    with pytest.raises(ValueError, match="other vae weights"):
        stale.run(progress=False)
    for args in (["--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "c2")],     # no model there
                 ["--model", str(tmp_path / "run" / "final"), "--out", str(folder)]):     # never patches a cache
        with pytest.raises(SystemExit) as e:
            cache_main(args)
        assert e.value.code == 2
    assert not (tmp_path / "c2").exists()


def test_baseline_trains_from_the_latent_cache(tmp_path):
    from igr.train.cache import build

    igr = build_model("tiny", None, 0)
    folder = igr.save_pretrained(tmp_path / "igr")
    cfg = StageConfig.preset("baseline", "tiny", steps=3, low_res_fraction=0.0)
    cache = build(igr, tmp_path / "cache", sizes=[cfg.size], n=4, batch=4, workers=0, progress=False)
    base = build_model("tiny", folder, 0, stage="baseline")        # the same VAE: the cache's vae digest matches
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    result = Trainer(base, StageConfig.preset("baseline", "tiny", steps=3, low_res_fraction=0.0, cache=str(cache)),
                     tmp_path / "run").run(progress=False)
    assert result.step == 3 and result.final is not None
    assert any(not torch.equal(v, base.unet.state_dict()[k]) for k, v in before.items())


def test_resume_refuses_other_settings_and_a_fresh_start_clears_the_log(tmp_path):
    cfg = StageConfig.preset("coarse", "tiny", steps=4, log_every=1)
    first = Trainer(build_model("tiny", None, 0), cfg, tmp_path)
    first.run(until=2, progress=False)
    first.save_checkpoint()
    longer = Trainer(build_model("tiny", None, 0), StageConfig.preset("coarse", "tiny", steps=8, log_every=1), tmp_path)
    with pytest.raises(ValueError, match="steps: 4 -> 8"):
        longer.load_checkpoint(tmp_path / CHECKPOINT)
    ablated = build_model("tiny", None, 0)
    ablated.config = ablated.config.replace(use_low=False)
    with pytest.raises(ValueError, match="garment paths"):
        Trainer(ablated, cfg, tmp_path).load_checkpoint(tmp_path / CHECKPOINT)
    chatty = Trainer(build_model("tiny", None, 0), StageConfig.preset("coarse", "tiny", steps=4, log_every=2), tmp_path)
    chatty.load_checkpoint(tmp_path / CHECKPOINT)       # bookkeeping fields may change
    again = Trainer(build_model("tiny", None, 0), cfg, tmp_path)    # a fresh start over the same folder
    again.run(until=1, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1], "the abandoned attempt's rows are gone"


def test_model_set_adds_an_aligned_prior_to_a_trained_model_and_trains_it(tmp_path):
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path / "a")]) == 0
    init = tmp_path / "a" / "final"
    out = tmp_path / "b"
    args = ["--stage", "coarse", "--preset", "tiny", "--init", str(init), "--out", str(out),
            "--model-set", "zero_snr=true", "aligned_prior=true", "--set", "log_every=1", "--steps", "2"]
    assert train_main(args) == 0
    from igr.model import IGRModel

    model = IGRModel.from_pretrained(out / "final")
    assert model.config.zero_snr and model.config.aligned_prior and "prior" in model.components
    assert model.noise_scheduler().alphas_cumprod[-1] == 0                    # t = T is pure noise
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all({"v_mse", "prior_l1"} <= set(r) for r in rows if "loss" in r)
    trained = IGRModel.from_pretrained(init)
    # the prior trained (it started random); the GarmNet the model took from `init` moved on from there
    assert not torch.equal(model.garmnet.unet.conv_in.weight, torch.zeros_like(model.garmnet.unet.conv_in.weight))
    assert model.garmnet.unet.conv_in.weight.shape == trained.garmnet.unet.conv_in.weight.shape
    # resuming with the same --model-set continues the run
    assert train_main(args[:-2] + ["--steps", "2", "--resume"]) == 0


def test_model_set_refuses_unknown_fields_and_the_non_diffusion_stages(tmp_path, capsys):
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path / "x"),
                       "--model-set", "no_such=1"]) == 2
    assert "no_such" in capsys.readouterr().err
    assert train_main(["--stage", "vae", "--preset", "tiny", "--out", str(tmp_path / "y"),
                       "--model-set", "zero_snr=true"]) == 2


def test_a_compact_checkpoint_links_frozen_parts_and_resumes_at_its_step(tmp_path):
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path / "a")]) == 0
    from igr.model import IGRModel

    init = IGRModel.from_pretrained(tmp_path / "a" / "final").save_pretrained(tmp_path / "a16", dtype=torch.float16)
    compact = tmp_path / "compact"
    common = ["--stage", "coarse", "--preset", "tiny", "--init", str(init), "--steps", "4",
              "--checkpoint-every", "2", "--set", "log_every=1"]
    assert train_main(common + ["--out", str(tmp_path / "b"), "--compact-to", str(compact)]) == 0
    meta = json.loads((compact / "trainer.json").read_text())
    assert meta["step"] == 4 and meta["compact"]
    assert not (compact / "model").exists()                                       # the EMA alone is kept
    links = json.loads((compact / "ema" / "shared.json").read_text())
    assert "vae" in links and not (compact / "ema" / "vae.safetensors").exists()     # frozen: linked to --init
    from safetensors.torch import load_file
    assert all(v.dtype == torch.float16 for v in load_file(str(compact / "ema" / "denoiser.safetensors")).values()
               if v.is_floating_point())
    # a run resumed from it starts at its step and its log goes on from there
    cfg = StageConfig.preset("coarse", "tiny", steps=6, warmup=4, checkpoint_every=0, log_every=1)
    json_meta = dict(meta, stage=cfg.to_dict())
    (compact / "trainer.json").write_text(json.dumps(json_meta))
    trainer = Trainer(build_model("tiny", init, 0), cfg, tmp_path / "c")
    trainer.load_compact(compact)
    assert trainer.step == 4
    ema = IGRModel.from_pretrained(compact / "ema")
    for model in (trainer.model, trainer.ema):                                    # both start from the EMA
        assert torch.equal(model.denoiser.unet.conv_in.weight, ema.denoiser.unet.conv_in.weight)
    result = trainer.run(progress=False)
    assert result.step == 6
    rows = [json.loads(line) for line in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 6] and rows[0]["lr"] < learning_rate(cfg, 4)   # re-warm-up
    with pytest.raises(ValueError, match="compact"):
        trainer.load_checkpoint(compact)


def test_until_stops_early_on_the_longer_schedule_and_resume_goes_on(tmp_path):
    out = tmp_path / "run"
    args = ["--stage", "coarse", "--preset", "tiny", "--out", str(out), "--steps", "6", "--checkpoint-every", "4",
            "--set", "log_every=1"]
    assert train_main(args + ["--until", "3"]) == 0
    meta = json.loads((out / CHECKPOINT / "trainer.json").read_text())
    assert meta["step"] == 3 and meta["stage"]["steps"] == 6 and not (out / "final").exists()
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == learning_rate(StageConfig.from_dict(meta["stage"]), 2)   # the 6-step schedule
    assert train_main(args + ["--resume"]) == 0 and (out / "final" / "config.json").is_file()


@pytest.mark.cuda
def test_the_ema_lives_on_the_accelerators_device_and_a_step_updates_it(tmp_path):
    """On a GPU, prepare moves the model to it; the EMA must follow, or its first update mixes devices."""
    cfg = StageConfig.preset("coarse", "tiny", steps=1, checkpoint_every=0)
    trainer = Trainer(build_model("tiny", None, 0), cfg, tmp_path)
    device = next(trainer.model.parameters()).device
    assert device.type == "cuda" and {p.device for p in trainer.ema.parameters()} == {device}
    trainer.run(progress=False)
    assert (tmp_path / "final" / "config.json").is_file()


def test_lr_scale_trains_matching_tensors_faster_and_resumes_exactly(tmp_path):
    pattern = r"denoiser\.unet\.conv_in\."
    plain = StageConfig.preset("coarse", "tiny", steps=1, warmup=1, checkpoint_every=0, ema=0.0)
    scaled = StageConfig.preset("coarse", "tiny", steps=1, warmup=1, checkpoint_every=0, ema=0.0,
                                lr_scale={pattern: 10})
    moved = {}
    for name, cfg in (("plain", plain), ("scaled", scaled)):
        trainer = Trainer(build_model("tiny", None, 0), cfg, tmp_path / name)
        before = {k: v.clone() for k, v in trainer.model.denoiser.unet.state_dict().items()}
        trainer.run(progress=False)
        after = trainer.model.denoiser.unet.state_dict()
        moved[name] = {k: (after[k] - before[k]).abs() for k in ("conv_in.weight", "conv_out.weight")}
        assert sorted(g["lr"] for g in trainer.optimizer.param_groups) == (
            [cfg.lr] if name == "plain" else [cfg.lr, 10 * cfg.lr])
    # AdamW's first step moves each weight by about lr (times the gradient's sign): 10x for the matching tensors
    ratio = (moved["scaled"]["conv_in.weight"] / moved["plain"]["conv_in.weight"].clamp(min=1e-12)).median()
    assert 9 < ratio < 11
    assert torch.equal(moved["scaled"]["conv_out.weight"], moved["plain"]["conv_out.weight"])

    # the groups (and their scales) survive a checkpoint: a split run ends where a straight one does
    cfg = StageConfig.preset("coarse", "tiny", steps=4, checkpoint_every=0, lr_scale={pattern: 10})
    straight = Trainer(build_model("tiny", None, 0), cfg, tmp_path / "straight")
    straight.run(progress=False)
    first = Trainer(build_model("tiny", None, 0), cfg, tmp_path / "split")
    first.run(until=2, progress=False)
    first.save_checkpoint()
    second = Trainer(build_model("tiny", None, 1), cfg, tmp_path / "split")
    second.load_checkpoint(tmp_path / "split" / CHECKPOINT)
    second.run(progress=False)
    a, b = _weights(straight), _weights(second)
    assert not [k for k in a if not torch.equal(a[k], b[k])]


def test_lr_scale_refuses_a_pattern_that_matches_nothing_and_bad_factors(tmp_path):
    from igr.config import ConfigError

    cfg = StageConfig.preset("coarse", "tiny", steps=1, lr_scale={r"denoiser\.no_such_block": 10})
    with pytest.raises(ValueError, match="no trainable tensor's name matches"):
        Trainer(build_model("tiny", None, 0), cfg, tmp_path)
    for bad in ({"conv_in": 0}, {"conv_in": "fast"}, {"(": 2}):
        with pytest.raises(ConfigError, match="lr_scale"):
            StageConfig.preset("coarse", "tiny", lr_scale=bad)
    # from the command line, as JSON
    out = tmp_path / "cli"
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(out), "--steps", "1",
                       "--set", 'lr_scale={"denoiser\\\\.unet\\\\.conv_in": 3}']) == 0
    stage = json.loads((out / "stage.json").read_text())["stage"]
    assert stage["lr_scale"] == {r"denoiser\.unet\.conv_in": 3} and (out / "final" / "config.json").is_file()
