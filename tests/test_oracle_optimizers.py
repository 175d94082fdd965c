"""The optimizers of reference.optimizers obey invariants that follow from their update
formulas (checked without re-implementing any optimizer), and two steps of SGD match updates
worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference.optimizers import make_optimizer
from tests.fd import EPS, arrays, away_from, finite


def _param_list(data, lo: float = -5, hi: float = 5, label: str = "params") -> list[np.ndarray]:
    shapes = data.draw(st.lists(hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
                                min_size=1, max_size=2), label=f"{label}.shapes")
    return [data.draw(arrays(s, lo, hi), label=f"{label}[{j}]") for j, s in enumerate(shapes)]


def _grad_steps(data, params, k: int, lo: float = -10, hi: float = 10) -> list[list[np.ndarray]]:
    return [[data.draw(arrays(p.shape, lo, hi), label=f"grads{s}[{j}]") for j, p in enumerate(params)]
            for s in range(k)]


def _run(opt, params, grad_steps):
    """Every iterate p_0 .. p_k."""
    state = opt.init(params)
    traj = [params]
    for g in grad_steps:
        params, state = opt.update(g, state, params)
        traj.append(params)
    return traj


def _assert_close(actual, expected, scale, ulps: float = 16):
    """|actual - expected| <= ulps eps scale, elementwise."""
    for a, e, s in zip(actual, expected, scale, strict=True):
        assert np.all(np.abs(a - e) <= ulps * EPS * s), f"{a} != {e}"


lrs = finite(1e-4, 2.0)


def _bias_condition(b1: float, b2: float) -> float:
    """Relative rounding of Adam's bias-corrected moments, in ulps: 1 - b^t carries an absolute
    error of an ulp of b^t, i.e. a relative one of eps / (1 - b^t) <= eps / (1 - b)."""
    return 1 / (1 - b1) + 1 / (1 - b2)


@given(data=st.data())
def test_sgd_without_momentum_is_plain_gradient_descent(data):
    """momentum = 0: every step is p - lr (g + wd p), whatever dampening says."""
    lr, wd = data.draw(lrs, label="lr"), data.draw(finite(0, 1), label="weight_decay")
    opt = make_optimizer("sgd", lr=lr, momentum=0.0, weight_decay=wd,
                         dampening=data.draw(finite(0, 1), label="dampening"),
                         dampen_first_step=data.draw(st.booleans(), label="dampen_first_step"))
    params = _param_list(data)
    steps = _grad_steps(data, params, data.draw(st.integers(1, 3), label="k"))
    traj = _run(opt, params, steps)
    for p, q, g in zip(traj, traj[1:], steps, strict=False):
        expected = [pi - lr * (gi + wd * pi) for pi, gi in zip(p, g, strict=True)]
        _assert_close(q, expected, [np.abs(pi) + lr * (np.abs(gi) + wd * np.abs(pi))
                                    for pi, gi in zip(p, g, strict=True)])


# (momentum, dampening, nesterov, dampen_first_step, weight_decay, lr, p0, [g1, g2], [p1, p2]),
# worked on paper from the documented update; every number is exact in binary.
#   g' = g + wd p;  b1 = g' (PyTorch) or mu 0 + (1 - d) g' (dampen_first_step);
#   b_t = mu b + (1 - d) g';  step = g' + mu b (nesterov) or b;  p <- p - lr step.
SGD_BY_HAND = {
    # b1 = 4, p1 = 10 - 4 = 6; b2 = .5*4 + .5*2 = 3, p2 = 6 - 3 = 3
    "momentum-dampening": (0.5, 0.5, False, False, 0.0, 1.0, 10.0, [4.0, 2.0], [6.0, 3.0]),
    # b1 = .5*0 + .5*4 = 2, p1 = 8; b2 = .5*2 + .5*2 = 2, p2 = 6
    "dampen-first-step": (0.5, 0.5, False, True, 0.0, 1.0, 10.0, [4.0, 2.0], [8.0, 6.0]),
    # b1 = 4, step = 4 + .5*4 = 6, p1 = 4; b2 = .5*4 + 2 = 4, step = 2 + .5*4 = 4, p2 = 0
    "nesterov": (0.5, 0.0, True, False, 0.0, 1.0, 10.0, [4.0, 2.0], [4.0, 0.0]),
    # with no dampening, starting the buffer at zero changes nothing: b1 = .5*0 + 1*4 = 4
    "nesterov-dampen-first-step": (0.5, 0.0, True, True, 0.0, 1.0, 10.0, [4.0, 2.0], [4.0, 0.0]),
    # g'1 = 2 + .5*4 = 4, b1 = 4, p1 = 4 - .5*4 = 2; g'2 = 1 + .5*2 = 2, b2 = .5*4 + 2 = 4,
    # p2 = 2 - .5*4 = 0
    "weight-decay": (0.5, 0.0, False, False, 0.5, 0.5, 4.0, [2.0, 1.0], [2.0, 0.0]),
    # momentum 1, dampening 1 (allowed): b1 = 3, p1 = 3; b2 = 1*3 + 0*5 = 3, p2 = 0
    "momentum-1-dampening-1": (1.0, 1.0, False, False, 0.0, 1.0, 6.0, [3.0, 5.0], [3.0, 0.0]),
}


@pytest.mark.parametrize("case", SGD_BY_HAND.values(), ids=SGD_BY_HAND.keys())
def test_sgd_two_steps_by_hand(case):
    mu, d, nesterov, first, wd, lr, p0, gs, expected = case
    opt = make_optimizer("sgd", lr=lr, momentum=mu, dampening=d, nesterov=nesterov,
                         dampen_first_step=first, weight_decay=wd)
    traj = _run(opt, [np.array([p0, -p0])], [[np.array([g, -g])] for g in gs])
    assert [list(p[0]) for p in traj[1:]] == [[e, -e] for e in expected]


@pytest.mark.parametrize("amsgrad", [None, "torch", "optax"])
@pytest.mark.parametrize("name", ["adam", "adamw"])
@given(data=st.data())
def test_adam_constant_gradient_moves_by_sign_like_steps(data, name, amsgrad):
    """eps_root = 0, no L2 decay: m_hat = g and v_hat = g^2 exactly when g is constant (the
    bias corrections undo the zero start; both AMSGrad maxima are v_hat itself), so every step,
    the first included, is lr g / (|g| + eps); AdamW first scales p by 1 - lr wd."""
    lr, eps = data.draw(lrs, label="lr"), data.draw(finite(1e-12, 1e-2), label="eps")
    b1, b2 = data.draw(finite(0, 0.999), label="b1"), data.draw(finite(0, 0.9999), label="b2")
    wd = data.draw(finite(0, 0.5), label="weight_decay") if name == "adamw" else 0.0
    hyper = dict(lr=lr, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad)
    opt = make_optimizer(name, weight_decay=wd, **hyper) if name == "adamw" else \
        make_optimizer(name, **hyper)
    params = _param_list(data)
    g = _grad_steps(data, params, 1)[0]
    k = data.draw(st.integers(1, 4), label="k")
    traj = _run(opt, params, [g] * k)
    for p, q in zip(traj, traj[1:], strict=False):
        step = [lr * gi / (np.abs(gi) + eps) for gi in g]
        expected = [pi * (1 - lr * wd) - si for pi, si in zip(p, step, strict=True)]
        cond = _bias_condition(b1, b2)
        _assert_close(q, expected, [np.abs(pi) + np.abs(si) * k * cond
                                    for pi, si in zip(p, step, strict=True)], ulps=64)


@pytest.mark.parametrize("amsgrad", [None, "torch", "optax"])
@given(data=st.data())
def test_adamw_without_decay_is_adam(data, amsgrad):
    hyper = dict(lr=data.draw(lrs, label="lr"), b1=data.draw(finite(0, 0.999), label="b1"),
                 b2=data.draw(finite(0, 0.9999), label="b2"),
                 eps=data.draw(finite(1e-12, 1e-2), label="eps"),
                 eps_root=data.draw(st.just(0.0) | finite(0, 1e-3), label="eps_root"),
                 amsgrad=amsgrad)
    params = _param_list(data)
    steps = _grad_steps(data, params, data.draw(st.integers(1, 4), label="k"))
    adam = _run(make_optimizer("adam", **hyper), params, steps)
    adamw = _run(make_optimizer("adamw", weight_decay=0.0, **hyper), params, steps)
    for a, w in zip(adam, adamw, strict=True):
        for ai, wi in zip(a, w, strict=True):
            np.testing.assert_array_equal(ai, wi)


@pytest.mark.parametrize("name", ["adam", "adamw"])
@given(data=st.data())
def test_amsgrad_variants_agree_when_gradient_magnitudes_do_not_decrease(data, name):
    """torch: v_hat_t = max_{s<=t} v_s / c2_t; optax: v_hat_t = max_{s<=t} (v_s / c2_s). With
    |g_1| <= |g_2| <= ... per coordinate, v_{t-1} <= c2_{t-1} max g^2 <= g_t^2, so
    v_t = b2 v_{t-1} + (1 - b2) g_t^2 >= v_{t-1}: the torch max is v_t. And v_t / c2_t is a
    convex combination of v_{t-1} / c2_{t-1} and g_t^2 >= it, so the optax max is v_t / c2_t
    too. The two then compute the same v_hat, so the same trajectory up to rounding. (No L2
    weight decay: it would change the gradients' magnitudes; AdamW's decoupled decay does not.)"""
    lr, eps = data.draw(lrs, label="lr"), data.draw(finite(1e-12, 1e-2), label="eps")
    hyper = dict(lr=lr, b1=data.draw(finite(0, 0.999), label="b1"),
                 b2=data.draw(finite(0, 0.9999), label="b2"), eps=eps,
                 eps_root=data.draw(st.just(0.0) | finite(0, 1e-3), label="eps_root"))
    if name == "adamw":
        hyper["weight_decay"] = data.draw(finite(0, 0.5), label="weight_decay")
    params = _param_list(data)
    k = data.draw(st.integers(2, 5), label="k")
    mags = [np.abs(g) for g in _grad_steps(data, params, 1, 0, 5)[0]]
    steps = []
    for s in range(k):
        if s:
            mags = [m + np.abs(i) for m, i in zip(mags, _grad_steps(data, params, 1, 0, 3)[0],
                                                   strict=True)]
        signs = [data.draw(hnp.arrays(np.float64, p.shape, elements=st.sampled_from([-1.0, 1.0])),
                           label=f"signs{s}") for p in params]
        steps.append([sg * m for sg, m in zip(signs, mags, strict=True)])
    torch = _run(make_optimizer(name, amsgrad="torch", **hyper), params, steps)
    optax = _run(make_optimizer(name, amsgrad="optax", **hyper), params, steps)
    # rounding scale: |p0| plus the distance each coordinate travelled
    moved = [np.abs(p0) + sum(np.abs(q[j] - p[j]) for p, q in zip(torch, torch[1:], strict=False))
             for j, p0 in enumerate(params)]
    _assert_close(torch[-1], optax[-1], moved,
                  ulps=64 * k * _bias_condition(hyper["b1"], hyper["b2"]))


def test_amsgrad_variants_differ_by_hand():
    """Shrinking gradients separate the conventions. b1 = b2 = 1/2, eps = 0, lr = 1, p0 = 0,
    g = 1 then 0. Step 1 (all): m = v = 1/2, c1 = c2 = 1/2, step g / |g| = 1, p1 = -1.
    Step 2: m = 1/4, v = 1/4, c1 = c2 = 3/4, m_hat = 1/3.
      plain:  v_hat = 1/3,                     p2 = -1 - (1/3) / sqrt(1/3) = -1 - sqrt(1/3)
      torch:  v_hat = max(1/2, 1/4) / (3/4) = 2/3,  p2 = -1 - (1/3) / sqrt(2/3) = -1 - sqrt(1/6)
      optax:  v_hat = max(1/2 / (1/2), 1/3) = 1,    p2 = -1 - 1/3"""
    expected = {None: -1 - math.sqrt(1 / 3), "torch": -1 - math.sqrt(1 / 6), "optax": -4 / 3}
    for amsgrad, p2 in expected.items():
        opt = make_optimizer("adam", lr=1.0, b1=0.5, b2=0.5, eps=0.0, amsgrad=amsgrad)
        traj = _run(opt, [np.zeros(1)], [[np.ones(1)], [np.zeros(1)]])
        assert traj[1][0][0] == -1.0
        assert traj[2][0][0] == pytest.approx(p2, rel=4 * EPS)


@given(data=st.data())
def test_rmsprop_eps_placement_is_irrelevant_when_eps_is_zero(data):
    """sqrt(v) + 0 = sqrt(v + 0): with eps = 0 PyTorch's and optax's forms are one update."""
    initial_scale = data.draw(st.just(0.0) | finite(1e-3, 1.0), label="initial_scale")
    # with v_0 = 0 and no decay, |g| >= 0.1 keeps v (and the centred v - a^2) positive
    wd = data.draw(finite(0, 0.5), label="weight_decay") if initial_scale else 0.0
    hyper = dict(lr=data.draw(lrs, label="lr"), alpha=data.draw(finite(0.5, 0.999), label="alpha"),
                 eps=0.0, weight_decay=wd, initial_scale=initial_scale,
                 momentum=data.draw(st.just(0.0) | finite(0, 0.99), label="momentum"),
                 centered=data.draw(st.booleans(), label="centered"))
    params = _param_list(data)
    steps = [[away_from(g, (0.0,), 0.1) for g in gs]
             for gs in _grad_steps(data, params, data.draw(st.integers(1, 4), label="k"))]
    outside = _run(make_optimizer("rmsprop", eps_in_sqrt=False, **hyper), params, steps)
    inside = _run(make_optimizer("rmsprop", eps_in_sqrt=True, **hyper), params, steps)
    for a, b in zip(outside, inside, strict=True):
        for ai, bi in zip(a, b, strict=True):
            assert np.all(np.isfinite(ai))
            np.testing.assert_array_equal(ai, bi)


@pytest.mark.parametrize("eps_in_sqrt", [False, True])
@given(data=st.data())
def test_adagrad_first_step_from_a_zero_accumulator(data, eps_in_sqrt):
    """s_1 = 0 + g^2, so step 1 is lr g / (|g| + eps), or lr g / sqrt(g^2 + eps) with eps
    inside the root; lr_decay only acts from step 2 (lr / (1 + 0 lr_decay))."""
    lr, eps = data.draw(lrs, label="lr"), data.draw(finite(1e-12, 1e-2), label="eps")
    opt = make_optimizer("adagrad", lr=lr, eps=eps, eps_in_sqrt=eps_in_sqrt,
                         lr_decay=data.draw(finite(0, 1), label="lr_decay"))
    params = _param_list(data)
    g = _grad_steps(data, params, 1)[0]
    (p1,) = _run(opt, params, [g])[1:]
    den = [np.sqrt(gi * gi + eps) if eps_in_sqrt else np.abs(gi) + eps for gi in g]
    step = [lr * gi / di for gi, di in zip(g, den, strict=True)]
    _assert_close(p1, [p - s for p, s in zip(params, step, strict=True)],
                  [np.abs(p) + np.abs(s) for p, s in zip(params, step, strict=True)])
