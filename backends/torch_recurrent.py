"""PyTorch's sequence layers and gradient clipping behind backends.recurrent's interface.

What users run: nn.RNN / nn.LSTM / nn.GRU (time-major, batch_first=False, as the oracle's
layout) with num_layers and bidirectional, called by torch.func.functional_call with the
oracle's weights as the module's parameters, variable lengths through
nn.utils.rnn.pack_padded_sequence(enforce_sorted=False) and pad_packed_sequence; and
nn.utils.clip_grad_norm_ / clip_grad_value_ on parameters whose .grad are the gradients.
Gradients come from torch.autograd (TorchBackend.vjp) through all of it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from backends.base import Unsupported
from backends.recurrent import RecurrentBackend, bias_pair, weights4

_MODULES: dict[str, type[torch.nn.Module]] = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM,
                                              "gru": torch.nn.GRU}


@functools.lru_cache(maxsize=64)
def _module(kind: str, inputs: int, hidden: int, layers: int, bias: bool, bidirectional: bool,
            nonlinearity: str | None) -> torch.nn.Module:
    """The nn.RNN / LSTM / GRU on the meta device: its own parameters are never used
    (functional_call swaps in the oracle's), so none is allocated or initialised."""
    extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
    return _MODULES[kind](inputs, hidden, layers, bias=bias, bidirectional=bidirectional,
                          device="meta", **extra)


def _parameters(params: Sequence[Sequence[torch.Tensor]], dirs: int, bias: bool
                ) -> dict[str, torch.Tensor]:
    """The module's parameter names for the oracle's entries. The layouts are the same:
    torch's weight_ih_l{l} (G H, In), weight_hh_l{l} (G H, H), bias_ih_l{l} and bias_hh_l{l}
    (G H,), gates stacked in torch's order (i, f, g, o; r, z, n), the backward direction's
    with the suffix _reverse, and entry l D + d of params is layer l, direction d, as the
    module's _flat_weights. torch keeps two biases where one would do (both add to the same
    pre-activation, except b_hn, inside the GRU's reset gate): they map one to one."""
    out = {}
    for k, ws in enumerate(params):
        suffix = f"_l{k // dirs}" + ("_reverse" if k % dirs else "")
        w_ih, w_hh, b_ih, b_hh = weights4(ws)
        out[f"weight_ih{suffix}"], out[f"weight_hh{suffix}"] = w_ih, w_hh
        if bias:
            out[f"bias_ih{suffix}"], out[f"bias_hh{suffix}"] = b_ih, b_hh
    return out


class TorchRecurrent(RecurrentBackend):
    """Mixin for TorchBackend (backends/recurrent.py has the interface)."""

    recurrent_conventions: dict[str, dict[str, Any]] = {
        # the output concatenates the forward direction's features, then the backward's
        "rnn": {"direction_order": "forward_backward"},
        "lstm": {"direction_order": "forward_backward"},
        # nn.GRU: n = tanh(W_in x + b_in + r (W_hn h + b_hn)), the reset gate after the
        # hidden matmul
        "gru": {"direction_order": "forward_backward", "reset_after": True},
        # clip_grad_norm_ scales by max_norm / (norm + 1e-6), clamped to 1
        "clip_by_global_norm": {"eps": "torch"},
    }

    def rnn(self, x, h0, params, lengths=None, nonlinearity="tanh", bidirectional=False,
            direction_order="forward_backward"):
        """nn.RNN(nonlinearity=...)."""
        return self._run("rnn", x, (h0,), params, lengths, bidirectional, direction_order,
                         nonlinearity)

    def lstm(self, x, h0, c0, params, lengths=None, bidirectional=False,
             direction_order="forward_backward"):
        """nn.LSTM: (y, h_n, c_n)."""
        return self._run("lstm", x, (h0, c0), params, lengths, bidirectional, direction_order)

    def gru(self, x, h0, params, lengths=None, reset_after=True, bidirectional=False,
            direction_order="forward_backward"):
        """nn.GRU, whose reset gate acts after the hidden matmul only."""
        if not reset_after:
            raise Unsupported("nn.GRU applies the reset gate after the hidden matmul, "
                              "r (W_hn h + b_hn) (reset_after=True); it has no reset_after=False")
        return self._run("gru", x, (h0,), params, lengths, bidirectional, direction_order)

    def _run(self, kind: str, x: torch.Tensor, states: tuple, params: Sequence[Sequence[Any]],
             lengths: torch.Tensor | None, bidirectional: bool, direction_order: str,
             nonlinearity: str | None = None) -> tuple[torch.Tensor, ...]:
        if direction_order != "forward_backward":
            raise Unsupported(f"nn.{_MODULES[kind].__name__} concatenates the forward "
                              "direction's features first (direction_order='forward_backward')")
        dirs = 2 if bidirectional else 1
        bias = bias_pair(kind, params[0], "torch")
        if any(bias_pair(kind, ws, "torch") != bias for ws in params):
            raise Unsupported(f"nn.{_MODULES[kind].__name__} has biases in every layer or none")
        hidden = params[0][1].shape[1]
        module = _module(kind, x.shape[2], hidden, len(params) // dirs, bias, bidirectional,
                         nonlinearity)
        if kind == "lstm":
            # (h0, c0) together or neither: a missing one is the zeros torch would use
            hx = None if all(s is None for s in states) else tuple(
                x.new_zeros(len(params), x.shape[1], hidden) if s is None else s for s in states)
        else:
            hx = states[0]
        inp = x if lengths is None else pack_padded_sequence(x, lengths.cpu(),
                                                             enforce_sorted=False)
        out, final = torch.func.functional_call(module, _parameters(params, dirs, bias),
                                                (inp, hx))
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        return (out, *final) if kind == "lstm" else (out, final)

    # -- clipping -------------------------------------------------------------------------
    def clip_by_global_norm(self, grads, max_norm, eps="torch"):
        """nn.utils.clip_grad_norm_ on parameters holding copies of the gradients."""
        if eps != "torch":
            raise Unsupported("clip_grad_norm_ scales by max_norm / (norm + 1e-6) (eps='torch')")
        holders = _holders(grads)
        torch.nn.utils.clip_grad_norm_(holders, max_norm)
        return [p.grad for p in holders]

    def clip_by_value(self, grads, clip_value):
        """nn.utils.clip_grad_value_ on parameters holding copies of the gradients."""
        holders = _holders(grads)
        torch.nn.utils.clip_grad_value_(holders, clip_value)
        return [p.grad for p in holders]


def _holders(grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Parameters (leaves that require grad) whose .grad is a copy of each gradient: the
    clip_grad_ functions change .grad in place, never the caller's arrays."""
    holders = []
    for g in grads:
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.detach().clone()
        holders.append(p)
    return holders
