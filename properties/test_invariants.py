"""Invariants a correct implementation keeps, checked on the backend's own results.

Each bound is the sum of the tolerances of the backend results compared (triangle
inequality), each from the one policy in properties/tolerance.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backends import harness
from properties.checks import expected_and_tolerance, unsupported_example
from properties.specs import vjp_terms
from properties.strategies import floats_array, seeded_array, shapes
from properties.tolerance import TINY, assert_within, round_to, sensitivity, tolerance
from reference import registry

pytestmark = pytest.mark.dtypes("float32", "float64")


def _call(backend, name, args, kwargs, dtype):
    with unsupported_example():
        return harness.call(backend, name, args, kwargs, dtype)


def _tol(name, args, kwargs, dtype, terms=1):
    """Tolerance of the backend's result of component ``name`` on ``args``."""
    def f(arrays):
        return registry.forward(name, arrays, **kwargs)
    expected = f(list(args))
    (cond,) = sensitivity(f, list(args))
    return expected, tolerance(expected, dtype, cond, terms)


def _grid(data, shape, label="x"):
    """Multiples of 1/8 in [-10, 10]: exact in float32, and so is adding an integer to them."""
    k = data.draw(floats_array(shape, -80, 80, "float64"), label=label)
    return np.round(k) / 8.0


@pytest.mark.component("softmax")
@given(data=st.data())
def test_softmax_shift_invariance(backend, dtype, data):
    """softmax(x + c) = softmax(x) for a constant c along the axis."""
    x = _grid(data, data.draw(shapes(2, 2), label="shape"))
    c = float(data.draw(st.integers(-60, 60), label="c"))
    _, tol = _tol("softmax", (x,), {"axis": -1}, dtype, x.shape[-1])
    a = _call(backend, "softmax", (x,), {"axis": -1}, dtype)
    b = _call(backend, "softmax", (x + c,), {"axis": -1}, dtype)
    assert_within("softmax(x + c) vs softmax(x)", b, a, 2 * tol)


@pytest.mark.component("softmax")
@given(data=st.data())
def test_softmax_rows_sum_to_one(backend, dtype, data):
    x = data.draw(floats_array(data.draw(shapes(2, 2), label="shape"), -20, 20, dtype), label="x")
    _, tol = _tol("softmax", (x,), {"axis": -1}, dtype, x.shape[-1])
    s = _call(backend, "softmax", (x,), {"axis": -1}, dtype)
    assert_within("sum of softmax rows", s.sum(axis=-1), np.ones(x.shape[0]), tol.sum(axis=-1))


@pytest.mark.component("log_softmax")
@given(data=st.data())
def test_log_softmax_is_log_of_softmax(backend, dtype, data):
    """log_softmax(x) = log(softmax(x)) where softmax is resolved (above its tolerance). Some
    logits lie 1 to 2 |log tiny| below the row max (tiny: the dtype's smallest normal), where
    softmax underflows and log(softmax) is -inf or has lost its digits: there log_softmax
    must still match the oracle, x_i - max - log sum_j exp(x_j - max)."""
    n, k = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(2, 6), label="K")
    x = data.draw(floats_array((n, k), -5, 5, dtype), label="x")
    deep = -np.log(TINY[dtype])  # 708.4 in float64, 87.3 in float32
    depth = data.draw(floats_array((n, k), deep, 2 * deep, dtype), label="depth")
    far = data.draw(hnp.arrays(np.bool_, (n, k)), label="far").copy()
    far[far.all(axis=1), 0] = False  # every row keeps a logit near its max
    x = round_to(np.where(far, x - depth, x), dtype)
    kw = {"axis": -1}
    s_ref, s_tol = _tol("softmax", (x,), kw, dtype, k)
    l_ref, l_tol = expected_and_tolerance("log_softmax", (x,), kw, dtype, k)
    s = _call(backend, "softmax", (x,), kw, dtype)
    log_s = _call(backend, "log_softmax", (x,), kw, dtype)
    # resolved: s_ref > s_tol, and |s_b - s| <= t < s gives |log s_b - log s| <= t / (s - t)
    ok = s_ref > s_tol
    with np.errstate(divide="ignore"):
        log_of_s = np.log(s)
    assert_within("log_softmax vs log(softmax) where softmax is resolved", log_s[ok],
                  log_of_s[ok], l_tol[ok] + s_tol[ok] / (s_ref[ok] - s_tol[ok]))
    assert_within("log_softmax vs the oracle where softmax underflows", log_s[~ok], l_ref[~ok],
                  l_tol[~ok])


@pytest.mark.component("sigmoid")
@given(data=st.data())
def test_sigmoid_symmetry(backend, dtype, data):
    """sigmoid(-x) = 1 - sigmoid(x)."""
    x = data.draw(floats_array(data.draw(shapes(), label="shape"), -15, 15, dtype), label="x")
    _, t_neg = _tol("sigmoid", (-x,), {}, dtype)
    _, t_pos = _tol("sigmoid", (x,), {}, dtype)
    a = _call(backend, "sigmoid", (-x,), {}, dtype)
    b = _call(backend, "sigmoid", (x,), {}, dtype)
    assert_within("sigmoid(-x) vs 1 - sigmoid(x)", a, 1.0 - b, t_neg + t_pos)


@pytest.mark.component("bce_with_logits")
@given(data=st.data())
def test_bce_label_symmetry(backend, dtype, data):
    """L(x, 1) = L(-x, 0)."""
    x = data.draw(floats_array(data.draw(shapes(1, 2), label="shape"), -30, 30, dtype), label="x")
    kw1 = {"target": np.ones_like(x), "reduction": "none"}
    kw0 = {"target": np.zeros_like(x), "reduction": "none"}
    _, t1 = _tol("bce_with_logits", (x,), kw1, dtype)
    _, t0 = _tol("bce_with_logits", (-x,), kw0, dtype)
    a = _call(backend, "bce_with_logits", (x,), kw1, dtype)
    b = _call(backend, "bce_with_logits", (-x,), kw0, dtype)
    assert_within("L(x, 1) vs L(-x, 0)", a, b, t1 + t0)


@pytest.mark.component("cross_entropy")
@given(data=st.data())
def test_cross_entropy_minimised_at_smoothed_target(backend, dtype, data):
    """With smoothing e, the loss is smallest where softmax(x) is the smoothed target q
    ((1 - e) onehot + e / K): the gradient vanishes at x = log q, and moving away raises it."""
    n, k = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(2, 6), label="K")
    labels = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
                                  label="labels"), dtype=np.int64)
    e = data.draw(st.floats(0.05, 0.5), label="label_smoothing")
    q = np.full((n, k), e / k)
    q[np.arange(n), labels] += 1 - e
    x_star = np.log(q).astype(dtype).astype(np.float64)
    kw = {"labels": labels, "reduction": "sum", "label_smoothing": e}
    cot = np.float64(1.0)
    with unsupported_example():
        _, (grad,) = harness.call_vjp(backend, "cross_entropy", (x_star,), kw, cot, dtype)

    def g(arrays):
        return registry.vjp("cross_entropy", arrays, cot, **kw)[0]

    (cond,) = sensitivity(g, [x_star])
    (m,) = vjp_terms("cross_entropy", (x_star,), kw, cot)
    assert_within("gradient at log q", grad, np.zeros_like(grad),
                  tolerance(g([x_star]), dtype, cond + m, k))
    d = seeded_array(data.draw, (n, k), dtype, 0.3)
    x_away = (x_star + d).astype(dtype).astype(np.float64)
    _, t_star = _tol("cross_entropy", (x_star,), kw, dtype, n * k)
    _, t_away = _tol("cross_entropy", (x_away,), kw, dtype, n * k)
    at = _call(backend, "cross_entropy", (x_star,), kw, dtype)
    away = _call(backend, "cross_entropy", (x_away,), kw, dtype)
    assert_within("loss at log q <= loss away (shortfall)", np.maximum(at - away, 0.0), 0.0,
                  t_star + t_away)


@pytest.mark.component("dense")
@given(data=st.data())
def test_dense_batch_permutation_equivariance(backend, dtype, data):
    """dense(x[perm]) = dense(x)[perm]."""
    n, i, o = (data.draw(st.integers(1, 6), label=s) for s in "NIO")
    x, w, b = (seeded_array(data.draw, s, dtype) for s in ((n, i), (i, o), (o,)))
    perm = np.asarray(data.draw(st.permutations(range(n)), label="perm"))
    _, tol = _tol("dense", (x, w, b), {}, dtype, i + 1)
    y = _call(backend, "dense", (x, w, b), {}, dtype)
    yp = _call(backend, "dense", (x[perm], w, b), {}, dtype)
    assert_within("dense(x[perm]) vs dense(x)[perm]", yp, y[perm], tol[perm] + tol)
