"""A test backend that computes what Keras 3 computes, written from keras/src (3.x), not from
the oracle: the optimizers' update_step after BaseOptimizer._apply_weight_decay, and
categorical cross-entropy with class weights as sample weights. ``KerasNumpy`` declares the
Keras conventions and must pass the optimizer and loss properties; ``KerasMislabelled`` runs
the same code but declares PyTorch's conventions and must fail
(tests/test_keras_conventions.py). Both compute Keras' formulas whatever convention arguments
they are handed: what they declare is what the properties hold them to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends.numpy_backend import NumpyBackend
from reference.activations import log_softmax, softmax
from reference.optimizers import Optimizer, hyperparameters

KERAS_CONVENTIONS: dict[str, dict[str, Any]] = {
    # keras.optimizers.SGD's velocity starts at zero: m_1 = -lr g.
    "sgd": {"dampen_first_step": False, "weight_decay_mode": "decoupled"},
    "adam": {"amsgrad": (None, "torch"), "eps_placement": "raw", "weight_decay_mode": "decoupled"},
    "adamw": {"amsgrad": (None, "torch"), "eps_placement": "raw"},
    "rmsprop": {"eps_in_sqrt": True, "weight_decay_mode": "decoupled"},
    "adagrad": {"eps_in_sqrt": True, "weight_decay_mode": "decoupled"},
    "cross_entropy": {"class_weighting": "per_example"},
}
#: arguments Keras' optimizers do not have, and the value that stands for their absence
KERAS_LACKS: dict[str, dict[str, tuple[Any, str]]] = {
    "sgd": {"dampening": (0.0, "keras.optimizers.SGD has no dampening")},
    "adam": {"eps_root": (0.0, "keras.optimizers.Adam has no eps_root")},
    "adamw": {"eps_root": (0.0, "keras.optimizers.AdamW has no eps_root")},
    "rmsprop": {"initial_scale": (0.0, "keras.optimizers.RMSprop has no initial_scale: its "
                                       "velocity starts at 0")},
    "adagrad": {"lr_decay": (0.0, "keras.optimizers.Adagrad has no lr_decay")},
}


def _keras(step: Callable[[dict, int, np.ndarray, np.ndarray, dict], np.ndarray],
           slots: tuple[str, ...], h: dict) -> Optimizer:
    """An optimizer from a Keras update_step on one variable, after the decoupled weight decay
    p <- p - p wd lr (BaseOptimizer._apply_weight_decay)."""
    def init(params):
        return {"t": 0, **{s: [np.full_like(p, h.get(f"{s}_init", 0.0)) for p in params]
                           for s in slots}}

    def update(grads, state, params):
        t = state["t"] + 1
        out = {"t": t, **{s: list(state[s]) for s in slots}}
        new = []
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            p = p - p * h["weight_decay"] * h["lr"]
            slot = {s: out[s][i] for s in slots}
            new.append(step(h, t, g, p, slot))
            for s in slots:
                out[s][i] = slot[s]
        return new, out

    return Optimizer(init, update)


def _sgd(h, t, g, p, s):
    lr, mu = h["lr"], h["momentum"]
    if mu == 0:
        return p - g * lr
    s["m"] = s["m"] * mu - g * lr
    return p + (s["m"] * mu - g * lr if h["nesterov"] else s["m"])


def _adam(h, t, g, p, s):
    lr, b1, b2 = h["lr"], h["b1"], h["b2"]
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
    s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
    v = s["v"]
    if h["amsgrad"]:
        s["v_hat"] = np.maximum(s["v_hat"], s["v"])
        v = s["v_hat"]
    return p - s["m"] * alpha / (np.sqrt(v) + h["eps"])


def _rmsprop(h, t, g, p, s):
    rho = h["alpha"]
    s["velocity"] = rho * s["velocity"] + (1 - rho) * g * g
    if h["centered"]:
        s["average_grad"] = rho * s["average_grad"] + (1 - rho) * g
        denominator = s["velocity"] - s["average_grad"] ** 2 + h["eps"]
    else:
        denominator = s["velocity"] + h["eps"]
    increment = h["lr"] * g / np.sqrt(denominator)
    if h["momentum"] > 0:
        s["momentum"] = h["momentum"] * s["momentum"] + increment
        return p - s["momentum"]
    return p - increment


def _adagrad(h, t, g, p, s):
    s["accumulator"] = s["accumulator"] + g * g
    return p - h["lr"] * g / np.sqrt(s["accumulator"] + h["eps"])


_OPTIMIZERS = {"sgd": (_sgd, ("m",)), "adam": (_adam, ("m", "v", "v_hat")),
               "adamw": (_adam, ("m", "v", "v_hat")),
               "rmsprop": (_rmsprop, ("velocity", "average_grad", "momentum")),
               "adagrad": (_adagrad, ("accumulator",))}


def _sample_weights(labels, weight) -> np.ndarray:
    """Keras' class_weight_to_sample_weights: sample_weight[i] = class_weight[y_i]."""
    return np.ones(len(labels)) if weight is None else np.asarray(weight)[labels]


def _smoothed(logits, labels, e) -> np.ndarray:
    """categorical_crossentropy's y_true * (1 - label_smoothing) + label_smoothing / K."""
    onehot = np.eye(logits.shape[1])[labels]
    return onehot * (1 - e) + e / logits.shape[1]


def _keras_cross_entropy_vjp(logits, labels, g, reduction="mean", label_smoothing=0.0,
                             weight=None, class_weighting="per_class"):
    """d/dx of sample_weight_i * CE_i = sample_weight_i (softmax(x_i) - y_i) (y_i sums to 1),
    times g_i, g or g / N."""
    sw = _sample_weights(labels, weight)
    n = logits.shape[0]
    gi = np.asarray(g) if reduction == "none" else np.full(n, g / n if reduction == "mean" else g)
    return ((softmax(logits, axis=1) - _smoothed(logits, labels, label_smoothing))
            * (sw * gi)[:, None],)


class KerasNumpy(NumpyBackend):
    """Keras 3's optimizers and weighted cross-entropy in float64 NumPy; Keras' conventions."""

    name = "keras-numpy"
    conventions = KERAS_CONVENTIONS
    lacks = KERAS_LACKS
    vjps = {**NumpyBackend.vjps, "cross_entropy": _keras_cross_entropy_vjp}

    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        h = hyperparameters(name, **hyper)
        if name == "adagrad":
            h["accumulator_init"] = h["initial_accumulator_value"]
        step, slots = _OPTIMIZERS[name]
        return _keras(step, slots, h)

    def cross_entropy(self, logits, labels, reduction="mean", label_smoothing=0.0, weight=None,
                      class_weighting="per_class"):
        """CategoricalCrossentropy(from_logits=True, label_smoothing) with class_weight: each
        example's loss times class_weight[y_i], summed, over N ('sum_over_batch_size')."""
        per = -(_smoothed(logits, labels, label_smoothing) * log_softmax(logits, axis=1)).sum(1)
        values = per * _sample_weights(labels, weight)
        if reduction == "none":
            return values
        return np.asarray(values.sum() / (len(values) if reduction == "mean" else 1))


class KerasMislabelled(KerasNumpy):
    """The same Keras code, declaring PyTorch's three conventions: the suite must say so."""

    name = "keras-mislabelled"
    conventions = {
        **KERAS_CONVENTIONS,
        "sgd": {**KERAS_CONVENTIONS["sgd"], "weight_decay_mode": "l2"},
        "adam": {**KERAS_CONVENTIONS["adam"], "eps_placement": "corrected", "weight_decay_mode": "l2"},
        "adamw": {**KERAS_CONVENTIONS["adamw"], "eps_placement": "corrected"},
        "rmsprop": {**KERAS_CONVENTIONS["rmsprop"], "weight_decay_mode": "l2"},
        "adagrad": {**KERAS_CONVENTIONS["adagrad"], "weight_decay_mode": "l2"},
        "cross_entropy": {"class_weighting": "per_class"},
    }
