"""The pooling oracles (reference/pooling.py) against naive float64 loops written here, against
PyTorch float64 where it is installed, their VJPs against central finite differences
(tests/fd.py), and the tie rule of the torch and jax adapters' max-pool VJPs.

Rounding bounds: a recursive sum of m terms is wrong by at most (m - 1) eps sum |terms| (to
first order, in any summation order), and each further operation by eps of its result. Where
two float64 implementations are compared both err, so the bounds count both.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backends import harness
from reference import pooling as P
from tests.fd import EPS, assert_vjp_matches_fd, dot, raises_for, seeded, taps
from tests.optional import need

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


def naive_pool_windows(x_shape, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False):
    """The output shape, and per output element: its index, the indices of its window's
    elements inside x (row-major window order), and how many of its taps lie inside the
    padded input [-p, size + p)."""
    k, p, d = _pair(kernel_size), _pair(padding), _pair(dilation)
    s = k if stride is None else _pair(stride)
    n, c, h, w = x_shape
    rows = naive_windows(h, k[0], s[0], p[0], d[0], ceil_mode)
    cols = naive_windows(w, k[1], s[1], p[1], d[1], ceil_mode)
    windows = []
    for a, b, (o, r0), (q, c0) in itertools.product(range(n), range(c), enumerate(rows),
                                                     enumerate(cols)):
        inside = [(a, b, r, cc) for _, r in taps(r0, k[0], d[0], h)
                  for _, cc in taps(c0, k[1], d[1], w)]
        padded = (len(taps(r0 + p[0], k[0], d[0], h + 2 * p[0]))
                  * len(taps(c0 + p[1], k[1], d[1], w + 2 * p[1])))
        windows.append(((a, b, o, q), inside, padded))
    return (n, c, len(rows), len(cols)), windows


def naive_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over the input elements of each window; -inf for a window over padding alone."""
    shape, windows = naive_pool_windows(x.shape, kernel_size, stride, padding, dilation,
                                        ceil_mode)
    y = np.empty(shape)
    for out, inside, _ in windows:
        y[out] = max(x[i] for i in inside) if inside else -math.inf
    return y


def naive_max_pool_vjp(x, g, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       ties="first"):
    _, windows = naive_pool_windows(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    dx = np.zeros(x.shape)
    for out, inside, _ in windows:
        if not inside:
            continue
        m = max(x[i] for i in inside)
        winners = [i for i in inside if x[i] == m]
        if ties == "first":
            winners = winners[:1]
        for i in winners:
            dx[i] += g[out] / len(winners)
    return dx


def naive_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Sum of the window's input elements over the number of its positions inside the padded
    input [-p, size + p) (count_include_pad) or inside the input."""
    shape, windows = naive_pool_windows(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    y = np.empty(shape)
    for out, inside, padded in windows:
        count = padded if count_include_pad else len(inside)
        y[out] = math.fsum(x[i] for i in inside) / count
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


# --------------------------------------------------------------------------- strategies

@st.composite
def pool_cases(draw, dilation: bool = True, max_n: int = 2, ceil_mode: bool | None = None):
    """(x shape, keyword geometry) with at least one window: H >= d (k - 1) + 1 - 2 p.
    ceil_mode None is drawn."""
    square = draw(st.booleans(), label="square")
    dims = 1 if square else 2
    k = [draw(st.integers(1, 3), label="kernel") for _ in range(dims)]
    s = [draw(st.integers(1, 3), label="stride") for _ in range(dims)]
    p = [draw(st.integers(0, ki // 2), label="padding") for ki in k]
    d = [draw(st.integers(1, 2), label="dilation") if dilation else 1 for _ in range(dims)]
    k, s, p, d = ((v[0] if square else tuple(v)) for v in (k, s, p, d))
    kw = dict(kernel_size=k, stride=None if draw(st.booleans(), label="stride None") else s,
              padding=p, ceil_mode=draw(st.booleans(), label="ceil_mode") if ceil_mode is None
              else ceil_mode)
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
    torch = need("torch", reason="the PyTorch comparison needs torch")
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


# --------------------------------------------------------------------------- against torch

def _torch():
    torch = need("torch", reason="the PyTorch comparisons need torch")
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
                          dot(np.abs(c), naive_avg_pool(np.abs(x), **kw)))


@given(data=st.data())
def test_global_avg_pool_and_flatten_vjps_match_fd(data):
    shape = tuple(data.draw(st.integers(1, 3), label="dim") for _ in range(4))
    x = seeded(data, shape, 3.0, "x")
    t = seeded(data, shape, 1.0, "tangent")
    c = seeded(data, shape[:2], 1.0, "cotangent")
    (dx,) = P.global_avg_pool2d_vjp(x, c)
    # the plane sums cancel: terms of size mean|x|
    assert_vjp_matches_fd(P.global_avg_pool2d, [x], [t], c, [dx],
                          dot(np.abs(c), np.abs(x).mean(axis=(2, 3))))
    c = seeded(data, (shape[0], math.prod(shape[1:])), 1.0, "flat cotangent")
    (dx,) = P.flatten_vjp(x, c)
    assert_vjp_matches_fd(P.flatten, [x], [t], c, [dx])


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


@functools.cache
def _adapter(framework: str):
    """The suite's adapter for ``framework`` (torch or jax); skipped where it is not installed."""
    need(framework, reason=f"the {framework} adapter needs {framework}")
    if framework == "torch":
        from backends.torch_backend import TorchBackend
        return TorchBackend()
    need("optax", reason="the jax adapter needs optax")
    from backends.jax_backend import JaxBackend
    return JaxBackend()


@given(data=st.data(), case=pool_cases())
def test_torch_max_pool_backward_sends_ties_to_the_first_maximum(data, case):
    """The torch adapter's max_pool2d VJP (F.max_pool2d's backward) keeps the first maximum."""
    backend = _adapter("torch")
    shape, kw = case
    x = tie_heavy(data, shape)
    assume(_no_empty_window(x, kw))
    g = seeded(data, P.max_pool2d(x, **kw).shape, 1.0, "g")
    _, (tdx,) = harness.call_vjp(backend, "max_pool2d", [x], {**kw, "ties": "first"}, g, "float64")
    (dx,) = P.max_pool2d_vjp(x, g, **kw, ties="first")
    assert np.all(np.abs(dx - tdx) <= _tie_bound(x, g, kw, "first"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@given(data=st.data(), case=pool_cases(dilation=False, ceil_mode=False))
def test_jax_reduce_window_max_vjp_sends_ties_to_the_first_maximum(data, case, dtype):
    """The jax adapter's max_pool2d VJP (XLA's select-and-scatter under lax.reduce_window)
    keeps the first maximum it meets in row-major window order (float32 and float64 take
    different paths in JAX, hence both). No dilation: JAX 0.10 has no VJP for a max
    reduce_window with window_dilation (NotImplementedError); no ceil_mode: flax/lax pooling
    has none."""
    backend = _adapter("jax")
    shape, kw = case
    x = tie_heavy(data, shape)  # 0, 1, 2: exact in float32
    g = seeded(data, P.max_pool2d(x, **kw).shape, 1.0, "g").astype(dtype).astype(np.float64)
    (y,), (dx_jax,) = harness.call_vjp(backend, "max_pool2d", [x], {**kw, "ties": "first"}, g,
                                       dtype)
    assert y.shape == g.shape
    (dx,) = P.max_pool2d_vjp(x, g, **kw, ties="first")
    assert np.all(np.abs(dx - dx_jax.astype(np.float64))
                  <= _tie_bound(x, g, kw, "first", float(np.finfo(dtype).eps)))


# --------------------------------------------------------------------------- bad input

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
    with raises_for(arg):
        call()
