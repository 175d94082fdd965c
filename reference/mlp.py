"""Multilayer perceptron with hand-chained backpropagation, and mini-batch training.

Parameters are a flat list [w0, b0, w1, b1, ...], w_l (I_l, O_l), b_l (O_l,). Hidden layers
apply ``activation`` (a name from ACTIVATIONS, 'gelu_tanh' for the tanh GELU); the last layer
is linear. Losses: 'mse' (target (N, O) floats) or 'cross_entropy' (target (N,) labels),
mean reduction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reference._validate import as_float, row_indices
from reference.activations import ACTIVATIONS, gelu, gelu_vjp
from reference.dense import dense, dense_vjp
from reference.losses import cross_entropy, cross_entropy_vjp, mse_loss, mse_loss_vjp
from reference.optimizers import Optimizer

MLP_LOSSES = ("mse", "cross_entropy")


def activation_pair(name: str):
    """(forward, vjp) of a hidden activation by name."""
    if name == "gelu_tanh":
        return (lambda x: gelu(x, "tanh"), lambda x, g: gelu_vjp(x, g, "tanh"))
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS) + ['gelu_tanh']}, "
                         f"got {name!r}")
    return ACTIVATIONS[name]


def _layers(params: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(params) == 0 or len(params) % 2:
        raise ValueError(f"params: expected [w0, b0, w1, b1, ...], got {len(params)} arrays")
    ps = [as_float(f"params[{i}]", p, 2 if i % 2 == 0 else 1) for i, p in enumerate(params)]
    return list(zip(ps[::2], ps[1::2], strict=True))


def mlp_forward(params: Sequence[np.ndarray], x: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """h_0 = x; h_{l+1} = act(h_l w_l + b_l); the last layer has no activation. (N, O_L)."""
    act, _ = activation_pair(activation)
    layers = _layers(params)
    h = as_float("x", x, 2)
    for i, (w, b) in enumerate(layers):
        h = dense(h, w, b)
        if i < len(layers) - 1:
            h = act(h)
    return h


def _loss_pair(loss: str):
    if loss == "mse":
        return mse_loss, mse_loss_vjp
    if loss == "cross_entropy":
        return cross_entropy, cross_entropy_vjp
    raise ValueError(f"loss: expected one of {MLP_LOSSES}, got {loss!r}")


def mlp_loss(params, x, target, activation: str = "tanh", loss: str = "mse") -> float:
    f, _ = _loss_pair(loss)
    return float(f(mlp_forward(params, x, activation), target))


def mlp_loss_and_grads(params: Sequence[np.ndarray], x: np.ndarray, target: np.ndarray,
                       activation: str = "tanh", loss: str = "mse") -> tuple[float, list[np.ndarray]]:
    """The loss and its gradient for every parameter, by the chain rule layer by layer."""
    act, act_vjp = activation_pair(activation)
    f, f_vjp = _loss_pair(loss)
    layers = _layers(params)
    h = as_float("x", x, 2)
    inputs, pre = [], []
    for i, (w, b) in enumerate(layers):
        inputs.append(h)
        z = dense(h, w, b)
        pre.append(z)
        h = act(z) if i < len(layers) - 1 else z
    value = float(f(h, target))
    (g,) = f_vjp(h, target, np.float64(1.0))
    grads: list[np.ndarray] = []
    for i in range(len(layers) - 1, -1, -1):
        if i < len(layers) - 1:
            (g,) = act_vjp(pre[i], g)
        g, gw, gb = dense_vjp(inputs[i], layers[i][0], layers[i][1], g)
        grads[:0] = [gw, gb]
    return value, grads


def train_mlp(params: Sequence[np.ndarray], x: np.ndarray, target: np.ndarray,
              optimizer: Optimizer, batches: Sequence[np.ndarray], activation: str = "tanh",
              loss: str = "mse") -> tuple[list[np.ndarray], list[float]]:
    """Mini-batch gradient descent: one optimizer step per index array in ``batches``, in that
    order. Returns the final parameters and the loss of each batch before its step."""
    x = as_float("x", x, 2)
    target = np.asarray(target)
    if target.ndim == 0 or target.shape[0] != x.shape[0]:
        raise ValueError(f"target: expected {x.shape[0]} rows to match x {x.shape}, got shape {target.shape}")
    p = [as_float(f"params[{i}]", q) for i, q in enumerate(params)]
    state = optimizer.init(p)
    history = []
    for j, idx in enumerate(batches):
        idx = row_indices(f"batches[{j}]", idx, x.shape[0])
        value, grads = mlp_loss_and_grads(p, x[idx], target[idx], activation, loss)
        history.append(value)
        p, state = optimizer.update(grads, state, p)
    return p, history
