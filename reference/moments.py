"""Mean and variance along one axis, as torch.var_mean: two outputs, both differentiable.

    mean = sum(x) / n          var = sum((x - mean)^2) / (n - correction)

over the n elements of ``axis``; the reduced axis is dropped. correction is the framework
convention: 1 (Bessel's, torch.var_mean's default) or 0 (jnp.var's ddof=0, keras.ops.moments).

VJP with cotangents (gv, gm) of (var, mean):

    dx = gm / n + gv * 2 (x - mean) / (n - correction)
"""

from __future__ import annotations

import numpy as np

from reference._validate import as_float

CORRECTIONS = (0, 1)


def _check(x, axis: int, correction: int) -> tuple[np.ndarray, int, int]:
    x = as_float("x", x)
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: expected an axis of x with shape {x.shape}, got {axis}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction: expected one of {CORRECTIONS}, got {correction!r}")
    n = x.shape[axis]
    if n <= correction:
        raise ValueError(f"axis {axis}: {n} elements leave no degree of freedom for "
                         f"correction {correction}")
    return x, n, axis % x.ndim


def var_mean(x: np.ndarray, axis: int = -1, correction: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(var, mean) of x along ``axis`` (dropped); two-pass variance."""
    x, n, axis = _check(x, axis, correction)
    mean = x.mean(axis=axis, keepdims=True)
    var = ((x - mean) ** 2).sum(axis=axis) / (n - correction)
    return var, mean.squeeze(axis)


def var_mean_vjp(x: np.ndarray, gv: np.ndarray, gm: np.ndarray, axis: int = -1,
                 correction: int = 1) -> tuple[np.ndarray]:
    """(dx,) from the cotangents of var and mean (both of x's shape without ``axis``)."""
    x, n, axis = _check(x, axis, correction)
    mean = x.mean(axis=axis, keepdims=True)
    gv = np.expand_dims(np.asarray(gv, dtype=np.float64), axis)
    gm = np.expand_dims(np.asarray(gm, dtype=np.float64), axis)
    return (np.broadcast_to(gm / n, x.shape) + gv * 2.0 * (x - mean) / (n - correction),)
