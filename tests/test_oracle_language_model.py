"""The character-level language model (reference/language_model.py): its hand-chained
gradients against central finite differences (tests/fd.py), loss, gradients and final state
against a PyTorch float64 model with the same weights (nn.Embedding, nn.LSTM / nn.GRU,
nn.Linear, F.cross_entropy), the TBPTT training loop against PyTorch's word-language-model
loop (hidden state detached between batches, clip_grad_norm_, torch.optim), carrying the state
by construction, the batching helpers by hand, and bad input.

Comparisons with torch use the bound of tests/test_oracle_recurrent.py (16 eps per term of
the longest chain, relative to the largest magnitude compared).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import clipping as Cl
from reference import language_model as LM
from reference.optimizers import make_optimizer
from tests.fd import assert_close_chain, assert_vjp_matches_fd, raises_for, seeded
from tests.optional import need


def _model(data, cell: str | None = None, reset_after: bool | None = None) -> LM.CharLM:
    cell = cell or data.draw(st.sampled_from(LM.CELLS), label="cell")
    if reset_after is None:
        reset_after = data.draw(st.booleans(), label="reset_after") if cell == "gru" else True
    return LM.CharLM(vocab=data.draw(st.integers(2, 5), label="vocab"),
                     embed=data.draw(st.integers(1, 3), label="embed"),
                     hidden=data.draw(st.integers(1, 3), label="hidden"),
                     layers=data.draw(st.integers(1, 2), label="layers"),
                     cell=cell, reset_after=reset_after)


def _tokens(data, model, t, n, label):
    return data.draw(hnp.arrays(np.int64, (t, n), elements=st.integers(0, model.vocab - 1)),
                     label=label)


def _batch(data, model):
    t = data.draw(st.integers(1, 4), label="T")
    n = data.draw(st.integers(1, 3), label="N")
    return _tokens(data, model, t, n, "inputs"), _tokens(data, model, t, n, "targets")


def _state(data, model, n):
    if not data.draw(st.booleans(), label="initial state"):
        return None
    return tuple(seeded(data, model.state_shape(n), 1.0, f"state{j}")
                 for j in range(2 if model.cell == "lstm" else 1))


def _terms(model, t) -> int:
    g, h = LM.R.GATES[model.cell], model.hidden
    return t * model.layers * (model.embed + 2 * h + 4) * g + h + model.vocab


# --------------------------------------------------------------------------- FD

@given(data=st.data())
def test_language_model_gradients_match_fd(data):
    model = _model(data)
    inputs, targets = _batch(data, model)
    state = _state(data, model, inputs.shape[1])
    params = [p * 1.0 for p in LM.init_params(model, data.draw(st.integers(0, 2**16), "seed"))]
    value, grads, _ = LM.loss_and_grads(model, params, inputs, targets, state)
    assert value == LM.loss(model, params, inputs, targets, state)[0]
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") for j, p in enumerate(params)]

    def f(*ps):
        return np.asarray(LM.loss(model, list(ps), inputs, targets, state)[0])

    # the logits' terms |y| |w| + |b| (|y| <= 1) and the log-sum-exp's, per position, over
    # T N positions: cross-entropy's 1 / (T N) leaves their per-position sum; the recurrent
    # matrix products' terms are of the same order (weights within 1 / sqrt(H))
    t, n = inputs.shape
    mag = (np.abs(params[-2]).sum(axis=0).max() + np.abs(params[-1]).max()) * 4 + \
        model.layers * t * (model.embed * np.abs(params[0]).max() + 2 * model.hidden)
    assert_vjp_matches_fd(f, params, tangents, np.float64(1.0), grads, float(mag))


# --------------------------------------------------------------------------- torch

def _torch():
    return need("torch", reason="the PyTorch comparisons need torch")


def _torch_model(torch, model, params):
    """(modules, parameters in the oracle's order) of a float64 torch model with the oracle's
    weights; the dense weight is transposed (torch Linear keeps (O, I))."""
    emb = torch.nn.Embedding(model.vocab, model.embed).double()
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell](
        model.embed, model.hidden, model.layers).double()
    out = torch.nn.Linear(model.hidden, model.vocab).double()
    order = [emb.weight]
    for layer in range(model.layers):
        order += [getattr(rnn, f"{w}_l{layer}") for w in ("weight_ih", "weight_hh", "bias_ih",
                                                          "bias_hh")]
    order += [out.weight, out.bias]
    with torch.no_grad():
        for j, (tp, p) in enumerate(zip(order, params, strict=True)):
            tp.copy_(torch.tensor(p.T if j == len(params) - 2 else p))
    return (emb, rnn, out), order


def _torch_loss(torch, mods, inputs, targets, state):
    emb, rnn, out = mods
    y, fin = rnn(emb(torch.tensor(inputs)), state)
    logits = out(y)
    v = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, v),
                                             torch.tensor(targets).reshape(-1))
    return loss, fin


def _torch_state(torch, model, state):
    if state is None:
        return None
    ts = tuple(torch.tensor(s) for s in state)
    return ts if model.cell == "lstm" else ts[0]


@given(data=st.data())
def test_language_model_matches_torch(data):
    torch = _torch()
    model = _model(data, reset_after=True)
    inputs, targets = _batch(data, model)
    state = _state(data, model, inputs.shape[1])
    params = LM.init_params(model, data.draw(st.integers(0, 2**16), "seed"))
    value, grads, new_state = LM.loss_and_grads(model, params, inputs, targets, state)
    mods, order = _torch_model(torch, model, params)
    loss, fin = _torch_loss(torch, mods, inputs, targets, _torch_state(torch, model, state))
    loss.backward()
    terms = _terms(model, inputs.shape[0])
    assert_close_chain(value, loss.item(), terms, "loss")
    fin = fin if model.cell == "lstm" else (fin,)
    for j, (a, b) in enumerate(zip(new_state, fin, strict=True)):
        assert_close_chain(a, b.detach().numpy(), terms, f"state {j}")
    for j, (g, tp) in enumerate(zip(grads, order, strict=True)):
        want = tp.grad.numpy().T if j == len(grads) - 2 else tp.grad.numpy()
        assert_close_chain(g, want, terms * inputs.size, f"grad {j}")


_OPTIMIZERS = {
    "sgd": ({"lr": 0.5, "momentum": 0.9}, lambda torch, ps: torch.optim.SGD(ps, lr=0.5,
                                                                             momentum=0.9)),
    "adam": ({"lr": 0.05}, lambda torch, ps: torch.optim.Adam(ps, lr=0.05, foreach=False)),
}


@pytest.mark.parametrize("opt", list(_OPTIMIZERS))
@given(data=st.data())
def test_tbptt_training_matches_torch(data, opt):
    """PyTorch's word-language-model loop: batchify, consecutive windows, the hidden state
    detached between batches, clip_grad_norm_, an optimizer step; loss history, final
    parameters and final state agree."""
    torch = _torch()
    model = _model(data, reset_after=True)
    n = data.draw(st.integers(1, 3), label="N")
    length = data.draw(st.integers(2 * n + n, 12 * n), label="stream length")
    stream = data.draw(hnp.arrays(np.int64, (length,), elements=st.integers(0, model.vocab - 1)),
                       label="stream")
    seq_len = data.draw(st.integers(1, 4), label="seq_len")
    max_norm = data.draw(st.sampled_from([None, 0.1, 10.0]), label="max_norm")
    batches = LM.tbptt_batches(LM.batchify(stream, n), seq_len)
    params = LM.init_params(model, data.draw(st.integers(0, 2**16), "seed"))
    hyper, make_torch = _OPTIMIZERS[opt]
    got, history, state = LM.train(model, params, batches, make_optimizer(opt, **hyper),
                                   max_norm=max_norm)

    mods, order = _torch_model(torch, model, params)
    topt = make_torch(torch, order)
    hidden, t_history = None, []
    for inputs, targets in batches:
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden) if model.cell == "lstm" else hidden.detach()
        topt.zero_grad()
        loss, hidden = _torch_loss(torch, mods, inputs, targets, hidden)
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(order, max_norm)
        topt.step()
        t_history.append(loss.item())
    # each step's error carries into the next: count the steps' chains
    terms = _terms(model, seq_len) * len(batches) * stream.size
    assert_close_chain(history, t_history, terms, "loss history")
    for j, (p, tp) in enumerate(zip(got, order, strict=True)):
        want = tp.detach().numpy().T if j == len(got) - 2 else tp.detach().numpy()
        assert_close_chain(p, want, terms, f"params[{j}]")
    t_state = hidden if model.cell == "lstm" else (hidden,)
    for j, (a, b) in enumerate(zip(state, t_state, strict=True)):
        assert_close_chain(a, b.detach().numpy(), terms, f"state {j}")


# --------------------------------------------------------------------------- by construction

@given(data=st.data())
def test_carried_state_continues_the_sequence(data):
    """Two consecutive batches with the state carried give the logits and final state of the
    concatenated batch: carrying is exactly continuing the recurrence."""
    model = _model(data)
    a, _ = _batch(data, model)
    b = _tokens(data, model, data.draw(st.integers(1, 3), label="T2"), a.shape[1], "second")
    params = LM.init_params(model, data.draw(st.integers(0, 2**16), "seed"))
    state = _state(data, model, a.shape[1])
    la, sa = LM.forward(model, params, a, state)
    lb, sb = LM.forward(model, params, b, sa)
    lab, sab = LM.forward(model, params, np.concatenate([a, b]), state)
    terms = _terms(model, a.shape[0] + b.shape[0])
    assert_close_chain(np.concatenate([la, lb]), lab, terms, "logits")
    for j, (u, v) in enumerate(zip(sb, sab, strict=True)):
        assert_close_chain(u, v, terms, f"state {j}")


def test_training_carries_the_state_without_gradient():
    """train is the loop written out: each batch's loss_and_grads starts from the previous
    batch's final state (no gradient flows into it), clipped gradients, one optimizer step."""
    model = LM.CharLM(vocab=4, embed=2, hidden=3, layers=2, cell="gru")
    params = LM.init_params(model, 1)
    batches = LM.tbptt_batches(LM.batchify(np.arange(30) % 4, 2), 3)
    opt = make_optimizer("sgd", lr=0.1)
    got, history, state = LM.train(model, params, batches, opt, max_norm=0.5, clip_eps="optax")
    p, st_, opt_state, want = params, None, opt.init(params), []
    for inputs, targets in batches:
        value, grads, st_ = LM.loss_and_grads(model, p, inputs, targets, st_)
        want.append(value)
        p, opt_state = opt.update(Cl.clip_by_global_norm(grads, 0.5, "optax"), opt_state, p)
    assert history == want
    for a, b in zip(got, p, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state[0], st_[0])


def test_batchify_and_windows_by_hand():
    data = LM.batchify(np.arange(11), 2)  # 10 tokens kept: columns 0..4 and 5..9
    np.testing.assert_array_equal(data, np.array([[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]))
    windows = LM.tbptt_batches(data, 3)
    assert len(windows) == 2
    np.testing.assert_array_equal(windows[0][0], data[0:3])
    np.testing.assert_array_equal(windows[0][1], data[1:4])
    np.testing.assert_array_equal(windows[1][0], data[3:4])
    np.testing.assert_array_equal(windows[1][1], data[4:5])


def test_init_params_follow_the_layout():
    model = LM.CharLM(vocab=5, embed=2, hidden=3, layers=2, cell="lstm")
    shapes = [p.shape for p in LM.init_params(model)]
    assert shapes == [(5, 2), (12, 2), (12, 3), (12,), (12,), (12, 3), (12, 3), (12,), (12,),
                      (3, 5), (5,)]
    assert [s.shape for s in LM.zero_state(model, 4)] == [(2, 4, 3)] * 2


# --------------------------------------------------------------------------- bad input

_M = LM.CharLM(vocab=4, embed=2, hidden=3)
_P = LM.init_params(_M)
_X = np.zeros((3, 2), dtype=np.int64)
BAD = [
    ("vocab", lambda: LM.CharLM(vocab=0, embed=2, hidden=3)),
    ("hidden", lambda: LM.CharLM(vocab=4, embed=2, hidden=2.0)),
    ("layers", lambda: LM.CharLM(vocab=4, embed=2, hidden=3, layers=0)),
    ("cell", lambda: LM.CharLM(vocab=4, embed=2, hidden=3, cell="rnn")),
    ("reset_after", lambda: LM.CharLM(vocab=4, embed=2, hidden=3, cell="gru", reset_after=None)),
    ("params", lambda: LM.forward(_M, _P[:-1], _X)),
    ("params", lambda: LM.forward(_M, _P[:-1] + [np.zeros(5)], _X)),
    ("inputs", lambda: LM.forward(_M, _P, np.zeros(3, dtype=np.int64))),
    ("inputs", lambda: LM.forward(_M, _P, np.zeros((3, 2)))),
    ("inputs", lambda: LM.forward(_M, _P, np.full((3, 2), 4))),
    ("targets", lambda: LM.loss(_M, _P, _X, np.zeros((2, 2), dtype=np.int64))),
    ("targets", lambda: LM.loss_and_grads(_M, _P, _X, np.full((3, 2), -1))),
    ("state", lambda: LM.forward(_M, _P, _X, (np.zeros((1, 2, 3)),))),
    ("state", lambda: LM.forward(_M, _P, _X, (np.zeros((1, 3, 3)), np.zeros((1, 3, 3))))),
    ("batches", lambda: LM.train(_M, _P, [], make_optimizer("sgd", lr=0.1))),
    ("batches", lambda: LM.train(_M, _P, [(_X,)], make_optimizer("sgd", lr=0.1))),
    ("max_norm", lambda: LM.train(_M, _P, [(_X, _X)], make_optimizer("sgd", lr=0.1),
                                  max_norm=-1.0)),
    ("clip_eps", lambda: LM.train(_M, _P, [(_X, _X)], make_optimizer("sgd", lr=0.1),
                                  max_norm=1.0, clip_eps="keras")),
    ("clip_value", lambda: LM.train(_M, _P, [(_X, _X)], make_optimizer("sgd", lr=0.1),
                                    clip_value=-1.0)),
    ("stream", lambda: LM.batchify(np.zeros((2, 3), dtype=np.int64), 1)),
    ("n", lambda: LM.batchify(np.arange(5), 3)),
    ("data", lambda: LM.tbptt_batches(np.zeros((1, 2), dtype=np.int64), 2)),
    ("seq_len", lambda: LM.tbptt_batches(np.zeros((4, 2), dtype=np.int64), 0)),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_language_model_rejects(arg, call):
    with raises_for(arg):
        call()
