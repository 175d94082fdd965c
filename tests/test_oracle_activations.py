"""The activations of reference.activations certify themselves: every hand-written VJP agrees
with float64 central finite differences (tests/fd.py explains the check and its bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import activations as A
from tests.fd import arrays, assert_vjp_matches_fd, away_from, dot, finite, small_shapes, unit

#: (name, fixed conventions); continuous conventions are drawn in _activation_kwargs.
ACTIVATION_CASES = [
    ("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {}), ("elu", {}),
    ("gelu", {"approximate": "none"}), ("gelu", {"approximate": "tanh"}), ("silu", {}),
    ("softplus", {"threshold": None}), ("softplus", {"threshold": 20.0}),
]


def test_activation_cases_cover_every_activation():
    assert {name for name, _ in ACTIVATION_CASES} == set(A.ACTIVATIONS)
    assert {kw["approximate"] for name, kw in ACTIVATION_CASES if name == "gelu"} == \
        set(A.GELU_APPROXIMATIONS)


def _activation_kwargs(data, name: str, fixed: dict) -> tuple[dict, tuple[float, ...]]:
    """Keyword conventions and the kinks of the activation under them."""
    kw = dict(fixed)
    if name == "leaky_relu":
        kw["negative_slope"] = data.draw(finite(0.0, 2.0), label="negative_slope")
    elif name == "elu":
        kw["alpha"] = data.draw(finite(0.1, 3.0), label="alpha")
    elif name == "softplus":
        kw["beta"] = data.draw(finite(0.25, 8.0), label="beta")
    if name in ("relu", "leaky_relu", "elu"):
        return kw, (0.0,)
    if name == "softplus" and kw["threshold"] is not None:
        return kw, (kw["threshold"] / kw["beta"],)  # PyTorch switches to x there (a tiny jump)
    return kw, ()


@pytest.mark.parametrize(("name", "fixed"), ACTIVATION_CASES,
                         ids=[n + "".join(f"-{v}" for v in kw.values()) for n, kw in ACTIVATION_CASES])
@given(data=st.data())
def test_activation_vjp_matches_fd(data, name, fixed):
    f, f_vjp = A.ACTIVATIONS[name]
    kw, kinks = _activation_kwargs(data, name, fixed)
    shape = data.draw(small_shapes, label="shape")
    x = away_from(data.draw(arrays(shape, -12, 12), label="x"), kinks)
    t = data.draw(unit(shape), label="tangent")
    c = data.draw(unit(shape), label="cotangent")
    (dx,) = f_vjp(x, c, **kw)
    assert_vjp_matches_fd(lambda x: f(x, **kw), [x], [t], c, [dx])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("ndim", [2, 3])
@given(data=st.data())
def test_softmax_vjp_matches_fd_on_every_axis(data, fn, ndim):
    f, f_vjp = getattr(A, fn), getattr(A, fn + "_vjp")
    shape = data.draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=4),
                      label="shape")
    axis = data.draw(st.integers(-ndim, ndim - 1), label="axis")
    x = data.draw(arrays(shape, -10, 10), label="x")
    t = data.draw(unit(shape), label="tangent")
    c = data.draw(unit(shape), label="cotangent")
    (dx,) = f_vjp(x, c, axis=axis)
    # x - max - log(sum exp): terms up to |x| + max|x| + log K cancel (softmax: inside exp,
    # so relative to s)
    terms = np.abs(x) + np.max(np.abs(x), axis=axis, keepdims=True) + math.log(shape[axis])
    weight = np.abs(c) * (A.softmax(x, axis) if fn == "softmax" else 1.0)
    assert_vjp_matches_fd(lambda x: f(x, axis=axis), [x], [t], c, [dx], dot(weight, terms))
