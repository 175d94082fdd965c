"""Planted bugs that show only past a size threshold, as real kernels switch to blocked,
vectorised or split paths there (see tests/planted.py). The small draws never reach them;
the realistic-size regime of properties/strategies.py must."""

from __future__ import annotations

import numpy as np

from reference import activations as A
from reference import conv as C
from reference import dense as D
from tests.planted import Planted


class DenseFloat32AccumulationPastThreshold(Planted):
    """dense with 256 or more input features takes a blocked path that accumulates in
    float32 inside a float64 call (as TF32 or a low-precision GEMM path does)."""

    name, component = "planted-dense-float32-accumulation", "dense"

    def dense(self, x, w, b=None):
        x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
        if x.shape[1] < 256:
            return D.dense(x, w, b)
        y = (x.astype(np.float32) @ w.astype(np.float32)).astype(np.float64)
        return y if b is None else y + b


class SoftmaxSplitSumDropsTail(Planted):
    """softmax over more than 256 elements sums exp in chunks of 128 and drops the last,
    partial chunk (a split reduction's remainder loop that never runs)."""

    name, component = "planted-softmax-split-sum", "softmax"

    def softmax(self, x, axis=-1):
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[axis]
        if n <= 256 or n % 128 == 0:
            return A.softmax(x, axis)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        full = np.take(e, np.arange(n // 128 * 128), axis=axis)
        return e / full.sum(axis=axis, keepdims=True)


class ConvChannelBlockRemainderDropped(Planted):
    """conv2d with more than 16 input channels per group runs in blocks of 8 channels and
    skips the last, partial block (the vectorised loop's remainder)."""

    name, component = "planted-conv-channel-remainder", "conv2d"

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
        cg = w.shape[1]
        if cg > 16 and cg % 8:
            keep = np.arange(cg) < cg // 8 * 8
            w = w * keep[None, :, None, None]
        return C.conv2d(x, w, b, stride, padding, dilation, groups)


SIZE_PLANTED = [DenseFloat32AccumulationPastThreshold, SoftmaxSplitSumDropsTail,
                ConvChannelBlockRemainderDropped]
"""Every size-dependent planted-bug backend."""
