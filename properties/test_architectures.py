"""Whole networks (an MLP, LeNet, a small ResNet; properties/architectures.py draws them): the
output and updated running statistics, the loss and every gradient, and the loss history,
running statistics and parameters after n mini-batch steps with each optimizer, against the
oracle's hand-chained backward (reference.network)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import harness
from properties.architectures import CASES, avoid_kinks, network_terms
from properties.checks import unsupported_example
from properties.optimizer_cases import HYPERS
from properties.scoped import add_arguments
from properties.strategies import conventions
from properties.tolerance import assert_close, moved, noisy_update, sensitivity, spread
from reference import network
from reference.optimizers import Optimizer, make_optimizer

ARCHITECTURES = tuple(CASES)
OPTIMIZERS = tuple(HYPERS)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@given(data=st.data())
def test_network_forward(backend, dtype, component, data):
    """Outputs and updated running statistics in train and eval mode equal the oracle's."""
    prob = CASES[component].draw(data, backend, dtype, None)
    training = data.draw(st.booleans(), label="training")

    def f(arrays):
        p, s, x, _ = prob.rebuild(arrays)
        out, new_state = network.forward(prob.arch, p, s, x, training, prob.bn)
        return [out, *new_state]

    arrays = prob.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        out, new_state = harness.call(backend, "network_forward",
                                      (prob.arch, prob.params, prob.state, prob.x),
                                      {"training": training, "bn": prob.bn}, dtype)
    conds = sensitivity(f, arrays)
    assert_close(f"{component} outputs", out, expected[0], dtype, conds[0], prob.terms)
    assert len(new_state) == len(prob.state), f"{len(new_state)} state arrays"
    for i, (a, e, c) in enumerate(zip(new_state, expected[1:], conds[1:], strict=True)):
        assert_close(f"{component} state[{i}]", a, e, dtype, c, prob.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@given(data=st.data())
def test_network_gradients(backend, dtype, component, data):
    """The training-mode loss and the gradient of every parameter equal the oracle's."""
    prob = CASES[component].draw(data, backend, dtype, None)
    avoid_kinks(prob, dtype)

    def f(arrays):
        p, s, x, t = prob.rebuild(arrays)
        value, grads, _ = network.loss_and_grads(prob.arch, p, s, x, t, prob.bn)
        return [np.asarray(value), *grads]

    arrays = prob.float_inputs()
    expected = f(arrays)
    with unsupported_example():
        value, grads, _ = harness.call(backend, "network_loss_and_grads",
                                       (prob.arch, prob.params, prob.state, prob.x, prob.target),
                                       {"bn": prob.bn}, dtype)
    conds = sensitivity(f, arrays)
    loss_m, grad_m = network_terms(prob.arch, prob.params, prob.state, prob.x, prob.target,
                                   prob.bn)
    assert_close(f"{component} loss", value, expected[0], dtype, conds[0] + loss_m, prob.terms)
    assert len(grads) == len(prob.params), f"{len(grads)} gradients for {len(prob.params)} params"
    names = prob.arch.param_names()
    for i, (g, e, c, m) in enumerate(zip(grads, expected[1:], conds[1:], grad_m, strict=True)):
        assert_close(f"{component} gradient of {names[i]}", g, e, dtype, c + m, prob.terms)


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", ARCHITECTURES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@given(data=st.data())
def test_network_training(backend, dtype, component, optimizer, data):
    """Loss history, running statistics after every step and final parameters after n
    mini-batch steps of the backend's optimizer equal the oracle's. The optimizer's
    hyperparameters are drawn last, so its parametrizations draw the same networks and
    batches (properties.scheduling runs them together)."""
    case = CASES[component]
    prob = case.draw(data, backend, dtype, data.draw(st.integers(*case.train_rows), label="N"))
    # the optimizer is part of what a known divergence may be scoped by
    add_arguments(optimizer=optimizer)
    steps = data.draw(st.integers(1, case.max_steps), label="steps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="batch_seed"))
    n = prob.x.shape[0]
    batch = data.draw(st.integers(case.min_batch, n), label="batch_size")
    batches = [rng.permutation(n)[:batch] for _ in range(steps)]
    hyper = conventions(data, backend, optimizer, HYPERS[optimizer](data))
    hyper["lr"] = min(hyper["lr"], case.max_lr)

    def run(arrays, noise=None):
        """The oracle's training; with ``noise`` (a Generator) every step's gradients move by
        DELTA times their rounding magnitude (network_terms), and its new parameters by DELTA
        times that of the update p - u (|p| + |u|: a backend stores them in its dtype), in
        random directions."""
        p, s, x, t = prob.rebuild(arrays)
        opt = base = make_optimizer(optimizer, **hyper)
        seen = {"loss_m": []}

        def callback(p_, s_, idx):
            avoid_kinks(prob, dtype, p_, s_, idx)
            loss_m, seen["grad_m"] = network_terms(prob.arch, p_, s_, x[idx], t[idx], prob.bn)
            seen["loss_m"].append(loss_m)

        if noise is not None:
            opt = Optimizer(base.init, lambda grads, state, params: noisy_update(
                base, moved(noise, grads, seen["grad_m"]), state, params, noise))
        final, states, history = network.train(prob.arch, p, s, x, t, opt, batches, prob.bn,
                                               callback)
        return [np.asarray(history), *[a for st_ in states for a in st_], *final], seen["loss_m"]

    arrays = prob.float_inputs()
    expected, loss_m = run(arrays)
    with unsupported_example():
        final, states, history = harness.train_network(
            backend, prob.arch, prob.params, prob.state, prob.x, prob.target, optimizer, hyper,
            batches, prob.bn, dtype)
    # condition on the inputs, plus how each step's gradient rounding (eps M) propagates
    conds = [c + s for c, s in zip(sensitivity(lambda a: run(a)[0], arrays),
                                   spread(lambda noise: run(arrays, noise)[0], expected),
                                   strict=True)]
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
    assert len(final) == len(prob.params), f"{len(final)} parameters for {len(prob.params)}"
    for i, p in enumerate(final):
        j = 1 + steps * m + i
        assert_close(f"{names[i]} after {steps} steps", p, expected[j], dtype, conds[j], terms)
