"""diffusers' DDPMScheduler and DDIMScheduler behind backends/diffusion.py's interface.

What users run: the scheduler built from its config (``beta_schedule``, ``prediction_type``,
``variance_type``, ``clip_sample``, ``clip_sample_range``, ``set_alpha_to_one``,
``timestep_spacing``, ``steps_offset``), its ``add_noise``, ``get_velocity``,
``set_timesteps`` and ``step``. The schedule is diffusers' own (float32 whatever the call's
dtype, cast to it on return); the other methods take the given ``alphas_cumprod`` in the
call's dtype in place of the scheduler's, so they compute in that dtype. A step goes from t
to the given prev_t: DDPMScheduler's previous timestep is the next entry of its list, so it
is given the list [t, prev_t] ([t] where prev_t < 0); DDIMScheduler's is
t - T // num_inference_steps, so it is given an n with T // n = t - prev_t (any n with
T // n > t where prev_t < 0), and a prev_t no n reaches is Unsupported.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from backends.base import Unsupported
from backends.diffusion import DiffusionBackend

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@functools.cache
def _ddpm_module() -> ModuleType:
    """diffusers' scheduling_ddpm, imported at first use: importing diffusers takes seconds
    (half of the torch adapter's import), and only the scheduler properties need it."""
    from diffusers.schedulers import scheduling_ddpm
    return scheduling_ddpm


def _ddpm() -> type:
    return _ddpm_module().DDPMScheduler


def _ddim() -> type:
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    return DDIMScheduler


@contextlib.contextmanager
def _given_noise(noise: torch.Tensor | None) -> Iterator[None]:
    """DDPMScheduler.step draws its noise with randn_tensor(shape, generator=, device=,
    dtype=) (scheduling_ddpm.py 545); it takes no noise argument, so the module's name
    randn_tensor is bound, for the call, to a function that returns the given noise after
    checking the shape and dtype requested."""
    def given(shape, generator=None, device=None, dtype=None, **_: Any) -> torch.Tensor:
        if noise is None:
            raise ValueError("DDPMScheduler.step asked for noise, and none was given")
        if tuple(shape) != tuple(noise.shape) or (dtype is not None and dtype != noise.dtype):
            raise ValueError(f"DDPMScheduler.step asked for noise {tuple(shape)} {dtype}, the "
                             f"given noise is {tuple(noise.shape)} {noise.dtype}")
        return noise

    module = _ddpm_module()
    original = module.randn_tensor
    module.randn_tensor = given
    try:
        yield
    finally:
        module.randn_tensor = original


def _ddim_steps(t: int, prev_t: int, num_train_timesteps: int) -> int:
    """An n with T // n = t - prev_t (T // n > t where prev_t < 0)."""
    for n in range(1, num_train_timesteps + 1):
        gap = num_train_timesteps // n
        if (prev_t < 0 and gap > t) or gap == t - prev_t:
            return n
    raise Unsupported(f"DDIMScheduler steps from t to t - T // num_inference_steps: no n "
                      f"gives prev_t = {prev_t} from t = {t} (T = {num_train_timesteps})")


class TorchDiffusion(DiffusionBackend):
    """Mixin for TorchBackend (backends/diffusion.py has the interface)."""

    diffusion_conventions: dict[str, dict[str, Any]] = {
        # DDPMScheduler._get_variance clamps beta-tilde at 1e-20 (scheduling_ddpm.py 391)
        "ddpm_step": {"min_variance": 1e-20},
        # set_timesteps keeps the -1 that 'trailing' spacing's float np.arange may add
        "diffusion_timesteps": {"extra_step": "keep"},
    }

    def schedule_alphas_cumprod(self, schedule, num_train_timesteps, beta_start, beta_end,
                                max_beta, dtype):
        """DDPMScheduler(...).alphas_cumprod (float32), in ``dtype``. diffusers' cosine
        schedule clips at betas_for_alpha_bar's max_beta = 0.999, which the config does not
        set: another max_beta is Unsupported."""
        if schedule == "squaredcos_cap_v2" and max_beta != 0.999:
            raise Unsupported(f"DDPMScheduler clips the cosine schedule at 0.999, not {max_beta}")
        s = _ddpm()(num_train_timesteps=num_train_timesteps, beta_start=beta_start,
                          beta_end=beta_end, beta_schedule=schedule)
        return s.alphas_cumprod.to(device=self._device, dtype=_DTYPES[dtype])

    def _scheduler(self, cls: type, alphas_cumprod: torch.Tensor, **config: Any) -> Any:
        """A scheduler of T = len(alphas_cumprod) steps whose alphas_cumprod (and the 1 it
        uses before the first step) are the given ones, in their dtype."""
        s = cls(num_train_timesteps=int(alphas_cumprod.shape[0]), **config)
        s.alphas_cumprod = alphas_cumprod
        s.one = torch.tensor(1.0, dtype=alphas_cumprod.dtype, device=alphas_cumprod.device)
        return s

    def add_noise(self, x0, noise, timesteps, alphas_cumprod):
        """DDPMScheduler.add_noise."""
        return self._scheduler(_ddpm(), alphas_cumprod).add_noise(x0, noise, timesteps)

    def velocity(self, x0, noise, timesteps, alphas_cumprod):
        """DDPMScheduler.get_velocity."""
        return self._scheduler(_ddpm(), alphas_cumprod).get_velocity(x0, noise, timesteps)

    def ddpm_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t,
                  prediction_type="epsilon", variance_type="fixed_small", clip_sample=True,
                  clip_sample_range=1.0, min_variance=1e-20):
        """DDPMScheduler.step with the given noise (_given_noise)."""
        if min_variance != 1e-20:
            raise Unsupported(f"DDPMScheduler clamps the variance at 1e-20, not {min_variance}")
        s = self._scheduler(_ddpm(), alphas_cumprod, prediction_type=prediction_type,
                            variance_type=variance_type, clip_sample=clip_sample,
                            clip_sample_range=clip_sample_range)
        s.set_timesteps(timesteps=[t, prev_t] if prev_t >= 0 else [t])
        with _given_noise(noise):
            out = s.step(model_output, t, sample)
        return out.prev_sample, out.pred_original_sample

    def ddim_step(self, model_output, t, sample, noise, alphas_cumprod, *, prev_t, eta=0.0,
                  prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
                  set_alpha_to_one=True, use_clipped_model_output=False):
        """DDIMScheduler.step(eta=, use_clipped_model_output=, variance_noise=noise)."""
        s = self._scheduler(_ddim(), alphas_cumprod, prediction_type=prediction_type,
                            clip_sample=clip_sample, clip_sample_range=clip_sample_range,
                            set_alpha_to_one=set_alpha_to_one)
        s.final_alpha_cumprod = s.one if set_alpha_to_one else alphas_cumprod[0]
        s.set_timesteps(_ddim_steps(t, prev_t, int(alphas_cumprod.shape[0])))
        if eta > 0 and noise is None:
            raise ValueError("DDIMScheduler.step with eta > 0 needs the noise")
        out = s.step(model_output, t, sample, eta=eta,
                     use_clipped_model_output=use_clipped_model_output,
                     variance_noise=noise if eta > 0 else None)
        return out.prev_sample, out.pred_original_sample

    def inference_timesteps(self, num_train_timesteps, num_inference_steps, spacing="leading",
                            steps_offset=0, extra_step="keep"):
        """DDPMScheduler(timestep_spacing=, steps_offset=).set_timesteps(n).timesteps."""
        if extra_step != "keep":
            raise Unsupported("DDPMScheduler.set_timesteps keeps trailing spacing's extra -1")
        s = _ddpm()(num_train_timesteps=num_train_timesteps, timestep_spacing=spacing,
                          steps_offset=steps_offset)
        s.set_timesteps(num_inference_steps)
        return s.timesteps

