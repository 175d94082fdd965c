"""reference.dense certifies itself: its hand-written VJP agrees with float64 central finite
differences (tests/fd.py explains the check and its bound)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import dense as D
from tests.fd import arrays, assert_vjp_matches_fd, dot, unit


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_dense_vjp_matches_fd(data, with_bias):
    n, i, o = (data.draw(st.integers(1, 4), label=k) for k in "nio")
    x = data.draw(arrays((n, i), -3, 3), label="x")
    w = data.draw(arrays((i, o), -3, 3), label="w")
    b = data.draw(arrays((o,), -3, 3), label="b") if with_bias else None
    c = data.draw(unit((n, o)), label="cotangent")
    dx, dw, db = D.dense_vjp(x, w, b, c)
    primals, grads = [x, w], [dx, dw]
    if with_bias:
        primals.append(b)
        grads.append(db)
    else:
        assert db is None
    tangents = [data.draw(unit(p.shape), label=f"t{j}") for j, p in enumerate(primals)]
    magnitude = dot(np.abs(c), np.abs(x) @ np.abs(w))  # the terms of x @ w can cancel
    assert_vjp_matches_fd(lambda *p: D.dense(*p), primals, tangents, c, grads, magnitude)
