"""The IGR architecture is what it claims: shapes, both garment paths, the reference bank, files, seeds."""
import copy

import pytest
import torch

from igr.config import ConfigError, IGRConfig
from igr.model import COMPONENTS, Conditioning, IGRModel
from igr.pipeline import make_scheduler, sample

CFG = IGRConfig.tiny()


def _latent_and_t(batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *CFG.latent_shape), generator=g), torch.full((batch,), 500)


def test_shapes(tiny_model, person):
    person2 = torch.cat([person, -person])
    cond = tiny_model.condition(person2)
    assert cond.image_tokens.shape == (2, CFG.encoder.tokens, CFG.unet.cross_attention_dim)
    assert set(cond.reference) == set(tiny_model.denoiser.block_names)
    for name, tokens in cond.reference.items():
        assert tokens.shape[0] == 2 and tokens.ndim == 3, name
    z, t = _latent_and_t(2)
    assert tiny_model.predict(z, t, cond).shape == (2, *CFG.latent_shape)
    out = sample(tiny_model, person2, steps=2)
    assert out.shape == (2, 3, CFG.height, CFG.width)
    assert out.min() >= -1 and out.max() <= 1


def test_latent_is_a_factor_8_downsample():
    assert IGRConfig.small().latent_shape == (4, 32, 24)


def test_low_level_path_reaches_the_output(tiny_model, person, other_person):
    a, b = tiny_model.condition(person), tiny_model.condition(other_person)
    z, t = _latent_and_t()
    mixed = Conditioning(b.reference, a.image_tokens)          # only GarmNet sees the other person
    assert not torch.allclose(tiny_model.predict(z, t, a), tiny_model.predict(z, t, mixed))
    low_a = sample(tiny_model, person, steps=2, cond=tiny_model.condition(person, keep_high=False))
    low_b = sample(tiny_model, other_person, steps=2, cond=tiny_model.condition(other_person, keep_high=False))
    assert not torch.allclose(low_a, low_b)


def test_high_level_path_reaches_the_output(tiny_model, person, other_person):
    a, b = tiny_model.condition(person), tiny_model.condition(other_person)
    z, t = _latent_and_t()
    mixed = Conditioning(a.reference, b.image_tokens)          # only the image encoder sees the other person
    assert not torch.allclose(tiny_model.predict(z, t, a), tiny_model.predict(z, t, mixed))
    high_a = sample(tiny_model, person, steps=2, cond=tiny_model.condition(person, keep_low=False))
    high_b = sample(tiny_model, other_person, steps=2, cond=tiny_model.condition(other_person, keep_low=False))
    assert not torch.allclose(high_a, high_b)


def test_with_both_paths_dropped_the_output_ignores_the_person(tiny_model, person, other_person):
    out_a = sample(tiny_model, person, steps=2, cond=tiny_model.condition(person, keep_low=False, keep_high=False))
    out_b = sample(tiny_model, other_person, steps=2,
                   cond=tiny_model.condition(other_person, keep_low=False, keep_high=False))
    assert torch.equal(out_a, out_b)


def test_per_sample_dropout_drops_only_flagged_samples(tiny_model, person, other_person):
    both = torch.cat([person, other_person])
    cond = tiny_model.condition(both, keep_low=torch.tensor([True, False]), keep_high=torch.tensor([True, False]))
    assert cond.image_tokens[0].abs().sum() > 0 and cond.image_tokens[1].abs().sum() == 0
    for tokens in cond.reference.values():
        assert tokens[0].abs().sum() > 0 and tokens[1].abs().sum() == 0


def test_reference_bank_is_empty_after_every_forward(tiny_model, person):
    cond = tiny_model.condition(person)
    assert len(tiny_model.garmnet.bank) == 0 and tiny_model.garmnet.bank.mode is None
    z, t = _latent_and_t()
    tiny_model.predict(z, t, cond)
    assert len(tiny_model.denoiser.bank) == 0 and tiny_model.denoiser.bank.mode is None
    # a failing forward clears it too, and the next call works
    broken = Conditioning(dict(list(cond.reference.items())[1:]), cond.image_tokens)
    with pytest.raises(KeyError, match="no GarmNet tokens"):
        tiny_model.predict(z, t, broken)
    assert len(tiny_model.denoiser.bank) == 0 and tiny_model.denoiser.bank.mode is None
    tiny_model.predict(z, t, cond)


def test_denoiser_refuses_to_run_without_garmnet_tokens(tiny_model):
    z, t = _latent_and_t()
    context = torch.zeros(1, CFG.unet.prompt_tokens + CFG.encoder.tokens, CFG.unet.cross_attention_dim)
    with pytest.raises(RuntimeError, match="outside ReferenceBank.reading"):
        tiny_model.denoiser.unet(z, t, encoder_hidden_states=context)


def test_no_cross_talk_between_calls_or_batch_rows(tiny_model, person, other_person):
    a, b = tiny_model.condition(person), tiny_model.condition(other_person)
    z, t = _latent_and_t()
    first = tiny_model.predict(z, t, a)
    tiny_model.predict(z, t, b)                                # a call with another person in between
    assert torch.equal(tiny_model.predict(z, t, a), first)
    batched = tiny_model.predict(torch.cat([z, z]), torch.cat([t, t]), Conditioning.cat([a, b]))
    assert torch.allclose(batched[0:1], first, atol=1e-5)
    assert torch.allclose(batched[1:2], tiny_model.predict(z, t, b), atol=1e-5)


def test_same_seed_same_output_other_seed_other_output(tiny_model, person):
    assert torch.equal(sample(tiny_model, person, steps=3, seed=7), sample(tiny_model, person, steps=3, seed=7))
    assert not torch.equal(sample(tiny_model, person, steps=3, seed=7), sample(tiny_model, person, steps=3, seed=8))


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++"])
def test_guidance_changes_the_sample(tiny_model, person, sampler):
    plain = sample(tiny_model, person, steps=3, guidance_scale=1.0, sampler=sampler)
    guided = sample(tiny_model, person, steps=3, guidance_scale=3.0, sampler=sampler)
    assert not torch.allclose(plain, guided)


def test_unknown_sampler_is_refused():
    with pytest.raises(ValueError, match="unknown sampler 'euler-x'"):
        make_scheduler(CFG, "euler-x")


def test_save_load_round_trips_bit_exactly(tiny_model, person, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json"] + [f"{c}.safetensors" for c in COMPONENTS])
    loaded = IGRModel.from_pretrained(folder)
    assert loaded.config == tiny_model.config
    ours, theirs = tiny_model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(sample(loaded, person, steps=2), sample(tiny_model, person, steps=2))
    assert not list(tmp_path.glob(".model.*")), "temporary folder left behind"


def test_save_replaces_an_earlier_folder_and_fp16_halves_the_files(tiny_model, tmp_path):
    full = tiny_model.save_pretrained(tmp_path / "m32")
    half = tiny_model.save_pretrained(tmp_path / "m16", dtype=torch.float16)
    size = lambda f: sum(p.stat().st_size for p in f.glob("*.safetensors"))
    assert size(half) < 0.6 * size(full)
    tiny_model.save_pretrained(tmp_path / "m16")               # overwrite in place
    assert size(tmp_path / "m16") == size(full)
    assert IGRModel.from_pretrained(half).vae.encoder.conv_in.weight.dtype == torch.float32


def test_from_pretrained_names_what_is_missing(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    (folder / "garmnet.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="garmnet.safetensors"):
        IGRModel.from_pretrained(folder)


def test_diffusion_loss_trains_both_extractors(tiny_model, person, other_person):
    model = copy.deepcopy(tiny_model).train()
    both = torch.cat([person, other_person])
    g = torch.Generator().manual_seed(0)
    loss = model.diffusion_loss(both, both, generator=g, dropout=0.0)
    assert torch.isfinite(loss)
    loss.backward()
    grad = lambda m: sum(p.grad.abs().sum() for p in m.parameters() if p.grad is not None)
    assert grad(model.garmnet) > 0 and grad(model.image_encoder) > 0 and grad(model.denoiser) > 0
    assert all(p.grad is None for p in model.vae.parameters()), "the VAE is frozen during diffusion training"


def test_full_condition_dropout_cuts_both_extractors_off(tiny_model, person):
    model = copy.deepcopy(tiny_model).train()
    loss = model.diffusion_loss(person, person, generator=torch.Generator().manual_seed(0), dropout=1.0)
    loss.backward()
    for part in (model.garmnet, model.image_encoder):
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in part.parameters())


def test_a_deep_copy_is_independent(tiny_model, person):
    twin = copy.deepcopy(tiny_model)
    assert twin.denoiser.bank is not tiny_model.denoiser.bank
    assert torch.equal(sample(twin, person, steps=2), sample(tiny_model, person, steps=2))


def test_config_round_trip_defaults_and_unknown_fields(tmp_path):
    cfg = IGRConfig.tiny()
    assert IGRConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["guidance_scale"]                                  # a folder written before the field existed
    assert IGRConfig.from_dict(old).guidance_scale == IGRConfig().guidance_scale
    with pytest.raises(ConfigError, match="unknown field.*wobble"):
        IGRConfig.from_dict({**cfg.to_dict(), "wobble": 1})
    with pytest.raises(ConfigError, match="unknown preset"):
        IGRConfig.preset("huge")


def test_an_ablated_path_never_reaches_the_output(tiny_model, person, other_person):
    low_only = copy.deepcopy(tiny_model)
    low_only.config = low_only.config.replace(use_high=False)
    a, b = low_only.condition(person), low_only.condition(other_person)
    assert a.image_tokens.abs().sum() == 0 and b.image_tokens.abs().sum() == 0
    assert any(v.abs().sum() > 0 for v in a.reference.values())


def test_pack_writes_fp16_and_refuses_to_clobber(tiny_model, tmp_path, capsys):
    from igr.model.__main__ import main as model_main

    src = tiny_model.save_pretrained(tmp_path / "run")
    assert model_main(["pack", "--from", str(src), "--out", str(tmp_path / "ship")]) == 0
    packed = IGRModel.from_pretrained(tmp_path / "ship")
    w, v = tiny_model.vae.encoder.conv_in.weight, packed.vae.encoder.conv_in.weight
    assert torch.equal(v, w.half().float()) and not torch.equal(v, w)      # really rounded to fp16
    assert model_main(["pack", "--from", str(src), "--out", str(tmp_path / "ship")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert model_main(["pack", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_sample_items_does_not_depend_on_batching(tiny_model, person, other_person):
    from igr.pipeline import sample_items

    both = sample_items(tiny_model, torch.cat([person, other_person]), 10, steps=2, seed=3)
    one = sample_items(tiny_model, person, 10, steps=2, seed=3)
    two = sample_items(tiny_model, other_person, 11, steps=2, seed=3)
    assert torch.allclose(both, torch.cat([one, two]), atol=1e-5)
    assert not torch.allclose(one, sample_items(tiny_model, person, 11, steps=2, seed=3), atol=1e-3)


def test_an_aligned_prior_transplanted_onto_a_model_changes_nothing_until_trained(tmp_path):
    torch.manual_seed(0)
    base = IGRModel(IGRConfig.tiny())
    model = IGRModel(base.config.replace(aligned_prior=True))
    fresh = model.transplant(base)
    assert "denoiser.unet.conv_in.weight[:, 4:] (zero)" in fresh
    assert all(f.startswith("prior.") or "conv_in.weight[" in f for f in fresh)
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    zt, t = torch.randn(2, 4, 8, 6), torch.tensor([100, 900])
    with torch.no_grad():
        a = base.predict(zt, t, base.condition(person))
        cond = model.condition(person)
        b = model.predict(zt, t, cond)
    assert cond.prior.shape == (2, 4, 8, 6) and torch.equal(cond.null().prior, torch.zeros_like(cond.prior))
    torch.testing.assert_close(a, b)
    parts = {}
    loss = model.diffusion_loss(person, person, parts=parts)
    assert loss.item() == pytest.approx(parts["v_mse"] + parts["prior_l1"], rel=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = IGRModel.from_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "prior.safetensors").is_file()
    for k, v in model.prior.state_dict().items():
        assert torch.equal(v, again.prior.state_dict()[k])


def test_a_model_without_the_prior_keeps_the_latent_channels_of_one_with_it():
    """The lean student's start: transplanted from a prior model, the denoiser keeps the latent channels' input
    weights; where the prior's channels weigh nothing the two predict alike."""
    torch.manual_seed(0)
    with_prior = IGRModel(IGRConfig.tiny().replace(aligned_prior=True))
    lean = IGRModel(with_prior.config.replace(aligned_prior=False))
    fresh = lean.transplant(with_prior)
    assert fresh == ["denoiser.unet.conv_in.weight (the source's first 4 input channels)"]
    assert lean.prior is None and lean.denoiser.unet.conv_in.weight.shape[1] == 4
    torch.testing.assert_close(lean.denoiser.unet.conv_in.weight, with_prior.denoiser.unet.conv_in.weight[:, :4])
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    zt, t = torch.randn(2, 4, 8, 6), torch.tensor([100, 900])
    with torch.no_grad():
        differs = (with_prior.predict(zt, t, with_prior.condition(person))
                   - lean.predict(zt, t, lean.condition(person))).abs().max()
        with_prior.denoiser.unet.conv_in.weight[:, 4:] = 0
        a = with_prior.predict(zt, t, with_prior.condition(person))
        b = lean.predict(zt, t, lean.condition(person))
    assert differs > 1e-3                                 # the prior's channels did count
    torch.testing.assert_close(a, b)


def test_attention_added_at_a_level_starts_as_identity_after_transplant():
    """Finer reference tokens (attention, hence GarmNet fusion, at the first level too): the new transformer
    blocks start with a zero output projection, so the model predicts what its source did until trained."""
    torch.manual_seed(0)
    base = IGRModel(IGRConfig.tiny())
    assert not base.config.unet.attention[0]
    fine = [True] * len(base.config.unet.attention)
    model = IGRModel(base.config.replace(unet={"attention": fine}))
    fresh = model.transplant(base)
    assert any("down_blocks.0.attentions.0" in f for f in fresh) and any("up_blocks" in f for f in fresh)
    assert all(".attentions." in f for f in fresh), fresh
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    zt, t = torch.randn(2, 4, 8, 6), torch.tensor([100, 900])
    with torch.no_grad():
        a = base.predict(zt, t, base.condition(person))
        b = model.predict(zt, t, model.condition(person))
    torch.testing.assert_close(a, b)
    out = model.denoiser.unet.down_blocks[0].attentions[0].proj_out
    assert torch.count_nonzero(out.weight) == 0
    inner = model.denoiser.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    assert torch.count_nonzero(inner) > 0, "only the output projection starts at zero"


def test_zero_snr_reaches_pure_noise_in_training_and_sampling():
    from igr.pipeline import make_scheduler

    cfg = IGRConfig.tiny()
    assert IGRModel(cfg).noise_scheduler().alphas_cumprod[-1] > 0.004       # the old schedule keeps signal
    zero = IGRModel(cfg.replace(zero_snr=True))
    assert zero.noise_scheduler().alphas_cumprod[-1] == 0
    for sampler in ("ddim", "dpmsolver++"):
        sched = make_scheduler(zero.config, sampler)
        sched.set_timesteps(4)
        assert int(sched.timesteps[0]) == cfg.train_timesteps - 1
        assert sched.config.rescale_betas_zero_snr


def test_the_aligned_prior_stands_alone_as_the_regression_baseline(tmp_path):
    from igr.baseline import RegressionModel, main as baseline_main

    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(aligned_prior=True))
    model.save_pretrained(tmp_path / "m")
    assert baseline_main(["--from-prior", str(tmp_path / "m"), "--out", str(tmp_path / "b")]) == 0
    base = RegressionModel.from_pretrained(tmp_path / "b")
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(base.predict(person), model.prior(model.encode(person)))
    IGRModel(IGRConfig.tiny()).save_pretrained(tmp_path / "plain")
    assert baseline_main(["--from-prior", str(tmp_path / "plain"), "--out", str(tmp_path / "c")]) == 2


def test_sampling_can_start_from_the_aligned_prior_noised_part_way():
    from igr.pipeline import prior_start

    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(zero_snr=True, aligned_prior=True)).eval()
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        cond = model.condition(person)
        noise = torch.randn(2, 4, 8, 6)
        start, plan = prior_start(model, cond, noise, 10, 0.5)
        assert plan and max(plan) <= 500 and plan == sorted(plan, reverse=True)
        ab = model.noise_scheduler().alphas_cumprod[plan[0]]
        torch.testing.assert_close(start, ab.sqrt() * cond.prior + (1 - ab).sqrt() * noise)
        full, part = sample(model, person, steps=10), sample(model, person, steps=10, strength=0.5)
    assert full.shape == part.shape and not torch.equal(full, part)
    with pytest.raises(ValueError, match="aligned prior"):
        prior_start(model, Conditioning(cond.reference, cond.image_tokens), noise, 10, 0.5)


def test_a_jump_plan_keeps_t_T_then_the_plan_from_j_T():
    from igr.pipeline import jump_plan

    zero = IGRConfig.tiny().replace(zero_snr=True)
    for sampler in ("ddim", "dpmsolver++"):
        sched = make_scheduler(zero, sampler)
        sched.set_timesteps(10)
        full = [int(t) for t in sched.timesteps]
        plan = jump_plan(zero, 10, 0.5, sampler)
        assert plan[0] == full[0] == zero.train_timesteps - 1
        assert plan[1:] == [t for t in full if t <= 500] and len(plan) < len(full)
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="jump must be in"):
            jump_plan(zero, 10, bad)
    with pytest.raises(ValueError, match="leaves none"):
        jump_plan(zero, 2, 0.01)
    with pytest.raises(ValueError, match="zero terminal SNR"):
        jump_plan(IGRConfig.tiny(), 10, 0.5)


def test_a_jump_carries_the_conditional_estimate_at_t_T_to_j_T():
    """A jump plan: the latent entering the second timestep is the x0 of one conditional call at T (no signal there,
    so x0 = -v) noised by the start noise to that timestep (DPM-Solver++'s first step is first order, DDIM's);
    guidance_below keeps that call unguided."""
    from igr.pipeline import denoise, jump_plan

    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(zero_snr=True)).eval()
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    noise = torch.randn(2, 4, 8, 6)
    plan = jump_plan(model.config, 10, 0.5, "dpmsolver++")
    with torch.no_grad():
        cond = model.condition(person)
        record = {}
        denoise(model, cond, noise, timesteps=plan, sampler="dpmsolver++", guidance_scale=2.0, guidance_below=plan[1],
                record=record)
        x0 = -model.predict(noise, torch.full((2,), plan[0]), cond)
        ab = model.noise_scheduler().alphas_cumprod[plan[1]]
    assert list(record) == plan
    torch.testing.assert_close(record[plan[1]], ab.sqrt() * x0 + (1 - ab).sqrt() * noise, atol=1e-3, rtol=1e-3)


def test_guidance_below_guides_only_the_late_calls(tiny_model, person):
    calls = []
    predict = tiny_model.predict

    def counting(x, t, cond):
        calls.append((int(t[0]), len(x)))
        return predict(x, t, cond)

    tiny_model.predict = counting
    try:
        kw = dict(steps=4, guidance_scale=3.0, sampler="ddim", seed=1)
        guided, plain = sample(tiny_model, person, **kw), sample(tiny_model, person, **{**kw, "guidance_scale": 1.0})
        calls.clear()
        late = sample(tiny_model, person, guidance_below=500, **kw)
        assert [n for _, n in calls] == [len(person) * (2 if t <= 500 else 1) for t, _ in calls]
        assert {n for _, n in calls} == {len(person), 2 * len(person)}
        torch.testing.assert_close(sample(tiny_model, person, guidance_below=10_000, **kw), guided)
        torch.testing.assert_close(sample(tiny_model, person, guidance_below=-1, **kw), plain)
    finally:
        del tiny_model.predict
    assert not torch.allclose(late, guided) and not torch.allclose(late, plain)


def test_ddim_on_an_explicit_plan_steps_to_each_next_timestep():
    """diffusers' DDIM steps t -> t - T // steps whatever plan it is handed; an explicit plan steps to its own next
    timestep: on the uniform plan it matches the scheduler's own steps, on a jump plan it lands on the jump."""
    from igr.pipeline import denoise, jump_plan

    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(zero_snr=True)).eval()
    person = torch.rand(1, 3, 64, 48) * 2 - 1
    noise = torch.randn(1, 4, 8, 6)
    sched = make_scheduler(model.config, "ddim")
    sched.set_timesteps(4)
    uniform = [int(t) for t in sched.timesteps]
    with torch.no_grad():
        cond = model.condition(person)
        own = denoise(model, cond, noise, steps=4, sampler="ddim", guidance_scale=1.0)
        explicit = denoise(model, cond, noise, timesteps=uniform, sampler="ddim", guidance_scale=1.0)
        record = {}
        plan = jump_plan(model.config, 10, 0.2, "ddim")
        denoise(model, cond, noise, timesteps=plan, sampler="ddim", guidance_scale=1.0, record=record)
        ab = model.noise_scheduler().alphas_cumprod[plan[1]]
        x0 = -model.predict(noise, torch.full((1,), plan[0]), cond)
    torch.testing.assert_close(explicit, own, atol=1e-5, rtol=1e-4)
    assert list(record) == plan
    torch.testing.assert_close(record[plan[1]], ab.sqrt() * x0 + (1 - ab).sqrt() * noise, atol=1e-5, rtol=1e-4)


def test_a_jump_from_averaged_estimates_at_t_T():
    """jump_start with the start noise alone is where the sampler's own jump lands; more noises average their
    estimates at T (so the start moves), and the items stay independent of batching."""
    from igr.pipeline import denoise, jump_plan, jump_start, sample_items

    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(zero_snr=True)).eval()
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    noise, other = torch.randn(2, 4, 8, 6), torch.randn(2, 4, 8, 6)
    plan = jump_plan(model.config, 10, 0.3, "ddim")
    with torch.no_grad():
        cond = model.condition(person)
        record = {}
        denoise(model, cond, noise, timesteps=plan, sampler="ddim", guidance_scale=1.0, record=record)
        one, two = jump_start(model, cond, [noise], plan[1]), jump_start(model, cond, [noise, other], plan[1])
        kw = dict(steps=10, jump=0.3, sampler="ddim", guidance_scale=1.0)
        k1, k3 = sample_items(model, person, 4, **kw), sample_items(model, person, 4, jump_mean=3, **kw)
        split = torch.cat([sample_items(model, person[:1], 4, jump_mean=3, **kw),
                           sample_items(model, person[1:], 5, jump_mean=3, **kw)])
    torch.testing.assert_close(one, record[plan[1]], atol=1e-5, rtol=1e-4)
    assert (two - one).abs().mean() > 1e-3 and (k3 - k1).abs().mean() > 1e-4
    torch.testing.assert_close(split, k3, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="jump_mean"):
        sample_items(model, person, 0, jump_mean=0, **kw)
    with pytest.raises(ValueError, match="give jump"):
        sample_items(model, person, 0, jump_mean=2, steps=10)


def test_denoiser_rows_count_a_plan_and_its_guided_steps():
    from igr.pipeline import denoiser_rows

    cfg = IGRConfig.tiny().replace(zero_snr=True, sample_steps=10, guidance_scale=1.5)
    assert denoiser_rows(cfg) == 20 and denoiser_rows(cfg, guidance_scale=1.0) == 10
    assert denoiser_rows(cfg, steps=4) == 8
    jump = cfg.replace(sampler="ddim", sample_jump=0.3, guidance_below=998)      # 999, then 299 and 199 and 99
    assert denoiser_rows(jump) == 1 + 2 * 3
    assert denoiser_rows(jump.replace(guidance_below=150)) == 1 + 1 + 1 + 2     # only 99 guided
