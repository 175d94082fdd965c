"""Sequence layers (rnn, lstm, gru) and gradient clipping: the backend interface, a mixin.

These are not single registry components (reference.registry): a sequence layer takes a
list of per-layer weights, and clipping a list of gradients. ``RecurrentBackend`` gives a
Backend their methods with the oracle's names, signatures and defaults
(reference/recurrent.py, reference/clipping.py), each raising UnsupportedComponent until an
adapter overrides it, plus ``sequence_vjp``, the gradients through the backend's own autodiff.

Sequence layers (time-major, PyTorch's layout; G gates, H hidden units, D = 2 if
bidirectional else 1, L layers):

    rnn(x, h0, params, lengths=None, nonlinearity="tanh", bidirectional=False,
        direction_order="forward_backward") -> (y, h_n)
    lstm(x, h0, c0, params, lengths=None, bidirectional=False,
         direction_order="forward_backward") -> (y, h_n, c_n)
    gru(x, h0, params, lengths=None, reset_after=True, bidirectional=False,
        direction_order="forward_backward") -> (y, h_n)

x (T, N, I); h0, c0 (L D, N, H) or None (zeros); ``params[l D + d]`` = (w_ih (G H, In),
w_hh (G H, H)[, b_ih (G H,), b_hh (G H,)]) for layer l and direction d (0 forward,
1 backward); ``lengths`` (N,) integers in [1, T] or None (PyTorch's packed sequences: steps
past a sequence's end output 0 and leave its state unchanged); y (T, N, D H) with the
directions concatenated in ``direction_order``; h_n, c_n (L D, N, H).

Clipping (functions of the gradients, no VJP):

    clip_by_global_norm(grads, max_norm, eps="torch") -> list    (eps: 'torch' or 'optax')
    clip_by_value(grads, clip_value) -> list

A mixin's ``recurrent_conventions`` (component -> {argument: value or tuple}) join the
``conventions`` of every class it is mixed into (the class's own declarations win), so the
properties draw them and certificates list them like any other.

The module also has the calls the properties make (``call_sequence``,
``call_sequence_vjp``, ``call_clip``): NumPy in and out, the backend's failures named
(harness.BackendError) as backends.harness names a component's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends.base import DTYPES, Family, Unsupported
from backends.harness import BackendError, guard, to_native, to_numpy
from reference import clipping as Cl
from reference import recurrent as R

#: sequence layer -> the names of its initial states (and of their gradients' order)
STATES: dict[str, tuple[str, ...]] = {"rnn": ("h0",), "lstm": ("h0", "c0"), "gru": ("h0",)}
#: sequence layer -> its outputs
OUTPUTS: dict[str, tuple[str, ...]] = {"rnn": ("y", "h_n"), "lstm": ("y", "h_n", "c_n"),
                                       "gru": ("y", "h_n")}
SEQUENCES = tuple(STATES)
CLIPPING = ("clip_by_global_norm", "clip_by_value")
COMPONENTS = (*SEQUENCES, *CLIPPING)
#: the oracle's functions: name -> (forward, vjp or None)
ORACLE: dict[str, tuple[Callable, Callable | None]] = {
    "rnn": (R.rnn, R.rnn_vjp), "lstm": (R.lstm, R.lstm_vjp), "gru": (R.gru, R.gru_vjp),
    "clip_by_global_norm": (Cl.clip_by_global_norm, None),
    "clip_by_value": (Cl.clip_by_value, None),
}
WEIGHT_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")
#: the oracle's conventions: name -> {argument: the values it accepts} (docs/recurrent.md)
CONVENTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "rnn": {"direction_order": R.DIRECTION_ORDERS},
    "lstm": {"direction_order": R.DIRECTION_ORDERS},
    "gru": {"direction_order": R.DIRECTION_ORDERS, "reset_after": R.RESET_AFTER},
    "clip_by_global_norm": {"eps": Cl.CLIP_EPS},
}

Params = Sequence[Sequence[Any]]
Grads = tuple[Any, ...]


class RecurrentBackend(Family):
    """Mixin for a Backend: sequence layers and gradient clipping (module docstring)."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    recurrent_conventions: dict[str, dict[str, Any]] = {}
    declarations = {"conventions": "recurrent_conventions"}

    # -- sequence layers ------------------------------------------------------------------
    def rnn(self, x: Any, h0: Any, params: Params, lengths: Any = None,
            nonlinearity: str = "tanh", bidirectional: bool = False,
            direction_order: str = "forward_backward") -> tuple[Any, Any]:
        """(y, h_n) of a stacked Elman RNN, h' = act(x w_ih^T + b_ih + h w_hh^T + b_hh)."""
        return self._lacks("rnn")

    def lstm(self, x: Any, h0: Any, c0: Any, params: Params, lengths: Any = None,
             bidirectional: bool = False, direction_order: str = "forward_backward"
             ) -> tuple[Any, Any, Any]:
        """(y, h_n, c_n) of a stacked LSTM (gates i, f, g, o)."""
        return self._lacks("lstm")

    def gru(self, x: Any, h0: Any, params: Params, lengths: Any = None,
            reset_after: bool = True, bidirectional: bool = False,
            direction_order: str = "forward_backward") -> tuple[Any, Any]:
        """(y, h_n) of a stacked GRU (gates r, z, n)."""
        return self._lacks("gru")

    def sequence_vjp(self, name: str, x: Any, states: Sequence[Any], params: Params,
                     cotangents: Sequence[Any], **kwargs: Any
                     ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(the outputs with a cotangent, (dx, d state for each of STATES[name], dparams)) of
        sequence layer ``name`` for one cotangent per output (None: not differentiated), by
        ``self.vjp`` (the framework's autodiff); ``kwargs`` are held fixed (``lengths``
        among them). A state that is None gets None, as does an absent bias; dparams is a
        list of 4-tuples (dw_ih, dw_hh, db_ih, db_hh), as the oracle's VJPs return."""
        flat, rebuild = flatten(x, states, params)
        wanted = [i for i, c in enumerate(cotangents) if c is not None]
        fn = getattr(self, name)

        def f(*arrays):
            x_, states_, params_ = rebuild(arrays)
            outs = fn(x_, *states_, params_, **kwargs)
            return tuple(outs[i] for i in wanted)

        outs, grads = self.vjp(f, flat, [cotangents[i] for i in wanted])  # type: ignore[attr-defined]
        return tuple(outs), unflatten(grads, states, params)

    # -- clipping -------------------------------------------------------------------------
    def clip_by_global_norm(self, grads: Sequence[Any], max_norm: float, eps: str = "torch"
                            ) -> list[Any]:
        """The gradients scaled to a global norm of at most max_norm (reference.clipping)."""
        return self._lacks("clip_by_global_norm")

    def clip_by_value(self, grads: Sequence[Any], clip_value: float) -> list[Any]:
        """Each element clipped to [-clip_value, clip_value]."""
        return self._lacks("clip_by_value")


def flatten(x: Any, states: Sequence[Any], params: Params
            ) -> tuple[list[Any], Callable[[Sequence[Any]], tuple[Any, tuple, list]]]:
    """(the present arrays: x, the states given, every weight given; a function rebuilding
    (x, states, params) from such a list, Nones where they were)."""
    states = tuple(states)
    present_states = [i for i, s in enumerate(states) if s is not None]
    shape = [tuple(w is not None for w in ws) for ws in params]
    flat = [x, *(states[i] for i in present_states),
            *(w for ws in params for w in ws if w is not None)]

    def rebuild(arrays: Sequence[Any]) -> tuple[Any, tuple, list]:
        it = iter(arrays)
        x_ = next(it)
        st = [None] * len(states)
        for i in present_states:
            st[i] = next(it)
        ps = [tuple(next(it) if here else None for here in mask) for mask in shape]
        return x_, tuple(st), ps

    return flat, rebuild


def unflatten(grads: Sequence[Any], states: Sequence[Any], params: Params
              ) -> tuple[Any, ...]:
    """(dx, d state per state (None where the state is None), dparams as 4-tuples with None
    for an absent bias) from gradients in ``flatten``'s order."""
    it = iter(grads)
    dx = next(it)
    dstates = tuple(None if s is None else next(it) for s in states)
    dparams = [tuple(next(it) if w is not None else None
                     for w in (*ws, *(None,) * (4 - len(ws)))) for ws in params]
    return (dx, *dstates, dparams)


def weights4(ws: Sequence[Any]) -> tuple[Any, Any, Any, Any]:
    """(w_ih, w_hh, b_ih, b_hh) of a params entry of 2 or 4 arrays (absent biases None)."""
    ws = tuple(ws)
    return (*ws, *(None,) * (4 - len(ws)))  # type: ignore[return-value]


def bias_pair(name: str, ws: Sequence[Any], framework: str) -> bool:
    """Whether an entry has its biases (b_ih and b_hh); Unsupported where only one is given
    (torch and flax have both or neither)."""
    _, _, b_ih, b_hh = weights4(ws)
    if (b_ih is None) != (b_hh is None):
        raise Unsupported(f"{framework} {name} layers have both biases (b_ih, b_hh) or "
                          "neither, not one")
    return b_ih is not None


# -- the calls the properties make: NumPy in and out, failures named ------------------------
def _native_params(backend: Any, params: Params, dtype: str) -> list[tuple]:
    return [tuple(None if w is None else to_native(backend, w, dtype) for w in ws)
            for ws in params]


def _natives(x: Any, states: Sequence[Any], params: Sequence[Sequence[Any]]) -> list[Any]:
    return [x, *states, *(w for ws in params for w in ws)]


def _snapshot(backend: Any, natives: Sequence[Any]) -> list[np.ndarray | None]:
    return [None if a is None else np.array(backend.to_numpy(a)) for a in natives]


def _unchanged(backend: Any, what: str, natives: Sequence[Any], before: Sequence[Any],
               names: Sequence[str]) -> None:
    for a, b, n in zip(natives, before, names, strict=True):
        if b is not None and not np.array_equal(backend.to_numpy(a), b, equal_nan=True):
            raise BackendError(f"{backend.id}: {what} mutated its input {n}")


def checked_array(backend: Any, what: str, value: Any, dtype: str, label: str) -> np.ndarray:
    if not backend.is_array(value):
        raise BackendError(f"{backend.id}: {what} returned {type(value).__name__} as {label}, "
                           "not an array")
    got = backend.dtype_of(value)
    if got in DTYPES and got != dtype:
        raise BackendError(f"{backend.id}: {what} returned {got} as {label} for a {dtype} call")
    return to_numpy(backend, value, what)


def _lengths(backend: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("lengths") is not None:
        out["lengths"] = backend.asarray(np.asarray(out["lengths"], dtype=np.int64))
    return out


def call_sequence(backend: Any, name: str, x: np.ndarray, states: Sequence[np.ndarray | None],
                  params: Params, kwargs: dict[str, Any], dtype: str) -> tuple[np.ndarray, ...]:
    """backend.<name>(x, *states, params, **kwargs) with NumPy in and out: one array per
    output (OUTPUTS[name]) in ``dtype``, its inputs untouched (else BackendError)."""
    nx = to_native(backend, x, dtype)
    ns = [None if s is None else to_native(backend, s, dtype) for s in states]
    np_ = _native_params(backend, params, dtype)
    natives = _natives(nx, ns, np_)
    before = _snapshot(backend, natives)
    out = guard(backend, name, getattr(backend, name), nx, *ns, np_, **_lengths(backend, kwargs))
    want = OUTPUTS[name]
    if not isinstance(out, tuple | list) or len(out) != len(want):
        raise BackendError(f"{backend.id}: {name} returned {type(out).__name__}, expected a "
                           f"tuple of {len(want)} arrays {want}")
    result = tuple(checked_array(backend, name, o, dtype, w) for o, w in zip(out, want, strict=True))
    _unchanged(backend, name, natives, before, _all_names(name, states, params))
    return result


def _all_names(name: str, states: Sequence[Any], params: Params) -> list[str]:
    return ["x", *STATES[name], *(f"params[{k}].{WEIGHT_NAMES[j]}"
                                  for k, ws in enumerate(params) for j in range(len(ws)))]


def call_sequence_vjp(backend: Any, name: str, x: np.ndarray,
                      states: Sequence[np.ndarray | None], params: Params,
                      kwargs: dict[str, Any], cotangents: Sequence[np.ndarray | None],
                      dtype: str) -> tuple[tuple[np.ndarray, ...], tuple[Any, ...]]:
    """(the outputs with a cotangent, (dx, d states, dparams)) of backend.sequence_vjp, NumPy
    in and out; a gradient for each given input (None for a None state or an absent bias),
    in ``dtype``, the inputs and cotangents untouched (else BackendError)."""
    nx = to_native(backend, x, dtype)
    ns = [None if s is None else to_native(backend, s, dtype) for s in states]
    np_ = _native_params(backend, params, dtype)
    nc = [None if c is None else to_native(backend, c, dtype) for c in cotangents]
    natives = [*_natives(nx, ns, np_), *nc]
    names = [*_all_names(name, states, params), *(f"cotangent of {o}" for o in OUTPUTS[name])]
    before = _snapshot(backend, natives)
    what = f"{name} vjp"
    outs, grads = guard(backend, what, backend.sequence_vjp, name, nx, ns, np_, nc,
                         **_lengths(backend, kwargs))
    live = [o for o, c in zip(OUTPUTS[name], cotangents, strict=True) if c is not None]
    if len(outs) != len(live):
        raise BackendError(f"{backend.id}: {what} returned {len(outs)} outputs for the "
                           f"{len(live)} with a cotangent")
    outs = tuple(checked_array(backend, what, o, dtype, w) for o, w in zip(outs, live, strict=True))
    n_states = len(STATES[name])
    if not isinstance(grads, tuple | list) or len(grads) != 2 + n_states:
        raise BackendError(f"{backend.id}: {what} returned {type(grads).__name__}, expected "
                           f"(dx, {', '.join('d' + s for s in STATES[name])}, dparams)")
    dx = checked_array(backend, what, grads[0], dtype, "dx")
    dstates = []
    for s, g, sname in zip(states, grads[1:1 + n_states], STATES[name], strict=True):
        if (s is None) != (g is None):
            raise BackendError(f"{backend.id}: {what} returned {'no' if g is None else 'a'} "
                               f"gradient for {sname}, which is {'None' if s is None else 'given'}")
        dstates.append(None if g is None else checked_array(backend, what, g, dtype, "d" + sname))
    dparams = list(grads[-1])
    if len(dparams) != len(params):
        raise BackendError(f"{backend.id}: {what} returned {len(dparams)} weight gradients "
                           f"for {len(params)} params entries")
    out_params = []
    for k, (ws, gs) in enumerate(zip(params, dparams, strict=True)):
        row = []
        for j, (w, g) in enumerate(zip(weights4(ws), weights4(gs), strict=True)):
            label = f"d params[{k}].{WEIGHT_NAMES[j]}"
            if (w is None) != (g is None):
                raise BackendError(f"{backend.id}: {what}: {label} is "
                                   f"{'None' if g is None else 'given'} for a "
                                   f"{'given' if w is not None else 'absent'} weight")
            row.append(None if g is None else checked_array(backend, what, g, dtype, label))
        out_params.append(tuple(row))
    _unchanged(backend, what, natives, before, names)
    return outs, (dx, *dstates, out_params)


def call_clip(backend: Any, name: str, grads: Sequence[np.ndarray], kwargs: dict[str, Any],
              dtype: str) -> list[np.ndarray]:
    """backend.<name>(grads, **kwargs) with NumPy in and out: one array per gradient, of its
    shape and ``dtype``, the gradients given untouched (else BackendError)."""
    natives = [to_native(backend, g, dtype) for g in grads]
    before = _snapshot(backend, natives)
    out = guard(backend, name, getattr(backend, name), natives, **kwargs)
    if not isinstance(out, tuple | list) or len(out) != len(grads):
        raise BackendError(f"{backend.id}: {name} returned {type(out).__name__}, expected a "
                           f"list of {len(grads)} arrays")
    result = [checked_array(backend, name, o, dtype, f"grads[{i}]") for i, o in enumerate(out)]
    _unchanged(backend, name, natives, before, [f"grads[{i}]" for i in range(len(grads))])
    return result


# -- the oracle as a backend ------------------------------------------------------------------
class NumpyRecurrent(RecurrentBackend):
    """reference/recurrent.py and reference/clipping.py themselves (float64), every
    convention the oracle has; gradients from the hand-written BPTT."""

    recurrent_conventions: dict[str, dict[str, Any]] = CONVENTIONS

    def rnn(self, x, h0, params, lengths=None, nonlinearity="tanh", bidirectional=False,
            direction_order="forward_backward"):
        return R.rnn(x, h0, params, lengths, nonlinearity, bidirectional, direction_order)

    def lstm(self, x, h0, c0, params, lengths=None, bidirectional=False,
             direction_order="forward_backward"):
        return R.lstm(x, h0, c0, params, lengths, bidirectional, direction_order)

    def gru(self, x, h0, params, lengths=None, reset_after=True, bidirectional=False,
            direction_order="forward_backward"):
        return R.gru(x, h0, params, lengths, reset_after, bidirectional, direction_order)

    def sequence_vjp(self, name, x, states, params, cotangents, **kwargs):
        """The oracle's forward and its backpropagation through time (reference.recurrent
        <name>_vjp)."""
        forward, vjp = ORACLE[name]
        outs = forward(x, *states, params, **kwargs)
        grads = vjp(x, *states, params, *cotangents, **kwargs)
        return tuple(o for o, c in zip(outs, cotangents, strict=True) if c is not None), grads

    def clip_by_global_norm(self, grads, max_norm, eps="torch"):
        return Cl.clip_by_global_norm(grads, max_norm, eps)

    def clip_by_value(self, grads, clip_value):
        return Cl.clip_by_value(grads, clip_value)
