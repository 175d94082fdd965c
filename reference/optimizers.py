"""Optimizers behind one functional interface.

``opt = make_optimizer(name, **hyper)``; ``state = opt.init(params)``;
``params, state = opt.update(grads, state, params)``. ``params`` and ``grads`` are lists of
float64 arrays; the state is explicit and never mutated. Hyperparameter names follow PyTorch;
conventions where frameworks differ are explicit arguments:

- sgd ``dampen_first_step``: False is PyTorch (the momentum buffer starts as the raw
  gradient); True starts the buffer at zero, so dampening applies on step 1 too.
- adam ``amsgrad``: None, 'torch' (running max of the raw v, divided by 1 - b2^t) or 'optax'
  (running max of the bias-corrected v_hat). ``eps_root`` sits inside the square root (optax).
- adam / adamw ``eps_placement``: 'corrected' is PyTorch and optax, eps added to the root of
  the bias-corrected v: m_hat / (sqrt(v_hat) + eps); 'raw' is Keras, eps added to the root of
  the raw v: sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), the same as 'corrected' with
  eps / sqrt(1 - b2^t) for eps.
- rmsprop / adagrad ``eps_in_sqrt``: False is PyTorch (sqrt(v) + eps), True is optax
  (sqrt(v + eps)); ``initial_accumulator_value`` / ``initial_scale``: optax adagrad uses 0.1.
- sgd / adam / rmsprop / adagrad ``weight_decay_mode``: 'l2' is PyTorch and optax
  (add_decayed_weights first): g <- g + wd p before the update; 'decoupled' is Keras
  (``weight_decay`` of every keras.optimizers optimizer): p <- p - lr wd p, then the update
  from the raw g. AdamW is always decoupled (it has no weight_decay_mode).

``hyperparameters(name, **hyper)`` lists the public hyperparameters of an optimizer, the
ones adapters receive: exactly the parameters of its function here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from reference._validate import as_float, in_unit_interval, positive

Params = list[np.ndarray]

#: the values of the conventions (see the module doc); the first is the default.
EPS_PLACEMENTS = ("corrected", "raw")
WEIGHT_DECAY_MODES = ("l2", "decoupled")


class Optimizer(NamedTuple):
    init: Callable[[Params], Any]
    update: Callable[[Params, Any, Params], tuple[Params, Any]]


def _arrays(name: str, xs) -> Params:
    return [as_float(f"{name}[{i}]", x) for i, x in enumerate(xs)]


def _one_of(name: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
    return value


def _decayed(p: np.ndarray, lr: float, weight_decay: float) -> np.ndarray:
    """Decoupled weight decay: p - lr wd p = p (1 - lr wd)."""
    return p * (1 - lr * weight_decay) if weight_decay else p


def _check(grads, params) -> tuple[Params, Params]:
    g, p = _arrays("grads", grads), _arrays("params", params)
    if len(g) != len(p):
        raise ValueError(f"grads: expected {len(p)} arrays to match params, got {len(g)}")
    for i, (gi, pi) in enumerate(zip(g, p, strict=True)):
        if gi.shape != pi.shape:
            raise ValueError(f"grads[{i}]: expected shape {pi.shape}, got {gi.shape}")
    return g, p


def sgd(lr: float, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0, dampen_first_step: bool = False,
        weight_decay_mode: str = "l2") -> Optimizer:
    """g <- g + wd p ('l2'); b <- mu b + (1 - d) g (b_1 = g unless dampen_first_step);
    step = g + mu b if nesterov else b; p <- p - lr step ('decoupled': p (1 - lr wd) - lr step)."""
    lr = positive("lr", lr)
    decoupled = _one_of("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES) == "decoupled"
    momentum = in_unit_interval("momentum", momentum, closed_right=True)
    dampening = in_unit_interval("dampening", dampening, closed_right=True)
    weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
    if nesterov and (momentum == 0 or dampening != 0):
        raise ValueError("nesterov: needs momentum > 0 and dampening = 0")

    def init(params):
        return {"t": 0, "buf": [np.zeros_like(p) for p in _arrays("params", params)]}

    def update(grads, state, params):
        g, p = _check(grads, params)
        t = state["t"] + 1
        new_p, new_buf = [], []
        for gi, pi, bi in zip(g, p, state["buf"], strict=True):
            if decoupled:
                pi = _decayed(pi, lr, weight_decay)
            else:
                gi = gi + weight_decay * pi
            if momentum:
                bi = gi if (t == 1 and not dampen_first_step) else momentum * bi + (1 - dampening) * gi
                gi = gi + momentum * bi if nesterov else bi
            new_p.append(pi - lr * gi)
            new_buf.append(bi)
        return new_p, {"t": t, "buf": new_buf}

    return Optimizer(init, update)


def adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0,
         weight_decay: float = 0.0, amsgrad: str | None = None, eps_placement: str = "corrected",
         weight_decay_mode: str = "l2") -> Optimizer:
    """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2; m_hat = m / (1 - b1^t);
    v_hat = v / (1 - b2^t) (AMSGrad: see module doc); p <- p - lr m_hat / (sqrt(v_hat + eps_root)
    + e), e = eps ('corrected') or eps / sqrt(1 - b2^t) ('raw', Keras). weight_decay is L2 added
    to g ('l2'), or p <- p (1 - lr wd) before the step ('decoupled', AdamW)."""
    lr = positive("lr", lr)
    b1 = in_unit_interval("b1", b1)
    b2 = in_unit_interval("b2", b2)
    eps = positive("eps", eps, allow_zero=True)
    eps_root = positive("eps_root", eps_root, allow_zero=True)
    weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
    if amsgrad not in (None, "torch", "optax"):
        raise ValueError(f"amsgrad: expected None, 'torch' or 'optax', got {amsgrad!r}")
    raw = _one_of("eps_placement", eps_placement, EPS_PLACEMENTS) == "raw"
    decoupled = _one_of("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES) == "decoupled"

    def init(params):
        z = [np.zeros_like(p) for p in _arrays("params", params)]
        return {"t": 0, "m": z, "v": list(z), "vmax": list(z)}

    def update(grads, state, params):
        g, p = _check(grads, params)
        t = state["t"] + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        e = eps / np.sqrt(c2) if raw else eps
        out = {"t": t, "m": [], "v": [], "vmax": []}
        new_p = []
        for gi, pi, mi, vi, vmi in zip(g, p, state["m"], state["v"], state["vmax"], strict=True):
            if weight_decay and not decoupled:
                gi = gi + weight_decay * pi
            mi = b1 * mi + (1 - b1) * gi
            vi = b2 * vi + (1 - b2) * gi * gi
            if amsgrad == "torch":
                vmi = np.maximum(vmi, vi)
                v_hat = vmi / c2
            elif amsgrad == "optax":
                vmi = np.maximum(vmi, vi / c2)
                v_hat = vmi
            else:
                v_hat = vi / c2
            step = (mi / c1) / (np.sqrt(v_hat + eps_root) + e)
            if decoupled:
                pi = _decayed(pi, lr, weight_decay)
            new_p.append(pi - lr * step)
            out["m"].append(mi)
            out["v"].append(vi)
            out["vmax"].append(vmi)
        return new_p, out

    return Optimizer(init, update)


def adamw(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0,
          weight_decay: float = 1e-2, amsgrad: str | None = None,
          eps_placement: str = "corrected") -> Optimizer:
    """Adam with decoupled decay: p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)."""
    return adam(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement,
                weight_decay_mode="decoupled")


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
            momentum: float = 0.0, centered: bool = False, eps_in_sqrt: bool = False,
            initial_scale: float = 0.0, weight_decay_mode: str = "l2") -> Optimizer:
    """g <- g + wd p ('l2'); v <- alpha v + (1 - alpha) g^2 (v_0 = initial_scale); centred:
    a <- alpha a + (1 - alpha) g, v' = v - a^2; d = sqrt(v') + eps (or sqrt(v' + eps)); with
    momentum b <- mu b + g / d, p <- p - lr b; else p <- p - lr g / d ('decoupled': p (1 - lr wd)
    in place of p)."""
    lr = positive("lr", lr)
    alpha = in_unit_interval("alpha", alpha)
    eps = positive("eps", eps, allow_zero=True)
    weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
    momentum = in_unit_interval("momentum", momentum)
    initial_scale = positive("initial_scale", initial_scale, allow_zero=True)
    decoupled = _one_of("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES) == "decoupled"

    def init(params):
        ps = _arrays("params", params)
        return {"t": 0, "v": [np.full_like(p, initial_scale) for p in ps],
                "avg": [np.zeros_like(p) for p in ps], "buf": [np.zeros_like(p) for p in ps]}

    def update(grads, state, params):
        g, p = _check(grads, params)
        out = {"t": state["t"] + 1, "v": [], "avg": [], "buf": []}
        new_p = []
        for gi, pi, vi, ai, bi in zip(g, p, state["v"], state["avg"], state["buf"], strict=True):
            if decoupled:
                pi = _decayed(pi, lr, weight_decay)
            else:
                gi = gi + weight_decay * pi
            vi = alpha * vi + (1 - alpha) * gi * gi
            var = vi
            if centered:
                ai = alpha * ai + (1 - alpha) * gi
                var = vi - ai * ai
            d = np.sqrt(var + eps) if eps_in_sqrt else np.sqrt(var) + eps
            if momentum:
                bi = momentum * bi + gi / d
                new_p.append(pi - lr * bi)
            else:
                new_p.append(pi - lr * gi / d)
            out["v"].append(vi)
            out["avg"].append(ai)
            out["buf"].append(bi)
        return new_p, out

    return Optimizer(init, update)


def adagrad(lr: float, eps: float = 1e-10, initial_accumulator_value: float = 0.0,
            lr_decay: float = 0.0, weight_decay: float = 0.0,
            eps_in_sqrt: bool = False, weight_decay_mode: str = "l2") -> Optimizer:
    """g <- g + wd p ('l2'); s <- s + g^2 (s_0 = initial_accumulator_value);
    p <- p - lr_t g / (sqrt(s) + eps) (or sqrt(s + eps)), lr_t = lr / (1 + (t - 1) lr_decay)
    ('decoupled': p (1 - lr_t wd) in place of p)."""
    lr = positive("lr", lr)
    eps = positive("eps", eps, allow_zero=True)
    initial_accumulator_value = positive("initial_accumulator_value", initial_accumulator_value,
                                         allow_zero=True)
    lr_decay = positive("lr_decay", lr_decay, allow_zero=True)
    weight_decay = positive("weight_decay", weight_decay, allow_zero=True)
    decoupled = _one_of("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES) == "decoupled"

    def init(params):
        return {"t": 0, "s": [np.full_like(p, initial_accumulator_value)
                              for p in _arrays("params", params)]}

    def update(grads, state, params):
        g, p = _check(grads, params)
        t = state["t"] + 1
        clr = lr / (1 + (t - 1) * lr_decay)
        new_p, new_s = [], []
        for gi, pi, si in zip(g, p, state["s"], strict=True):
            if decoupled:
                pi = _decayed(pi, clr, weight_decay)
            else:
                gi = gi + weight_decay * pi
            si = si + gi * gi
            d = np.sqrt(si + eps) if eps_in_sqrt else np.sqrt(si) + eps
            new_p.append(pi - clr * gi / d)
            new_s.append(si)
        return new_p, {"t": t, "s": new_s}

    return Optimizer(init, update)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop, "adagrad": adagrad,
}


def hyperparameters(name: str, **hyper) -> dict:
    """Every public hyperparameter of optimizer ``name``: ``hyper`` completed with the oracle's
    defaults. These, and only these (the parameters of OPTIMIZERS[name]), are what adapters
    receive and map to their framework's names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"name: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    try:
        bound = inspect.signature(OPTIMIZERS[name]).bind(**hyper)
    except TypeError as exc:
        raise ValueError(f"hyper: {exc}") from exc
    bound.apply_defaults()
    return dict(bound.arguments)


def make_optimizer(name: str, **hyper) -> Optimizer:
    """The optimizer ``name`` (one of OPTIMIZERS) with hyperparameters ``hyper``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"name: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    try:
        return OPTIMIZERS[name](**hyper)
    except TypeError as exc:
        raise ValueError(f"hyper: {exc}") from exc
