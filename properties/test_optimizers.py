"""Optimizers: k-step trajectories from drawn hyperparameters and gradient sequences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import harness
from properties.checks import unsupported_example
from properties.optimizer_cases import CLASSES, HYPERS, MAX_STEPS, classify
from properties.record import current_record
from properties.scoped import note_arguments
from properties.strategies import conventions, seeded_array, shapes
from properties.tolerance import assert_close, sensitivity
from reference.optimizers import hyperparameters, make_optimizer


def draw_problem(data, dtype):
    """Initial parameters and a gradient sequence whose scale grows, shrinks or holds."""
    n_params = data.draw(st.integers(1, 3), label="n_params")
    param_shapes = [data.draw(shapes(1, 2, 4), label="shape") for _ in range(n_params)]
    params = [seeded_array(data.draw, s, dtype) for s in param_shapes]
    steps = data.draw(st.integers(1, MAX_STEPS), label="steps")
    scale = data.draw(st.sampled_from((1e-3, 1.0, 100.0)), label="grad_scale")
    decay = data.draw(st.sampled_from((1.0, 0.5, 1.5)), label="grad_scale_per_step")
    grads = [[seeded_array(data.draw, s, dtype, scale * decay**k) for s in param_shapes]
             for k in range(steps)]
    return params, grads


def oracle_trajectory(name, hyper, params, grads):
    """The oracle's parameters after every step. Notes the hyperparameters, completed with the
    oracle's defaults, as the example's arguments (a scoped known divergence is judged on
    them; noted here so that test_trajectory's source, and so its derandomised examples, stay
    as they were)."""
    note_arguments(hyperparameters(name, **hyper))
    opt = make_optimizer(name, **hyper)
    state, p, out = opt.init(params), list(params), []
    for g in grads:
        p, state = opt.update(g, state, p)
        out.append(p)
    return out


def step_rounding(params, trajectory) -> list[list[np.ndarray]]:
    """M_t = sum_{s <= t} (|u_s| + |p_s|) per parameter, u_s = p_{s-1} - p_s: each step rounds
    its update and p_{s-1} - u_s, errors of eps |u_s| and eps |p_s| that later steps carry
    unchanged (the gradients are given). The input probes of ``sensitivity`` cannot see them
    where the update does not depend on the gradient's scale (RMSprop's and Adam's early steps,
    u ~ lr g / |g|), so a trajectory of O(1) steps that cancel to a small parameter would
    otherwise be held to the small parameter's rounding."""
    out, m, prev = [], [np.zeros_like(np.asarray(p, dtype=np.float64)) for p in params], params
    for step in trajectory:
        m = [mi + np.abs(np.asarray(q) - np.asarray(p)) + np.abs(np.asarray(q))
             for mi, p, q in zip(m, prev, step, strict=True)]
        out.append(m)
        prev = step
    return out


@pytest.mark.dtypes("float32", "float64")
@pytest.mark.parametrize("component", sorted(HYPERS))
@given(data=st.data())
def test_trajectory(backend, dtype, component, data):
    """Parameters after every step equal the oracle's."""
    record = current_record()
    record.declared = dict(CLASSES[component])
    hyper = conventions(data, backend, component, HYPERS[component](data))
    for dimension, cls in classify(component, hyper).items():
        record.note_class(dimension, cls)  # what the backend runs, its conventions applied
    params, grads = draw_problem(data, dtype)
    expected = oracle_trajectory(component, hyper, params, grads)
    with unsupported_example():
        actual = harness.run_optimizer(backend, component, hyper, params, grads, dtype)
    n, k = len(params), len(grads)

    def f(arrays):
        ps, flat = arrays[:n], arrays[n:]
        gs = [flat[i * n:(i + 1) * n] for i in range(k)]
        return [q for step in oracle_trajectory(component, hyper, ps, gs) for q in step]

    conds = sensitivity(f, [*params, *(g for step in grads for g in step)])
    rounding = step_rounding(params, expected)
    for t in range(k):
        for i in range(n):
            # the step roundings are a worst-case sum already: not scaled by sqrt(terms)
            assert_close(f"{component} step {t + 1} param {i}", actual[t][i], expected[t][i],
                         dtype, conds[t * n + i] + rounding[t][i] / np.sqrt(t + 1), terms=t + 1)
    assert np.isfinite(np.concatenate([a.ravel() for a in actual[-1]])).all()
