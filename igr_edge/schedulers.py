"""The teacher's samplers in numpy: DDIM, DPM-Solver++ (2M) and Euler as pure functions over arrays.

Why: the SDK runs the teacher's multi-step loop itself over the ONNX component graphs (DESIGN.md §5-6), on
devices without torch. Each sampler mirrors the diffusers 0.42 scheduler `igr.pipeline.make_scheduler` builds
(trailing timestep spacing, diffusers' defaults otherwise), down to its float32 arithmetic and the order of it,
and builds bit-identical betas, so the numpy loop and the torch loop agree to float32 rounding: most latents come
out bit-identical, the rest within 1e-6 or an ulp a step, where torch's sqrt/log/exp (MKL, not correctly rounded)
land on the other side of a last bit than numpy's (tests/igr_edge/test_schedulers.py). A zero terminal SNR
schedule (`zero_snr`, Lin et al. 2024; diffusers' `rescale_betas_zero_snr`) takes a square root of ᾱ in building
its betas, and torch's float32 sqrt (MKL, within 0.75 ulp) is not numpy's (correctly rounded): there ᾱ agrees to
float32 rounding (within 2**-20), not bit for bit, and the latents to twice the bounds above (on the same ᾱ, to
the bounds above).

What: `plan(name, schedule, steps)` computes once everything a sampler needs for `steps` steps (a frozen `Plan`);
`step(plan, i, x, model_output, history)` is one step, a pure function returning the next latent and the new
history (DPM-Solver++ 2M keeps the previous x0 prediction there); `sample` is the whole loop. No hidden state,
no torch: the same arithmetic a single-call graph bakes in.

    p = plan("dpmsolver++", NoiseSchedule.from_manifest(manifest["scheduler"]), 20)
    latent = sample(p, noise, lambda x, t: denoiser(x, t))          # (N, 4, h, w) float32
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SCHEDULERS = ("ddim", "dpmsolver++", "euler")
BETA_SCHEDULES = ("scaled_linear", "linear")
PREDICTIONS = ("v_prediction", "epsilon")
TIMESTEP_SPACINGS = ("trailing",)

_f32 = np.float32


@dataclass(frozen=True)
class NoiseSchedule:
    """The training noise schedule: DDPM betas (Ho et al. 2020), `scaled_linear` as in Stable Diffusion."""

    train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"     # or "linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    prediction: str = "v_prediction"         # what the denoiser predicts: v (Salimans & Ho 2022) or "epsilon"
    zero_snr: bool = False                   # betas rescaled to zero terminal SNR (Lin et al. 2024): ᾱ_T = 0

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unsupported beta schedule {self.beta_schedule!r} "
                             f"(choose one of {', '.join(BETA_SCHEDULES)})")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unsupported prediction {self.prediction!r} (choose one of {', '.join(PREDICTIONS)})")
        if type(self.train_timesteps) is not int or self.train_timesteps < 2:
            raise ValueError(f"train_timesteps must be an integer >= 2, not {self.train_timesteps!r}")
        if type(self.zero_snr) is not bool:
            raise ValueError(f"zero_snr must be true or false, not {self.zero_snr!r}")

    @classmethod
    def from_manifest(cls, scheduler: dict) -> NoiseSchedule:
        """The schedule a bundle manifest's `scheduler` section names (its plan-specific keys are ignored; a
        manifest written before zero terminal SNR has no `zero_snr` and is the schedule it always was)."""
        spacing = scheduler.get("timestep_spacing", "trailing")
        if spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"unsupported timestep spacing {spacing!r} "
                             f"(choose one of {', '.join(TIMESTEP_SPACINGS)})")
        d = cls()
        return cls(train_timesteps=int(scheduler.get("train_timesteps", d.train_timesteps)),
                   beta_schedule=scheduler.get("beta_schedule", d.beta_schedule),
                   beta_start=float(scheduler.get("beta_start", d.beta_start)),
                   beta_end=float(scheduler.get("beta_end", d.beta_end)),
                   prediction=scheduler.get("prediction", d.prediction),
                   zero_snr=scheduler.get("zero_snr", d.zero_snr))

    def betas(self) -> np.ndarray:
        """β_t (T,) float32, bit for bit as diffusers builds them with `torch.linspace` on an AVX2/AVX512 CPU
        (rescaled to zero terminal SNR: to float32 rounding, see the module docstring)."""
        if self.beta_schedule == "scaled_linear":
            betas = np.square(_torch_linspace_f32(self.beta_start ** 0.5, self.beta_end ** 0.5, self.train_timesteps))
        else:
            betas = _torch_linspace_f32(self.beta_start, self.beta_end, self.train_timesteps)
        return _rescale_zero_terminal_snr(betas) if self.zero_snr else betas

    def alphas_cumprod(self) -> np.ndarray:
        """ᾱ_t = Π(1 - β) (T,) float32; the product runs in float64 and rounds each entry, as torch.cumprod does.

        With `zero_snr`, ᾱ_T is 0 exactly (DDIM samples from there); DPM-Solver++ and Euler need a finite σ_T and
        move it to 2**-24, as diffusers does (`plan`)."""
        alphas = _f32(1.0) - self.betas()                                     # (T,) float32
        return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


def _rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Betas whose ᾱ_T is 0 and ᾱ_0 unchanged: sqrt(ᾱ) shifted and scaled linearly (Lin et al. 2024, Algorithm 1),
    in diffusers' `rescale_zero_terminal_snr` float32 arithmetic, op for op."""
    alphas_cumprod = np.cumprod((_f32(1.0) - betas).astype(np.float64)).astype(np.float32)   # (T,) as torch.cumprod
    root = np.sqrt(alphas_cumprod)                                            # (T,) sqrt(ᾱ)
    first, last = root[0], root[-1]
    root = (root - last) * (first / (first - last))                           # sqrt(ᾱ_T) = 0, sqrt(ᾱ_0) kept
    alphas_cumprod = root * root
    alphas = np.concatenate([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])   # (T,) undo the cumprod
    return _f32(1.0) - alphas


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """`torch.linspace(start, end, steps, dtype=float32)` on CPU: start + step*i for the first half and
    end - step*(steps-1-i) for the rest, each a float32 fused multiply-add (what torch's AVX2/AVX512 kernels
    compile to; its plain-C build rounds the product first, a last-bit difference in 10-15% of the betas)."""
    s, e = _f32(start), _f32(end)
    step = (e - s) / _f32(steps - 1)                                          # float32, as torch computes it
    i = np.arange(steps)
    first = i < steps // 2
    base = np.where(first, np.float64(s), np.float64(e))                      # (T,)
    prod = np.where(first, 1.0, -1.0) * np.float64(step) * np.where(first, i, steps - 1 - i)   # exact
    return _round_sum_f32(base, prod)


def _round_sum_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32(a + b) rounded once, as a fused multiply-add does (a, b float64 holding exact values).

    The float64 sum rounds first; where that lands exactly half-way between two float32s, its rounding error
    (TwoSum, Knuth) says on which side the exact sum lies, so the result never suffers double rounding."""
    s = a + b
    bv = s - a
    err = (a - (s - bv)) + (b - bv)                                           # exact: a + b = s + err
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(s > r64, np.inf, -np.inf).astype(np.float32)).astype(np.float64)
    tie = (s != r64) & (s - r64 == other - s) & (err != 0)                   # s is a float32 midpoint
    past = np.sign(err) == np.sign(other - s)                                 # the exact sum lies toward `other`
    return np.where(tie & past, other, r64).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Plan:
    """One sampler's plan for `steps` steps: timesteps and the float32 per-step constants it needs (read-only)."""

    name: str                  # one of SCHEDULERS
    prediction: str            # "v_prediction" or "epsilon"
    timesteps: np.ndarray      # (S,) int64, descending: the model's t at step i
    alphas: np.ndarray         # (S,) float32 ᾱ at timesteps[i]
    alphas_prev: np.ndarray    # (S,) float32 ᾱ that DDIM step i lands on (t_i - T//S; ᾱ_0 past the end)
    sigmas: np.ndarray         # (S + 1,) float32 σ = sqrt((1 - ᾱ)/ᾱ) at each timestep, then 0 (DPM-Solver++, Euler)
    init_sigma: float          # the starting latent is noise * init_sigma (σ_max for Euler, else 1)

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def plan(name: str, schedule: NoiseSchedule, steps: int) -> Plan:
    """The `steps`-step plan of sampler `name` on `schedule`, with trailing timestep spacing (Lin et al. 2024)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r} (choose one of {', '.join(SCHEDULERS)})")
    total = schedule.train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= total:
        raise ValueError(f"steps must be an integer from 1 to {total} (the training timesteps), not {steps!r}")
    steps = operator.index(steps)
    # diffusers: np.round(np.arange(T, 0, -T / S)) - 1. Its float arange yields one extra step (t = -1) for a few
    # S (61, 103, ...); the first S entries are the same expression, so they are taken and the stray one dropped.
    timesteps = np.round(total + np.arange(steps) * (-total / steps)).astype(np.int64) - 1     # (S,)
    if schedule.zero_snr and name == "ddim" and schedule.prediction == "epsilon":   # diffusers divides by 0
        raise ValueError("DDIM on a zero terminal SNR schedule needs a v-prediction model: at ᾱ_T = 0 an epsilon "
                         "prediction says nothing of x0 (use a v_prediction model, or sample with dpmsolver++)")
    ac = schedule.alphas_cumprod()                                                              # (T,) float32
    if schedule.zero_snr and name != "ddim":
        ac[-1] = 2.0 ** -24            # diffusers: near 0 without being 0, so that σ_T is finite
    prev = timesteps - total // steps                 # DDIM's previous timestep (not always timesteps[i + 1])
    alphas_prev = np.where(prev >= 0, ac[np.maximum(prev, 0)], ac[0]).astype(np.float32)  # set_alpha_to_one=False
    with np.errstate(divide="ignore"):                                     # σ_T = inf for DDIM at zero SNR
        all_sigmas = np.sqrt((_f32(1.0) - ac) / ac)                                              # (T,) float32
    if schedule.zero_snr and name != "ddim":
        # σ_T = sqrt(2**24 - 1) lies 2e-12 below a float32 rounding midpoint: numpy rounds it down, torch's sqrt
        # (MKL, x86) up to 2**12, and σ_T is where Euler's first step cancels two ~4096·|x| terms, so that one
        # ulp would be 1e-4 in the latent. It is taken as torch on x86 (where the teacher runs) has it.
        all_sigmas[-1] = 2.0 ** 12
    sigmas = np.concatenate([all_sigmas[timesteps], np.zeros(1, np.float32)])                    # (S + 1,)
    init_sigma = float(sigmas.max()) if name == "euler" else 1.0     # diffusers: σ_max for trailing spacing
    arrays = dict(timesteps=timesteps, alphas=ac[timesteps], alphas_prev=alphas_prev, sigmas=sigmas)
    for a in arrays.values():
        a.setflags(write=False)
    return Plan(name=name, prediction=schedule.prediction, init_sigma=init_sigma, **arrays)


def _check_index(plan: Plan, i: int) -> int:
    i = operator.index(i)
    if not 0 <= i < plan.steps:
        raise ValueError(f"step index {i} is outside this {plan.steps}-step plan (0 to {plan.steps - 1})")
    return i


def scale_input(plan: Plan, i: int, x: np.ndarray) -> np.ndarray:
    """The denoiser's input at step i: x / sqrt(σ² + 1) for Euler (Karras et al. 2022), x itself otherwise."""
    i = _check_index(plan, i)
    if plan.name != "euler":
        return x
    sigma = plan.sigmas[i]
    return (x / np.sqrt(sigma * sigma + _f32(1.0))).astype(np.float32, copy=False)


def step(plan: Plan, i: int, x: np.ndarray, model_output: np.ndarray,
         history: tuple = ()) -> tuple[np.ndarray, tuple]:
    """x at step i -> x at step i + 1 (both (N, 4, h, w) float32) and the history the next step needs."""
    i = _check_index(plan, i)
    x = np.asarray(x, dtype=np.float32)
    m = np.asarray(model_output, dtype=np.float32)
    if plan.name == "ddim":
        return _ddim_step(plan, i, x, m), ()
    if plan.name == "euler":
        return _euler_step(plan, i, x, m), ()
    return _dpmpp_2m_step(plan, i, x, m, history)


def _ddim_step(plan: Plan, i: int, x: np.ndarray, model_output: np.ndarray) -> np.ndarray:
    """One deterministic DDIM step, eta 0 (Song et al. 2021), from a v or epsilon prediction (Salimans & Ho 2022)."""
    a, a_prev = plan.alphas[i], plan.alphas_prev[i]
    sa, sb = np.sqrt(a), np.sqrt(_f32(1.0) - a)
    if plan.prediction == "epsilon":
        x0 = (x - sb * model_output) / sa                                     # (N, 4, h, w)
        eps = model_output
    else:
        x0 = sa * x - sb * model_output
        eps = sa * model_output + sb * x
    direction = np.sqrt(_f32(1.0) - a_prev) * eps
    return (np.sqrt(a_prev) * x0 + direction).astype(np.float32, copy=False)


def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
    """(α_t, σ_t) of the variance-preserving process at the variance-exploding σ = σ_t / α_t."""
    alpha = _f32(1.0) / np.sqrt(sigma * sigma + _f32(1.0))
    return alpha, sigma * alpha


def _log(v: np.float32) -> np.float32:
    """float32 log rounded from float64: correctly rounded (bar double rounding) on every platform, unlike numpy's
    SIMD float32 log; torch's (MKL) agrees with it in all but ~0.1% of arguments."""
    if v > 0:
        return _f32(math.log(v))
    return _f32(-np.inf) if v == 0 else _f32(np.nan)


def _exp(v: np.float32) -> np.float32:
    """float32 exp rounded from float64 (see `_log`)."""
    with np.errstate(over="ignore"):
        return _f32(math.exp(min(float(v), 709.0)))


def _lambda(alpha: np.float32, sigma: np.float32) -> np.float32:
    """λ = log(α / σ), the half log-SNR DPM-Solver steps in (+inf at σ = 0)."""
    return _log(alpha) - _log(sigma)


def _dpmpp_2m_step(plan: Plan, i: int, x: np.ndarray, model_output: np.ndarray,
                   history: tuple = ()) -> tuple[np.ndarray, tuple]:
    """One DPM-Solver++(2M) step (Lu et al. 2022): first order at the first and the final step, as diffusers does."""
    alpha_s0, sigma_s0 = _alpha_sigma(plan.sigmas[i])
    alpha_t, sigma_t = _alpha_sigma(plan.sigmas[i + 1])
    if plan.prediction == "epsilon":
        x0 = (x - sigma_s0 * model_output) / alpha_s0                        # (N, 4, h, w) data prediction
    else:
        x0 = alpha_s0 * x - sigma_s0 * model_output
    lambda_t, lambda_s0 = _lambda(alpha_t, sigma_t), _lambda(alpha_s0, sigma_s0)
    h = lambda_t - lambda_s0
    phi = alpha_t * (_exp(-h) - _f32(1.0))                   # -1 at the end (σ_t = 0, h = inf): x -> x0
    final = i == plan.steps - 1          # diffusers' lower_order_final: the final sigma is 0 ("zero")
    if i == 0 or not history or final:
        out = (sigma_t / sigma_s0) * x - phi * x0
    else:
        (x0_prev,) = history
        alpha_s1, sigma_s1 = _alpha_sigma(plan.sigmas[i - 1])
        r0 = (lambda_s0 - _lambda(alpha_s1, sigma_s1)) / h
        d1 = (_f32(1.0) / r0) * (x0 - x0_prev)
        out = (sigma_t / sigma_s0) * x - phi * x0 - (_f32(0.5) * phi) * d1
    return out.astype(np.float32, copy=False), (x0.astype(np.float32, copy=False),)


def _euler_step(plan: Plan, i: int, x: np.ndarray, model_output: np.ndarray) -> np.ndarray:
    """One Euler step of the probability-flow ODE in σ (Karras et al. 2022, Algorithm 2 without churn)."""
    sigma, sigma_next = plan.sigmas[i], plan.sigmas[i + 1]
    if plan.prediction == "epsilon":
        x0 = x - sigma * model_output                                         # (N, 4, h, w)
    else:
        s2p1 = sigma * sigma + _f32(1.0)
        x0 = model_output * (-sigma / np.sqrt(s2p1)) + x / s2p1
    derivative = (x - x0) / sigma
    return (x + derivative * (sigma_next - sigma)).astype(np.float32, copy=False)


def sample(plan: Plan, noise: np.ndarray, predict: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Run the whole plan from `noise` (N, 4, h, w); `predict(x_in, t)` is the denoiser -> the final latent."""
    x = np.asarray(noise, dtype=np.float32) * _f32(plan.init_sigma)                        # (N, 4, h, w)
    history: tuple = ()
    for i in range(plan.steps):
        out = predict(scale_input(plan, i, x), int(plan.timesteps[i]))
        x, history = step(plan, i, x, out, history)
    return x
