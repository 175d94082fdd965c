"""The batch-norm oracle (reference/batchnorm.py) against a naive float64 loop written here,
against PyTorch float64 where it is installed, its VJP against central finite differences
(tests/fd.py), and its conventions and accuracy by hand.

Rounding bounds: a recursive sum of m terms is wrong by at most (m - 1) eps sum |terms| (to
first order, in any summation order), and each further operation by eps of its result. Where
two float64 implementations are compared both err, so the bounds count both.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties import specs
from properties.checks import expected_and_tolerance
from properties.tolerance import TINY
from reference import batchnorm as B
from tests.fd import EPS, assert_vjp_matches_fd, dot, raises_for, seeded
from tests.optional import need

# --------------------------------------------------------------------------- naive loop

def naive_batch_norm(x, weight, bias, rm, rv, training, momentum, eps, convention, unbiased):
    """Channel by channel with math.fsum (correctly rounded sums)."""
    c = x.shape[1]
    y, new_rm, new_rv = np.empty(x.shape), np.array(rm, dtype=float), np.array(rv, dtype=float)
    for ch in range(c):
        vals = x[:, ch].ravel()
        n = vals.size
        if training:
            mu = math.fsum(vals) / n
            var = math.fsum((v - mu) ** 2 for v in vals) / n
            stat_var = var * n / (n - 1) if unbiased else var
            keep = 1 - momentum if convention == "torch" else momentum
            new_rm[ch] = keep * rm[ch] + (1 - keep) * mu
            new_rv[ch] = keep * rv[ch] + (1 - keep) * stat_var
        else:
            mu, var = rm[ch], rv[ch]
        w = 1.0 if weight is None else weight[ch]
        b = 0.0 if bias is None else bias[ch]
        y[:, ch] = (x[:, ch] - mu) / math.sqrt(var + eps) * w + b
    return y, new_rm, new_rv


# --------------------------------------------------------------------------- strategies and bounds

def _bn_case(data, shape_4d: bool, affine: bool):
    if shape_4d:
        shape = (data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 3), label="C"),
                 data.draw(st.integers(1, 3), label="H"), data.draw(st.integers(1, 3), label="W"))
    else:
        shape = (data.draw(st.integers(2, 6), label="N"), data.draw(st.integers(1, 3), label="C"))
    c = shape[1]
    spread = data.draw(st.sampled_from([0.1, 1.0, 10.0]), label="spread")
    offset = seeded(data, (c,), 3.0 * spread, "offset")
    x = seeded(data, shape, spread, "x") + offset.reshape((1, c) + (1,) * (len(shape) - 2))
    weight = seeded(data, (c,), 1.0, "weight") if affine else None
    bias = seeded(data, (c,), 1.0, "bias") if affine else None
    rm = seeded(data, (c,), 1.0, "running_mean")
    rv = np.abs(seeded(data, (c,), 1.0, "running_var")) + 0.1
    momentum = data.draw(st.sampled_from([0.0, 0.1, 0.9, 1.0]), label="momentum")
    eps = data.draw(st.sampled_from([1e-5, 1e-3]), label="eps")
    return x, weight, bias, rm, rv, momentum, eps


def _per_channel(v, x):
    return np.asarray(v).reshape((1, -1) + (1,) * (x.ndim - 2))


def _bn_stats(x, eps):
    """Per channel: n, mu, var, A = max|x|, Xc = max|x - mu|, s = sqrt(var + eps) (NumPy)."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    mu = x.mean(axis=axes)
    xc = x - _per_channel(mu, x)
    var = (xc * xc).mean(axis=axes)
    return (x.size // x.shape[1], mu, var, np.abs(x).max(axis=axes), np.abs(xc).max(axis=axes),
            np.sqrt(var + eps))


def _bn_magnitude(x, weight, bias, rm, rv, training, eps, variance="two_pass"):
    """Per element, the magnitude M that y's rounding is a multiple of eps times (_bn_bounds).
    The fast variance adds |d var| <= 2 (n + 3) eps E[x^2], moving y by |w| Xc |d var| / (2 s^3):
    M gains |w| Xc E[x^2] / s^3."""
    c = x.shape[1]
    w = np.ones(c) if weight is None else np.abs(weight)
    b = np.zeros(c) if bias is None else np.abs(bias)
    if not training:
        s = np.sqrt(rv + eps)
        return (_per_channel(w / s, x) * (np.abs(x) + _per_channel(np.abs(rm), x))
                + _per_channel(b, x))
    _, _, _, a, big_xc, s = _bn_stats(x, eps)
    m = w * (a / s + (big_xc / s) * (1 + big_xc * a / s**2)) + b
    if variance == "fast":
        m = m + w * big_xc * _mean_square(x) / s**3
    return np.broadcast_to(_per_channel(m, x), x.shape)


def _mean_square(x):
    """E[x^2] per channel."""
    return (x * x).mean(axis=(0,) if x.ndim == 2 else (0, 2, 3))


def _bn_bounds(x, weight, bias, rm, rv, training, eps, implementations: int,
               variance="two_pass"):
    """Rounding bounds for (y, running_mean, running_var), per element / per channel.

    Training, per channel (_bn_stats): |d mu| <= (n + 1) eps A; |d var| <= (n + 3) eps var +
    2 (n + 2) eps Xc A (xc carries d mu). y = xc (w / s) + b: d mu moves it by |w| |d mu| / s,
    d var by |w| (Xc / s) |d var| / (2 s^2), and the final steps (sqrt, division, two products,
    the sum) by 6 eps (|w| Xc / s + |b|): all within (n + 8) eps M, with
    M = |w| (A / s + (Xc / s)(1 + Xc A / s^2)) + |b|. The running statistics add 3 eps of their
    terms to |d mu| and to twice |d var| (the factor n / (n - 1) <= 2).
    Eval: y = (x - rm) / sqrt(rv + eps) w + b: 7 roundings, within 7 eps M with
    M = |w| (|x| + |rm|) / s + |b|. The fast variance: see _bn_magnitude."""
    m = _bn_magnitude(x, weight, bias, rm, rv, training, eps, variance)
    if not training:
        return implementations * 7 * EPS * m, 0.0, 0.0
    n, mu, var, a, big_xc, _ = _bn_stats(x, eps)
    d_var = (n + 3) * EPS * var + 2 * (n + 2) * EPS * big_xc * a
    if variance == "fast":
        d_var = d_var + 2 * (n + 3) * EPS * _mean_square(x)
    rm_tol = (n + 1) * EPS * a + 3 * EPS * (np.abs(rm) + np.abs(mu))
    rv_tol = 2 * d_var + 3 * EPS * (np.abs(rv) + 2 * var)
    return implementations * (n + 8) * EPS * m, implementations * rm_tol, implementations * rv_tol


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("convention", B.MOMENTUM_CONVENTIONS)
@pytest.mark.parametrize("shape_4d", [True, False], ids=["NCHW", "NC"])
@given(data=st.data())
def test_batch_norm_matches_naive(data, shape_4d, convention, training):
    affine = data.draw(st.booleans(), label="affine")
    x, weight, bias, rm, rv, momentum, eps = _bn_case(data, shape_4d, affine)
    unbiased = data.draw(st.booleans(), label="unbiased_running_var")
    if training:
        assume(x.size // x.shape[1] >= 2)
    y, new_rm, new_rv = B.batch_norm(x, weight, bias, rm, rv, training, momentum, eps, convention,
                                     unbiased)
    want = naive_batch_norm(x, weight, bias, rm, rv, training, momentum, eps, convention, unbiased)
    # the naive loop's sums are exact (fsum), but its last steps round as the oracle's do:
    # count two implementations
    y_tol, rm_tol, rv_tol = _bn_bounds(x, weight, bias, rm, rv, training, eps, 2)
    assert np.all(np.abs(y - want[0]) <= y_tol)
    if training:
        assert np.all(np.abs(new_rm - want[1]) <= rm_tol)
        assert np.all(np.abs(new_rv - want[2]) <= rv_tol)
    else:  # unchanged copies
        np.testing.assert_array_equal(new_rm, rm)
        np.testing.assert_array_equal(new_rv, rv)
        assert not np.shares_memory(new_rm, rm) and not np.shares_memory(new_rv, rv)


# --------------------------------------------------------------------------- against torch

def _torch():
    torch = need("torch", reason="the PyTorch comparisons need torch")
    return torch, torch.nn.functional


def _bn_vjp_bounds(x, weight, g, rm, rv, training, eps, implementations: int):
    """Rounding bounds for (dx, dweight, dbias).

    Training, per channel (_bn_stats; G = max|g|, Xh = Xc / s, E = (n + 8) eps): 1 / s is wrong
    by the relative r = E (1 + 2 Xc A / s^2) / 2 (|d var| / 2 s^2 and 3 roundings) and xhat by
    e = E (A / s + Xh (1 + Xc A / s^2)) (|d mu| / s, Xh r and 2 roundings). In
    w / s (g - mean g - xhat mean(g xhat)): mean g is wrong by (n + 1) eps G, mean(g xhat) by
    G (e + (n + 1) eps Xh), its product with xhat by G (2 Xh e + (n + 2) eps Xh^2), the
    subtractions by 2 eps G (2 + Xh^2); the bracket (at most G (2 + Xh^2)) is scaled by w / s,
    wrong by r + 4 eps. dweight = sum g xhat: n G (e + (n + 1) eps Xh); dbias = sum g:
    n eps sum|g|. Eval: dx = g w / sqrt(rv + eps): 5 roundings; dweight = sum g (x - rm) / s:
    (n + 4) eps sum |g| (|x| + |rm|) / s."""
    c = x.shape[1]
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    w = np.ones(c) if weight is None else np.abs(weight)
    abs_g = np.abs(g)
    n = x.size // c
    db_tol = n * EPS * abs_g.sum(axis=axes)
    if not training:
        s = np.sqrt(rv + eps)
        dx_tol = 5 * EPS * abs_g * _per_channel(w / s, x)
        terms = abs_g * (np.abs(x) + _per_channel(np.abs(rm), x)) / _per_channel(s, x)
        dw_tol = (n + 4) * EPS * terms.sum(axis=axes)
    else:
        n, _, _, a, big_xc, s = _bn_stats(x, eps)
        big_g, xh, e_ = abs_g.max(axis=axes), big_xc / s, (n + 8) * EPS
        e_xh = e_ * (a / s + xh * (1 + big_xc * a / s**2))
        r = e_ * (1 + 2 * big_xc * a / s**2) / 2
        dx_c = (w / s) * big_g * (e_ * (1 + xh**2) + 2 * xh * e_xh + (2 + xh**2) * (4 * EPS + r))
        dx_tol = np.broadcast_to(_per_channel(dx_c, x), x.shape)
        dw_tol = n * big_g * (e_xh + (n + 1) * EPS * xh)
    return implementations * dx_tol, implementations * dw_tol, implementations * db_tol


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape_4d", [True, False], ids=["NCHW", "NC"])
@given(data=st.data())
def test_batch_norm_matches_torch(data, shape_4d, training):
    """Two steps of F.batch_norm (the torch momentum convention, unbiased running variance),
    which updates its running statistics in place: outputs, statistics and gradients."""
    torch, F = _torch()
    affine = data.draw(st.booleans(), label="affine")
    x, weight, bias, rm, rv, momentum, eps = _bn_case(data, shape_4d, affine)
    if training:
        assume(x.size // x.shape[1] >= 2)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    carried_rm = carried_rv = 0.0  # |keep| <= 1: earlier differences carry over at most whole
    for step, xs in enumerate((x, x[::-1] * 0.5 + 1.0)):
        g = seeded(data, xs.shape, 1.0, f"g{step}")
        tx = torch.tensor(xs, requires_grad=True)
        tw = None if weight is None else torch.tensor(weight, requires_grad=True)
        tb = None if bias is None else torch.tensor(bias, requires_grad=True)
        ty = F.batch_norm(tx, t_rm, t_rv, tw, tb, training, momentum, eps)
        ty.backward(torch.tensor(g))
        y, new_rm, new_rv = B.batch_norm(xs, weight, bias, rm, rv, training, momentum, eps)
        dx, dw, db = B.batch_norm_vjp(xs, weight, bias, g, rm, rv, training, momentum, eps)
        y_tol, rm_tol, rv_tol = _bn_bounds(xs, weight, bias, rm, rv, training, eps, 2)
        dx_tol, dw_tol, db_tol = _bn_vjp_bounds(xs, weight, g, rm, rv, training, eps, 2)
        assert np.all(np.abs(y - ty.detach().numpy()) <= y_tol)
        assert np.all(np.abs(dx - tx.grad.numpy()) <= dx_tol)
        if affine:
            assert np.all(np.abs(dw - tw.grad.numpy()) <= dw_tol)
            assert np.all(np.abs(db - tb.grad.numpy()) <= db_tol)
        else:
            assert dw is None and db is None
        carried_rm, carried_rv = carried_rm + rm_tol, carried_rv + rv_tol
        rm, rv = new_rm, new_rv
        assert np.all(np.abs(rm - t_rm.numpy()) <= carried_rm)
        assert np.all(np.abs(rv - t_rv.numpy()) <= carried_rv)


# --------------------------------------------------------------------------- VJP against FD

@pytest.mark.parametrize("variance", B.VARIANCES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("shape_4d", [True, False], ids=["NCHW", "NC"])
@given(data=st.data())
def test_batch_norm_vjp_matches_fd(data, shape_4d, affine, training, variance):
    x, weight, bias, rm, rv, momentum, eps = _bn_case(data, shape_4d, affine)
    if training:
        assume(x.size // x.shape[1] >= 2)
    c = seeded(data, x.shape, 1.0, "cotangent")
    dx, dw, db = B.batch_norm_vjp(x, weight, bias, c, rm, rv, training, momentum, eps,
                                  variance=variance)
    primals, grads = [x], [dx]
    if affine:
        primals += [weight, bias]
        grads += [dw, db]
    else:
        assert dw is None and db is None
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") for j, p in enumerate(primals)]

    def f(x, weight=None, bias=None):
        return B.batch_norm(x, weight, bias, rm, rv, training, momentum, eps,
                            variance=variance)[0]

    # y is wrong by at most (n + 8) eps M (_bn_bounds; n <= 27 here, so U = 64 eps covers it),
    # mostly through mu and var, where x - mu cancels: M weighted by |c|
    m = _bn_magnitude(x, weight, bias, rm, rv, training, eps, variance)
    assert_vjp_matches_fd(f, primals, tangents, c, grads, dot(np.abs(c), m))


# --------------------------------------------------------------------------- batch-norm conventions

def test_flax_momentum_convention_by_hand():
    """r <- momentum r + (1 - momentum) stat, with the biased variance (Flax's BatchNorm)."""
    rm, rv = np.zeros(1), np.ones(1)
    # step 1: x = [1, 3]: mean 2, biased var 1 -> mean 0.9 * 0 + 0.1 * 2 = 0.2, var 0.9 + 0.1 = 1
    _, rm, rv = B.batch_norm(np.array([[1.0], [3.0]]), None, None, rm, rv, momentum=0.9,
                             momentum_convention="flax", unbiased_running_var=False)
    # step 2: x = [0, 4]: mean 2, biased var 4 -> mean 0.9 * 0.2 + 0.2 = 0.38, var 0.9 + 0.4 = 1.3
    _, rm, rv = B.batch_norm(np.array([[0.0], [4.0]]), None, None, rm, rv, momentum=0.9,
                             momentum_convention="flax", unbiased_running_var=False)
    # a handful of roundings of values <= 1.3 (0.9 and 0.1 are inexact): 8 eps relative
    assert rm[0] == pytest.approx(0.38, rel=8 * EPS, abs=0)
    assert rv[0] == pytest.approx(1.3, rel=8 * EPS, abs=0)
    # the torch convention with momentum 0.1 and the unbiased variance (2 for step 1, 8 for
    # step 2): mean as above, var 0.9 + 0.2 = 1.1 then 0.99 + 0.8 = 1.79
    rm, rv = np.zeros(1), np.ones(1)
    for x in ([[1.0], [3.0]], [[0.0], [4.0]]):
        _, rm, rv = B.batch_norm(np.array(x), None, None, rm, rv, momentum=0.1)
    assert rm[0] == pytest.approx(0.38, rel=8 * EPS, abs=0)
    assert rv[0] == pytest.approx(1.79, rel=8 * EPS, abs=0)


@given(data=st.data())
def test_batch_norm_train_output_is_standardised(data):
    """weight None: per channel, mean(y) = 0 and var(y) = v / (v + eps) (1 up to eps)."""
    x, _, _, rm, rv, momentum, eps = _bn_case(data, True, False)
    assume(x.size // x.shape[1] >= 2)
    y = B.batch_norm(x, None, None, rm, rv, True, momentum, eps)[0]
    axes = (0, 2, 3)
    n, _, v, a, big_xc, _ = _bn_stats(x, eps)  # v: NumPy's own two-pass variance
    # y's rounding (_bn_bounds) e; NumPy's mean and variance of y add (n + 3) eps of their
    # terms; var(y) moves by 2 max|y| e + e^2; v is wrong by |d var| (as in _bn_bounds), which
    # moves v / (v + eps) by at most |d var| / (v + eps)
    e = _bn_bounds(x, None, None, rm, rv, True, eps, 1)[0].max(axis=axes)
    y_max = np.abs(y).max(axis=axes)
    d_var = (n + 3) * EPS * v + 2 * (n + 2) * EPS * big_xc * a
    assert np.all(np.abs(y.mean(axis=axes)) <= e + (n + 3) * EPS * y_max)
    assert np.all(np.abs(y.var(axis=axes) - v / (v + eps))
                  <= 2 * y_max * e + e * e + (n + 3) * EPS * y_max**2 + d_var / (v + eps))


@given(data=st.data())
def test_batch_norm_fast_variance_is_the_same_statistic(data):
    """variance="fast" (max(0, E[x^2] - E[x]^2)) is the two-pass statistic up to its own
    rounding (_bn_bounds with variance="fast"): the same mean, running variance and y."""
    x, weight, bias, rm, rv, momentum, eps = _bn_case(data, True, True)
    assume(x.size // x.shape[1] >= 2)
    unbiased = data.draw(st.booleans(), label="unbiased_running_var")
    two = B.batch_norm(x, weight, bias, rm, rv, True, momentum, eps, unbiased_running_var=unbiased)
    fast = B.batch_norm(x, weight, bias, rm, rv, True, momentum, eps,
                        unbiased_running_var=unbiased, variance="fast")
    y_tol, _, rv_tol = _bn_bounds(x, weight, bias, rm, rv, True, eps, 2, "fast")
    np.testing.assert_array_equal(fast[1], two[1])  # the mean is the same sum either way
    assert np.all(np.abs(fast[2] - two[2]) <= rv_tol)
    assert np.all(np.abs(fast[0] - two[0]) <= y_tol)


def test_batch_norm_fast_variance_cancels_for_a_large_mean():
    """x = 1e10 -+ 1 (exact): the two-pass variance is exactly 1; E[x^2] = 1e20 + 1 is not a
    float64 (spacing 16384 there), so the fast variance is 0 or a multiple of 16384: the
    cancellation flax#1491 reports and the large-mean property exposes."""
    x = np.array([[1e10 - 1.0], [1e10 + 1.0]])
    _, _, two = B.batch_norm(x, None, None, np.zeros(1), np.zeros(1), momentum=1.0,
                             unbiased_running_var=False)
    _, _, fast = B.batch_norm(x, None, None, np.zeros(1), np.zeros(1), momentum=1.0,
                              unbiased_running_var=False, variance="fast")
    assert two[0] == 1.0
    assert fast[0] % 16384.0 == 0.0


def test_batch_norm_stays_accurate_far_from_zero():
    """float32-rounded input with mean 1e4 and std 1: the two-pass variance keeps y's std at
    sqrt(v / (v + eps)) to a few dozen eps; E[x^2] - E[x]^2 would lose ~8 digits (1e8 / 1)."""
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((8, 2, 2, 2))).astype(np.float32).astype(np.float64)
    eps, n = 1e-5, 32
    y = B.batch_norm(x, None, None, np.zeros(2), np.ones(2), eps=eps)[0]
    for ch in range(2):
        vals = [Fraction(float(v)) for v in x[:, ch].ravel()]
        mu = sum(vals) / n
        v = float(sum((a - mu) ** 2 for a in vals) / n)  # exact, then rounded once
        assert 0.3 < v < 3
        # x - mu is exact (Sterbenz: both near 1e4); mu's error d (<= (n + 1) eps 1e4) shifts y
        # and adds only d^2 to the variance; the sum of squares (n + 1) eps, the scale and
        # NumPy's std of y (n + 3) eps, a few roundings here: (2 n + 10) eps relative
        assert np.std(y[:, ch]) == pytest.approx(math.sqrt(v / (v + eps)), rel=(2 * n + 10) * EPS,
                                                 abs=0)
        # mean(y) = -d / s plus NumPy's mean of y ((n + 1) eps max|y|)
        assert abs(y[:, ch].mean()) <= (n + 1) * EPS * (1e4 + 4) / math.sqrt(v + eps) \
            + (n + 1) * EPS * np.abs(y[:, ch]).max()


# --------------------------------------------------------------------------- bad input

def _bn(x=None, weight=None, bias=None, rm=None, rv=None, **kw):
    x = np.arange(12.0).reshape(2, 3, 2, 1) if x is None else x
    rm = np.zeros(3) if rm is None else rm
    rv = np.ones(3) if rv is None else rv
    return B.batch_norm(x, weight, bias, rm, rv, **kw)


BN_BAD = [
    ("x", lambda: _bn(np.ones((2, 3, 4)))),                                  # rank 3
    ("x", lambda: _bn(np.ones(3))),
    ("x", lambda: _bn(np.ones((1, 3)))),                                     # n == 1 in training
    ("x", lambda: _bn(np.ones((1, 3, 1, 1)))),
    ("x", lambda: _bn(np.full((2, 3), np.nan))),
    ("momentum_convention", lambda: _bn(momentum_convention="keras")),
    ("variance", lambda: _bn(variance="welford")),
    ("weight", lambda: _bn(weight=np.ones(4))),
    ("weight", lambda: _bn(weight=np.full(3, np.nan))),
    ("bias", lambda: _bn(bias=np.ones((3, 1)))),
    ("running_mean", lambda: _bn(rm=np.zeros(2))),
    ("running_var", lambda: _bn(rv=np.ones((3, 1)))),
    ("running_var", lambda: _bn(rv=np.array([1.0, -1e-3, 1.0]))),
    ("momentum", lambda: _bn(momentum=1.5)),
    ("momentum", lambda: _bn(momentum=-0.1)),
    ("momentum", lambda: _bn(momentum=float("nan"))),
    ("eps", lambda: _bn(eps=0.0)),
    ("eps", lambda: _bn(eps=-1e-5)),
    ("g", lambda: B.batch_norm_vjp(np.ones((2, 3)), None, None, np.ones((3, 2)), np.zeros(3),
                                   np.ones(3))),
    ("x", lambda: B.batch_norm_vjp(np.ones((1, 3)), None, None, np.ones((1, 3)), np.zeros(3),
                                   np.ones(3))),
]


@pytest.mark.parametrize(("arg", "call"), BN_BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BN_BAD)])
def test_batch_norm_rejects(arg, call):
    with raises_for(arg):
        call()


def test_batch_norm_eval_accepts_a_single_value_per_channel():
    y, _, _ = B.batch_norm(np.full((1, 2), 3.0), None, None, np.ones(2), np.full(2, 4.0),
                           training=False, eps=0.25)
    np.testing.assert_array_equal(y, [[2.0 / math.sqrt(4.25)] * 2])


def test_tolerance_covers_subnormals_flushed_to_zero(monkeypatch):
    """XLA's CPU code flushes subnormals to zero. For x = [TINY, 0] in float32 the batch mean
    TINY / 2 becomes 0, and x - mu, times r = 1 / sqrt(eps) = 316, moves y by 158 TINY (jax's
    weight gradient was 0 for 4.8e-37 at dev seed 2). The policy's bound covers that result
    only through batch norm's flush floor, not a result off by 100 times as much, and the
    floor changes nothing where no value is subnormal."""
    kw = dict(running_mean=np.zeros(1), running_var=np.ones(1), training=True, eps=1e-5)
    one = (np.ones(1), np.zeros(1))
    x = np.array([[TINY["float32"]], [0.0]])
    normal = np.array([[1.0], [2.0], [4.0]])
    expected, tol = expected_and_tolerance("batch_norm", (x, *one), kw, "float32")
    _, normal_tol = expected_and_tolerance("batch_norm", (normal, *one), kw, "float32")
    off = np.abs(x / np.sqrt(1e-5) - expected[0])  # y with mu flushed to 0
    assert off.max() == pytest.approx(TINY["float32"] / 2 / np.sqrt(1e-5))
    assert np.all(off <= tol[0]) and not np.all(100 * off <= tol[0])
    spec = specs.SPECS["batch_norm"]
    monkeypatch.setitem(specs.SPECS, "batch_norm", dataclasses.replace(spec, forward_floor=None))
    _, bare = expected_and_tolerance("batch_norm", (x, *one), kw, "float32")
    _, normal_bare = expected_and_tolerance("batch_norm", (normal, *one), kw, "float32")
    assert not np.all(off <= bare[0])
    np.testing.assert_array_equal(normal_tol[0], normal_bare[0])
