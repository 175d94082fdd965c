"""The variational autoencoder (reference/vae.py) composed over a backend's own components:
the default behind ``VAEBackend``'s methods.

    x (N, *input_shape) -> encoder body (network.apply over bk) -> h (N, 2 L)
    mu, logvar = h[:, :L], h[:, L:];  z = mu + exp(logvar / 2) eps        (vae_reparameterize)
    out = decoder body (z) -> logits ('bernoulli') or means ('gaussian')
    loss = rec + beta KL,  KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) / N      (vae_kl)
    rec  = bk.bce_with_logits(out, x, 'sum') / N   or   bk.mse_loss(out, x, 'sum') / (2 N)

The KL is PyTorch's VAE example's form, in the backend's array arithmetic; parameters are
reference.vae's flat list (the encoder's, then the decoder's). Gradients come from the
backend's autodiff through the whole model (``loss_and_grads``, as ``loss.backward()``), or,
for a backend without a generic autodiff (the NumPy oracle), from its components' VJPs
chained by hand (``loss_and_grads_chained``: the bodies' backprop over its own VJPs, its
reconstruction loss's component_vjp, the reparameterisation's and the KL's VJP hooks).
``train`` is one step of the backend's optimizer per (x, eps) batch. ``call_vae_loss_and_grads``
and ``call_train_vae`` are the calls the properties make: NumPy in and out, failures named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from backends.compose_lm import detached
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference import network
from reference import vae as V
from reference.optimizers import Optimizer

Batch = tuple[Any, Any]


def namespace(x: Any) -> ModuleType:
    """The array module of a native array (torch, jax.numpy or numpy): exp, expm1, sqrt,
    concatenate with the same names in all three."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch
        return torch
    if mod.startswith("jax"):
        import jax.numpy as jnp
        return jnp
    return np


def split(model: V.VAE, params: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(the encoder's parameters, the decoder's)."""
    k = len(model.encoder().shapes()[0])
    return list(params[:k]), list(params[k:])


def reparameterize(mu: Any, logvar: Any, eps: Any) -> Any:
    """z = mu + exp(logvar / 2) eps (N, L), as ``std = torch.exp(0.5 * logvar)``."""
    return mu + namespace(logvar).exp(0.5 * logvar) * eps


def kl_divergence(mu: Any, logvar: Any) -> Any:
    """-1/2 sum(1 + logvar - mu^2 - exp(logvar)) / N: the analytic KL to N(0, I)."""
    return -0.5 * (1 + logvar - mu * mu - namespace(logvar).exp(logvar)).sum() / mu.shape[0]


def reconstruction(bk: Any, kind: str, out: Any, x: Any) -> Any:
    """Summed over pixels, averaged over the batch: bce_with_logits or mse_loss / 2."""
    n = out.shape[0]
    if kind == "bernoulli":
        return bk.bce_with_logits(out, x, reduction="sum") / n
    return bk.mse_loss(out, x, reduction="sum") / (2 * n)


def forward(bk: Any, model: V.VAE, params: Sequence[Any], x: Any, eps: Any
            ) -> tuple[Any, Any, Any]:
    """(decoder output (N, *input_shape), mu (N, L), logvar (N, L))."""
    enc, dec = split(model, params)
    h, _ = network.apply(model.encoder(), bk, enc, [], x, training=True)
    mu, logvar = h[:, :model.latent], h[:, model.latent:]
    z = getattr(bk, "vae_reparameterize", reparameterize)(mu, logvar, eps)
    out, _ = network.apply(model.decoder(), bk, dec, [], z, training=True)
    return out, mu, logvar


def losses(bk: Any, model: V.VAE, params: Sequence[Any], x: Any, eps: Any, beta: Any
           ) -> tuple[Any, tuple[Any, Any]]:
    """(rec + beta KL, (rec, KL)); ``beta`` an argument (a traced scalar under jax.jit)."""
    out, mu, logvar = forward(bk, model, params, x, eps)
    rec = reconstruction(bk, model.reconstruction, out, x)
    kl = getattr(bk, "vae_kl", kl_divergence)(mu, logvar)
    return rec + beta * kl, (rec, kl)


def loss_and_grads(bk: Any, model: V.VAE, params: Sequence[Any], x: Any, eps: Any,
                   beta: Any = None) -> tuple[Any, list[Any], tuple[Any, Any]]:
    """(loss, the gradient of every parameter, (rec, KL)) by the backend's autodiff; eps is
    held fixed; ``beta`` None is the model's."""
    b = model.beta if beta is None else beta
    value, grads, (rec, kl) = bk.value_and_grad_aux(
        lambda p: losses(bk, model, p, x, eps, b), list(params))
    return value, list(grads), (detached(rec), detached(kl))


def loss_and_grads_chained(bk: Any, model: V.VAE, params: Sequence[Any], x: Any, eps: Any
                           ) -> tuple[Any, list[Any], tuple[Any, Any]]:
    """``loss_and_grads`` by the chain rule over the backend's own VJPs: reconstruction ->
    decoder (network.backprop) -> reparameterisation, plus beta times the KL's, -> encoder."""
    enc, dec = split(model, params)
    vjps = bk.network_vjps()
    n, lat = x.shape[0], model.latent
    h, _, enc_tape = network.forward_tape(model.encoder(), enc, [], x, ops=bk)
    mu, logvar = h[:, :lat], h[:, lat:]
    out, _, dec_tape = network.forward_tape(model.decoder(), dec, [],
                                            bk.vae_reparameterize(mu, logvar, eps), ops=bk)
    name, scale = (("bce_with_logits", 1.0 / n) if model.reconstruction == "bernoulli"
                   else ("mse_loss", 0.5 / n))
    (total,), (g_out,) = bk.component_vjp(name, [out], [np.float64(scale)], target=x,
                                          reduction="sum")
    rec = total * scale
    kl = bk.vae_kl(mu, logvar)
    g_z, dec_grads = network.backprop(dec_tape, g_out, vjps=vjps)
    g_mu, g_logvar = bk.vae_reparameterize_vjp(mu, logvar, eps, g_z)
    k_mu, k_logvar = bk.vae_kl_vjp(mu, logvar, np.float64(model.beta))
    _, enc_grads = network.backprop(enc_tape, np.concatenate([g_mu + k_mu, g_logvar + k_logvar],
                                                             axis=1), vjps=vjps)
    return rec + model.beta * kl, enc_grads + dec_grads, (rec, kl)


def train(bk: Any, model: V.VAE, params: Sequence[Any], batches: Sequence[Batch],
          optimizer: Optimizer) -> tuple[list[Any], list[float]]:
    """reference.vae.train: one step of ``optimizer`` per (x, eps) batch, in order, from the
    backend's vae_loss_and_grads. Returns (final params, the loss of each batch before its
    step)."""
    step = method(bk, "vae_loss_and_grads")
    p = list(params)
    opt_state = optimizer.init(p)
    history = []
    for x, eps in batches:
        value, grads, _ = step(model, p, x, eps)
        history.append(float(bk.to_numpy(value)))
        p, opt_state = optimizer.update(list(grads), opt_state, p)
    return p, history


class VAEBackend:
    """Mixin for a Backend: the VAE composed from its own components, differentiated by its
    own autodiff. ``vae_reparameterize`` and ``vae_kl`` are the model's arithmetic."""

    def vae_reparameterize(self, mu: Any, logvar: Any, eps: Any) -> Any:
        """z = mu + exp(logvar / 2) eps."""
        return reparameterize(mu, logvar, eps)

    def vae_kl(self, mu: Any, logvar: Any) -> Any:
        """-1/2 sum(1 + logvar - mu^2 - exp(logvar)) / N."""
        return kl_divergence(mu, logvar)

    def vae_loss_and_grads(self, model: V.VAE, params: Sequence[Any], x: Any, eps: Any
                           ) -> tuple[Any, list[Any], tuple[Any, Any]]:
        """(rec + beta KL, gradient of every parameter, (rec, KL))."""
        return loss_and_grads(self, model, params, x, eps)

    def train_vae(self, model: V.VAE, params: Sequence[Any], batches: Sequence[Batch],
                  optimizer: Optimizer) -> tuple[list[Any], list[float]]:
        """(final params, loss history) of one optimizer step per (x, eps) batch."""
        return train(self, model, params, batches, optimizer)


class ChainedVAE(VAEBackend):
    """The mixin for a backend whose gradients are its components' VJPs (the NumPy oracle):
    the reparameterisation and the KL are reference.vae's, with their VJPs."""

    def vae_kl(self, mu, logvar):
        return np.asarray(V.kl_divergence(mu, logvar))

    def vae_reparameterize_vjp(self, mu, logvar, eps, g):
        """(d mu, d logvar) for the cotangent g of z."""
        return V.reparameterize_vjp(mu, logvar, eps, g)

    def vae_kl_vjp(self, mu, logvar, g):
        """(d mu, d logvar) for the cotangent g of the KL."""
        return V.kl_divergence_vjp(mu, logvar, g)

    def vae_loss_and_grads(self, model, params, x, eps):
        """(loss, gradient of every parameter, (rec, KL)) by chained VJPs."""
        return loss_and_grads_chained(self, model, params, x, eps)


def method(bk: Any, name: str) -> Callable[..., Any]:
    """The backend's ``name`` ('vae_loss_and_grads', 'train_vae'), or the composition for a
    backend without the mixin."""
    found = getattr(bk, name, None)
    if found is not None:
        return found
    return partial({"vae_loss_and_grads": loss_and_grads, "train_vae": train}[name], bk)


# -- the calls the properties make: NumPy in and out, failures named ------------------------


def call_vae_loss_and_grads(backend: Any, model: V.VAE, params: Sequence[np.ndarray],
                            x: np.ndarray, eps: np.ndarray, dtype: str
                            ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """(loss, gradients, reconstruction, KL) of the backend's vae_loss_and_grads."""
    what = "vae_loss_and_grads"
    out = guard(backend, what, method(backend, what), model, to_native(backend, params, dtype),
                to_native(backend, x, dtype), to_native(backend, eps, dtype))
    if not isinstance(out, tuple | list) or len(out) != 3 or len(out[2]) != 2:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(loss, grads, (rec, kl))")
    value, grads, (rec, kl) = out
    if len(grads) != len(params):
        raise BackendError(f"{backend.id}: {what} returned {len(grads)} gradients for "
                           f"{len(params)} parameters")
    return (checked_array(backend, what, value, dtype, "the loss"),
            [checked_array(backend, what, g, dtype, f"grads[{i}]") for i, g in enumerate(grads)],
            checked_array(backend, what, rec, dtype, "the reconstruction"),
            checked_array(backend, what, kl, dtype, "the KL"))


def call_train_vae(backend: Any, model: V.VAE, params: Sequence[np.ndarray],
                   batches: Sequence[tuple[np.ndarray, np.ndarray]], optimizer: str,
                   hyper: dict[str, Any], dtype: str) -> tuple[list[np.ndarray], np.ndarray]:
    """(final params, loss history) of the backend's train_vae with its ``optimizer``."""
    what = "train_vae"
    opt = guard(backend, f"optimizer {optimizer}", backend.optimizer, optimizer, **hyper)
    native = [(to_native(backend, x, dtype), to_native(backend, e, dtype)) for x, e in batches]
    out = guard(backend, what, method(backend, what), model, to_native(backend, params, dtype),
                native, opt)
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
