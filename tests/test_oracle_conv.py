"""reference.conv certifies itself: conv2d, conv1d and conv_transpose2d against naive loops
written here, every VJP against float64 central finite differences, conv_transpose2d as the
adjoint of conv2d, PyTorch as a further independent check, 'same' padding, bad input.

Rounding bounds. A sum of K products computed in any order is off by at most K eps sum |terms|
(K - 1 additions and one rounding per product, each within eps / 2 of its term's scale): two
such computations differ by at most 2 K eps sum |terms|. The magnitude sum |terms| of each
output is the same operation on |x|, |w| (no cancellation there) or, in the naive loops, the
accumulated |terms|. EPS is float64's machine epsilon (2^-52), from tests/fd.py.

Shapes stay small (N <= 3, C and O <= 4, H and W <= 9): the naive loops are Python. The
Hypothesis profile is the project's (--hypothesis-profile dev|ci|thorough).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import conv as C
from tests.fd import EPS, TINY, assert_vjp_matches_fd, dot, raises_for, seeded, taps
from tests.optional import need

PADDING_FORMS = ("int", "pair", "explicit", "valid", "same")
NAN = float("nan")


def _assert_close(actual, expected, magnitude, terms: int, what: str = "") -> None:
    """|actual - expected| <= 2 K eps magnitude, elementwise (see the module docstring)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected)
    tol = 2 * terms * EPS * np.asarray(magnitude) + TINY
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else ()
    assert np.all(err <= tol), (f"{what}: |error| {err[worst]:.3e} > tolerance {tol[worst]:.3e} "
                                f"at {worst}")


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """The TF/JAX rule, restated: total = max((ceil(size / s) - 1) s + d (k - 1) + 1 - size, 0)."""
    total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


# --------------------------------------------------------------------------- naive loops

def naive_conv2d(x, w, b, stride, pads, dilation, groups):
    """y[n, o, i, j] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q] x[n, c, i sh + p dh - top,
    j sw + q dw - left] over the taps that land inside x; returns (y, sum of |terms|)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw), ((top, bottom), (left, right)) = stride, dilation, pads
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    y, mag = np.zeros((n, o, ho, wo)), np.zeros((n, o, ho, wo))
    og = o // groups
    for ni in range(n):
        for oi in range(o):
            chans = slice((oi // og) * cg, (oi // og + 1) * cg)
            for i in range(ho):
                for j in range(wo):
                    acc = 0.0 if b is None else b[oi]
                    m = abs(acc)
                    for p, r in taps(i * sh - top, kh, dh, h):
                        for q, s in taps(j * sw - left, kw, dw, wd):
                            terms = w[oi, :, p, q] * x[ni, chans, r, s]
                            acc += terms.sum()
                            m += np.abs(terms).sum()
                    y[ni, oi, i, j], mag[ni, oi, i, j] = acc, m
    return y, mag


def naive_conv1d(x, w, b, stride, pads, dilation, groups):
    """y[n, o, i] = b[o] + sum_{c in group(o), p} w[o, c, p] x[n, c, i s + p d - low]."""
    n, c, length = x.shape
    o, cg, k = w.shape
    lo, hi = pads
    lout = (length + lo + hi - dilation * (k - 1) - 1) // stride + 1
    y, mag = np.zeros((n, o, lout)), np.zeros((n, o, lout))
    og = o // groups
    for ni in range(n):
        for oi in range(o):
            chans = slice((oi // og) * cg, (oi // og + 1) * cg)
            for i in range(lout):
                acc = 0.0 if b is None else b[oi]
                m = abs(acc)
                for p, r in taps(i * stride - lo, k, dilation, length):
                    terms = w[oi, :, p] * x[ni, chans, r]
                    acc += terms.sum()
                    m += np.abs(terms).sum()
                y[ni, oi, i], mag[ni, oi, i] = acc, m
    return y, mag


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation):
    """PyTorch's definition: input pixel (i, j) of channel ci adds x[n, ci, i, j] w[ci, co', p, q]
    to output (i sh - ph + p dh, j sw - pw + q dw) of channel group(ci) Cout/G + co'; output
    positions outside [0, Ho) x [0, Wo) are dropped. Returns (y, sum of |terms|)."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y, mag = np.zeros((n, cog * groups, ho, wo)), np.zeros((n, cog * groups, ho, wo))
    if b is not None:
        y += b[:, None, None]
        mag += np.abs(b)[:, None, None]
    cig = cin // groups
    for ni in range(n):
        for ci in range(cin):
            outs = slice((ci // cig) * cog, (ci // cig + 1) * cog)
            for i in range(h):
                for j in range(wd):
                    for p, r in taps(i * sh - ph, kh, dh, ho):
                        for q, s in taps(j * sw - pw, kw, dw, wo):
                            terms = x[ni, ci, i, j] * w[ci, :, p, q]
                            y[ni, outs, r, s] += terms
                            mag[ni, outs, r, s] += np.abs(terms)
    return y, mag


# --------------------------------------------------------------------------- strategies

def _pair_or_int(data, lo: int, hi: int, label: str):
    """(value passed to the oracle, explicit pair)."""
    a, b = data.draw(st.integers(lo, hi), label=label + "_h"), data.draw(st.integers(lo, hi),
                                                                          label=label + "_w")
    if a == b and data.draw(st.booleans(), label=label + "_as_int"):
        return a, (a, a)
    return (a, b), (a, b)


def draw_conv2d(data, forms=PADDING_FORMS, max_stride: int = 3, max_side: int = 9):
    """A conv2d problem: dict of shapes, the conventions passed to the oracle and the explicit
    pads and pairs the naive loops take."""
    groups = data.draw(st.sampled_from([1, 1, 2, 3, 4]), label="groups")
    cg = data.draw(st.integers(1, 4 // groups), label="C/G")
    og = data.draw(st.integers(1, 4 // groups), label="O/G")
    n = data.draw(st.integers(1, 3), label="N")
    kh, kw = (data.draw(st.integers(1, 3), label=k) for k in ("kh", "kw"))
    stride, s2 = _pair_or_int(data, 1, max_stride, "stride")
    dilation, d2 = _pair_or_int(data, 1, 2, "dilation")
    form = data.draw(st.sampled_from(forms), label="padding_form")
    pv = st.integers(0, 2)
    if form == "int":
        padding = data.draw(pv, label="padding")
        pads = ((padding,) * 2,) * 2
    elif form == "pair":
        padding = (data.draw(pv, label="ph"), data.draw(pv, label="pw"))
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    elif form == "explicit":
        padding = tuple((data.draw(pv, label=f"lo{i}"), data.draw(pv, label=f"hi{i}")) for i in range(2))
        pads = padding
    else:
        padding, pads = form, ((0, 0), (0, 0))
    sizes = []
    for i, k in enumerate((kh, kw)):
        smallest = 1 if form == "same" else max(1, d2[i] * (k - 1) + 1 - sum(pads[i]))
        sizes.append(data.draw(st.integers(smallest, max(smallest, max_side)), label="HW"[i]))
    if form == "same":
        pads = tuple(_same_pads(sizes[i], (kh, kw)[i], s2[i], d2[i]) for i in range(2))
    return dict(x_shape=(n, groups * cg, *sizes), w_shape=(groups * og, cg, kh, kw),
                kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                naive=dict(stride=s2, pads=pads, dilation=d2, groups=groups))


def draw_conv1d(data):
    groups = data.draw(st.sampled_from([1, 1, 2, 4]), label="groups")
    cg = data.draw(st.integers(1, 4 // groups), label="C/G")
    og = data.draw(st.integers(1, 4 // groups), label="O/G")
    n = data.draw(st.integers(1, 3), label="N")
    k = data.draw(st.integers(1, 4), label="k")
    s, d = data.draw(st.integers(1, 3), label="stride"), data.draw(st.integers(1, 2), label="dilation")
    form = data.draw(st.sampled_from(["int", "pair", "valid", "same"]), label="padding_form")
    if form == "int":
        padding = data.draw(st.integers(0, 2), label="padding")
        pads = (padding, padding)
    elif form == "pair":
        padding = pads = (data.draw(st.integers(0, 2), label="lo"), data.draw(st.integers(0, 2), label="hi"))
    else:
        padding, pads = form, (0, 0)
    smallest = 1 if form == "same" else max(1, d * (k - 1) + 1 - sum(pads))
    length = data.draw(st.integers(smallest, max(smallest, 12)), label="L")
    if form == "same":
        pads = _same_pads(length, k, s, d)
    return dict(x_shape=(n, groups * cg, length), w_shape=(groups * og, cg, k),
                kwargs=dict(stride=s, padding=padding, dilation=d, groups=groups),
                naive=dict(stride=s, pads=pads, dilation=d, groups=groups))


def draw_conv_transpose2d(data):
    """A conv_transpose2d problem: x (N, Cin, H, W), w (Cin, Cout/G, kh, kw), output >= 1."""
    groups = data.draw(st.sampled_from([1, 1, 2, 3, 4]), label="groups")
    cig = data.draw(st.integers(1, 4 // groups), label="Cin/G")
    cog = data.draw(st.integers(1, 4 // groups), label="Cout/G")
    n = data.draw(st.integers(1, 3), label="N")
    h, wd = data.draw(st.integers(1, 5), label="H"), data.draw(st.integers(1, 5), label="W")
    kh, kw = (data.draw(st.integers(1, 3), label=k) for k in ("kh", "kw"))
    stride, s2 = _pair_or_int(data, 1, 3, "stride")
    dilation, d2 = _pair_or_int(data, 1, 2, "dilation")
    op2 = tuple(data.draw(st.integers(0, max(s2[i], d2[i]) - 1), label=f"output_padding{i}")
                for i in range(2))
    op = op2[0] if op2[0] == op2[1] and data.draw(st.booleans(), label="op_as_int") else op2
    # the largest symmetric padding that leaves an output of at least 1
    most = [((h, wd)[i] - 1) * s2[i] + d2[i] * ((kh, kw)[i] - 1) + op2[i] for i in range(2)]
    p2 = tuple(data.draw(st.integers(0, min(2, most[i] // 2)), label=f"padding{i}") for i in range(2))
    padding = p2[0] if p2[0] == p2[1] and data.draw(st.booleans(), label="p_as_int") else p2
    return dict(x_shape=(n, groups * cig, h, wd), w_shape=(groups * cig, cog, kh, kw),
                kwargs=dict(stride=stride, padding=padding, output_padding=op, groups=groups,
                            dilation=dilation),
                naive=dict(stride=s2, padding=p2, output_padding=op2, groups=groups, dilation=d2))


def _problem(data, case, with_bias: bool, out_channels: int):
    x = seeded(data, case["x_shape"], label="x_seed")
    w = seeded(data, case["w_shape"], label="w_seed")
    b = seeded(data, (out_channels,), label="b_seed") if with_bias else None
    return x, w, b


def _abs(a):
    return None if a is None else np.abs(a)


# --------------------------------------------------------------------------- forward vs naive

@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv2d_matches_naive_loops(data, with_bias):
    case = draw_conv2d(data)
    x, w, b = _problem(data, case, with_bias, case["w_shape"][0])
    expected, mag = naive_conv2d(x, w, b, **case["naive"])
    terms = int(np.prod(case["w_shape"][1:])) + 1                      # C/G kh kw products, b
    _assert_close(C.conv2d(x, w, b, **case["kwargs"]), expected, mag, terms, "conv2d")


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv1d_matches_naive_loops(data, with_bias):
    case = draw_conv1d(data)
    x, w, b = _problem(data, case, with_bias, case["w_shape"][0])
    expected, mag = naive_conv1d(x, w, b, **case["naive"])
    terms = int(np.prod(case["w_shape"][1:])) + 1
    _assert_close(C.conv1d(x, w, b, **case["kwargs"]), expected, mag, terms, "conv1d")


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv_transpose2d_matches_naive_loops(data, with_bias):
    case = draw_conv_transpose2d(data)
    groups = case["kwargs"]["groups"]
    x, w, b = _problem(data, case, with_bias, case["w_shape"][1] * groups)
    expected, mag = naive_conv_transpose2d(x, w, b, **case["naive"])
    # each output sums at most Cin/G kh kw products and b
    terms = case["x_shape"][1] // groups * int(np.prod(case["w_shape"][2:])) + 1
    _assert_close(C.conv_transpose2d(x, w, b, **case["kwargs"]), expected, mag, terms,
                  "conv_transpose2d")


@pytest.mark.parametrize(("kernel", "padding"), [((3, 2), 1), ((1, 2), 0)])
@pytest.mark.parametrize(("cin", "cout"), [(1, 4), (4, 1), (2, 2)])
@pytest.mark.parametrize("output_padding", [0, 1, (1, 0)])
def test_conv_transpose2d_output_padding_at_stride_1(kernel, padding, cin, cout, output_padding):
    """Stride 1, dilation 2: output_padding 1 adds a row (column) that no input reaches, so the
    cotangent of the equivalent conv2d is shorter than that conv2d's output. Cin 1 vs 4 per
    Cout steers the input-gradient code to its full-correlation and its scatter algorithm; a
    kernel height of 1 leaves no zero rows above the input to hide a misplaced window."""
    rng = np.random.default_rng(cin * 10 + cout)
    x, w = rng.standard_normal((2, cin, 4, 5)), rng.standard_normal((cin, cout, *kernel))
    b = rng.standard_normal(cout)
    op = (output_padding,) * 2 if isinstance(output_padding, int) else output_padding
    kw = dict(stride=1, padding=padding, output_padding=output_padding, dilation=2)
    expected, mag = naive_conv_transpose2d(x, w, b, (1, 1), (padding,) * 2, op, 1, (2, 2))
    _assert_close(C.conv_transpose2d(x, w, b, **kw), expected, mag, cin * kernel[0] * kernel[1] + 1,
                  "conv_transpose2d")
    c = rng.standard_normal(expected.shape)
    dx, dw, db = C.conv_transpose2d_vjp(x, w, b, c, **kw)
    tangents = [rng.standard_normal(a.shape) for a in (x, w, b)]
    magnitude = dot(np.abs(c), mag)
    assert_vjp_matches_fd(lambda *p: C.conv_transpose2d(*p, **kw), [x, w, b], tangents, c,
                          [dx, dw, db], magnitude)


# --------------------------------------------------------------------------- VJPs vs finite differences
# Each convolution is bilinear in (x, w) plus b: phi(s) is a quadratic, so the central
# difference has no truncation error and the check is bounded by rounding alone. The terms
# x w of each output can cancel: their magnitude, weighted by |cotangent|, is passed as
# extra_magnitude (as test_dense_vjp_matches_fd does with |x| |w|).

def _fd_check(f, vjp, data, x, w, b, out_shape, magnitude_fn):
    c = seeded(data, out_shape, label="cotangent_seed")
    dx, dw, db = vjp(x, w, b, c)
    primals, grads = [x, w], [dx, dw]
    if b is None:
        assert db is None
    else:
        primals.append(b)
        grads.append(db)
    tangents = [seeded(data, p.shape, label=f"tangent{j}_seed") for j, p in enumerate(primals)]
    magnitude = dot(np.abs(c), magnitude_fn(np.abs(x), np.abs(w), _abs(b)))
    assert_vjp_matches_fd(f, primals, tangents, c, grads, magnitude)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv2d_vjp_matches_fd(data, with_bias):
    case = draw_conv2d(data)
    kw = case["kwargs"]
    x, w, b = _problem(data, case, with_bias, case["w_shape"][0])

    def f(*p):
        return C.conv2d(*p, **kw)

    _fd_check(f, lambda x, w, b, c: C.conv2d_vjp(x, w, b, c, **kw), data, x, w, b,
              f(x, w, b).shape, f)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv1d_vjp_matches_fd(data, with_bias):
    case = draw_conv1d(data)
    kw = case["kwargs"]
    x, w, b = _problem(data, case, with_bias, case["w_shape"][0])

    def f(*p):
        return C.conv1d(*p, **kw)

    _fd_check(f, lambda x, w, b, c: C.conv1d_vjp(x, w, b, c, **kw), data, x, w, b,
              f(x, w, b).shape, f)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv_transpose2d_vjp_matches_fd(data, with_bias):
    case = draw_conv_transpose2d(data)
    kw = case["kwargs"]
    x, w, b = _problem(data, case, with_bias, case["w_shape"][1] * kw["groups"])

    def f(*p):
        return C.conv_transpose2d(*p, **kw)

    _fd_check(f, lambda x, w, b, c: C.conv_transpose2d_vjp(x, w, b, c, **kw), data, x, w, b,
              f(x, w, b).shape, f)


@given(data=st.data())
def test_input_gradient_algorithms_agree(data):
    """At stride 1 the input gradient is a full correlation or a scatter-add, chosen by shape;
    both must give the same dx, whichever the public VJP picks (dx sums O/G kh kw products)."""
    case = draw_conv2d(data, max_stride=1)
    nv = case["naive"]
    w = seeded(data, case["w_shape"], label="w_seed")
    out_hw = naive_conv2d(np.zeros(case["x_shape"]), w, None, **nv)[0].shape[2:]
    g = seeded(data, (case["x_shape"][0], case["w_shape"][0], *out_hw), label="g_seed")
    args = (case["x_shape"][2:], nv["pads"])
    scatter = C._grad_x_scatter(g, w, *args, (1, 1), nv["dilation"], nv["groups"])
    full = C._grad_x_full(g, w, *args, nv["dilation"], nv["groups"])
    mag = C._grad_x_scatter(np.abs(g), np.abs(w), *args, (1, 1), nv["dilation"], nv["groups"])
    terms = case["w_shape"][0] // nv["groups"] * int(np.prod(case["w_shape"][2:]))
    _assert_close(full, scatter, mag, terms, "full correlation vs scatter")


# --------------------------------------------------------------------------- adjoint identity

@given(data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(data):
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)>, with the output_padding that gives
    conv_transpose2d the size of x: op = (H + 2 p - d (k - 1) - 1) mod s (< s)."""
    case = draw_conv2d(data, forms=("int", "pair"))
    kw = case["kwargs"]
    nv = case["naive"]
    x, w, _ = _problem(data, case, False, 0)
    y_shape = C.conv2d(x, w, **kw).shape
    y = seeded(data, y_shape, label="y_seed")
    op = tuple((case["x_shape"][2 + i] + 2 * nv["pads"][i][0] - nv["dilation"][i]
                * (case["w_shape"][2 + i] - 1) - 1) % nv["stride"][i] for i in range(2))
    xt = C.conv_transpose2d(y, w, None, kw["stride"], kw["padding"], op, kw["groups"], kw["dilation"])
    assert xt.shape == x.shape
    lhs, rhs = dot(C.conv2d(x, w, **kw), y), dot(x, xt)
    # M = <|conv2d|(|x|, |w|), |y|>; each side sums at most C/G kh kw + O/G kh kw products per
    # element and then N C H W (or N O Ho Wo) elements.
    mag = dot(C.conv2d(np.abs(x), np.abs(w), **kw), np.abs(y))
    terms = (int(np.prod(case["w_shape"][1:])) + case["w_shape"][0] * int(np.prod(case["w_shape"][2:]))
             + max(x.size, y.size))
    assert abs(lhs - rhs) <= 2 * terms * EPS * mag + TINY, (lhs, rhs, mag)


# --------------------------------------------------------------------------- 'same' padding

@given(data=st.data())
def test_same_padding_gives_ceil_size(data):
    h, wd = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    kh, kw = data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw")
    s = (data.draw(st.integers(1, 3), label="sh"), data.draw(st.integers(1, 3), label="sw"))
    d = (data.draw(st.integers(1, 3), label="dh"), data.draw(st.integers(1, 3), label="dw"))
    y = C.conv2d(np.ones((1, 1, h, wd)), np.ones((1, 1, kh, kw)), stride=s, padding="same", dilation=d)
    assert y.shape[2:] == (math.ceil(h / s[0]), math.ceil(wd / s[1]))
    pads = C.conv2d_padding("same", (h, wd), (kh, kw), s, d)
    for (lo, hi) in pads:
        assert 0 <= lo <= hi <= lo + 1                                 # the odd pixel goes high
    y1 = C.conv1d(np.ones((1, 1, wd)), np.ones((1, 1, kw)), stride=s[1], padding="same", dilation=d[1])
    assert y1.shape[2] == math.ceil(wd / s[1])


@given(data=st.data())
def test_output_size_is_the_forward_shape(data):
    h, wd = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    k = (data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw"))
    kw = {"stride": (data.draw(st.integers(1, 3), label="sh"), data.draw(st.integers(1, 3), label="sw")),
          "dilation": (data.draw(st.integers(1, 3), label="dh"),
                       data.draw(st.integers(1, 3), label="dw")),
          "padding": data.draw(st.sampled_from(["same", "valid", 1, ((0, 2), (1, 0))]), label="padding")}
    pads = C.conv2d_padding(kw["padding"], (h, wd), k, kw["stride"], kw["dilation"])
    # window starts 0, s, 2s, ... whose dilated window fits inside the padded input
    windows = tuple(len(range(0, n + lo + hi - d * (kk - 1), s)) for n, (lo, hi), kk, s, d in
                    zip((h, wd), pads, k, kw["stride"], kw["dilation"], strict=True))
    if min(windows) < 1:
        with pytest.raises(ValueError):
            C.conv2d_output_size((h, wd), k, **kw)
        return
    assert C.conv2d_output_size((h, wd), k, **kw) == windows
    assert C.conv2d(np.ones((1, 1, h, wd)), np.ones((1, 1, *k)), **kw).shape[2:] == windows


def test_padding_specs_resolve():
    hw, k = (5, 6), (3, 3)
    assert C.conv2d_padding(2, hw, k, 1, 1) == ((2, 2), (2, 2))
    assert C.conv2d_padding((1, 2), hw, k, 1, 1) == ((1, 1), (2, 2))
    assert C.conv2d_padding(((0, 1), (2, 3)), hw, k, 1, 1) == ((0, 1), (2, 3))
    assert C.conv2d_padding("valid", hw, k, 1, 1) == ((0, 0), (0, 0))
    # stride 2, k 3: H 5 -> total (3 - 1) 2 + 3 - 5 = 2; W 6 -> (3 - 1) 2 + 3 - 6 = 1, high side
    assert C.conv2d_padding("same", hw, k, 2, 1) == ((1, 1), (0, 1))
    # even kernel, stride 1: total k - 1 = 3 -> (1, 2); dilation 2: 2 (4 - 1) = 6 -> (3, 3)
    assert C.conv2d_padding("same", hw, (4, 4), 1, (1, 2)) == ((1, 2), (3, 3))


# --------------------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_conv2d_matches_torch(data, with_bias):
    torch = need("torch", reason="the PyTorch comparison needs torch")
    F = torch.nn.functional
    case = draw_conv2d(data)
    kw, nv = case["kwargs"], case["naive"]
    x, w, b = _problem(data, case, with_bias, case["w_shape"][0])
    y = C.conv2d(x, w, b, **kw)
    g = seeded(data, y.shape, label="g_seed")
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    (t, bo), (le, r) = nv["pads"]
    yt = F.conv2d(F.pad(xt, (le, r, t, bo)), wt, bt, stride=nv["stride"], dilation=nv["dilation"],
                  groups=nv["groups"])
    yt.backward(torch.tensor(g))
    dx, dw, db = C.conv2d_vjp(x, w, b, g, **kw)
    mx, mw, mb = C.conv2d_vjp(np.abs(x), np.abs(w), _abs(b), np.abs(g), **kw)
    n_out = g.shape[0] * g.shape[2] * g.shape[3]
    kk = int(np.prod(case["w_shape"][2:]))
    # terms per element: y: C/G kh kw + 1; dx: O/G kh kw; dw and db: N Ho Wo
    _assert_close(y, yt.detach().numpy(), C.conv2d(np.abs(x), np.abs(w), _abs(b), **kw),
                  case["w_shape"][1] * kk + 1, "y")
    _assert_close(dx, xt.grad.numpy(), mx, case["w_shape"][0] // nv["groups"] * kk, "dx")
    _assert_close(dw, wt.grad.numpy(), mw, n_out, "dw")
    if with_bias:
        _assert_close(db, bt.grad.numpy(), mb, n_out, "db")


@given(data=st.data())
def test_conv1d_matches_torch(data):
    torch = need("torch")
    F = torch.nn.functional
    case = draw_conv1d(data)
    kw, nv = case["kwargs"], case["naive"]
    x, w, b = _problem(data, case, True, case["w_shape"][0])
    y = C.conv1d(x, w, b, **kw)
    g = seeded(data, y.shape, label="g_seed")
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv1d(F.pad(xt, nv["pads"]), wt, bt, stride=nv["stride"], dilation=nv["dilation"],
                  groups=nv["groups"])
    yt.backward(torch.tensor(g))
    dx, dw, db = C.conv1d_vjp(x, w, b, g, **kw)
    mx, mw, mb = C.conv1d_vjp(np.abs(x), np.abs(w), np.abs(b), np.abs(g), **kw)
    n_out, k = g.shape[0] * g.shape[2], case["w_shape"][2]
    _assert_close(y, yt.detach().numpy(), C.conv1d(np.abs(x), np.abs(w), np.abs(b), **kw),
                  case["w_shape"][1] * k + 1, "y")
    _assert_close(dx, xt.grad.numpy(), mx, case["w_shape"][0] // nv["groups"] * k, "dx")
    _assert_close(dw, wt.grad.numpy(), mw, n_out, "dw")
    _assert_close(db, bt.grad.numpy(), mb, n_out, "db")


@given(data=st.data())
def test_conv_transpose2d_matches_torch(data):
    torch = need("torch")
    F = torch.nn.functional
    case = draw_conv_transpose2d(data)
    kw = case["kwargs"]
    groups = kw["groups"]
    x, w, b = _problem(data, case, True, case["w_shape"][1] * groups)
    y = C.conv_transpose2d(x, w, b, **kw)
    g = seeded(data, y.shape, label="g_seed")
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv_transpose2d(xt, wt, bt, **kw)
    yt.backward(torch.tensor(g))
    dx, dw, db = C.conv_transpose2d_vjp(x, w, b, g, **kw)
    mx, mw, mb = C.conv_transpose2d_vjp(np.abs(x), np.abs(w), np.abs(b), np.abs(g), **kw)
    kk = int(np.prod(case["w_shape"][2:]))
    # terms per element: y: Cin/G kh kw + 1; dx: Cout/G kh kw; dw: N H W; db: N Ho Wo
    _assert_close(y, yt.detach().numpy(),
                  C.conv_transpose2d(np.abs(x), np.abs(w), np.abs(b), **kw),
                  case["x_shape"][1] // groups * kk + 1, "y")
    _assert_close(dx, xt.grad.numpy(), mx, case["w_shape"][1] * kk, "dx")
    _assert_close(dw, wt.grad.numpy(), mw, x.shape[0] * x.shape[2] * x.shape[3], "dw")
    _assert_close(db, bt.grad.numpy(), mb, g.shape[0] * g.shape[2] * g.shape[3], "db")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@given(data=st.data())
def test_same_padding_matches_torch_at_stride_1(data):
    torch = need("torch")
    F = torch.nn.functional
    h, wd = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    kh, kw = data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw")
    d = (data.draw(st.integers(1, 2), label="dh"), data.draw(st.integers(1, 2), label="dw"))
    x, w = seeded(data, (2, 3, h, wd), label="x_seed"), seeded(data, (2, 3, kh, kw), label="w_seed")
    y = C.conv2d(x, w, padding="same", dilation=d)
    yt = F.conv2d(torch.tensor(x), torch.tensor(w), padding="same", dilation=d).numpy()
    _assert_close(y, yt, C.conv2d(np.abs(x), np.abs(w), padding="same", dilation=d), 3 * kh * kw, "y")
    x1, w1 = x[:, :, 0, :], w[:, :, 0, :]
    y1 = C.conv1d(x1, w1, padding="same", dilation=d[1])
    yt1 = F.conv1d(torch.tensor(x1), torch.tensor(w1), padding="same", dilation=d[1]).numpy()
    _assert_close(y1, yt1, C.conv1d(np.abs(x1), np.abs(w1), padding="same", dilation=d[1]), 3 * kh,
                  "y1")


# --------------------------------------------------------------------------- bad input

def _x(*shape):
    return np.ones(shape)


CONV2D_BAD = [
    (dict(x=_x(3, 5, 5), w=_x(2, 3, 3, 3)), "x"),                          # x not 4-D
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3)), "w"),                          # w not 4-D
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 2, 3, 3)), "w"),                       # channel mismatch
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 1, 3, 3), groups=2), "groups"),         # 2 does not divide C 3
    (dict(x=_x(1, 4, 5, 5), w=_x(3, 2, 3, 3), groups=2), "groups"),         # 2 does not divide O 3
    (dict(x=_x(1, 4, 5, 5), w=_x(4, 4, 3, 3), groups=0), "groups"),
    (dict(x=_x(1, 3, 2, 5), w=_x(2, 3, 3, 3)), "x"),                       # output height 0
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), dilation=3), "x"),           # dilated kernel 7 > 5
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding=-1), "padding"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding=((0, 1), (-1, 0))), "padding"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding="full"), "padding"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding=1.5), "padding"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding=(1, 2, 3)), "padding"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), stride=0), "stride"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), stride=(1, 1, 1)), "stride"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), dilation=(1, 0)), "dilation"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), b=_x(3)), "b"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), b=_x(1, 2)), "b"),
    (dict(x=np.full((1, 3, 5, 5), NAN), w=_x(2, 3, 3, 3)), "x"),
    (dict(x=_x(1, 3, 5, 5), w=np.full((2, 3, 3, 3), NAN)), "w"),
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), b=np.array([0.0, NAN])), "b"),
]


@pytest.mark.parametrize(("kw", "arg"), CONV2D_BAD)
def test_conv2d_rejects(kw, arg):
    kw = dict(kw)
    x, w = kw.pop("x"), kw.pop("w")
    with raises_for(arg):
        C.conv2d(x, w, **kw)
    with raises_for(arg):
        C.conv2d_vjp(x, w, kw.pop("b", None), _x(1, 2, 3, 3), **kw)


def test_conv2d_vjp_rejects_a_wrong_cotangent():
    with raises_for("g"):
        C.conv2d_vjp(_x(1, 3, 5, 5), _x(2, 3, 3, 3), None, _x(1, 2, 3, 4))
    with raises_for("g"):
        C.conv2d_vjp(_x(1, 3, 5, 5), _x(2, 3, 3, 3), None, np.full((1, 2, 3, 3), NAN))


CONV1D_BAD = [
    (dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3)), "x"),                           # x not 3-D
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3, 3)), "w"),
    (dict(x=_x(1, 3, 5), w=_x(2, 2, 3)), "w"),
    (dict(x=_x(1, 3, 5), w=_x(2, 1, 3), groups=2), "groups"),
    (dict(x=_x(1, 3, 2), w=_x(2, 3, 3)), "x"),                              # output length 0
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3), padding=(0, -1)), "padding"),
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3), padding=((0, 1), (1, 0))), "padding"),
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3), padding="causal"), "padding"),
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3), stride=(1, 1)), "stride"),
    (dict(x=_x(1, 3, 5), w=_x(2, 3, 3), dilation=0), "dilation"),
    (dict(x=np.full((1, 3, 5), NAN), w=_x(2, 3, 3)), "x"),
]


@pytest.mark.parametrize(("kw", "arg"), CONV1D_BAD)
def test_conv1d_rejects(kw, arg):
    kw = dict(kw)
    x, w = kw.pop("x"), kw.pop("w")
    with raises_for(arg):
        C.conv1d(x, w, **kw)
    with raises_for(arg):
        C.conv1d_vjp(x, w, None, _x(1, 2, 3), **kw)


CONV_T_BAD = [
    (dict(x=_x(3, 4, 4), w=_x(3, 2, 3, 3)), "x"),
    (dict(x=_x(1, 3, 4, 4), w=_x(2, 2, 3, 3)), "w"),                        # w rows != Cin
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), groups=2), "groups"),          # 2 does not divide 3
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), b=_x(3)), "b"),                # Cout is 2
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), stride=2, output_padding=2), "output_padding"),
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), output_padding=1), "output_padding"),  # s = d = 1
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), output_padding=-1), "output_padding"),
    (dict(x=_x(1, 3, 1, 1), w=_x(3, 2, 1, 1), padding=1), "padding"),        # output size -1
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), padding="same"), "padding"),
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), padding=((0, 1), (1, 0))), "padding"),
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), padding=-1), "padding"),
    (dict(x=_x(1, 3, 4, 4), w=_x(3, 2, 3, 3), dilation=0), "dilation"),
    (dict(x=np.full((1, 3, 4, 4), NAN), w=_x(3, 2, 3, 3)), "x"),
]


@pytest.mark.parametrize(("kw", "arg"), CONV_T_BAD)
def test_conv_transpose2d_rejects(kw, arg):
    kw = dict(kw)
    x, w = kw.pop("x"), kw.pop("w")
    with raises_for(arg):
        C.conv_transpose2d(x, w, **kw)
    with raises_for(arg):
        C.conv_transpose2d_vjp(x, w, kw.pop("b", None), _x(1, 2, 6, 6), **kw)


def test_conv_transpose2d_vjp_rejects_a_wrong_cotangent():
    with raises_for("g"):
        C.conv_transpose2d_vjp(_x(1, 3, 4, 4), _x(3, 2, 3, 3), None, _x(1, 2, 6, 5))
