"""The diffusion denoiser's training (reference/diffusion.py's Denoiser) composed over a
backend's own components: the default behind ``DenoiserBackend``'s methods.

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise        (add_noise; abar = alphas_cumprod[t])
    target = noise | x0 | sqrt(abar_t) noise - sqrt(1 - abar_t) x0    (by prediction_type)
    out = MLP([x_t, timestep_embedding(t)])   (network.apply over bk: dense, silu)
    loss = bk.mse_loss(out, target), the mean over the N dim elements

x0, noise (N, dim) floats, t (N,) integers, alphas_cumprod (T,) an input array (the
oracle's, in the run's dtype). The timestep embedding is the framework's: diffusers'
get_timestep_embedding on torch (``TorchDenoiser``; it computes in float32 whatever the
run's dtype), the same formula in the sample's array module elsewhere
(``timestep_embedding``). Gradients come from the backend's autodiff (``loss_and_grads``) or,
for the NumPy oracle, reference.network's backward over its own VJPs (``ChainedDenoiser``).
``train`` is one step of the backend's optimizer per (x0, noise, t) batch.
``call_denoiser_loss_and_grads`` and ``call_train_denoiser`` are the properties' calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from backends.compose_vae import namespace
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference import network
from reference.diffusion import Denoiser
from reference.optimizers import Optimizer

Batch = tuple[Any, Any, Any]


def timestep_embedding(t: Any, dim: int, flip_sin_to_cos: bool, downscale_freq_shift: float,
                       like: Any) -> Any:
    """diffusers' get_timestep_embedding in the array module and dtype of ``like``: with
    h = dim // 2, a = t exp(-ln(10000) i / (h - shift)), [sin a, cos a] ([cos a, sin a] when
    flipped), a zero column for odd dim; (N, dim)."""
    xp = namespace(like)
    half = dim // 2
    exponent = -math.log(10000) * xp.arange(half, dtype=like.dtype) / (half - downscale_freq_shift)
    arg = t[:, None].astype(like.dtype) * xp.exp(exponent)[None, :]
    parts = [xp.sin(arg), xp.cos(arg)]
    if flip_sin_to_cos:
        parts = parts[::-1]
    if dim % 2:
        parts.append(xp.zeros((t.shape[0], 1), dtype=like.dtype))
    return xp.concatenate(parts, axis=1)


def inputs(bk: Any, model: Denoiser, x0: Any, noise: Any, t: Any, alphas_cumprod: Any
           ) -> tuple[Any, Any]:
    """(the MLP's input [x_t, embedding] (N, dim + embed), the training target (N, dim))."""
    xp = namespace(x0)
    abar = alphas_cumprod[t][:, None]
    sa, sb = xp.sqrt(abar), xp.sqrt(1 - abar)
    x_t = sa * x0 + sb * noise
    target = {"epsilon": noise, "sample": x0}.get(model.prediction_type)
    if target is None:
        target = bk.denoiser_velocity(x0, noise, sa, sb)
    emb = bk.denoiser_timestep_embedding(model, t, x0)
    return xp.concatenate([x_t, emb], axis=1), target


def loss(bk: Any, model: Denoiser, params: Sequence[Any], x0: Any, noise: Any, t: Any,
         alphas_cumprod: Any) -> Any:
    """The mean squared error of the MLP's output to the target."""
    h, target = inputs(bk, model, x0, noise, t, alphas_cumprod)
    out, _ = network.apply(model.architecture(), bk, params, [], h, training=True)
    return bk.mse_loss(out, target)


def loss_and_grads(bk: Any, model: Denoiser, params: Sequence[Any], x0: Any, noise: Any,
                   t: Any, alphas_cumprod: Any) -> tuple[Any, list[Any]]:
    """(loss, the gradient of every parameter) by the backend's autodiff."""
    value, grads = bk.value_and_grad(
        lambda p: loss(bk, model, p, x0, noise, t, alphas_cumprod), list(params))
    return value, list(grads)


def loss_and_grads_chained(bk: Any, model: Denoiser, params: Sequence[Any], x0: Any,
                           noise: Any, t: Any, alphas_cumprod: Any) -> tuple[Any, list[Any]]:
    """``loss_and_grads`` by reference.network's backward over the backend's own ops and
    VJPs (the inputs do not depend on the parameters)."""
    h, target = inputs(bk, model, x0, noise, t, alphas_cumprod)
    value, grads, _ = network.loss_and_grads(model.architecture(), params, [], h, target,
                                             ops=bk, vjps=bk.network_vjps())
    return np.asarray(value), grads


def train(bk: Any, model: Denoiser, params: Sequence[Any], batches: Sequence[Batch],
          alphas_cumprod: Any, optimizer: Optimizer) -> tuple[list[Any], list[float]]:
    """reference.diffusion.train: one step of ``optimizer`` per (x0, noise, t) batch.
    Returns (final params, the loss of each batch before its step)."""
    step = method(bk, "denoiser_loss_and_grads")
    p = list(params)
    opt_state = optimizer.init(p)
    history = []
    for x0, noise, t in batches:
        value, grads = step(model, p, x0, noise, t, alphas_cumprod)
        history.append(float(bk.to_numpy(value)))
        p, opt_state = optimizer.update(list(grads), opt_state, p)
    return p, history


class DenoiserBackend:
    """Mixin for a Backend: the denoiser's training composed from its own components and
    differentiated by its own autodiff."""

    def denoiser_timestep_embedding(self, model: Denoiser, t: Any, like: Any) -> Any:
        """The model's timestep embedding (N, embed) of integer t (N,), like ``like``."""
        return timestep_embedding(t, model.embed, model.flip_sin_to_cos,
                                  model.downscale_freq_shift, like)

    def denoiser_velocity(self, x0: Any, noise: Any, sa: Any, sb: Any) -> Any:
        """v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0 (diffusers' get_velocity)."""
        return sa * noise - sb * x0

    def denoiser_loss_and_grads(self, model: Denoiser, params: Sequence[Any], x0: Any,
                                noise: Any, t: Any, alphas_cumprod: Any) -> tuple[Any, list[Any]]:
        """(the mean squared error, the gradient of every parameter)."""
        return loss_and_grads(self, model, params, x0, noise, t, alphas_cumprod)

    def train_denoiser(self, model: Denoiser, params: Sequence[Any], batches: Sequence[Batch],
                       alphas_cumprod: Any, optimizer: Optimizer
                       ) -> tuple[list[Any], list[float]]:
        """(final params, loss history) of one optimizer step per (x0, noise, t) batch."""
        return train(self, model, params, batches, alphas_cumprod, optimizer)


class TorchDenoiser(DenoiserBackend):
    """The mixin for the torch adapter: diffusers' get_timestep_embedding (float32, as
    diffusers computes it), cast to the sample's dtype as a model's input would be."""

    def denoiser_timestep_embedding(self, model, t, like):
        from diffusers.models.embeddings import get_timestep_embedding
        emb = get_timestep_embedding(t, model.embed, flip_sin_to_cos=model.flip_sin_to_cos,
                                     downscale_freq_shift=model.downscale_freq_shift)
        return emb.to(like.dtype)


class ChainedDenoiser(DenoiserBackend):
    """The mixin for a backend whose gradients are its components' VJPs (the NumPy oracle)."""

    def denoiser_loss_and_grads(self, model, params, x0, noise, t, alphas_cumprod):
        return loss_and_grads_chained(self, model, params, x0, noise, t, alphas_cumprod)


def method(bk: Any, name: str) -> Callable[..., Any]:
    """The backend's ``name`` ('denoiser_loss_and_grads', 'train_denoiser')."""
    found = getattr(bk, name, None)
    if found is not None:
        return found
    return partial({"denoiser_loss_and_grads": loss_and_grads, "train_denoiser": train}[name],
                   bk)


# -- the calls the properties make: NumPy in and out, failures named ------------------------


def call_denoiser_loss_and_grads(backend: Any, model: Denoiser, params: Sequence[np.ndarray],
                                 x0: np.ndarray, noise: np.ndarray, t: np.ndarray,
                                 alphas_cumprod: np.ndarray, dtype: str
                                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """(loss, gradients) of the backend's denoiser_loss_and_grads, NumPy in and out."""
    what = "denoiser_loss_and_grads"
    out = guard(backend, what, method(backend, what), model,
                [to_native(backend, p, dtype) for p in params], to_native(backend, x0, dtype),
                to_native(backend, noise, dtype), backend.asarray(t),
                to_native(backend, alphas_cumprod, dtype))
    if not isinstance(out, tuple | list) or len(out) != 2 or len(out[1]) != len(params):
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           f"(loss, {len(params)} gradients)")
    value, grads = out
    return (checked_array(backend, what, value, dtype, "the loss"),
            [checked_array(backend, what, g, dtype, f"grads[{i}]") for i, g in enumerate(grads)])


def call_train_denoiser(backend: Any, model: Denoiser, params: Sequence[np.ndarray],
                        batches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                        alphas_cumprod: np.ndarray, optimizer: str, hyper: dict[str, Any],
                        dtype: str) -> tuple[list[np.ndarray], np.ndarray]:
    """(final params, loss history) of the backend's train_denoiser with its ``optimizer``."""
    what = "train_denoiser"
    opt = guard(backend, f"optimizer {optimizer}", backend.optimizer, optimizer, **hyper)
    native = [(to_native(backend, x0, dtype), to_native(backend, e, dtype), backend.asarray(t))
              for x0, e, t in batches]
    out = guard(backend, what, method(backend, what), model,
                [to_native(backend, p, dtype) for p in params], native,
                to_native(backend, alphas_cumprod, dtype), opt)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(params, history)")
    final, history = out
    if len(final) != len(params) or len(history) != len(batches):
        raise BackendError(f"{backend.id}: {what} returned {len(final)} parameters and "
                           f"{len(history)} losses for {len(params)} parameters and "
                           f"{len(batches)} batches")
    return ([checked_array(backend, what, p, dtype, f"params[{i}]") for i, p in enumerate(final)],
            np.asarray(history, dtype=np.float64))
