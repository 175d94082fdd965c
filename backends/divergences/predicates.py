"""Scopes of known divergences that conditions on single arguments cannot state, by name: a
divergence's TOML entry writes ``scope = "<name>"`` and gets the predicate registered here
over the example's arguments (its scope_text, unless the entry gives one, is the predicate's
docstring's first line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from backends.base import as_tuple, conv_padding
from reference.conv import conv2d_output_size


def strided_implicit_padding_2d(args: Mapping[str, Any]) -> bool:
    """a spatial axis with stride > 1, dilation 1 and implicit (symmetric) padding > 0

    As the torch adapter passes padding (backends/torch_backend.py, _torch_padding): asymmetric
    padding is F.pad's zeros and padding 0; "same" depends on the input, so it counts whenever
    an axis is strided with dilation 1."""
    stride = as_tuple(args.get("stride", 1), 2, "stride")
    dilation = as_tuple(args.get("dilation", 1), 2, "dilation")
    pad = conv_padding(args.get("padding", 0), 2)
    if pad == "valid":
        return False
    if pad == "same":
        return any(s > 1 and d == 1 for s, d in zip(stride, dilation, strict=True))
    if any(lo != hi for lo, hi in pad):
        return False
    return any(s > 1 and d == 1 and lo > 0
               for s, d, (lo, _) in zip(stride, dilation, pad, strict=True))


def conv1d_padding_2_0(args: Mapping[str, Any]) -> bool:
    """explicit padding (2, 0), stride 1 and dilation 1 (the kernel, 2, is not an argument)"""
    pad = args.get("padding", 0)
    return (isinstance(pad, tuple | list) and tuple(pad) == (2, 0)
            and args.get("stride", 1) in (1, (1,)) and args.get("dilation", 1) in (1, (1,)))


def _width_strided(args: Mapping[str, Any]) -> bool:
    return as_tuple(args.get("stride", 1), 2, "stride")[1] > 1


def width_1_strided_2d(args: Mapping[str, Any]) -> bool:
    """an input of width 1 with a stride > 1 along the width

    torch's bfloat16 conv_transpose2d gradients on CPU: the input gradient is a convolution
    whose output has the input's shape, and oneDNN gets an output of width 1 with stride_w > 1
    wrong (conv2d_output_width_1_strided)."""
    shape = args.get("x_shape")
    return shape is not None and len(shape) == 4 and shape[3] == 1 and _width_strided(args)


def conv2d_output_width_1_strided(args: Mapping[str, Any]) -> bool:
    """an output of width 1 with a stride > 1 along the width"""
    x, w = args.get("x_shape"), args.get("w_shape")
    if x is None or w is None or len(x) != 4 or not _width_strided(args):
        return False
    try:
        _, width = conv2d_output_size(x[2:], w[2:], args.get("stride", 1), args.get("padding", 0),
                                      args.get("dilation", 1))
    except ValueError:
        return False
    return width == 1


def antialias_one_column(args: Mapping[str, Any]) -> bool:
    """an antialiased resize to one column whose height changes (from more than one row to more
    than one row)"""
    size, height = args.get("size"), args.get("height")
    return (bool(args.get("antialias")) and size is not None and height is not None
            and size[1] == 1 and height > 1 and size[0] > 1 and size[0] != height)


PREDICATES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "strided_implicit_padding_2d": strided_implicit_padding_2d,
    "conv1d_padding_2_0": conv1d_padding_2_0,
    "width_1_strided_2d": width_1_strided_2d,
    "conv2d_output_width_1_strided": conv2d_output_width_1_strided,
    "antialias_one_column": antialias_one_column,
}
