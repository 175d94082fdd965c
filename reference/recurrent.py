"""Recurrent cells (Elman RNN, LSTM, GRU) and multi-layer, bidirectional, variable-length
sequence layers over them, with hand-written VJPs (backpropagation through time).

Parameter layout (PyTorch's; G gates, H hidden units, I inputs):

    w_ih (G H, I)    w_hh (G H, H)    b_ih (G H,) or None    b_hh (G H,) or None

with the gates stacked along the first axis: RNN G = 1; LSTM G = 4 in the order i, f, g, o;
GRU G = 3 in the order r, z, n. A cell computes a = x w_ih^T + b_ih and b = h w_hh^T + b_hh
(a bias that is None counts as 0):

- rnn:  h' = act(a + b), act = tanh or relu (``nonlinearity``).
- lstm: i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the chunks of a + b;
        c' = f c + i g;  h' = o tanh(c').  Outputs (h', c').
- gru:  r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z), h' = (1 - z) n + z h with
        ``reset_after=True`` (PyTorch, flax linen):  n = tanh(a_n + r (h W_hn^T + b_hn));
        ``reset_after=False`` (the original formulation, Keras reset_after=False):
                                                    n = tanh(a_n + (r h) W_hn^T + b_hn).
  W_hn = w_hh[2H:], b_hn = b_hh[2H:]. Keras' gate order is z, r, h and its kernels are
  transposed: adapters convert.

Sequence layers (``rnn``, ``lstm``, ``gru``): time-major x (T, N, I), as PyTorch's default
batch_first=False. ``params`` is one entry per layer and direction, ``params[l D + d]`` for
layer l and direction d (D = 2 if bidirectional else 1; d = 0 forward, 1 backward, PyTorch's
order of ``_flat_weights`` and of h_n), each a sequence (w_ih, w_hh[, b_ih, b_hh]); layer 0's
w_ih is (G H, I), a later layer's (G H, D H). Initial states h0 (and c0) (L D, N, H), None
meaning zeros. Returns (y, h_n) or, for the LSTM, (y, h_n, c_n): y (T, N, D H) is the last
layer's output, the directions concatenated along the feature axis in ``direction_order``
('forward_backward', PyTorch, Keras' and flax's concatenation; or 'backward_forward'), which a
next layer also reads; h_n, c_n (L D, N, H).

Variable lengths: ``lengths`` (N,) integers in [1, T], None meaning all T (PyTorch's
pack_padded_sequence semantics). Sequence n's steps t >= lengths[n] leave its state unchanged
and output exactly 0, so its final state is the state after its last valid step; the backward
direction reads each sequence reversed within its own length (step t reads x[lengths[n] - 1 -
t]). Input past a sequence's end changes nothing and gets a zero gradient.

VJPs take the forward's arguments, one cotangent per output (None: not differentiated, zero)
and return one gradient per differentiable input: cells (dx, dh[, dc], dw_ih, dw_hh, db_ih,
db_hh) (None for an absent bias); sequence layers (dx, dh0[, dc0], dparams), dh0 / dc0 None
when the initial state is None, dparams a list of (dw_ih, dw_hh, db_ih, db_hh) per entry of
``params`` (None for an absent bias). A caller that needs the outputs and the gradients runs
the forward once: ``rnn_forward`` / ``lstm_forward`` / ``gru_forward`` return the outputs and
a ``Tape``, and ``sequence_backward(tape, gy, gh[, gc])`` the gradients from it (the *_vjp
functions are the two in a row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from reference._validate import as_float

NONLINEARITIES = ("tanh", "relu")
RESET_AFTER = (True, False)
DIRECTION_ORDERS = ("forward_backward", "backward_forward")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

Weights = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


@dataclass(frozen=True)
class _Cell:
    kind: str                   # 'rnn', 'lstm', 'gru'
    nonlinearity: str = "tanh"  # rnn
    reset_after: bool = True    # gru

    @property
    def gates(self) -> int:
        return GATES[self.kind]

    @property
    def states(self) -> int:
        return 2 if self.kind == "lstm" else 1


def _cell(kind: str, nonlinearity: str = "tanh", reset_after: bool = True) -> _Cell:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {NONLINEARITIES}, got {nonlinearity!r}")
    if reset_after not in RESET_AFTER or not isinstance(reset_after, bool | np.bool_):
        raise ValueError(f"reset_after: expected True or False, got {reset_after!r}")
    return _Cell(kind, nonlinearity, bool(reset_after))


# --------------------------------------------------------------------------- one step

def _sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return special.expit(x, out=out)


def _step(cell: _Cell, a: np.ndarray, state: tuple[np.ndarray, ...], w_hh: np.ndarray,
          b_hh: np.ndarray | None):
    """One step from the input pre-activation a = x w_ih^T + b_ih (N, G H): (new state, cache)."""
    h = state[0]
    hh = h.shape[1]
    if cell.kind == "gru" and not cell.reset_after:
        b = h @ w_hh[: 2 * hh].T
        if b_hh is not None:
            b += b_hh[: 2 * hh]
        rz = _sigmoid(a[:, : 2 * hh] + b)
        r, z = rz[:, :hh], rz[:, hh:]
        rh = r * h
        pre_n = a[:, 2 * hh:] + rh @ w_hh[2 * hh:].T
        if b_hh is not None:
            pre_n += b_hh[2 * hh:]
        n = np.tanh(pre_n)
        return (n + z * (h - n),), (h, r, z, n, rh)
    b = h @ w_hh.T
    if b_hh is not None:
        b += b_hh
    if cell.kind == "rnn":
        pre = np.add(a, b, out=b)
        if cell.nonlinearity == "tanh":
            out = np.tanh(pre)
            return (out,), (h, out)
        return (np.maximum(pre, 0.0),), (h, pre)
    if cell.kind == "lstm":
        c = state[1]
        act = np.add(a, b, out=b)  # the pre-activations, then in place the gates' activations
        _sigmoid(act[:, : 2 * hh], out=act[:, : 2 * hh])
        np.tanh(act[:, 2 * hh:3 * hh], out=act[:, 2 * hh:3 * hh])
        _sigmoid(act[:, 3 * hh:], out=act[:, 3 * hh:])
        i, f, g, o = act[:, :hh], act[:, hh:2 * hh], act[:, 2 * hh:3 * hh], act[:, 3 * hh:]
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return (o * tc, c_new), (h, c, i, f, g, o, tc)
    # gru, reset after the hidden matmul
    rz = _sigmoid(a[:, : 2 * hh] + b[:, : 2 * hh])
    r, z = rz[:, :hh], rz[:, hh:]
    bn = b[:, 2 * hh:]
    n = np.tanh(a[:, 2 * hh:] + r * bn)
    return (n + z * (h - n),), (h, r, z, n, bn)


def _step_back(cell: _Cell, cache, gs: tuple[np.ndarray, ...], w_hh: np.ndarray):
    """Backward of one step for the cotangents of the new state: (da, db, d previous state),
    da the cotangent of the input pre-activation a (and of b_ih), db that of the hidden
    matmul's output (and of b_hh); w_hh's gradient is db^T times the matmul's operand (h, or
    r h for the n chunk of a GRU with reset_after=False)."""
    if cell.kind == "rnn":
        h, v = cache
        g = gs[0]
        d = g * (1.0 - v * v) if cell.nonlinearity == "tanh" else np.where(v > 0, g, 0.0)
        return d, d, (d @ w_hh,)
    if cell.kind == "lstm":
        h, c, i, f, g, o, tc = cache
        gh, gc = gs
        dc = gc + gh * o * (1.0 - tc * tc)
        d = np.concatenate([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f),
                            dc * i * (1.0 - g * g), gh * tc * o * (1.0 - o)], axis=1)
        return d, d, (d @ w_hh, dc * f)
    h, r, z, n, extra = cache
    hh = h.shape[1]
    g = gs[0]
    dn = g * (1.0 - z) * (1.0 - n * n)
    dz = g * (h - n) * z * (1.0 - z)
    dh = g * z
    if cell.reset_after:
        bn = extra
        dr = dn * bn * r * (1.0 - r)
        da = np.concatenate([dr, dz, dn], axis=1)
        db = np.concatenate([dr, dz, dn * r], axis=1)
        dh += db @ w_hh
        return da, db, (dh,)
    d_rh = dn @ w_hh[2 * hh:]
    dr = d_rh * h * r * (1.0 - r)
    da = np.concatenate([dr, dz, dn], axis=1)
    dh += d_rh * r + da[:, : 2 * hh] @ w_hh[: 2 * hh]
    return da, da, (dh,)


# --------------------------------------------------------------------------- checks

def _weights(where: str, ws, cell: _Cell, inputs: int | None, hidden: int | None,
             names: Sequence[str] | None = None) -> Weights:
    """(w_ih, w_hh, b_ih, b_hh) checked against the layout; ``inputs`` / ``hidden`` None: any;
    ``names``: how errors name the four (default where[0] .. where[3])."""
    nm = list(names) if names is not None else [f"{where}[{k}]" for k in range(4)]
    if isinstance(ws, np.ndarray) or not isinstance(ws, Sequence) or len(ws) not in (2, 4):
        raise ValueError(f"{where}: expected (w_ih, w_hh) or (w_ih, w_hh, b_ih, b_hh), "
                         f"got {type(ws).__name__}")
    ws = list(ws) + [None] * (4 - len(ws))
    w_ih = as_float(nm[0], ws[0], 2)
    w_hh = as_float(nm[1], ws[1], 2)
    gh = w_hh.shape[0]
    hid = gh // cell.gates
    if gh % cell.gates or w_hh.shape != (gh, hid) or hid == 0 or (hidden is not None
                                                                  and hid != hidden):
        want = f"({cell.gates} H, H)" + ("" if hidden is None else f" with H = {hidden}")
        raise ValueError(f"{nm[1]}: expected w_hh of shape {want} for the {cell.kind} "
                         f"({cell.gates} gates), got {w_hh.shape}")
    if w_ih.shape[0] != gh or (inputs is not None and w_ih.shape[1] != inputs):
        want = (gh, "I" if inputs is None else inputs)
        raise ValueError(f"{nm[0]}: expected w_ih of shape ({want[0]}, {want[1]}), "
                         f"got {w_ih.shape}")
    out = [w_ih, w_hh]
    for k, name in ((2, "b_ih"), (3, "b_hh")):
        if ws[k] is None:
            out.append(None)
            continue
        b = as_float(nm[k], ws[k], 1)
        if b.shape != (gh,):
            raise ValueError(f"{nm[k]}: expected {name} of shape ({gh},), got {b.shape}")
        out.append(b)
    return tuple(out)  # type: ignore[return-value]


def _state(name: str, s, shape: tuple[int, ...]) -> np.ndarray:
    s = as_float(name, s, len(shape))
    if s.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {s.shape}")
    return s


def _cotangent(name: str, g, shape: tuple[int, ...]) -> np.ndarray:
    if g is None:
        return np.zeros(shape)
    return _state(name, g, shape)


# --------------------------------------------------------------------------- cells

def _cell_inputs(cell: _Cell, x, states: Sequence, names: Sequence[str], w_ih, w_hh, b_ih, b_hh):
    x = as_float("x", x, 2)
    w = _weights("weights", (w_ih, w_hh, b_ih, b_hh), cell, x.shape[1], None,
                 ("w_ih", "w_hh", "b_ih", "b_hh"))
    hid = w[1].shape[1]
    st = tuple(_state(n, s, (x.shape[0], hid)) for n, s in zip(names, states, strict=True))
    return x, st, w


def _projection(cell: _Cell, x: np.ndarray, w_ih: np.ndarray, b_ih: np.ndarray | None,
                b_hh: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(a, the hidden bias left for _step): a = x w_ih^T + b_ih over the rows of x (..., I),
    one matrix product for every step; b_hh is added to a too where it sits outside the reset
    gate (all but the GRU with reset_after=True), which saves an addition per step."""
    a = (x.reshape(-1, x.shape[-1]) @ w_ih.T).reshape(x.shape[:-1] + (w_ih.shape[0],))
    if b_ih is not None:
        a += b_ih
    if b_hh is not None and not (cell.kind == "gru" and cell.reset_after):
        a += b_hh
        b_hh = None
    return a, b_hh


def _cell_forward(cell, x, states, names, w_ih, w_hh, b_ih, b_hh):
    x, st, (w_ih, w_hh, b_ih, b_hh) = _cell_inputs(cell, x, states, names, w_ih, w_hh, b_ih, b_hh)
    a, b_step = _projection(cell, x, w_ih, b_ih, b_hh)
    return _step(cell, a, st, w_hh, b_step)


def _cell_backward(cell, x, states, names, w_ih, w_hh, b_ih, b_hh, cots):
    x, st, (w_ih, w_hh, b_ih, b_hh) = _cell_inputs(cell, x, states, names, w_ih, w_hh, b_ih, b_hh)
    a, b_step = _projection(cell, x, w_ih, b_ih, b_hh)
    new, cache = _step(cell, a, st, w_hh, b_step)
    cot_names = ("gh", "gc") if cell.kind == "lstm" else ("g",)
    gs = tuple(_cotangent(nm, g, s.shape) for nm, g, s in zip(cot_names, cots, new, strict=True))
    da, db, dst = _step_back(cell, cache, gs, w_hh)
    dw_hh = _hidden_weight_grad(cell, db[None], cache[0][None],
                                None if cell.reset_after or cell.kind != "gru" else cache[4][None])
    return (da @ w_ih, *dst, da.T @ x, dw_hh, None if b_ih is None else da.sum(axis=0),
            None if b_hh is None else db.sum(axis=0))


def rnn_cell(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
             b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None,
             nonlinearity: str = "tanh") -> np.ndarray:
    """h' = act(x w_ih^T + b_ih + h w_hh^T + b_hh); x (N, I), h (N, H), w_ih (H, I), w_hh (H, H)."""
    cell = _cell("rnn", nonlinearity)
    return _cell_forward(cell, x, (h,), ("h",), w_ih, w_hh, b_ih, b_hh)[0][0]


def rnn_cell_vjp(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                 b_ih: np.ndarray | None, b_hh: np.ndarray | None, g: np.ndarray | None,
                 nonlinearity: str = "tanh"):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh): with d = g act'(pre), dx = d w_ih, dh = d w_hh,
    dw_ih = d^T x, dw_hh = d^T h, db_ih = db_hh = sum_n d."""
    cell = _cell("rnn", nonlinearity)
    return _cell_backward(cell, x, (h,), ("h",), w_ih, w_hh, b_ih, b_hh, (g,))


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
              b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(h', c'): gates i, f, g, o of x w_ih^T + b_ih + h w_hh^T + b_hh (w_ih (4H, I),
    w_hh (4H, H)); c' = f c + i g, h' = o tanh(c')."""
    return _cell_forward(_Cell("lstm"), x, (h, c), ("h", "c"), w_ih, w_hh, b_ih, b_hh)[0]


def lstm_cell_vjp(x: np.ndarray, h: np.ndarray, c: np.ndarray, w_ih: np.ndarray,
                  w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                  gh: np.ndarray | None, gc: np.ndarray | None):
    """(dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh) from the cotangents of h' and c':
    dc' = gc + gh o (1 - tanh(c')^2); d(i, f, g, o) = (dc' g, dc' c, dc' i, gh tanh(c')) times
    each gate's derivative; dc = dc' f; the matmuls as in rnn_cell_vjp."""
    cell = _Cell("lstm")
    return _cell_backward(cell, x, (h, c), ("h", "c"), w_ih, w_hh, b_ih, b_hh, (gh, gc))


def gru_cell(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
             b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None,
             reset_after: bool = True) -> np.ndarray:
    """h' = (1 - z) n + z h, gates r, z, n (w_ih (3H, I), w_hh (3H, H)); n = tanh(a_n +
    r (h W_hn^T + b_hn)) (reset_after=True) or tanh(a_n + (r h) W_hn^T + b_hn) (False)."""
    cell = _cell("gru", reset_after=reset_after)
    return _cell_forward(cell, x, (h,), ("h",), w_ih, w_hh, b_ih, b_hh)[0][0]


def gru_cell_vjp(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                 b_ih: np.ndarray | None, b_hh: np.ndarray | None, g: np.ndarray | None,
                 reset_after: bool = True):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh): dn = g (1 - z), dz = g (h - n), dh = g z plus the
    paths through the gates; reset_after=True: d(h W_hn^T + b_hn) = dn_pre r,
    dr = dn_pre (h W_hn^T + b_hn); False: d(r h) = dn_pre W_hn, dr = d(r h) h, dh += d(r h) r."""
    cell = _cell("gru", reset_after=reset_after)
    return _cell_backward(cell, x, (h,), ("h",), w_ih, w_hh, b_ih, b_hh, (g,))


def _hidden_weight_grad(cell: _Cell, db: np.ndarray, hs: np.ndarray, rhs: np.ndarray | None
                        ) -> np.ndarray:
    """dw_hh = sum over steps and batch of db^T h (db (T, N, G H), hs (T, N, H)); for the GRU
    with reset_after=False the n chunk's operand is r h (rhs)."""
    gh = db.shape[-1]
    hid = hs.shape[-1]
    db2 = db.reshape(-1, gh)
    if rhs is None:
        return db2.T @ hs.reshape(-1, hid)
    return np.concatenate([db2[:, : 2 * hid].T @ hs.reshape(-1, hid),
                           db2[:, 2 * hid:].T @ rhs.reshape(-1, hid)], axis=0)


# --------------------------------------------------------------------------- sequences

@dataclass
class _Direction:
    """What the backward pass of one (layer, direction) needs."""
    x: np.ndarray            # its input, in its own time order (T, N, In)
    weights: Weights
    caches: list
    masks: list              # per step: (N, 1) bool or None


@dataclass
class Tape:
    """A sequence layer's forward, recorded for ``sequence_backward``: the cell, every
    (layer, direction)'s input and per-step caches, and the layout of the call."""
    cell: _Cell
    directions: list[_Direction]
    initial: tuple           # the initial states as given (None: zeros, not differentiated)
    dirs: int
    rev: tuple | None        # _reverse_index, for a bidirectional layer
    direction_order: str
    shape: tuple[int, int, int]
    hidden: int


def _lengths(lengths, t: int, n: int) -> np.ndarray | None:
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.dtype.kind not in "iu" or a.shape != (n,):
        raise ValueError(f"lengths: expected {n} integers (one per sequence of x), got "
                         f"{a.dtype} array of shape {a.shape}")
    if n and (a.min() < 1 or a.max() > t):
        raise ValueError(f"lengths: expected values in [1, {t}] (T = {t} steps in x), "
                         f"got range [{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def _reverse_index(lengths: np.ndarray | None, t: int, n: int):
    """Index (time (T, N), batch (1, N)) reversing each sequence within its length (padding
    stays in place): an involution, so the same index undoes it."""
    steps = np.arange(t)[:, None]
    if lengths is None:
        rev = np.broadcast_to(t - 1 - steps, (t, n))
    else:
        rev = np.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)
    return rev, np.arange(n)[None, :]


def _check_sequence(cell: _Cell, x, states: Sequence, state_names: Sequence[str], params,
                    lengths, bidirectional: bool, direction_order: str):
    x = as_float("x", x, 3)
    t, n, inputs = x.shape
    if t == 0:
        raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
    if direction_order not in DIRECTION_ORDERS:
        raise ValueError(f"direction_order: expected one of {DIRECTION_ORDERS}, "
                         f"got {direction_order!r}")
    if bidirectional not in (True, False):
        raise ValueError(f"bidirectional: expected True or False, got {bidirectional!r}")
    dirs = 2 if bidirectional else 1
    if isinstance(params, np.ndarray) or not isinstance(params, Sequence) or not params \
            or len(params) % dirs:
        what = len(params) if isinstance(params, Sequence) else type(params).__name__
        raise ValueError(f"params: expected a non-empty list of per-layer weights, "
                         f"{dirs} per layer (bidirectional={bidirectional}), got {what}")
    weights, hid = [], None
    for k, ws in enumerate(params):
        layer_in = inputs if k < dirs else dirs * hid
        w = _weights(f"params[{k}]", ws, cell, layer_in, hid)
        hid = w[1].shape[1]
        weights.append(w)
    shape = (len(params), n, hid)
    st = tuple(None if s is None else _state(name, s, shape)
               for name, s in zip(state_names, states, strict=True))
    return x, st, weights, _lengths(lengths, t, n), dirs


def _run(cell: _Cell, x, states, state_names, params, lengths, bidirectional, direction_order
         ) -> tuple[np.ndarray, tuple[np.ndarray, ...], Tape]:
    """The forward over every layer and direction: (y, final states, tape)."""
    x, st, weights, lengths, dirs = _check_sequence(cell, x, states, state_names, params,
                                                    lengths, bidirectional, direction_order)
    t, n, _ = x.shape
    hid = weights[0][1].shape[1]
    rev = _reverse_index(lengths, t, n) if dirs == 2 else None
    masks = [None] * t if lengths is None else \
        [(lengths > step)[:, None] for step in range(t)]
    finals = [np.empty((len(weights), n, hid)) for _ in range(cell.states)]
    tape, inp = [], x
    for layer in range(len(weights) // dirs):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w_ih, w_hh, b_ih, b_hh = weights[k]
            xs = inp if d == 0 else inp[rev]
            a, b_step = _projection(cell, xs, w_ih, b_ih, b_hh)
            state = tuple(np.zeros((n, hid)) if s is None else s[k] for s in st)
            ys, caches = np.empty((t, n, hid)), []
            for step in range(t):
                new, cache = _step(cell, a[step], state, w_hh, b_step)
                m = masks[step]
                if m is None:
                    state = new
                    ys[step] = new[0]
                else:
                    state = tuple(np.where(m, v, s) for v, s in zip(new, state, strict=True))
                    ys[step] = np.where(m, new[0], 0.0)
                caches.append(cache)
            for j, s in enumerate(state):
                finals[j][k] = s
            tape.append(_Direction(xs, weights[k], caches, masks))
            outs.append(ys if d == 0 else ys[rev])
        if direction_order == "backward_forward":
            outs = outs[::-1]
        inp = outs[0] if dirs == 1 else np.concatenate(outs, axis=2)
    return inp, tuple(finals), Tape(cell, tape, st, dirs, rev, direction_order, x.shape, hid)


def _backprop(rec_tape: Tape, gy, g_finals):
    """Backpropagation through time over the tape of _run: (dx, d initial states, dparams)."""
    cell, tape, st, dirs = rec_tape.cell, rec_tape.directions, rec_tape.initial, rec_tape.dirs
    rev, direction_order, hid = rec_tape.rev, rec_tape.direction_order, rec_tape.hidden
    t, n, _ = rec_tape.shape
    layers = len(tape) // dirs
    d_init = [np.zeros((len(tape), n, hid)) if s is not None else None for s in st]
    dparams: list = [None] * len(tape)
    g_in = gy
    for layer in reversed(range(layers)):
        parts = [g_in] if dirs == 1 else [g_in[..., :hid], g_in[..., hid:]]
        if direction_order == "backward_forward":
            parts = parts[::-1]
        g_next = None
        for d in range(dirs):
            k = layer * dirs + d
            rec = tape[k]
            w_ih, w_hh, b_ih, b_hh = rec.weights
            gys = parts[d] if d == 0 else parts[d][rev]
            gs = tuple(g[k].copy() for g in g_finals)
            da_all = np.empty((t, n, w_hh.shape[0]))
            # da and db differ only for the GRU with reset_after=True
            db_all = np.empty_like(da_all) if cell.kind == "gru" and cell.reset_after else da_all
            for step in reversed(range(t)):
                m = rec.masks[step]
                gs = (gs[0] + (gys[step] if m is None else np.where(m, gys[step], 0.0)),
                      *gs[1:])
                if m is None:
                    da, db, gs = _step_back(cell, rec.caches[step], gs, w_hh)
                else:
                    cell_gs = tuple(np.where(m, g, 0.0) for g in gs)
                    da, db, back = _step_back(cell, rec.caches[step], cell_gs, w_hh)
                    gs = tuple(np.where(m, b, g) for b, g in zip(back, gs, strict=True))
                da_all[step] = da
                if db is not da:
                    db_all[step] = db
            for j, g in enumerate(gs):
                if d_init[j] is not None:
                    d_init[j][k] = g
            hs = np.stack([c[0] for c in rec.caches])
            rhs = np.stack([c[4] for c in rec.caches]) \
                if cell.kind == "gru" and not cell.reset_after else None
            gh = w_hh.shape[0]
            dw_ih = da_all.reshape(-1, gh).T @ rec.x.reshape(-1, rec.x.shape[2])
            dparams[k] = (dw_ih, _hidden_weight_grad(cell, db_all, hs, rhs),
                          None if b_ih is None else da_all.sum(axis=(0, 1)),
                          None if b_hh is None else db_all.sum(axis=(0, 1)))
            dx = (da_all.reshape(-1, w_ih.shape[0]) @ w_ih).reshape(t, n, w_ih.shape[1])
            if d == 1:
                dx = dx[rev]
            g_next = dx if g_next is None else g_next + dx
        g_in = g_next
    return g_in, tuple(d_init), dparams


def sequence_backward(tape: Tape, gy: np.ndarray | None, gh: np.ndarray | None = None,
                      gc: np.ndarray | None = None):
    """Backpropagation through time over the tape of rnn_forward, lstm_forward or
    gru_forward for the cotangents of (y, h_n[, c_n]) (None: zero): (dx, dh0, dparams) or,
    for the LSTM, (dx, dh0, dc0, dparams), as rnn_vjp / lstm_vjp / gru_vjp return them."""
    if not isinstance(tape, Tape):
        raise ValueError(f"tape: expected the Tape of a sequence forward, got "
                         f"{type(tape).__name__}")
    if gc is not None and tape.cell.kind != "lstm":
        raise ValueError(f"gc: the {tape.cell.kind} has no cell state; expected None")
    t, n, _ = tape.shape
    out = tape.dirs * tape.hidden
    final = (len(tape.directions), n, tape.hidden)
    gf = tuple(_cotangent(nm, g, final)
               for nm, g in zip(("gh", "gc")[: tape.cell.states], (gh, gc), strict=False))
    dx, d_init, dparams = _backprop(tape, _cotangent("gy", gy, (t, n, out)), gf)
    return (dx, *d_init, dparams)


def rnn_forward(x: np.ndarray, h0: np.ndarray | None,
                params: Sequence[Sequence[np.ndarray | None]], lengths: np.ndarray | None = None,
                nonlinearity: str = "tanh", bidirectional: bool = False,
                direction_order: str = "forward_backward"
                ) -> tuple[np.ndarray, np.ndarray, Tape]:
    """(y, h_n, tape): rnn's outputs and what sequence_backward needs, one forward for both."""
    cell = _cell("rnn", nonlinearity)
    y, (h_n,), tape = _run(cell, x, (h0,), ("h0",), params, lengths, bidirectional,
                           direction_order)
    return y, h_n, tape


def lstm_forward(x: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None,
                 params: Sequence[Sequence[np.ndarray | None]],
                 lengths: np.ndarray | None = None, bidirectional: bool = False,
                 direction_order: str = "forward_backward"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tape]:
    """(y, h_n, c_n, tape): lstm's outputs and what sequence_backward needs."""
    y, (h_n, c_n), tape = _run(_Cell("lstm"), x, (h0, c0), ("h0", "c0"), params, lengths,
                               bidirectional, direction_order)
    return y, h_n, c_n, tape


def gru_forward(x: np.ndarray, h0: np.ndarray | None,
                params: Sequence[Sequence[np.ndarray | None]], lengths: np.ndarray | None = None,
                reset_after: bool = True, bidirectional: bool = False,
                direction_order: str = "forward_backward"
                ) -> tuple[np.ndarray, np.ndarray, Tape]:
    """(y, h_n, tape): gru's outputs and what sequence_backward needs."""
    cell = _cell("gru", reset_after=reset_after)
    y, (h_n,), tape = _run(cell, x, (h0,), ("h0",), params, lengths, bidirectional,
                           direction_order)
    return y, h_n, tape


def rnn(x: np.ndarray, h0: np.ndarray | None, params: Sequence[Sequence[np.ndarray | None]],
        lengths: np.ndarray | None = None, nonlinearity: str = "tanh",
        bidirectional: bool = False, direction_order: str = "forward_backward"
        ) -> tuple[np.ndarray, np.ndarray]:
    """(y (T, N, D H), h_n (L D, N, H)) of a stacked Elman RNN (as torch.nn.RNN) over
    x (T, N, I); see the module docstring for params, lengths and the directions."""
    return rnn_forward(x, h0, params, lengths, nonlinearity, bidirectional, direction_order)[:2]


def rnn_vjp(x: np.ndarray, h0: np.ndarray | None, params: Sequence[Sequence[np.ndarray | None]],
            gy: np.ndarray | None, gh: np.ndarray | None, lengths: np.ndarray | None = None,
            nonlinearity: str = "tanh", bidirectional: bool = False,
            direction_order: str = "forward_backward"):
    """(dx, dh0, dparams) for the cotangents of (y, h_n), by backpropagation through time."""
    tape = rnn_forward(x, h0, params, lengths, nonlinearity, bidirectional, direction_order)[-1]
    return sequence_backward(tape, gy, gh)


def lstm(x: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None,
         params: Sequence[Sequence[np.ndarray | None]], lengths: np.ndarray | None = None,
         bidirectional: bool = False, direction_order: str = "forward_backward"
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y (T, N, D H), h_n, c_n (L D, N, H)) of a stacked LSTM (as torch.nn.LSTM)."""
    return lstm_forward(x, h0, c0, params, lengths, bidirectional, direction_order)[:3]


def lstm_vjp(x: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None,
             params: Sequence[Sequence[np.ndarray | None]], gy: np.ndarray | None,
             gh: np.ndarray | None, gc: np.ndarray | None, lengths: np.ndarray | None = None,
             bidirectional: bool = False, direction_order: str = "forward_backward"):
    """(dx, dh0, dc0, dparams) for the cotangents of (y, h_n, c_n)."""
    tape = lstm_forward(x, h0, c0, params, lengths, bidirectional, direction_order)[-1]
    return sequence_backward(tape, gy, gh, gc)


def gru(x: np.ndarray, h0: np.ndarray | None, params: Sequence[Sequence[np.ndarray | None]],
        lengths: np.ndarray | None = None, reset_after: bool = True,
        bidirectional: bool = False, direction_order: str = "forward_backward"
        ) -> tuple[np.ndarray, np.ndarray]:
    """(y (T, N, D H), h_n (L D, N, H)) of a stacked GRU (reset_after=True: torch.nn.GRU)."""
    return gru_forward(x, h0, params, lengths, reset_after, bidirectional, direction_order)[:2]


def gru_vjp(x: np.ndarray, h0: np.ndarray | None, params: Sequence[Sequence[np.ndarray | None]],
            gy: np.ndarray | None, gh: np.ndarray | None, lengths: np.ndarray | None = None,
            reset_after: bool = True, bidirectional: bool = False,
            direction_order: str = "forward_backward"):
    """(dx, dh0, dparams) for the cotangents of (y, h_n)."""
    tape = gru_forward(x, h0, params, lengths, reset_after, bidirectional, direction_order)[-1]
    return sequence_backward(tape, gy, gh)
