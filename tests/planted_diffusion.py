"""Planted bugs of the diffusion schedulers, each modelled on a real one (see tests/planted.py):
the oracle's adapter with its schedulers (backends/diffusion.py's NumpyDiffusion) and one
formula broken as scheduler code breaks it. Each must make properties/test_diffusion.py fail
in its ``component``."""

from __future__ import annotations

import math

import numpy as np

from backends.diffusion import NumpyDiffusion
from reference import diffusion as Df
from tests.planted import Planted


class PlantedDiffusion(Planted, NumpyDiffusion):
    """Base: the oracle's schedulers."""


def _per_sample(ac: np.ndarray, ts: np.ndarray, ndim: int) -> np.ndarray:
    return ac[ts].reshape((-1,) + (1,) * (ndim - 1))


class AlphaIndexOffByOne(PlantedDiffusion):
    """add_noise reads abar_{t-1} for t (the cumulative product indexed from 1, as in code
    ported from a 1-based paper), and at t = 0 wraps to the last, abar_{T-1}."""

    name = "planted-diffusion-alpha-index-off-by-one"
    component = "add_noise"

    def add_noise(self, x0, noise, timesteps, alphas_cumprod):
        a = _per_sample(alphas_cumprod, np.asarray(timesteps) - 1, x0.ndim)
        return np.sqrt(a) * x0 + np.sqrt(1 - a) * noise


class NoiseScaledByVariance(PlantedDiffusion):
    """add_noise scales the noise by the variance 1 - abar_t instead of its square root."""

    name = "planted-diffusion-noise-scaled-by-variance"
    component = "add_noise"

    def add_noise(self, x0, noise, timesteps, alphas_cumprod):
        a = _per_sample(alphas_cumprod, np.asarray(timesteps), x0.ndim)
        return np.sqrt(a) * x0 + (1 - a) * noise


class CosineNotClipped(PlantedDiffusion):
    """The cosine schedule's betas 1 - abar(t + 1) / abar(t) without the cap at max_beta: the
    last is 1 - 4e-33 / abar((T - 1) / T), abar_{T-1} collapses to about 0."""

    name = "planted-diffusion-cosine-not-clipped"
    component = "diffusion_schedule"

    def schedule_alphas_cumprod(self, schedule, num_train_timesteps, beta_start, beta_end,
                                max_beta, dtype):
        if schedule != "squaredcos_cap_v2":
            return super().schedule_alphas_cumprod(schedule, num_train_timesteps, beta_start,
                                                   beta_end, max_beta, dtype)
        u = np.arange(num_train_timesteps + 1) / num_train_timesteps
        abar = np.cos((u + Df.COSINE_S) / (1 + Df.COSINE_S) * math.pi / 2) ** 2
        return np.cumprod(abar[1:] / abar[:-1])


class VelocitySignFlipped(PlantedDiffusion):
    """The v-prediction target with its sign flipped, sqrt(1 - abar) x0 - sqrt(abar) noise
    (the velocity of the other time direction)."""

    name = "planted-diffusion-velocity-sign-flipped"
    component = "training_target"

    def velocity(self, x0, noise, timesteps, alphas_cumprod):
        return -Df.velocity(x0, noise, timesteps, alphas_cumprod)


class DDIMSigmaMissingFactor(PlantedDiffusion):
    """DDIM's sigma as eta sqrt((1 - abar_prev) / (1 - abar_t)), without the factor
    sqrt(1 - abar_t / abar_prev): eta = 1 adds far more noise than DDPM's posterior."""

    name = "planted-diffusion-ddim-sigma-missing-factor"
    component = "ddim_step"

    def ddim_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t, eta=0.0,
                  prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
                  set_alpha_to_one=True, use_clipped_model_output=False):
        kw = {"prediction_type": prediction_type, "clip_sample": clip_sample,
              "clip_sample_range": clip_sample_range, "set_alpha_to_one": set_alpha_to_one,
              "use_clipped_model_output": use_clipped_model_output}
        _, x0 = Df.ddim_step(model_output, t, sample, noise, alphas_cumprod, prev_t=prev_t,
                             **kw)
        a = float(alphas_cumprod[t])
        ap = (float(alphas_cumprod[prev_t]) if prev_t >= 0
              else 1.0 if set_alpha_to_one else float(alphas_cumprod[0]))
        sigma = eta * math.sqrt((1 - ap) / (1 - a))
        if use_clipped_model_output:
            eps = (sample - math.sqrt(a) * x0) / math.sqrt(1 - a)
        elif prediction_type == "epsilon":
            eps = model_output
        elif prediction_type == "sample":
            eps = (sample - math.sqrt(a) * model_output) / math.sqrt(1 - a)
        else:
            eps = math.sqrt(a) * model_output + math.sqrt(1 - a) * sample
        prev = math.sqrt(ap) * x0 + math.sqrt(max(1 - ap - sigma ** 2, 0.0)) * eps
        return (prev + sigma * noise if eta > 0 else prev), x0


class BetaForBetaTilde(PlantedDiffusion):
    """DDPM's 'fixed_small' variance is beta_t where it should be the posterior's beta-tilde
    (1 - abar_prev) / (1 - abar_t) beta_t: the 'fixed_large' noise under the small name."""

    name = "planted-diffusion-beta-for-beta-tilde"
    component = "ddpm_step"

    def ddpm_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t,
                  variance_type="fixed_small", **kwargs):
        if variance_type == "fixed_small":
            variance_type = "fixed_large"
        return Df.ddpm_step(model_output, t, sample, noise, alphas_cumprod, prev_t=prev_t,
                            variance_type=variance_type, **kwargs)


class NoiseAtLastStep(PlantedDiffusion):
    """DDPM adds noise at every step, t = 0 too (the `if t > 0` dropped): the final sample is
    noised by sqrt(beta-tilde_0) (clamped: 1e-10) or sqrt(beta_0)."""

    name = "planted-diffusion-noise-at-last-step"
    component = "ddpm_step"

    def ddpm_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t,
                  variance_type="fixed_small", min_variance=1e-20, **kwargs):
        prev, x0 = Df.ddpm_step(model_output, t, sample, noise, alphas_cumprod, prev_t=prev_t,
                                variance_type=variance_type, min_variance=min_variance,
                                **kwargs)
        if t == 0:
            var = Df.ddpm_variance(t, prev_t, alphas_cumprod, variance_type, min_variance)
            prev = prev + math.sqrt(var) * noise
        return prev, x0


class StepsOffsetIgnored(PlantedDiffusion):
    """'leading' spacing without steps_offset (Stable Diffusion's configs set 1): every
    timestep one below diffusers'."""

    name = "planted-diffusion-steps-offset-ignored"
    component = "diffusion_timesteps"

    def inference_timesteps(self, num_train_timesteps, num_inference_steps, spacing="leading",
                            steps_offset=0, extra_step="drop"):
        return Df.scheduler_timesteps(num_train_timesteps, num_inference_steps, spacing, 0,
                                      extra_step)


DIFFUSION_PLANTED = [AlphaIndexOffByOne, NoiseScaledByVariance, CosineNotClipped,
                     VelocitySignFlipped, DDIMSigmaMissingFactor, BetaForBetaTilde,
                     NoiseAtLastStep, StepsOffsetIgnored]
"""Every planted-bug backend of the diffusion schedulers."""
