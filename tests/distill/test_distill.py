"""Distillation on tiny configs: losses fall, targets are what the papers define, students are deterministic,
the conditioning runs once per image, and the quality table is built from real evaluations."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from distill import core
from distill.__main__ import main as distill_main
from distill.calibrate import calibration_set, load, save
from igr.config import ConfigError, IGRConfig
from igr.model import IGRModel
from igr.pipeline import make_scheduler, sample_items
from igr.train import cache as latent_cache


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny 'teacher' (dpmsolver++ 8 steps, guidance 5) and a latent cache of 24 train pairs made with it."""
    root = tmp_path_factory.mktemp("distill")
    torch.manual_seed(0)
    teacher = IGRModel(IGRConfig.tiny().replace(sampler="dpmsolver++", sample_steps=8, guidance_scale=5.0)).eval()
    teacher.save_pretrained(root / "teacher")
    latent_cache.build(teacher, root / "cache", sizes=[(64, 48)], n=24, batch=8, workers=0, progress=False)
    return root, IGRModel.from_pretrained(root / "teacher")


def _fixed(loss_fn):
    """The loss on a fixed batch and fixed random draws (to compare before and after training)."""
    return float(loss_fn(torch.Generator().manual_seed(123))[0].detach())


def test_guidance_distillation_loss_falls_and_only_the_denoiser_changes(setup, tmp_path):
    root, teacher = setup
    cache = core.open_cache(teacher, root / "cache")
    batch = core.cache_batch(cache, 0, 8, seed=99)
    student = IGRModel.from_pretrained(root / "teacher")
    before = _fixed(lambda g: core.guidance_loss(teacher, student, batch, g))
    cfg = core.DistillConfig(kind="guidance", steps=40, batch=8, lr=5e-4, warmup=5, checkpoint_every=0)
    summary = core.distill_guidance(teacher, root / "cache", tmp_path / "guided", cfg, progress=False)
    trained = IGRModel.from_pretrained(tmp_path / "guided" / "final")
    after = _fixed(lambda g: core.guidance_loss(teacher, trained, batch, g))
    assert after < 0.9 * before, (before, after)
    assert trained.config.guidance_scale == 1.0 and summary["guidance_baked"] == 5.0
    assert core.frozen_parts_digest(trained) == core.frozen_parts_digest(teacher)
    assert (tmp_path / "guided" / "log.jsonl").read_text().count("\n") == 5       # every 10th step and the last


def test_guidance_distillation_refuses_an_unguided_teacher_and_a_foreign_cache(setup, tmp_path):
    root, teacher = setup
    unguided = IGRModel.from_pretrained(root / "teacher")
    unguided.config = unguided.config.replace(guidance_scale=1.0)
    with pytest.raises(ValueError, match="no guidance to distill"):
        core.distill_guidance(unguided, root / "cache", tmp_path / "x", core.DistillConfig(steps=1))
    torch.manual_seed(5)
    other = IGRModel(teacher.config)        # another VAE: its latents disagree with the cache
    with pytest.raises(ValueError, match="not made with this model's VAE"):
        core.open_cache(other, root / "cache")


@pytest.fixture(scope="module")
def trajectories(setup):
    root, teacher = setup
    plan = core.student_plan(teacher.config, 4)
    traj = core.load_or_record(teacher, root / "cache", root / "traj", n=12, timesteps=plan, batch=5,
                               progress=False)
    return plan, traj


def test_trajectories_start_at_the_seeded_noise_and_are_reused(setup, trajectories, monkeypatch):
    root, teacher = setup
    plan, traj = trajectories
    assert plan == [999, 749, 499, 249]
    assert traj["x"].shape == (12, 5, 4, 8, 6) and len([k for k in traj if k.startswith("ref.")]) == 7
    # the latent entering t = 999 is the row's own noise: batching does not change it
    assert torch.equal(traj["x"][:, 0], core.row_noise((4, 8, 6), range(12), 0))

    def no_recording(*a, **k):
        raise AssertionError("trajectories were recorded again")
    monkeypatch.setattr(core, "record_trajectories", no_recording)
    again = core.load_or_record(teacher, root / "cache", root / "traj", n=12, timesteps=plan, progress=False)
    assert torch.equal(again["x"], traj["x"])


def test_progressive_target_makes_diffusers_ddim_land_on_the_recorded_next_point(setup, trajectories):
    _, teacher = setup
    plan, traj = trajectories
    cfg = core.student_config(teacher.config, kind="steps", steps=4)
    targets = core.StepTargets(cfg, plan, 4, "progressive")
    sched = make_scheduler(cfg, "ddim")
    sched.set_timesteps(4)
    for j in range(4):
        jj = torch.full((12,), j)
        x_in, t, x0 = targets(traj["x"], jj)
        a, s = targets.a[j].float(), targets.s[j].float()
        v = (a * x_in - x0) / s                           # the v whose x0 is the target
        landed = sched.step(v, int(t[0]), x_in).prev_sample
        assert torch.allclose(landed, traj["x"][:, j + 1], atol=2e-4), j
    consistency = core.StepTargets(cfg, plan, 4, "consistency")
    assert torch.equal(consistency(traj["x"], torch.zeros(12, dtype=torch.long))[2], traj["x"][:, -1])


def test_step_distillation_loss_falls_and_the_student_samples_with_its_own_plan(setup, trajectories, tmp_path):
    root, teacher = setup
    plan, traj = trajectories
    meta = core.trajectory_meta(teacher, plan, 12, 0)
    cfg = core.DistillConfig(kind="steps", steps=40, batch=8, lr=2e-3, warmup=5, student_steps=2, gt_weight=0.5,
                             checkpoint_every=0)
    targets = core.StepTargets(core.student_config(teacher.config, kind="steps", steps=2), plan, 2, "progressive")
    batch = core.trajectory_batch(traj, 0, 12, seed=7)
    before = _fixed(lambda g: core.step_loss(teacher, targets, batch, g, 0.5))
    summary = core.distill_steps(teacher, traj, plan, tmp_path / "s2", cfg, source_meta=meta, progress=False)
    student = IGRModel.from_pretrained(tmp_path / "s2" / "final")
    after = _fixed(lambda g: core.step_loss(student, targets, batch, g, 0.5))
    assert after < 0.85 * before, (before, after)
    assert summary["timesteps"] == [999, 499]
    assert (student.config.sampler, student.config.sample_steps, student.config.guidance_scale) == ("ddim", 2, 1.0)


def test_students_are_deterministic_by_seed_and_condition_once_per_image(setup):
    _, teacher = setup
    student = IGRModel.from_pretrained(setup[0] / "teacher")
    student.config = core.student_config(teacher.config, kind="steps", steps=4)
    person = torch.rand(3, 3, 64, 48) * 2 - 1
    calls = {"garmnet": 0, "image_encoder.clip": 0, "denoiser": 0}
    hooks = [student.get_submodule(name).register_forward_hook(
        lambda *a, name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls]
    a = sample_items(student, person, 0, seed=1)
    for h in hooks:
        h.remove()
    assert calls == {"garmnet": 1, "image_encoder.clip": 1, "denoiser": 4}      # one batch of 3 images, 4 steps
    assert torch.equal(a, sample_items(student, person, 0, seed=1))
    assert not torch.equal(a, sample_items(student, person, 0, seed=2))


def test_step_targets_refuse_timesteps_that_were_not_recorded(setup):
    _, teacher = setup
    with pytest.raises(ValueError, match="do not hold timesteps"):
        core.StepTargets(teacher.config, [999, 499], 4, "progressive")
    with pytest.raises(ConfigError):
        core.DistillConfig(method="halving")


def test_calibration_set_holds_the_students_own_timesteps_and_never_test(setup, tmp_path):
    _, teacher = setup
    student = IGRModel.from_pretrained(setup[0] / "teacher")
    student.config = core.student_config(teacher.config, kind="steps", steps=2)
    data = calibration_set(student, n=5, split="val", batch=2)
    assert data["person"].shape == (5, 64, 48, 3) and data["person"].dtype == np.uint8
    assert data["noise"].shape == (5, 4, 8, 6)
    assert data["denoiser.latent"].shape == (10, 4, 8, 6)
    assert sorted(set(data["denoiser.timestep"].tolist()), reverse=True) == [999, 499]
    assert np.array_equal(data["denoiser.latent"][:2], data["noise"][:2])     # step 1 of batch 1 sees the noise
    path = save(data, tmp_path / "calib.npz")
    assert set(load(path)) == set(data)
    with pytest.raises(ValueError, match="test split"):
        calibration_set(student, n=2, split="test")


def test_cli_end_to_end_students_evaluations_report_and_shared_files(setup, tmp_path):
    root, _ = setup
    from igr.eval import main as eval_main
    from igr.model.__main__ import main as model_main

    run = tmp_path / "run"
    assert distill_main(["guidance", "--teacher", str(root / "teacher"), "--cache", str(root / "cache"),
                         "--out", str(run / "guided"), "--train-steps", "3", "--batch", "2"]) == 0
    assert distill_main(["steps", "--from", str(root / "teacher"), "--init", str(run / "guided" / "final"),
                         "--cache", str(root / "cache"), "--out", str(run), "--steps", "2,1", "--n", "6",
                         "--train-steps", "3", "--batch", "2", "--gt-weight", "0.5"]) == 0
    s1 = json.loads((run / "student-1" / "final" / "distill.json").read_text())
    assert s1["config"]["gt_weight"] == 0.5 and s1["timesteps"] == [999]
    assert json.loads((run / "student-2" / "final" / "distill.json").read_text())["config"]["gt_weight"] == 0.0
    # shipped students link the teacher's frozen parts instead of copying them
    models = tmp_path / "models"
    for name, src in (("teacher", root / "teacher"), ("guided", run / "guided" / "final"),
                      ("student-1", run / "student-1" / "final")):
        args = ["pack", "--from", str(src), "--out", str(models / name)]
        assert model_main(args + ([] if name == "teacher" else ["--share-with", str(models / "teacher")])) == 0
    shared = json.loads((models / "student-1" / "shared.json").read_text())
    assert set(shared) == {"vae", "image_encoder", "garmnet"}
    assert sorted(p.name for p in (models / "student-1").iterdir()) == ["config.json", "denoiser.safetensors",
                                                                       "distill.json", "shared.json"]
    # the same student with light VAE parts: its row beside the full-VAE row
    from igr.config import LightVAEConfig
    from igr.model.light import build_light, save_light
    from igr.train.cache import digest

    light = LightVAEConfig.tiny()
    save_light(tmp_path / "light", light, *build_light(light),
               {"vae": digest(IGRModel.from_pretrained(models / "teacher").vae)})
    assert distill_main(["light-attach", "--model", str(models / "student-1"), "--light", str(tmp_path / "light"),
                         "--out", str(models / "student-1-light"), "--dtype", "fp16",
                         "--share-with", str(models / "student-1"), str(models / "teacher")]) == 0
    shared = json.loads((models / "student-1-light" / "shared.json").read_text())    # only the light parts are new
    assert shared["denoiser"]["path"] == "../student-1/denoiser.safetensors"
    assert sorted(p.name for p in (models / "student-1-light").glob("*.safetensors")) == [
        "light_decoder.safetensors", "light_encoder.safetensors"]
    evals = tmp_path / "evals"
    for name in ("teacher", "guided", "student-1", "student-1-light"):
        assert eval_main(["--model", str(models / name), "--features", str(models / "teacher"), "--n", "4",
                          "--batch", "2", "--boot", "20", "--out", str(evals / name)]) == 0
    out = tmp_path / "reports" / "students"
    assert distill_main(["report", "--teacher", str(models / "teacher"), "--rows", f"guided={models / 'guided'}",
                         f"student-1={models / 'student-1'}", f"student-1-light={models / 'student-1-light'}",
                         "--evals", str(evals), "--timing-images", "2", "--timing-runs", "1", "--grid-n", "2",
                         "--out", str(out)]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert [r["denoiser_calls"] for r in rep["rows"].values()] == [16, 8, 1, 1]
    rows = rep["rows"]
    assert rows["student-1-light"]["light"] and not rows["student-1"]["light"] and "vs_full_vae" not in rows["student-1"]
    assert rows["student-1-light"]["gflop"] < rows["student-1"]["gflop"] < rows["guided"]["gflop"]
    vs_full = rows["student-1-light"]["vs_full_vae"]
    assert vs_full["ssim_mask_bound"] == 0.01 and isinstance(vs_full["fd_met"], bool)
    assert "## Light VAE against the full VAE" in out.with_suffix(".md").read_text()
    assert rep["rows"]["teacher"]["timing"]["ratio_to_teacher"] == 1.0
    assert rep["rows"]["student-1"]["targets"]["ssim_bound"] == 0.03
    assert isinstance(rep["rows"]["student-1"]["targets"]["ssim_mask_met"], bool)
    assert "ssim_bound" not in rep["rows"]["guided"]["targets"]
    with pytest.raises(SystemExit):            # guided.json evaluated models/guided, not the folder named here
        distill_main(["report", "--teacher", str(models / "teacher"), "--rows", f"guided={models / 'student-1'}",
                      "--evals", str(evals), "--out", str(tmp_path / "wrong")])
    assert not (tmp_path / "wrong.md").exists()
    assert "| student-1 | ddim 1, guidance 1 | 1 |" in out.with_suffix(".md").read_text()
    assert out.with_name("students-grid.png").is_file()


def test_cli_guidance_overrides_the_teachers_scale_without_touching_its_folder(setup, tmp_path, capsys):
    root, teacher = setup
    before = (root / "teacher" / "config.json").read_bytes()
    common = ["--cache", str(root / "cache"), "--n", "4", "--steps", "2", "--record-batch", "4"]
    for name, more in (("at5", []), ("at2", ["--guidance", "2"])):
        assert distill_main(["steps", "--from", str(root / "teacher"), *common, "--out", str(tmp_path / name),
                             "--record-only", *more]) == 0
    metas = {n: json.loads((tmp_path / n / "trajectories" / "meta.json").read_text()) for n in ("at5", "at2")}
    assert (metas["at5"]["guidance"], metas["at2"]["guidance"]) == (5.0, 2.0)
    ends = {n: load_file(str(tmp_path / n / "trajectories" / "trajectories.safetensors"))["x"][:, -1]
            for n in ("at5", "at2")}
    assert not torch.allclose(ends["at5"], ends["at2"], atol=1e-3)            # another sampler, other samples
    # a student trained at the override carries it in its distill.json (the converter's manifest reads it there)
    assert distill_main(["steps", "--from", str(root / "teacher"), *common, "--out", str(tmp_path / "at2"),
                         "--guidance", "2", "--train-steps", "1", "--batch", "2"]) == 0
    made = json.loads((tmp_path / "at2" / "student-2" / "final" / "distill.json").read_text())
    assert made["trajectories"]["guidance"] == 2.0
    assert distill_main(["guidance", "--teacher", str(root / "teacher"), "--cache", str(root / "cache"),
                         "--out", str(tmp_path / "guided"), "--train-steps", "1", "--batch", "2",
                         "--guidance", "3"]) == 0
    assert "scale 3 baked in" in capsys.readouterr().out
    assert json.loads((tmp_path / "guided" / "final" / "distill.json").read_text())["guidance_baked"] == 3.0
    assert (root / "teacher" / "config.json").read_bytes() == before            # the teacher's folder as it was
    for bad in ("0.5", "x"):
        with pytest.raises(SystemExit):
            distill_main(["guidance", "--teacher", str(root / "teacher"), "--cache", str(root / "cache"),
                          "--out", str(tmp_path / "no"), "--guidance", bad])
    assert not (tmp_path / "no").exists()


def test_a_changed_linked_file_is_refused(setup, tmp_path):
    root, teacher = setup
    teacher.save_pretrained(tmp_path / "base")
    teacher.save_pretrained(tmp_path / "copy", share_with=tmp_path / "base")
    assert not (tmp_path / "copy" / "vae.safetensors").exists()
    IGRModel.from_pretrained(tmp_path / "copy")
    teacher.save_pretrained(tmp_path / "student", share_with=tmp_path / "copy")    # a link through a link
    links = json.loads((tmp_path / "student" / "shared.json").read_text())
    assert links and all((tmp_path / "student" / link["path"]).resolve().parent == (tmp_path / "base").resolve()
                         for link in links.values())                           # copy's links followed to base
    data = bytearray((tmp_path / "base" / "vae.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "base" / "vae.safetensors").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="changed since it was linked"):
        IGRModel.from_pretrained(tmp_path / "copy")


def test_step_counts_that_do_not_divide_the_training_timesteps_are_refused(setup):
    _, teacher = setup
    assert core.student_plan(teacher.config, 5) == [999, 799, 599, 399, 199]
    with pytest.raises(ValueError, match="must divide 1000"):
        core.student_plan(teacher.config, 3)


def test_a_prior_teachers_trajectories_carry_its_latent_and_the_student_keeps_it_frozen(setup, tmp_path):
    root, teacher = setup
    torch.manual_seed(3)
    prior_teacher = IGRModel(teacher.config.replace(aligned_prior=True))
    prior_teacher.transplant(teacher)                  # the cache's VAE and image tower
    prior_teacher.eval()
    plan = [999, 749, 499, 249]
    traj = core.load_or_record(prior_teacher, root / "cache", tmp_path / "traj", n=6, timesteps=plan, batch=4,
                               progress=False)
    cache = latent_cache.LatentCache(root / "cache", (64, 48))
    with torch.no_grad():
        live = prior_teacher.condition_from(cache.rows["person_latent"][:6].float(), cache.rows["person_embed"][:6].float())
    assert torch.allclose(traj["prior"], live.prior, atol=1e-5)          # recorded in batches of 4, here of 6
    stored = core.stored_conditioning(core.trajectory_batch(traj, 0, 6, seed=0))
    assert stored.prior is not None and stored.prior.shape == (6, 4, 8, 6)
    meta = core.trajectory_meta(prior_teacher, plan, 6, 0)
    assert meta["frozen"] != core.trajectory_meta(teacher, plan, 6, 0)["frozen"]      # the prior is in the digest
    cfg = core.DistillConfig(kind="steps", steps=4, batch=4, warmup=1, student_steps=2, checkpoint_every=0)
    core.distill_steps(prior_teacher, traj, plan, tmp_path / "s2", cfg, source_meta=meta, progress=False)
    student = IGRModel.from_pretrained(tmp_path / "s2" / "final")
    assert all(torch.equal(a, b) for a, b in zip(student.prior.state_dict().values(),
                                                 prior_teacher.prior.state_dict().values()))
    with torch.no_grad():
        next(student.prior.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="differ from the trajectories' source"):
        core.distill_steps(student, traj, plan, tmp_path / "s2b", cfg, source_meta=meta, progress=False)


@pytest.fixture(scope="module")
def prior_source(setup, tmp_path_factory):
    """A tiny source with an aligned prior and EfficientNet tokens (a 2x1 grid, which divides the tower's map at
    128x96 and at 64x48), its latent cache of 8 pairs and its trajectories."""
    root, teacher = setup
    folder = tmp_path_factory.mktemp("prior-source")
    torch.manual_seed(5)
    cfg = teacher.config.replace(aligned_prior=True, encoder={"backbone": "efficientnet-lite0", "grid": (2, 1)})
    source = IGRModel(cfg)
    source.transplant(teacher)
    source.eval()
    latent_cache.build(source, folder / "cache", sizes=[(64, 48)], n=8, batch=8, workers=0, progress=False)
    plan = [999, 749, 499, 249]
    traj = core.load_or_record(source, folder / "cache", folder / "traj", n=8, timesteps=plan, batch=8,
                               progress=False)
    return source, latent_cache.LatentCache(folder / "cache", (64, 48)), plan, traj


def test_a_lean_student_drops_the_prior_and_shrinks_the_tower_input_and_learns_to_follow(prior_source, tmp_path,
                                                                                          monkeypatch):
    """`--model-set aligned_prior=false encoder.input_size=...`: the student starts from the source's weights where
    they fit, does without the prior, trains its token projection on its own tower's embeddings (the persons
    regenerated from the cache's index) beside the denoiser, and leaves VAE, GarmNet and the tower alone."""
    source, cache, plan, traj = prior_source
    meta = core.trajectory_meta(source, plan, 8, 0)
    index = cache.index
    assert torch.equal(index, torch.arange(8))
    changes = {"aligned_prior": False, "encoder": {"input_size": (64, 48)}}
    with pytest.raises(ValueError, match="needs the trajectories' cache"):
        core.distill_steps(source, traj, plan, tmp_path / "x", core.DistillConfig(kind="steps", steps=1),
                           source_meta=meta, changes=changes)
    for bad in ({"unet": {"channels": (16, 32, 32)}}, {"aligned_prior": True}):
        with pytest.raises(ValueError, match="aligned_prior"):
            core.lean_student(source, bad)
    dcfg = core.DistillConfig(kind="steps", steps=30, batch=8, lr=2e-3, warmup=3, student_steps=2, checkpoint_every=0)
    summary = core.distill_steps(source, traj, plan, tmp_path / "s2", dcfg, source_meta=meta, changes=changes,
                                 cache=cache, progress=False)
    assert summary["model_set"] == changes
    written = json.loads((tmp_path / "s2" / "final" / core.META).read_text())
    assert written["model_set"] == {"aligned_prior": False, "encoder": {"input_size": [64, 48]}}
    student = IGRModel.from_pretrained(tmp_path / "s2" / "final")
    assert student.prior is None and student.config.encoder.input_size == (64, 48)
    assert student.denoiser.unet.conv_in.weight.shape[1] == 4
    for name in ("vae", "garmnet"):
        for k, v in student.component(name).state_dict().items():
            assert torch.equal(v, source.component(name).state_dict()[k]), (name, k)
    assert core.digest(student.image_encoder.tower) == core.digest(source.image_encoder.tower)
    assert not torch.equal(student.image_encoder.cells.proj.weight, source.image_encoder.cells.proj.weight)
    # the embeddings it trained on are its own tower's at 64x48, of the cache's persons
    from igr.data import SynthGarmentDataset

    data = SynthGarmentDataset("train", 8, size=(64, 48))
    with torch.no_grad():
        own = student.image_encoder.embed(torch.stack([data[i]["person"] for i in range(3)]))
        fed = core.tower_embeds(student, index[:3], size=(64, 48), progress=False)
        theirs = source.image_encoder.embed(torch.stack([data[i]["person"] for i in range(3)]))
    torch.testing.assert_close(fed, own)
    assert not torch.allclose(fed, theirs, atol=1e-3)                  # 128x96 input there, 64x48 here
    # the lean student's loss, on its own conditioning, falls from its transplanted start
    targets = core.StepTargets(student.config, plan, 2, "progressive")
    batch = core.trajectory_batch({**traj, "student_embed": core.tower_embeds(student, index, size=(64, 48),
                                                                                progress=False)}, 0, 8, seed=7)
    start, _ = core.lean_student(source, changes)
    start.config = student.config
    before = _fixed(lambda g: core.step_loss(start, targets, batch, g))
    after = _fixed(lambda g: core.step_loss(student, targets, batch, g))
    assert after < 0.85 * before, (before, after)
    images = sample_items(student, torch.stack([data[i]["person"] for i in range(2)]), 0, seed=0)
    assert images.shape == (2, 3, 64, 48) and torch.isfinite(images).all()
    # training it further: its tower still differs from the source's, so it still gets its own embeddings
    calls = []
    real = core.tower_embeds
    monkeypatch.setattr(core, "tower_embeds", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    again = core.distill_steps(student, traj, plan, tmp_path / "again",
                               core.DistillConfig(kind="steps", steps=2, batch=4, warmup=1, student_steps=2,
                                                  checkpoint_every=0),
                               source_meta=meta, cache=cache, source=source, progress=False)
    assert len(calls) == 1 and "own_prior" not in again


def test_a_student_with_its_own_light_prior_learns_on_that_priors_answers(prior_source, tmp_path):
    """`--init` a model whose prior is not the source's (a light one): the student sees its own prior's answers on
    the cache's person latents instead of the recorded ones; VAE, GarmNet and the tower must still be the source's."""
    from distill.prior import distill_prior

    source, cache, plan, traj = prior_source
    meta = core.trajectory_meta(source, plan, 8, 0)
    light, _ = distill_prior(source, (8, 16, 16), cache.rows["person_latent"].float(), steps=3, batch=4, holdout=2,
                             progress=False)
    dcfg = core.DistillConfig(kind="steps", steps=2, batch=4, warmup=1, student_steps=2, checkpoint_every=0)
    with pytest.raises(ValueError, match="differ from the trajectories' source"):           # no source to compare
        core.distill_steps(light, traj, plan, tmp_path / "a", dcfg, source_meta=meta, cache=cache, progress=False)
    seen = {}
    real_loss = core.step_loss

    def spy(student, targets, batch, g, gt_weight=0.0):
        seen.setdefault("prior", batch["prior"])
        seen.setdefault("x", batch["x"])
        return real_loss(student, targets, batch, g, gt_weight)

    core.step_loss, saved = spy, core.step_loss
    try:
        summary = core.distill_steps(light, traj, plan, tmp_path / "b", dcfg, source_meta=meta, cache=cache,
                                     source=source, progress=False)
    finally:
        core.step_loss = saved
    rows = [int((traj["x"] == x).flatten(1).all(1).nonzero()[0]) for x in seen["x"]]
    with torch.no_grad():
        own = light.prior(cache.rows["person_latent"][rows].float())
    torch.testing.assert_close(seen["prior"], own)
    assert not torch.allclose(seen["prior"], traj["prior"][rows], atol=1e-3)
    assert summary["own_prior"] == core.digest(light.prior) and summary["frozen"] == core.frozen_parts_digest(light)
    broken = IGRModel.from_pretrained(tmp_path / "b" / "final")
    with torch.no_grad():
        next(broken.garmnet.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="differ from the trajectories' source"):
        core.distill_steps(broken, traj, plan, tmp_path / "c", dcfg, source_meta=meta, cache=cache, source=source,
                           progress=False)


def test_cli_trains_a_lean_student_on_its_own_light_prior_and_keeps_how_the_prior_was_made(prior_source, tmp_path):
    from distill.prior import PRIOR_META, distill_prior

    source, cache, plan, traj = prior_source
    source.save_pretrained(tmp_path / "source")
    light, record = distill_prior(source, (8, 16, 16), cache.rows["person_latent"].float(), steps=2, batch=4,
                                  holdout=2, progress=False)
    light.save_pretrained(tmp_path / "light", extra={PRIOR_META: json.dumps(record)})
    cache_dir = cache.folder
    args = ["steps", "--from", str(tmp_path / "source"), "--init", str(tmp_path / "light"), "--cache", str(cache_dir),
            "--out", str(tmp_path / "run"), "--steps", "2", "--n", "6", "--record-steps", "4", "--train-steps", "2",
            "--batch", "2"]
    with pytest.raises(SystemExit):
        distill_main(args + ["--model-set", "unet.channels=[8,8,8]"])
    assert distill_main(args + ["--model-set", "encoder.input_size=[64,48]"]) == 0
    final = tmp_path / "run" / "student-2" / "final"
    made = json.loads((final / "distill.json").read_text())
    assert made["model_set"] == {"encoder": {"input_size": [64, 48]}} and made["own_prior"]
    assert json.loads((final / "prior.json").read_text())["channels"] == [8, 16, 16]
    student = IGRModel.from_pretrained(final)
    assert student.config.encoder.input_size == (64, 48) and student.config.prior.channels == (8, 16, 16)


def test_a_token_fit_matches_the_sources_tokens_first_and_then_keeps_the_projection_frozen(prior_source, tmp_path):
    """--token-fit: the smaller tower's token projection is fitted to the source's tokens on cache persons (more than
    the trajectories hold), then frozen while the denoiser learns."""
    source, cache, plan, traj = prior_source
    meta = core.trajectory_meta(source, plan, 8, 0)
    changes = {"encoder": {"input_size": (64, 48)}}
    dcfg = core.DistillConfig(kind="steps", steps=3, batch=4, warmup=1, student_steps=2, checkpoint_every=0,
                              token_fit=8)
    summary = core.distill_steps(source, traj, plan, tmp_path / "s", dcfg, source_meta=meta, changes=changes,
                                 cache=cache, source=source, progress=False)
    fit = summary["token_fit"]
    assert fit["persons"] == 8 and fit["holdout"] == 2
    assert set(fit) >= {"relative_l2_holdout", "relative_l2_holdout_before"}      # 2 persons: no figure to judge
    student = IGRModel.from_pretrained(tmp_path / "s" / "final")
    fitted, _ = core.lean_student(source, changes)
    embeds = core.tower_embeds(fitted, cache.index[:6], size=(64, 48), progress=False)
    with torch.no_grad():
        target = source.image_encoder.tokens(cache.rows["person_embed"][:6].float())
        before = (fitted.image_encoder.tokens(embeds) - target).norm() / target.norm()
    core.fit_tokens(fitted, source, cache, 8, progress=False)                  # the same fit, alone: same seed
    with torch.no_grad():
        after = (fitted.image_encoder.tokens(embeds) - target).norm() / target.norm()
    assert after < 0.5 * before, (before, after)                               # on the persons it was fitted to
    for k, v in student.image_encoder.cells.state_dict().items():
        torch.testing.assert_close(v, fitted.image_encoder.cells.state_dict()[k])    # frozen after the fit
    assert not torch.equal(student.denoiser.unet.conv_in.weight, source.denoiser.unet.conv_in.weight)


def test_a_warp_prior_teacher_distils_on_its_own_warpnets_rows_and_refuses_the_true_fields(tmp_path):
    """A teacher with a warp prior (igr.warp): guidance and step distillation read the cache's warp rows (its own
    WarpNet's, never SynthGarment's true field: a student restores from a photo alone), the trajectories carry
    them, and the WarpNet is part of the frozen digest the students share."""
    from igr.train.cache import add_warp, build
    from igr.warp import SIZE, WarpNet, attach

    torch.manual_seed(0)
    base = IGRModel(IGRConfig.tiny().replace(height=SIZE[0], width=SIZE[1], sampler="dpmsolver++", sample_steps=4,
                                             guidance_scale=3.0)).eval()
    base.save_pretrained(tmp_path / "base")
    net = WarpNet()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    net.save_pretrained(tmp_path / "warpnet")
    attach(tmp_path / "base", tmp_path / "warpnet", tmp_path / "teacher")
    teacher = IGRModel.from_pretrained(tmp_path / "teacher")
    with torch.no_grad():                                  # a denoiser that reads the warp channels
        teacher.denoiser.unet.conv_in.weight[:, 4:].normal_(std=0.1)
    teacher.save_pretrained(tmp_path / "teacher")
    plain = build(base, tmp_path / "cache", sizes=[SIZE], n=6, batch=6, workers=0, progress=False)
    with pytest.raises(ValueError, match="no warp rows"):
        core.open_cache(teacher, plain)
    true = add_warp(teacher, plain, tmp_path / "cache-true", batch=6, progress=False, true=True)
    with pytest.raises(ValueError, match="true field"):
        core.open_cache(teacher, true)
    cached = add_warp(teacher, plain, tmp_path / "cache-warp", batch=6, progress=False)
    cache = core.open_cache(teacher, cached)
    other = IGRModel.from_pretrained(tmp_path / "teacher")
    with torch.no_grad():                                  # another WarpNet: its warp disagrees with the rows
        other.warpnet.out.bias[:2].fill_(3.0)
    with pytest.raises(ValueError, match="not warped by this model's WarpNet"):
        core.open_cache(other, cached)
    half = IGRModel.from_pretrained(tmp_path / "teacher")
    half.warpnet.half().float()                            # a shipped fp16 copy of the same WarpNet serves
    core.open_cache(half, cached)

    batch = core.cache_batch(cache, 0, 4, seed=0)
    loss = _fixed(lambda g: core.guidance_loss(teacher, teacher, batch, g))
    moved = {**batch, "warp": batch["warp"].flip(0)}       # another row's warp changes the teacher's target
    assert abs(_fixed(lambda g: core.guidance_loss(teacher, teacher, moved, g)) - loss) > 1e-6

    plan = core.student_plan(teacher.config, 2)
    traj = core.load_or_record(teacher, cached, tmp_path / "traj", n=4, timesteps=plan, batch=3, progress=False)
    assert torch.equal(traj["warp"], cache.rows["warp"][:4])
    stored = core.stored_conditioning(core.trajectory_batch(traj, 0, 4, seed=0))
    assert stored.warp is not None and stored.warp.shape == (4, 5, *teacher.config.latent_shape[1:])
    meta = core.trajectory_meta(teacher, plan, 4, 0)
    assert meta["frozen"] != core.trajectory_meta(base, plan, 4, 0)["frozen"]        # the WarpNet is in the digest
    assert distill_main(["guidance", "--teacher", str(tmp_path / "teacher"), "--cache", str(cached), "--out",
                         str(tmp_path / "guided"), "--train-steps", "2", "--batch", "2"]) == 0
    cfg = core.DistillConfig(kind="steps", steps=2, batch=2, warmup=1, student_steps=2, checkpoint_every=0)
    core.distill_steps(teacher, traj, plan, tmp_path / "s2", cfg, source_meta=meta, progress=False)
    student = IGRModel.from_pretrained(tmp_path / "s2" / "final")
    assert all(torch.equal(v, student.warpnet.state_dict()[k]) for k, v in teacher.warpnet.state_dict().items())
    out = sample_items(student, torch.rand(2, 3, *SIZE) * 2 - 1, 0, seed=1)       # restores from the photo alone
    assert out.shape == (2, 3, *SIZE) and torch.isfinite(out).all()


def test_a_readout_is_the_teachers_one_call_estimate_at_t_T_and_bundles_as_a_one_step_graph(tmp_path):
    """`distill readout`: the teacher's weights with a 1-step student's config (DDIM, guidance 1), nothing
    trained; it restores what the teacher's 1-step, unguided sample does from the same noise, its single-call
    graph plans t = 999 alone, and a teacher without zero terminal SNR is refused with nothing written."""
    from convert.bundle import write_bundle
    from igr.pipeline import sample
    from igr_edge.manifest import read_manifest

    torch.manual_seed(7)
    teacher = IGRModel(IGRConfig.tiny().replace(sampler="dpmsolver++", sample_steps=8, guidance_scale=3.0,
                                                zero_snr=True)).eval()
    teacher.save_pretrained(tmp_path / "teacher")
    assert distill_main(["readout", "--model", str(tmp_path / "teacher"), "--out", str(tmp_path / "mean"),
                         "--dtype", "fp32", "--share-with", str(tmp_path / "teacher")]) == 0
    mean = IGRModel.from_pretrained(tmp_path / "mean").eval()
    cfg = mean.config
    assert (cfg.sample_steps, cfg.sampler, cfg.guidance_scale) == (1, "ddim", 1.0)
    meta = json.loads((tmp_path / "mean" / core.META).read_text())
    assert meta["kind"] == "steps" and meta["method"] == "readout" and meta["timesteps"] == [999]
    assert meta["source_denoiser"] == latent_cache.digest(teacher.denoiser)
    assert not (tmp_path / "mean" / "denoiser.safetensors").exists()          # linked to the teacher's
    person = torch.rand(2, 3, cfg.height, cfg.width) * 2 - 1
    noise = torch.randn(2, *cfg.latent_shape)
    got = sample(mean, person, noise=noise)
    assert torch.allclose(got, sample(teacher, person, noise=noise, steps=1, sampler="ddim", guidance_scale=1.0),
                          atol=1e-5)
    assert not torch.allclose(got, sample(teacher, person, noise=noise), atol=1e-2)     # not the teacher's sample

    write_bundle(tmp_path / "mean", tmp_path / "b", variants=["onnx-fp32"], gate_n=3, progress=False)
    manifest = read_manifest(tmp_path / "b")
    assert manifest["kind"] == "single-call" and manifest["steps"] == 1
    assert manifest["scheduler"]["timesteps"] == [999] and manifest["guidance"]["scale"] == 1.0
    assert manifest["provenance"]["distill"]["method"] == "readout"

    teacher.config = teacher.config.replace(zero_snr=False)
    teacher.save_pretrained(tmp_path / "plain")
    with pytest.raises(SystemExit) as e:
        distill_main(["readout", "--model", str(tmp_path / "plain"), "--out", str(tmp_path / "no")])
    assert e.value.code == 2 and not (tmp_path / "no").exists()


def test_a_readout_jump_is_the_teachers_jump_plan_and_bundles_with_its_guidance(tmp_path):
    """`distill readout --jump`: the teacher's weights on its DDIM plan with the timesteps between T and J·T left
    out, guided below T; torch sampling of the folder is the teacher's jump sample, and its single-call graph
    (classifier-free guidance inside) plans the same timesteps and restores the same garment."""
    from convert.bundle import write_bundle
    from convert.graphs import StudentGraph
    from igr.pipeline import sample
    from igr_edge.manifest import read_manifest

    torch.manual_seed(7)
    teacher = IGRModel(IGRConfig.tiny().replace(sampler="dpmsolver++", sample_steps=8, guidance_scale=3.0,
                                                zero_snr=True)).eval()
    teacher.save_pretrained(tmp_path / "teacher")
    assert distill_main(["readout", "--model", str(tmp_path / "teacher"), "--out", str(tmp_path / "jump"),
                         "--jump", "0.3", "--guidance", "2", "--dtype", "fp32"]) == 0
    model = IGRModel.from_pretrained(tmp_path / "jump").eval()
    cfg = model.config
    assert (cfg.sampler, cfg.sample_jump, cfg.guidance_scale, cfg.guidance_below) == ("ddim", 0.3, 2.0, 998)
    meta = json.loads((tmp_path / "jump" / core.META).read_text())
    assert meta["method"] == "readout-jump" and meta["timesteps"] == [999, 249, 124] and meta["steps"] == 3
    assert meta["guided_timesteps"] == [249, 124]
    person = torch.randint(0, 256, (2, cfg.height, cfg.width, 3), dtype=torch.uint8)
    x = person.permute(0, 3, 1, 2).float() / 127.5 - 1
    noise = torch.randn(2, *cfg.latent_shape)
    got = sample(model, x, noise=noise)
    want = sample(teacher, x, noise=noise, sampler="ddim", jump=0.3, guidance_scale=2.0, guidance_below=998)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, sample(teacher, x, noise=noise, sampler="ddim", jump=0.3, guidance_scale=1.0),
                              atol=1e-3)                                    # the guidance is kept
    with torch.no_grad():
        garment, _ = StudentGraph(model, steps=3)(person, noise)
    expected = ((got + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1)
    assert (garment.float() - expected).abs().max() <= 1

    write_bundle(tmp_path / "jump", tmp_path / "b", variants=["onnx-fp32"], gate_n=3, progress=False)
    manifest = read_manifest(tmp_path / "b")
    assert manifest["kind"] == "single-call" and manifest["steps"] == 3
    assert manifest["scheduler"]["timesteps"] == [999, 249, 124]
    assert manifest["guidance"] == {"scale": 2.0, "baked_in": True}
    with pytest.raises(SystemExit) as e:
        distill_main(["readout", "--model", str(tmp_path / "teacher"), "--out", str(tmp_path / "no"),
                      "--jump", "0.01"])                                    # leaves none of the 8 steps
    assert e.value.code == 2 and not (tmp_path / "no").exists()
