"""The embedding oracle (reference/embedding.py): its VJP against central finite differences,
forward and gradient against F.embedding in float64, the scatter-add and padding_idx by hand,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import embedding as E
from tests.fd import EPS, assert_vjp_matches_fd, raises_for, seeded
from tests.optional import need


def _case(data):
    v = data.draw(st.integers(1, 5), label="V")
    e = data.draw(st.integers(1, 3), label="E")
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
                      label="ids shape")
    ids = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, v - 1)), label="ids")
    pad = data.draw(st.none() | st.integers(-v, v - 1), label="padding_idx")
    return seeded(data, (v, e), 1.0, "weight"), ids, pad


@given(data=st.data())
def test_embedding_vjp_matches_fd(data):
    weight, ids, pad = _case(data)
    g = seeded(data, ids.shape + (weight.shape[1],), 1.0, "cotangent")
    (dw,) = E.embedding_vjp(weight, ids, g, pad)
    t = seeded(data, weight.shape, 1.0, "tangent")
    if pad is not None:
        # the padding row's gradient is 0 by convention, not its derivative: hold it fixed
        t[pad] = 0.0
    assert_vjp_matches_fd(lambda w: E.embedding(w, ids, pad), [weight], [t], g, [dw])


@given(data=st.data())
def test_embedding_matches_torch(data):
    torch = need("torch", reason="the PyTorch comparison needs torch")
    weight, ids, pad = _case(data)
    g = seeded(data, ids.shape + (weight.shape[1],), 1.0, "cotangent")
    tw = torch.tensor(weight, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=pad)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(E.embedding(weight, ids, pad), ty.detach().numpy())
    # a sum of at most ids.size terms, in another order
    (dw,) = E.embedding_vjp(weight, ids, g, pad)
    tol = ids.size * EPS * np.abs(g).sum()
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=0, atol=tol)


def test_repeated_ids_add_up_and_padding_row_gets_nothing():
    weight = np.arange(8.0).reshape(4, 2)
    ids = np.array([[1, 3, 1], [1, 0, 3]])
    y = E.embedding(weight, ids, padding_idx=3)
    np.testing.assert_array_equal(y[0, 1], weight[3])  # the forward returns the padding row
    g = np.arange(12.0).reshape(2, 3, 2) + 1.0
    (dw,) = E.embedding_vjp(weight, ids, g, padding_idx=3)
    np.testing.assert_array_equal(dw, [[9.0, 10.0], [1 + 5 + 7, 2 + 6 + 8], [0, 0], [0, 0]])
    (dw,) = E.embedding_vjp(weight, ids, g, padding_idx=-1)  # -1 is row 3 too
    np.testing.assert_array_equal(dw[3], [0.0, 0.0])
    (dw,) = E.embedding_vjp(weight, ids, g)
    np.testing.assert_array_equal(dw[3], [3 + 11, 4 + 12])


W = np.ones((4, 2))
BAD = [
    ("weight", lambda: E.embedding(np.ones(4), np.array([0]))),
    ("weight", lambda: E.embedding(np.full((4, 2), np.nan), np.array([0]))),
    ("ids", lambda: E.embedding(W, np.array([0.0, 1.0]))),
    ("ids", lambda: E.embedding(W, np.array([0, 4]))),
    ("ids", lambda: E.embedding(W, np.array([-1, 0]))),
    ("padding_idx", lambda: E.embedding(W, np.array([0]), padding_idx=4)),
    ("padding_idx", lambda: E.embedding(W, np.array([0]), padding_idx=-5)),
    ("padding_idx", lambda: E.embedding(W, np.array([0]), padding_idx=1.0)),
    ("padding_idx", lambda: E.embedding(W, np.array([0]), padding_idx=True)),
    ("g", lambda: E.embedding_vjp(W, np.array([0, 1]), np.ones((2, 3)))),
    ("g", lambda: E.embedding_vjp(W, np.array([0, 1]), np.ones(2))),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_embedding_rejects(arg, call):
    with raises_for(arg):
        call()
