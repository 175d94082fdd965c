"""Denoising diffusion (DDPM, DDIM) as Hugging Face diffusers' DDPMScheduler and DDIMScheduler
define it, in float64 from the math, and a tiny MLP denoiser trained on it.

Schedules over T training steps: betas beta_t (T,), alpha_t = 1 - beta_t, abar_t = prod_{s<=t}
alpha_s (``alphas_cumprod``, strictly decreasing in (0, 1]; a reverse step from t needs
abar_t < 1). Forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps        (add_noise)
    v   = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0        (velocity, diffusers' get_velocity)

A model predicts eps ('epsilon'), x_0 ('sample') or v ('v_prediction'); from it and x_t,
x0_hat = (x_t - sqrt(1 - abar_t) m) / sqrt(abar_t), m, or sqrt(abar_t) x_t - sqrt(1 - abar_t) m.
A reverse step goes from t to prev_t < t (abar_prev = 1 where prev_t < 0, unless said otherwise),
with alpha = abar_t / abar_prev and beta = 1 - alpha (beta_t when prev_t = t - 1):

- DDPM: x_prev = c0 x0_hat + ct x_t + sqrt(var) noise, c0 = sqrt(abar_prev) beta / (1 - abar_t),
  ct = sqrt(alpha) (1 - abar_prev) / (1 - abar_t) (the mean of q(x_prev | x_t, x_0)); var is
  beta-tilde = (1 - abar_prev) / (1 - abar_t) beta ('fixed_small') or beta ('fixed_large').
- DDIM: sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - alpha) and x_prev =
  sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma noise.

Shapes: samples, model outputs and noise are arrays of one shape (N, ...); per-sample timesteps
(N,) integers in [0, T), broadcast over the trailing axes; a step takes one integer t for the
whole batch, as diffusers' ``step``. Noise is an argument, never drawn.

diffusers' choices (file and line in diffusers 0.42.1); those it has a setting for are arguments
here, with its default:

- betas are float64 here; diffusers stores them, and abar, in float32 (scheduling_ddpm.py
  lines 215-229, 97).
- x0_hat is clipped to [-clip_sample_range, clip_sample_range]: ``clip_sample=True`` by default
  in both schedulers (scheduling_ddpm.py 202, 527; scheduling_ddim.py 201, 473) and in
  DDIMInverseScheduler (scheduling_ddim_inverse.py 192), whose inversion is exact only with
  clip_sample=False. The clip passes the gradient inside the range (ends included).
- DDPM's abar_prev where prev_t < 0 is always 1 (scheduling_ddpm.py 245, 504); it adds noise
  only where the timestep t > 0, whatever prev_t (line 543): with ``steps_offset`` the last
  step (t = offset, prev_t = -1) is noised.
- DDPM clamps the beta-tilde variance below at ``min_variance=1e-20`` (scheduling_ddpm.py 391):
  it matters where prev_t < 0 < t, where beta-tilde is 0 and the noise is 1e-10 noise.
  'fixed_large' is the unclamped beta = 1 - abar_t / abar_prev (line 404), not the original
  DDPM's beta_1 swapped for beta-tilde_1; at t = 0 no noise is added anyway.
- DDPM's prev_t is the next entry of its timestep list (``ddpm_previous_timestep``,
  scheduling_ddpm.py 660-665), DDIM's is t - T // num_inference_steps (``previous_timestep``,
  scheduling_ddim.py 445); they differ where the schedule's gaps are not T // n ('linspace';
  'trailing' unless n divides T: T = 10, n = 3 steps 9, 6, 2, DDIM's prev_t of 6 is 3).
- DDIM's abar_prev for prev_t < 0 is 1 with ``set_alpha_to_one=True``, else abar_0
  (scheduling_ddim.py 236); DDIMInverseScheduler uses the same for its first step (line 240).
- DDIM ``use_clipped_model_output=False``: eps_hat comes from the model output, not
  recomputed from the clipped x0_hat (scheduling_ddim.py 390, 483-485).
- 'trailing' spacing here always has num_inference_steps entries; diffusers' float
  np.arange sometimes yields one more, -1 (T = 17, n = 7; scheduling_ddim.py 375,
  scheduling_ddpm.py 339), which the oracle drops. The spacings round float64 values half to
  even as diffusers does, so an exact half may go either way (``timesteps``).
- Timestep embedding: get_timestep_embedding defaults to flip_sin_to_cos=False,
  downscale_freq_shift=1 (embeddings.py 27-34) and computes in float32 (line 58, 63); the
  UNets' Timesteps module is built with flip_sin_to_cos=True, freq_shift=0
  (unets/unet_2d.py 103-104, unet_2d_condition.py 184-185), which the Denoiser uses.

The denoiser is reference.network.mlp((D + E, *hidden, D), 'silu', 'mse') on the concatenation
[x_t, timestep_embedding(t)] of a flattened sample (N, D) and its embedding (N, E), trained
on the mean squared error to ``training_target``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reference import network as Net
from reference._validate import as_float, in_unit_interval, positive, same_shape
from reference.optimizers import Optimizer

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
SPACINGS = ("leading", "trailing", "linspace")
VARIANCE_TYPES = ("fixed_small", "fixed_large")
COSINE_S = 0.008
"""The offset s of Nichol & Dhariwal's cosine schedule abar(u) = cos((u + s) / (1 + s) pi/2)^2."""


# --------------------------------------------------------------------------- checks

def _one_of(name: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
    return value


def _int(name: str, value, lo: int, hi: int | None = None) -> int:
    """An int (not a bool; a 0-d integer array is one) in [lo, hi) (hi None: no bound)."""
    a = np.asarray(value)
    if isinstance(value, bool) or a.dtype.kind not in "iu" or a.ndim != 0 \
            or a < lo or (hi is not None and a >= hi):
        where = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}: expected an int {where}, got {value!r}")
    return int(a)


def _cumprod(alphas_cumprod) -> np.ndarray:
    a = as_float("alphas_cumprod", alphas_cumprod, 1)
    if a.size == 0 or not np.all((a > 0) & (a <= 1)) or np.any(np.diff(a) >= 0):
        raise ValueError(f"alphas_cumprod: expected a non-empty, strictly decreasing array in "
                         f"(0, 1], got {a!r}")
    return a


def _steps(t, prev_t, ac: np.ndarray) -> tuple[int, int]:
    """(t, prev_t): t in [0, T) with abar_t < 1, prev_t an int below t (negative: before the
    first step)."""
    t = _int("t", t, 0, ac.size)
    if ac[t] == 1:
        raise ValueError(f"t: alphas_cumprod[{t}] is 1 (a zero beta); a reverse step from it "
                         f"divides by 1 - abar_t")
    a = np.asarray(prev_t)
    if isinstance(prev_t, bool) or a.dtype.kind not in "iu" or a.ndim != 0 or a >= t:
        raise ValueError(f"prev_t: expected an int below t = {t} (negative: before the first "
                         f"step), got {prev_t!r}")
    return t, int(a)


def _batch(name: str, x) -> np.ndarray:
    a = as_float(name, x)
    if a.ndim == 0:
        raise ValueError(f"{name}: expected an array (N, ...), got a scalar")
    return a


def _pair(x0, noise) -> tuple[np.ndarray, np.ndarray]:
    x0, noise = _batch("x0", x0), as_float("noise", noise)
    same_shape("noise", noise, "x0", x0)
    return x0, noise


def _per_sample(timesteps, n: int, ac: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) for integer timesteps (n,), shaped (n, 1, ...)."""
    ts = np.asarray(timesteps)
    if ts.dtype.kind not in "iu" or ts.shape != (n,):
        raise ValueError(f"timesteps: expected integers of shape ({n},), got {ts.dtype} array "
                         f"of shape {ts.shape}")
    if ts.size and (ts.min() < 0 or ts.max() >= ac.size):
        raise ValueError(f"timesteps: expected values in [0, {ac.size}) (num_train_timesteps), "
                         f"got range [{ts.min()}, {ts.max()}]")
    a = ac[ts].reshape((n,) + (1,) * (ndim - 1))
    return np.sqrt(a), np.sqrt(1 - a)


def _bool(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _step_inputs(model_output, sample, noise, needs_noise: bool, name: str = "sample"):
    m, x = _batch("model_output", model_output), as_float(name, sample)
    same_shape(name, x, "model_output", m)
    if noise is None:
        if needs_noise:
            raise ValueError("noise: expected an array of the sample's shape (this step adds "
                             "noise), got None")
        return m, x, None
    noise = as_float("noise", noise)
    same_shape("noise", noise, "sample", x)
    return m, x, noise


def _cotangent(g, like: np.ndarray) -> np.ndarray:
    g = as_float("g", g)
    same_shape("g", g, "sample", like)
    return g


def _clip(clip_sample: bool, clip_sample_range: float) -> float | None:
    """The clip range, or None without clipping."""
    r = positive("clip_sample_range", clip_sample_range)
    return r if _bool("clip_sample", clip_sample) else None


def _x0_coefficients(prediction_type: str, a: float) -> tuple[float, float]:
    """(A, B) with x0_hat = A x_t + B m for a model output m of ``prediction_type``."""
    _one_of("prediction_type", prediction_type, PREDICTION_TYPES)
    if prediction_type == "epsilon":
        return 1 / math.sqrt(a), -math.sqrt(1 - a) / math.sqrt(a)
    if prediction_type == "sample":
        return 0.0, 1.0
    return math.sqrt(a), -math.sqrt(1 - a)


def _eps_coefficients(prediction_type: str, a: float) -> tuple[float, float]:
    """(C, D) with eps_hat = C x_t + D m (DDIM's pred_epsilon)."""
    if prediction_type == "epsilon":
        return 0.0, 1.0
    if prediction_type == "sample":
        return 1 / math.sqrt(1 - a), -math.sqrt(a) / math.sqrt(1 - a)
    return math.sqrt(1 - a), math.sqrt(a)


def _clipped(x0: np.ndarray, r: float | None) -> tuple[np.ndarray, np.ndarray | float]:
    """(clip(x0, -r, r), its derivative: 1 inside [-r, r], 0 outside; 1 without clipping)."""
    if r is None:
        return x0, 1.0
    return np.clip(x0, -r, r), (np.abs(x0) <= r).astype(np.float64)


# --------------------------------------------------------------------------- schedules

def betas(schedule: str, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
          beta_end: float = 0.02, max_beta: float = 0.999) -> np.ndarray:
    """Betas (T,): 'linear' linspace(beta_start, beta_end, T); 'scaled_linear'
    linspace(sqrt(beta_start), sqrt(beta_end), T)^2; 'squaredcos_cap_v2'
    min(1 - abar((t + 1) / T) / abar(t / T), max_beta) with the cosine abar (COSINE_S)."""
    _one_of("schedule", schedule, SCHEDULES)
    t_count = _int("num_train_timesteps", num_train_timesteps, 1)
    b0 = in_unit_interval("beta_start", beta_start)
    b1 = in_unit_interval("beta_end", beta_end)
    cap = in_unit_interval("max_beta", positive("max_beta", max_beta))
    if schedule == "linear":
        return np.linspace(b0, b1, t_count)
    if schedule == "scaled_linear":
        return np.linspace(math.sqrt(b0), math.sqrt(b1), t_count) ** 2
    u = np.arange(t_count + 1) / t_count
    abar = np.cos((u + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    return np.minimum(1 - abar[1:] / abar[:-1], cap)


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """abar_t = prod_{s <= t} (1 - beta_s): betas (T,) in [0, 1) -> (T,)."""
    b = as_float("betas", betas, 1)
    if b.size == 0 or not np.all((b >= 0) & (b < 1)):
        raise ValueError(f"betas: expected a non-empty array in [0, 1), got {b!r}")
    return np.cumprod(1 - b)


# --------------------------------------------------------------------------- forward process

def _noising(x0, noise, timesteps, alphas_cumprod, g=None):
    """x0, noise checked, (sqrt(abar_t), sqrt(1 - abar_t)) per sample broadcast over x0, and
    the cotangent g of x0's shape where given."""
    x0, noise = _pair(x0, noise)
    sa, sb = _per_sample(timesteps, x0.shape[0], _cumprod(alphas_cumprod), x0.ndim)
    if g is not None:
        g = as_float("g", g)
        same_shape("g", g, "x0", x0)
    return x0, noise, sa, sb, g


def add_noise(x0: np.ndarray, noise: np.ndarray, timesteps: np.ndarray,
              alphas_cumprod: np.ndarray) -> np.ndarray:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise: x0, noise (N, ...), timesteps (N,)."""
    x0, noise, sa, sb, _ = _noising(x0, noise, timesteps, alphas_cumprod)
    return sa * x0 + sb * noise


def add_noise_vjp(x0: np.ndarray, noise: np.ndarray, timesteps: np.ndarray,
                  alphas_cumprod: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx0, dnoise) = (sqrt(abar_t) g, sqrt(1 - abar_t) g)."""
    _, _, sa, sb, g = _noising(x0, noise, timesteps, alphas_cumprod, g)
    return sa * g, sb * g


def velocity(x0: np.ndarray, noise: np.ndarray, timesteps: np.ndarray,
             alphas_cumprod: np.ndarray) -> np.ndarray:
    """v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0: x0, noise (N, ...), timesteps (N,)."""
    x0, noise, sa, sb, _ = _noising(x0, noise, timesteps, alphas_cumprod)
    return sa * noise - sb * x0


def velocity_vjp(x0: np.ndarray, noise: np.ndarray, timesteps: np.ndarray,
                 alphas_cumprod: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx0, dnoise) = (-sqrt(1 - abar_t) g, sqrt(abar_t) g)."""
    _, _, sa, sb, g = _noising(x0, noise, timesteps, alphas_cumprod, g)
    return -sb * g, sa * g


def training_target(prediction_type: str, x0: np.ndarray, noise: np.ndarray,
                    timesteps: np.ndarray, alphas_cumprod: np.ndarray) -> np.ndarray:
    """What a model of ``prediction_type`` learns to output at x_t: noise ('epsilon'), x0
    ('sample') or the velocity ('v_prediction'); (N, ...)."""
    _one_of("prediction_type", prediction_type, PREDICTION_TYPES)
    if prediction_type == "v_prediction":
        return velocity(x0, noise, timesteps, alphas_cumprod)
    x0, noise = _pair(x0, noise)
    _per_sample(timesteps, x0.shape[0], _cumprod(alphas_cumprod), x0.ndim)
    return (noise if prediction_type == "epsilon" else x0).copy()


# --------------------------------------------------------------------------- inference timesteps

def timesteps(num_train_timesteps: int, num_inference_steps: int, spacing: str = "leading",
              steps_offset: int = 0) -> np.ndarray:
    """The n = num_inference_steps timesteps of a sampling run (int64, descending), T train
    steps, k = 0 .. n - 1 ('leading' is the schedulers' default):

    - 'leading': (n - 1 - k) (T // n) + steps_offset (only 'leading' adds the offset);
    - 'trailing': round(T - k (T / n)) - 1, the first n entries of np.arange(T, 0, -T / n);
    - 'linspace': round(np.linspace(0, T - 1, n)), reversed.

    The values are diffusers' float64 NumPy ones, rounded half to even (np.round): where the
    exact value is a half, its float64 rounding decides (T = 715, n = 30, 'trailing': 642, from
    643.4999..., where exact arithmetic rounds 643.5 to 644 - 1 = 643)."""
    t_count = _int("num_train_timesteps", num_train_timesteps, 1)
    n = _int("num_inference_steps", num_inference_steps, 1, t_count + 1)
    _one_of("spacing", spacing, SPACINGS)
    offset = _int("steps_offset", steps_offset, 0)
    if spacing == "leading":
        out = np.arange(n - 1, -1, -1, dtype=np.int64) * (t_count // n) + offset
        if out[0] >= t_count:
            raise ValueError(f"steps_offset: {offset} puts the first timestep at {out[0]}, "
                             f"expected below num_train_timesteps = {t_count}")
        return out
    if spacing == "trailing":
        return np.round(np.arange(t_count, 0, -t_count / n)[:n]).astype(np.int64) - 1
    return np.round(np.linspace(0, t_count - 1, n))[::-1].astype(np.int64)


EXTRA_STEPS = ("drop", "keep")
"""What a 'trailing' spacing does with the extra entry, -1, that diffusers' float np.arange
sometimes yields: 'drop' it (``timesteps``) or 'keep' it (diffusers' set_timesteps)."""


def scheduler_timesteps(num_train_timesteps: int, num_inference_steps: int,
                        spacing: str = "leading", steps_offset: int = 0,
                        extra_step: str = "drop") -> np.ndarray:
    """``timesteps``, with 'trailing' spacing's extra -1 appended under ``extra_step='keep'``
    where np.arange(T, 0, -T / n) has n + 1 entries (T = 17, n = 7: [16, 14, 11, 9, 6, 4, 1,
    -1]), as diffusers' set_timesteps returns it (scheduling_ddpm.py 339, scheduling_ddim.py
    375); n or n + 1 int64 entries, descending."""
    _one_of("extra_step", extra_step, EXTRA_STEPS)
    out = timesteps(num_train_timesteps, num_inference_steps, spacing, steps_offset)
    t_count, n = int(num_train_timesteps), int(num_inference_steps)
    if extra_step == "keep" and spacing == "trailing" \
            and np.arange(t_count, 0, -t_count / n).size > n:
        return np.append(out, np.int64(-1))
    return out


def previous_timestep(t: int, num_train_timesteps: int, num_inference_steps: int) -> int:
    """DDIM's prev_t = t - T // num_inference_steps, or -1 where that is negative (every
    negative prev_t means 'before the first step'). DDPM's is ddpm_previous_timestep."""
    t_count = _int("num_train_timesteps", num_train_timesteps, 1)
    t = _int("t", t, 0, t_count)
    n = _int("num_inference_steps", num_inference_steps, 1, t_count + 1)
    return max(t - t_count // n, -1)


def ddpm_previous_timestep(t: int, schedule: np.ndarray) -> int:
    """DDPM's prev_t: the entry after t in the descending ``schedule`` (the output of
    ``timesteps``), -1 after the last."""
    s = np.asarray(schedule)
    if s.dtype.kind not in "iu" or s.ndim != 1 or s.size == 0 \
            or np.any(np.diff(s.astype(np.int64)) >= 0):
        raise ValueError(f"schedule: expected a non-empty, strictly decreasing 1-D integer "
                         f"array, got {s!r}")
    t = _int("t", t, 0)
    where = np.flatnonzero(s == t)
    if where.size == 0:
        raise ValueError(f"t: expected an entry of schedule {s.tolist()}, got {t}")
    i = int(where[0])
    return int(s[i + 1]) if i + 1 < s.size else -1


# --------------------------------------------------------------------------- DDPM

def _alphas(ac: np.ndarray, t: int, prev_t: int, final: float = 1.0) -> tuple[float, float]:
    """(abar_t, abar_prev), abar_prev = ``final`` where prev_t < 0."""
    return float(ac[t]), (float(ac[prev_t]) if prev_t >= 0 else final)


def posterior_mean_coefficients(t: int, prev_t: int, alphas_cumprod: np.ndarray
                                ) -> tuple[float, float]:
    """(c0, ct) of the mean c0 x0 + ct x_t of q(x_prev | x_t, x0): with alpha = abar_t /
    abar_prev, beta = 1 - alpha, c0 = sqrt(abar_prev) beta / (1 - abar_t) and
    ct = sqrt(alpha) (1 - abar_prev) / (1 - abar_t); abar_prev = 1 where prev_t < 0."""
    ac = _cumprod(alphas_cumprod)
    a, ap = _alphas(ac, *_steps(t, prev_t, ac))
    alpha = a / ap
    return math.sqrt(ap) * (1 - alpha) / (1 - a), math.sqrt(alpha) * (1 - ap) / (1 - a)


def posterior_mean(x0: np.ndarray, x_t: np.ndarray, t: int, prev_t: int,
                   alphas_cumprod: np.ndarray) -> np.ndarray:
    """c0 x0 + ct x_t (posterior_mean_coefficients): x0, x_t of one shape."""
    x0, x_t = as_float("x0", x0), as_float("x_t", x_t)
    same_shape("x_t", x_t, "x0", x0)
    c0, ct = posterior_mean_coefficients(t, prev_t, alphas_cumprod)
    return c0 * x0 + ct * x_t


def ddpm_variance(t: int, prev_t: int, alphas_cumprod: np.ndarray,
                  variance_type: str = "fixed_small", min_variance: float = 1e-20) -> float:
    """'fixed_small': max((1 - abar_prev) / (1 - abar_t) beta, min_variance) (beta-tilde,
    diffusers' clamp); 'fixed_large': beta = 1 - abar_t / abar_prev, unclamped;
    abar_prev = 1 where prev_t < 0."""
    _one_of("variance_type", variance_type, VARIANCE_TYPES)
    floor = positive("min_variance", min_variance, allow_zero=True)
    ac = _cumprod(alphas_cumprod)
    a, ap = _alphas(ac, *_steps(t, prev_t, ac))
    beta = 1 - a / ap
    if variance_type == "fixed_large":
        return beta
    return max((1 - ap) / (1 - a) * beta, floor)


def ddpm_step(model_output: np.ndarray, t: int, sample: np.ndarray, noise: np.ndarray | None,
              alphas_cumprod: np.ndarray, *, prev_t: int, prediction_type: str = "epsilon",
              variance_type: str = "fixed_small", clip_sample: bool = True,
              clip_sample_range: float = 1.0, min_variance: float = 1e-20
              ) -> tuple[np.ndarray, np.ndarray]:
    """(prev_sample, pred_original_sample) of DDPMScheduler.step from t to prev_t: x0_hat from
    the model output (optionally clipped to [-r, r]), then c0 x0_hat + ct x_t
    + sqrt(ddpm_variance) noise where t > 0 (no noise at t = 0; noise may be None there).
    model_output, sample, noise of one shape."""
    ac = _cumprod(alphas_cumprod)
    t, prev_t = _steps(t, prev_t, ac)
    m, x, noise = _step_inputs(model_output, sample, noise, t > 0)
    r = _clip(clip_sample, clip_sample_range)
    var = ddpm_variance(t, prev_t, ac, variance_type, min_variance)
    ca, cb = _x0_coefficients(prediction_type, float(ac[t]))
    x0, _ = _clipped(ca * x + cb * m, r)
    c0, ct = posterior_mean_coefficients(t, prev_t, ac)
    prev = c0 * x0 + ct * x
    if t > 0:
        prev = prev + math.sqrt(var) * noise
    return prev, x0


def ddpm_step_vjp(model_output: np.ndarray, t: int, sample: np.ndarray,
                  alphas_cumprod: np.ndarray, g: np.ndarray, *, prev_t: int,
                  prediction_type: str = "epsilon", clip_sample: bool = True,
                  clip_sample_range: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(d model_output, d sample) for a cotangent g of prev_sample: with x0_hat = A x_t + B m
    and the clip's mask M (1 inside [-r, r]), (B M c0 g, A M c0 g + ct g). The noise term
    depends on neither, so neither the noise nor the variance type is an argument."""
    ac = _cumprod(alphas_cumprod)
    t, prev_t = _steps(t, prev_t, ac)
    m, x, _ = _step_inputs(model_output, sample, None, False)
    g = _cotangent(g, x)
    r = _clip(clip_sample, clip_sample_range)
    ca, cb = _x0_coefficients(prediction_type, float(ac[t]))
    _, mask = _clipped(ca * x + cb * m, r)
    c0, ct = posterior_mean_coefficients(t, prev_t, ac)
    g0 = mask * (c0 * g)
    return cb * g0, ca * g0 + ct * g


# --------------------------------------------------------------------------- DDIM

def _ddim(ac, t, prev_t, eta, set_alpha_to_one):
    """(abar_t, abar_prev, sigma, k = sqrt(1 - abar_prev - sigma^2)); abar_prev where
    prev_t < 0 is 1 (set_alpha_to_one) or abar_0."""
    eta = in_unit_interval("eta", eta, closed_right=True)
    one = _bool("set_alpha_to_one", set_alpha_to_one)
    a, ap = _alphas(ac, t, prev_t, 1.0 if one else float(ac[0]))
    var = (1 - ap) / (1 - a) * (1 - a / ap)
    sigma = eta * math.sqrt(var)
    # 1 - abar_prev - sigma^2 = (1 - abar_prev) (1 - eta^2 (1 - alpha) / (1 - abar_t)) >= 0;
    # the clamp only removes a rounding below 0
    return a, ap, sigma, math.sqrt(max(1 - ap - sigma * sigma, 0.0))


def ddim_step(model_output: np.ndarray, t: int, sample: np.ndarray, noise: np.ndarray | None,
              alphas_cumprod: np.ndarray, *, prev_t: int, eta: float = 0.0,
              prediction_type: str = "epsilon", clip_sample: bool = True,
              clip_sample_range: float = 1.0, set_alpha_to_one: bool = True,
              use_clipped_model_output: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(prev_sample, pred_original_sample) of DDIMScheduler.step from t to prev_t, eta in
    [0, 1]: x0_hat and eps_hat from the model output, x0_hat optionally clipped to [-r, r]
    (use_clipped_model_output: eps_hat = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t) from
    the clipped x0_hat), then sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat
    + sigma noise (noise only where eta > 0; it may be None at eta = 0)."""
    ac = _cumprod(alphas_cumprod)
    t, prev_t = _steps(t, prev_t, ac)
    a, ap, sigma, k = _ddim(ac, t, prev_t, eta, set_alpha_to_one)
    m, x, noise = _step_inputs(model_output, sample, noise, eta > 0)
    r = _clip(clip_sample, clip_sample_range)
    ca, cb = _x0_coefficients(prediction_type, a)
    x0, _ = _clipped(ca * x + cb * m, r)
    if _bool("use_clipped_model_output", use_clipped_model_output):
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    else:
        cc, cd = _eps_coefficients(prediction_type, a)
        eps = cc * x + cd * m
    prev = math.sqrt(ap) * x0 + k * eps
    if eta > 0:
        prev = prev + sigma * noise
    return prev, x0


def ddim_step_vjp(model_output: np.ndarray, t: int, sample: np.ndarray,
                  alphas_cumprod: np.ndarray, g: np.ndarray, *, prev_t: int, eta: float = 0.0,
                  prediction_type: str = "epsilon", clip_sample: bool = True,
                  clip_sample_range: float = 1.0, set_alpha_to_one: bool = True,
                  use_clipped_model_output: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(d model_output, d sample) for a cotangent g of prev_sample: with x0_hat = A x_t + B m,
    eps_hat = C x_t + D m and the clip's mask M, g0 = M sqrt(abar_prev) g and
    (B g0 + D k g, A g0 + C k g); with use_clipped_model_output, g0 = M (sqrt(abar_prev)
    - k sqrt(abar_t / (1 - abar_t))) g and (B g0, A g0 + k g / sqrt(1 - abar_t))."""
    ac = _cumprod(alphas_cumprod)
    t, prev_t = _steps(t, prev_t, ac)
    a, ap, _, k = _ddim(ac, t, prev_t, eta, set_alpha_to_one)
    m, x, _ = _step_inputs(model_output, sample, None, False)
    g = _cotangent(g, x)
    r = _clip(clip_sample, clip_sample_range)
    ca, cb = _x0_coefficients(prediction_type, a)
    _, mask = _clipped(ca * x + cb * m, r)
    if _bool("use_clipped_model_output", use_clipped_model_output):
        g0 = mask * ((math.sqrt(ap) - k * math.sqrt(a / (1 - a))) * g)
        return cb * g0, ca * g0 + (k / math.sqrt(1 - a)) * g
    cc, cd = _eps_coefficients(prediction_type, a)
    g0 = mask * (math.sqrt(ap) * g)
    return cb * g0 + (cd * k) * g, ca * g0 + (cc * k) * g


def ddim_inverse_step(model_output: np.ndarray, prev_t: int, prev_sample: np.ndarray,
                      alphas_cumprod: np.ndarray, *, t: int, set_alpha_to_one: bool = True
                      ) -> np.ndarray:
    """The x_t that ddim_step (eta = 0, 'epsilon', no clipping) maps to prev_sample for the
    same model output eps: sqrt(abar_t) (prev_sample - sqrt(1 - abar_prev) eps) /
    sqrt(abar_prev) + sqrt(1 - abar_t) eps (DDIMInverseScheduler.step with clip_sample=False,
    stepping from prev_t up to t; abar_prev where prev_t < 0 as in ddim_step)."""
    ac = _cumprod(alphas_cumprod)
    t, prev_t = _steps(t, prev_t, ac)
    a, ap, _, _ = _ddim(ac, t, prev_t, 0.0, set_alpha_to_one)
    m, x, _ = _step_inputs(model_output, prev_sample, None, False, "prev_sample")
    return math.sqrt(a) * ((x - math.sqrt(1 - ap) * m) / math.sqrt(ap)) + math.sqrt(1 - a) * m


# --------------------------------------------------------------------------- timestep embedding

def timestep_embedding(timesteps: np.ndarray, dim: int, flip_sin_to_cos: bool = False,
                       downscale_freq_shift: float = 1.0, scale: float = 1.0,
                       max_period: float = 10000) -> np.ndarray:
    """Sinusoidal embedding (N, dim) of timesteps (N,) (fractional allowed): with h = dim // 2,
    f_i = exp(-ln(max_period) i / (h - downscale_freq_shift)), i < h, and a = scale t f,
    [sin a, cos a] ([cos a, sin a] if flip_sin_to_cos), a zero column appended for odd dim."""
    ts = as_float("timesteps", timesteps, 1)
    dim = _int("dim", dim, 1)
    flip = _bool("flip_sin_to_cos", flip_sin_to_cos)
    shift = as_float("downscale_freq_shift", downscale_freq_shift, 0)
    scale = as_float("scale", scale, 0)
    period = positive("max_period", max_period)
    half = dim // 2
    if half > 0 and half == shift:
        raise ValueError(f"downscale_freq_shift: {float(shift)} equals dim // 2 = {half}, which "
                         f"divides by 0")
    freqs = np.exp(-math.log(period) * np.arange(half) / (half - shift)) if half else np.zeros(0)
    arg = scale * ts[:, None] * freqs[None, :]
    sin, cos = np.sin(arg), np.cos(arg)
    parts = [cos, sin] if flip else [sin, cos]
    return np.concatenate(parts + [np.zeros((ts.size, dim % 2))], axis=1)


# --------------------------------------------------------------------------- the denoiser

@dataclass(frozen=True)
class Denoiser:
    """An MLP denoiser of flattened samples (N, dim): input [x_t, timestep_embedding(t)] of
    width dim + embed, hidden SiLU layers ``hidden``, output (N, dim) of ``prediction_type``.
    The embedding's conventions default to the UNets' Timesteps module (see the module doc)."""

    dim: int
    embed: int
    hidden: tuple[int, ...]
    prediction_type: str = "epsilon"
    flip_sin_to_cos: bool = True
    downscale_freq_shift: float = 0.0

    def __post_init__(self) -> None:
        _int("dim", self.dim, 1)
        _int("embed", self.embed, 1)
        if not isinstance(self.hidden, tuple):
            raise ValueError(f"hidden: expected a tuple of positive ints, got {self.hidden!r}")
        for i, w in enumerate(self.hidden):
            _int(f"hidden[{i}]", w, 1)
        _one_of("prediction_type", self.prediction_type, PREDICTION_TYPES)
        timestep_embedding(np.zeros(1), self.embed, self.flip_sin_to_cos,
                           self.downscale_freq_shift)

    def architecture(self) -> Net.Architecture:
        """mlp((dim + embed, *hidden, dim), activation='silu', loss='mse')."""
        return Net.mlp((self.dim + self.embed, *self.hidden, self.dim), activation="silu",
                       loss="mse")


def init_params(model: Denoiser, seed: int = 0) -> list[np.ndarray]:
    """The architecture's initialisation (He-normal weights, zero biases)."""
    return model.architecture().init(seed)[0]


def denoiser_input(model: Denoiser, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[x_t, timestep_embedding(t)]: x_t (N, dim), integer t (N,) -> (N, dim + embed)."""
    x = as_float("x_t", x_t, 2)
    if x.shape[1] != model.dim:
        raise ValueError(f"x_t: expected shape (N, {model.dim}), got {x.shape}")
    ts = np.asarray(t)
    if ts.dtype.kind not in "iu" or ts.shape != (x.shape[0],):
        raise ValueError(f"t: expected integers of shape ({x.shape[0]},), got {ts.dtype} array "
                         f"of shape {ts.shape}")
    emb = timestep_embedding(ts, model.embed, model.flip_sin_to_cos, model.downscale_freq_shift)
    return np.concatenate([x, emb], axis=1)


def predict(model: Denoiser, params: Sequence[np.ndarray], x_t: np.ndarray,
            t: np.ndarray) -> np.ndarray:
    """The denoiser's output (N, dim) at x_t (N, dim) and integer timesteps t (N,)."""
    return Net.forward(model.architecture(), params, [], denoiser_input(model, x_t, t))[0]


def loss_and_grads(model: Denoiser, params: Sequence[np.ndarray], x0: np.ndarray,
                   noise: np.ndarray, t: np.ndarray, alphas_cumprod: np.ndarray
                   ) -> tuple[float, list[np.ndarray]]:
    """(mean over all N dim elements of (predict(x_t, t) - training_target)^2, its gradient
    for every parameter) with x_t = add_noise(x0, noise, t): x0, noise (N, dim), t (N,);
    the backward is reference.network.loss_and_grads'."""
    x_t = add_noise(x0, noise, t, alphas_cumprod)
    target = training_target(model.prediction_type, x0, noise, t, alphas_cumprod)
    value, grads, _ = Net.loss_and_grads(model.architecture(), params, [],
                                         denoiser_input(model, x_t, t), target)
    return value, grads


def train(model: Denoiser, params: Sequence[np.ndarray], optimizer: Optimizer,
          batches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
          alphas_cumprod: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """One optimizer step per (x0, noise, t) batch, in order. Returns (final params, the loss
    of each batch before its step)."""
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence) or not batches:
        raise ValueError("batches: expected a non-empty list of (x0, noise, t) triples")
    p = [as_float(f"params[{i}]", q) for i, q in enumerate(params)]
    opt_state = optimizer.init(p)
    history = []
    for j, batch in enumerate(batches):
        if not isinstance(batch, Sequence) or len(batch) != 3:
            raise ValueError(f"batches[{j}]: expected an (x0, noise, t) triple")
        value, grads = loss_and_grads(model, p, *batch, alphas_cumprod)
        history.append(value)
        p, opt_state = optimizer.update(grads, opt_state, p)
    return p, history
