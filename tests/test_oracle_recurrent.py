"""The recurrent oracle (reference/recurrent.py): every cell's and every sequence layer's VJP
against central finite differences (tests/fd.py), forward and gradients against PyTorch
float64 (nn.RNNCell / LSTMCell / GRUCell, nn.RNN / LSTM / GRU with pack_padded_sequence for
variable lengths) and against a naive per-sequence loop written here (the only reference for
the GRU with reset_after=False, besides a Keras-style cell), and the semantics by
construction: a length-1 sequence is one cell step, padding changes nothing, the backward
direction is the forward direction on the reversed sequence.

Comparisons between two float64 implementations use one bound (``_assert_close``): every
element of an output or gradient is the end of a chain of at most T L D steps, each a sum of
``terms`` products per gate and a few transcendental functions; 16 eps per term, relative to
the largest magnitude of the arrays compared, covers both implementations' roundings (the
differences observed are below 1e-15 here; a wrong formula is off by far more).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference import recurrent as R
from tests.fd import EPS, GAP, assert_close_chain, assert_vjp_matches_fd, raises_for, seeded
from tests.optional import need

#: name -> (cell kind, its convention keywords)
KINDS = {
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}),
    "gru": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
}
TORCH_KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _torch():
    torch = need("torch", reason="the PyTorch comparisons need torch")
    return torch


# --------------------------------------------------------------------------- cases

def _cell_case(data, kind: str, bias: bool):
    cell, _ = KINDS[kind]
    g = R.GATES[cell]
    n = data.draw(st.integers(1, 3), label="N")
    i = data.draw(st.integers(1, 3), label="I")
    h = data.draw(st.integers(1, 3), label="H")
    scale = 1.0 / np.sqrt(i + h)
    x = seeded(data, (n, i), 1.0, "x")
    states = [seeded(data, (n, h), 1.0, "h")]
    if cell == "lstm":
        states.append(seeded(data, (n, h), 1.0, "c"))
    w = [seeded(data, (g * h, i), scale, "w_ih"), seeded(data, (g * h, h), scale, "w_hh")]
    w += [seeded(data, (g * h,), 0.5, "b_ih"), seeded(data, (g * h,), 0.5, "b_hh")] if bias \
        else [None, None]
    return x, states, w


def _cell_forward(kind, x, states, w):
    cell, conv = KINDS[kind]
    if cell == "lstm":
        return R.lstm_cell(x, *states, *w)
    return (getattr(R, f"{cell}_cell")(x, *states, *w, **conv),)


def _cell_vjp(kind, x, states, w, cots):
    cell, conv = KINDS[kind]
    if cell == "lstm":
        return R.lstm_cell_vjp(x, *states, *w, *cots)
    return getattr(R, f"{cell}_cell_vjp")(x, *states, *w, *cots, **conv)


def _seq_case(data, kind: str, max_t: int = 4):
    """(x, initial states (None or arrays), params, lengths, bidirectional)."""
    cell, _ = KINDS[kind]
    g = R.GATES[cell]
    t = data.draw(st.integers(1, max_t), label="T")
    n = data.draw(st.integers(1, 3), label="N")
    i = data.draw(st.integers(1, 3), label="I")
    h = data.draw(st.integers(1, 3), label="H")
    layers = data.draw(st.integers(1, 2), label="layers")
    bidirectional = data.draw(st.booleans(), label="bidirectional")
    bias = data.draw(st.booleans(), label="bias")
    dirs = 2 if bidirectional else 1
    params = []
    for k in range(layers * dirs):
        fan = (i if k < dirs else dirs * h) + h
        s = 1.0 / np.sqrt(fan)
        ws = [seeded(data, (g * h, fan - h), s, f"w_ih{k}"), seeded(data, (g * h, h), s, f"w_hh{k}")]
        if bias:
            ws += [seeded(data, (g * h,), 0.5, f"b_ih{k}"), seeded(data, (g * h,), 0.5, f"b_hh{k}")]
        params.append(tuple(ws))
    x = seeded(data, (t, n, i), 1.0, "x")
    given_state = data.draw(st.booleans(), label="initial state")
    states = [seeded(data, (layers * dirs, n, h), 1.0, f"s{j}") if given_state else None
              for j in range(2 if cell == "lstm" else 1)]
    lengths = None
    if data.draw(st.booleans(), label="variable lengths"):
        lengths = np.array([data.draw(st.integers(1, t), label=f"len{j}") for j in range(n)])
    return x, states, params, lengths, bidirectional


def _seq_forward(kind, x, states, params, lengths=None, bidirectional=False, **kw):
    cell, conv = KINDS[kind]
    fn = getattr(R, cell)
    return fn(x, *states, params, lengths, bidirectional=bidirectional, **conv, **kw)


def _seq_vjp(kind, x, states, params, cots, lengths=None, bidirectional=False, **kw):
    cell, conv = KINDS[kind]
    fn = getattr(R, cell + "_vjp")
    return fn(x, *states, params, *cots, lengths, bidirectional=bidirectional, **conv, **kw)


def _terms(x, params, dirs: int) -> int:
    """The chain length behind one element (see the module docstring)."""
    t, _, i = x.shape
    gh, h = params[0][1].shape
    return t * len(params) * (i + dirs * h + h + 4) * (gh // h)


def _tape(kind, x, states, params, lengths, bidirectional):
    """The oracle's tape (reference.recurrent's <cell>_forward): per layer and direction its
    input and per-step caches, whose first entry is the state h the step started from."""
    cell, conv = KINDS[kind]
    fn = getattr(R, cell + "_forward")
    return fn(x, *states, params, lengths, bidirectional=bidirectional, **conv)[-1].directions


def _relu_preactivations(x, states, params, lengths, bidirectional):
    """Every pre-activation of a relu RNN (its cache is (h, pre))."""
    tape = _tape("rnn_relu", x, states, params, lengths, bidirectional)
    return np.concatenate([c[1].ravel() for rec in tape for c in rec.caches])


def _term_magnitude(kind, x, states, params, lengths, bidirectional) -> float:
    """The sum, over every step, layer and direction, of the magnitude of the terms behind
    each gate pre-activation, |x_t| |w_ih|^T + |h_{t-1}| |w_hh|^T + |b_ih| + |b_hh|: what the
    matrix products may cancel. The activations' derivatives are at most 1 and the weights
    are drawn with row norms near 1, so a pre-activation's rounding reaches an output scaled
    by about 1 at most."""
    total = 0.0
    for rec in _tape(kind, x, states, params, lengths, bidirectional):
        w_ih, w_hh, b_ih, b_hh = rec.weights
        b = sum(np.abs(v) for v in (b_ih, b_hh) if v is not None)
        hs = np.stack([c[0] for c in rec.caches])
        total += float(np.sum(np.abs(rec.x) @ np.abs(w_ih).T + np.abs(hs) @ np.abs(w_hh).T + b))
    return total


# --------------------------------------------------------------------------- cells: FD

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_cell_vjp_matches_fd(data, kind, bias):
    x, states, w = _cell_case(data, kind, bias)
    if kind == "rnn_relu":
        pre = x @ w[0].T + states[0] @ w[1].T + (0 if w[2] is None else w[2] + w[3])
        assume(np.min(np.abs(pre)) > GAP)
    outs = _cell_forward(kind, x, states, w)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    all_grads = _cell_vjp(kind, x, states, w, cots)
    assert len(all_grads) == 1 + len(states) + 4
    assert all(g is None for g, p in zip(all_grads[-2:], w[2:], strict=True) if p is None)
    primals = [x, *states, *(p for p in w if p is not None)]
    grads = [g for g, p in zip(all_grads, [x, *states, *w], strict=True) if p is not None]
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") for j, p in enumerate(primals)]
    ns = len(states)

    def f(x, *rest):
        st_, ws = rest[:ns], list(rest[ns:]) + [None] * (4 - len(rest[ns:]))
        return np.concatenate([o.ravel() for o in _cell_forward(kind, x, st_, ws)])

    c = np.concatenate([c.ravel() for c in cots])
    # the matrix products cancel: their terms |x| |w_ih| + |h| |w_hh|, weighted by |c|
    mag = np.abs(x) @ np.abs(w[0]).T + np.abs(states[0]) @ np.abs(w[1]).T
    assert_vjp_matches_fd(f, primals, tangents, c, grads,
                          float(np.abs(c).sum() * mag.max(initial=0.0)))


# --------------------------------------------------------------------------- cells: torch

def _torch_cell(torch, kind, x, states, w, cots):
    """(outputs, grads of x, states and weights) of the torch cell with the oracle's weights."""
    cell, conv = KINDS[kind]
    i, h = x.shape[1], states[0].shape[1]
    bias = w[2] is not None
    if cell == "rnn":
        mod = torch.nn.RNNCell(i, h, bias=bias, nonlinearity=conv["nonlinearity"])
    else:
        mod = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell](i, h, bias=bias)
    mod = mod.double()
    with torch.no_grad():
        for name, p in zip(WEIGHT_NAMES, w, strict=True):
            if p is not None:
                getattr(mod, name).copy_(torch.tensor(p))
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    out = mod(tx, tuple(ts)) if cell == "lstm" else (mod(tx, ts[0]),)
    total = sum((o * torch.tensor(c)).sum() for o, c in zip(out, cots, strict=True))
    total.backward()
    grads = [tx.grad, *(s.grad for s in ts),
             *(None if p is None else getattr(mod, n).grad for n, p in zip(WEIGHT_NAMES, w,
                                                                         strict=True))]
    return [o.detach().numpy() for o in out], [None if g is None else g.numpy() for g in grads]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", TORCH_KINDS)
@given(data=st.data())
def test_cell_matches_torch(data, kind, bias):
    torch = _torch()
    x, states, w = _cell_case(data, kind, bias)
    outs = _cell_forward(kind, x, states, w)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    grads = _cell_vjp(kind, x, states, w, cots)
    t_outs, t_grads = _torch_cell(torch, kind, x, states, w, cots)
    terms = x.shape[1] + 2 * states[0].shape[1] + 4
    for j, (a, b) in enumerate(zip(outs, t_outs, strict=True)):
        assert_close_chain(a, b, terms, f"output {j}")
    for j, (a, b) in enumerate(zip(grads, t_grads, strict=True)):
        if b is None:
            assert a is None
        else:
            assert_close_chain(a, b, x.shape[0] * terms, f"gradient {j}")


def _keras_gru_cell(torch, x, h, kernel, recurrent_kernel, bias):
    """Keras' GRUCell with reset_after=False, written from its formula: kernel (I, 3H) and
    recurrent_kernel (H, 3H) in Keras' gate order z, r, h, one bias (3H,):
    z = sigmoid(x Wz + bz + h Uz), r = sigmoid(x Wr + br + h Ur),
    hh = tanh(x Wh + bh + (r h) Uh), h' = z h + (1 - z) hh."""
    hid = h.shape[1]
    xk = x @ kernel + bias
    z = torch.sigmoid(xk[:, :hid] + h @ recurrent_kernel[:, :hid])
    r = torch.sigmoid(xk[:, hid:2 * hid] + h @ recurrent_kernel[:, hid:2 * hid])
    hh = torch.tanh(xk[:, 2 * hid:] + (r * h) @ recurrent_kernel[:, 2 * hid:])
    return z * h + (1 - z) * hh


@given(data=st.data())
def test_gru_reset_before_cell_matches_keras_formula(data):
    """reset_after=False against Keras' formula in Keras' layout (gates z, r, h, transposed
    kernels, one bias = b_ih + b_hh: the hidden bias of n sits outside r), gradients by torch's
    autograd of that formula mapped back to the oracle's layout."""
    torch = _torch()
    x, (h,), w = _cell_case(data, "gru_reset_before", True)
    hid = h.shape[1]
    perm = np.r_[hid:2 * hid, 0:hid, 2 * hid:3 * hid]  # oracle r, z, n -> keras z, r, h
    kernel = torch.tensor(w[0][perm].T.copy(), requires_grad=True)
    rec = torch.tensor(w[1][perm].T.copy(), requires_grad=True)
    bias = torch.tensor((w[2] + w[3])[perm], requires_grad=True)
    tx, th = torch.tensor(x, requires_grad=True), torch.tensor(h, requires_grad=True)
    out = _keras_gru_cell(torch, tx, th, kernel, rec, bias)
    cot = seeded(data, out.shape, 1.0, "cot")
    (out * torch.tensor(cot)).sum().backward()
    terms = x.shape[1] + 2 * hid + 4
    assert_close_chain(R.gru_cell(x, h, *w, reset_after=False), out.detach().numpy(), terms, "h'")
    inv = np.argsort(perm)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = R.gru_cell_vjp(x, h, *w, cot, reset_after=False)
    n = x.shape[0] * terms
    assert_close_chain(dx, tx.grad.numpy(), n, "dx")
    assert_close_chain(dh, th.grad.numpy(), n, "dh")
    assert_close_chain(dw_ih, kernel.grad.numpy().T[inv], n, "dw_ih")
    assert_close_chain(dw_hh, rec.grad.numpy().T[inv], n, "dw_hh")
    assert_close_chain(db_ih, bias.grad.numpy()[inv], n, "db_ih")
    assert_close_chain(db_hh, bias.grad.numpy()[inv], n, "db_hh")


# --------------------------------------------------------------------------- sequences: FD

@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_sequence_vjp_matches_fd(data, kind):
    x, states, params, lengths, bidirectional = _seq_case(data, kind)
    if kind == "rnn_relu":
        pre = _relu_preactivations(x, states, params, lengths, bidirectional)
        assume(np.min(np.abs(pre)) > GAP)
    outs = _seq_forward(kind, x, states, params, lengths, bidirectional)
    # each output's cotangent, or None (not differentiated); at least one given
    given_ = [data.draw(st.booleans(), label=f"cot{j} given") for j in range(len(outs))]
    if not any(given_):
        given_[0] = True
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") if gv else None
            for j, (o, gv) in enumerate(zip(outs, given_, strict=True))]
    dx, *d_states, dparams = _seq_vjp(kind, x, states, params, cots, lengths, bidirectional)
    primals, grads = [x], [dx]
    for s, g in zip(states, d_states, strict=True):
        if s is None:
            assert g is None
        else:
            primals.append(s)
            grads.append(g)
    shapes = [len(ws) for ws in params]
    for ws, gs in zip(params, dparams, strict=True):
        assert len(gs) == 4
        primals += list(ws)
        grads += list(gs[: len(ws)])
        if len(ws) == 2:
            assert gs[2] is None and gs[3] is None
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") for j, p in enumerate(primals)]
    given_states = [s is not None for s in states]

    def f(x, *rest):
        rest = list(rest)
        sts = [rest.pop(0) if g else None for g in given_states]
        ps = []
        for k in shapes:
            ps.append(tuple(rest[:k]))
            rest = rest[k:]
        outs = _seq_forward(kind, x, sts, ps, lengths, bidirectional)
        return np.concatenate([o.ravel() for o in outs])

    c = np.concatenate([(np.zeros(o.shape) if cc is None else cc).ravel()
                        for o, cc in zip(outs, cots, strict=True)])
    # every step's matrix products cancel (_term_magnitude), weighted by the largest |c|
    mag = _term_magnitude(kind, x, states, params, lengths, bidirectional)
    assert_vjp_matches_fd(f, primals, tangents, c, grads, float(np.abs(c).max()) * mag)


# --------------------------------------------------------------------------- sequences: torch

def _torch_sequence(torch, kind, x, states, params, lengths, bidirectional, cots):
    """nn.RNN / LSTM / GRU float64 with the oracle's weights, pack_padded_sequence for lengths:
    (outputs, grads of x, the given states and every weight (None for an absent bias))."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    cell, conv = KINDS[kind]
    t, n, i = x.shape
    h = params[0][1].shape[1]
    dirs = 2 if bidirectional else 1
    layers = len(params) // dirs
    bias = len(params[0]) == 4
    if cell == "rnn":
        mod = torch.nn.RNN(i, h, layers, nonlinearity=conv["nonlinearity"], bias=bias,
                           bidirectional=bidirectional)
    else:
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](i, h, layers, bias=bias,
                                                                 bidirectional=bidirectional)
    mod = mod.double()
    names = [f"{w}_l{k // dirs}{'_reverse' if k % dirs else ''}" for k in range(len(params))
             for w in WEIGHT_NAMES[: len(params[0])]]
    flat = [p for ws in params for p in ws]
    with torch.no_grad():
        for name, p in zip(names, flat, strict=True):
            getattr(mod, name).copy_(torch.tensor(p))
    tx = torch.tensor(x, requires_grad=True)
    ts = [None if s is None else torch.tensor(s, requires_grad=True) for s in states]
    if cell == "lstm":
        hx = None if ts[0] is None and ts[1] is None else tuple(
            torch.zeros(len(params), n, h, dtype=torch.float64) if s is None else s for s in ts)
    else:
        hx = ts[0]
    inp = tx if lengths is None else pack_padded_sequence(tx, torch.tensor(lengths),
                                                          enforce_sorted=False)
    out, fin = mod(inp, hx)
    if lengths is not None:
        out, _ = pad_packed_sequence(out, total_length=t)
    outs = [out, *(fin if cell == "lstm" else (fin,))]
    total = sum((o * torch.tensor(c)).sum() for o, c in zip(outs, cots, strict=True)
                if c is not None)
    total.backward()
    grads = [tx.grad.numpy(), *(None if s is None else s.grad.numpy() for s in ts)]
    grads += [getattr(mod, name).grad.numpy() for name in names]
    return [o.detach().numpy() for o in outs], grads


@pytest.mark.parametrize("kind", TORCH_KINDS)
@given(data=st.data())
def test_sequence_matches_torch(data, kind):
    torch = _torch()
    x, states, params, lengths, bidirectional = _seq_case(data, kind)
    outs = _seq_forward(kind, x, states, params, lengths, bidirectional)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    dx, *d_states, dparams = _seq_vjp(kind, x, states, params, cots, lengths, bidirectional)
    t_outs, t_grads = _torch_sequence(torch, kind, x, states, params, lengths, bidirectional, cots)
    dirs = 2 if bidirectional else 1
    terms = _terms(x, params, dirs)
    for j, (a, b) in enumerate(zip(outs, t_outs, strict=True)):
        assert_close_chain(a, b, terms, f"output {j}")
    ours = [dx, *d_states, *(g for gs in dparams for g in gs[: len(params[0])])]
    for j, (a, b) in enumerate(zip(ours, t_grads, strict=True)):
        if b is None:
            assert a is None
        else:
            assert_close_chain(a, b, terms * x.shape[1], f"gradient {j}")


# --------------------------------------------------------------------------- naive loop

def _naive_cell(torch, kind, x, h, c, ws):
    """One step on vectors, from the formulas (module docstring of reference/recurrent.py)."""
    w_ih, w_hh, b_ih, b_hh = ws
    cell, conv = KINDS[kind]
    hid = h.shape[0]
    a = w_ih @ x + (0 if b_ih is None else b_ih)
    bh = 0 if b_hh is None else b_hh
    if cell == "rnn":
        pre = a + w_hh @ h + bh
        return (torch.tanh(pre) if conv["nonlinearity"] == "tanh" else torch.relu(pre)), None
    if cell == "lstm":
        z = a + w_hh @ h + bh
        i, f = torch.sigmoid(z[:hid]), torch.sigmoid(z[hid:2 * hid])
        g, o = torch.tanh(z[2 * hid:3 * hid]), torch.sigmoid(z[3 * hid:])
        c_new = f * c + i * g
        return o * torch.tanh(c_new), c_new
    bh = torch.zeros(3 * hid, dtype=torch.float64) if b_hh is None else b_hh
    r = torch.sigmoid(a[:hid] + w_hh[:hid] @ h + bh[:hid])
    z = torch.sigmoid(a[hid:2 * hid] + w_hh[hid:2 * hid] @ h + bh[hid:2 * hid])
    if conv["reset_after"]:
        n = torch.tanh(a[2 * hid:] + r * (w_hh[2 * hid:] @ h + bh[2 * hid:]))
    else:
        n = torch.tanh(a[2 * hid:] + w_hh[2 * hid:] @ (r * h) + bh[2 * hid:])
    return (1 - z) * n + z * h, None


def _naive_sequence(torch, kind, x, states, params, lengths, bidirectional, order):
    """Sequence by sequence, each over its own length (the backward direction reads it
    reversed), padded with zeros to T: torch tensors in, (y, finals...) out."""
    t, n, _ = x.shape
    hid = params[0][1].shape[1]
    dirs = 2 if bidirectional else 1
    lstm = KINDS[kind][0] == "lstm"
    zeros = torch.zeros(hid, dtype=torch.float64)
    ys, fin_h, fin_c = [], {}, {}
    for b in range(n):
        ln = t if lengths is None else int(lengths[b])
        inp = [x[s, b] for s in range(ln)]
        for layer in range(len(params) // dirs):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                h = zeros if states[0] is None else states[0][k, b]
                c = (zeros if states[1] is None else states[1][k, b]) if lstm else None
                seq = inp if d == 0 else inp[::-1]
                out = []
                for xs in seq:
                    h, c = _naive_cell(torch, kind, xs, h, c, params[k])
                    out.append(h)
                outs.append(out if d == 0 else out[::-1])
                fin_h[k, b], fin_c[k, b] = h, c
            if order == "backward_forward":
                outs = outs[::-1]
            inp = [torch.cat([o[s] for o in outs]) for s in range(ln)]
        ys.append(torch.stack(inp + [torch.zeros(dirs * hid, dtype=torch.float64)] * (t - ln)))
    y = torch.stack(ys, dim=1)
    finals = [torch.stack([torch.stack([fin_h[k, b] for b in range(n)])
                           for k in range(len(params))])]
    if lstm:
        finals.append(torch.stack([torch.stack([fin_c[k, b] for b in range(n)])
                                   for k in range(len(params))]))
    return [y, *finals]


@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_sequence_matches_naive_loop(data, kind):
    """Forward and gradients against the naive loop under torch's autograd, both direction
    orders: the only sequence-level reference for reset_after=False."""
    torch = _torch()
    x, states, params, lengths, bidirectional = _seq_case(data, kind)
    order = data.draw(st.sampled_from(R.DIRECTION_ORDERS), label="direction_order")
    outs = _seq_forward(kind, x, states, params, lengths, bidirectional, direction_order=order)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    dx, *d_states, dparams = _seq_vjp(kind, x, states, params, cots, lengths, bidirectional,
                                      direction_order=order)
    tx = torch.tensor(x, requires_grad=True)
    ts = [None if s is None else torch.tensor(s, requires_grad=True) for s in states]
    tp = [tuple(torch.tensor(p, requires_grad=True) for p in ws) +
          (None,) * (4 - len(ws)) for ws in params]
    t_outs = _naive_sequence(torch, kind, tx, ts, tp, lengths, bidirectional, order)
    sum((o * torch.tensor(c)).sum() for o, c in zip(t_outs, cots, strict=True)).backward()
    terms = _terms(x, params, 2 if bidirectional else 1)
    for j, (a, b) in enumerate(zip(outs, t_outs, strict=True)):
        assert_close_chain(a, b.detach().numpy(), terms, f"output {j}")
    assert_close_chain(dx, tx.grad.numpy(), terms * x.shape[1], "dx")
    for s, a, b in zip(states, d_states, ts, strict=True):
        assert (a is None) == (s is None)
        if s is not None:
            assert_close_chain(a, b.grad.numpy(), terms * x.shape[1], "d initial state")
    for k, (gs, ws) in enumerate(zip(dparams, tp, strict=True)):
        for j, (a, b) in enumerate(zip(gs, ws, strict=True)):
            assert (a is None) == (b is None)
            if b is not None:
                assert_close_chain(a, b.grad.numpy(), terms * x.shape[1], f"dparams[{k}][{j}]")


# --------------------------------------------------------------------------- semantics

@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_length_one_sequence_is_one_cell_step(data, kind):
    x, states, w = _cell_case(data, kind, data.draw(st.booleans(), label="bias"))
    params = [tuple(p for p in w if p is not None)]
    outs = _cell_forward(kind, x, states, w)
    seq = _seq_forward(kind, x[None], [s[None] for s in states], params)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    terms = x.shape[1] + 2 * states[0].shape[1] + 4
    assert_close_chain(seq[0][0], outs[0], terms, "y[0]")
    for j, o in enumerate(outs):
        assert_close_chain(seq[1 + j][0], o, terms, f"final state {j}")
    # the cell's cotangent of h' is the sum of those of y[0] and h_n
    cg = _cell_vjp(kind, x, states, w, cots)
    half = [cots[0] / 2, cots[0] / 2, *cots[1:]]
    dx, *d_states, dparams = _seq_vjp(kind, x[None], [s[None] for s in states], params,
                                      [half[0][None], *(c[None] for c in half[1:])])
    assert_close_chain(dx[0], cg[0], terms, "dx")
    for j, d in enumerate(d_states):
        assert_close_chain(d[0], cg[1 + j], terms, f"d state {j}")
    for j, (a, b) in enumerate(zip(dparams[0], cg[1 + len(states):], strict=True)):
        if b is None:
            assert a is None
        else:
            assert_close_chain(a, b, terms * x.shape[0], f"dparams {j}")


@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_padding_changes_nothing(data, kind):
    """Input past each sequence's end (and extra padded steps) changes no output and no
    gradient (up to the rounding of matrix products over another number of rows); outputs
    and dx there are exactly 0."""
    x, states, params, lengths, bidirectional = _seq_case(data, kind)
    t, n, _ = x.shape
    if lengths is None:
        lengths = np.full(n, t)
    extra = data.draw(st.integers(0, 2), label="extra steps")
    x2 = np.concatenate([x, np.zeros((extra, n, x.shape[2]))])
    pad = np.arange(t + extra)[:, None] >= lengths[None, :]
    x2 = np.where(pad[..., None], seeded(data, x2.shape, 3.0, "padding"), x2)
    outs = _seq_forward(kind, x, states, params, lengths, bidirectional)
    outs2 = _seq_forward(kind, x2, states, params, lengths, bidirectional)
    terms = _terms(x2, params, 2 if bidirectional else 1)
    assert_close_chain(outs2[0][:t], outs[0], terms, "y")
    assert np.all(outs2[0][pad] == 0.0)
    for a, b in zip(outs[1:], outs2[1:], strict=True):
        assert_close_chain(a, b, terms, "final state")
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs2)]
    g2 = _seq_vjp(kind, x2, states, params, cots, lengths, bidirectional)
    g1 = _seq_vjp(kind, x, states, params, [cots[0][:t], *cots[1:]], lengths, bidirectional)
    assert_close_chain(g2[0][:t], g1[0], terms * n, "dx")
    assert np.all(g2[0][pad] == 0.0)
    for a, b in zip(g1[1:-1], g2[1:-1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close_chain(a, b, terms * n, "d initial state")
    for ws1, ws2 in zip(g1[-1], g2[-1], strict=True):
        for a, b in zip(ws1, ws2, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert_close_chain(a, b, terms * n, "dparams")


@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_bidirectional_backward_is_forward_on_reversed(data, kind):
    """One bidirectional layer: its backward half is a forward-only layer with the backward
    weights run on each sequence reversed within its length, the output reversed back; the
    forward half is the forward-only layer; h_n stacks the two."""
    x, states, params, lengths, _ = _seq_case(data, kind)
    params = params[:1] + [tuple(seeded(data, p.shape, 0.5, f"bwd{j}")
                                 for j, p in enumerate(params[0]))]
    t, n, _ = x.shape
    h = params[0][1].shape[1]
    lengths_ = np.full(n, t) if lengths is None else lengths
    states = [None if s is None else seeded(data, (2, n, h), 1.0, f"state{j}")
              for j, s in enumerate(states)]
    rev = np.where(np.arange(t)[:, None] < lengths_[None, :],
                   lengths_[None, :] - 1 - np.arange(t)[:, None], np.arange(t)[:, None])
    xr = x[rev, np.arange(n)[None, :]]
    bi = _seq_forward(kind, x, states, params, lengths, True)
    fwd = _seq_forward(kind, x, [None if s is None else s[:1] for s in states], params[:1],
                       lengths)
    bwd = _seq_forward(kind, xr, [None if s is None else s[1:] for s in states], params[1:],
                       lengths)
    terms = _terms(x, params, 2)
    assert_close_chain(bi[0][..., :h], fwd[0], terms, "forward half")
    assert_close_chain(bi[0][..., h:], bwd[0][rev, np.arange(n)[None, :]], terms, "backward half")
    for j in range(1, len(bi)):
        assert_close_chain(bi[j], np.concatenate([fwd[j], bwd[j]]), terms, f"final state {j}")
    swapped = _seq_forward(kind, x, states, params, lengths, True,
                           direction_order="backward_forward")
    np.testing.assert_array_equal(swapped[0], np.concatenate([bi[0][..., h:], bi[0][..., :h]],
                                                             axis=2))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@given(data=st.data())
def test_none_cotangent_is_a_zero_cotangent(data, kind):
    x, states, params, lengths, bidirectional = _seq_case(data, kind)
    outs = _seq_forward(kind, x, states, params, lengths, bidirectional)
    cots = [seeded(data, o.shape, 1.0, f"cot{j}") for j, o in enumerate(outs)]
    for j in range(len(outs)):
        with_none = [None if k == j else c for k, c in enumerate(cots)]
        with_zero = [np.zeros_like(c) if k == j else c for k, c in enumerate(cots)]
        a = _seq_vjp(kind, x, states, params, with_none, lengths, bidirectional)
        b = _seq_vjp(kind, x, states, params, with_zero, lengths, bidirectional)
        np.testing.assert_array_equal(a[0], b[0])
        for ga, gb in zip(a[-1], b[-1], strict=True):
            for u, v in zip(ga, gb, strict=True):
                assert (u is None and v is None) or np.array_equal(u, v)


def test_variable_length_final_state_by_hand():
    """h' = tanh(x + h) with unit weights, H = I = 1: sequence 0 runs 3 steps, sequence 1 one
    step; h_n is each one's last valid state and y is 0 past the end."""
    x = np.array([[[0.5], [1.0]], [[0.25], [9.0]], [[-1.0], [9.0]]])
    params = [(np.ones((1, 1)), np.ones((1, 1)))]
    y, h_n = R.rnn(x, None, params, np.array([3, 1]))
    h1 = np.tanh(0.5)
    h2 = np.tanh(0.25 + h1)
    h3 = np.tanh(-1.0 + h2)
    np.testing.assert_allclose(y[:, 0, 0], [h1, h2, h3], rtol=4 * EPS)
    np.testing.assert_array_equal(y[:, 1, 0], [np.tanh(1.0), 0.0, 0.0])
    np.testing.assert_allclose(h_n[0, :, 0], [h3, np.tanh(1.0)], rtol=4 * EPS)


# --------------------------------------------------------------------------- bad input

def _p(h=2, i=3, g=1, bias=True):
    ws = [np.ones((g * h, i)), np.ones((g * h, h))]
    return tuple(ws + ([np.zeros(g * h), np.zeros(g * h)] if bias else []))


X = np.ones((4, 2, 3))
SEQ_BAD = [
    ("x", lambda: R.rnn(np.ones((2, 3)), None, [_p()])),                       # not 3-D
    ("x", lambda: R.rnn(np.ones((0, 2, 3)), None, [_p()])),                    # no step
    ("x", lambda: R.rnn(np.full((4, 2, 3), np.nan), None, [_p()])),
    ("params", lambda: R.rnn(X, None, [])),
    ("params", lambda: R.rnn(X, None, [_p()], bidirectional=True)),            # odd count
    ("params", lambda: R.rnn(X, None, [_p(i=4)])),                             # w_ih columns
    ("params", lambda: R.rnn(X, None, [_p(), _p(i=3)])),                       # layer 1 input 2
    ("params", lambda: R.rnn(X, None, [(np.ones((2, 3)),)])),                  # one array
    ("params", lambda: R.rnn(X, None, [(np.ones((2, 3)), np.ones((2, 3)))])),  # w_hh not square
    ("params", lambda: R.lstm(X, None, None, [_p(g=3)])),                      # 3 gates for lstm
    ("params", lambda: R.gru(X, None, [_p(g=4)])),                             # 4 gates for gru
    ("params", lambda: R.rnn(X, None, [(*_p()[:2], np.zeros(3), np.zeros(2))])),  # b_ih
    ("params", lambda: R.rnn(X, None, [_p(), (np.ones((3, 2)), np.ones((3, 3)))])),  # H differs
    ("h0", lambda: R.rnn(X, np.zeros((2, 2, 2)), [_p()])),
    ("c0", lambda: R.lstm(X, None, np.zeros((1, 2)), [_p(g=4)])),
    ("lengths", lambda: R.rnn(X, None, [_p()], np.array([5, 1]))),              # > T
    ("lengths", lambda: R.rnn(X, None, [_p()], np.array([0, 1]))),              # < 1
    ("lengths", lambda: R.rnn(X, None, [_p()], np.array([1, 2, 3]))),           # not (N,)
    ("lengths", lambda: R.rnn(X, None, [_p()], np.array([1.0, 2.0]))),          # not integers
    ("nonlinearity", lambda: R.rnn(X, None, [_p()], nonlinearity="sigmoid")),
    ("reset_after", lambda: R.gru(X, None, [_p(g=3)], reset_after="yes")),
    ("direction_order", lambda: R.rnn(X, None, [_p()], direction_order="concat")),
    ("bidirectional", lambda: R.rnn(X, None, [_p()], bidirectional="both")),
    ("gy", lambda: R.rnn_vjp(X, None, [_p()], np.ones((4, 2, 3)), None)),
    ("gh", lambda: R.rnn_vjp(X, None, [_p()], None, np.ones((2, 2, 2)))),
    ("gc", lambda: R.lstm_vjp(X, None, None, [_p(g=4)], None, None, np.ones((1, 2)))),
    ("tape", lambda: R.sequence_backward((np.ones((4, 2, 2)),), None)),       # not a Tape
    ("gc", lambda: R.sequence_backward(R.gru_forward(X, None, [_p(g=3)])[-1], None, None,
                                       np.ones((1, 2, 2)))),                 # gru: no c
    ("gy", lambda: R.sequence_backward(R.lstm_forward(X, None, None, [_p(g=4)])[-1],
                                       np.ones((4, 2, 3)))),
    ("x", lambda: R.rnn_cell(np.ones(3), np.ones((1, 2)), *_p())),
    ("h", lambda: R.rnn_cell(np.ones((1, 3)), np.ones((2, 2)), *_p())),
    ("c", lambda: R.lstm_cell(np.ones((1, 3)), np.ones((1, 2)), np.ones((1, 3)), *_p(g=4))),
    ("w_ih", lambda: R.rnn_cell(np.ones((1, 4)), np.ones((1, 2)), *_p())),
    ("w_hh", lambda: R.gru_cell(np.ones((1, 3)), np.ones((1, 2)), *_p(g=4))),
    ("b_hh", lambda: R.rnn_cell(np.ones((1, 3)), np.ones((1, 2)), *_p()[:3], np.ones(3))),
    ("gh", lambda: R.lstm_cell_vjp(np.ones((1, 3)), np.ones((1, 2)), np.ones((1, 2)), *_p(g=4),
                                   np.ones((2, 2)), None)),
    ("g", lambda: R.gru_cell_vjp(np.ones((1, 3)), np.ones((1, 2)), *_p(g=3), np.ones(2))),
    ("nonlinearity", lambda: R.rnn_cell_vjp(np.ones((1, 3)), np.ones((1, 2)), *_p(), None,
                                            nonlinearity="Tanh")),
]


@pytest.mark.parametrize(("arg", "call"), SEQ_BAD, ids=[f"{a}-{i}" for i, (a, _) in
                                                        enumerate(SEQ_BAD)])
def test_recurrent_rejects(arg, call):
    with raises_for(arg):
        call()
