"""Regularization (reference/regularization.py): dropout and channel dropout against torch's
F.dropout / F.dropout2d and flax.linen.Dropout in float64 on the mask each drew (recovered
from its output), bit for bit; their VJPs against finite differences and the frameworks'
autograd; values by hand; the L1 and L2 penalties against keras.regularizers and torch's abs
backward; the weight-decay equivalences with reference/optimizers.py; and bad input.

Rounding: dropout is one multiplication by fl(1 / (1 - p)) in the oracle, in torch and (XLA
on CPU) in flax, so they agree exactly; a division by (1 - p) would differ in the last bit
for about a quarter of the kept elements (module doc). A penalty sums m terms: m eps relative
(all terms are non-negative), plus a rounding or two for the factor and the square; twice
for two implementations.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference import regularization as R
from reference.optimizers import adam, adamw, sgd
from tests.fd import EPS, assert_vjp_matches_fd, raises_for, seeded, small_shapes
from tests.optional import need, need_keras

PS = [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9, 1.0]


def _x(data, shape):
    """Standard normal draws without zeros (a kept zero would look dropped)."""
    x = seeded(data, shape, 1.0, "x")
    assume(np.all(x != 0))
    return x


def _torch():
    return need("torch", reason="the PyTorch comparison needs torch")


def _torch_dropout(data, fn, x, p, g):
    """(y, dx): ``fn`` in float64 on torch's generator seeded from a draw, and the gradient of
    <y, g>."""
    torch = _torch()
    torch.manual_seed(data.draw(st.integers(0, 2**31 - 1), label="torch seed"))
    xt = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout2d's 3-D input warning
        y = fn(xt, p=p, training=True)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy()


# --------------------------------------------------------------------------- dropout

@given(data=st.data())
def test_dropout_matches_torch(data):
    torch = _torch()
    shape = data.draw(small_shapes, label="shape")
    p = data.draw(st.sampled_from(PS), label="p")
    x, g = _x(data, shape), seeded(data, shape, 1.0, "g")
    y, dx = _torch_dropout(data, torch.nn.functional.dropout, x, p, g)
    mask = R.mask_from_output(x, y)
    if p == 0:
        np.testing.assert_array_equal(mask, 1.0)
    np.testing.assert_array_equal(R.dropout(x, mask, p), y)
    np.testing.assert_array_equal(R.dropout_vjp(x, g, mask, p)[0], dx)


def _flax():
    need("flax", reason="the flax comparison needs flax")
    import jax
    from flax import linen

    jax.config.update("jax_enable_x64", True)  # as the jax adapter does
    return jax, linen


@functools.cache
def _flax_layer(p, broadcast_dims):
    """(y, dx) = jit(vjp of flax.linen.Dropout)(x, g, key), compiled once per configuration."""
    jax, linen = _flax()
    layer = linen.Dropout(p, broadcast_dims=broadcast_dims, deterministic=False)

    def run(x, g, key):
        y, vjp = jax.vjp(lambda a: layer.apply({}, a, rngs={"dropout": key}), x)
        return y, vjp(g)[0]

    return jax.jit(run), run


def _flax_dropout(data, x, p, g, broadcast_dims=(), jit=True):
    """(y, dx) of flax.linen.Dropout in float64 on a key from a draw."""
    jax, _ = _flax()
    key = jax.random.key(data.draw(st.integers(0, 2**31 - 1), label="key"))
    fn = _flax_layer(p, broadcast_dims)[0 if jit else 1]
    y, dx = fn(jax.numpy.asarray(x), jax.numpy.asarray(g), key)
    return np.asarray(y), np.asarray(dx)


@given(data=st.data())
def test_dropout_matches_flax(data):
    p = data.draw(st.sampled_from(PS), label="p")
    x, g = _x(data, (3, 4)), seeded(data, (3, 4), 1.0, "g")  # one shape: JAX compiles once
    y, dx = _flax_dropout(data, x, p, g)
    mask = R.mask_from_output(x, y)
    np.testing.assert_array_equal(R.dropout(x, mask, p), y)
    np.testing.assert_array_equal(R.dropout_vjp(x, g, mask, p)[0], dx)


def test_flax_dropout_under_an_eager_vjp_divides():
    """Outside jit, jax.vjp's primal of flax's ``inputs / keep_prob`` is the correctly rounded
    division, not XLA's multiplication by the reciprocal (jit, or a plain apply): the two
    differ in the last bit for some elements, by at most 2 eps relative (the reciprocal's
    rounding and the product's)."""
    jax, _ = _flax()
    p = 0.1
    x = np.random.default_rng(0).standard_normal(64) + 3.0  # no zeros
    fn = _flax_layer(p, ())[1]
    y = np.asarray(fn(jax.numpy.asarray(x), jax.numpy.asarray(x), jax.random.key(0))[0])
    mask = R.mask_from_output(x, y)
    kept = mask == 1
    np.testing.assert_array_equal(y[kept], x[kept] / (1 - p))
    oracle = R.dropout(x, mask, p)
    assert np.any(oracle[kept] != y[kept])
    np.testing.assert_allclose(oracle, y, rtol=2 * EPS, atol=0)


def test_dropout_by_hand():
    x = np.array([1.0, -2.0, 3.0, 4.0])
    mask = np.array([1, 0, 1, 0])
    np.testing.assert_array_equal(R.dropout(x, mask, 0.5), [2.0, 0.0, 6.0, 0.0])
    np.testing.assert_array_equal(R.dropout(x, mask.astype(bool), 0.75), [4.0, 0.0, 12.0, 0.0])
    np.testing.assert_array_equal(R.dropout(x, mask, 0.5, training=False), x)
    np.testing.assert_array_equal(R.dropout(x, np.ones(4), 0.0), x)
    np.testing.assert_array_equal(R.dropout(x, np.ones(4), 1.0), np.zeros(4))
    np.testing.assert_array_equal(R.dropout_vjp(x, x, np.ones(4), 1.0)[0], np.zeros(4))
    np.testing.assert_array_equal(R.dropout_vjp(x, np.ones(4), mask, 0.5, training=False)[0],
                                  np.ones(4))
    # a dropped inf is 0 (flax's select; torch's product gives NaN, pytorch#59421)
    np.testing.assert_array_equal(R.dropout([math.inf, -math.inf], [0, 1], 0.5), [0.0, -math.inf])
    # x * fl(1 / (1 - p)): for x = 3, p = 0.1 it is not the correctly rounded x / 0.9
    assert 3.0 * (1 / 0.9) != 3.0 / 0.9
    assert R.dropout([3.0], [1], 0.1)[0] == 3.0 * (1 / 0.9)


@pytest.mark.parametrize("training", [True, False])
@given(data=st.data())
def test_dropout_vjp_matches_fd(data, training):
    shape = data.draw(small_shapes, label="shape")
    p = data.draw(st.sampled_from(PS), label="p")
    mask = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="mask")) \
        .integers(0, 2, size=shape)
    x, g, t = seeded(data, shape, 1.0, "x"), seeded(data, shape, 1.0, "g"), seeded(data, shape, 1.0, "t")
    grads = R.dropout_vjp(x, g, mask, p, training)
    assert_vjp_matches_fd(lambda a: R.dropout(a, mask, p, training), [x], [t], g, grads)


# --------------------------------------------------------------------------- channel dropout

SPATIAL = [(2, 3), (3,)]
"""(H, W) for 4-D input, (L,) for 3-D input (torch's (N, C, L) reading)."""


def _channel_mask(x, y):
    """The (N, C) mask of a channel-dropout output; every spatial position agrees."""
    full = R.mask_from_output(x, y)
    first = full[(slice(None), slice(None)) + (0,) * (x.ndim - 2)]
    np.testing.assert_array_equal(full, first.reshape(first.shape + (1,) * (x.ndim - 2))
                                  * np.ones_like(full))
    return first


@pytest.mark.parametrize("spatial", SPATIAL, ids=["NCHW", "NCL"])
@given(data=st.data())
def test_dropout2d_matches_torch(data, spatial):
    torch = _torch()
    n, c = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 4), label="C")
    shape = (n, c, *spatial)
    p = data.draw(st.sampled_from(PS), label="p")
    x, g = _x(data, shape), seeded(data, shape, 1.0, "g")
    y, dx = _torch_dropout(data, torch.nn.functional.dropout2d, x, p, g)
    mask = _channel_mask(x, y)
    np.testing.assert_array_equal(R.dropout2d(x, mask, p), y)
    np.testing.assert_array_equal(R.dropout2d_vjp(x, g, mask, p)[0], dx)


@pytest.mark.parametrize("spatial", SPATIAL, ids=["NCHW", "NCL"])
@given(data=st.data())
def test_dropout2d_matches_flax_broadcast_dims(data, spatial):
    shape = (2, 3, *spatial)
    p = data.draw(st.sampled_from(PS), label="p")
    x, g = _x(data, shape), seeded(data, shape, 1.0, "g")
    y, dx = _flax_dropout(data, x, p, g, broadcast_dims=tuple(range(2, len(shape))))
    mask = _channel_mask(x, y)
    np.testing.assert_array_equal(R.dropout2d(x, mask, p), y)
    np.testing.assert_array_equal(R.dropout2d_vjp(x, g, mask, p)[0], dx)


def test_dropout2d_by_hand():
    x = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    y = R.dropout2d(x, [[0, 1]], 0.5)
    np.testing.assert_array_equal(y[0, 0], np.zeros((2, 2)))
    np.testing.assert_array_equal(y[0, 1], [[10.0, 12.0], [14.0, 16.0]])
    x3 = np.arange(1.0, 7.0).reshape(1, 2, 3)
    np.testing.assert_array_equal(R.dropout2d(x3, [[1, 0]], 0.5), [[[2.0, 4.0, 6.0], [0, 0, 0]]])
    np.testing.assert_array_equal(R.dropout2d(x3, [[1, 0]], 0.5, training=False), x3)
    np.testing.assert_array_equal(R.dropout2d(x3, [[1, 1]], 1.0), np.zeros_like(x3))


@pytest.mark.parametrize("spatial", SPATIAL, ids=["NCHW", "NCL"])
@pytest.mark.parametrize("training", [True, False])
@given(data=st.data())
def test_dropout2d_vjp_matches_fd(data, spatial, training):
    shape = (2, 3, *spatial)
    p = data.draw(st.sampled_from(PS), label="p")
    mask = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="mask")) \
        .integers(0, 2, size=(2, 3))
    x, g, t = seeded(data, shape, 1.0, "x"), seeded(data, shape, 1.0, "g"), seeded(data, shape, 1.0, "t")
    grads = R.dropout2d_vjp(x, g, mask, p, training)
    assert_vjp_matches_fd(lambda a: R.dropout2d(a, mask, p, training), [x], [t], g, grads)


@given(data=st.data())
def test_mask_from_output_recovers_the_mask(data):
    shape = data.draw(small_shapes, label="shape")
    p = data.draw(st.sampled_from(PS[:-1]), label="p")
    mask = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="mask")) \
        .integers(0, 2, size=shape)
    x = _x(data, shape)
    np.testing.assert_array_equal(R.mask_from_output(x, R.dropout(x, mask, p)), mask)


# --------------------------------------------------------------------------- penalties

LAMS = [0.0, 0.25, 0.01, 1e-4, 3.0]


def _penalty_tol(w) -> float:
    """m non-negative terms summed: m eps relative; the square and the factor: 2 more; twice
    for two implementations."""
    return 2 * (np.size(w) + 2) * EPS


@given(data=st.data())
def test_penalties_match_keras_regularizers(data):
    keras = need_keras()
    torch = _torch()
    w = seeded(data, data.draw(small_shapes, label="shape"), 2.0, "w")
    l1, l2 = data.draw(st.sampled_from(LAMS), label="l1"), data.draw(st.sampled_from(LAMS), label="l2")
    wt = torch.tensor(w)
    tol = _penalty_tol(w)
    want = R.l1_penalty(w, l1) + R.l2_penalty(w, l2, "full")
    assert float(keras.regularizers.L1L2(l1, l2)(wt)) == pytest.approx(want, rel=tol, abs=0)
    assert float(keras.regularizers.L2(l2)(wt)) == pytest.approx(R.l2_penalty(w, l2, "full"),
                                                                  rel=tol, abs=0)
    # keras.regularizers.L1 keeps its factor as a float32 tensor (convert_to_tensor of a
    # Python float), even for float64 weights; L2 and L1L2 keep the Python float
    l1_32 = float(np.float32(l1))
    assert float(keras.regularizers.L1(l1)(wt)) == pytest.approx(R.l1_penalty(w, l1_32), rel=tol, abs=0)


def test_keras_l1_rounds_its_factor_to_float32():
    keras = need_keras()
    torch = _torch()
    w = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64)  # sum |w| = 4 exactly
    assert float(keras.regularizers.L1L2(l1=0.01)(w)) == R.l1_penalty(w.numpy(), 0.01) == 0.01 * 4.0
    assert float(keras.regularizers.L1(0.01)(w)) == float(np.float32(0.01)) * 4.0 != 0.04


@given(data=st.data())
def test_penalty_vjps_match_fd(data):
    shape = data.draw(small_shapes, label="shape")
    lam = data.draw(st.sampled_from(LAMS), label="lam")
    w, t = seeded(data, shape, 2.0, "w"), seeded(data, shape, 1.0, "t")
    assume(np.all(np.abs(w) > 1e-3))  # away from |w|'s kink at 0
    g = data.draw(st.sampled_from([1.0, -0.5, 2.0]), label="g")
    assert_vjp_matches_fd(lambda a: R.l1_penalty(a, lam), [w], [t], g, R.l1_penalty_vjp(w, g, lam))
    for conv in R.L2_CONVENTIONS:
        assert_vjp_matches_fd(lambda a, c=conv: R.l2_penalty(a, lam, c), [w], [t], g,
                              R.l2_penalty_vjp(w, g, lam, conv))


@given(data=st.data())
def test_penalty_vjps_match_torch_autograd(data):
    """Including exact zeros, where torch's abs backward gives sign(0) = 0."""
    torch = _torch()
    shape = data.draw(small_shapes, label="shape")
    w = seeded(data, shape, 2.0, "w")
    w[np.random.default_rng(0).random(shape) < 0.3] = 0.0
    lam = data.draw(st.sampled_from(LAMS), label="lam")
    wt = torch.tensor(w, requires_grad=True)
    (lam * wt.abs().sum() + (lam / 2) * (wt * wt).sum() + lam * (wt * wt).sum()).backward()
    got = (R.l1_penalty_vjp(w, 1.0, lam)[0] + R.l2_penalty_vjp(w, 1.0, lam, "half")[0]
           + R.l2_penalty_vjp(w, 1.0, lam, "full")[0])
    # three terms of at most lam (1 + 2 |w|) each, a few roundings each and two additions
    tol = 8 * EPS * lam * (1 + 4 * np.abs(w))
    assert np.all(np.abs(got - wt.grad.numpy()) <= tol)
    np.testing.assert_array_equal(R.l1_penalty_vjp(w, 1.0, lam)[0][w == 0], 0.0)


def test_penalties_by_hand():
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert R.l1_penalty(w, 0.5) == 3.0
    assert R.l2_penalty(w, 0.5) == 3.5  # (0.5 / 2) * 14
    assert R.l2_penalty(w, 0.5, "full") == 7.0
    np.testing.assert_array_equal(R.l1_penalty_vjp(w, 2.0, 0.5)[0], [[1.0, -1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(R.l2_penalty_vjp(w, 1.0, 0.5)[0], 0.5 * w)
    np.testing.assert_array_equal(R.l2_penalty_vjp(w, 1.0, 0.5, "full")[0], w)


# --------------------------------------------------------------------------- weight decay

def _steps(data, shapes, k=3):
    """Initial params and k gradients per array."""
    params = [seeded(data, s, 1.0, f"p{i}") for i, s in enumerate(shapes)]
    grads = [[seeded(data, s, 1.0, f"g{t}.{i}") for i, s in enumerate(shapes)] for t in range(k)]
    return params, grads


@given(data=st.data())
def test_sgd_weight_decay_is_the_gradient_of_the_half_l2_penalty(data):
    """SGD(weight_decay=wd) on g is SGD on g + d/dw l2_penalty(w, wd, 'half'), bit for bit:
    both add wd w to g before the same update."""
    wd = data.draw(st.sampled_from([1e-4, 0.01, 0.5]), label="wd")
    momentum = data.draw(st.sampled_from([0.0, 0.9]), label="momentum")
    nesterov = momentum > 0 and data.draw(st.booleans(), label="nesterov")
    params, grads = _steps(data, [(3,), (2, 2)])
    decayed, plain = sgd(0.1, momentum, nesterov=nesterov, weight_decay=wd), sgd(0.1, momentum,
                                                                                  nesterov=nesterov)
    p1, s1, p2, s2 = params, decayed.init(params), params, plain.init(params)
    for g in grads:
        p1, s1 = decayed.update(g, s1, p1)
        penalised = [gi + R.l2_penalty_vjp(pi, 1.0, wd, "half")[0] for gi, pi in zip(g, p2, strict=True)]
        p2, s2 = plain.update(penalised, s2, p2)
        for a, b in zip(p1, p2, strict=True):
            np.testing.assert_array_equal(a, b)


def test_adamw_is_not_adam_with_an_l2_penalty():
    """One step from w = 1 with a zero loss gradient, lr = wd = 0.1. Adam on the penalised
    gradient g = wd w = 0.1: m_hat = 0.1, v_hat = 0.01, w <- 1 - lr 0.1 / (0.1 + eps) ~ 0.9,
    a full normalised step. AdamW: w <- w (1 - lr wd) - lr 0 = 0.99."""
    lr, wd, eps = 0.1, 0.1, 1e-8
    w, g = [np.array([1.0])], [np.array([0.0])]
    opt = adam(lr, eps=eps)
    penalised = [g[0] + R.l2_penalty_vjp(w[0], 1.0, wd, "half")[0]]
    l2_step, _ = opt.update(penalised, opt.init(w), w)
    opt_w = adamw(lr, eps=eps, weight_decay=wd)
    decoupled, _ = opt_w.update(g, opt_w.init(w), w)
    # a handful of roundings on values of order 1
    np.testing.assert_allclose(l2_step[0], [1.0 - lr * 0.1 / (0.1 + eps)], rtol=0, atol=8 * EPS)
    np.testing.assert_allclose(decoupled[0], [1.0 - lr * wd], rtol=0, atol=8 * EPS)
    assert abs(l2_step[0][0] - decoupled[0][0]) > 0.08
    # and Adam's own L2 mode is exactly Adam on the penalised gradient
    opt_l2 = adam(lr, eps=eps, weight_decay=wd)
    np.testing.assert_array_equal(opt_l2.update(g, opt_l2.init(w), w)[0][0], l2_step[0])


# --------------------------------------------------------------------------- bad input

BAD = [
    ("p", lambda: R.dropout(np.ones(2), np.ones(2), 1.5)),
    ("p", lambda: R.dropout(np.ones(2), np.ones(2), -0.1)),
    ("mask", lambda: R.dropout(np.ones(2), np.ones(3), 0.5)),
    ("mask", lambda: R.dropout(np.ones(2), [0.5, 1.0], 0.5)),
    ("mask", lambda: R.dropout(np.ones(2), [np.nan, 1.0], 0.5)),
    ("x", lambda: R.dropout([np.nan, 1.0], np.ones(2), 0.5)),
    ("g", lambda: R.dropout_vjp(np.ones(2), np.ones(3), np.ones(2), 0.5)),
    ("x", lambda: R.dropout2d(np.ones((2, 3)), np.ones((2, 3)), 0.5)),
    ("x", lambda: R.dropout2d(np.ones((1, 2, 3, 4, 5)), np.ones((1, 2)), 0.5)),
    ("mask", lambda: R.dropout2d(np.ones((2, 3, 4)), np.ones((2, 3, 4)), 0.5)),
    ("mask", lambda: R.dropout2d(np.ones((2, 3, 4, 4)), np.ones((3, 2)), 0.5)),
    ("g", lambda: R.dropout2d_vjp(np.ones((2, 3, 4)), np.ones((2, 3)), np.ones((2, 3)), 0.5)),
    ("x", lambda: R.mask_from_output(np.array([1.0, 0.0]), np.array([2.0, 0.0]))),
    ("y", lambda: R.mask_from_output(np.ones(2), np.ones(3))),
    ("lam", lambda: R.l1_penalty(np.ones(2), -0.1)),
    ("lam", lambda: R.l2_penalty(np.ones(2), math.inf)),
    ("convention", lambda: R.l2_penalty(np.ones(2), 0.1, "keras")),
    ("convention", lambda: R.l2_penalty_vjp(np.ones(2), 1.0, 0.1, "l2")),
    ("g", lambda: R.l1_penalty_vjp(np.ones(2), np.ones(2), 0.1)),
    ("w", lambda: R.l2_penalty([np.nan], 0.1)),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_regularization_rejects(arg, call):
    with raises_for(arg):
        call()
