"""Architectures composed over the backend interface: the defaults behind
Backend.network_forward, network_loss_and_grads and train_network.

Each runs reference.network's architecture over the backend's own components (``bk`` is the
ops namespace) and differentiates with the backend's own autodiff (Backend.vjp), so a backend
that certifies its components gets its networks certified with no code of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reference import network
from reference.optimizers import Optimizer


def forward(bk: Any, arch: network.Architecture, params: Sequence[Any], state: Sequence[Any], x,
            training: bool = False, bn: dict[str, Any] | None = None) -> tuple[Any, list]:
    """reference.network.apply over the backend's components: (outputs, new running stats)."""
    return network.apply(arch, bk, params, state, x, training, bn)


def loss_and_grads(bk: Any, arch: network.Architecture, params: Sequence[Any],
                   state: Sequence[Any], x, target, bn: dict[str, Any] | None = None
                   ) -> tuple[Any, list[Any], list[Any]]:
    """(the mean loss, gradient of every parameter, new state) in training mode, by the
    backend's autodiff through bk.network_forward."""
    def f(p):
        out, new_state = bk.network_forward(arch, p, state, x, True, bn)
        return network.loss(bk, arch.loss, out, target), new_state
    return bk.value_and_grad_aux(f, params)


def train(bk: Any, arch: network.Architecture, params: Sequence[Any], state: Sequence[Any], x,
          target, optimizer: Optimizer, batches: Sequence[np.ndarray],
          bn: dict[str, Any] | None = None) -> tuple[list[Any], list[list[Any]], list[float]]:
    """reference.network.train over bk.network_loss_and_grads and ``optimizer``: (final
    params, state after every step, loss of each batch before its step)."""
    p, s = list(params), list(state)
    opt_state = optimizer.init(p)
    states, history = [], []
    for idx in batches:
        value, grads, s = bk.network_loss_and_grads(arch, p, s, bk.take(x, idx),
                                                    bk.take(target, idx), bn)
        history.append(float(bk.to_numpy(value)))
        states.append(list(s))
        p, opt_state = optimizer.update(grads, opt_state, p)
    return p, states, history
