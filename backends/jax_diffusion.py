"""The DDPM and DDIM schedulers on JAX, behind backends/diffusion.py's interface.

diffusers 0.42 ships no Flax schedulers (FlaxDDPMScheduler and FlaxDDIMScheduler are gone),
so these are diffusers' DDPMScheduler and DDIMScheduler algorithms written with jax.numpy,
operation for operation (scheduling_ddpm.py, scheduling_ddim.py), in the call's dtype as the
Flax schedulers computed in their ``dtype``. Each runs under jax.jit, compiled once per
configuration (the static choices: the schedule, the prediction type) and shapes; t, prev_t,
the scalars and the other choices are traced, so every timestep shares one compilation. The
timesteps are diffusers' NumPy code (set_timesteps computes them on the host).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from backends.base import Unsupported
from backends.diffusion import DiffusionBackend
from backends.jax_compiled import COMPILED
from reference import diffusion as Df

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
PADDED = 1024


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")


def _cosine_betas(num_train_timesteps: int, max_beta: float) -> np.ndarray:
    """betas_for_alpha_bar (scheduling_ddpm.py 48-97): Python floats, min(1 - abar(t2) /
    abar(t1), max_beta) per step."""
    def abar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    t_count = num_train_timesteps
    return np.array([min(1 - abar((i + 1) / t_count) / abar(i / t_count), max_beta)
                     for i in range(t_count)])


def _schedule(schedule: str, num_train_timesteps: int, dtype: Any):
    def f(beta_start, beta_end, cosine_betas):
        if schedule == "linear":
            betas = jnp.linspace(beta_start, beta_end, num_train_timesteps, dtype=dtype)
        elif schedule == "scaled_linear":
            betas = jnp.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps,
                                 dtype=dtype) ** 2
        else:
            betas = cosine_betas
        return jnp.cumprod(1.0 - betas, axis=0)
    return f


def _per_sample(alphas_cumprod, timesteps, ndim: int):
    """(sqrt(abar_t), sqrt(1 - abar_t)) shaped (N, 1, ...), as add_noise unsqueezes them."""
    a = alphas_cumprod[timesteps]
    shape = (-1,) + (1,) * (ndim - 1)
    return (a ** 0.5).reshape(shape), ((1 - a) ** 0.5).reshape(shape)


def _add_noise(x0, noise, timesteps, alphas_cumprod):
    sa, sb = _per_sample(alphas_cumprod, timesteps, x0.ndim)
    return sa * x0 + sb * noise


def _velocity(x0, noise, timesteps, alphas_cumprod):
    sa, sb = _per_sample(alphas_cumprod, timesteps, x0.ndim)
    return sa * noise - sb * x0


def _x0_eps(prediction_type: str, m, x, a, b):
    """(pred_original_sample, pred_epsilon) from the model output m at x_t, abar_t = a,
    beta_prod_t = b (DDIMScheduler.step's step 3; DDPM's x0 is the same)."""
    if prediction_type == "epsilon":
        return (x - b ** 0.5 * m) / a ** 0.5, m
    if prediction_type == "sample":
        return m, (x - a ** 0.5 * m) / b ** 0.5
    return a ** 0.5 * x - b ** 0.5 * m, a ** 0.5 * m + b ** 0.5 * x


def _ddpm(prediction_type: str):
    def step(m, t, x, noise, ac, prev_t, clip_range, min_variance, large):
        a = ac[t]
        ap = jnp.where(prev_t >= 0, ac[jnp.maximum(prev_t, 0)], jnp.ones((), ac.dtype))
        b, bp = 1 - a, 1 - ap
        alpha = a / ap
        beta = 1 - alpha
        x0 = jnp.clip(_x0_eps(prediction_type, m, x, a, b)[0], -clip_range, clip_range)
        prev = (ap ** 0.5 * beta) / b * x0 + alpha ** 0.5 * bp / b * x
        var = jnp.where(large, beta, jnp.maximum(bp / b * beta, min_variance))
        return jnp.where(t > 0, prev + var ** 0.5 * noise, prev), x0
    return step


def _ddim(prediction_type: str):
    def step(m, t, x, noise, ac, prev_t, eta, clip_range, final, clipped_eps):
        a = ac[t]
        ap = jnp.where(prev_t >= 0, ac[jnp.maximum(prev_t, 0)], final)
        b = 1 - a
        x0, eps = _x0_eps(prediction_type, m, x, a, b)
        x0 = jnp.clip(x0, -clip_range, clip_range)
        variance = (1 - ap) / b * (1 - a / ap)
        std = eta * variance ** 0.5
        eps = jnp.where(clipped_eps, (x - a ** 0.5 * x0) / b ** 0.5, eps)
        prev = ap ** 0.5 * x0 + (1 - ap - std ** 2) ** 0.5 * eps
        return jnp.where(eta > 0, prev + std * noise, prev), x0
    return step


class JaxDiffusion(DiffusionBackend):
    """Mixin for JaxBackend (backends/diffusion.py has the interface)."""

    diffusion_conventions: dict[str, dict[str, Any]] = {
        # DDPMScheduler._get_variance clamps beta-tilde at 1e-20
        "ddpm_step": {"min_variance": 1e-20},
        # set_timesteps keeps the -1 that 'trailing' spacing's float np.arange may add
        "diffusion_timesteps": {"extra_step": "keep"},
    }

    def _scalar(self, value: float, like: Any) -> jax.Array:
        return self.asarray(np.asarray(value, dtype=np.float64), self.dtype_of(like))

    def _padded(self, alphas_cumprod: Any) -> jax.Array:
        """abar padded on the host with ones to PADDED entries (the next power of two above
        that), so that every T up to it shares one compilation; only abar[t], abar[prev_t]
        and abar[0] are read."""
        a = self.to_numpy(alphas_cumprod)
        size = max(PADDED, 1 << (a.size - 1).bit_length())
        return self.asarray(np.pad(a, (0, size - a.size), constant_values=1.0),
                            self.dtype_of(alphas_cumprod))

    def _clip_range(self, clip_sample: bool, clip_sample_range: float, like: Any) -> jax.Array:
        """x0_hat's clip range; without clipping, infinite (clip(x, -inf, inf) is x), so
        both share one compilation."""
        return self._scalar(clip_sample_range if clip_sample else np.inf, like)

    def schedule_alphas_cumprod(self, schedule, num_train_timesteps, beta_start, beta_end,
                                max_beta, dtype):
        """diffusers' betas (the cosine ones from Python floats, as betas_for_alpha_bar),
        1 - betas and their cumulative product, in ``dtype``."""
        Df.betas(schedule, num_train_timesteps, beta_start, beta_end, max_beta)  # validates
        cosine = (_cosine_betas(num_train_timesteps, max_beta)
                  if schedule == "squaredcos_cap_v2" else np.zeros(num_train_timesteps))
        fn = COMPILED.get((id(self), "diffusion_schedule", schedule, num_train_timesteps, dtype),
                          lambda: _schedule(schedule, num_train_timesteps, _DTYPES[dtype]))
        return fn(self.asarray(np.float64(beta_start), dtype),
                  self.asarray(np.float64(beta_end), dtype), self.asarray(cosine, dtype))

    def add_noise(self, x0, noise, timesteps, alphas_cumprod):
        """DDPMScheduler.add_noise's algorithm, jitted."""
        return COMPILED.get((id(self), "add_noise"), lambda: _add_noise)(
            x0, noise, timesteps, self._padded(alphas_cumprod))

    def velocity(self, x0, noise, timesteps, alphas_cumprod):
        """DDPMScheduler.get_velocity's algorithm, jitted."""
        return COMPILED.get((id(self), "velocity"), lambda: _velocity)(
            x0, noise, timesteps, self._padded(alphas_cumprod))

    def ddpm_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t,
                  prediction_type="epsilon", variance_type="fixed_small", clip_sample=True,
                  clip_sample_range=1.0, min_variance=1e-20):
        """DDPMScheduler.step's algorithm, jitted per configuration (noise where t > 0)."""
        _one_of("variance_type", variance_type, Df.VARIANCE_TYPES)
        _one_of("prediction_type", prediction_type, Df.PREDICTION_TYPES)
        if noise is None:
            noise = jnp.zeros_like(sample)
        fn = COMPILED.get((id(self), "ddpm_step", prediction_type),
                          lambda: _ddpm(prediction_type))
        return fn(model_output, jnp.asarray(t), sample, noise, self._padded(alphas_cumprod),
                  jnp.asarray(prev_t), self._clip_range(clip_sample, clip_sample_range, sample),
                  self._scalar(min_variance, sample),
                  jnp.asarray(variance_type == "fixed_large"))

    def ddim_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t, eta=0.0,
                  prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
                  set_alpha_to_one=True, use_clipped_model_output=False):
        """DDIMScheduler.step's algorithm, jitted per configuration (noise where eta > 0)."""
        _one_of("prediction_type", prediction_type, Df.PREDICTION_TYPES)
        if noise is None:
            if eta > 0:
                raise ValueError("DDIMScheduler.step with eta > 0 needs the noise")
            noise = jnp.zeros_like(sample)
        first = 1.0 if set_alpha_to_one else float(self.to_numpy(alphas_cumprod)[0])
        final = self._scalar(first, sample)
        fn = COMPILED.get((id(self), "ddim_step", prediction_type),
                          lambda: _ddim(prediction_type))
        return fn(model_output, jnp.asarray(t), sample, noise, self._padded(alphas_cumprod),
                  jnp.asarray(prev_t), self._scalar(eta, sample),
                  self._clip_range(clip_sample, clip_sample_range, sample), final,
                  jnp.asarray(bool(use_clipped_model_output)))

    def inference_timesteps(self, num_train_timesteps, num_inference_steps, spacing="leading",
                            steps_offset=0, extra_step="keep"):
        """DDPMScheduler.set_timesteps' NumPy computation (scheduling_ddpm.py 320-342), which
        keeps trailing spacing's extra -1."""
        if extra_step != "keep":
            raise Unsupported("set_timesteps keeps trailing spacing's extra -1")
        t_count, n = num_train_timesteps, num_inference_steps
        if not 1 <= n <= t_count:
            raise ValueError(f"num_inference_steps: {n} not in [1, {t_count}]")
        if spacing == "linspace":
            return np.linspace(0, t_count - 1, n).round()[::-1].copy().astype(np.int64)
        if spacing == "leading":
            ratio = t_count // n
            return (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
        if spacing == "trailing":
            return np.round(np.arange(t_count, 0, -t_count / n)).astype(np.int64) - 1
        raise ValueError(f"spacing: {spacing!r} is not one of {Df.SPACINGS}")
