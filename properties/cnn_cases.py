"""Cases of the convolutional family: configurations valid by construction.

Every drawn configuration has an output of at least one element (the input size is drawn
after the kernel, stride, dilation and padding, from the sizes that fit). Max-pool inputs
are tie-free (distinct multiples of 1/8, exact in every dtype) so each window has one
maximum and the gradient is defined; the tie convention has its own property.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from backends.base import as_tuple
from properties.coverage import stratum
from properties.inputs import Case, Inputs
from properties.record import current_record
from properties.strategies import MAX_ELEMENTS, floats_array, realistic
from properties.tolerance import round_to
from reference import registry
from reference.batchnorm import MOMENTUM_CONVENTIONS, VARIANCES
from reference.conv import same_pad
from reference.pooling import pool_output_size


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


#: configuration classes (properties/coverage.py): padding forms ('same' with an even or an
#: odd total, the odd pixel going to one side), and groups and dilation alone and together
PADDINGS = {2: ("int", "pair", "explicit", "valid", "same_even", "same_odd"),
            1: ("int", "explicit", "valid", "same_even", "same_odd")}
GROUPS_DILATION = ("plain", "groups", "dilation", "groups_dilation")


def _conv_padding(data, ndim: int, form: str) -> tuple[Any, list[tuple[int, int]] | None]:
    """(padding as passed, per-dim (low, high) or None for 'same') of a form of PADDINGS."""
    if form == "valid":
        return "valid", [(0, 0)] * ndim
    if form.startswith("same"):
        return "same", None
    if form == "int":
        p = data.draw(st.integers(0, 2), label="padding")
        return p, [(p, p)] * ndim
    if form == "pair":
        ph, pw = (data.draw(st.integers(0, 2), label=f"padding_{k}") for k in "hw")
        return (ph, pw), [(ph, ph), (pw, pw)]
    # explicit: per side, asymmetric along the first axis and differing between the axes
    # (what neither an int nor a pair can say)
    pads = [tuple(data.draw(st.integers(0, 2), label=f"padding_{d}_{k}") for k in ("lo", "hi"))
            for d in range(ndim)]
    if pads[0][0] == pads[0][1]:
        pads[0] = (pads[0][0], (pads[0][1] + 1) % 3)
    if ndim == 2 and pads[1] == pads[0]:
        pads[1] = pads[0][::-1]
    return (tuple(pads) if ndim == 2 else pads[0]), pads


#: channel counts on either side of the channel blocks real kernels use
_BLOCK_EDGES = (7, 9, 15, 17, 23, 31, 33, 63)


def _conv_config(data, big: bool) -> tuple[Any, ...]:
    """(groups, in and out channels per group, N, kernel as a pair, stride and dilation as
    passed and as pairs) of a GROUPS_DILATION class; ``big``: up to 64 channels (realistic
    sizes)."""
    gd = stratum(data, "groups_dilation", GROUPS_DILATION)
    g = data.draw(st.sampled_from((2, 3)), label="groups") if "groups" in gd else 1
    if big:
        # half the time a count beside a kernel's channel block (8, 16, 32): the vectorised
        # loop's remainder is where size-dependent bugs live
        cg = data.draw(st.one_of(st.sampled_from([c for c in _BLOCK_EDGES if c <= 64 // g]),
                                 st.integers(4, 64 // g)), label="in_per_group")
        og = data.draw(st.integers(4, 64 // g), label="out_per_group")
    else:
        cg = data.draw(st.integers(1, 3), label="in_per_group")
        og = data.draw(st.integers(1, 2), label="out_per_group")
    n = data.draw(st.integers(1, 4 if big else 3), label="N")
    _, ks = _int_or_pair(data, 1, 3, "kernel")
    stride, ss = _int_or_pair(data, 1, 3, "stride")
    dilation, ds = _int_or_pair(data, 1, 2 if "dilation" in gd else 1, "dilation")
    if "dilation" in gd and max(ds) == 1:  # the class needs one: a counterexample shows it
        dilation, ds = 2, (2, 2)
        current_record().note_draw("dilation (the class's)", dilation)
    return g, cg, og, n, ks, stride, ss, dilation, ds


def _odd_same(ks, ss, ds) -> tuple[tuple[int, int], ...]:
    """Kernel, stride and dilation pairs whose first dimension has an odd total 'same' pad:
    stride 1 and d (k - 1) odd (kernel 2, dilation 1 or 3)."""
    return (2, ks[1]), (1, ss[1]), (1 if ds[0] == 1 else 3, ds[1])


def _same_class(sizes, ks, ss, ds) -> str:
    """'same_odd' where some dimension's total 'same' padding is odd, else 'same_even'."""
    odd = any(sum(same_pad(sizes[d], ks[d], ss[d], ds[d])) % 2 for d in range(len(sizes)))
    return "same_odd" if odd else "same_even"


def conv(ndim: int) -> Case:
    def case(data, dtype, tail):
        big = realistic(data)
        g, cg, og, n, ks, stride, ss, dilation, ds = _conv_config(data, big)
        form = stratum(data, "padding", PADDINGS[ndim])
        if form == "same_odd":
            ks, ss, ds = _odd_same(ks, ss, ds)
            stride, dilation = ss, ds
            current_record().note_draw("kernel, stride, dilation (same_odd's)", (ks, ss, ds))
        if ndim == 1:
            stride, dilation = ss[0], ds[0]
        padding, pads = _conv_padding(data, ndim, form)
        spread = (120 if ndim == 1 else 12) if big else 4
        sizes = tuple(data.draw(st.integers(1, 2 + spread), label=f"size_{d}") if pads is None
                      else _size(data, ks[d], ds[d], sum(pads[d]), f"size_{d}", spread)
                      for d in range(ndim))
        if pads is None:  # the class the sizes, strides and dilations give
            current_record().note_class("padding", _same_class(sizes, ks, ss, ds))
        n = _fit(n, g * cg, sizes)
        x = data.draw(floats_array((n, g * cg, *sizes), -2.0, 2.0, dtype), label="x")
        w = data.draw(floats_array((g * og, cg, *ks[:ndim]), -1.0, 1.0, dtype), label="w")
        b = data.draw(floats_array((g * og,), -1.0, 1.0, dtype), label="b")
        kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
        return Inputs((x, w, b), kwargs, terms=_conv_terms(x, w, b, kwargs, cg, og, ks[:ndim]))
    return case


def _fit(n: int, channels: int, sizes) -> int:
    """``n`` cut so that an (n, channels, *sizes) array keeps within MAX_ELEMENTS."""
    return max(1, min(n, MAX_ELEMENTS // (channels * int(np.prod(sizes)))))


def _conv_terms(x, w, b, kwargs, cg: int, og: int, ks) -> int:
    """The longest sum behind one element of a convolution's output or gradient: an output
    sums cg prod(k) products and the bias, an input gradient og prod(k), a weight gradient
    one per output position of the batch."""
    out = registry.forward("conv2d" if x.ndim == 4 else "conv1d", (x, w, b), **kwargs)
    return max(cg * int(np.prod(ks)) + 1, og * int(np.prod(ks)),
               out.shape[0] * int(np.prod(out.shape[2:])))


def conv_transpose2d(data, dtype, tail):
    big = realistic(data)
    g, cg, og, n, ks, stride, ss, dilation, ds = _conv_config(data, big)
    # 2p <= d (k - 1) keeps the output size (H - 1) s - 2p + d (k - 1) + op + 1 >= 1
    ps = tuple(data.draw(st.integers(0, ds[i] * (ks[i] - 1) // 2), label=f"padding_{i}")
               for i in range(2))
    ops = tuple(data.draw(st.integers(0, max(ss[i], ds[i]) - 1), label=f"output_padding_{i}")
                for i in range(2))
    sizes = tuple(data.draw(st.integers(1, 8 if big else 4), label=f"size_{i}") for i in range(2))
    n = _fit(n, g * cg, sizes)
    x = data.draw(floats_array((n, g * cg, *sizes), -2.0, 2.0, dtype), label="x")
    w = data.draw(floats_array((g * cg, og, *ks), -1.0, 1.0, dtype), label="w")
    b = data.draw(floats_array((g * og,), -1.0, 1.0, dtype), label="b")
    kwargs = {"stride": stride, "padding": ps, "output_padding": ops, "groups": g,
              "dilation": dilation}
    # an output element sums over the in-channels of its group and the taps that reach it, an
    # input gradient over out-channels and taps, a weight gradient over the input positions
    terms = max(cg * ks[0] * ks[1] + 1, og * ks[0] * ks[1], n * sizes[0] * sizes[1])
    return Inputs((x, w, b), kwargs, terms=terms)


#: ceil mode: off, on, on with a window that overhangs the input (an extra output)
CEIL = ("floor", "ceil", "ceil_overhang")
#: padding, and whether an average counts it (at a border)
PAD_COUNT = ("unpadded", "include_pad", "exclude_pad")


def pool_config(data, big: bool, ceil: str, padded: bool | None = None):
    """(kernel as passed and as a pair, stride, padding); ``padded``: some padding (True),
    none (False) or either (None); the 'ceil_overhang' class has a stride of 2 or more."""
    kernel, ks = _int_or_pair(data, 1, 5 if big else 3, "kernel_size")
    if padded and ks[0] < 2:
        kernel = ks = (2, ks[1])
    if ceil == "ceil_overhang":
        stride, _ = _int_or_pair(data, 2, 3, "stride")
    else:
        stride, _ = _int_or_pair(data, 1, 3, "stride") if data.draw(
            st.booleans(), label="stride_given") else (None, None)
    # torch's rule: padding <= kernel // 2 in each dimension
    padding = tuple(0 if padded is False else
                    data.draw(st.integers(1 if padded and i == 0 else 0, k // 2),
                              label=f"padding_{i}") for i, k in enumerate(ks))
    return kernel, ks, stride, padding


def pool_classes(x, kernel_size, stride, padding, ceil_mode, dilation=1, **_) -> str:
    """The CEIL class of a pooling's final arguments."""
    if not ceil_mode:
        return "floor"
    ks, ds, ps = (as_tuple(v, 2, k) for k, v in (("kernel_size", kernel_size),
                                                  ("dilation", dilation), ("padding", padding)))
    ss = ks if stride is None else as_tuple(stride, 2, "stride")
    extra = any(pool_output_size(x.shape[2 + i], ks[i], ss[i], ps[i], ds[i], True)
                > pool_output_size(x.shape[2 + i], ks[i], ss[i], ps[i], ds[i], False)
                for i in range(2))
    return "ceil_overhang" if extra else "ceil"


def max_pool2d(data, dtype, tail):
    big = realistic(data)
    ceil = stratum(data, "ceil", CEIL)
    kernel, ks, stride, padding = pool_config(data, big, ceil)
    dilation, ds = _int_or_pair(data, 1, 2, "dilation")
    n, c = (data.draw(st.integers(1, hi), label=k) for k, hi in (("N", 4 if big else 2),
                                                                 ("C", 64 if big else 2)))
    # at least d rows: every window then holds an input element, not only padding
    sizes = tuple(max(ds[i], _size(data, ks[i], ds[i], 2 * padding[i], f"size_{i}",
                                   60 if big else 2)) for i in range(2))
    n = _fit(n, c, sizes)
    c = max(1, min(c, MAX_ELEMENTS // (n * sizes[0] * sizes[1])))
    # each plane tiles a 16 x 16 block of the distinct multiples of 1/8 in [-16, 16) (exact
    # in bfloat16): a window spans at most 2 (5 - 1) + 1 = 9 < 16 rows and columns, so its
    # elements are distinct and it has no tie
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    blocks = np.stack([rng.permutation(256) for _ in range(n * c)]).reshape(n, c, 16, 16)
    reps = (1, 1, -(-sizes[0] // 16), -(-sizes[1] // 16))
    x = (np.tile(blocks, reps)[:, :, :sizes[0], :sizes[1]] - 128) / 8.0
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
              "ceil_mode": ceil != "floor",
              "ties": data.draw(st.sampled_from(("first", "split")), label="ties")}
    x = round_to(x, dtype)
    assume(ceil != "ceil_overhang" or pool_classes(x, **kwargs) == ceil)
    return Inputs((x,), kwargs, terms=int(np.prod(ks)))


def avg_pool2d(data, dtype, tail):
    big = realistic(data)
    ceil = stratum(data, "ceil", CEIL)
    pad_count = stratum(data, "pad_count", PAD_COUNT)
    kernel, ks, stride, padding = pool_config(data, big, ceil, pad_count != "unpadded")
    n, c = (data.draw(st.integers(1, hi), label=k) for k, hi in (("N", 4 if big else 2),
                                                                 ("C", 64 if big else 3)))
    sizes = tuple(_size(data, ks[i], 1, 2 * padding[i], f"size_{i}", 60 if big else 4)
                  for i in range(2))
    n = _fit(n, c, sizes)
    c = max(1, min(c, MAX_ELEMENTS // (n * sizes[0] * sizes[1])))
    x = data.draw(floats_array((n, c, *sizes), -2.0, 2.0, dtype), label="x")
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding,
              "ceil_mode": ceil != "floor", "count_include_pad": pad_count != "exclude_pad"}
    assume(ceil != "ceil_overhang" or pool_classes(x, **kwargs) == ceil)
    return Inputs((x,), kwargs, terms=int(np.prod(ks)))


def global_avg_pool2d(data, dtype, tail):
    hi = (8, 64, 64, 64) if realistic(data) else (4, 4, 4, 4)
    shape = tuple(data.draw(st.integers(1, h), label=k) for k, h in zip("NCHW", hi, strict=True))
    n = _fit(shape[0], shape[1], shape[2:])
    shape = (n, max(1, min(shape[1], MAX_ELEMENTS // (n * shape[2] * shape[3]))), *shape[2:])
    x = data.draw(floats_array(shape, -2.0, 2.0, dtype), label="x")
    return Inputs((x,), {}, terms=shape[2] * shape[3])


def flatten(data, dtype, tail):
    side = 16 if realistic(data) else 4
    shape = tuple(data.draw(st.lists(st.integers(1, side), min_size=2, max_size=4), label="shape"))
    shape = (_fit(shape[0], 1, shape[1:]), *shape[1:])
    return Inputs((data.draw(floats_array(shape, -2.0, 2.0, dtype), label="x"),), {})


BN_MODES = ("train", "eval")


def batch_norm(data, dtype, tail):
    big = realistic(data)  # up to 1024 values per channel, 64 channels
    n = data.draw(st.integers(1, 128 if big else 4), label="N")
    c = data.draw(st.integers(1, 64 if big else 3), label="C")
    spatial = data.draw(st.sampled_from(((), (4, 4), (8, 8), (5, 7)) if big else
                                        ((), (1, 2), (2, 2), (3, 2))), label="spatial")
    n = max(1, min(n, 1024 // max(1, int(np.prod(spatial))), MAX_ELEMENTS // (c * max(
        1, int(np.prod(spatial))))))
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
        "training": stratum(data, "mode", BN_MODES) == "train",
        # the frameworks' defaults (torch 0.1, flax 0.99) as often as any other value
        "momentum": float(round_to(np.array(data.draw(
            st.one_of(st.sampled_from((0.1, 0.9, 0.99)), st.floats(0.0, 1.0)), label="momentum")),
            dtype)),
        "eps": data.draw(st.sampled_from((1e-5, 1e-3, 0.1)), label="eps"),
        "momentum_convention": stratum(data, "momentum_convention", MOMENTUM_CONVENTIONS),
        "unbiased_running_var": data.draw(st.booleans(), label="unbiased_running_var"),
        "variance": stratum(data, "variance", VARIANCES),
    }
    return Inputs((x, weight, bias), kwargs, terms=n * int(np.prod(spatial)))
