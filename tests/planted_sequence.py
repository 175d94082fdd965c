"""Planted bugs in sequence layers and gradient clipping: the oracle's step-by-step sequence
layers (properties.sequence_terms.Stepwise, which equals reference/recurrent.py) and its
clipping with one thing broken the way real bugs break it. Each must make the properties of
its ``component`` fail (tests/test_planted_bugs.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.recurrent import NumpyRecurrent
from properties.sequence_terms import Stepwise
from reference import clipping as Cl
from tests.planted import Planted


class _Stepwise(Planted, NumpyRecurrent):
    """Sequence layers run by ``engine`` (a Stepwise subclass carrying the bug), forward and
    backpropagation through time."""

    engine: type[Stepwise] = Stepwise

    def _run(self, kind: str, x, states, params, **kwargs: Any):
        outs, _ = self.engine(kind, **kwargs).forward(x, states, params)
        return outs

    def rnn(self, x, h0, params, lengths=None, nonlinearity="tanh", bidirectional=False,
            direction_order="forward_backward"):
        return self._run("rnn", x, (h0,), params, lengths=lengths, nonlinearity=nonlinearity,
                         bidirectional=bidirectional, direction_order=direction_order)

    def lstm(self, x, h0, c0, params, lengths=None, bidirectional=False,
             direction_order="forward_backward"):
        return self._run("lstm", x, (h0, c0), params, lengths=lengths,
                         bidirectional=bidirectional, direction_order=direction_order)

    def gru(self, x, h0, params, lengths=None, reset_after=True, bidirectional=False,
            direction_order="forward_backward"):
        return self._run("gru", x, (h0,), params, lengths=lengths, reset_after=reset_after,
                         bidirectional=bidirectional, direction_order=direction_order)

    def sequence_vjp(self, name, x, states, params, cotangents, **kwargs):
        engine = self.engine(name, **kwargs)
        outs, tape = engine.forward(x, states, params)
        grads = engine.backward(x, states, tape, cotangents)
        return tuple(o for o, c in zip(outs, cotangents, strict=True) if c is not None), grads


class _OneStepShort(Stepwise):
    def backward_steps(self, t):
        return reversed(range(1, t))  # the loop's bound is off by one: step 0 never visited


class BpttOneStepShort(_Stepwise):
    """Backpropagation through time stops one step short: the first step's contribution to
    dx, the weights' gradients and the initial state's is lost (a truncated gradient)."""

    name, component = "planted-bptt-one-step-short", "lstm"
    engine = _OneStepShort


class _UnfrozenBackward(Stepwise):
    def cell_cotangent(self, gs, mask):
        return gs  # the padded steps' cells receive the carried cotangent too

    def carry_back(self, gs, back, mask):
        return back  # and pass back their VJP, as if the state had moved there


class PaddedStateNotFrozenInBackward(_Stepwise):
    """The forward pass freezes the state past a sequence's end, but backpropagation runs the
    padded steps' cells as if the state had moved through them."""

    name, component = "planted-padded-state-not-frozen", "gru"
    engine = _UnfrozenBackward


class _SwappedOrder(Stepwise):
    def merge(self, outs):
        swapped = "backward_forward" if self.order == "forward_backward" else "forward_backward"
        if len(outs) == 1:
            return outs[0]
        return np.concatenate(outs if swapped == "forward_backward" else outs[::-1], axis=2)

    def split(self, g, hidden):
        parts = super().split(g, hidden)
        return parts[::-1] if self.dirs == 2 else parts


class BidirectionalOrderSwapped(_Stepwise):
    """A bidirectional layer concatenates its directions in the other order than the one it
    declares (the backward direction's features first)."""

    name, component = "planted-bidirectional-order-swapped", "rnn"
    engine = _SwappedOrder


class _CarryRunsOn(Stepwise):
    def advance(self, state, new, mask):
        return new  # the carry runs over the padding (flax does, and selects the final state)


class FinalStateAtLastStep(_Stepwise):
    """The final state is the carry after step T - 1, not after each sequence's last valid
    step (the carry runs over the padding, as in flax, but is not selected by length)."""

    name, component = "planted-final-state-at-last-step", "lstm"
    engine = _CarryRunsOn


class ClipPerTensor(Planted, NumpyRecurrent):
    """Clipping by global norm scales each gradient array by its own norm."""

    name, component = "planted-clip-per-tensor", "clip_by_global_norm"

    def clip_by_global_norm(self, grads, max_norm, eps="torch"):
        return [Cl.clip_by_global_norm([g], max_norm, eps)[0] for g in grads]


class ClipTorchEpsilonMissing(Planted, NumpyRecurrent):
    """Claims torch's convention but divides by the norm without its 1e-6."""

    name, component = "planted-clip-eps-missing", "clip_by_global_norm"
    recurrent_conventions = {**NumpyRecurrent.recurrent_conventions,
                             "clip_by_global_norm": {"eps": "torch"}}

    def clip_by_global_norm(self, grads, max_norm, eps="torch"):
        n = Cl.global_norm(grads)
        scale = 1.0 if n == 0 else min(max_norm / n, 1.0)
        return [np.asarray(g, dtype=np.float64) * scale for g in grads]


SEQUENCE_PLANTED = [BpttOneStepShort, PaddedStateNotFrozenInBackward, BidirectionalOrderSwapped,
                    FinalStateAtLastStep, ClipPerTensor, ClipTorchEpsilonMissing]
"""Every sequence-layer and clipping planted-bug backend."""
