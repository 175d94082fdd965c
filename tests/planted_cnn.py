"""Planted bugs of the convolutional family, each modelled on a real one (see tests/planted.py).

Some are broken copies of a piece of the oracle (the bug is the point); they reach into the
oracle's private helpers rather than re-implement the geometry.
"""

from __future__ import annotations

import numpy as np

from reference import activations as A
from reference import batchnorm as B
from reference import conv as C
from reference import network
from reference import pooling as P
from reference import residual as R
from tests.planted import NumpyBackend, Planted


class ConvPaddingPairsSwapped(Planted):
    """Explicit ((top, bottom), (left, right)) padding handed on in F.pad's (left, right,
    top, bottom) order: the height and width pads trade places (wrong outputs, or, as in
    torch, an error where the swapped pads leave the kernel no room)."""

    name, component = "planted-conv-padding-pairs-swapped", "conv2d"

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        if isinstance(padding, tuple) and all(isinstance(p, tuple) for p in padding):
            padding = (padding[1], padding[0])
        return C.conv2d(x, w, b, stride, padding, dilation, groups)


def _conv2d_vjp_dilation_1(x, w, b, g, stride=1, padding=0, dilation=1, groups=1):
    dx, _, db = C.conv2d_vjp(x, w, b, g, stride, padding, dilation, groups)
    xs, ws, _, st, pads, _, grp, _ = C._conv2d_setup(x, w, b, stride, padding, dilation, groups)
    dw = C._grad_w(xs, np.asarray(g, dtype=np.float64), pads, ws.shape[2:], st, (1, 1), grp)
    return dx, dw, db


class ConvDilationIgnoredInBackward(Planted):
    """The weight gradient gathers the input windows without the dilation."""

    name, component = "planted-conv-dilation-backward", "conv2d"
    vjps = {**NumpyBackend.vjps, "conv2d": _conv2d_vjp_dilation_1}


class ConvGroupsInterleaved(Planted):
    """Group g takes channels g, g + G, g + 2G, ... instead of the g-th contiguous block."""

    name, component = "planted-conv-groups-interleaved", "conv2d"

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        n, c, h, wd = x.shape
        x = x.reshape(n, c // groups, groups, h, wd).swapaxes(1, 2).reshape(n, c, h, wd)
        return C.conv2d(x, w, b, stride, padding, dilation, groups)


class ConvKernelFlipped(Planted):
    """A true convolution (kernel flipped) where every framework cross-correlates."""

    name, component = "planted-conv-kernel-flipped", "conv2d"

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        return C.conv2d(x, np.asarray(w)[..., ::-1, ::-1], b, stride, padding, dilation, groups)


class ConvTransposeKernelNotFlipped(Planted):
    """Transposed convolution without flipping the kernel (flax ConvTranspose with
    transpose_kernel=False, ported as if it were torch's)."""

    name, component = "planted-conv-transpose-kernel", "conv_transpose2d"

    def conv_transpose2d(self, x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1):
        return C.conv_transpose2d(x, np.asarray(w)[..., ::-1, ::-1], b, stride, padding,
                                  output_padding, groups, dilation)


class AvgPoolCeilDivisorCountsOverhang(Planted):
    """avg_pool2d in ceil_mode divides the last windows by the full kernel area, counting the
    overhang past the padded input."""

    name, component = "planted-avg-pool-ceil-divisor", "avg_pool2d"

    def avg_pool2d(self, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True):
        y = P.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
        if not (ceil_mode and count_include_pad):
            return y
        geo = P._geometry(x, kernel_size, stride, padding, 1, ceil_mode)
        return y * P._divisor(geo, x.shape, True) / (geo.kernel[0] * geo.kernel[1])


class Conv1dKernelFlipped(Planted):
    """conv1d through np.convolve: a true convolution (kernel flipped) where every framework
    cross-correlates."""

    name, component = "planted-conv1d-kernel-flipped", "conv1d"

    def conv1d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        return C.conv1d(x, np.asarray(w)[..., ::-1], b, stride, padding, dilation, groups)


class GlobalAvgPoolSquareMaps(Planted):
    """global average pooling as sum / W^2: code that assumes square feature maps."""

    name, component = "planted-global-avg-pool-square", "global_avg_pool2d"

    def global_avg_pool2d(self, x):
        x = np.asarray(x, dtype=np.float64)
        return x.sum(axis=(2, 3)) / x.shape[3] ** 2

    def _gap_vjp(x, g):
        (dx,) = P.global_avg_pool2d_vjp(x, g)
        return (dx * np.shape(x)[2] / np.shape(x)[3],)

    vjps = {**NumpyBackend.vjps, "global_avg_pool2d": _gap_vjp}


class GlobalAvgPoolVjpUndivided(Planted):
    """global average pooling's backward spreads g without the 1 / (H W): sum pooling's
    backward."""

    name, component = "planted-global-avg-pool-vjp-undivided", "global_avg_pool2d"

    def _gap_vjp(x, g):
        (dx,) = P.global_avg_pool2d_vjp(x, g)
        return (dx * np.shape(x)[2] * np.shape(x)[3],)

    vjps = {**NumpyBackend.vjps, "global_avg_pool2d": _gap_vjp}


def _max_pool_vjp_every_max(x, g, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, ties="first"):
    geo = P._geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = P._pad(np.asarray(x, dtype=np.float64), geo, -np.inf)
    y = P._window_max(xp, geo)
    dxp = np.zeros(xp.shape)
    for rows, cols in P._offsets(geo):
        dxp[:, :, rows, cols] += g * (xp[:, :, rows, cols] == y)
    return (P._crop(dxp, geo, x.shape),)


class MaxPoolGradientToEveryMax(Planted):
    """max-pool backward as g * (x == max): each tied maximum gets the whole gradient."""

    name, component = "planted-max-pool-every-max", "max_pool2d"
    vjps = {**NumpyBackend.vjps, "max_pool2d": _max_pool_vjp_every_max}


def _max_pool_vjp_last_element(x, g, kernel_size, stride=None, padding=0, dilation=1,
                               ceil_mode=False, ties="first"):
    geo = P._geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = P._pad(np.asarray(x, dtype=np.float64), geo, -np.inf)
    dxp = np.zeros(xp.shape)
    rows, cols = list(P._offsets(geo))[-1]
    dxp[:, :, rows, cols] += g
    return (P._crop(dxp, geo, x.shape),)


class MaxPoolGradToWrongElement(Planted):
    """max-pool backward scatters each window's g at the scan's last offset instead of the
    saved argmax (the loop variable read after the loop): the window's last element in
    row-major order, maximum or not. The forward is correct."""

    name, component = "planted-max-pool-grad-wrong-element", "max_pool2d"
    vjps = {**NumpyBackend.vjps, "max_pool2d": _max_pool_vjp_last_element}


class FlattenChannelsLast(Planted):
    """flatten in channels-last order (N, H, W, C), as a port of TensorFlow weights would."""

    name, component = "planted-flatten-channels-last", "flatten"

    def flatten(self, x):
        return np.moveaxis(np.asarray(x), 1, -1).reshape(x.shape[0], -1)


class BatchNormBiasedRunningVar(Planted):
    """The running variance moves towards the biased batch variance even in PyTorch mode."""

    name, component = "planted-bn-biased-running-var", "batch_norm"

    def batch_norm(self, x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                   eps=1e-5, momentum_convention="torch", unbiased_running_var=True,
                   variance="two_pass"):
        return B.batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps,
                            momentum_convention, False, variance)


class BatchNormFastVariance(Planted):
    """The batch variance as E[x^2] - E[x]^2, which cancels for inputs with a large mean,
    in a backend that declares the two-pass variance."""

    name, component = "planted-bn-fast-variance", "batch_norm"
    conventions = {**NumpyBackend.conventions, "batch_norm": {"variance": "two_pass"}}

    def batch_norm(self, x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                   eps=1e-5, momentum_convention="torch", unbiased_running_var=True,
                   variance="two_pass"):
        if not training:
            return B.batch_norm(x, weight, bias, running_mean, running_var, False, momentum, eps,
                                momentum_convention, unbiased_running_var)
        axes = (0, *range(2, x.ndim))
        mu = x.mean(axis=axes)
        var = np.maximum((x * x).mean(axis=axes) - mu * mu, 0.0)
        # the oracle in eval mode with (mu, var) as the statistics normalises with them
        y, _, _ = B.batch_norm(x, weight, bias, mu, var, False, momentum, eps)
        n = x.size // x.shape[1]
        stat = var * n / (n - 1) if unbiased_running_var else var
        keep = 1 - momentum if momentum_convention == "torch" else momentum
        return y, keep * running_mean + (1 - keep) * mu, keep * running_var + (1 - keep) * stat


class BatchNormMomentumFlipped(Planted):
    """PyTorch's momentum read as flax's: r <- m r + (1 - m) stat with m = 0.1."""

    name, component = "planted-bn-momentum-flipped", "batch_norm"

    def batch_norm(self, x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                   eps=1e-5, momentum_convention="torch", unbiased_running_var=True,
                   variance="two_pass"):
        flipped = {"torch": "flax", "flax": "torch"}[momentum_convention]
        return B.batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps,
                            flipped, unbiased_running_var, variance)


class BatchNormEvalUsesBatchStatistics(Planted):
    """Eval mode normalises with the batch statistics (model.eval() forgotten)."""

    name, component = "planted-bn-eval-batch-stats", "batch_norm"

    def batch_norm(self, x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                   eps=1e-5, momentum_convention="torch", unbiased_running_var=True,
                   variance="two_pass"):
        y, rm, rv = B.batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps,
                                 momentum_convention, unbiased_running_var, variance)
        return (y, rm, rv) if training else (y, np.array(running_mean), np.array(running_var))


class ResidualShortcutMissingInBackward(Planted):
    """The backward of an identity residual block drops the shortcut's gradient."""

    name, component = "planted-residual-shortcut-backward", "resnet"

    def network_loss_and_grads(self, arch, params, state, x, target, bn=None):
        out, new_state, tape = network.forward_tape(arch, params, state, x, bn)
        f, f_vjp = network.LOSSES[arch.loss]
        (g,) = f_vjp(out, target, np.float64(1.0))
        grads: list[np.ndarray] = []
        for layer, h_in, p, s in reversed(tape):
            if layer.kind == "block" and not layer.projection:
                dx, gp = R.residual_block_backward(h_in, g)
                (shortcut,) = A.relu_vjp(h_in[-1][1][0], g)  # what the identity path adds
                g = dx - shortcut
            else:
                g, gp = network._layer_backward(layer, h_in, p, s, g, bn or {},
                                                network.ORACLE_VJPS)
            grads[:0] = gp
        return float(f(out, target)), grads, new_state


class GradientsNotZeroedBetweenSteps(Planted):
    """The training loop never zeroes the gradients (a forgotten optimizer.zero_grad()): each
    step's optimizer sees the sum of every gradient so far."""

    name, component = "planted-gradients-not-zeroed", "lenet"

    def train_network(self, arch, params, state, x, target, optimizer, batches, bn=None):
        p, s = list(params), list(state)
        opt_state = optimizer.init(p)
        states, history, total = [], [], None
        for idx in batches:
            value, grads, s = self.network_loss_and_grads(arch, p, s, x[idx], target[idx], bn)
            total = grads if total is None else [a + g for a, g in zip(total, grads, strict=True)]
            history.append(float(value))
            states.append(list(s))
            p, opt_state = optimizer.update(total, opt_state, p)
        return p, states, history


CNN_PLANTED = [ConvPaddingPairsSwapped, ConvDilationIgnoredInBackward, ConvGroupsInterleaved,
               ConvKernelFlipped, ConvTransposeKernelNotFlipped, Conv1dKernelFlipped,
               AvgPoolCeilDivisorCountsOverhang, GlobalAvgPoolSquareMaps,
               GlobalAvgPoolVjpUndivided, MaxPoolGradientToEveryMax, MaxPoolGradToWrongElement,
               FlattenChannelsLast, BatchNormBiasedRunningVar, BatchNormFastVariance,
               BatchNormMomentumFlipped, BatchNormEvalUsesBatchStatistics,
               ResidualShortcutMissingInBackward, GradientsNotZeroedBetweenSteps]
"""The convolutional family's planted bugs."""
