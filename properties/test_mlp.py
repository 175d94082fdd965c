"""Whole MLPs: output, loss, every parameter's gradient, and mini-batch training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import harness
from properties.checks import unsupported_example
from properties.optimizer_cases import HYPERS
from properties.strategies import conventions, kink_free, seeded_array
from properties.tolerance import assert_close, sensitivity
from reference import mlp
from reference.dense import dense
from reference.optimizers import make_optimizer

KINKED = ("relu", "leaky_relu")
SMOOTH = ("tanh", "sigmoid", "gelu", "gelu_tanh", "silu", "softplus", "elu")


@dataclass
class Net:
    params: list[np.ndarray]
    x: np.ndarray
    target: np.ndarray
    activation: str
    loss: str
    terms: int

    def float_inputs(self) -> list[np.ndarray]:
        return [*self.params, self.x, *([self.target] if self.loss == "mse" else [])]

    def rebuild(self, arrays):
        n = len(self.params)
        return list(arrays[:n]), arrays[n], (arrays[n + 1] if self.loss == "mse" else self.target)


def draw_net(data, dtype, activations, n_rows=None) -> Net:
    depth = data.draw(st.integers(1, 3), label="depth")
    loss = data.draw(st.sampled_from(("mse", "cross_entropy")), label="loss")
    widths = [data.draw(st.integers(2 if (i == depth and loss == "cross_entropy") else 1, 6),
                        label="width") for i in range(depth + 1)]
    n = n_rows or data.draw(st.integers(1, 6), label="N")
    params = []
    for i in range(depth):
        params += [seeded_array(data.draw, (widths[i], widths[i + 1]), dtype, widths[i] ** -0.5),
                   seeded_array(data.draw, (widths[i + 1],), dtype, 0.1)]
    x = seeded_array(data.draw, (n, widths[0]), dtype)
    if loss == "mse":
        target = seeded_array(data.draw, (n, widths[-1]), dtype)
    else:
        target = np.asarray(data.draw(st.lists(st.integers(0, widths[-1] - 1), min_size=n,
                                               max_size=n), label="labels"), dtype=np.int64)
    activation = data.draw(st.sampled_from(activations), label="activation")
    return Net(params, x, target, activation, loss, max(widths) + n)


def avoid_kinks(net: Net) -> None:
    """Reject nets whose hidden pre-activations sit at a kink of the activation."""
    if net.activation not in KINKED:
        return
    h = net.x
    for i in range(len(net.params) // 2 - 1):
        z = dense(h, net.params[2 * i], net.params[2 * i + 1])
        kink_free(z, (0.0,), 1e-3)
        h = mlp.activation_pair(net.activation)[0](z)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.component("mlp")
@given(data=st.data())
def test_mlp_forward(backend, dtype, data):
    """The network's output equals the oracle's."""
    net = draw_net(data, dtype, KINKED + SMOOTH)

    def f(arrays):
        p, x, _ = net.rebuild(arrays)
        return mlp.mlp_forward(p, x, net.activation)

    arrays = net.float_inputs()
    with unsupported_example():
        out = harness.call(backend, "mlp_forward", (net.params, net.x),
                           {"activation": net.activation}, dtype)
    (cond,) = sensitivity(f, arrays)
    assert_close("mlp output", out, f(arrays), dtype, cond, net.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.component("mlp")
@given(data=st.data())
def test_mlp_gradients(backend, dtype, data):
    """The loss and the gradient of every parameter equal the oracle's backpropagation."""
    net = draw_net(data, dtype, KINKED + SMOOTH)
    avoid_kinks(net)

    def f(arrays):
        p, x, t = net.rebuild(arrays)
        value, grads = mlp.mlp_loss_and_grads(p, x, t, net.activation, net.loss)
        return [np.asarray(value), *grads]

    arrays = net.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        value, grads = harness.call(backend, "mlp_loss_and_grads", (net.params, net.x, net.target),
                                    {"activation": net.activation, "loss": net.loss}, dtype)
    conds = sensitivity(f, arrays)
    assert_close("mlp loss", value, expected[0], dtype, conds[0], net.terms)
    assert len(grads) == len(net.params), f"{len(grads)} gradients for {len(net.params)} parameters"
    for i, (g, e, c) in enumerate(zip(grads, expected[1:], conds[1:], strict=True)):
        assert_close(f"mlp gradient of params[{i}]", g, e, dtype, c, net.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.component("mlp")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@given(data=st.data())
def test_mlp_training(backend, dtype, optimizer, data):
    """Parameters and loss history after n mini-batch steps equal the oracle's."""
    net = draw_net(data, dtype, SMOOTH, n_rows=data.draw(st.integers(2, 8), label="N"))
    hyper = conventions(data, backend, optimizer, HYPERS[optimizer](data))
    hyper["lr"] = min(hyper["lr"], 0.1)
    steps = data.draw(st.integers(1, 5), label="steps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="batch_seed"))
    batch = data.draw(st.integers(1, net.x.shape[0]), label="batch_size")
    batches = [rng.permutation(net.x.shape[0])[:batch] for _ in range(steps)]

    def f(arrays):
        p, x, t = net.rebuild(arrays)
        final, history = mlp.train_mlp(p, x, t, make_optimizer(optimizer, **hyper), batches,
                                       net.activation, net.loss)
        return [np.asarray(history), *final]

    arrays = net.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        final, history = harness.train_mlp(backend, net.params, net.x, net.target, optimizer, hyper,
                                           batches, net.activation, net.loss, dtype)
    conds = sensitivity(f, arrays)
    assert_close("loss history", history, expected[0], dtype, conds[0], net.terms * steps)
    for i, (p, e, c) in enumerate(zip(final, expected[1:], conds[1:], strict=True)):
        assert_close(f"params[{i}] after {steps} steps", p, e, dtype, c, net.terms * steps)
