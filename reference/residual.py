"""Residual block (He et al. 2016, "basic block"), forward over any ops and the oracle's backward.

    h = relu(bn1(conv1(x)));  r = bn2(conv2(h));  s = x  or  bnp(convp(x));  y = relu(r + s)

conv1 is 3x3 with stride ``stride`` and padding 1, conv2 3x3 stride 1 padding 1, convp (the
projection shortcut) 1x1 with stride ``stride``; convolutions have no bias (batch norm shifts).
params: [w1, g1, b1, w2, g2, b2] (+ [wp, gp, bp] with a projection), w OIHW;
state: [rm1, rv1, rm2, rv2] (+ [rmp, rvp]): the running statistics of each batch norm.
``bn`` holds the batch-norm conventions (momentum, eps, momentum_convention,
unbiased_running_var), as keywords of reference.batchnorm.batch_norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from reference import activations as A
from reference import batchnorm as B
from reference import conv as C

PARAM_NAMES = ("conv1.w", "bn1.weight", "bn1.bias", "conv2.w", "bn2.weight", "bn2.bias",
               "proj.w", "proj_bn.weight", "proj_bn.bias")
"""Names of a block's params, in order (the last three with a projection only)."""


def block_sizes(projection: bool) -> tuple[int, int]:
    """(number of params, number of state arrays) of a block."""
    return (9, 6) if projection else (6, 4)


def residual_block(ops: Any, x, params: Sequence[Any], state: Sequence[Any], stride: int = 1,
                   training: bool = True, bn: dict[str, Any] | None = None) -> tuple[Any, list]:
    """(y, new state) with ``ops`` providing conv2d, batch_norm and relu (the oracle's
    namespace or a Backend: they share names and signatures)."""
    bn = bn or {}
    projection = len(params) == 9
    w1, g1, b1, w2, g2, b2 = params[:6]
    h, rm1, rv1 = ops.batch_norm(ops.conv2d(x, w1, None, stride=stride, padding=1), g1, b1,
                                 state[0], state[1], training=training, **bn)
    h = ops.relu(h)
    r, rm2, rv2 = ops.batch_norm(ops.conv2d(h, w2, None, stride=1, padding=1), g2, b2,
                                 state[2], state[3], training=training, **bn)
    new_state = [rm1, rv1, rm2, rv2]
    if projection:
        wp, gp, bp = params[6:]
        s, rmp, rvp = ops.batch_norm(ops.conv2d(x, wp, None, stride=stride, padding=0), gp, bp,
                                     state[4], state[5], training=training, **bn)
        new_state += [rmp, rvp]
    else:
        s = x
    return ops.relu(r + s), new_state


class Recorder:
    """``ops``' conv2d, batch_norm and relu (default the oracle's), keeping each call's inputs:
    the tape residual_block_backward chains."""

    def __init__(self, ops: Any = None) -> None:
        self.ops = ops or SimpleNamespace(conv2d=C.conv2d, batch_norm=B.batch_norm, relu=A.relu)
        self.tape: list[tuple[str, tuple, dict]] = []

    def conv2d(self, x, w, b=None, **kw):
        self.tape.append(("conv2d", (x, w, b), kw))
        return self.ops.conv2d(x, w, b, **kw)

    def batch_norm(self, x, g, b, rm, rv, **kw):
        self.tape.append(("batch_norm", (x, g, b, rm, rv), kw))
        return self.ops.batch_norm(x, g, b, rm, rv, **kw)

    def relu(self, x):
        self.tape.append(("relu", (x,), {}))
        return self.ops.relu(x)


def residual_block_forward(x, params, state, stride: int = 1, training: bool = True,
                           bn: dict[str, Any] | None = None) -> tuple[np.ndarray, list, list]:
    """(y, new state, tape): the oracle's forward, recording what the backward needs."""
    rec = Recorder()
    y, new_state = residual_block(rec, x, params, state, stride, training, bn)
    return y, new_state, rec.tape


_VJPS = {"conv2d": C.conv2d_vjp, "batch_norm": B.batch_norm_vjp, "relu": A.relu_vjp}


def residual_block_backward(tape: list, g: np.ndarray, vjps: dict | None = None
                            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """(dx, dparams) from the tape of residual_block_forward, chained by hand:
    dy -> relu' -> (dr, ds); dr -> bn2' -> conv2' -> relu' -> bn1' -> conv1' -> dx;
    ds -> dx (identity) or bnp' -> convp' -> dx; the two paths add. ``vjps`` replaces the
    oracle's conv2d / batch_norm / relu VJPs (same signatures)."""
    vjps = {**_VJPS, **(vjps or {})}
    # tape order: conv1, bn1, relu1, conv2, bn2, [convp, bnp], relu_out
    projection = len(tape) == 8
    (_, (out_in,), _) = tape[-1]
    (g,) = vjps["relu"](out_in, g)
    dr, ds = g, g

    def conv_back(i, gi):
        _, (x, w, _), kw = tape[i]
        dx, dw, _ = vjps["conv2d"](x, w, None, gi, **kw)
        return dx, dw

    def bn_back(i, gi):
        _, (x, ga, be, rm, rv), kw = tape[i]
        return vjps["batch_norm"](x, ga, be, gi, rm, rv, **kw)

    dh, dg2, db2 = bn_back(4, dr)
    dh, dw2 = conv_back(3, dh)
    (dh,) = vjps["relu"](tape[2][1][0], dh)
    dh, dg1, db1 = bn_back(1, dh)
    dx, dw1 = conv_back(0, dh)
    grads = [dw1, dg1, db1, dw2, dg2, db2]
    if projection:
        dsp, dgp, dbp = bn_back(6, ds)
        dxp, dwp = conv_back(5, dsp)
        dx = dx + dxp
        grads += [dwp, dgp, dbp]
    else:
        dx = dx + ds
    return dx, grads


def residual_block_vjp(x, params, state, g, stride: int = 1, training: bool = True,
                       bn: dict[str, Any] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(dx, dparams) of y = residual_block(x, params, state) for the cotangent g of y."""
    _, _, tape = residual_block_forward(x, params, state, stride, training, bn)
    return residual_block_backward(tape, g)
