"""The language model on JAX: backends/compose_lm.py's composition (flax.linen.Embed, the
flax nn.RNN layers of backends/jax_recurrent.py, the adapter's Dense and optax
cross-entropy, jax.value_and_grad through all of it) compiled as one jax.jit per model
configuration and shapes, as a flax training step runs. Clipping (optax, jitted by the
recurrent mixin) and the optimizer step (the adapter's optax optimizers) are the backend's
own, called between the compiled steps as a training loop does."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from backends import compose_lm
from backends.jax_compiled import COMPILED
from reference.language_model import CharLM


class JaxLanguageModel(compose_lm.LanguageModelBackend):
    """Mixin for JaxBackend with JaxRecurrent: the composition's loss and gradients jitted."""

    def lm_loss_and_grads(self, model: CharLM, params: Sequence[Any], inputs: Any,
                          targets: Any, state: compose_lm.State | None = None
                          ) -> tuple[Any, list[Any], compose_lm.State]:
        """compose_lm.loss_and_grads under jax.jit, compiled once per model and shapes (an
        initial state of None is zeros, as flax's initialize_carry, so it shares them)."""
        if state is None:  # zeros placed on the device, as every other argument is
            zeros = np.zeros(model.state_shape(inputs.shape[1]))
            state = tuple(self.asarray(zeros, self.dtype_of(params[0]))
                          for _ in range(2 if model.cell == "lstm" else 1))
        fn = COMPILED.get((id(self), "lm_loss_and_grads", model),
                           lambda: partial(compose_lm.loss_and_grads, self, model))
        value, grads, new_state = fn(list(params), inputs, targets, tuple(state))
        return value, list(grads), tuple(new_state)
