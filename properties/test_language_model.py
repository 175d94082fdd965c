"""The character-level language model (reference/language_model.py) on each backend,
composed from the backend's own embedding, sequence layer, dense, cross-entropy, clipping
and optimizer (backends/compose_lm.py) unless it overrides the model on purpose: the loss,
every gradient and the carried state of one batch, and the loss history, the state carried
after every batch and the parameters after n steps of truncated BPTT with clipping by global
norm under SGD and Adam (properties/lm_cases.py draws them).

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle, plus what every step's rounding becomes at the results (properties/lm_terms.py:
each component's result, each cell step's among them, moved by its magnitudes M through the
rest of the model and of the training run, as test_network_training bounds n steps), with
the longest sum's terms times the steps for a training run.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.compose_lm import call_lm_loss_and_grads, call_train_lm
from properties import lm_cases as LC
from properties.checks import unsupported_example
from properties.lm_terms import NoisyLM, train_trace
from properties.record import current_record
from properties.tolerance import assert_close, sensitivity, spread
from reference import language_model as LM
from reference.optimizers import make_optimizer

pytestmark = [pytest.mark.dtypes("float32", "float64"), pytest.mark.component("char_lm")]


@given(data=st.data())
def test_char_lm_loss_and_grads(backend, dtype, data):
    """The mean cross-entropy over every step, the gradient of every parameter (BPTT within
    the batch, the initial state held fixed) and the final state, from a drawn or zero
    initial state, equal the oracle's."""
    current_record().declared = LC.CLASSES
    case = LC.draw_batch(data, backend, dtype)

    def f(arrays):
        params, state = case.rebuild(arrays)
        value, grads, final = LM.loss_and_grads(case.model, params, case.inputs, case.targets,
                                                state)
        return [np.asarray(value), *grads, *final]

    arrays = case.arrays()
    expected = f(arrays)
    with unsupported_example():
        value, grads, final = call_lm_loss_and_grads(backend, case.model, case.params,
                                                     case.inputs, case.targets, case.state,
                                                     dtype)

    def noisy(noise):
        value, grads, final = NoisyLM(case.model, noise).loss_and_grads(
            case.params, case.inputs, case.targets, case.state)
        return [np.asarray(value), *grads, *final]

    conds = [c + s for c, s in zip(sensitivity(f, arrays), spread(noisy), strict=True)]
    actual = [value, *grads, *final]
    names = ["loss", *(f"gradient of {n}" for n in case.param_names()),
             *(f"final {n}" for n in case.state_names())]
    for name, a, e, c in zip(names, actual, expected, conds, strict=True):
        assert_close(f"char_lm {name}", a, e, dtype, c, case.terms)


@given(data=st.data())
def test_char_lm_training(backend, dtype, data):
    """Truncated BPTT over consecutive batches (each from the state the previous one ended
    in, carried without gradient), the gradients clipped by global norm, one SGD or Adam step
    per batch: the loss of every batch, the state after every batch and the final parameters
    equal the oracle's."""
    current_record().declared = LC.TRAINING_CLASSES
    case = LC.draw_training(data, backend, dtype)
    steps = len(case.batches)

    def run(arrays, noise=None):
        params, state = case.rebuild(arrays)
        history, states, final = train_trace(
            case.model, params, case.batches, make_optimizer(case.optimizer, **case.hyper),
            state, case.max_norm, case.clip_eps, noise)
        return [np.asarray(history), *(s for st_ in states for s in st_), *final]

    arrays = case.arrays()
    expected = run(arrays)
    with unsupported_example():
        final, history, states = call_train_lm(backend, case.model, case.params, case.batches,
                                               case.optimizer, case.hyper, case.state,
                                               case.max_norm, case.clip_eps, dtype)
    conds = [c + s for c, s in zip(sensitivity(run, arrays),
                                   spread(lambda noise: run(arrays, noise)), strict=True)]
    terms = case.terms * steps
    assert_close("loss history", history, expected[0], dtype, conds[0], terms)
    k = len(case.state_names())
    for t, st_ in enumerate(states):
        for j, (a, name) in enumerate(zip(st_, case.state_names(), strict=True)):
            i = 1 + t * k + j
            assert_close(f"carried {name} after batch {t + 1}", a, expected[i], dtype, conds[i],
                         terms)
    names = case.param_names()
    for j, p in enumerate(final):
        i = 1 + steps * k + j
        assert_close(f"{names[j]} after {steps} steps", p, expected[i], dtype, conds[i], terms)
