"""Cases of the convolutional family: configurations valid by construction.

Every drawn configuration has an output of at least one element (the input size is drawn
after the kernel, stride, dilation and padding, from the sizes that fit). Max-pool inputs
are tie-free (distinct multiples of 1/8, exact in every dtype) so each window has one
maximum and the gradient is defined; the tie convention has its own property.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from properties.inputs import Case, Inputs
from properties.strategies import floats_array
from properties.tolerance import round_to
from reference.batchnorm import VARIANCES


def _size(data, kernel: int, dilation: int, pad_total: int, label: str, spread: int = 4) -> int:
    """An input size that leaves at least one window: size + pads >= d (k - 1) + 1."""
    need = max(1, dilation * (kernel - 1) + 1 - pad_total)
    return data.draw(st.integers(need, need + spread), label=label)


def _int_or_pair(data, lo: int, hi: int, label: str) -> tuple[Any, tuple[int, int]]:
    """(as passed, as a pair): an int, or a pair of possibly different ints."""
    if data.draw(st.booleans(), label=f"{label}_is_int"):
        v = data.draw(st.integers(lo, hi), label=label)
        return v, (v, v)
    pair = (data.draw(st.integers(lo, hi), label=f"{label}_h"),
            data.draw(st.integers(lo, hi), label=f"{label}_w"))
    return pair, pair


def _conv_padding(data, ndim: int) -> tuple[Any, list[tuple[int, int]] | None]:
    """(padding as passed, per-dim (low, high) or None for 'same')."""
    forms = ("int", "pair", "explicit", "valid", "same") if ndim == 2 else \
        ("int", "explicit", "valid", "same")
    form = data.draw(st.sampled_from(forms), label="padding_form")
    if form == "valid":
        return "valid", [(0, 0)] * ndim
    if form == "same":
        return "same", None
    if form == "int":
        p = data.draw(st.integers(0, 2), label="padding")
        return p, [(p, p)] * ndim
    if form == "pair":
        ph, pw = (data.draw(st.integers(0, 2), label=f"padding_{k}") for k in "hw")
        return (ph, pw), [(ph, ph), (pw, pw)]
    pads = [tuple(data.draw(st.integers(0, 2), label=f"padding_{d}_{k}") for k in ("lo", "hi"))
            for d in range(ndim)]
    return (tuple(pads) if ndim == 2 else pads[0]), pads


def _conv_config(data) -> tuple[Any, ...]:
    """(groups, in and out channels per group, N, kernel as a pair, stride and dilation as
    passed and as pairs)."""
    g = data.draw(st.sampled_from((1, 1, 2, 3)), label="groups")
    cg = data.draw(st.integers(1, 3), label="in_per_group")
    og = data.draw(st.integers(1, 2), label="out_per_group")
    n = data.draw(st.integers(1, 3), label="N")
    _, ks = _int_or_pair(data, 1, 3, "kernel")
    stride, ss = _int_or_pair(data, 1, 3, "stride")
    dilation, ds = _int_or_pair(data, 1, 2, "dilation")
    return g, cg, og, n, ks, stride, ss, dilation, ds


def conv(ndim: int) -> Case:
    def case(data, dtype, tail):
        g, cg, og, n, ks, stride, ss, dilation, ds = _conv_config(data)
        if ndim == 1:
            stride, dilation = ss[0], ds[0]
        padding, pads = _conv_padding(data, ndim)
        sizes = tuple(data.draw(st.integers(1, 6), label=f"size_{d}") if pads is None else
                      _size(data, ks[d], ds[d], sum(pads[d]), f"size_{d}") for d in range(ndim))
        x = data.draw(floats_array((n, g * cg, *sizes), -2.0, 2.0, dtype), label="x")
        w = data.draw(floats_array((g * og, cg, *ks[:ndim]), -1.0, 1.0, dtype), label="w")
        b = data.draw(floats_array((g * og,), -1.0, 1.0, dtype), label="b")
        kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
        return Inputs((x, w, b), kwargs, terms=cg * int(np.prod(ks[:ndim])) + 1)
    return case


def conv_transpose2d(data, dtype, tail):
    g, cg, og, n, ks, stride, ss, dilation, ds = _conv_config(data)
    # 2p <= d (k - 1) keeps the output size (H - 1) s - 2p + d (k - 1) + op + 1 >= 1
    ps = tuple(data.draw(st.integers(0, ds[i] * (ks[i] - 1) // 2), label=f"padding_{i}")
               for i in range(2))
    ops = tuple(data.draw(st.integers(0, max(ss[i], ds[i]) - 1), label=f"output_padding_{i}")
                for i in range(2))
    sizes = tuple(data.draw(st.integers(1, 4), label=f"size_{i}") for i in range(2))
    x = data.draw(floats_array((n, g * cg, *sizes), -2.0, 2.0, dtype), label="x")
    w = data.draw(floats_array((g * cg, og, *ks), -1.0, 1.0, dtype), label="w")
    b = data.draw(floats_array((g * og,), -1.0, 1.0, dtype), label="b")
    kwargs = {"stride": stride, "padding": ps, "output_padding": ops, "groups": g,
              "dilation": dilation}
    # each output element sums over in-channels of its group and the kernel taps that reach it
    return Inputs((x, w, b), kwargs, terms=cg * ks[0] * ks[1] + 1)


def _pool_config(data):
    kernel, ks = _int_or_pair(data, 1, 3, "kernel_size")
    stride, _ = _int_or_pair(data, 1, 3, "stride") if data.draw(st.booleans(), label="stride_given") \
        else (None, None)
    # torch's rule: padding <= kernel // 2 in each dimension
    padding = tuple(data.draw(st.integers(0, k // 2), label=f"padding_{i}") for i, k in enumerate(ks))
    return kernel, ks, stride, padding


def max_pool2d(data, dtype, tail):
    kernel, ks, stride, padding = _pool_config(data)
    dilation, ds = _int_or_pair(data, 1, 2, "dilation")
    n, c = data.draw(st.integers(1, 2), label="N"), data.draw(st.integers(1, 2), label="C")
    # at least d rows: every window then holds an input element, not only padding
    sizes = tuple(max(ds[i], _size(data, ks[i], ds[i], 2 * padding[i], f"size_{i}", 2))
                  for i in range(2))
    shape = (n, c, *sizes)
    # distinct multiples of 1/8 in [-16, 16) (at most 2 * 2 * 7 * 7 = 196 of them): exact in
    # bfloat16, so no window has a tie
    count = int(np.prod(shape))
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    x = (np.random.default_rng(seed).permutation(256)[:count] - 128) / 8.0
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
              "ceil_mode": data.draw(st.booleans(), label="ceil_mode"),
              "ties": data.draw(st.sampled_from(("first", "split")), label="ties")}
    return Inputs((round_to(x.reshape(shape), dtype),), kwargs,
                  terms=int(np.prod(ks)))


def avg_pool2d(data, dtype, tail):
    kernel, ks, stride, padding = _pool_config(data)
    n, c = data.draw(st.integers(1, 2), label="N"), data.draw(st.integers(1, 3), label="C")
    sizes = tuple(_size(data, ks[i], 1, 2 * padding[i], f"size_{i}") for i in range(2))
    x = data.draw(floats_array((n, c, *sizes), -2.0, 2.0, dtype), label="x")
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding,
              "ceil_mode": data.draw(st.booleans(), label="ceil_mode"),
              "count_include_pad": data.draw(st.booleans(), label="count_include_pad")}
    return Inputs((x,), kwargs, terms=int(np.prod(ks)))


def global_avg_pool2d(data, dtype, tail):
    shape = tuple(data.draw(st.integers(1, 4), label=k) for k in ("N", "C", "H", "W"))
    x = data.draw(floats_array(shape, -2.0, 2.0, dtype), label="x")
    return Inputs((x,), {}, terms=shape[2] * shape[3])


def flatten(data, dtype, tail):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="shape"))
    return Inputs((data.draw(floats_array(shape, -2.0, 2.0, dtype), label="x"),), {})


def batch_norm(data, dtype, tail):
    n = data.draw(st.integers(1, 4), label="N")
    c = data.draw(st.integers(1, 3), label="C")
    spatial = data.draw(st.sampled_from(((), (1, 2), (2, 2), (3, 2))), label="spatial")
    if n * int(np.prod(spatial)) < 2:  # training needs two values per channel
        n = 2
    shape = (n, c, *spatial)
    offset = data.draw(floats_array((1, c) + (1,) * len(spatial), -2.0, 2.0, "float64"),
                       label="channel_offset")
    x = round_to(data.draw(floats_array(shape, -2.0, 2.0, "float64"), label="x") + offset, dtype)
    weight = data.draw(floats_array((c,), -2.0, 2.0, dtype), label="weight")
    bias = data.draw(floats_array((c,), -1.0, 1.0, dtype), label="bias")
    kwargs = {
        "running_mean": data.draw(floats_array((c,), -1.0, 1.0, dtype), label="running_mean"),
        "running_var": data.draw(floats_array((c,), 0.25, 4.0, dtype), label="running_var"),
        "training": data.draw(st.booleans(), label="training"),
        # the frameworks' defaults (torch 0.1, flax 0.99) as often as any other value
        "momentum": float(round_to(np.array(data.draw(
            st.one_of(st.sampled_from((0.1, 0.9, 0.99)), st.floats(0.0, 1.0)), label="momentum")),
            dtype)),
        "eps": data.draw(st.sampled_from((1e-5, 1e-3, 0.1)), label="eps"),
        "momentum_convention": data.draw(st.sampled_from(("torch", "flax")),
                                         label="momentum_convention"),
        "unbiased_running_var": data.draw(st.booleans(), label="unbiased_running_var"),
        "variance": data.draw(st.sampled_from(VARIANCES), label="variance"),
    }
    return Inputs((x, weight, bias), kwargs, terms=n * int(np.prod(spatial)))
