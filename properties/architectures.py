"""The architectures' cases: how each network's problem is drawn, its kinks, and the rounding
magnitudes of its loss and gradients for the tolerance policy (properties/test_architectures.py
holds the one property set they share).

An ``ArchitectureCase`` per network: ``draw`` makes a Problem (architecture, parameters,
running statistics, inputs, targets, batch-norm conventions, reduction length), and the
training property's bounds (largest learning rate, steps, rows, smallest batch). Adding an
architecture is one entry in CASES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from backends.base import Backend
from properties import specs
from properties.scoped import note_arguments
from properties.strategies import conventions, seeded_array
from properties.tolerance import EPS, round_to
from reference import network, registry

#: the conventions a network's batch norms take from each backend: the oracle's defaults
BN_CONVENTIONS = {k: v for k, v in registry.get("batch_norm").defaults().items()
                  if k != "training"}
KINKED = ("relu", "leaky_relu")
SMOOTH = ("tanh", "sigmoid", "gelu", "gelu_tanh", "silu", "softplus", "elu")


@dataclass
class Problem:
    """One drawn network problem. ``terms``: the length of its longest reduction."""

    arch: network.Architecture
    params: list[np.ndarray]
    state: list[np.ndarray]
    x: np.ndarray
    target: np.ndarray
    bn: dict[str, Any]
    terms: int

    @property
    def float_target(self) -> bool:
        return self.arch.loss == "mse"

    def float_inputs(self) -> list[np.ndarray]:
        """What the condition term perturbs: params, state, x (and a float target)."""
        return [*self.params, *self.state, self.x, *([self.target] if self.float_target else [])]

    def rebuild(self, arrays):
        """(params, state, x, target) from float_inputs-shaped ``arrays``."""
        n, m = len(self.params), len(self.state)
        target = arrays[n + m + 1] if self.float_target else self.target
        return list(arrays[:n]), list(arrays[n:n + m]), arrays[n + m], target


@dataclass(frozen=True)
class ArchitectureCase:
    """``draw(data, backend, dtype, rows)``: a Problem with ``rows`` rows (None: drawn).
    Training draws ``train_rows`` rows, batches of ``min_batch`` or more rows, 1 to
    ``max_steps`` steps, learning rates up to ``max_lr``."""

    draw: Callable[[Any, Backend, str, int | None], Problem]
    max_lr: float
    max_steps: int
    train_rows: tuple[int, int]
    min_batch: int = 1


def _labels(data, n: int, classes: int) -> np.ndarray:
    return np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n),
                                label="labels"), dtype=np.int64)


def draw_mlp(data, backend: Backend, dtype: str, rows: int | None = None) -> Problem:
    """1-3 dense layers of 1-6 features, a hidden activation, mse or cross-entropy."""
    depth = data.draw(st.integers(1, 3), label="depth")
    loss = data.draw(st.sampled_from(("mse", "cross_entropy")), label="loss")
    widths = [data.draw(st.integers(2 if (i == depth and loss == "cross_entropy") else 1, 6),
                        label="width") for i in range(depth + 1)]
    n = rows or data.draw(st.integers(1, 6), label="N")
    params = []
    for i in range(depth):
        params += [seeded_array(data.draw, (widths[i], widths[i + 1]), dtype, widths[i] ** -0.5),
                   seeded_array(data.draw, (widths[i + 1],), dtype, 0.1)]
    x = seeded_array(data.draw, (n, widths[0]), dtype)
    target = seeded_array(data.draw, (n, widths[-1]), dtype) if loss == "mse" else \
        _labels(data, n, widths[-1])
    activation = data.draw(st.sampled_from(KINKED + SMOOTH), label="activation")
    # what a known divergence may be scoped by ("gelu inside an MLP")
    note_arguments({"depth": depth, "loss": loss, "widths": tuple(widths), "N": n,
                    "activation": activation})
    return Problem(network.mlp(widths, activation, loss), params, [], x, target, {},
                   max(widths) + n)


def draw_convolutional(build: Callable[[], network.Architecture]) -> Callable[..., Problem]:
    """Draws for the convolutional network ``build()``: its shapes are fixed (3 rows unless
    given), its values, labels, batch-norm conventions and hyperparameters drawn. Shapes are
    the components' properties' business, and a JAX backend compiles every new shape."""
    def draw(data, backend: Backend, dtype: str, rows: int | None = None) -> Problem:
        arch = build()
        n = rows or 3
        params, state = arch.init(data.draw(st.integers(0, 2**32 - 1), label="init_seed"))
        params = [round_to(p, dtype) for p in params]
        # running statistics away from their initial values, so eval mode uses them
        state = [round_to(s + (0.3 * seeded_array(data.draw, s.shape, "float64") if i % 2 == 0
                               else 0.5 * np.abs(seeded_array(data.draw, s.shape, "float64"))),
                          dtype) for i, s in enumerate(state)]
        x = seeded_array(data.draw, (n, *arch.input_shape), dtype)
        labels = _labels(data, n, arch.classes)
        bn = conventions(data, backend, "batch_norm", dict(BN_CONVENTIONS))
        shapes, _, _ = arch.shapes()
        fan_in = max(int(np.prod(s[1:])) if len(s) == 4 else s[0] for s in shapes if len(s) > 1)
        terms = fan_in + n * arch.input_shape[1] * arch.input_shape[2]
        return Problem(arch, params, state, x, labels, bn, terms)
    return draw


CASES: dict[str, ArchitectureCase] = {
    "mlp": ArchitectureCase(draw_mlp, max_lr=0.1, max_steps=5, train_rows=(2, 8)),
    "lenet": ArchitectureCase(draw_convolutional(lambda: network.lenet(1, 8, (2, 3), 3, (6, 5), 3)),
                              max_lr=0.05, max_steps=3, train_rows=(4, 4), min_batch=2),
    "resnet": ArchitectureCase(draw_convolutional(lambda: network.resnet(2, 5, 2, 3)),
                               max_lr=0.05, max_steps=3, train_rows=(4, 4), min_batch=2),
}
"""Architecture name -> its case."""


class KinkProbe:
    """The oracle's ops, rejecting the example when a ReLU or leaky-ReLU input sits within
    ``gap`` of 0 or a max-pool window's two largest values are within ``gap`` of each other:
    there the backend's rounding could take the other branch, and the gradient jumps. A
    window whose maximum is 0 is exempt: the pools here follow a ReLU, so its inputs are
    ReLU-dead and their gradient is 0 whichever one the tie picks."""

    def __init__(self, gap: float) -> None:
        self.gap = gap

    def __getattr__(self, name: str):
        return getattr(network.ORACLE_OPS, name)

    def _kink_free(self, x):
        assume(np.all(np.abs(x) >= self.gap * max(1.0, float(np.max(np.abs(x))))))

    def relu(self, x):
        self._kink_free(x)
        return network.ORACLE_OPS.relu(x)

    def leaky_relu(self, x, negative_slope: float = 0.01):
        self._kink_free(x)
        return network.ORACLE_OPS.leaky_relu(x, negative_slope)

    def max_pool2d(self, x, k):
        n, c, h, w = x.shape
        win = x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
        top = np.sort(win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k), -1)
        gap = self.gap * max(1.0, float(np.max(np.abs(x))))
        assume(np.all((top[..., -1] - top[..., -2] >= gap) | (top[..., -1] == 0)))
        return network.ORACLE_OPS.max_pool2d(x, k)


def avoid_kinks(prob: Problem, dtype: str, params=None, state=None, rows=None,
                training: bool = True) -> None:
    """Reject the example where a kink is within a thousand ulps of the dtype: far above a
    backend's rounding of a pre-activation."""
    x = prob.x if rows is None else prob.x[rows]
    network.apply(prob.arch, KinkProbe(1e3 * EPS[dtype]),
                  prob.params if params is None else params,
                  prob.state if state is None else state, x, training, prob.bn)


# -- rounding magnitudes (the tolerance policy's M) of a network ------------------------------
def _abs_conv2d_vjp(x, w, b, g, **kw):
    return registry.get("conv2d").vjp_fn(np.abs(x), np.abs(w), None if b is None else np.abs(b),
                                         g, **kw)


def _abs_conv_transpose2d_vjp(x, w, b, g, **kw):
    return registry.get("conv_transpose2d").vjp_fn(np.abs(x), np.abs(w),
                                                   None if b is None else np.abs(b), g, **kw)


def _abs_batch_norm_vjp(x, weight, bias, g, running_mean, running_var, **kw):
    return specs.vjp_terms("batch_norm", (x, weight, bias),
                           {**kw, "running_mean": running_mean, "running_var": running_var},
                           (g, None, None))


def _abs_dense_vjp(x, w, b, g):
    return g @ np.abs(w).T, np.abs(x).T @ g, g.sum(axis=0)


def _activation_terms(kind: str):
    """The activation's VJP in magnitude: its spec's terms, else |f'(x)| M (a product)."""
    name, kw = ("gelu", {"approximate": "tanh"}) if kind == "gelu_tanh" else (kind, {})
    _, vjp = network.ACTIVATIONS[kind]

    def terms(x, g, **extra):  # extra: leaky_relu's negative_slope
        m = specs.vjp_terms(name, (x,), {**kw, **extra}, g)
        return (m[0],) if m is not None else (np.abs(vjp(x, g, **extra)[0]),)
    return terms


#: VJPs in magnitude: each takes the magnitude M of the output's cotangent and returns the
#: magnitude of the terms each gradient sums (pooling and flatten route or average
#: nonnegative values, so their own VJPs already do that).
MAGNITUDE_VJPS = {**network.ORACLE_VJPS, "conv2d": _abs_conv2d_vjp,
                  "conv_transpose2d": _abs_conv_transpose2d_vjp,
                  "batch_norm": _abs_batch_norm_vjp, "dense": _abs_dense_vjp,
                  **{kind: _activation_terms(kind) for kind in network.ACTIVATIONS}}


def network_terms(arch: network.Architecture, params, state, x, target, bn
                  ) -> tuple[float, list[np.ndarray]]:
    """(M of the loss, M of every parameter gradient) in training mode: the oracle's backward
    chained in magnitude (a running error bound: each gradient is a sum of products whose
    magnitudes these are, so a backend's rounding moves it by about eps times them). mse's
    cotangent 2 (y - t) / (N O) sums terms of 2 (|y| + |t|) / (N O)."""
    out, _, tape = network.forward_tape(arch, params, state, x, bn)
    if arch.loss == "cross_entropy":
        kw = {"labels": target, "reduction": "mean"}
        loss_m = float(specs.forward_terms("cross_entropy", (out,), kw))
        (g,) = specs.vjp_terms("cross_entropy", (out,), kw, np.float64(1.0))
    else:
        loss_m = float(np.mean((out - target) ** 2))
        g = 2 * (np.abs(out) + np.abs(target)) / out.size
    return loss_m, network.backward(tape, g, bn, MAGNITUDE_VJPS)
