"""Flax's recurrent layers and optax's clipping behind backends.recurrent's interface.

What users run: flax.linen cells (SimpleCell, LSTMCell, GRUCell) scanned by flax.linen.RNN
(time_major=True, the oracle's layout), one RNN per layer, nn.Bidirectional for two
directions (its backward RNN runs reverse=True, keep_order=True, each sequence reversed
within its seq_lengths), seq_lengths for variable lengths; optax.clip_by_global_norm and
optax.clip. Everything runs under jax.jit, compiled once per configuration and shapes (the
adapters' compiled-function cache, backends.jax_compiled.COMPILED), the VJP as one jitted
function of the primals and cotangents, as JaxBackend.component_vjp does.

Layout conversion (the oracle's is PyTorch's, backends/recurrent.py): flax keeps one Dense
per gate, kernels (In, H) = the gate's rows of w_ih / w_hh transposed, and one bias where
PyTorch keeps two: SimpleCell's input Dense 'i' and LSTMCell's hidden Denses 'hi' .. 'ho'
take b_ih + b_hh; GRUCell's 'ir' and 'iz' take b_ih + b_hh of the r and z gates, 'in' b_in
and 'hn' b_hn (inside the reset gate: r (W_hn h + b_hn), PyTorch's reset_after=True). Flax's
Denses always have their biases, so absent biases are zeros, and an initial state that is
None is zeros (flax's initialize_carry); gradients are not reported for either. LSTMCell's
carry is (c, h).

Variable lengths: flax freezes nothing; its RNN returns the carry of each sequence's last
valid step, and the outputs past a sequence's end continue the recurrence over the padding.
The adapter sets those outputs to 0 (jnp.where on the step index), as PyTorch's packed
sequences and the oracle define them, and as a user masking padded positions does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from backends.base import Unsupported
from backends.jax_compiled import COMPILED
from backends.recurrent import RecurrentBackend, bias_pair, unflatten, weights4

_GATES = {"rnn": "", "lstm": "ifgo", "gru": "rzn"}


def _cell(kind: str, hidden: int, dtype: Any, nonlinearity: str) -> nn.Module:
    if kind == "rnn":
        act = {"tanh": jnp.tanh, "relu": nn.relu}[nonlinearity]
        return nn.SimpleCell(hidden, activation_fn=act, param_dtype=dtype)
    if kind == "lstm":
        return nn.LSTMCell(hidden, param_dtype=dtype)
    return nn.GRUCell(hidden, param_dtype=dtype)


def _cell_params(kind: str, ws: Sequence[jax.Array]) -> dict[str, Any]:
    """The flax cell's parameters from one (w_ih, w_hh, b_ih, b_hh) entry (module doc)."""
    w_ih, w_hh, b_ih, b_hh = ws
    h = w_hh.shape[1]
    if kind == "rnn":
        return {"i": {"kernel": w_ih.T, "bias": b_ih + b_hh}, "h": {"kernel": w_hh.T}}
    out: dict[str, Any] = {}
    for j, gate in enumerate(_GATES[kind]):
        rows = slice(j * h, (j + 1) * h)
        out["i" + gate] = {"kernel": w_ih[rows].T}
        out["h" + gate] = {"kernel": w_hh[rows].T}
        if kind == "lstm":
            out["h" + gate]["bias"] = b_ih[rows] + b_hh[rows]
        elif gate == "n":
            out["in"]["bias"], out["hn"]["bias"] = b_ih[rows], b_hh[rows]
        else:
            out["i" + gate]["bias"] = b_ih[rows] + b_hh[rows]
    return out


def _carry(kind: str, states: Sequence[jax.Array], k: int) -> Any:
    return (states[1][k], states[0][k]) if kind == "lstm" else states[0][k]


def _finals(kind: str, carry: Any) -> tuple[jax.Array, ...]:
    return (carry[1], carry[0]) if kind == "lstm" else (carry,)


def _sequence_fn(kind: str, bidirectional: bool, nonlinearity: str, masked: bool) -> Callable:
    """f(x, states, params, lengths) -> (y, h_n[, c_n]) with every state and bias given."""
    dirs = 2 if bidirectional else 1

    def f(x, states, params, lengths):
        hidden = params[0][1].shape[1]
        seq = None if not masked else lengths
        finals: list[list[jax.Array]] = [[] for _ in states]
        inp = x
        for layer in range(len(params) // dirs):
            entries = params[layer * dirs:(layer + 1) * dirs]
            cells = [_cell(kind, hidden, x.dtype, nonlinearity) for _ in entries]
            if dirs == 1:
                module = nn.RNN(cells[0], time_major=True, return_carry=True)
                variables = {"params": {"cell": _cell_params(kind, entries[0])}}
                carry0: Any = _carry(kind, states, layer)
            else:
                module = nn.Bidirectional(nn.RNN(cells[0]), nn.RNN(cells[1]), time_major=True,
                                          return_carry=True)
                variables = {"params": {
                    "forward_rnn": {"cell": _cell_params(kind, entries[0])},
                    "backward_rnn": {"cell": _cell_params(kind, entries[1])}}}
                carry0 = (_carry(kind, states, 2 * layer), _carry(kind, states, 2 * layer + 1))
            carry, out = module.apply(variables, inp, initial_carry=carry0, seq_lengths=seq)
            for c in (carry if dirs == 2 else (carry,)):
                for j, s in enumerate(_finals(kind, c)):
                    finals[j].append(s)
            if masked:  # flax's outputs past a sequence's end continue the recurrence
                valid = jnp.arange(x.shape[0])[:, None] < lengths[None, :]
                out = jnp.where(valid[..., None], out, jnp.zeros((), out.dtype))
            inp = out
        return (inp, *(jnp.stack(f_) for f_ in finals))
    return f


class JaxRecurrent(RecurrentBackend):
    """Mixin for JaxBackend (backends/recurrent.py has the interface)."""

    recurrent_conventions: dict[str, dict[str, Any]] = {
        # nn.Bidirectional's merge_fn concatenates the forward outputs first
        "rnn": {"direction_order": "forward_backward"},
        "lstm": {"direction_order": "forward_backward"},
        # GRUCell: n = tanh(W_in x + b_in + r (W_hn h + b_hn))
        "gru": {"direction_order": "forward_backward", "reset_after": True},
        # optax.clip_by_global_norm: g kept if norm < max_norm, else g / norm * max_norm
        "clip_by_global_norm": {"eps": "optax"},
    }

    def rnn(self, x, h0, params, lengths=None, nonlinearity="tanh", bidirectional=False,
            direction_order="forward_backward"):
        """nn.SimpleCell(activation_fn=tanh or relu) under nn.RNN."""
        return self._forward("rnn", x, (h0,), params, lengths, bidirectional, direction_order,
                             nonlinearity)

    def lstm(self, x, h0, c0, params, lengths=None, bidirectional=False,
             direction_order="forward_backward"):
        """nn.LSTMCell under nn.RNN: (y, h_n, c_n)."""
        return self._forward("lstm", x, (h0, c0), params, lengths, bidirectional,
                             direction_order)

    def gru(self, x, h0, params, lengths=None, reset_after=True, bidirectional=False,
            direction_order="forward_backward"):
        """nn.GRUCell under nn.RNN (the reset gate after the hidden matmul only)."""
        if not reset_after:
            raise Unsupported("flax.linen.GRUCell applies the reset gate after the hidden "
                              "matmul, r (W_hn h + b_hn) (reset_after=True); it has no "
                              "reset_after=False")
        return self._forward("gru", x, (h0,), params, lengths, bidirectional, direction_order)

    def _config(self, kind: str, x, states, params, bidirectional: bool, direction_order: str
                ) -> tuple[tuple, list[jax.Array], list[tuple]]:
        """(the configuration key, every state (zeros for None), every entry with biases
        (zeros where absent))."""
        if direction_order != "forward_backward":
            raise Unsupported("flax.linen.Bidirectional's merge_fn concatenates the forward "
                              "outputs first (direction_order='forward_backward')")
        for ws in params:
            bias_pair(kind, ws, "flax")
        hidden = params[0][1].shape[1]
        dtype = str(x.dtype)

        def zeros(shape):
            # NumPy's zeros placed on the device as every input is (jnp.zeros outside a trace
            # compiles a program per shape, and an uncommitted array compiles the layer again)
            return self.asarray(np.zeros(shape), dtype)

        full_states = [zeros((len(params), x.shape[1], hidden)) if s is None else s
                       for s in states]
        full = []
        for ws in params:
            w_ih, w_hh, b_ih, b_hh = weights4(ws)
            zero = zeros((w_hh.shape[0],))
            full.append((w_ih, w_hh, zero if b_ih is None else b_ih,
                         zero if b_hh is None else b_hh))
        return (kind, bool(bidirectional)), full_states, full

    def _forward(self, kind, x, states, params, lengths, bidirectional, direction_order,
                 nonlinearity="tanh"):
        key, full_states, full = self._config(kind, x, states, params, bidirectional,
                                              direction_order)
        masked = lengths is not None
        fn = COMPILED.get((id(self), "sequence", *key, nonlinearity, masked),
                           lambda: _sequence_fn(kind, bidirectional, nonlinearity, masked))
        return fn(x, full_states, full, lengths)

    def sequence_vjp(self, name, x, states, params, cotangents, **kwargs):
        """jax.vjp of the sequence layer and its pullback as one jitted function per
        configuration and shapes; gradients of the zeros standing in for a None state or an
        absent bias are dropped (backends.recurrent.unflatten)."""
        lengths = kwargs.get("lengths")
        bidirectional = kwargs.get("bidirectional", False)
        if name == "gru" and not kwargs.get("reset_after", True):
            raise Unsupported("flax.linen.GRUCell has no reset_after=False")
        nonlinearity = kwargs.get("nonlinearity", "tanh")
        key, full_states, full = self._config(name, x, states, params, bidirectional,
                                              kwargs.get("direction_order", "forward_backward"))
        wanted = tuple(i for i, c in enumerate(cotangents) if c is not None)
        masked = lengths is not None

        def make() -> Callable:
            f = _sequence_fn(name, bidirectional, nonlinearity, masked)

            def run(x_, states_, params_, lengths_, cots):
                outs, pullback = jax.vjp(
                    lambda a, s, p: tuple(f(a, s, p, lengths_)[i] for i in wanted),
                    x_, states_, params_)
                return outs, pullback(tuple(jnp.asarray(c, o.dtype)
                                            for c, o in zip(cots, outs, strict=True)))
            return run

        run = COMPILED.get((id(self), "sequence_vjp", *key, nonlinearity, masked, wanted), make)
        outs, (dx, dstates, dparams) = run(x, full_states, full, lengths,
                                           tuple(cotangents[i] for i in wanted))
        flat = [dx, *(d for d, s in zip(dstates, states, strict=True) if s is not None),
                *(g for ws, gs in zip(params, dparams, strict=True)
                  for w, g in zip(weights4(ws), gs, strict=True) if w is not None)]
        return tuple(outs), unflatten(flat, states, params)

    # -- clipping -------------------------------------------------------------------------
    def clip_by_global_norm(self, grads, max_norm, eps="torch"):
        """optax.clip_by_global_norm(max_norm).update, jitted (max_norm traced)."""
        if eps != "optax":
            raise Unsupported("optax.clip_by_global_norm has no epsilon: g / norm * max_norm "
                              "where norm >= max_norm (eps='optax')")
        fn = COMPILED.get((id(self), "clip_by_global_norm"), lambda: _clip_norm)
        return list(fn(list(grads), max_norm))

    def clip_by_value(self, grads, clip_value):
        """optax.clip(clip_value).update, jitted (clip_value traced)."""
        fn = COMPILED.get((id(self), "clip_by_value"), lambda: _clip_value)
        return list(fn(list(grads), clip_value))


def _clip_norm(grads: list[jax.Array], max_norm: Any) -> list[jax.Array]:
    tx = optax.clip_by_global_norm(max_norm)
    return tx.update(grads, tx.init(grads))[0]


def _clip_value(grads: list[jax.Array], clip_value: Any) -> list[jax.Array]:
    tx = optax.clip(clip_value)
    return tx.update(grads, tx.init(grads))[0]
