"""The VAE and the diffusion denoiser on JAX: backends/compose_vae.py's and
backends/compose_denoiser.py's compositions (the adapter's convolutions, Dense, activations
and losses, jax.value_and_grad through all of it) compiled as one jax.jit per model
configuration and shapes, as a flax training step runs; the optimizer step (the adapter's
optax optimizers) runs between the compiled steps as a training loop does. The VAE's beta
is a traced argument, so models that differ in beta alone share a compilation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from backends import compose_denoiser, compose_vae
from backends.jax_compiled import COMPILED
from reference.diffusion import Denoiser
from reference.vae import VAE


class JaxVAE(compose_vae.VAEBackend):
    """Mixin for JaxBackend: the VAE's loss and gradients jitted."""

    def vae_loss_and_grads(self, model: VAE, params: Sequence[Any], x: Any, eps: Any
                           ) -> tuple[Any, list[Any], tuple[Any, Any]]:
        """compose_vae.loss_and_grads under jax.jit, once per model (beta aside) and shapes."""
        key = dataclasses.replace(model, beta=0.0)
        fn = COMPILED.get((id(self), "vae_loss_and_grads", key),
                          lambda: partial(compose_vae.loss_and_grads, self, key))
        beta = self.asarray(np.array(model.beta), self.dtype_of(params[0]))
        value, grads, aux = fn(list(params), x, eps, beta)
        return value, list(grads), tuple(aux)


class JaxDenoiser(compose_denoiser.DenoiserBackend):
    """Mixin for JaxBackend: the denoiser's loss and gradients jitted."""

    def denoiser_loss_and_grads(self, model: Denoiser, params: Sequence[Any], x0: Any,
                                noise: Any, t: Any, alphas_cumprod: Any) -> tuple[Any, list[Any]]:
        """compose_denoiser.loss_and_grads under jax.jit, once per model and shapes."""
        fn = COMPILED.get((id(self), "denoiser_loss_and_grads", model),
                          lambda: partial(compose_denoiser.loss_and_grads, self, model))
        value, grads = fn(list(params), x0, noise, t, alphas_cumprod)
        return value, list(grads)
