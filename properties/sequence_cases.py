"""Cases of the sequence layers (rnn, lstm, gru) and of gradient clipping: inputs valid by
construction, their configuration classes, the examples' arguments.

A sequence case draws, each as a configuration class (properties/coverage.py):
- ``length``: 'short' (five examples in six: sizes from the small or realistic menu) or
  'long' (T = 128, one layer of few features: where exploding and vanishing gradients
  show);
- ``sizes``: (T, N, I, H) from a short menu per regime (SMALL, REALISTIC), so the examples
  of every property repeat shapes: JAX compiles a layer once per configuration and shapes,
  a second or more for a stacked LSTM's VJP;
- ``scale`` of the recurrent weights w_hh: 'moderate' (variance 1 / (In + H), the gates
  neither all saturated nor all linear), 'exploding' (x4: saturated gates, a ReLU RNN's state
  growing geometrically) and 'vanishing' (x1/8: the state forgets within a few steps); the
  tolerance policy measures the condition on the oracle, so each is compared in relative
  terms, wherever the oracle's value is finite in the dtype;
- the topology follows the size (noted as the ``topology`` of the example): two stacked
  bidirectional layers at the small size, one layer at the realistic and long ones; the
  invariants draw one bidirectional layer too; bidirectional, ``direction_order`` (the
  backend's convention) is a class;
- ``lengths``: 'none' (every sequence T steps, lengths=None) or 'variable' (lengths drawn in
  [1, T], 1 and T among the likely values: PyTorch's packed sequences);
- ``state``: 'zeros' (h0 = c0 = None) or 'drawn'; ``bias``: 'both' or 'none';
- the rnn's ``nonlinearity`` (tanh, relu: pre-activations kept off the kink by more than
  the backend's rounding of them, ``relu_clear``) and the gru's ``reset_after``.

Clipping cases draw 1 to 4 gradient arrays from a menu of shapes and a global norm
``magnitude`` ('unit', 'tiny': norms near 1e-6 where torch's epsilon is most of the divisor,
'large'), and the ``regime`` of max_norm: 'above' (the norm exceeds it: clipped), 'below'
(under it by more than the epsilon and rounding: unchanged), 'near' (within a few ulps of
it), 'zero_gradient' and 'zero_max_norm'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from backends.recurrent import ORACLE, STATES, weights4
from properties.coverage import SIZES, stratum
from properties.record import current_record
from properties.scoped import note_arguments
from properties.sequence_terms import Stepwise
from properties.strategies import floats_array, realistic, seeded_array
from properties.tolerance import DELTA, EPS, FACTOR, TINY, round_to
from reference import clipping as Cl
from reference.recurrent import GATES

KINDS = ("rnn", "lstm", "gru")
#: (T, N, I, H) menus per regime. The small sizes are one (N, I, H) whose T the properties
#: share (3 for the oracle comparisons and the invariants, 1 for the length-1 invariant, 3
#: padded to 5), so that every property's examples reuse JAX's compilations
SMALL = ((1, 3, 2, 3), (3, 3, 2, 3), (5, 3, 2, 3))
SMALL_T = 3
REALISTIC = ((16, 8, 32, 64),)
LONG = ((128, 3, 2, 3),)
LENGTH = ("short", "long")
SCALES = {"moderate": 1.0, "exploding": 4.0, "vanishing": 1.0 / 8.0}
#: topology -> (layers, bidirectional)
TOPOLOGY = {"one_forward": (1, False), "stacked_bidirectional": (2, True),
            "one_bidirectional": (1, True)}
#: the topologies of the oracle comparisons, by size: one layer at the realistic and long
#: sizes, two bidirectional layers at the small ones (the second layer reads both directions'
#: outputs), so that each size is one configuration per lengths class (JAX compilations); the
#: invariants check one bidirectional layer against one forward layer
TOPOLOGIES = ("one_forward", "stacked_bidirectional")
DIRECTION_ORDERS = ("forward_backward", "backward_forward")
LENGTHS = ("none", "variable")
STATE = ("zeros", "drawn")
BIAS = ("both", "none")
NONLINEARITIES = ("tanh", "relu")
RESET_AFTER = ("after", "before")


def classes(kind: str) -> dict[str, tuple[str, ...]]:
    """The configuration classes the oracle comparisons of ``kind`` declare (the topology
    follows the sizes, so the sizes' draws, forced first, cover it)."""
    out = {"length": LENGTH, "sizes": SIZES, "topology": TOPOLOGIES, "scale": tuple(SCALES),
           "direction_order": DIRECTION_ORDERS, "lengths": LENGTHS,
           "state": STATE, "bias": BIAS}
    if kind == "rnn":
        out["nonlinearity"] = NONLINEARITIES
    if kind == "gru":
        out["reset_after"] = RESET_AFTER
    return out


@dataclass
class SequenceCase:
    """One drawn sequence problem: x (T, N, I), initial states (None: zeros), params (one
    (w_ih, w_hh[, b_ih, b_hh]) per layer and direction), the oracle's keyword arguments, and
    ``terms``, the longest sum behind one element (a gate's pre-activation In + H + 2, a
    gradient of x or h through G H D rows, a weight gradient over T N steps and rows)."""

    kind: str
    x: np.ndarray
    states: tuple[np.ndarray | None, ...]
    params: list[tuple[np.ndarray, ...]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    terms: int = 1

    def arrays(self) -> list[np.ndarray]:
        """The float inputs: x, the given states, every given weight."""
        return [self.x, *(s for s in self.states if s is not None),
                *(w for ws in self.params for w in ws)]

    def rebuild(self, arrays) -> tuple[np.ndarray, tuple, list[tuple]]:
        it = iter(arrays)
        x = next(it)
        states = tuple(None if s is None else next(it) for s in self.states)
        return x, states, [tuple(next(it) for _ in ws) for ws in self.params]

    def forward(self, arrays) -> list[np.ndarray]:
        """The oracle's outputs for ``arrays`` in place of the float inputs."""
        x, states, params = self.rebuild(arrays)
        return list(ORACLE[self.kind][0](x, *states, params, **self.kwargs))

    def gradients(self, arrays, cotangents) -> list[np.ndarray]:
        """The oracle's gradients, flattened as ``arrays``, for ``arrays`` and cotangents."""
        x, states, params = self.rebuild(arrays)
        *head, dparams = ORACLE[self.kind][1](x, *states, params, *cotangents, **self.kwargs)
        return [g for g in head if g is not None] + [g for ws, gs in zip(params, dparams,
                                                                         strict=True)
                                                     for g in gs[:len(ws)]]

    def gradient_names(self) -> list[str]:
        names = ["x", *(n for n, s in zip(STATES[self.kind], self.states, strict=True)
                        if s is not None)]
        return names + [f"params[{k}].{w}" for k, ws in enumerate(self.params)
                        for w in ("w_ih", "w_hh", "b_ih", "b_hh")[:len(ws)]]

    @property
    def dirs(self) -> int:
        return 2 if self.kwargs.get("bidirectional") else 1


def follow(data, backend, component: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` under the backend's conventions: a fixed one replaces the drawn value; of a
    tuple of supported values the drawn one is kept if supported (so a forced class stays
    forced), else one is drawn from the tuple."""
    out = dict(kwargs)
    for arg, value in backend.conventions.get(component, {}).items():
        if not isinstance(value, tuple):
            out[arg] = value
        elif arg in out and out[arg] not in value:
            out[arg] = data.draw(st.sampled_from(value), label=f"{component}.{arg}")
    return out


def _uniform(data, shape, bound: float, dtype: str, label: str) -> np.ndarray:
    if int(np.prod(shape)) <= 16:
        return data.draw(floats_array(shape, -bound, bound, dtype), label=label)
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
    return round_to(np.random.default_rng(seed).uniform(-bound, bound, shape), dtype)


def _lengths(data, t: int, n: int) -> np.ndarray:
    one = st.one_of(st.just(1), st.just(t), st.integers(1, t))
    return np.asarray(data.draw(st.lists(one, min_size=n, max_size=n), label="lengths"),
                      dtype=np.int64)


def draw_sequence(data, backend, kind: str, dtype: str, *, t: tuple[int, ...] | None = None,
                  topologies: tuple[str, ...] = TOPOLOGIES, lengths: str | None = None
                  ) -> SequenceCase:
    """A sequence problem of ``kind`` (module docstring) with the backend's conventions
    applied. An invariant narrows it: ``t`` the numbers of steps it draws from (small sizes
    only), ``topologies`` the topology classes, ``lengths`` fixes the lengths class."""
    gates = GATES[kind]
    record = current_record()
    long_ = t is None and stratum(
        data, "length", LENGTH, st.sampled_from(("short",) * 5 + ("long",))) == "long"
    if long_:
        tt, n, i, h = data.draw(st.sampled_from(LONG), label="T, N, I, H")
    elif t is None:
        menu = REALISTIC if realistic(data) else tuple(m for m in SMALL if m[0] == SMALL_T)
        tt, n, i, h = data.draw(st.sampled_from(menu), label="T, N, I, H")
    else:
        tt, n, i, h = data.draw(st.sampled_from([m for m in SMALL if m[0] in t]),
                                label="T, N, I, H")
    scale = SCALES[stratum(data, "scale", tuple(SCALES))]
    if t is None:  # the oracle comparisons: the topology follows the size (TOPOLOGIES)
        topologies = (TOPOLOGIES[0] if long_ or (tt, n, i, h) in REALISTIC else TOPOLOGIES[1],)
    topology = stratum(data, "topology", topologies) if len(topologies) > 1 else topologies[0]
    record.note_class("topology", topology)
    n_layers, bidirectional = TOPOLOGY[topology]
    kwargs: dict[str, Any] = {"bidirectional": bidirectional}
    if bidirectional:
        kwargs["direction_order"] = stratum(data, "direction_order", DIRECTION_ORDERS)
    if kind == "rnn":
        kwargs["nonlinearity"] = stratum(data, "nonlinearity", NONLINEARITIES)
    if kind == "gru":
        kwargs["reset_after"] = stratum(data, "reset_after", RESET_AFTER) == "after"
    kwargs = follow(data, backend, kind, kwargs)
    if bidirectional:  # the classes the backend runs, its conventions applied
        record.note_class("direction_order", kwargs["direction_order"])
    if kind == "gru":
        record.note_class("reset_after", "after" if kwargs["reset_after"] else "before")
    variable = (lengths or stratum(data, "lengths", LENGTHS)) == "variable"
    record.note_class("lengths", "variable" if variable else "none")
    kwargs["lengths"] = _lengths(data, tt, n) if variable else None
    drawn = stratum(data, "state", STATE) == "drawn"
    bias = stratum(data, "bias", BIAS) == "both"
    dirs = 2 if bidirectional else 1
    params = []
    for k in range(n_layers * dirs):
        fan = (i if k < dirs else dirs * h) + h
        bound = np.sqrt(3.0 / fan)
        ws = [_uniform(data, (gates * h, fan - h), bound, dtype, f"w_ih[{k}]"),
              _uniform(data, (gates * h, h), scale * bound, dtype, f"w_hh[{k}]")]
        if bias:
            ws += [_uniform(data, (gates * h,), 0.5, dtype, f"b_ih[{k}]"),
                   _uniform(data, (gates * h,), 0.5, dtype, f"b_hh[{k}]")]
        params.append(tuple(ws))
    x = _uniform(data, (tt, n, i), 2.0, dtype, "x")
    states = tuple((_uniform(data, (n_layers * dirs, n, h), 1.0 if j == 0 else 3.0, dtype,
                             name) if drawn else None)
                   for j, name in enumerate(STATES[kind]))
    terms = max(max(i, dirs * h) + h + 2, gates * h * dirs, tt * n)
    case = SequenceCase(kind, x, states, params, kwargs, terms)
    note_arguments({**{k: v for k, v in kwargs.items() if k != "lengths"},
                    "variable_lengths": variable, "T": tt, "N": n, "I": i, "H": h,
                    "layers": n_layers, "initial_state": drawn, "bias": bias})
    if kwargs.get("nonlinearity") == "relu":
        relu_clear(case, dtype)
    return case


class _PreActivations(Stepwise):
    """Stepwise recording each valid step's ReLU pre-activation and its terms' magnitude."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pre: list[np.ndarray] = []
        self.terms: list[np.ndarray] = []
        self._mask: np.ndarray | None = None

    def cell(self, x, state, ws):
        w_ih, w_hh, b_ih, b_hh = weights4(ws)
        b = sum(np.abs(v) for v in (b_ih, b_hh) if v is not None)
        pre = x @ w_ih.T + state[0] @ w_hh.T + sum(v for v in (b_ih, b_hh) if v is not None)
        self.pre.append(pre)
        self.terms.append(np.abs(x) @ np.abs(w_ih).T + np.abs(state[0]) @ np.abs(w_hh).T + b)
        return super().cell(x, state, ws)


def relu_clear(case: SequenceCase, dtype: str) -> None:
    """Reject the example where a ReLU pre-activation of a step that runs lies within four
    times its tolerance of 0: FACTOR (eps sqrt(In + H + 2) (T + S) + tiny), T the magnitude of
    the terms it sums, S what the earlier steps' rounding moves it by (its spread over noisy
    runs, properties.sequence_terms, divided by DELTA) and tiny the dtype's smallest normal
    (products below it are subnormal or flushed). Within that, the backend's rounding could
    take the other branch."""
    kw = {k: v for k, v in case.kwargs.items() if k != "nonlinearity"}
    base = _PreActivations("rnn", nonlinearity="relu", **kw)
    base.forward(case.x, case.states, case.params)
    spread = [np.zeros_like(p) for p in base.pre]
    rng = np.random.default_rng(20261124)
    for _ in range(2):
        moved = _PreActivations("rnn", nonlinearity="relu", noise=rng, **kw)
        with np.errstate(all="ignore"):
            moved.forward(case.x, case.states, case.params)
        for s, a, b in zip(spread, moved.pre, base.pre, strict=True):
            np.maximum(s, np.nan_to_num(np.abs(a - b), posinf=np.inf), out=s)
    assume_in_range([np.concatenate([p.ravel() for p in base.pre])], dtype)
    lengths = case.kwargs.get("lengths")
    t = case.x.shape[0]
    fan = max(w[0].shape[1] for w in case.params) + case.params[0][1].shape[1] + 2
    for step, (p, m, s) in enumerate(zip(base.pre, base.terms, spread, strict=True)):
        valid = np.ones(p.shape[0], bool) if lengths is None else lengths > step % t
        gap = 4 * FACTOR[dtype] * (EPS[dtype] * np.sqrt(fan) * (m + s / DELTA) + TINY[dtype])
        assume(bool(np.all((np.abs(p) >= gap)[valid])))


def range_limit(dtype: str) -> float:
    """The largest magnitude a case's values may reach: the square root of the dtype's
    largest number, so that products and sums of them stay finite in it."""
    big = np.finfo(np.float16 if dtype == "float16" else np.float32
                   if dtype in ("float32", "bfloat16") else np.float64).max
    return float(np.sqrt(big))


def assume_in_range(values, dtype: str) -> None:
    """Reject the example where the oracle's values leave the dtype's range (range_limit): an
    exploding ReLU RNN whose state overflows in float32 (then inf - inf and 0 inf make NaN
    downstream); the rest of the exploding regime is compared, in relative terms."""
    limit = range_limit(dtype)
    with np.errstate(invalid="ignore"):
        assume(all(bool(np.all(np.abs(np.asarray(v)) < limit)) for v in values))


def cotangents(data, outputs: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    """A standard-normal cotangent per output, rounded to ``dtype``."""
    return [seeded_array(data.draw, o.shape, dtype) for o in outputs]


# -- clipping -------------------------------------------------------------------------------
#: lists of gradient shapes per regime (a model's weights and biases)
GRAD_SHAPES = (((3,),), ((2, 3), (3,)), ((4, 1), (1,), (2, 2), (2,)))
REALISTIC_GRAD_SHAPES = (((64, 32), (32,), (32, 10), (10,)), ((128, 64), (64,)))
MAGNITUDES = {"unit": 1.0, "tiny": 1e-6, "large": 1e3}
REGIMES = ("above", "below", "near", "zero_gradient", "zero_max_norm")
CLIP_CLASSES = {"sizes": SIZES, "magnitude": tuple(MAGNITUDES), "regime": REGIMES,
                "eps": Cl.CLIP_EPS}


@dataclass
class ClipCase:
    """Gradients and clip_by_global_norm's keyword arguments; ``terms``: the elements the
    global norm sums."""

    grads: list[np.ndarray]
    kwargs: dict[str, Any]
    terms: int
    regime: str


def draw_grads(data, dtype: str, magnitude: float | None = None) -> list[np.ndarray]:
    """1 to 4 gradient arrays from the shape menus (sizes class), standard normal times the
    ``magnitude`` class's scale (or ``magnitude``), rounded to ``dtype``."""
    menu = REALISTIC_GRAD_SHAPES if realistic(data) else GRAD_SHAPES
    shapes = data.draw(st.sampled_from(menu), label="shapes")
    if magnitude is None:
        magnitude = MAGNITUDES[stratum(data, "magnitude", tuple(MAGNITUDES))]
    seed = data.draw(st.integers(0, 2**32 - 1), label="grads seed")
    rng = np.random.default_rng(seed)
    return [round_to(magnitude * rng.standard_normal(s), dtype) for s in shapes]


def draw_clip(data, backend, dtype: str, regimes: tuple[str, ...] = REGIMES) -> ClipCase:
    """A clip_by_global_norm case of one of ``regimes`` (its class), with the backend's
    epsilon convention; the test declares CLIP_CLASSES with these regimes."""
    current_record().declared = {**CLIP_CLASSES, "regime": regimes}
    kwargs = follow(data, backend, "clip_by_global_norm",
                    {"eps": stratum(data, "eps", Cl.CLIP_EPS)})
    current_record().note_class("eps", kwargs["eps"])
    regime = stratum(data, "regime", regimes)
    grads = draw_grads(data, dtype)
    if regime == "zero_gradient":
        grads = [np.zeros_like(g) for g in grads]
    n = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads)))
    assume(regime == "zero_gradient" or n > 0)
    size = sum(g.size for g in grads)
    slack = 4 * FACTOR[dtype] * EPS[dtype] * np.sqrt(size) * n
    eps = Cl.TORCH_EPS if kwargs["eps"] == "torch" else 0.0
    if regime == "above":
        max_norm = n * data.draw(st.floats(0.01, 0.9), label="max_norm / norm")
    elif regime == "below":
        max_norm = (n + eps + slack) * data.draw(st.floats(1.0, 4.0), label="max_norm / norm")
    elif regime == "near":
        ulps = data.draw(st.integers(-4, 4), label="max_norm - norm (ulps)")
        max_norm = n * (1.0 + ulps * EPS[dtype])
    elif regime == "zero_max_norm":
        max_norm = 0.0
    else:
        max_norm = data.draw(st.sampled_from((0.0, 1.0)), label="max_norm")
    max_norm = float(round_to(np.asarray(max_norm), dtype))
    kwargs["max_norm"] = max_norm
    note_arguments({**kwargs, "regime": regime, "zero_gradient": n == 0.0})
    return ClipCase(grads, kwargs, size, regime)


VALUES = ("finite", "infinite")
CLIP_VALUES = ("zero", "inside", "above")
VALUE_CLASSES = {"sizes": SIZES, "magnitude": tuple(MAGNITUDES), "values": VALUES,
                 "clip_value": CLIP_VALUES}


def draw_clip_value(data, dtype: str) -> tuple[list[np.ndarray], float]:
    """(gradients, clip_value) for clip_by_value: gradients of a magnitude class, 'infinite'
    ones with +-inf elements; clip_value 'zero', 'inside' (a fraction of the largest |g|) or
    'above' it (nothing clipped), rounded to ``dtype``."""
    grads = draw_grads(data, dtype)
    if stratum(data, "values", VALUES) == "infinite":
        k = data.draw(st.integers(0, len(grads) - 1), label="infinite in grads[k]")
        g = grads[k].copy().ravel()
        at = data.draw(st.lists(st.integers(0, g.size - 1), min_size=1, max_size=3),
                       label="infinite at")
        g[at] = np.where(np.arange(len(at)) % 2, -np.inf, np.inf)
        grads[k] = g.reshape(grads[k].shape)
    finite = np.concatenate([np.abs(g[np.isfinite(g)]).ravel() for g in grads])
    top = float(finite.max()) if finite.size else 1.0
    kind = stratum(data, "clip_value", CLIP_VALUES)
    if kind == "zero":
        value = 0.0
    elif kind == "inside":
        value = top * data.draw(st.floats(0.05, 0.95), label="clip_value / max|g|")
    else:
        value = top * data.draw(st.floats(1.0, 4.0), label="clip_value / max|g|")
    return grads, float(round_to(np.asarray(value), dtype))
