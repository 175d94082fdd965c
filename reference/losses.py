"""Losses: forward ``loss(pred, target, reduction=...)`` beside ``loss_vjp(..., g) -> (dpred,)``.

Reductions: 'mean' (over every element, or the class-weighted mean for cross-entropy and NLL,
as PyTorch divides by sum_i w[y_i]), 'sum', 'none' (per element, or per example for the
class losses). ``g`` has the shape of the reduced loss.

cross_entropy ``class_weighting`` (where frameworks differ): 'per_class' (PyTorch) weights each
class inside the label-smoothed sum and 'mean' divides by sum_i w[y_i]; 'per_example' (Keras
``class_weight``, turned into the sample weight w[y_i]) multiplies example i's whole smoothed
loss by w[y_i] and 'mean' divides by N (Keras' default reduction, 'sum_over_batch_size').
"""

from __future__ import annotations

import numpy as np
from scipy import special

from reference._validate import (
    as_float,
    as_labels,
    in_unit_interval,
    positive,
    reduction,
    same_shape,
)
from reference.activations import log_softmax, softmax


def _reduce(v: np.ndarray, red: str) -> np.ndarray:
    red = reduction(red)
    if red == "none":
        return v
    return np.asarray(v.sum() if red == "sum" else v.mean())


def _unreduce(g, shape: tuple[int, ...], red: str) -> np.ndarray:
    """Cotangent of the per-element loss, given the cotangent ``g`` of the reduced loss."""
    red = reduction(red)
    g = as_float("g", g)
    if red == "none":
        if g.shape != shape:
            raise ValueError(f"g: expected shape {shape} for reduction='none', got {g.shape}")
        return g
    if g.shape != ():
        raise ValueError(f"g: expected a scalar for reduction={red!r}, got shape {g.shape}")
    n = int(np.prod(shape)) if red == "mean" else 1
    return np.broadcast_to(g / n, shape)


def _pair(pred, target):
    p = as_float("pred", pred)
    t = as_float("target", target)
    same_shape("target", t, "pred", p)
    return p, t


def mse_loss(pred: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """(pred - target)^2."""
    p, t = _pair(pred, target)
    return _reduce((p - t) ** 2, reduction)


def mse_loss_vjp(pred, target, g, reduction: str = "mean"):
    p, t = _pair(pred, target)
    return (2.0 * (p - t) * _unreduce(g, p.shape, reduction),)


def l1_loss(pred: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """|pred - target|; the derivative at 0 is 0."""
    p, t = _pair(pred, target)
    return _reduce(np.abs(p - t), reduction)


def l1_loss_vjp(pred, target, g, reduction: str = "mean"):
    p, t = _pair(pred, target)
    return (np.sign(p - t) * _unreduce(g, p.shape, reduction),)


def huber_loss(pred: np.ndarray, target: np.ndarray, delta: float = 1.0,
               reduction: str = "mean") -> np.ndarray:
    """0.5 d^2 where |d| <= delta, delta (|d| - delta / 2) beyond; d = pred - target."""
    p, t = _pair(pred, target)
    delta = positive("delta", delta)
    a = np.abs(p - t)
    return _reduce(np.where(a <= delta, 0.5 * a * a, delta * (a - 0.5 * delta)), reduction)


def huber_loss_vjp(pred, target, g, delta: float = 1.0, reduction: str = "mean"):
    p, t = _pair(pred, target)
    delta = positive("delta", delta)
    return (np.clip(p - t, -delta, delta) * _unreduce(g, p.shape, reduction),)


def bce_with_logits(logits: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """softplus(x) - x y = max(x, 0) - x y + log1p(exp(-|x|)), exact for any |x|."""
    x, y = as_float("logits", logits), as_float("target", target)
    same_shape("target", y, "logits", x)
    return _reduce(np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x))), reduction)


def bce_with_logits_vjp(logits, target, g, reduction: str = "mean"):
    """sigmoid(x) - y."""
    x, y = as_float("logits", logits), as_float("target", target)
    same_shape("target", y, "logits", x)
    return ((special.expit(x) - y) * _unreduce(g, x.shape, reduction),)


def _class_inputs(scores_name, scores, labels, weight):
    s = as_float(scores_name, scores, 2)
    n, k = s.shape
    y = as_labels("labels", labels, n, k)
    if weight is None:
        w = np.ones(k)
    else:
        w = as_float("weight", weight, 1)
        if w.shape != (k,):
            raise ValueError(f"weight: expected shape ({k},), got {w.shape}")
        if (w < 0).any():
            raise ValueError("weight: class weights must be >= 0")
    return s, y, w


#: cross_entropy's class_weighting values (see the module doc); the first is the default.
CLASS_WEIGHTINGS = ("per_class", "per_example")


def _class_targets(n, k, y, w, label_smoothing, class_weighting="per_class"):
    """Per-row target weights q (N, K) and the 'mean' divisor: 'per_class'
    (1 - e) w[y] onehot + (e / K) w and sum_i w[y_i]; 'per_example' w[y_i] ((1 - e) onehot +
    e / K) and N."""
    e = in_unit_interval("label_smoothing", label_smoothing, closed_right=True)
    if class_weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting: expected one of {CLASS_WEIGHTINGS}, "
                         f"got {class_weighting!r}")
    if class_weighting == "per_example":
        q = np.full((n, k), e / k)
        q[np.arange(n), y] += 1.0 - e
        return q * w[y][:, None], float(n)
    q = np.zeros((n, k))
    q[np.arange(n), y] = (1.0 - e) * w[y]
    q += (e / k) * w
    return q, w[y].sum()


def _class_reduce(per_example: np.ndarray, denom: float, red: str) -> np.ndarray:
    red = reduction(red)
    if red == "none":
        return per_example
    total = per_example.sum()
    return np.asarray(total if red == "sum" else total / denom)


def _class_unreduce(g, n: int, denom: float, red: str) -> np.ndarray:
    red = reduction(red)
    g = as_float("g", g)
    if red == "none":
        if g.shape != (n,):
            raise ValueError(f"g: expected shape ({n},) for reduction='none', got {g.shape}")
        return g
    if g.shape != ():
        raise ValueError(f"g: expected a scalar for reduction={red!r}, got shape {g.shape}")
    return np.full(n, g / denom if red == "mean" else g)


def cross_entropy(logits: np.ndarray, labels: np.ndarray, reduction: str = "mean",
                  label_smoothing: float = 0.0, weight: np.ndarray | None = None,
                  class_weighting: str = "per_class") -> np.ndarray:
    """logits (N, K), integer labels (N,). loss_i = -sum_k q_ik log_softmax(x_i)_k with
    q_i = (1 - e) w[y_i] onehot(y_i) + (e / K) w (the true class shares e / K);
    'mean' divides by sum_i w[y_i] (PyTorch). class_weighting='per_example' (Keras):
    q_i = w[y_i] ((1 - e) onehot(y_i) + e / K), 'mean' divides by N."""
    x, y, w = _class_inputs("logits", logits, labels, weight)
    q, denom = _class_targets(*x.shape, y, w, label_smoothing, class_weighting)
    return _class_reduce(-(q * log_softmax(x, axis=1)).sum(axis=1), denom, reduction)


def cross_entropy_vjp(logits, labels, g, reduction: str = "mean", label_smoothing: float = 0.0,
                      weight=None, class_weighting: str = "per_class"):
    """d loss_i / d x_i = (sum_k q_ik) softmax(x_i) - q_i."""
    x, y, w = _class_inputs("logits", logits, labels, weight)
    q, denom = _class_targets(*x.shape, y, w, label_smoothing, class_weighting)
    gi = _class_unreduce(g, x.shape[0], denom, reduction)
    return ((q.sum(axis=1, keepdims=True) * softmax(x, axis=1) - q) * gi[:, None],)


def nll_loss(log_probs: np.ndarray, labels: np.ndarray, reduction: str = "mean",
             weight: np.ndarray | None = None) -> np.ndarray:
    """log_probs (N, K), labels (N,): -w[y_i] log_probs[i, y_i]; 'mean' divides by sum w[y_i]."""
    lp, y, w = _class_inputs("log_probs", log_probs, labels, weight)
    n = lp.shape[0]
    return _class_reduce(-w[y] * lp[np.arange(n), y], w[y].sum(), reduction)


def nll_loss_vjp(log_probs, labels, g, reduction: str = "mean", weight=None):
    lp, y, w = _class_inputs("log_probs", log_probs, labels, weight)
    n = lp.shape[0]
    gi = _class_unreduce(g, n, w[y].sum(), reduction)
    d = np.zeros_like(lp)
    d[np.arange(n), y] = -w[y] * gi
    return (d,)
