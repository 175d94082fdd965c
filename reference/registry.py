"""Every oracle component by name, and one way to call any of their VJPs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reference import activations as A
from reference import batchnorm as B
from reference import conv as C
from reference import dense as D
from reference import losses as L
from reference import pooling as P

COMPONENTS: dict[str, tuple[Callable, Callable]] = {
    "dense": (D.dense, D.dense_vjp),
    **{n: (getattr(A, n), getattr(A, n + "_vjp"))
       for n in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus",
                 "softmax", "log_softmax")},
    **{n: (getattr(L, n), getattr(L, n + "_vjp"))
       for n in ("mse_loss", "l1_loss", "huber_loss", "bce_with_logits", "cross_entropy",
                 "nll_loss")},
    **{n: (getattr(C, n), getattr(C, n + "_vjp")) for n in ("conv2d", "conv1d", "conv_transpose2d")},
    **{n: (getattr(P, n), getattr(P, n + "_vjp"))
       for n in ("max_pool2d", "avg_pool2d", "global_avg_pool2d", "flatten")},
    "batch_norm": (B.batch_norm, B.batch_norm_vjp),
}
"""Component name -> (forward, vjp)."""

OUTPUTS: dict[str, tuple[str, ...]] = {"batch_norm": ("y", "running_mean", "running_var")}
"""Components with several outputs, by output name; their VJP is of the first output only."""

#: components whose bias ``b`` (last primal) may be left out of the primals or passed as None.
_WITH_BIAS = ("dense", "conv2d", "conv1d", "conv_transpose2d")

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
    if name in _WITH_BIAS:
        x, w, *b = primals
        return tuple(vjp(x, w, b[0] if b else kwargs.pop("b", None), cotangent,
                         **kwargs))[: len(primals)]
    return tuple(vjp(*primals, cotangent, **kwargs))


def forward(name: str, primals: Sequence[np.ndarray], **kwargs: Any) -> np.ndarray:
    """The oracle's output of component ``name``."""
    return COMPONENTS[name][0](*primals, **kwargs)


def vjp(name: str, primals: Sequence[np.ndarray], cotangent: np.ndarray, **kwargs: Any) -> tuple:
    """The oracle's gradients of component ``name`` with respect to ``primals``."""
    return call_vjp(COMPONENTS[name][1], name, primals, cotangent, **kwargs)
