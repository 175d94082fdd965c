"""Whole CNNs (LeNet, a small ResNet): outputs, loss, every gradient, running statistics and
parameters after n training steps, against the oracle's hand-chained backward."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backends import harness
from properties.checks import unsupported_example
from properties.magnitudes import cnn_terms
from properties.optimizer_cases import HYPERS
from properties.strategies import conventions, seeded_array
from properties.tolerance import DELTA, EPS, assert_close, round_to, sensitivity
from reference import cnn
from reference.optimizers import Optimizer, make_optimizer

ARCHITECTURES = ("lenet", "resnet")
#: the conventions the networks' batch norms take from each backend
_BN_DEFAULTS = {"momentum": 0.1, "eps": 1e-5, "momentum_convention": "torch",
                "unbiased_running_var": True, "variance": "two_pass"}


@dataclass
class Problem:
    arch: cnn.Architecture
    params: list[np.ndarray]
    state: list[np.ndarray]
    x: np.ndarray
    labels: np.ndarray
    bn: dict
    terms: int

    def float_inputs(self) -> list[np.ndarray]:
        return [*self.params, *self.state, self.x]

    def rebuild(self, arrays):
        n, m = len(self.params), len(self.state)
        return list(arrays[:n]), list(arrays[n:n + m]), arrays[n + m]


#: the networks' shapes are fixed (N rows, 3 classes): values, labels, conventions and
#: hyperparameters are drawn. Shapes are the components' properties' business, and a JAX
#: backend compiles every new shape.
NETWORKS = {"lenet": lambda: cnn.lenet(1, 8, (2, 3), 3, (6, 5), 3),
            "resnet": lambda: cnn.resnet(2, 5, 2, 3)}


def draw_problem(data, backend, dtype, name: str, n: int = 3) -> Problem:
    arch = NETWORKS[name]()
    classes = arch.classes
    params, state = arch.init(data.draw(st.integers(0, 2**32 - 1), label="init_seed"))
    params = [round_to(p, dtype) for p in params]
    # running statistics away from their initial values, so eval mode uses them
    state = [round_to(s + (0.3 * seeded_array(data.draw, s.shape, "float64") if i % 2 == 0 else
                           0.5 * np.abs(seeded_array(data.draw, s.shape, "float64"))), dtype)
             for i, s in enumerate(state)]
    x = seeded_array(data.draw, (n, *arch.input_shape), dtype)
    labels = np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n),
                                  label="labels"), dtype=np.int64)
    bn = conventions(data, backend, "batch_norm", dict(_BN_DEFAULTS))
    shapes, _, _ = arch.shapes()
    fan_in = max(int(np.prod(s[1:])) if len(s) == 4 else s[0] for s in shapes if len(s) > 1)
    terms = fan_in + n * arch.input_shape[1] * arch.input_shape[2]
    return Problem(arch, params, state, x, labels, bn, terms)


class _KinkProbe:
    """The oracle's ops, rejecting the example when a ReLU input sits within ``gap`` of 0 or a
    max-pool window's two largest values are within ``gap`` of each other: there the
    backend's rounding could take the other branch, and the gradient jumps. A window whose
    maximum is 0 is exempt: the pools here follow a ReLU, so its inputs are ReLU-dead and
    their gradient is 0 whichever one the tie picks."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        ops = cnn.ORACLE_OPS
        self.conv2d, self.batch_norm, self.flatten = ops.conv2d, ops.batch_norm, ops.flatten
        self.global_avg_pool2d, self.dense = ops.global_avg_pool2d, ops.dense

    def relu(self, x):
        assume(np.all(np.abs(x) >= self.gap * max(1.0, float(np.max(np.abs(x))))))
        return cnn.ORACLE_OPS.relu(x)

    def max_pool2d(self, x, k):
        n, c, h, w = x.shape
        win = x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
        top = np.sort(win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k), -1)
        gap = self.gap * max(1.0, float(np.max(np.abs(x))))
        assume(np.all((top[..., -1] - top[..., -2] >= gap) | (top[..., -1] == 0)))
        return cnn.ORACLE_OPS.max_pool2d(x, k)


def _gap(dtype: str) -> float:
    """A thousand ulps of the dtype: far above a backend's rounding of a pre-activation."""
    return 1e3 * EPS[dtype]


def avoid_kinks(prob: Problem, dtype: str, params=None, state=None, rows=None, training=True):
    x = prob.x if rows is None else prob.x[rows]
    cnn.apply(prob.arch, _KinkProbe(_gap(dtype)), prob.params if params is None else params,
              prob.state if state is None else state, x, training, prob.bn)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@given(data=st.data())
def test_cnn_forward(backend, dtype, component, data):
    """Logits and updated running statistics in train and eval mode equal the oracle's."""
    prob = draw_problem(data, backend, dtype, component)
    training = data.draw(st.booleans(), label="training")

    def f(arrays):
        p, s, x = prob.rebuild(arrays)
        logits, new_state = cnn.forward(prob.arch, p, s, x, training, prob.bn)
        return [logits, *new_state]

    arrays = prob.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        logits, new_state = harness.call(backend, "cnn_forward",
                                         (prob.arch, prob.params, prob.state, prob.x),
                                         {"training": training, "bn": prob.bn}, dtype)
    conds = sensitivity(f, arrays)
    assert_close(f"{component} logits", logits, expected[0], dtype, conds[0], prob.terms)
    assert len(new_state) == len(prob.state), f"{len(new_state)} state arrays"
    for i, (a, e, c) in enumerate(zip(new_state, expected[1:], conds[1:], strict=True)):
        assert_close(f"{component} state[{i}]", a, e, dtype, c, prob.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@given(data=st.data())
def test_cnn_gradients(backend, dtype, component, data):
    """The training-mode loss and the gradient of every parameter equal the oracle's."""
    prob = draw_problem(data, backend, dtype, component)
    avoid_kinks(prob, dtype)

    def f(arrays):
        p, s, x = prob.rebuild(arrays)
        value, grads, _ = cnn.loss_and_grads(prob.arch, p, s, x, prob.labels, prob.bn)
        return [np.asarray(value), *grads]

    arrays = prob.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        value, grads, _ = harness.call(backend, "cnn_loss_and_grads",
                                       (prob.arch, prob.params, prob.state, prob.x, prob.labels),
                                       {"bn": prob.bn}, dtype)
    conds = sensitivity(f, arrays)
    loss_m, grad_m = cnn_terms(prob.arch, prob.params, prob.state, prob.x, prob.labels, prob.bn)
    assert_close(f"{component} loss", value, expected[0], dtype, conds[0] + loss_m, prob.terms)
    assert len(grads) == len(prob.params), f"{len(grads)} gradients for {len(prob.params)} params"
    names = prob.arch.param_names()
    for i, (g, e, c, m) in enumerate(zip(grads, expected[1:], conds[1:], grad_m, strict=True)):
        assert_close(f"{component} gradient of {names[i]}", g, e, dtype, c + m, prob.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@given(data=st.data())
def test_cnn_training(backend, dtype, component, optimizer, data):
    """Loss history, running statistics after every step and final parameters after n
    mini-batch steps (SGD with momentum, Adam) equal the oracle's."""
    prob = draw_problem(data, backend, dtype, component, 4)
    hyper = conventions(data, backend, optimizer, HYPERS[optimizer](data))
    hyper["lr"] = min(hyper["lr"], 0.05)
    if optimizer == "sgd":
        hyper["momentum"] = data.draw(st.sampled_from((0.5, 0.9)), label="momentum")
    steps = data.draw(st.integers(1, 3), label="steps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="batch_seed"))
    batches = [rng.permutation(prob.x.shape[0])[:2] for _ in range(steps)]

    def run(arrays, noise=None):
        """The oracle's training; with ``noise`` (a Generator) every step's gradients move by
        DELTA times their rounding magnitude (cnn_terms), in random directions."""
        p, s, x = prob.rebuild(arrays)
        opt = base = make_optimizer(optimizer, **hyper)
        seen = {"loss_m": []}

        def callback(p_, s_, idx):
            avoid_kinks(prob, dtype, p_, s_, idx)
            loss_m, seen["grad_m"] = cnn_terms(prob.arch, p_, s_, x[idx], prob.labels[idx], prob.bn)
            seen["loss_m"].append(loss_m)

        if noise is not None:
            def update(grads, state, params):
                moved = [g + DELTA * m * noise.standard_normal(g.shape)
                         for g, m in zip(grads, seen["grad_m"], strict=True)]
                return base.update(moved, state, params)
            opt = Optimizer(base.init, update)
        final, states, history = cnn.train(prob.arch, p, s, x, prob.labels, opt, batches,
                                           prob.bn, callback)
        return [np.asarray(history), *[a for st_ in states for a in st_], *final], seen["loss_m"]

    arrays = prob.float_inputs()
    expected, loss_m = run(arrays)
    with unsupported_example():
        final, states, history = harness.train_cnn(
            backend, prob.arch, prob.params, prob.state, prob.x, prob.labels, optimizer, hyper,
            batches, prob.bn, dtype)
    # condition on the inputs, plus how each step's gradient rounding (eps M) propagates
    conds = sensitivity(lambda a: run(a)[0], arrays)
    rng = np.random.default_rng(20261124)
    spread = [np.zeros_like(e) for e in expected]
    for _ in range(4):
        moved, _ = run(arrays, rng)
        spread = [np.maximum(sp, np.abs(mv - e)) for sp, mv, e in zip(spread, moved, expected,
                                                                        strict=True)]
    conds = [c + sp / DELTA for c, sp in zip(conds, spread, strict=True)]
    conds[0] = conds[0] + np.asarray(loss_m)  # each recorded loss carries its own rounding
    terms = prob.terms * steps
    assert_close("loss history", history, expected[0], dtype, conds[0], terms)
    m = len(prob.state)
    assert len(states) == steps, f"{len(states)} states for {steps} steps"
    for t, st_ in enumerate(states):
        for i, a in enumerate(st_):
            j = 1 + t * m + i
            assert_close(f"running statistic state[{i}] after step {t + 1}", a, expected[j], dtype,
                         conds[j], terms)
    names = prob.arch.param_names()
    for i, p in enumerate(final):
        j = 1 + steps * m + i
        assert_close(f"{names[i]} after {steps} steps", p, expected[j], dtype, conds[j], terms)

