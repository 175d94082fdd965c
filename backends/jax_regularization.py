"""flax's Dropout and optax's losses as weight penalties, behind backends/regularization.py's
interface.

Dropout is ``flax.linen.Dropout(rate=p, deterministic=not training)`` (flax/linen/
stochastic.py ``Dropout.__call__``: x when deterministic or rate 0, zeros at rate 1, else
``lax.select(bernoulli(key, 1 - p, shape), x / (1 - p), 0)``), applied with
``rngs={"dropout": jax.random.key(seed)}``; channel dropout is the same layer with
``broadcast_dims=(2, 3)`` on NCHW (the mask drawn of shape (N, C, 1, 1)). Both run eagerly,
as a model's apply outside jit (the primal of jax.vjp is then the correctly rounded division,
within 2 eps of x * fl(1 / (1 - p)): reference/regularization.py). The penalties are
``lam * jnp.abs(w).sum()`` (jax's abs derivative at 0 is 1, not torch's 0: the properties
keep w away from 0), and for L2 optax's losses (optax/losses/_regression.py):
``lam * optax.l2_loss(w).sum()`` ('half', 0.5 w^2 per element, Bishop's convention) and
``lam * optax.squared_error(w).sum()`` ('full').
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from backends.regularization import RegularizationBackend
from reference.regularization import L2_CONVENTIONS


def _dropout(x: jax.Array, p: float, training: bool, seed: int,
             broadcast_dims: tuple[int, ...] = ()) -> jax.Array:
    layer = nn.Dropout(rate=p, broadcast_dims=broadcast_dims, deterministic=not training)
    return layer.apply({}, x, rngs={"dropout": jax.random.key(int(seed))})


class JaxRegularization(RegularizationBackend):
    """Mixin for JaxBackend (backends/regularization.py has the interface)."""

    regularization_conventions: dict[str, dict[str, Any]] = {
        # optax.l2_loss is the 'half' form, optax.squared_error the 'full'
        "l2_penalty": {"convention": L2_CONVENTIONS},
    }

    def dropout(self, x, p, training, seed):
        """flax.linen.Dropout(p, deterministic=not training) with key(seed)."""
        return _dropout(x, p, training, seed)

    def dropout2d(self, x, p, training, seed):
        """flax.linen.Dropout(p, broadcast_dims=(2, 3)) on x (N, C, H, W), key(seed)."""
        if x.ndim != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
        return _dropout(x, p, training, seed, (2, 3))

    def l1_penalty(self, w, lam):
        """lam * jnp.abs(w).sum()."""
        return lam * jnp.abs(w).sum()

    def l2_penalty(self, w, lam, convention="half"):
        """lam * optax.l2_loss(w).sum() ('half') or lam * optax.squared_error(w).sum()
        ('full')."""
        if convention not in L2_CONVENTIONS:
            raise ValueError(f"convention: expected one of {L2_CONVENTIONS}, got {convention!r}")
        loss = optax.l2_loss if convention == "half" else optax.squared_error
        return lam * loss(w).sum()
