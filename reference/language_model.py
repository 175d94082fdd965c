"""A character-level language model and its training loop with truncated backpropagation
through time (TBPTT), all from the oracle's components and their hand-written VJPs.

    tokens (T, N) -> embedding (T, N, E) -> L stacked LSTM or GRU layers (T, N, H)
                  -> dense to logits (T, N, V) -> mean cross-entropy over all T N positions

Time-major, as reference.recurrent. Parameters, a flat list (the optimizers' format):

    [embedding (V, E), then per layer w_ih (G H, In), w_hh (G H, H), b_ih (G H,), b_hh (G H,)
     (reference.recurrent's layout, In = E for the first layer, H after), dense w (H, V),
     dense b (V,) (reference.dense's layout)]

The recurrent state is (h,) for the GRU or (h, c) for the LSTM, each (L, N, H); None means
zeros. ``loss_and_grads`` returns the final state beside the loss and gradients; ``train``
carries it from one batch to the next (TBPTT: the next batch starts where this one ended)
without differentiating through it, as PyTorch's word-language-model example does with
``repackage_hidden`` (h.detach()).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reference import clipping as Cl
from reference import dense as D
from reference import embedding as E
from reference import losses as Lo
from reference import recurrent as R
from reference._validate import arrays_of_shapes, as_float, positive
from reference.optimizers import Optimizer

CELLS = ("lstm", "gru")

State = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class CharLM:
    """vocab V, embedding width E, hidden width H, L layers of ``cell`` ('lstm' or 'gru';
    ``reset_after`` is the GRU's convention, reference.recurrent)."""

    vocab: int
    embed: int
    hidden: int
    layers: int = 1
    cell: str = "lstm"
    reset_after: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab", "embed", "hidden", "layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {CELLS}, got {self.cell!r}")
        if self.reset_after not in (True, False):
            raise ValueError(f"reset_after: expected True or False, got {self.reset_after!r}")

    @property
    def gates(self) -> int:
        return R.GATES[self.cell]

    def param_shapes(self) -> list[tuple[int, ...]]:
        """The shape of every parameter, in the order of the flat list."""
        gh, h = self.gates * self.hidden, self.hidden
        shapes: list[tuple[int, ...]] = [(self.vocab, self.embed)]
        for layer in range(self.layers):
            shapes += [(gh, self.embed if layer == 0 else h), (gh, h), (gh,), (gh,)]
        return shapes + [(h, self.vocab), (self.vocab,)]

    def state_shape(self, n: int) -> tuple[int, int, int]:
        return (self.layers, n, self.hidden)


def init_params(model: CharLM, seed: int = 0) -> list[np.ndarray]:
    """PyTorch's default initialisation: embedding N(0, 1), every other parameter
    U(-1/sqrt(H), 1/sqrt(H)) (nn.LSTM / nn.GRU; nn.Linear's fan-in is H too)."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(model.hidden)
    shapes = model.param_shapes()
    return [rng.standard_normal(shapes[0])] + [rng.uniform(-bound, bound, s) for s in shapes[1:]]


def zero_state(model: CharLM, n: int) -> State:
    """Zeros: (h,) for the GRU, (h, c) for the LSTM, each (L, N, H)."""
    return tuple(np.zeros(model.state_shape(n)) for _ in range(2 if model.cell == "lstm" else 1))


def _params(model: CharLM, params) -> list[np.ndarray]:
    """params checked against the model's shapes and cast to float64."""
    return arrays_of_shapes("params", params, model.param_shapes(), model)


def _tokens(name: str, tokens, vocab: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(tokens)
    if a.dtype.kind not in "iu" or a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{name}: expected a non-empty (T, N) integer array, got {a.dtype} "
                         f"array of shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} to match inputs, got {a.shape}")
    if a.min() < 0 or a.max() >= vocab:
        raise ValueError(f"{name}: expected tokens in [0, {vocab}), got range "
                         f"[{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def _state(model: CharLM, state, n: int) -> State:
    if state is None:
        return zero_state(model, n)
    k = 2 if model.cell == "lstm" else 1
    if isinstance(state, np.ndarray) or not isinstance(state, Sequence) or len(state) != k:
        raise ValueError(f"state: expected {k} array(s) ({'h, c' if k == 2 else 'h'}) for the "
                         f"{model.cell}, got {type(state).__name__}")
    out = []
    for i, s in enumerate(state):
        s = as_float(f"state[{i}]", s)
        if s.shape != model.state_shape(n):
            raise ValueError(f"state[{i}]: expected shape {model.state_shape(n)}, got {s.shape}")
        out.append(s)
    return tuple(out)


def _recurrent_params(model: CharLM, p: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    return [tuple(p[1 + 4 * layer: 5 + 4 * layer]) for layer in range(model.layers)]


def _run(model: CharLM, p, x, state) -> tuple[np.ndarray, State, R.Tape]:
    """(y, final state, the tape R.sequence_backward reads): the recurrent layers, once."""
    rp = _recurrent_params(model, p)
    if model.cell == "lstm":
        y, h_n, c_n, tape = R.lstm_forward(x, state[0], state[1], rp)
        return y, (h_n, c_n), tape
    y, h_n, tape = R.gru_forward(x, state[0], rp, reset_after=model.reset_after)
    return y, (h_n,), tape


def forward(model: CharLM, params: Sequence[np.ndarray], inputs: np.ndarray,
            state: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """(logits (T, N, V), final state) for integer inputs (T, N) from ``state`` (None: zeros)."""
    p = _params(model, params)
    tokens = _tokens("inputs", inputs, model.vocab)
    t, n = tokens.shape
    st = _state(model, state, n)
    x = E.embedding(p[0], tokens)
    y, new_state, _ = _run(model, p, x, st)
    logits = D.dense(y.reshape(t * n, model.hidden), p[-2], p[-1])
    return logits.reshape(t, n, model.vocab), new_state


def loss(model: CharLM, params: Sequence[np.ndarray], inputs: np.ndarray, targets: np.ndarray,
         state: Sequence[np.ndarray] | None = None) -> tuple[float, State]:
    """(mean cross-entropy of the logits against targets (T, N) over all T N positions,
    final state)."""
    logits, new_state = forward(model, params, inputs, state)
    t, n, v = logits.shape
    tg = _tokens("targets", targets, model.vocab, (t, n))
    return float(Lo.cross_entropy(logits.reshape(t * n, v), tg.reshape(-1))), new_state


def loss_and_grads(model: CharLM, params: Sequence[np.ndarray], inputs: np.ndarray,
                   targets: np.ndarray, state: Sequence[np.ndarray] | None = None
                   ) -> tuple[float, list[np.ndarray], State]:
    """(loss, the gradient of every parameter, final state), by the chain rule over the
    oracle's VJPs: cross-entropy -> dense -> the recurrent layers (BPTT within the batch,
    over the tape of the one forward) -> embedding (scatter-add). The initial state is not
    differentiated."""
    p = _params(model, params)
    tokens = _tokens("inputs", inputs, model.vocab)
    t, n = tokens.shape
    tg = _tokens("targets", targets, model.vocab, (t, n)).reshape(-1)
    st = _state(model, state, n)
    x = E.embedding(p[0], tokens)
    y, new_state, tape = _run(model, p, x, st)
    y2 = y.reshape(t * n, model.hidden)
    logits = D.dense(y2, p[-2], p[-1])
    value = float(Lo.cross_entropy(logits, tg))
    (g_logits,) = Lo.cross_entropy_vjp(logits, tg, np.float64(1.0))
    g_y, d_wout, d_bout = D.dense_vjp(y2, p[-2], p[-1], g_logits)
    dx, *_, dparams = R.sequence_backward(tape, g_y.reshape(t, n, model.hidden))
    (d_emb,) = E.embedding_vjp(p[0], tokens, dx)
    grads = [d_emb] + [g for layer in dparams for g in layer] + [d_wout, d_bout]
    return value, grads, new_state


def batchify(stream: np.ndarray, n: int) -> np.ndarray:
    """A 1-D token stream cut into n contiguous columns (len // n, n), the remainder dropped
    (PyTorch's word-language-model ``batchify``): column j continues where its previous
    batch ended, which is what makes carrying the state across batches meaningful."""
    a = np.asarray(stream)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise ValueError(f"stream: expected a 1-D integer array, got {a.dtype} array of shape "
                         f"{a.shape}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1 or a.size < 2 * n:
        raise ValueError(f"n: expected an int in [1, {a.size // 2}] (two tokens per column at "
                         f"least), got {n!r}")
    rows = a.size // n
    return a[: rows * n].reshape(n, rows).T.copy()


def tbptt_batches(data: np.ndarray, seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive (inputs, targets) windows of a (rows, N) batchified stream: inputs
    data[i:i+k], targets data[i+1:i+1+k], k = min(seq_len, rows - 1 - i), i = 0, seq_len, ..."""
    a = np.asarray(data)
    if a.dtype.kind not in "iu" or a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"data: expected a (rows >= 2, N) integer array, got {a.dtype} array "
                         f"of shape {a.shape}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | np.integer) or seq_len < 1:
        raise ValueError(f"seq_len: expected a positive int, got {seq_len!r}")
    out = []
    for i in range(0, a.shape[0] - 1, seq_len):
        k = min(seq_len, a.shape[0] - 1 - i)
        out.append((a[i: i + k], a[i + 1: i + 1 + k]))
    return out


def train(model: CharLM, params: Sequence[np.ndarray],
          batches: Sequence[tuple[np.ndarray, np.ndarray]], optimizer: Optimizer,
          state: Sequence[np.ndarray] | None = None, max_norm: float | None = None,
          clip_eps: str = "torch", clip_value: float | None = None
          ) -> tuple[list[np.ndarray], list[float], State]:
    """Truncated BPTT: one optimizer step per (inputs, targets) batch in order, every batch with
    the same N; batch k starts from batch k - 1's final state (the first from ``state``, None:
    zeros), carried without gradient. Gradients are clipped by value (``clip_value``) and then
    by global norm (``max_norm`` with convention ``clip_eps``, reference.clipping) when given.
    Returns (final params, the loss of each batch before its step, the final state)."""
    p = _params(model, params)
    if max_norm is not None:
        positive("max_norm", max_norm, allow_zero=True)
        if clip_eps not in Cl.CLIP_EPS:
            raise ValueError(f"clip_eps: expected one of {Cl.CLIP_EPS}, got {clip_eps!r}")
    if clip_value is not None:
        positive("clip_value", clip_value, allow_zero=True)
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence) or not batches:
        raise ValueError("batches: expected a non-empty list of (inputs, targets) pairs")
    opt_state = optimizer.init(p)
    history = []
    st = state
    for j, batch in enumerate(batches):
        if not isinstance(batch, Sequence) or len(batch) != 2:
            raise ValueError(f"batches[{j}]: expected an (inputs, targets) pair")
        value, grads, st = loss_and_grads(model, p, batch[0], batch[1], st)
        if clip_value is not None:
            grads = Cl.clip_by_value(grads, clip_value)
        if max_norm is not None:
            grads = Cl.clip_by_global_norm(grads, max_norm, clip_eps)
        history.append(value)
        p, opt_state = optimizer.update(grads, opt_state, p)
    return p, history, st
