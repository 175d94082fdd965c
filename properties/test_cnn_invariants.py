"""Invariants of the convolutional family, checked on the backend's own results.

Each bound is assembled from the tolerances (properties/tolerance.py) of the backend results
it combines: a sum of results carries the sum of their tolerances, a result scaled by a
carries |a| times its tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backends import harness
from properties import cnn_cases as CK
from properties.checks import draw_inputs, expected_and_tolerance, unsupported_example
from properties.coverage import stratum
from properties.inputs import Inputs
from properties.record import current_record
from properties.specs import SPECS
from properties.strategies import conventions, seeded_array
from properties.tolerance import EPS, FACTOR, assert_within, round_to
from reference import registry

pytestmark = pytest.mark.dtypes("float32", "float64")


def _call(backend, name, args, kwargs, dtype):
    with unsupported_example():
        return harness.call(backend, name, args, kwargs, dtype)


def _conv_problem(data, dtype, groups=1, kernel=None, spatial=(1, 6), in_per_group=None,
                  dilation=1):
    n = data.draw(st.integers(1, 3), label="N")
    c = groups * (in_per_group or data.draw(st.integers(1, 3), label="in_per_group"))
    o = groups * data.draw(st.integers(1, 3), label="out_per_group")
    k = kernel or data.draw(st.integers(1, 3), label="kernel")
    span = dilation * (k - 1) + 1
    h, w = (data.draw(st.integers(span + spatial[0] - 1, span + spatial[1]), label=s)
            for s in "HW")
    x = seeded_array(data.draw, (n, c, h, w), dtype)
    wt = seeded_array(data.draw, (o, c // groups, k, k), dtype, 0.5)
    return x, wt


@pytest.mark.component("conv2d")
@given(data=st.data())
def test_conv2d_translation_equivariance(backend, dtype, data):
    """Stride 1, 'valid': cropping t rows and l columns off the input crops the output alike,
    conv(x[..., t:, l:]) = conv(x)[..., t:, l:]."""
    x, w = _conv_problem(data, dtype, spatial=(2, 6))
    t, left = data.draw(st.integers(0, 1), label="t"), data.draw(st.integers(0, 1), label="l")
    kw = {"padding": "valid"}
    _, tol = expected_and_tolerance("conv2d", (x, w), kw, dtype, w[0].size)
    y = _call(backend, "conv2d", (x, w), kw, dtype)
    yc = _call(backend, "conv2d", (x[..., t:, left:], w), kw, dtype)
    assert_within("conv(crop(x)) vs crop(conv(x))", yc, y[..., t:, left:],
                  2 * tol[..., t:, left:])


@pytest.mark.component("conv2d")
@pytest.mark.parametrize("argument", ["input", "weight"])
@given(data=st.data())
def test_conv2d_linearity(backend, dtype, argument, data):
    """conv(a u + b v, w) = a conv(u, w) + b conv(v, w), and likewise in the weight, for every
    configuration class of the conv2d case (padding forms, groups and dilation, sizes)."""
    inp = draw_inputs(data, backend, "conv2d", dtype)
    (x, w, _), kw = inp.primals, inp.kwargs
    other = seeded_array(data.draw, (x if argument == "input" else w).shape, dtype,
                         1.0 if argument == "input" else 0.5)
    a, b = (float(np.float32(data.draw(st.sampled_from((-2.0, -0.5, 0.25, 1.0, 3.0)), label=s)))
            for s in "ab")

    def args(z):
        return (z, w) if argument == "input" else (x, z)

    first = x if argument == "input" else w
    mixed = np.asarray(a * first + b * other)
    mixed_rounded = mixed.astype(dtype).astype(np.float64)
    terms = w[0].size
    _, t_u = expected_and_tolerance("conv2d", args(first), kw, dtype, terms)
    _, t_v = expected_and_tolerance("conv2d", args(other), kw, dtype, terms)
    _, t_m = expected_and_tolerance("conv2d", args(mixed_rounded), kw, dtype, terms)
    # the input a u + b v is itself rounded to the dtype: its conv moves by conv of the rounding
    drift = np.abs(registry.forward("conv2d", args(mixed_rounded - mixed), **kw))
    y_u = _call(backend, "conv2d", args(first), kw, dtype)
    y_v = _call(backend, "conv2d", args(other), kw, dtype)
    y_m = _call(backend, "conv2d", args(mixed_rounded), kw, dtype)
    assert_within(f"conv linear in its {argument}", y_m, a * y_u + b * y_v,
                  t_m + abs(a) * t_u + abs(b) * t_v + drift)


@pytest.mark.component("conv2d")
@given(data=st.data())
def test_conv2d_1x1_is_dense_over_channels(backend, dtype, data):
    """A 1x1 convolution is a dense layer applied to every pixel's channel vector."""
    x, w = _conv_problem(data, dtype, kernel=1)
    n, c, h, wd = x.shape
    o = w.shape[0]
    pixels = x.transpose(0, 2, 3, 1).reshape(-1, c)
    _, t_conv = expected_and_tolerance("conv2d", (x, w), {}, dtype, c)
    _, t_dense = expected_and_tolerance("dense", (pixels, w[:, :, 0, 0].T, np.zeros(o)), {},
                                        dtype, c + 1)
    y = _call(backend, "conv2d", (x, w), {}, dtype)
    d = _call(backend, "dense", (pixels, w[:, :, 0, 0].T, np.zeros(o)), {}, dtype)
    as_image = d.reshape(n, h, wd, o).transpose(0, 3, 1, 2)
    assert_within("conv 1x1 vs dense", y, as_image,
                  t_conv + t_dense.reshape(n, h, wd, o).transpose(0, 3, 1, 2))


@pytest.mark.component("conv2d")
@pytest.mark.parametrize("grouping", ["depthwise", "grouped"])
@given(data=st.data())
def test_conv2d_groups_are_contiguous_blocks(backend, dtype, grouping, data):
    """Group j convolves the j-th contiguous block of C / G input channels with the j-th block
    of O / G filters alone: depthwise (one channel per group), or grouped with 2-3 channels per
    group (where taking every G-th channel instead of a block changes the result)."""
    g = data.draw(st.integers(1 if grouping == "depthwise" else 2, 3), label="groups")
    x, w = _conv_problem(data, dtype, groups=g, in_per_group=1 if grouping == "depthwise" else
                         data.draw(st.integers(2, 3), label="in_per_group"))
    cg, m = x.shape[1] // g, w.shape[0] // g
    kw = {"groups": g, "padding": 1}
    _, tol = expected_and_tolerance("conv2d", (x, w), kw, dtype, w[0].size)
    y = _call(backend, "conv2d", (x, w), kw, dtype)
    for j in range(g):
        part = _call(backend, "conv2d", (x[:, j * cg:(j + 1) * cg], w[j * m:(j + 1) * m]),
                     {"padding": 1}, dtype)
        assert_within(f"group {j} of the grouped conv", y[:, j * m:(j + 1) * m], part,
                      2 * tol[:, j * m:(j + 1) * m])


@pytest.mark.component("conv_transpose2d")
@given(data=st.data())
def test_conv_transpose2d_is_adjoint_of_conv2d(backend, dtype, data):
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for the same stride, padding, dilation,
    groups, with the output padding that gives back x's size, in every GROUPS_DILATION class."""
    record = current_record()
    record.declared = {"groups_dilation": CK.GROUPS_DILATION}
    gd = stratum(data, "groups_dilation", CK.GROUPS_DILATION)
    g = 2 if "groups" in gd else 1
    d = data.draw(st.integers(2, 3), label="dilation") if "dilation" in gd else 1
    x, w = _conv_problem(data, dtype, groups=g, kernel=data.draw(st.integers(
        2 if d > 1 else 1, 3), label="kernel"), dilation=d)
    s = data.draw(st.integers(1, 3), label="stride")
    reach = d * (w.shape[2] - 1)  # the kernel's span less one
    p = data.draw(st.integers(0, reach), label="padding")
    conv_kw = {"stride": s, "padding": p, "groups": g, "dilation": d}
    h_out = (x.shape[2] + 2 * p - reach - 1) // s + 1
    w_out = (x.shape[3] + 2 * p - reach - 1) // s + 1
    op = (x.shape[2] + 2 * p - reach - 1 - (h_out - 1) * s,
          x.shape[3] + 2 * p - reach - 1 - (w_out - 1) * s)
    y = seeded_array(data.draw, (x.shape[0], w.shape[0], h_out, w_out), dtype)
    t_kw = {"stride": s, "padding": p, "output_padding": op, "groups": g, "dilation": d}
    _, t_conv = expected_and_tolerance("conv2d", (x, w), conv_kw, dtype, w[0].size)
    _, t_tr = expected_and_tolerance("conv_transpose2d", (y, w), t_kw, dtype, w[0].size)
    cx = _call(backend, "conv2d", (x, w), conv_kw, dtype)
    ty = _call(backend, "conv_transpose2d", (y, w), t_kw, dtype)
    lhs, rhs = float(np.sum(cx * y)), float(np.sum(x * ty))
    # each side's error: sum |y| tol(conv) resp. sum |x| tol(conv_T); the float64 dot products
    # add FACTOR eps64 per term of magnitude
    mag = float(np.sum(np.abs(cx * y)) + np.sum(np.abs(x * ty)))
    bound = float(np.sum(np.abs(y) * t_conv) + np.sum(np.abs(x) * t_tr)) + \
        FACTOR["float64"] * EPS["float64"] * np.sqrt(x.size + y.size) * mag
    assert_within("<conv(x), y> vs <x, conv_T(y)>", np.asarray(lhs), np.asarray(rhs), bound)


@pytest.mark.component("max_pool2d")
@given(data=st.data())
def test_max_pool2d_window_gradient_sums_to_upstream(backend, dtype, data):
    """Non-overlapping windows (stride = kernel): the gradient inside each window sums to that
    window's upstream gradient and is exactly 0 off the window's maxima, ties included (small
    integers: many ties)."""
    k = data.draw(st.integers(1, 3), label="kernel")
    n, c = data.draw(st.integers(1, 2), label="N"), data.draw(st.integers(1, 3), label="C")
    ho, wo = data.draw(st.integers(1, 3), label="Ho"), data.draw(st.integers(1, 3), label="Wo")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.integers(-2, 3, size=(n, c, ho * k, wo * k)).astype(np.float64)
    kw = conventions(data, backend, "max_pool2d", {"kernel_size": k, "ties": "first"})
    g = seeded_array(data.draw, (n, c, ho, wo), dtype)
    with unsupported_example():
        _, (dx,) = harness.call_vjp(backend, "max_pool2d", (x,), kw, g, dtype)
    sums = dx.reshape(n, c, ho, k, wo, k).sum(axis=(3, 5))
    # the window sum adds at most k^2 entries, each exact (one gradient routed, or g / m
    # shared): rounding of the shares only
    bound = FACTOR[dtype] * EPS[dtype] * k * k * np.abs(g)
    assert_within("window gradient sum vs upstream", sums, g, bound)
    y = registry.forward("max_pool2d", (x,), **kw)
    off_max = x != np.repeat(np.repeat(y, k, axis=2), k, axis=3)
    assert_within("gradient off the window maxima", np.where(off_max, dx, 0.0),
                  np.zeros_like(dx), np.zeros_like(dx))


#: the tie conventions of a max-pool gradient (a configuration class of the tie property)
TIES = ("first", "split")


@pytest.mark.component("max_pool2d")
@given(data=st.data())
def test_max_pool2d_tie_convention(backend, dtype, data):
    """Windows with tied maxima route the gradient by the convention the backend declares
    ('first': all of it to the first maximum; 'split': shared evenly)."""
    k = data.draw(st.integers(2, 3), label="kernel")
    s = data.draw(st.integers(1, k), label="stride")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.integers(0, 2, size=(1, 2, k + 2 * s, k + s)).astype(np.float64)
    record = current_record()
    record.declared = {"ties": TIES}
    kw = conventions(data, backend, "max_pool2d",
                     {"kernel_size": k, "stride": s, "ties": stratum(data, "ties", TIES)})
    record.note_class("ties", kw["ties"])  # the backend's convention applied
    out = registry.forward("max_pool2d", (x,), **kw)
    g = seeded_array(data.draw, out.shape, dtype)
    expected = registry.vjp("max_pool2d", (x,), g, **kw)[0]
    with unsupported_example():
        _, (dx,) = harness.call_vjp(backend, "max_pool2d", (x,), kw, g, dtype)
    (m,) = registry.vjp("max_pool2d", (x,), np.abs(g), **kw)
    assert_within(f"max-pool gradient with ties ({kw['ties']})", dx, expected,
                  FACTOR[dtype] * EPS[dtype] * k * k * m)


#: the PAD_COUNT classes where a constant pools to itself (padding counted would not)
CONSTANT_PAD_COUNT = ("unpadded", "exclude_pad")


@pytest.mark.parametrize("component", ["max_pool2d", "avg_pool2d"])
@given(data=st.data())
def test_pooling_a_constant_gives_the_constant(backend, dtype, component, data):
    """Every window of a constant image pools to the constant (avg: padding left out of the
    divisor, or no padding; in ceil_mode the overhang past the input is never counted), in
    every CEIL class."""
    record = current_record()
    avg = component == "avg_pool2d"
    record.declared = {"ceil": CK.CEIL, **({"pad_count": CONSTANT_PAD_COUNT} if avg else {})}
    ceil = stratum(data, "ceil", CK.CEIL)
    padded = stratum(data, "pad_count", CONSTANT_PAD_COUNT) != "unpadded" if avg else None
    kernel, ks, stride, padding = CK.pool_config(data, False, ceil, padded)
    c = float(np.float32(data.draw(st.floats(-100, 100, width=32), label="c")))
    sizes = tuple(data.draw(st.integers(k, k + 4), label=f"size_{i}") for i, k in enumerate(ks))
    x = np.full((1, 2, *sizes), c)
    kw = {"kernel_size": kernel, "stride": stride, "padding": padding,
          "ceil_mode": ceil != "floor"}
    if avg:  # without padding, both divisors count the real elements
        kw["count_include_pad"] = not padded and data.draw(st.booleans(),
                                                             label="count_include_pad")
    assume(ceil != "ceil_overhang" or CK.pool_classes(x, **kw) == ceil)
    kw = conventions(data, backend, component, kw)
    for dimension, cls in SPECS[component].classify(Inputs((x,), kw)).items():
        record.note_class(dimension, cls)  # what the backend runs, its conventions applied
    _, tol = expected_and_tolerance(component, (x,), kw, dtype, int(np.prod(ks)))
    y = _call(backend, component, (x,), kw, dtype)
    assert_within(f"{component} of a constant", y, np.full_like(y, c), tol)


def _bn_kwargs(data, backend, training):
    kw = {"training": training, "momentum": 0.1, "eps": 1e-5,
          "momentum_convention": "torch", "unbiased_running_var": True, "variance": "two_pass"}
    return conventions(data, backend, "batch_norm", kw)


@pytest.mark.component("batch_norm")
@given(data=st.data())
def test_batch_norm_train_standardises(backend, dtype, data):
    """Training mode without affine: per channel, mean 0 and biased variance var / (var + eps)."""
    n, c = data.draw(st.integers(2, 6), label="N"), data.draw(st.integers(1, 3), label="C")
    shape = (n, c, 3, 2)
    x = seeded_array(data.draw, shape, dtype, 2.0) + \
        seeded_array(data.draw, (1, c, 1, 1), dtype, 3.0)
    x = x.astype(dtype).astype(np.float64)
    kw = {"weight": None, "bias": None, "running_mean": np.zeros(c), "running_var": np.ones(c),
          **_bn_kwargs(data, backend, True)}
    (y_ref, *_), (tol, *_) = expected_and_tolerance("batch_norm", (x,), kw, dtype, n * 6)
    y, _, _ = _call(backend, "batch_norm", (x,), kw, dtype)
    axes = (0, 2, 3)
    var = x.var(axis=axes)
    assert_within("per-channel mean", y.mean(axis=axes), np.zeros(c), tol.mean(axis=axes))
    # |var(y_b) - var(y)| <= mean(2 |y| e + e^2) for per-element errors e <= tol
    assert_within("per-channel variance", y.var(axis=axes), var / (var + kw["eps"]),
                  (2 * np.abs(y_ref) * tol + tol**2).mean(axis=axes) + 2 * tol.mean(axis=axes) ** 2)


@pytest.mark.component("batch_norm")
@given(data=st.data())
def test_batch_norm_eval_uses_running_statistics(backend, dtype, data):
    """Eval mode: each example is normalised with the running statistics alone (the output of
    one example does not depend on the rest of the batch) and the statistics stay unchanged."""
    n, c = data.draw(st.integers(2, 5), label="N"), data.draw(st.integers(1, 3), label="C")
    x = seeded_array(data.draw, (n, c, 2, 2), dtype)
    weight, bias = seeded_array(data.draw, (c,), dtype), seeded_array(data.draw, (c,), dtype)
    rm = seeded_array(data.draw, (c,), dtype)
    rv = np.abs(seeded_array(data.draw, (c,), dtype)) + 0.5
    rv = rv.astype(dtype).astype(np.float64)
    kw = {"running_mean": rm, "running_var": rv, **_bn_kwargs(data, backend, False)}
    _, (tol, *_) = expected_and_tolerance("batch_norm", (x, weight, bias), kw, dtype, 1)
    y, rm_b, rv_b = _call(backend, "batch_norm", (x, weight, bias), kw, dtype)
    one, _, _ = _call(backend, "batch_norm", (x[:1], weight, bias), kw, dtype)
    assert_within("eval output of example 0 alone vs in the batch", one, y[:1], 2 * tol[:1])
    assert_within("running mean unchanged", rm_b, rm, np.zeros_like(rm))
    assert_within("running var unchanged", rv_b, rv, np.zeros_like(rv))


#: a mean whose square swamps the variance in the dtype (mean^2 eps / var = 12 in float32,
#: 2e4 in float64): E[x^2] - E[x]^2 loses the variance there
_LARGE_MEAN = {"float32": 1e4, "float64": 1e10}


@pytest.mark.component("batch_norm")
@given(data=st.data())
def test_batch_norm_large_mean_keeps_unit_std(backend, dtype, data):
    """float32 input with mean 1e4 and std 1 (float64: mean 1e10): training-mode output still
    has std near 1, whatever variance algorithm the backend declares. An E[x^2] - E[x]^2
    variance cancels here (1e8 + 1 in float32 keeps no trace of the 1): the reference and its
    tolerance are the two-pass variance's."""
    n, c = data.draw(st.integers(4, 8), label="N"), data.draw(st.integers(1, 3), label="C")
    x = round_to(_LARGE_MEAN[dtype] + seeded_array(data.draw, (n, c, 4, 4), "float64"), dtype)
    kw = {"weight": None, "bias": None, "running_mean": np.zeros(c), "running_var": np.ones(c),
          **_bn_kwargs(data, backend, True)}
    (y_ref, *_), (tol, *_) = expected_and_tolerance("batch_norm", (x,), {**kw, "variance": "two_pass"},
                                                    dtype, n * 16)
    y, _, _ = _call(backend, "batch_norm", (x,), kw, dtype)
    axes = (0, 2, 3)
    # std is 1-Lipschitz in the root-mean-square of the change: |std(y_b) - std(y)| <= rms(tol)
    assert_within("per-channel std", y.std(axis=axes), y_ref.std(axis=axes),
                  np.sqrt((tol**2).mean(axis=axes)))
