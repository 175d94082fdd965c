"""The oracle's sequence layers step by step, and the rounding they propagate.

``Stepwise`` runs rnn, lstm and gru (reference/recurrent.py's semantics: layers, directions
in ``direction_order``, each sequence reversed within its length for the backward direction,
steps past a sequence's end frozen and outputting 0) one cell step at a time over the
oracle's public cells (reference.recurrent.rnn_cell, ...) and their VJPs, and
backpropagates through time the same way. It exists for three reasons:

- the tolerance policy's M of a sequence layer (``propagated``): a backend rounds every
  step, and that rounding is carried through every later step (and, in the backward pass,
  every earlier one). With a noise Generator, each step's new state moves by DELTA times the
  magnitude of the terms its cell's formula sums (specs.forward_terms of rnn_cell /
  lstm_cell / gru_cell, properties/magnitudes.py) in a random direction, and each backward
  step's gradients by DELTA times theirs (specs.vjp_terms); the spread of the outputs over a
  few such runs, divided by DELTA, is what that rounding becomes at the outputs, as
  test_network_training measures an optimizer's steps.
- planted bugs (tests/planted_sequence.py) override one of its hooks (``advance``,
  ``output``, ``merge``, ``backward_steps``, ...), a correct step-by-step adapter with one
  thing broken as real bugs break it.
- the language model's rounding: properties/lm_terms.py's NoisyLM runs its recurrent layers
  with it.

Without noise it equals the oracle (tests/test_sequence_terms.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.recurrent import STATES, weights4
from properties.specs import forward_terms, vjp_terms
from properties.tolerance import DELTA, EPS, TINY
from reference import recurrent as R

_CELLS = {"rnn": (R.rnn_cell, R.rnn_cell_vjp), "lstm": (R.lstm_cell, R.lstm_cell_vjp),
          "gru": (R.gru_cell, R.gru_cell_vjp)}
_PROBES = 4


@dataclass
class _Direction:
    x: np.ndarray                     # its input in its own time order (T, N, In)
    weights: tuple                    # (w_ih, w_hh, b_ih, b_hh)
    caches: list                      # per step: the state it started from
    masks: list                       # per step: (N, 1) bool


class Stepwise:
    """A sequence layer of ``kind`` with the oracle's keyword arguments, step by step
    (module docstring); ``noise``: a Generator for the rounding probes, or None; ``floor``:
    a magnitude every step's results carry besides their terms' (see ``propagated``)."""

    def __init__(self, kind: str, lengths: np.ndarray | None = None,
                 nonlinearity: str = "tanh", reset_after: bool = True,
                 bidirectional: bool = False, direction_order: str = "forward_backward",
                 noise: np.random.Generator | None = None, floor: float = 0.0) -> None:
        self.kind, self.lengths, self.noise, self.floor = kind, lengths, noise, floor
        self.dirs = 2 if bidirectional else 1
        self.order = direction_order
        self.cell_kw: dict[str, Any] = {"rnn": {"nonlinearity": nonlinearity}, "lstm": {},
                                        "gru": {"reset_after": reset_after}}[kind]
        self.cell_name = f"{kind}_cell"

    # -- hooks (planted bugs override one) ------------------------------------------------
    def advance(self, state: tuple, new: tuple, mask: np.ndarray) -> tuple:
        """The state carried to the next step: the new one where the sequence goes on, the
        old one past its end (frozen)."""
        return tuple(np.where(mask, v, s) for v, s in zip(new, state, strict=True))

    def output(self, new: tuple, mask: np.ndarray) -> np.ndarray:
        """The step's output: h', 0 past the sequence's end."""
        return np.where(mask, new[0], 0.0)

    def merge(self, outs: list[np.ndarray]) -> np.ndarray:
        """A layer's output: the directions' concatenated in ``direction_order``."""
        if len(outs) == 1:
            return outs[0]
        return np.concatenate(outs if self.order == "forward_backward" else outs[::-1], axis=2)

    def split(self, g: np.ndarray, hidden: int) -> list[np.ndarray]:
        """merge's cotangent split back into one per direction (forward first)."""
        if self.dirs == 1:
            return [g]
        parts = [g[..., :hidden], g[..., hidden:]]
        return parts if self.order == "forward_backward" else parts[::-1]

    def backward_steps(self, t: int) -> Iterable[int]:
        """The steps backpropagation visits, last first."""
        return reversed(range(t))

    def cell_cotangent(self, gs: tuple, mask: np.ndarray) -> tuple:
        """The cotangent a step's cell receives: the carried one where the step ran, 0 past
        the sequence's end (its new state was not kept)."""
        return tuple(np.where(mask, g, 0.0) for g in gs)

    def carry_back(self, gs: tuple, back: tuple, mask: np.ndarray) -> tuple:
        """The cotangent carried to the previous step: the cell's where it ran, unchanged
        past the sequence's end (the state passed through)."""
        return tuple(np.where(mask, b, g) for b, g in zip(back, gs, strict=True))

    # -- one step -----------------------------------------------------------------------
    def _primals(self, x, state, ws) -> tuple:
        return (x, *state, *ws)

    def _jitter(self, values: Sequence, magnitudes) -> list:
        """``values`` moved by DELTA times their magnitudes in random directions (noise)."""
        if self.noise is None or magnitudes is None:
            return list(values)
        ms = magnitudes if isinstance(magnitudes, list | tuple) else [magnitudes]
        return [v if v is None
                else v + DELTA * (m + self.floor) * self.noise.standard_normal(np.shape(v))
                for v, m in zip(values, ms, strict=False)] + list(values[len(ms):])

    def cell(self, x: np.ndarray, state: tuple, ws: tuple) -> tuple:
        fn, _ = _CELLS[self.kind]
        out = fn(x, *state, *ws, **self.cell_kw)
        new = tuple(out) if self.kind == "lstm" else (out,)
        if self.noise is None:
            return new
        m = forward_terms(self.cell_name, self._primals(x, state, ws), self.cell_kw)
        return tuple(self._jitter(new, m))

    def cell_vjp(self, x: np.ndarray, state: tuple, ws: tuple, gs: tuple) -> list:
        """(dx, d state..., dw_ih, dw_hh, db_ih, db_hh) of one step."""
        _, vjp = _CELLS[self.kind]
        grads = list(vjp(x, *state, *ws, *gs, **self.cell_kw))
        if self.noise is None:
            return grads
        cots = gs if self.kind == "lstm" else gs[0]
        return self._jitter(grads, vjp_terms(self.cell_name, self._primals(x, state, ws),
                                             self.cell_kw, cots))

    # -- the layer ----------------------------------------------------------------------
    def _layout(self, x: np.ndarray):
        t, n, _ = x.shape
        lengths = np.full(n, t) if self.lengths is None else np.asarray(self.lengths)
        steps = np.arange(t)[:, None]
        rev = (np.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps),
               np.arange(n)[None, :])
        masks = [(lengths > s)[:, None] for s in range(t)]
        return rev, masks

    def forward(self, x: np.ndarray, states: Sequence[np.ndarray | None], params
                ) -> tuple[tuple[np.ndarray, ...], list[_Direction]]:
        """((y, h_n[, c_n]), tape)."""
        x = np.asarray(x, dtype=np.float64)
        t, n, _ = x.shape
        rev, masks = self._layout(x)
        hid = params[0][1].shape[1]
        finals = [np.empty((len(params), n, hid)) for _ in STATES[self.kind]]
        tape, inp = [], x
        for layer in range(len(params) // self.dirs):
            outs = []
            for d in range(self.dirs):
                k = layer * self.dirs + d
                ws = weights4(params[k])
                xs = inp if d == 0 else inp[rev]
                state = tuple(np.zeros((n, hid)) if s is None else np.asarray(s[k], float)
                              for s in states)
                ys, caches = np.empty((t, n, hid)), []
                for step in range(t):
                    new = self.cell(xs[step], state, ws)
                    caches.append(state)
                    ys[step] = self.output(new, masks[step])
                    state = self.advance(state, new, masks[step])
                for j, s in enumerate(state):
                    finals[j][k] = s
                tape.append(_Direction(xs, ws, caches, masks))
                outs.append(ys if d == 0 else ys[rev])
            inp = self.merge(outs)
        return (inp, *finals), tape

    def backward(self, x: np.ndarray, states, tape: list[_Direction], cotangents
                 ) -> tuple[Any, ...]:
        """(dx, d states (None for a None state), dparams) for one cotangent per output
        (None: zeros), as the oracle's <kind>_vjp returns them."""
        t, n, _ = np.shape(x)
        rev, _ = self._layout(np.asarray(x))
        hid = tape[0].weights[1].shape[1]
        gy, *gf = cotangents
        out_dim = self.dirs * hid
        gy = np.zeros((t, n, out_dim)) if gy is None else np.asarray(gy, float)
        gf = [np.zeros((len(tape), n, hid)) if g is None else np.asarray(g, float) for g in gf]
        d_init = [np.zeros((len(tape), n, hid)) for _ in states]
        dparams: list = [None] * len(tape)
        g_in = gy
        for layer in reversed(range(len(tape) // self.dirs)):
            parts = self.split(g_in, hid)
            g_next = None
            for d in range(self.dirs):
                k = layer * self.dirs + d
                rec = tape[k]
                gys = parts[d] if d == 0 else parts[d][rev]
                gs = tuple(g[k].copy() for g in gf)
                dxs = np.zeros_like(rec.x)
                dw = [None if w is None else np.zeros_like(w) for w in rec.weights]
                for step in self.backward_steps(t):
                    m = rec.masks[step]
                    gs = (gs[0] + np.where(m, gys[step], 0.0), *gs[1:])
                    grads = self.cell_vjp(rec.x[step], rec.caches[step], rec.weights,
                                          self.cell_cotangent(gs, m))
                    ns = len(gs)
                    dxs[step] = grads[0]
                    gs = self.carry_back(gs, tuple(grads[1:1 + ns]), m)
                    for j, g in enumerate(grads[1 + ns:]):
                        if g is not None:
                            dw[j] = dw[j] + g
                for j, g in enumerate(gs):
                    d_init[j][k] = g
                dparams[k] = tuple(dw)
                dx = dxs if d == 0 else dxs[rev]
                g_next = dx if g_next is None else g_next + dx
            g_in = g_next
        return (g_in, *(None if s is None else di for s, di in zip(states, d_init, strict=True)),
                dparams)


def _kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("lengths", "nonlinearity", "reset_after",
                                                     "bidirectional", "direction_order")}


def propagated(kind: str, x: np.ndarray, states: Sequence[np.ndarray | None], params,
               kwargs: dict[str, Any], cotangents: Sequence[np.ndarray | None] | None = None,
               *, dtype: str, probes: int = _PROBES) -> list[np.ndarray]:
    """The per-step rounding a backend's sequence layer carries to its results: the largest
    change over ``probes`` noisy runs (module docstring), divided by DELTA, of the outputs
    (y, h_n[, c_n]) or, given ``cotangents``, of the gradients, flattened as
    [dx, d given states..., every given weight's gradient]. The probes' forward passes run as
    one batch (each sequence of the batch ``probes`` times, with its own noise: the rows of
    a recurrent layer are independent); their backward passes one probe at a time (a weight
    gradient sums over the rows). Every step's results also carry the
    policy's absolute floor, TINY / EPS of the dtype as a magnitude (an intermediate that is
    subnormal or flushed to zero loses up to TINY), so the floor
    of each step is carried through the later ones too: a float32 RNN with weights at the
    smallest normal and exploding recurrent weights had its weight gradient 8.1 TINY off."""
    kw = _kwargs(kwargs)
    floor = TINY[dtype] / EPS[dtype]
    n = x.shape[1]
    with np.errstate(all="ignore"):
        base_outs, base_tape = Stepwise(kind, **kw).forward(x, states, params)
        tiled = dict(kw)
        if kw.get("lengths") is not None:
            tiled["lengths"] = np.tile(np.asarray(kw["lengths"]), probes)
        rng = np.random.default_rng(20261124)
        outs, tape = Stepwise(kind, **tiled, noise=rng, floor=floor).forward(
            np.tile(x, (1, probes, 1)),
            [None if s is None else np.tile(s, (1, probes, 1)) for s in states], params)
        if cotangents is None:
            return [_max_over_probes([o[:, p * n:(p + 1) * n] for p in range(probes)], b)
                    for o, b in zip(outs, base_outs, strict=True)]
        base = flat_gradients(Stepwise(kind, **kw).backward(x, states, base_tape, cotangents))
        moved = []
        for p in range(probes):
            rows = slice(p * n, (p + 1) * n)
            sub = [_Direction(d.x[:, rows], d.weights, [tuple(v[rows] for v in c)
                                                        for c in d.caches],
                              [m[rows] for m in d.masks]) for d in tape]
            engine = Stepwise(kind, **kw, noise=rng, floor=floor)
            moved.append(flat_gradients(engine.backward(x, states, sub, cotangents)))
    return [_max_over_probes([m[j] for m in moved], b) for j, b in enumerate(base)]


def _max_over_probes(moved: list[np.ndarray], base: np.ndarray) -> np.ndarray:
    spread = np.zeros_like(base)
    for m in moved:
        d = np.abs(m - base)
        np.maximum(spread, np.where(np.isfinite(d), d, 0.0), out=spread)
    return spread / DELTA


def flat_gradients(grads: Sequence[Any]) -> list[np.ndarray]:
    """[dx, d given states..., every given weight's gradient] of (dx, d states, dparams)."""
    *head, dparams = grads
    return [g for g in head if g is not None] + [g for gs in dparams for g in gs if g is not None]
