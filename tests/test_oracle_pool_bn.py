"""The pooling and batch-norm oracles (reference/pooling.py, reference/batchnorm.py) against
naive float64 loops written here, against PyTorch float64 where it is installed, and their VJPs
against central finite differences (the check and its error bound: tests/test_oracle_gradients.py).

Rounding bounds: a recursive sum of m terms is wrong by at most (m - 1) eps sum |terms| (to
first order, in any summation order), and each further operation by eps of its result. Where
two float64 implementations are compared both err, so the bounds count both.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference import batchnorm as B
from reference import pooling as P
from tests.test_oracle_gradients import _dot, assert_vjp_matches_fd, seeded

EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------- naive loops

def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_windows(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> list[int]:
    """Start (in input coordinates) of every window along one dimension, by enumeration: a
    window fits the padded input [-p, size + p); with ceil_mode a window may overhang on the
    right as long as the window one stride before it (for the first: a virtual one) stopped
    short of the end, and it starts inside [-p, size) (PyTorch's rule)."""
    starts, o = [], 0
    while True:
        start, last = o * s - p, o * s - p + d * (k - 1)
        if ceil_mode:
            ok = last - s < size + p - 1 and start < size
        else:
            ok = last <= size + p - 1
        if not ok:
            return starts
        starts.append(start)
        o += 1


def _geometry_lists(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    k, p, d = _pair(kernel_size), _pair(padding), _pair(dilation)
    s = k if stride is None else _pair(stride)
    rows = naive_windows(x_shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    cols = naive_windows(x_shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    offsets = [(i * d[0], j * d[1]) for i in range(k[0]) for j in range(k[1])]  # row-major
    return rows, cols, offsets, k, p


def naive_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over the input elements of each window; -inf for a window over padding alone."""
    rows, cols, offsets, _, _ = _geometry_lists(x.shape, kernel_size, stride, padding, dilation,
                                                ceil_mode)
    n, c, h, w = x.shape
    y = np.empty((n, c, len(rows), len(cols)))
    for a in range(n):
        for b in range(c):
            for o, r0 in enumerate(rows):
                for q, c0 in enumerate(cols):
                    vals = [x[a, b, r0 + i, c0 + j] for i, j in offsets
                            if 0 <= r0 + i < h and 0 <= c0 + j < w]
                    y[a, b, o, q] = max(vals) if vals else -math.inf
    return y


def naive_max_pool_vjp(x, g, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       ties="first"):
    rows, cols, offsets, _, _ = _geometry_lists(x.shape, kernel_size, stride, padding, dilation,
                                                ceil_mode)
    n, c, h, w = x.shape
    dx = np.zeros(x.shape)
    for a in range(n):
        for b in range(c):
            for o, r0 in enumerate(rows):
                for q, c0 in enumerate(cols):
                    pos = [(r0 + i, c0 + j) for i, j in offsets if 0 <= r0 + i < h and 0 <= c0 + j < w]
                    if not pos:
                        continue
                    m = max(x[a, b, r, cc] for r, cc in pos)
                    winners = [(r, cc) for r, cc in pos if x[a, b, r, cc] == m]
                    if ties == "first":
                        winners = winners[:1]
                    for r, cc in winners:
                        dx[a, b, r, cc] += g[a, b, o, q] / len(winners)
    return dx


def naive_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Sum of the window's input elements over the number of its positions inside the padded
    input [-p, size + p) (count_include_pad) or inside the input."""
    rows, cols, offsets, _, (ph, pw) = _geometry_lists(x.shape, kernel_size, stride, padding, 1,
                                                       ceil_mode)
    n, c, h, w = x.shape
    y = np.empty((n, c, len(rows), len(cols)))
    for a in range(n):
        for b in range(c):
            for o, r0 in enumerate(rows):
                for q, c0 in enumerate(cols):
                    real = [(r0 + i, c0 + j) for i, j in offsets if 0 <= r0 + i < h and 0 <= c0 + j < w]
                    padded = [1 for i, j in offsets if -ph <= r0 + i < h + ph and -pw <= c0 + j < w + pw]
                    count = len(padded) if count_include_pad else len(real)
                    y[a, b, o, q] = math.fsum(x[a, b, r, cc] for r, cc in real) / count
    return y


def naive_avg_pool_vjp(x, g, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    """dx = sum over windows of g / count, element by element (count: one-hot forwards)."""
    dx = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros(x.shape)
        e[idx] = 1.0
        dx[idx] = math.fsum((g * naive_avg_pool(e, kernel_size, stride, padding, ceil_mode,
                                                count_include_pad)).ravel())
    return dx


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


# --------------------------------------------------------------------------- strategies

@st.composite
def pool_cases(draw, dilation: bool = True, max_n: int = 2):
    """(x shape, keyword geometry) with at least one window: H >= d (k - 1) + 1 - 2 p."""
    square = draw(st.booleans(), label="square")
    dims = 1 if square else 2
    k = [draw(st.integers(1, 3), label="kernel") for _ in range(dims)]
    s = [draw(st.integers(1, 3), label="stride") for _ in range(dims)]
    p = [draw(st.integers(0, ki // 2), label="padding") for ki in k]
    d = [draw(st.integers(1, 2), label="dilation") if dilation else 1 for _ in range(dims)]
    k, s, p, d = ((v[0] if square else tuple(v)) for v in (k, s, p, d))
    kw = dict(kernel_size=k, stride=None if draw(st.booleans(), label="stride None") else s,
              padding=p, ceil_mode=draw(st.booleans(), label="ceil_mode"))
    if dilation:
        kw["dilation"] = d
    kk, pp, dd = _pair(k), _pair(p), _pair(d)
    sizes = [draw(st.integers(max(1, dd[a] * (kk[a] - 1) + 1 - 2 * pp[a]), 4 + dd[a] * kk[a]),
                  label="size") for a in (0, 1)]
    shape = (draw(st.integers(1, max_n), label="N"), draw(st.integers(1, 2), label="C"), *sizes)
    return shape, kw


def distinct(data, shape) -> np.ndarray:
    """A random permutation of integers, centred: values 1 apart, so no ties anywhere."""
    size = math.prod(shape)
    perm = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed")).permutation(size)
    return (perm - (size - 1) / 2).reshape(shape).astype(np.float64)


def tie_heavy(data, shape) -> np.ndarray:
    """Values in {0, 1, 2}: most windows hold several maxima."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    return np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)


def _finite_part(y: np.ndarray) -> np.ndarray:
    """A window over padding alone is -inf whatever x is: constant, so set to 0 for FD."""
    return np.where(np.isneginf(y), 0.0, y)


def _kernel_count(kw) -> int:
    k = _pair(kw["kernel_size"])
    return k[0] * k[1]


# --------------------------------------------------------------------------- output size

@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_enumeration_and_torch(ceil_mode):
    torch = pytest.importorskip("torch")
    for size in range(1, 9):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(k // 2 + 1):
                    for d in range(1, 3):
                        out = P.pool_output_size(size, k, s, p, d, ceil_mode)
                        assert max(out, 0) == len(naive_windows(size, k, s, p, d, ceil_mode))
                        x = torch.zeros(1, 1, 1, size, dtype=torch.float64)
                        if out >= 1:
                            y = torch.nn.functional.max_pool2d(x, (1, k), (1, s), (0, p), (1, d),
                                                               ceil_mode)
                            assert y.shape[-1] == out, (size, k, s, p, d)
                        else:
                            with pytest.raises(RuntimeError):
                                torch.nn.functional.max_pool2d(x, (1, k), (1, s), (0, p), (1, d),
                                                               ceil_mode)


def test_avg_pool_ceil_mode_does_not_count_the_overhang():
    """torch.nn.functional.avg_pool1d(arange(5.), 2, 2, ceil_mode=True) = [0.5, 2.5, 4.0]: the
    last window holds 4 alone and is divided by 1."""
    y = P.avg_pool2d(np.arange(5.0).reshape(1, 1, 1, 5), (1, 2), (1, 2), ceil_mode=True)
    np.testing.assert_array_equal(y.ravel(), [0.5, 2.5, 4.0])


# --------------------------------------------------------------------------- forwards

@given(data=st.data(), case=pool_cases())
def test_max_pool_matches_naive(data, case):
    shape, kw = case
    x = seeded(data, shape, 3.0, "x")
    # a maximum is one of its inputs, exactly
    np.testing.assert_array_equal(P.max_pool2d(x, **kw), naive_max_pool(x, **kw))


def _avg_bound(x, kw) -> np.ndarray:
    # both are sums of at most K terms divided once: each wrong by at most
    # (K - 1) eps sum|x| / count + eps |y| <= K eps avg(|x|)
    return 2 * _kernel_count(kw) * EPS * naive_avg_pool(np.abs(x), **kw)


@pytest.mark.parametrize("count_include_pad", [True, False])
@given(data=st.data(), case=pool_cases(dilation=False))
def test_avg_pool_matches_naive(data, case, count_include_pad):
    shape, kw = case
    kw["count_include_pad"] = count_include_pad
    x = seeded(data, shape, 3.0, "x")
    y, want = P.avg_pool2d(x, **kw), naive_avg_pool(x, **kw)
    assert y.shape == want.shape
    assert np.all(np.abs(y - want) <= _avg_bound(x, kw))


@given(data=st.data())
def test_global_avg_pool_and_flatten_match_naive(data):
    shape = tuple(data.draw(st.integers(1, 3), label="dim") for _ in range(4))
    x = seeded(data, shape, 2.0, "x")
    want = np.array([[math.fsum(x[a, b].ravel()) / (shape[2] * shape[3]) for b in range(shape[1])]
                     for a in range(shape[0])])
    # a sum of H W terms (the oracle's) and one division: (H W) eps mean|x|
    bound = shape[2] * shape[3] * EPS * np.abs(x).mean(axis=(2, 3))
    assert np.all(np.abs(P.global_avg_pool2d(x) - want) <= bound)
    flat = P.flatten(x)
    assert flat.shape == (shape[0], shape[1] * shape[2] * shape[3])
    for a in range(shape[0]):
        assert list(flat[a]) == [x[a, b, i, j] for b in range(shape[1]) for i in range(shape[2])
                                 for j in range(shape[3])]


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
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _torch_pool(fn, x, g, kw):
    torch, _ = _torch()
    t = torch.tensor(x, requires_grad=True)
    y = fn(t, **kw)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), t.grad.numpy()


def _no_empty_window(x, kw) -> bool:
    """PyTorch's max_pool2d backward writes out of bounds (heap corruption) for a window over
    padding alone (dilation, e.g. H = 1, k = 2, p = 1, d = 2); such windows are kept from it."""
    return not np.isneginf(naive_max_pool(x, **kw)).any()


@given(data=st.data(), case=pool_cases())
def test_max_pool_matches_torch(data, case):
    _, F = _torch()
    shape, kw = case
    x = distinct(data, shape)
    assume(_no_empty_window(x, kw))
    y = P.max_pool2d(x, **kw)
    g = seeded(data, y.shape, 1.0, "g")
    ty, tdx = _torch_pool(F.max_pool2d, x, g, kw)
    np.testing.assert_array_equal(y, ty)  # exact: a maximum is one of the inputs
    # without ties each dx element is a sum of the g of the windows whose maximum it is (at most
    # K of them): (K - 1) eps sum|g| for each implementation
    (dx,) = P.max_pool2d_vjp(x, g, **kw)
    bound = 2 * _kernel_count(kw) * EPS * naive_max_pool_vjp(x, np.abs(g), **kw)
    assert np.all(np.abs(dx - tdx) <= bound)


@pytest.mark.parametrize("count_include_pad", [True, False])
@given(data=st.data(), case=pool_cases(dilation=False))
def test_avg_pool_matches_torch(data, case, count_include_pad):
    _, F = _torch()
    shape, kw = case
    kw["count_include_pad"] = count_include_pad
    x = seeded(data, shape, 3.0, "x")
    y = P.avg_pool2d(x, **kw)
    g = seeded(data, y.shape, 1.0, "g")
    ty, tdx = _torch_pool(F.avg_pool2d, x, g, kw)
    assert y.shape == ty.shape
    assert np.all(np.abs(y - ty) <= _avg_bound(x, kw))
    # dx: a sum over at most K windows of g / count, in each implementation
    (dx,) = P.avg_pool2d_vjp(x, g, **kw)
    bound = 2 * (_kernel_count(kw) + 1) * EPS * naive_avg_pool_vjp(x, np.abs(g), **kw)
    assert np.all(np.abs(dx - tdx) <= bound)


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


# --------------------------------------------------------------------------- VJPs against FD
# Max pooling: distinct() values lie 1 apart and h = 1e-6 max(1, max|x|) <= 2e-4 here (at most
# 2 x 2 x 10 x 10 elements, |x| <= 200), so the steps (<= 2 h |t|, |t| a few) never reorder a
# window: the function is linear around x and the FD check applies.

@pytest.mark.parametrize("ties", P.TIES)
@given(data=st.data(), case=pool_cases())
def test_max_pool_vjp_matches_fd(data, case, ties):
    shape, kw = case
    x = distinct(data, shape)
    y = P.max_pool2d(x, **kw)
    t = seeded(data, shape, 1.0, "tangent")
    c = seeded(data, y.shape, 1.0, "cotangent")
    (dx,) = P.max_pool2d_vjp(x, c, **kw, ties=ties)
    assert_vjp_matches_fd(lambda x: _finite_part(P.max_pool2d(x, **kw)), [x], [t], c, [dx])


@pytest.mark.parametrize("count_include_pad", [True, False])
@given(data=st.data(), case=pool_cases(dilation=False))
def test_avg_pool_vjp_matches_fd(data, case, count_include_pad):
    shape, kw = case
    kw["count_include_pad"] = count_include_pad
    x = seeded(data, shape, 3.0, "x")
    y = P.avg_pool2d(x, **kw)
    t = seeded(data, shape, 1.0, "tangent")
    c = seeded(data, y.shape, 1.0, "cotangent")
    (dx,) = P.avg_pool2d_vjp(x, c, **kw)
    # the window sums cancel: terms of size avg(|x|)
    assert_vjp_matches_fd(lambda x: P.avg_pool2d(x, **kw), [x], [t], c, [dx],
                          _dot(np.abs(c), naive_avg_pool(np.abs(x), **kw)))


@given(data=st.data())
def test_global_avg_pool_and_flatten_vjps_match_fd(data):
    shape = tuple(data.draw(st.integers(1, 3), label="dim") for _ in range(4))
    x = seeded(data, shape, 3.0, "x")
    t = seeded(data, shape, 1.0, "tangent")
    c = seeded(data, shape[:2], 1.0, "cotangent")
    (dx,) = P.global_avg_pool2d_vjp(x, c)
    # the plane sums cancel: terms of size mean|x|
    assert_vjp_matches_fd(P.global_avg_pool2d, [x], [t], c, [dx],
                          _dot(np.abs(c), np.abs(x).mean(axis=(2, 3))))
    c = seeded(data, (shape[0], math.prod(shape[1:])), 1.0, "flat cotangent")
    (dx,) = P.flatten_vjp(x, c)
    assert_vjp_matches_fd(P.flatten, [x], [t], c, [dx])


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
    assert_vjp_matches_fd(f, primals, tangents, c, grads, _dot(np.abs(c), m))


# --------------------------------------------------------------------------- the tie rule

def test_tie_rule_on_a_window_of_equal_values():
    x, g = np.full((1, 1, 2, 2), 3.0), np.full((1, 1, 1, 1), 2.0)
    (first,) = P.max_pool2d_vjp(x, g, 2, ties="first")
    (split,) = P.max_pool2d_vjp(x, g, 2, ties="split")
    np.testing.assert_array_equal(first[0, 0], [[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(split[0, 0], [[0.5, 0.5], [0.5, 0.5]])


def _tie_bound(x, g, kw, ties, eps=EPS) -> np.ndarray:
    # each dx element sums the shares of at most K windows (one more rounding for a split
    # share), in each implementation
    return 2 * (_kernel_count(kw) + 1) * eps * naive_max_pool_vjp(x, np.abs(g), **kw, ties=ties)


@pytest.mark.parametrize("ties", P.TIES)
@given(data=st.data(), case=pool_cases())
def test_max_pool_vjp_ties_match_naive(data, case, ties):
    shape, kw = case
    x = tie_heavy(data, shape)
    g = seeded(data, P.max_pool2d(x, **kw).shape, 1.0, "g")
    (dx,) = P.max_pool2d_vjp(x, g, **kw, ties=ties)
    assert np.all(np.abs(dx - naive_max_pool_vjp(x, g, **kw, ties=ties)) <= _tie_bound(x, g, kw, ties))


@given(data=st.data(), case=pool_cases())
def test_torch_max_pool_backward_sends_ties_to_the_first_maximum(data, case):
    _, F = _torch()
    shape, kw = case
    x = tie_heavy(data, shape)
    assume(_no_empty_window(x, kw))
    g = seeded(data, P.max_pool2d(x, **kw).shape, 1.0, "g")
    _, tdx = _torch_pool(F.max_pool2d, x, g, kw)
    (dx,) = P.max_pool2d_vjp(x, g, **kw, ties="first")
    assert np.all(np.abs(dx - tdx) <= _tie_bound(x, g, kw, "first"))


def _jax_max_pool_vjp(x, g, kw, dtype):
    """jax.vjp of lax.reduce_window(x, -inf, lax.max, ...): padding p on the left, and on the
    right p plus a ceil_mode window's overhang."""
    jax = pytest.importorskip("jax")
    from jax import lax
    k, p = _pair(kw["kernel_size"]), _pair(kw["padding"])
    s = k if kw["stride"] is None else _pair(kw["stride"])
    d = _pair(kw.get("dilation", 1))
    out = P.max_pool2d(x, **kw).shape[2:]
    hi = [p[a] + max(0, (out[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 - (x.shape[2 + a] + 2 * p[a]))
          for a in (0, 1)]
    with jax.enable_x64(True):
        def f(a):
            return lax.reduce_window(a, -np.inf, lax.max, (1, 1, *k), (1, 1, *s),
                                     ((0, 0), (0, 0), (p[0], hi[0]), (p[1], hi[1])),
                                     window_dilation=(1, 1, *d))
        y, vjp = jax.vjp(f, jax.numpy.asarray(x, dtype))
        assert y.shape == g.shape
        (dx,) = vjp(jax.numpy.asarray(g, dtype))
        return np.asarray(dx, dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@given(data=st.data(), case=pool_cases(dilation=False))
def test_jax_reduce_window_max_vjp_sends_ties_to_the_first_maximum(data, case, dtype):
    """XLA's select-and-scatter keeps the first maximum it meets in row-major window order
    (float32 and float64 take different paths in JAX, hence both). No dilation: JAX 0.10 has
    no VJP for a max reduce_window with window_dilation (NotImplementedError)."""
    shape, kw = case
    x = tie_heavy(data, shape)  # 0, 1, 2: exact in float32
    g = seeded(data, P.max_pool2d(x, **kw).shape, 1.0, "g").astype(dtype).astype(np.float64)
    dx_jax = _jax_max_pool_vjp(x, g, kw, dtype)
    (dx,) = P.max_pool2d_vjp(x, g, **kw, ties="first")
    assert np.all(np.abs(dx - dx_jax) <= _tie_bound(x, g, kw, "first", float(np.finfo(dtype).eps)))


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

def _raises(arg: str):
    """pytest.raises(ValueError) whose message starts with the argument's name."""
    return pytest.raises(ValueError, match=rf"^{arg}(?!\w)")


X4 = np.ones((1, 1, 4, 4))
NAN4 = np.where(np.eye(4) > 0, np.nan, 1.0).reshape(1, 1, 4, 4)

POOL_BAD = [
    ("x", lambda: P.max_pool2d(np.ones((2, 4, 4)), 2)),                      # rank 3
    ("x", lambda: P.avg_pool2d(np.ones((1, 1, 1, 4, 4)), 2)),                # rank 5
    ("x", lambda: P.max_pool2d(NAN4, 2)),
    ("x", lambda: P.avg_pool2d(NAN4, 2)),
    ("x", lambda: P.max_pool2d_vjp(NAN4, np.ones((1, 1, 2, 2)), 2)),
    ("x", lambda: P.global_avg_pool2d(np.ones((2, 3)))),
    ("x", lambda: P.global_avg_pool2d(np.ones((1, 1, 0, 2)))),               # empty plane
    ("x", lambda: P.global_avg_pool2d(NAN4)),
    ("x", lambda: P.flatten(np.ones(3))),
    ("x", lambda: P.flatten(NAN4)),
    ("padding", lambda: P.max_pool2d(X4, 2, padding=2)),                     # > kernel // 2
    ("padding", lambda: P.avg_pool2d(X4, 3, padding=(1, 2))),
    ("padding", lambda: P.max_pool2d(X4, 2, padding=-1)),
    ("kernel_size", lambda: P.max_pool2d(np.ones((1, 1, 2, 2)), 3)),         # larger than the input
    ("kernel_size", lambda: P.avg_pool2d(np.ones((1, 1, 2, 5)), (3, 1))),
    ("kernel_size", lambda: P.max_pool2d(np.ones((1, 1, 3, 3)), 2, dilation=3)),  # extent 4 > 3
    ("kernel_size", lambda: P.max_pool2d(X4, 0)),
    ("kernel_size", lambda: P.max_pool2d(X4, 2.5)),
    ("kernel_size", lambda: P.avg_pool2d(X4, (2, 2, 2))),
    ("kernel_size", lambda: P.avg_pool2d(X4, True)),
    ("stride", lambda: P.max_pool2d(X4, 2, stride=0)),
    ("stride", lambda: P.avg_pool2d(X4, 2, stride=(1,))),
    ("dilation", lambda: P.max_pool2d(X4, 2, dilation=0)),
    ("ties", lambda: P.max_pool2d(X4, 2, ties="last")),
    ("ties", lambda: P.max_pool2d_vjp(X4, np.ones((1, 1, 2, 2)), 2, ties="mean")),
    ("g", lambda: P.max_pool2d_vjp(X4, np.ones((1, 1, 3, 3)), 2)),
    ("g", lambda: P.avg_pool2d_vjp(X4, np.ones((1, 2, 2)), 2)),
    ("g", lambda: P.avg_pool2d_vjp(X4, np.full((1, 1, 2, 2), np.nan), 2)),
    ("g", lambda: P.global_avg_pool2d_vjp(X4, np.ones((1, 2)))),
    ("g", lambda: P.flatten_vjp(X4, np.ones((1, 15)))),
]


@pytest.mark.parametrize(("arg", "call"), POOL_BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(POOL_BAD)])
def test_pooling_rejects(arg, call):
    with _raises(arg):
        call()


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
    with _raises(arg):
        call()


def test_batch_norm_eval_accepts_a_single_value_per_channel():
    y, _, _ = B.batch_norm(np.full((1, 2), 3.0), None, None, np.ones(2), np.full(2, 4.0),
                           training=False, eps=0.25)
    np.testing.assert_array_equal(y, [[2.0 / math.sqrt(4.25)] * 2])
