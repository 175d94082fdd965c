"""Magnitude of the terms each oracle formula combines, for the tolerance policy.

A backend is held to the accuracy the oracle's own formula reaches in the backend's dtype.
Where that formula adds or subtracts terms larger than its result (tanh' = 1 - t^2 near
|t| = 1, softmax' = s (g - <g, s>) near s = 1, log_softmax = x - max - log(sum exp(.))), the
rounding error of any implementation of it is eps times those terms, not eps times the
result: ``forward_terms`` and ``vjp_terms`` return that magnitude M, which the tolerance adds
to the condition term. Formulas that avoid cancellation (the oracle's erfc GELU and softplus
BCE) have no entry, so a backend that cancels there is held to relative accuracy.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from reference import registry
from reference.activations import softmax


def _class_weights(kwargs, n, k):
    w = kwargs.get("weight")
    w = np.ones(k) if w is None else np.asarray(w)
    labels = np.asarray(kwargs["labels"])
    e = kwargs.get("label_smoothing", 0.0)
    if kwargs.get("class_weighting", "per_class") == "per_example":  # Keras: w[y_i] loss_i / N
        q = np.full((n, k), e / k)
        q[np.arange(n), labels] += 1 - e
        return q * w[labels][:, None], float(n)
    q = np.tile((e / k) * w, (n, 1))
    q[np.arange(n), labels] += (1 - e) * w[labels]
    return q, w[labels].sum()


def _abs(cot) -> np.ndarray:
    return np.abs(np.asarray(cot, dtype=np.float64))


def _per_example(v: np.ndarray, reduction: str, denom: float) -> np.ndarray:
    if reduction == "none":
        return v
    return np.asarray(v.sum() if reduction == "sum" else v.sum() / denom)


def dense_forward(primals, kwargs):
    x, w, b = primals
    return np.abs(x) @ np.abs(w) + np.abs(b)


def abs_forward(name: str):
    """Bilinear y = f(x, w) + b and sums of one sign: the terms summed are those of f(|x|, ...)."""
    def terms(primals, kwargs):
        return registry.forward(name, tuple(np.abs(p) for p in primals), **kwargs)
    return terms


def log_softmax_forward(primals, kwargs):
    (x,) = primals
    axis = kwargs.get("axis", -1)
    z = x - x.max(axis=axis, keepdims=True)
    # log of a sum >= 1 that is rounded relative to itself: an absolute error of eps
    return np.abs(z) + np.log(np.exp(z).sum(axis=axis, keepdims=True)) + 1.0


def cross_entropy_forward(primals, kwargs):
    (x,) = primals
    n, k = x.shape
    z = x - x.max(axis=1, keepdims=True)
    terms = np.abs(z) + np.log(np.exp(z).sum(axis=1, keepdims=True)) + 1.0
    q, denom = _class_weights(kwargs, n, k)
    return _per_example((np.abs(q) * terms).sum(axis=1), kwargs.get("reduction", "mean"), denom)


def dense_vjp(primals, kwargs, cot):
    g = _abs(cot)
    x, w, _ = primals
    return [g @ np.abs(w).T, np.abs(x).T @ g, g.sum(axis=0)]


def bilinear_vjp(name: str):
    """dx is linear in (w, g) and dw in (x, g): each is the VJP with absolute values."""
    def terms(primals, kwargs, cot):
        return list(registry.vjp(name, tuple(np.abs(p) for p in primals), _abs(cot), **kwargs))
    return terms


def summing_vjp(name: str):
    """Pooling: the VJP adds the cotangents of every window an input belongs to."""
    def terms(primals, kwargs, cot):
        return list(registry.vjp(name, primals, _abs(cot), **kwargs))
    return terms


def tanh_vjp(primals, kwargs, cot):
    g = _abs(cot)
    return [g * (1 + np.tanh(primals[0]) ** 2)]


def sigmoid_vjp(primals, kwargs, cot):
    g = _abs(cot)
    return [g * special.expit(primals[0])]


def silu_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    s = special.expit(x)
    return [g * (s + np.abs(x) * s * (1 - s))]


def gelu_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    if kwargs.get("approximate", "none") == "none":
        return [g * (special.ndtr(x) + np.abs(x) * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))]
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    su = special.expit(2 * u)
    du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
    return [g * (su + np.abs(2 * x * su * (1 - su) * du))]


def softmax_vjp(primals, kwargs, cot):
    (x,) = primals
    axis = kwargs.get("axis", -1)
    s = softmax(x, axis)
    return [s * (_abs(cot) + np.abs((np.asarray(cot) * s).sum(axis=axis, keepdims=True)))]


def log_softmax_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    axis = kwargs.get("axis", -1)
    return [g + softmax(x, axis) * g.sum(axis=axis, keepdims=True)]


def cross_entropy_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    n, k = x.shape
    q, denom = _class_weights(kwargs, n, k)
    red = kwargs.get("reduction", "mean")
    gi = g if red == "none" else np.full(n, g / denom if red == "mean" else g)
    return [(q.sum(axis=1, keepdims=True) * softmax(x, 1) + q) * gi[:, None]]


def bce_with_logits_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    y = np.abs(kwargs["target"])
    red = kwargs.get("reduction", "mean")
    gi = g if red == "none" else np.broadcast_to(g / (x.size if red == "mean" else 1), x.shape)
    return [gi * (special.expit(x) + y)]


def _bn_channels(x: np.ndarray):
    """(axes over which a channel's statistics run, the shape of a per-channel array in x)."""
    return (0, *range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)


def _fast_variance(x: np.ndarray, kwargs) -> np.ndarray | None:
    """E[x^2] per channel where the batch variance is E[x^2] - E[x]^2 (variance="fast",
    training): both terms are about E[x^2] and each is rounded relative to it, so the
    variance carries eps 2 E[x^2] where the two-pass variance carries eps var. None: no such
    terms (two-pass, or eval mode, which computes no statistic)."""
    if kwargs.get("variance", "two_pass") != "fast" or not kwargs.get("training", True):
        return None
    return (x * x).mean(axis=_bn_channels(x)[0], keepdims=True)


def _bn_centred(x: np.ndarray, kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(x - mu, r = 1 / sqrt(var + eps)) with the training batch's statistics, per channel."""
    axes, _ = _bn_channels(x)
    xc = x - x.mean(axis=axes, keepdims=True)
    return xc, 1.0 / np.sqrt((xc**2).mean(axis=axes, keepdims=True) + kwargs.get("eps", 1e-5))


def batch_norm_forward(primals, kwargs):
    """[M of y, of the running mean, of the running variance] for the fast variance: its
    error d var = eps 2 E[x^2] reaches the running variance times the weight of the new
    statistic (and n / (n - 1) when unbiased), and y = (x - mu) r w + b through
    r = (var + eps)^(-1/2): |x - mu| |w| r^3 d var / 2. None for the two-pass variance."""
    x = primals[0]
    weight = primals[1] if len(primals) > 1 else kwargs.get("weight")
    ms = _fast_variance(x, kwargs)
    if ms is None:
        return None
    _, shape = _bn_channels(x)
    xc, r = _bn_centred(x, kwargs)
    w = 1.0 if weight is None else np.abs(weight).reshape(shape)
    n = x.size // x.shape[1]
    m = kwargs.get("momentum", 0.1)
    take = m if kwargs.get("momentum_convention", "torch") == "torch" else 1.0 - m
    unbiased = n / (n - 1) if kwargs.get("unbiased_running_var", True) else 1.0
    return [np.abs(xc) * w * r**3 * ms, np.zeros(x.shape[1]),
            (take * unbiased * 2 * ms).reshape(-1)]


def batch_norm_vjp(primals, kwargs, cot):
    """Training: dx = r w (g - mean(g) - xhat mean(g xhat)) with r = 1 / sqrt(var + eps) sums
    terms of size r |w| (|g| + mean|g| + |xhat| mean|g xhat|), far above dx when g is nearly
    affine in xhat; dw = sum g xhat and db = sum g sum |g xhat| and |g|. Eval mode multiplies
    only: no terms beyond the result. The fast variance's error eps 2 E[x^2] moves r by the
    relative k = r^2 E[x^2] eps: dx (r, and r^3 in xhat mean(g xhat)) by 3 k, dw by k."""
    g = _abs(cot)
    x, weight, _ = primals
    axes, shape = _bn_channels(x)
    if kwargs.get("training", True):
        xc, r = _bn_centred(x, kwargs)
        xhat = np.abs(xc * r)
    else:
        r = 1.0 / np.sqrt(np.asarray(kwargs["running_var"]).reshape(shape) + kwargs.get("eps", 1e-5))
        xhat = np.abs((x - np.asarray(kwargs["running_mean"]).reshape(shape)) * r)
    w = np.ones_like(r) if weight is None else np.abs(weight).reshape(shape)
    gx = g * xhat
    dx = r * w * (g + g.mean(axis=axes, keepdims=True) + xhat * gx.mean(axis=axes, keepdims=True)) \
        if kwargs.get("training", True) else g * r * w
    dw = gx.sum(axis=axes)
    ms = _fast_variance(x, kwargs)
    if ms is not None:
        k = r * r * ms
        dx, dw = dx * (1 + 3 * k), dw * (1 + k.reshape(-1))
    return [dx, dw, g.sum(axis=axes)]
