"""Gradient clipping over a list of gradient arrays (functions of the gradients: no VJP).

Clipping by global norm, with n = sqrt(sum_i sum |g_i|^2) over every array (the L2 norm of
all of them flattened together) and max_norm >= 0:

- ``eps='torch'`` (torch.nn.utils.clip_grad_norm_): s = max_norm / (n + 1e-6), and every g_i
  is multiplied by min(s, 1). A gradient whose norm equals max_norm still shrinks, by
  max_norm / (max_norm + 1e-6); the clipped norm is n s < max_norm.
- ``eps='optax'`` (optax.clip_by_global_norm): g_i is kept when n < max_norm, else replaced by
  (g_i / n) max_norm, so the clipped norm is exactly max_norm up to rounding.

Edge cases, defined by the oracle: a zero gradient (n = 0) is returned unchanged (zeros) in
both conventions; max_norm = 0 returns zeros. torch agrees (its scale is 0 / (n + 1e-6) = 0);
optax returns NaN for n = 0 and max_norm = 0 (0 / 0), which the oracle does not follow.
Directions are kept: each clipped array is a non-negative multiple of the gradient.

Clipping by value (torch.nn.utils.clip_grad_value_, optax.clip): each element clipped to
[-clip_value, clip_value], clip_value >= 0 (an infinite gradient element becomes
+-clip_value; clipping by norm rejects one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from reference._validate import as_float, positive

#: clip_by_global_norm's conventions (the module doc); the first is the default.
CLIP_EPS = ("torch", "optax")
TORCH_EPS = 1e-6


def _arrays(grads, finite: bool = True) -> list[np.ndarray]:
    if isinstance(grads, np.ndarray) or not isinstance(grads, Sequence):
        raise ValueError(f"grads: expected a list of arrays, got {type(grads).__name__}")
    out = [as_float(f"grads[{i}]", g) for i, g in enumerate(grads)]
    for i, g in enumerate(out):
        if finite and not np.all(np.isfinite(g)):
            raise ValueError(f"grads[{i}]: contains inf (shape {g.shape}); the norm is undefined")
    return out


def global_norm(grads: Sequence[np.ndarray]) -> float:
    """sqrt(sum_i sum g_i^2): the L2 norm of every array flattened together (0 for no arrays)."""
    gs = _arrays(grads)
    return math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in gs))


def clip_by_global_norm(grads: Sequence[np.ndarray], max_norm: float,
                        eps: str = "torch") -> list[np.ndarray]:
    """The gradients scaled so their global norm is at most max_norm (see the module doc for the
    'torch' and 'optax' conventions and the zero cases); new arrays, inputs untouched."""
    gs = _arrays(grads)
    max_norm = positive("max_norm", max_norm, allow_zero=True)
    if eps not in CLIP_EPS:
        raise ValueError(f"eps: expected one of {CLIP_EPS}, got {eps!r}")
    n = global_norm(gs)
    if n == 0.0:
        return [g.copy() for g in gs]
    if eps == "torch":
        scale = min(max_norm / (n + TORCH_EPS), 1.0)
        return [g * scale for g in gs]
    if n < max_norm:
        return [g.copy() for g in gs]
    return [(g / n) * max_norm for g in gs]


def clip_by_value(grads: Sequence[np.ndarray], clip_value: float) -> list[np.ndarray]:
    """Each element clipped to [-clip_value, clip_value]; new arrays."""
    gs = _arrays(grads, finite=False)
    v = positive("clip_value", clip_value, allow_zero=True)
    return [np.clip(g, -v, v) for g in gs]
