"""Every oracle component by name, and one way to call any of their VJPs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reference import activations as A
from reference import dense as D
from reference import losses as L

COMPONENTS: dict[str, tuple[Callable, Callable]] = {
    "dense": (D.dense, D.dense_vjp),
    **{n: (getattr(A, n), getattr(A, n + "_vjp"))
       for n in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus",
                 "softmax", "log_softmax")},
    **{n: (getattr(L, n), getattr(L, n + "_vjp"))
       for n in ("mse_loss", "l1_loss", "huber_loss", "bce_with_logits", "cross_entropy",
                 "nll_loss")},
}
"""Component name -> (forward, vjp)."""

#: keyword inputs that a VJP takes positionally between the primals and the cotangent.
_NON_DIFFERENTIABLE = {"mse_loss": "target", "l1_loss": "target", "huber_loss": "target",
                       "bce_with_logits": "target", "cross_entropy": "labels",
                       "nll_loss": "labels"}


def call_vjp(vjp: Callable, name: str, primals: Sequence[np.ndarray], cotangent: np.ndarray,
             **kwargs: Any) -> tuple:
    """Gradients of ``primals`` from an oracle-style VJP, with the forward's keyword inputs
    (target, labels, conventions) given as keywords."""
    kwargs = dict(kwargs)
    if name in _NON_DIFFERENTIABLE:
        extra = kwargs.pop(_NON_DIFFERENTIABLE[name])
        return tuple(vjp(*primals, extra, cotangent, **kwargs))
    if name == "dense":
        x, w, *b = primals
        return tuple(vjp(x, w, b[0] if b else kwargs.pop("b", None), cotangent))[: len(primals)]
    return tuple(vjp(*primals, cotangent, **kwargs))


def forward(name: str, primals: Sequence[np.ndarray], **kwargs: Any) -> np.ndarray:
    """The oracle's output of component ``name``."""
    return COMPONENTS[name][0](*primals, **kwargs)


def vjp(name: str, primals: Sequence[np.ndarray], cotangent: np.ndarray, **kwargs: Any) -> tuple:
    """The oracle's gradients of component ``name`` with respect to ``primals``."""
    return call_vjp(COMPONENTS[name][1], name, primals, cotangent, **kwargs)
