"""Batch normalisation over x (N, C) or (N, C, H, W), per channel c, as F.batch_norm.

Training: mu, var = mean and biased variance of x over (N, H, W), n = N H W values (n >= 2).
variance="two_pass" (PyTorch): var = mean((x - mu)^2). variance="fast" (flax's default
use_fast_variance=True): var = max(0, E[x^2] - E[x]^2), which cancels when mu^2 >> var; the
same value in exact arithmetic, given so a backend is held to the rounding of the algorithm
it declares. Eval: mu, var = running statistics.

    y = (x - mu) / sqrt(var + eps) * weight + bias     (weight, bias (C,) or None: 1 and 0)

Training also returns updated running statistics r for each stat (mu, and var * n / (n - 1)
with unbiased_running_var=True as PyTorch, var itself with False as Flax):

    "torch": r <- (1 - momentum) r + momentum stat      "flax": r <- momentum r + (1 - momentum) stat

The VJP is of y only; running statistics are not differentiated (as in every framework).
"""

from __future__ import annotations

import numpy as np

from reference._validate import as_float, in_unit_interval, positive, same_shape

MOMENTUM_CONVENTIONS = ("torch", "flax")
VARIANCES = ("two_pass", "fast")


def _vector(name: str, v, c: int) -> np.ndarray:
    v = as_float(name, v, 1)
    if v.shape != (c,):
        raise ValueError(f"{name}: expected shape ({c},) to match the channels of x, got {v.shape}")
    return v


def _inputs(x, weight, bias, running_mean, running_var, training, momentum, eps, momentum_convention,
            variance):
    x = as_float("x", x, (2, 4))
    c = x.shape[1]
    weight = None if weight is None else _vector("weight", weight, c)
    bias = None if bias is None else _vector("bias", bias, c)
    running_mean = _vector("running_mean", running_mean, c)
    running_var = _vector("running_var", running_var, c)
    if np.any(running_var < 0):
        raise ValueError(f"running_var: expected values >= 0, got minimum {running_var.min()!r}")
    in_unit_interval("momentum", momentum, closed_right=True)
    positive("eps", eps)
    if momentum_convention not in MOMENTUM_CONVENTIONS:
        raise ValueError(f"momentum_convention: expected one of {MOMENTUM_CONVENTIONS}, "
                         f"got {momentum_convention!r}")
    if variance not in VARIANCES:
        raise ValueError(f"variance: expected one of {VARIANCES}, got {variance!r}")
    n = x.size // c if c else 0
    if training and n < 2:
        raise ValueError(f"x: expected more than 1 value per channel when training, got shape {x.shape}")
    return x, weight, bias, running_mean, running_var, n


def _ncs(a: np.ndarray) -> np.ndarray:
    """(N, C[, H, W]) -> (N, C, H W)."""
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:])))


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over (N, H, W) of a * b, per channel."""
    return np.einsum("ncs,ncs->c", _ncs(a), _ncs(b))


def _channel_sum(a: np.ndarray) -> np.ndarray:
    a = _ncs(a)
    return (a @ np.ones(a.shape[2])).sum(axis=0)  # a matrix-vector product: the fastest sum here


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _centred(x: np.ndarray, n: int, variance: str):
    """(mu, x - mu, biased var), var two-pass or fast (see the module docstring)."""
    mu = _channel_sum(x) / n
    xc = x - _per_channel(mu, x)
    if variance == "fast":
        return mu, xc, np.maximum(0.0, _channel_dot(x, x) / n - mu * mu)
    return mu, xc, _channel_dot(xc, xc) / n


def batch_norm(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
               running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
               momentum: float = 0.1, eps: float = 1e-5, momentum_convention: str = "torch",
               unbiased_running_var: bool = True, variance: str = "two_pass"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, new running_mean, new running_var); eval returns copies of the running statistics."""
    x, weight, bias, rm, rv, n = _inputs(x, weight, bias, running_mean, running_var, training,
                                         momentum, eps, momentum_convention, variance)
    if training:
        mu, xc, var = _centred(x, n, variance)
        stat_var = var * (n / (n - 1)) if unbiased_running_var else var
        # each weight written as given: 1 - (1 - m) would lose a small m
        keep, take = (1.0 - momentum, momentum) if momentum_convention == "torch" else \
            (momentum, 1.0 - momentum)
        new_rm = keep * rm + take * mu
        new_rv = keep * rv + take * stat_var
    else:
        var, xc = rv, x - _per_channel(rm, x)
        new_rm, new_rv = rm.copy(), rv.copy()
    scale = 1.0 / np.sqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    y = np.multiply(xc, _per_channel(scale, x), out=xc)  # xc is a fresh array: reuse it
    if bias is not None:
        y += _per_channel(bias, x)
    return y, new_rm, new_rv


def batch_norm_vjp(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, g: np.ndarray,
                   running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
                   momentum: float = 0.1, eps: float = 1e-5, momentum_convention: str = "torch",
                   unbiased_running_var: bool = True, variance: str = "two_pass"):
    """(dx, dweight, dbias) of y; dweight / dbias None when weight / bias is None.

    Training, per channel (means over N, H, W; xhat = (x - mu) / sqrt(var + eps)):
        dx = weight / sqrt(var + eps) * (g - mean(g) - xhat mean(g xhat))
    Eval: dx = g weight / sqrt(running_var + eps). Both: dweight = sum g xhat, dbias = sum g.
    """
    x, weight, bias, rm, rv, n = _inputs(x, weight, bias, running_mean, running_var, training,
                                         momentum, eps, momentum_convention, variance)
    g = as_float("g", g)
    same_shape("g", g, "x", x)
    if training:
        _, xc, var = _centred(x, n, variance)
    else:
        var, xc = rv, x - _per_channel(rm, x)
    inv = 1.0 / np.sqrt(var + eps)
    sum_g = _channel_sum(g)
    sum_gxc = _channel_dot(g, xc)
    scale = inv if weight is None else inv * weight
    if training:
        # (g - mean(g) - xhat mean(g xhat)) scale with xhat = xc inv, built in xc (a fresh array)
        dx = np.multiply(xc, _per_channel(-inv * inv * sum_gxc / n, x), out=xc)
        dx += g
        dx -= _per_channel(sum_g / n, x)
        dx *= _per_channel(scale, x)
    else:
        dx = g * _per_channel(scale, x)
    dweight = None if weight is None else sum_gxc * inv
    dbias = None if bias is None else sum_g
    return dx, dweight, dbias
