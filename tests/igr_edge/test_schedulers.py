"""The SDK's numpy samplers are the diffusers schedulers the teacher is sampled with: same plans bit for bit, same
latents to float32 rounding, and pure functions that need no torch."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from igr_edge.schedulers import SCHEDULERS, NoiseSchedule, plan, sample, scale_input, step

REPO = Path(__file__).resolve().parents[2]
STEPS = (1, 2, 4, 20, 50)
PREDICTIONS = ("v_prediction", "epsilon")
SHAPE = (2, 4, 16, 12)                                   # (N, 4, h, w) latents
U = 2.0 ** -24                                           # float32 unit roundoff


def diffusers_scheduler(name: str, schedule: NoiseSchedule, steps: int):
    """The torch reference, configured as `igr.pipeline.make_scheduler` does, with `set_timesteps(steps)` done."""
    diffusers = pytest.importorskip("diffusers")
    common = dict(num_train_timesteps=schedule.train_timesteps, beta_schedule=schedule.beta_schedule,
                  beta_start=schedule.beta_start, beta_end=schedule.beta_end, prediction_type=schedule.prediction,
                  timestep_spacing="trailing", rescale_betas_zero_snr=schedule.zero_snr)
    if name == "ddim":
        sched = diffusers.DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    elif name == "dpmsolver++":
        sched = diffusers.DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    else:
        sched = diffusers.EulerDiscreteScheduler(**common)
    sched.set_timesteps(steps)
    return sched


def pseudo_model(seed: int = 0):
    """A stand-in denoiser, a fixed function of (x, t): 0.3 x plus noise seeded by t, so differences compound."""
    def predict(x: np.ndarray, t: int) -> np.ndarray:
        r = np.random.default_rng([seed, int(t)]).standard_normal(x.shape, dtype=np.float32)
        return np.float32(0.3) * x + np.float32(0.2) * r
    return predict


def diffusers_loop(sched, noise: np.ndarray, predict) -> np.ndarray:
    """The loop `igr.pipeline.denoise` runs, in torch."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(noise) * sched.init_noise_sigma
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        x = sched.step(torch.from_numpy(predict(x_in.numpy(), int(t))), t, x).prev_sample
    return x.numpy()


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE, dtype=np.float32)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps", (*STEPS, 3, 7, 1000))
def test_plans_are_the_diffusers_schedules(name, steps):
    schedule = NoiseSchedule()
    sched = diffusers_scheduler(name, schedule, steps)
    p = plan(name, schedule, steps)
    assert p.timesteps.dtype == np.int64
    assert np.array_equal(p.timesteps, sched.timesteps.numpy())
    assert p.init_sigma == float(sched.init_noise_sigma)
    ac = sched.alphas_cumprod.numpy()
    assert np.array_equal(p.alphas, ac[p.timesteps])
    if name == "ddim":      # DDIM steps to t - T // S, not always the next timestep (3 and 7 steps)
        prev = p.timesteps - schedule.train_timesteps // steps
        assert np.array_equal(p.alphas_prev, [ac[t] if t >= 0 else sched.final_alpha_cumprod.item() for t in prev])
    else:   # σ = sqrt((1 - ᾱ)/ᾱ): torch's sqrt (MKL) is not correctly rounded, 6 of the 1000 are an ulp off
        np.testing.assert_array_max_ulp(p.sigmas, sched.sigmas.numpy(), maxulp=1)


BETA_SCHEDULES = [("scaled_linear", 0.00085, 0.012), ("linear", 0.00085, 0.012), ("linear", 0.0001, 0.02)]


@pytest.mark.parametrize("beta_schedule, beta_start, beta_end", BETA_SCHEDULES)
@pytest.mark.parametrize("train_timesteps", (1000, 500, 1024))
def test_alphas_cumprod_are_diffusers_bit_for_bit(beta_schedule, beta_start, beta_end, train_timesteps):
    schedule = NoiseSchedule(train_timesteps=train_timesteps, beta_schedule=beta_schedule,
                             beta_start=beta_start, beta_end=beta_end)
    sched = diffusers_scheduler("ddim", schedule, 1)
    assert np.array_equal(schedule.alphas_cumprod(), sched.alphas_cumprod.numpy())


@pytest.mark.parametrize("beta_schedule, beta_start, beta_end", BETA_SCHEDULES)
@pytest.mark.parametrize("train_timesteps", (1000, 500, 1024))
def test_zero_snr_betas_are_diffusers_arithmetic_op_for_op(beta_schedule, beta_start, beta_end, train_timesteps,
                                                           monkeypatch):
    # diffusers' rescale_zero_terminal_snr, with torch's sqrt (MKL, within 0.75 ulp) made correctly rounded like
    # numpy's: then the betas are the same bits, so that sqrt is all that separates the two (next test)
    torch = pytest.importorskip("torch")
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

    plain = NoiseSchedule(train_timesteps=train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                          beta_end=beta_end)
    zero = dataclasses.replace(plain, zero_snr=True)
    monkeypatch.setattr(torch.Tensor, "sqrt", lambda t: torch.from_numpy(np.sqrt(t.numpy())))
    assert np.array_equal(zero.betas(), rescale_zero_terminal_snr(torch.from_numpy(plain.betas())).numpy())


@pytest.mark.parametrize("beta_schedule, beta_start, beta_end", BETA_SCHEDULES)
@pytest.mark.parametrize("train_timesteps", (1000, 500, 1024))
def test_zero_snr_alphas_cumprod_are_diffusers_to_float32_rounding(beta_schedule, beta_start, beta_end,
                                                                   train_timesteps):
    schedule = NoiseSchedule(train_timesteps=train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                             beta_end=beta_end, zero_snr=True)
    ours, ref = schedule.alphas_cumprod(), diffusers_scheduler("ddim", schedule, 1).alphas_cumprod.numpy()
    assert ours[-1] == ref[-1] == 0.0                        # zero terminal SNR: t = T is pure noise
    assert ours[0] == ref[0]                                 # and ᾱ_0 is kept
    # sqrt(ᾱ) - sqrt(ᾱ_T) cancels, so torch's last-bit sqrt differences grow to a few ulps of 1 (9 at most here)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2.0 ** -20)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps", (*STEPS, 3, 7, 1000))
def test_zero_snr_plans_are_the_diffusers_schedules(name, steps):
    schedule = NoiseSchedule(zero_snr=True)
    sched = diffusers_scheduler(name, schedule, steps)
    p = plan(name, schedule, steps)
    assert np.array_equal(p.timesteps, sched.timesteps.numpy()[:steps]) and p.timesteps[0] == 999
    assert p.init_sigma == float(sched.init_noise_sigma)     # Euler: 4096, as torch has it on x86
    ac = sched.alphas_cumprod.numpy()
    assert p.alphas[0] == ac[999] == (0.0 if name == "ddim" else 2.0 ** -24)   # DDIM: ᾱ_T = 0, else 2**-24
    np.testing.assert_allclose(p.alphas, ac[p.timesteps], rtol=0, atol=2.0 ** -20)
    if name == "ddim":
        prev = p.timesteps - schedule.train_timesteps // steps
        ref = [ac[t] if t >= 0 else sched.final_alpha_cumprod.item() for t in prev]
        np.testing.assert_allclose(p.alphas_prev, ref, rtol=0, atol=2.0 ** -20)
    else:   # σ_T = 4096 the same; below, ᾱ's relative difference (largest near T) halves in the sqrt
        assert p.sigmas[0] == float(sched.sigmas[0]) == 4096.0
        np.testing.assert_allclose(p.sigmas, sched.sigmas.numpy(), rtol=1e-5, atol=0)


def test_a_manifest_without_zero_snr_is_the_schedule_it_always_was():
    section = json.loads((REPO / "igr_edge" / "bundles" / "default" / "manifest.json").read_text())["scheduler"]
    section = {k: v for k, v in section.items() if k != "zero_snr"}     # as written before the key existed
    old = NoiseSchedule.from_manifest(section)
    assert old.zero_snr is False and old == NoiseSchedule.from_manifest({**section, "zero_snr": False})
    ref = diffusers_scheduler("ddim", old, 1)                # diffusers without the rescale
    assert np.array_equal(old.betas(), ref.betas.numpy())
    assert np.array_equal(old.alphas_cumprod(), ref.alphas_cumprod.numpy())
    zero = NoiseSchedule.from_manifest({**section, "zero_snr": True})
    assert zero == dataclasses.replace(old, zero_snr=True) and zero.alphas_cumprod()[-1] == 0.0
    assert not np.array_equal(zero.alphas_cumprod(), old.alphas_cumprod())


def assert_parity(ours: np.ndarray, ref: np.ndarray, steps: int, *, factor: float = 1) -> None:
    # The numpy code repeats diffusers' float32 arithmetic op for op on the same plan constants (above), and most
    # latents come out bit-identical. What it cannot repeat is torch's sqrt/log/exp: they come from MKL, within
    # 0.55 ulp rather than correctly rounded, so now and then a step coefficient differs in its last bit (DDIM at
    # 50 steps: sqrt(1 - ᾱ) at t = 359); from there every later step rounds differently, about an ulp a step. So
    # the bound is 1e-6, or steps × the float32 unit roundoff where that is larger, relative to max(1, |x|):
    # epsilon-prediction latents reach ~20 here (and Euler's ~15 σ_max scaling), where one ulp is ~2e-6.
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    err = np.max(np.abs(ours.astype(np.float64) - ref) / np.maximum(1.0, np.abs(ref)))
    assert err <= factor * max(1e-6, steps * U), f"relative error {err:.3g} after {steps} steps"


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("name", SCHEDULERS)
def test_numpy_loop_gives_the_diffusers_latent(name, steps, prediction):
    schedule = NoiseSchedule(prediction=prediction)
    ref = diffusers_loop(diffusers_scheduler(name, schedule, steps), noise(), pseudo_model())
    assert_parity(sample(plan(name, schedule, steps), noise(), pseudo_model()), ref, steps)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_numpy_loop_gives_the_diffusers_latent_on_a_linear_schedule(name):
    schedule = NoiseSchedule(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, train_timesteps=500)
    ref = diffusers_loop(diffusers_scheduler(name, schedule, 7), noise(1), pseudo_model(1))
    assert_parity(sample(plan(name, schedule, 7), noise(1), pseudo_model(1)), ref, 7)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("name", SCHEDULERS)
def test_numpy_loop_gives_the_diffusers_latent_at_zero_terminal_snr_on_the_same_alphas(name, steps):
    # the sampler arithmetic, on the same ᾱ (diffusers given numpy's, which differ in last bits: above): the
    # usual bound. v-prediction only: zero terminal SNR needs it (Lin et al. 2024; DDIM refuses epsilon, below).
    torch = pytest.importorskip("torch")
    schedule = NoiseSchedule(zero_snr=True)
    p = plan(name, schedule, steps)
    sched = diffusers_scheduler(name, schedule, steps)
    ac = schedule.alphas_cumprod()                           # (T,) ᾱ_T = 0
    if name == "ddim":
        sched.final_alpha_cumprod = torch.tensor(ac[0])
    else:
        ac[-1] = 2.0 ** -24
    sched.alphas_cumprod = torch.from_numpy(ac)
    sched.set_timesteps(steps)                               # σ again, from these ᾱ
    ref = diffusers_loop(sched, noise(), pseudo_model())
    assert_parity(sample(p, noise(), pseudo_model()), ref, steps)


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("name", SCHEDULERS)
def test_numpy_loop_gives_the_diffusers_latent_at_zero_terminal_snr(name, steps, seed):
    # end to end against diffusers' own ᾱ: twice the usual bound, for their last-bit differences (2.3e-6 relative
    # at most: DPM-Solver++, 50 steps)
    schedule = NoiseSchedule(zero_snr=True)
    ref = diffusers_loop(diffusers_scheduler(name, schedule, steps), noise(seed), pseudo_model(seed))
    assert_parity(sample(plan(name, schedule, steps), noise(seed), pseudo_model(seed)), ref, steps, factor=2)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_numpy_loop_gives_the_diffusers_latent_at_zero_terminal_snr_on_a_linear_schedule(name):
    schedule = NoiseSchedule(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, train_timesteps=500,
                             zero_snr=True)
    ref = diffusers_loop(diffusers_scheduler(name, schedule, 7), noise(1), pseudo_model(1))
    assert_parity(sample(plan(name, schedule, 7), noise(1), pseudo_model(1)), ref, 7)


def test_a_plan_has_the_steps_asked_for_where_diffusers_adds_a_stray_one():
    # diffusers' trailing spacing, a float np.arange, yields 62 timesteps for 61 steps (the last t = -1)
    sched = diffusers_scheduler("dpmsolver++", NoiseSchedule(), 61)
    p = plan("dpmsolver++", NoiseSchedule(), 61)
    assert p.steps == 61 and p.timesteps.min() >= 0
    assert np.array_equal(p.timesteps, sched.timesteps.numpy()[:61])


def test_the_default_bundle_plan_is_the_one_its_manifest_records():
    manifest = json.loads((REPO / "igr_edge" / "bundles" / "default" / "manifest.json").read_text())
    section = manifest["scheduler"]
    schedule = NoiseSchedule.from_manifest(section)
    distill = manifest["provenance"].get("distill", {})
    if "jump" in distill:            # a jump plan (distill readout --jump): T, then the plan's steps at or below J·T
        dense = plan(section["name"], schedule, distill["of_steps"]).timesteps.tolist()
        timesteps = [dense[0], *(t for t in dense[1:] if t <= distill["jump"] * schedule.train_timesteps)]
        ac = schedule.alphas_cumprod()
        alphas = [*(float(ac[t]) for t in timesteps), float(ac[0])]       # DDIM's end: set_alpha_to_one=False
    else:
        p = plan(section["name"], schedule, manifest["steps"])
        timesteps = p.timesteps.tolist()
        alphas = [*map(float, p.alphas), float(p.alphas_prev[-1])]
    assert timesteps == section["timesteps"] and len(timesteps) == manifest["steps"]
    if section["name"] == "ddim" and "coefficients" in section:    # what the single-call graph bakes in
        # the converter rescales a zero-SNR schedule in float32 (diffusers), the SDK in float64: ~1e-7 apart in ᾱ,
        # which sqrt(1 - ᾱ) near t = 0 (a jump plan's t = 19: 1 - ᾱ = 0.019) magnifies to ~3e-6 relative
        ours = [[math.sqrt(a), math.sqrt(1 - a)] for a in alphas]
        assert np.allclose(ours, section["coefficients"], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_step_and_scale_input_are_pure(name):
    p = plan(name, NoiseSchedule(), 4)
    x, out, x0_prev = noise(0), noise(1), noise(2)
    before = [a.copy() for a in (x, out, x0_prev)]
    history = (x0_prev,) if name == "dpmsolver++" else ()
    scale_input(p, 1, x)
    first, first_history = step(p, 1, x, out, history)
    again, again_history = step(p, 1, x, out, history)
    for a, b in zip((x, out, x0_prev), before):
        assert np.array_equal(a, b)
    assert first.dtype == np.float32 and first.shape == SHAPE
    assert np.array_equal(first, again)                    # no hidden state: same inputs, same step
    assert len(first_history) == len(again_history) == (1 if name == "dpmsolver++" else 0)
    with pytest.raises(ValueError, match="read-only"):
        p.sigmas[0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "ddim"


def test_dpm_solver_history_is_what_makes_it_second_order():
    p = plan("dpmsolver++", NoiseSchedule(), 4)
    x, out, x0_prev = noise(0), noise(1), noise(2)
    assert not np.array_equal(step(p, 1, x, out, (x0_prev,))[0], step(p, 1, x, out, ())[0])
    assert np.array_equal(step(p, 3, x, out, (x0_prev,))[0], step(p, 3, x, out, ())[0])   # first order at the end


@pytest.mark.parametrize("name", SCHEDULERS)
def test_sample_is_a_function_of_its_inputs(name):
    p = plan(name, NoiseSchedule(), 4)
    z = noise()
    kept = z.copy()
    calls = []

    def predict(x, t):
        calls.append(t)
        return pseudo_model()(x, t)

    out = sample(p, z, predict)
    assert out.dtype == np.float32 and out.shape == SHAPE
    assert calls == p.timesteps.tolist() and all(type(t) is int for t in calls)
    assert np.array_equal(out, sample(p, z, pseudo_model()))
    assert np.array_equal(z, kept)
    assert not np.array_equal(out, sample(p, z, pseudo_model(seed=1)))


@pytest.mark.parametrize("call, message", [
    (lambda: plan("heun", NoiseSchedule(), 4), r"unknown scheduler 'heun' \(choose one of ddim, dpmsolver\+\+, euler"),
    (lambda: plan("ddim", NoiseSchedule(), 0), "steps must be an integer from 1 to 1000"),
    (lambda: plan("ddim", NoiseSchedule(), 1001), "steps must be an integer from 1 to 1000"),
    (lambda: plan("ddim", NoiseSchedule(), 2.0), "steps must be an integer from 1 to 1000"),
    (lambda: NoiseSchedule(beta_schedule="squaredcos_cap_v2"), "choose one of scaled_linear, linear"),
    (lambda: NoiseSchedule(prediction="sample"), "choose one of v_prediction, epsilon"),
    (lambda: NoiseSchedule.from_manifest({"timestep_spacing": "leading"}), "choose one of trailing"),
    (lambda: NoiseSchedule.from_manifest({"zero_snr": "true"}), "zero_snr must be true or false, not 'true'"),
    (lambda: plan("ddim", NoiseSchedule(prediction="epsilon", zero_snr=True), 4), "needs a v-prediction model"),
    (lambda: step(plan("ddim", NoiseSchedule(), 2), 2, noise(), noise()), "outside this 2-step plan"),
])
def test_bad_arguments_raise_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_schedulers_import_without_torch():
    code = "import igr_edge.schedulers, sys; assert not {'torch', 'diffusers'} & set(sys.modules), 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
