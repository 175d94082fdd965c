"""Activations: each forward ``f(x, ...)`` beside its VJP ``f_vjp(x, g, ...) -> (dx,)``.

Elementwise unless an ``axis`` is taken; any shape. Derivatives at kinks follow PyTorch:
relu'(0) = 0, leaky_relu'(0) = negative_slope, elu'(0) = alpha (the x <= 0 branch); JAX's
leaky_relu takes slope 1 at 0. The properties keep inputs away from kinks.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from reference._validate import as_float, positive, same_shape

GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_GELU_CUBIC = 0.044715


def _pair(x, g):
    x = as_float("x", x)
    g = as_float("g", g)
    same_shape("g", g, "x", x)
    return x, g


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow."""
    return special.expit(as_float("x", x))


def sigmoid_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    x, g = _pair(x, g)
    s = special.expit(x)
    return (g * s * (1.0 - s),)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(as_float("x", x))


def tanh_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    x, g = _pair(x, g)
    t = np.tanh(x)
    return (g * (1.0 - t * t),)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(as_float("x", x), 0.0)


def relu_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    x, g = _pair(x, g)
    return (np.where(x > 0, g, 0.0),)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x for x > 0, negative_slope * x otherwise."""
    x = as_float("x", x)
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_vjp(x: np.ndarray, g: np.ndarray, negative_slope: float = 0.01):
    x, g = _pair(x, g)
    return (np.where(x > 0, g, negative_slope * g),)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    x = as_float("x", x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_vjp(x: np.ndarray, g: np.ndarray, alpha: float = 1.0):
    x, g = _pair(x, g)
    return (np.where(x > 0, g, g * alpha * np.exp(np.minimum(x, 0.0))),)


def _gelu_check(approximate: str) -> None:
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate: expected one of {GELU_APPROXIMATIONS}, got {approximate!r}")


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU. 'none': x Phi(x) = 0.5 x erfc(-x / sqrt 2) (accurate in the negative tail);
    'tanh': 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    _gelu_check(approximate)
    x = as_float("x", x)
    if approximate == "none":
        return 0.5 * x * special.erfc(-x / np.sqrt(2.0))
    u = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)
    return x * special.expit(2.0 * u)


def gelu_vjp(x: np.ndarray, g: np.ndarray, approximate: str = "none"):
    """'none': Phi(x) + x phi(x); 'tanh': s + 2 x s (1 - s) u', s = sigmoid(2u)."""
    _gelu_check(approximate)
    x, g = _pair(x, g)
    if approximate == "none":
        d = 0.5 * special.erfc(-x / np.sqrt(2.0)) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    else:
        u = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x * x)
        s = special.expit(2.0 * u)
        d = s + 2.0 * x * s * (1.0 - s) * du
    return (g * d,)


def silu(x: np.ndarray) -> np.ndarray:
    """x sigmoid(x)."""
    x = as_float("x", x)
    return x * special.expit(x)


def silu_vjp(x: np.ndarray, g: np.ndarray):
    x, g = _pair(x, g)
    s = special.expit(x)
    return (g * (s + x * s * (1.0 - s)),)


def softplus(x: np.ndarray, beta: float = 1.0, threshold: float | None = None) -> np.ndarray:
    """log(1 + exp(beta x)) / beta. Convention ``threshold``: PyTorch returns x itself where
    beta x > threshold (20 by default); None is the exact function (JAX)."""
    x = as_float("x", x)
    beta = positive("beta", beta)
    y = np.logaddexp(0.0, beta * x) / beta
    return y if threshold is None else np.where(beta * x > threshold, x, y)


def softplus_vjp(x: np.ndarray, g: np.ndarray, beta: float = 1.0, threshold: float | None = None):
    x, g = _pair(x, g)
    d = special.expit(beta * x)
    if threshold is not None:
        d = np.where(beta * x > threshold, 1.0, d)
    return (g * d,)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum exp(x - max) along ``axis``; a row of all -inf gives NaN."""
    x = as_float("x", x)
    _check_axis(x, axis)
    with np.errstate(invalid="ignore"):
        z = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=axis, keepdims=True)


def softmax_vjp(x: np.ndarray, g: np.ndarray, axis: int = -1):
    """s * (g - sum(g s))."""
    x, g = _pair(x, g)
    s = softmax(x, axis)
    return (s * (g - np.sum(g * s, axis=axis, keepdims=True)),)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along ``axis``."""
    x = as_float("x", x)
    _check_axis(x, axis)
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def log_softmax_vjp(x: np.ndarray, g: np.ndarray, axis: int = -1):
    """g - softmax(x) sum(g)."""
    x, g = _pair(x, g)
    return (g - softmax(x, axis) * np.sum(g, axis=axis, keepdims=True),)


def _check_axis(x: np.ndarray, axis: int) -> None:
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"axis: expected an axis of x with shape {x.shape}, got {axis}")


ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_vjp),
    "tanh": (tanh, tanh_vjp),
    "relu": (relu, relu_vjp),
    "leaky_relu": (leaky_relu, leaky_relu_vjp),
    "elu": (elu, elu_vjp),
    "gelu": (gelu, gelu_vjp),
    "silu": (silu, silu_vjp),
    "softplus": (softplus, softplus_vjp),
}
"""Elementwise activations by name: (forward, vjp)."""
