"""Gradient clipping (reference/clipping.py): by global norm in the torch and optax
conventions against torch.nn.utils.clip_grad_norm_ and optax.clip_by_global_norm in float64,
by value against clip_grad_value_, the properties (direction kept, norm at most max_norm,
small gradients untouched), the zero cases by hand, and bad input.

Rounding: the global norm is a sum of m squares (m elements) and a square root, wrong by
(m + 2) eps relative; the scale and the products add a few eps. Two implementations: twice.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import clipping as Cl
from tests.fd import EPS, raises_for, seeded
from tests.optional import need


def _grads(data, shapes=None):
    """1 to 3 arrays of drawn shapes (or ``shapes``), of a drawn scale."""
    scale = data.draw(st.sampled_from([1e-3, 1.0, 1e3]), label="scale")
    if shapes is None:
        k = data.draw(st.integers(1, 3), label="arrays")
        shapes = [data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                            label=f"shape{j}") for j in range(k)]
    return [seeded(data, s, scale, f"g{j}") for j, s in enumerate(shapes)]


def _max_norm(data, grads):
    """Below, near or above the gradients' norm, or 0."""
    n = Cl.global_norm(grads)
    return data.draw(st.sampled_from([0.0, 0.5 * n, n, n * (1 + 1e-7), 2.0 * n, 1.0]),
                     label="max_norm")


def _tol(grads) -> float:
    """The norm sums m squares (m eps relative, doubled for the square root and the scale),
    plus a few roundings of the scale and the product."""
    m = sum(np.size(g) for g in grads)
    return 2 * (m + 8) * EPS


@given(data=st.data())
def test_clip_by_global_norm_matches_torch(data):
    torch = need("torch", reason="the PyTorch comparison needs torch")
    grads = _grads(data)
    max_norm = _max_norm(data, grads)
    ps = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g)
        ps.append(p)
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    got = Cl.clip_by_global_norm(grads, max_norm, eps="torch")
    tol = _tol(grads)
    assert Cl.global_norm(grads) == pytest.approx(float(total), rel=tol, abs=0)
    for a, p in zip(got, ps, strict=True):
        np.testing.assert_allclose(a, p.grad.numpy(), rtol=tol, atol=0)


def _optax():
    need("optax", reason="the optax comparison needs optax")
    import jax
    import optax

    jax.config.update("jax_enable_x64", True)  # as the jax adapter does
    return jax, optax


@given(data=st.data())
def test_clip_by_global_norm_matches_optax(data):
    jax, optax = _optax()
    grads = _grads(data, [(3,), (2, 2)])  # fixed shapes: JAX compiles its ops once
    max_norm = _max_norm(data, grads)
    tx = optax.clip_by_global_norm(max_norm)
    tree = [jax.numpy.asarray(g, dtype=jax.numpy.float64) for g in grads]
    out, _ = tx.update(tree, tx.init(tree))
    got = Cl.clip_by_global_norm(grads, max_norm, eps="optax")
    tol = _tol(grads)
    for a, b in zip(got, out, strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=tol, atol=0)


@pytest.mark.parametrize("eps", Cl.CLIP_EPS)
@given(data=st.data())
def test_clipping_keeps_direction_and_bounds_the_norm(data, eps):
    grads = _grads(data)
    max_norm = _max_norm(data, grads)
    n = Cl.global_norm(grads)
    got = Cl.clip_by_global_norm(grads, max_norm, eps=eps)
    tol = _tol(grads)
    # one scale s in [0, 1] for every array
    flat_g = np.concatenate([np.ravel(g) for g in grads])
    flat = np.concatenate([np.ravel(a) for a in got])
    s = float(np.dot(flat, flat_g) / np.dot(flat_g, flat_g))
    assert 0.0 <= s <= 1.0 + tol
    np.testing.assert_allclose(flat, s * flat_g, rtol=tol, atol=0)
    assert Cl.global_norm(got) <= max_norm * (1 + tol) or Cl.global_norm(got) == n <= max_norm
    keep = n < max_norm if eps == "optax" else n + Cl.TORCH_EPS <= max_norm
    if keep:
        for a, g in zip(got, grads, strict=True):
            np.testing.assert_array_equal(a, g)
    for a, g in zip(got, grads, strict=True):
        assert not np.shares_memory(a, g)


def test_norm_at_max_norm():
    """torch shrinks a gradient of norm exactly max_norm by max_norm / (max_norm + 1e-6);
    optax rescales it to max_norm (the same up to rounding)."""
    grads = [np.array([3.0]), np.array([[4.0]])]  # norm 5 exactly
    torch_ = Cl.clip_by_global_norm(grads, 5.0, eps="torch")
    np.testing.assert_allclose(torch_[0], [3.0 * 5.0 / (5.0 + 1e-6)], rtol=4 * EPS)
    optax_ = Cl.clip_by_global_norm(grads, 5.0, eps="optax")
    np.testing.assert_allclose(optax_[1], [[4.0]], rtol=4 * EPS)


@pytest.mark.parametrize("eps", Cl.CLIP_EPS)
def test_zero_cases_have_no_nan(eps):
    zeros = [np.zeros(3), np.zeros((2, 2))]
    for max_norm in (0.0, 1.0):
        out = Cl.clip_by_global_norm(zeros, max_norm, eps=eps)
        for a, z in zip(out, zeros, strict=True):
            np.testing.assert_array_equal(a, z)
    out = Cl.clip_by_global_norm([np.array([1.0, -2.0])], 0.0, eps=eps)
    np.testing.assert_array_equal(out[0], [0.0, -0.0])
    assert Cl.clip_by_global_norm([], 1.0, eps=eps) == []
    assert Cl.global_norm([]) == 0.0


@given(data=st.data())
def test_clip_by_value_matches_torch(data):
    torch = need("torch", reason="the PyTorch comparison needs torch")
    grads = _grads(data)
    v = data.draw(st.sampled_from([0.0, 1e-3, 0.5, 2.0]), label="clip_value")
    ps = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g)
        ps.append(p)
    torch.nn.utils.clip_grad_value_(ps, v)
    for a, p, g in zip(Cl.clip_by_value(grads, v), ps, grads, strict=True):
        np.testing.assert_array_equal(a, p.grad.numpy())
        np.testing.assert_array_equal(a, np.minimum(np.maximum(g, -v), v))


def test_clip_by_value_by_hand():
    out = Cl.clip_by_value([np.array([-3.0, -0.5, 0.0, 0.25, math.inf])], 0.5)
    np.testing.assert_array_equal(out[0], [-0.5, -0.5, 0.0, 0.25, 0.5])


BAD = [
    ("max_norm", lambda: Cl.clip_by_global_norm([np.ones(2)], -1.0)),
    ("max_norm", lambda: Cl.clip_by_global_norm([np.ones(2)], math.nan)),
    ("eps", lambda: Cl.clip_by_global_norm([np.ones(2)], 1.0, eps="keras")),
    ("eps", lambda: Cl.clip_by_global_norm([np.ones(2)], 1.0, eps=1e-6)),
    ("grads", lambda: Cl.clip_by_global_norm(np.ones(2), 1.0)),
    ("grads", lambda: Cl.clip_by_global_norm([np.ones(2), np.array([np.nan])], 1.0)),
    ("grads", lambda: Cl.clip_by_global_norm([np.array([math.inf])], 1.0)),
    ("grads", lambda: Cl.global_norm(np.ones(2))),
    ("clip_value", lambda: Cl.clip_by_value([np.ones(2)], -0.1)),
    ("grads", lambda: Cl.clip_by_value([np.array([np.nan])], 1.0)),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_clipping_rejects(arg, call):
    with raises_for(arg):
        call()
