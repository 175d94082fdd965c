"""Diffusion schedulers (DDPM, DDIM): the backend interface, a mixin, the oracle's
implementation and the calls the properties make.

``DiffusionBackend`` gives a Backend the scheduler quantities of reference/diffusion.py with
its semantics and argument names, each raising UnsupportedComponent until an adapter
overrides it (``training_target`` is composed from the backend's ``velocity``):

    schedule_alphas_cumprod(schedule, num_train_timesteps, beta_start, beta_end, max_beta,
                            dtype) -> abar (T,)       (betas, then alphas_cumprod)
    add_noise(x0, noise, timesteps, alphas_cumprod) -> x_t (N, ...)
    velocity(x0, noise, timesteps, alphas_cumprod) -> v (N, ...)
    training_target(prediction_type, x0, noise, timesteps, alphas_cumprod) -> (N, ...)
    ddpm_step(model_output, t, sample, noise, alphas_cumprod, *, prev_t, prediction_type,
              variance_type, clip_sample, clip_sample_range, min_variance)
        -> (prev_sample, pred_original_sample)
    ddim_step(model_output, t, sample, noise, alphas_cumprod, *, prev_t, eta,
              prediction_type, clip_sample, clip_sample_range, set_alpha_to_one,
              use_clipped_model_output) -> (prev_sample, pred_original_sample)
    inference_timesteps(num_train_timesteps, num_inference_steps, spacing, steps_offset,
                        extra_step) -> int64 (n,) or (n + 1,)

Arrays are native, of the call's dtype; timesteps integers (N,); t and prev_t Python ints
(prev_t < t, negative: before the first step); the noise is given, never drawn. A mixin's
``diffusion_conventions`` join ``conventions`` (the class's own declarations win), so the
properties draw them and certificates list them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backends.base import Family, UnsupportedComponent
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference import diffusion as Df

#: the components the properties file the schedulers under
COMPONENTS = ("diffusion_schedule", "add_noise", "training_target", "ddpm_step", "ddim_step",
              "diffusion_timesteps")
#: the oracle's conventions: component -> {argument: the values it accepts}
CONVENTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "ddpm_step": {"min_variance": (1e-20, 0.0)},
    "diffusion_timesteps": {"extra_step": Df.EXTRA_STEPS},
}


class DiffusionBackend(Family):
    """Mixin for a Backend: the diffusion schedulers' quantities (module docstring)."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    diffusion_conventions: dict[str, dict[str, Any]] = {}
    declarations = {"conventions": "diffusion_conventions"}

    def schedule_alphas_cumprod(self, schedule: str, num_train_timesteps: int,
                                beta_start: float, beta_end: float, max_beta: float,
                                dtype: str) -> Any:
        """abar (T,) of the schedule, in ``dtype``."""
        return self._lacks("schedule_alphas_cumprod")

    def add_noise(self, x0: Any, noise: Any, timesteps: Any, alphas_cumprod: Any) -> Any:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        return self._lacks("add_noise")

    def velocity(self, x0: Any, noise: Any, timesteps: Any, alphas_cumprod: Any) -> Any:
        """v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0."""
        return self._lacks("velocity")

    def training_target(self, prediction_type: str, x0: Any, noise: Any, timesteps: Any,
                        alphas_cumprod: Any) -> Any:
        """noise ('epsilon'), x0 ('sample') or the backend's velocity ('v_prediction'), as a
        diffusers training script picks its target."""
        if prediction_type == "epsilon":
            return noise
        if prediction_type == "sample":
            return x0
        return self.velocity(x0, noise, timesteps, alphas_cumprod)

    def ddpm_step(self, model_output: Any, t: int, sample: Any, noise: Any,
                  alphas_cumprod: Any, *, prev_t: int, prediction_type: str = "epsilon",
                  variance_type: str = "fixed_small", clip_sample: bool = True,
                  clip_sample_range: float = 1.0, min_variance: float = 1e-20
                  ) -> tuple[Any, Any]:
        """(prev_sample, pred_original_sample) of DDPMScheduler.step from t to prev_t."""
        return self._lacks("ddpm_step")

    def ddim_step(self, model_output: Any, t: int, sample: Any, noise: Any,
                  alphas_cumprod: Any, *, prev_t: int, eta: float = 0.0,
                  prediction_type: str = "epsilon", clip_sample: bool = True,
                  clip_sample_range: float = 1.0, set_alpha_to_one: bool = True,
                  use_clipped_model_output: bool = False) -> tuple[Any, Any]:
        """(prev_sample, pred_original_sample) of DDIMScheduler.step from t to prev_t."""
        return self._lacks("ddim_step")

    def inference_timesteps(self, num_train_timesteps: int, num_inference_steps: int,
                            spacing: str = "leading", steps_offset: int = 0,
                            extra_step: str = "drop") -> Any:
        """The sampling run's timesteps (int64, descending) for ``spacing``."""
        return self._lacks("inference_timesteps")


class NumpyDiffusion(DiffusionBackend):
    """reference/diffusion.py itself (float64), every convention the oracle has."""

    diffusion_conventions: dict[str, dict[str, Any]] = CONVENTIONS

    def schedule_alphas_cumprod(self, schedule, num_train_timesteps, beta_start, beta_end,
                                max_beta, dtype):
        if dtype != "float64":
            raise UnsupportedComponent(f"the numpy schedule is float64 only, not {dtype}")
        return Df.alphas_cumprod(Df.betas(schedule, num_train_timesteps, beta_start, beta_end,
                                          max_beta))

    def add_noise(self, x0, noise, timesteps, alphas_cumprod):
        return Df.add_noise(x0, noise, timesteps, alphas_cumprod)

    def velocity(self, x0, noise, timesteps, alphas_cumprod):
        return Df.velocity(x0, noise, timesteps, alphas_cumprod)

    def ddpm_step(self, model_output, t, sample, noise, alphas_cumprod, **kwargs):
        return Df.ddpm_step(model_output, t, sample, noise, alphas_cumprod, **kwargs)

    def ddim_step(self, model_output, t, sample, noise, alphas_cumprod, **kwargs):
        return Df.ddim_step(model_output, t, sample, noise, alphas_cumprod, **kwargs)

    def inference_timesteps(self, num_train_timesteps, num_inference_steps, spacing="leading",
                            steps_offset=0, extra_step="drop"):
        return Df.scheduler_timesteps(num_train_timesteps, num_inference_steps, spacing,
                                      steps_offset, extra_step)


# -- the calls the properties make: NumPy in and out, failures named ------------------------
def _natives(backend: Any, arrays: dict[str, np.ndarray | None], dtype: str) -> dict[str, Any]:
    """Float arrays in ``dtype``, integer ones as integers (timesteps), None kept."""
    return {k: None if a is None else to_native(backend, a, dtype) for k, a in arrays.items()}


def _called(backend: Any, what: str, natives: dict[str, Any], fn, *args: Any,
            **kwargs: Any) -> Any:
    """fn(*args, **kwargs) under guard, the native inputs untouched (else BackendError)."""
    before = {k: None if a is None else np.array(backend.to_numpy(a))
              for k, a in natives.items()}
    out = guard(backend, what, fn, *args, **kwargs)
    for k, a in natives.items():
        if a is not None and not np.array_equal(backend.to_numpy(a), before[k], equal_nan=True):
            raise BackendError(f"{backend.id}: {what} mutated its input {k}")
    return out


def _pair(backend: Any, what: str, out: Any, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(prev_sample, pred_original_sample)")
    return (checked_array(backend, what, out[0], dtype, "prev_sample"),
            checked_array(backend, what, out[1], dtype, "pred_original_sample"))


def _shaped(backend: Any, what: str, a: np.ndarray, shape: Sequence[int], label: str
            ) -> np.ndarray:
    if a.shape != tuple(shape):
        raise BackendError(f"{backend.id}: {what} returned {label} of shape {a.shape}, "
                           f"expected {tuple(shape)}")
    return a


def call_schedule(backend: Any, schedule: str, num_train_timesteps: int, beta_start: float,
                  beta_end: float, max_beta: float, dtype: str) -> np.ndarray:
    """abar (T,) of backend.schedule_alphas_cumprod, NumPy out."""
    what = "schedule_alphas_cumprod"
    out = guard(backend, what, backend.schedule_alphas_cumprod, schedule, num_train_timesteps,
                beta_start, beta_end, max_beta, dtype)
    return _shaped(backend, what, checked_array(backend, what, out, dtype, "alphas_cumprod"),
                   (num_train_timesteps,), "alphas_cumprod")


def call_forward_process(backend: Any, name: str, x0: np.ndarray, noise: np.ndarray,
                         timesteps: np.ndarray, alphas_cumprod: np.ndarray, dtype: str,
                         prediction_type: str | None = None) -> np.ndarray:
    """backend.<name>(x0, noise, timesteps, alphas_cumprod) for name 'add_noise' or
    'velocity', or training_target(prediction_type, ...), NumPy in and out."""
    nat = _natives(backend, {"x0": x0, "noise": noise,
                             "timesteps": np.asarray(timesteps, dtype=np.int64),
                             "alphas_cumprod": alphas_cumprod}, dtype)
    fn = getattr(backend, name)
    args = ([] if prediction_type is None else [prediction_type]) + list(nat.values())
    out = _called(backend, name, nat, fn, *args)
    return _shaped(backend, name, checked_array(backend, name, out, dtype, "its result"),
                   x0.shape, "its result")


def call_step(backend: Any, name: str, model_output: np.ndarray, t: int, sample: np.ndarray,
              noise: np.ndarray | None, alphas_cumprod: np.ndarray, kwargs: dict[str, Any],
              dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(prev_sample, pred_original_sample) of backend.<name> ('ddpm_step', 'ddim_step'),
    NumPy in and out, of the sample's shape and ``dtype``, the inputs untouched."""
    nat = _natives(backend, {"model_output": model_output, "sample": sample, "noise": noise,
                             "alphas_cumprod": alphas_cumprod}, dtype)
    out = _called(backend, name, nat, getattr(backend, name), nat["model_output"], int(t),
                  nat["sample"], nat["noise"], nat["alphas_cumprod"], **kwargs)
    prev, x0 = _pair(backend, name, out, dtype)
    return (_shaped(backend, name, prev, sample.shape, "prev_sample"),
            _shaped(backend, name, x0, sample.shape, "pred_original_sample"))


def call_timesteps(backend: Any, num_train_timesteps: int, num_inference_steps: int,
                   spacing: str, steps_offset: int, extra_step: str) -> np.ndarray:
    """backend.inference_timesteps(...) as a 1-D NumPy integer array."""
    what = "inference_timesteps"
    out = guard(backend, what, backend.inference_timesteps, num_train_timesteps,
                num_inference_steps, spacing, steps_offset, extra_step)
    a = np.asarray(backend.to_numpy(out) if backend.is_array(out) else out)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise BackendError(f"{backend.id}: {what} returned a {a.dtype} array of shape "
                           f"{a.shape}, expected 1-D integers")
    return a.astype(np.int64)
