"""The DCGAN on JAX: backends/compose_gan.py's discriminator and generator steps (the
adapter's jitted components, optax's sigmoid_binary_cross_entropy, jax.value_and_grad
through all of it) compiled as one jax.jit per model, batch-norm conventions, generator loss
and shapes, as a flax training step runs. The generator's forward for the fake and the
optimizer steps (the adapter's optax optimizers) run between the compiled steps, as a
training loop does."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from backends import compose_gan
from backends.jax_compiled import COMPILED
from reference.gan import DCGAN


def _frozen(bn: dict[str, Any] | None) -> tuple:
    return tuple(sorted((bn or {}).items()))


class JaxCompiledGAN(compose_gan.GANBackend):
    """Mixin for JaxBackend: the composition's losses and gradients jitted."""

    def gan_discriminator_loss_and_grads(self, model: DCGAN, dparams: Sequence[Any],
                                         dstate: Sequence[Any], real: Any, fake: Any,
                                         bn: dict[str, Any] | None = None
                                         ) -> tuple[Any, list[Any], list[Any]]:
        """compose_gan.discriminator_loss_and_grads under jax.jit."""
        fn = COMPILED.get((id(self), "gan_discriminator_loss_and_grads", model, _frozen(bn)),
                          lambda: partial(compose_gan.discriminator_loss_and_grads, self, model,
                                          bn=bn))
        value, grads, state = fn(list(dparams), list(dstate), real, fake)
        return value, list(grads), list(state)

    def gan_generator_loss_and_grads(self, model: DCGAN, gparams: Sequence[Any],
                                     gstate: Sequence[Any], dparams: Sequence[Any],
                                     dstate: Sequence[Any], z: Any,
                                     bn: dict[str, Any] | None = None,
                                     loss: str = "non_saturating"
                                     ) -> tuple[Any, list[Any], list[Any], list[Any]]:
        """compose_gan.generator_loss_and_grads under jax.jit."""
        fn = COMPILED.get((id(self), "gan_generator_loss_and_grads", model, _frozen(bn), loss),
                          lambda: partial(compose_gan.generator_loss_and_grads, self, model,
                                          bn=bn, loss=loss))
        value, grads, gs, ds = fn(list(gparams), list(gstate), list(dparams), list(dstate), z)
        return value, list(grads), list(gs), list(ds)
