"""asv benchmarks: the recurrent family, float64, one thread pinned to one core
(benchmarks/training.py's settings and per-process runner cache).

- ``CharLMTrainStep``: one training step of the character-level language model of
  reference/language_model.py: tokens (T 32, N 32) -> embedding 64 -> one LSTM layer, hidden
  128 -> dense to the 64-symbol vocabulary -> mean cross-entropy over every step; gradients
  clipped by global norm (0.25), then SGD (momentum 0.9) or Adam. As in truncated BPTT the
  final state of a step is the next step's initial state, not differentiated through.
- ``LSTMForwardBackward``: one LSTM layer (T 32, N 32, input 64, hidden 128) forward and the
  gradients of its input and its four weights, for a cotangent of its output sequence.
- ``OracleOverTorch``: oracle time / torch float64 eager time on both, timed alternately in
  one process (the target: at most 2).

Backends: 'numpy' is the oracle (reference.language_model / reference.recurrent with their
hand-written BPTT, reference.clipping, reference.optimizers); 'torch' eager autograd with
nn.Embedding, nn.LSTM (time-major, batch_first=False, as the oracle), nn.Linear,
F.cross_entropy, clip_grad_norm_ and torch.optim, the oracle's weights loaded; 'jax' flax.linen
(nn.Embed, nn.RNN over nn.LSTMCell, time-major; nn.Dense), optax (clip_by_global_norm chained
with the optimizer), the whole step (or the forward + VJP) one jitted function compiled in
setup, the oracle's weights loaded. Every backend starts from the same parameters, tokens
and cotangent.

Run as a script for a quick ratio measurement without asv:
``python -m benchmarks.bench_rnn [lm_step|lstm ...]``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.training import BACKENDS, DEVICES, REPEAT, cached_runner, ratio_main
from benchmarks.training import OracleOverTorch as OracleOverTorchTemplate

SEQ, BATCH, EMBED, HIDDEN, VOCAB = 32, 32, 64, 128, 64
MAX_NORM = 0.25
OPTIMIZERS = ("sgd", "adam")
HYPER = {"sgd": {"lr": 0.1, "momentum": 0.9}, "adam": {"lr": 1e-3}}
RATIO_OPTIMIZER = "adam"
STEPS = 5        # LM training steps per timed call
LSTM_CALLS = 10  # LSTM forward + backward passes per timed call


def _model():
    from reference import language_model as LM

    return LM.CharLM(vocab=VOCAB, embed=EMBED, hidden=HIDDEN, layers=1, cell="lstm")


def _lm_data():
    """(oracle parameters, inputs (T, N), targets (T, N)): a seeded stream batchified."""
    from reference import language_model as LM

    model = _model()
    rng = np.random.default_rng(3)
    data = rng.integers(0, VOCAB, (SEQ + 1, BATCH))
    return LM.init_params(model, 0), data[:-1], data[1:]


def _lstm_data():
    """(x (T, N, I), cotangent of y (T, N, H), (w_ih, w_hh, b_ih, b_hh)), seeded."""
    rng = np.random.default_rng(4)
    bound = 1.0 / np.sqrt(HIDDEN)
    weights = tuple(rng.uniform(-bound, bound, s) for s in
                    ((4 * HIDDEN, EMBED), (4 * HIDDEN, HIDDEN), (4 * HIDDEN,), (4 * HIDDEN,)))
    return (rng.standard_normal((SEQ, BATCH, EMBED)), rng.standard_normal((SEQ, BATCH, HIDDEN)),
            weights)


# --------------------------------------------------------------------------- the oracle

class _OracleLM:
    """reference.language_model.loss_and_grads, clip_by_global_norm ('torch' convention),
    the oracle optimizer; the final state carried to the next step."""

    def __init__(self, optimizer: str) -> None:
        from reference import clipping, language_model
        from reference.optimizers import make_optimizer

        self.LM, self.clip = language_model, clipping
        self.model = _model()
        self.params, self.inputs, self.targets = _lm_data()
        self.opt = make_optimizer(optimizer, **HYPER[optimizer])
        self.opt_state = self.opt.init(self.params)
        self.state = None

    def run(self, steps: int) -> None:
        p, o, s = self.params, self.opt_state, self.state
        for _ in range(steps):
            self.value, grads, s = self.LM.loss_and_grads(self.model, p, self.inputs,
                                                          self.targets, s)
            grads = self.clip.clip_by_global_norm(grads, MAX_NORM, "torch")
            p, o = self.opt.update(grads, o, p)
        self.params, self.opt_state, self.state = p, o, s


class _OracleLSTM:
    """reference.recurrent.lstm_vjp: the forward and BPTT for (dx, dparams)."""

    def __init__(self) -> None:
        from reference import recurrent

        self.R = recurrent
        self.x, self.gy, self.weights = _lstm_data()

    def run(self, calls: int) -> None:
        for _ in range(calls):
            self.out = self.R.lstm_vjp(self.x, None, None, [self.weights], self.gy, None, None)


# --------------------------------------------------------------------------- torch

class _TorchLM:
    """nn.Embedding -> nn.LSTM -> nn.Linear, F.cross_entropy, clip_grad_norm_, torch.optim;
    the final state detached and carried (PyTorch's word-language-model loop)."""

    def __init__(self, optimizer: str) -> None:
        import torch

        self.torch = torch
        params, inputs, targets = _lm_data()
        self.emb = torch.nn.Embedding(VOCAB, EMBED).double()
        self.rnn = torch.nn.LSTM(EMBED, HIDDEN, 1).double()
        self.out = torch.nn.Linear(HIDDEN, VOCAB).double()
        self.order = [self.emb.weight, self.rnn.weight_ih_l0, self.rnn.weight_hh_l0,
                      self.rnn.bias_ih_l0, self.rnn.bias_hh_l0, self.out.weight, self.out.bias]
        with torch.no_grad():
            for j, (tp, p) in enumerate(zip(self.order, params, strict=True)):
                tp.copy_(torch.from_numpy(p.T if j == len(params) - 2 else p))
        self.inputs = torch.from_numpy(inputs)
        self.targets = torch.from_numpy(targets).reshape(-1)
        hyper = HYPER[optimizer]
        self.opt = torch.optim.SGD(self.order, **hyper) if optimizer == "sgd" else \
            torch.optim.Adam(self.order, **hyper)
        self.hidden = None

    def run(self, steps: int) -> None:
        torch, hidden = self.torch, self.hidden
        for _ in range(steps):
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            self.opt.zero_grad()
            y, hidden = self.rnn(self.emb(self.inputs), hidden)
            loss = torch.nn.functional.cross_entropy(self.out(y).reshape(-1, VOCAB),
                                                     self.targets)
            loss.backward()
            self.value = loss.detach()
            torch.nn.utils.clip_grad_norm_(self.order, MAX_NORM)
            self.opt.step()
        self.hidden = hidden


class _TorchLSTM:
    """nn.LSTM forward, torch.autograd.grad for the input and the four weights."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        x, gy, weights = _lstm_data()
        self.rnn = torch.nn.LSTM(EMBED, HIDDEN, 1).double()
        self.params = [self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0,
                       self.rnn.bias_hh_l0]
        with torch.no_grad():
            for tp, w in zip(self.params, weights, strict=True):
                tp.copy_(torch.from_numpy(w))
        self.x = torch.from_numpy(x).requires_grad_()
        self.gy = torch.from_numpy(gy)

    def run(self, calls: int) -> None:
        for _ in range(calls):
            y, _ = self.rnn(self.x)
            self.out = self.torch.autograd.grad(y, [self.x, *self.params], self.gy)


# --------------------------------------------------------------------------- jax

def _flax_lstm_params(w_ih, w_hh, b_ih, b_hh) -> dict:
    """flax.linen LSTMCell's parameters from the PyTorch layout (gates i, f, g, o stacked in
    w_ih (4H, I), w_hh (4H, H)): input kernels ii.. (I, H) without bias, hidden kernels hi..
    (H, H) carrying b_ih + b_hh."""
    out = {}
    for k, gate in enumerate("ifgo"):
        rows = slice(k * HIDDEN, (k + 1) * HIDDEN)
        out[f"i{gate}"] = {"kernel": w_ih[rows].T}
        out[f"h{gate}"] = {"kernel": w_hh[rows].T, "bias": b_ih[rows] + b_hh[rows]}
    return out


def _flax_modules():
    import flax.linen as nn

    class LM(nn.Module):
        @nn.compact
        def __call__(self, carry, tokens):
            x = nn.Embed(VOCAB, EMBED, param_dtype=np.float64, name="embed")(tokens)
            cell = nn.LSTMCell(HIDDEN, param_dtype=np.float64, name="lstm")
            carry, y = nn.RNN(cell, time_major=True, return_carry=True)(x, initial_carry=carry)
            return carry, nn.Dense(VOCAB, param_dtype=np.float64, name="out")(y)

    lstm = nn.RNN(nn.LSTMCell(HIDDEN, param_dtype=np.float64), time_major=True)
    return LM(), lstm


class _JaxLM:
    """The flax model, optax.chain(clip_by_global_norm, sgd / adam), one jitted step
    (value_and_grad, the update) with the parameters, optimizer state and carry donated."""

    def __init__(self, optimizer: str) -> None:
        import jax
        import jax.numpy as jnp
        import optax

        self.jax = jax
        params, inputs, targets = _lm_data()
        lm, _ = _flax_modules()
        self.params = jax.tree.map(jnp.asarray, {"params": {
            "embed": {"embedding": params[0]},
            "lstm": _flax_lstm_params(*params[1:5]),
            "out": {"kernel": params[5], "bias": params[6]}}})
        hyper = HYPER[optimizer]
        base = optax.sgd(hyper["lr"], momentum=hyper["momentum"]) if optimizer == "sgd" else \
            optax.adam(hyper["lr"])
        tx = optax.chain(optax.clip_by_global_norm(MAX_NORM), base)
        self.opt_state = tx.init(self.params)
        self.carry = (jnp.zeros((BATCH, HIDDEN)), jnp.zeros((BATCH, HIDDEN)))
        self.inputs, self.targets = jnp.asarray(inputs), jnp.asarray(targets)

        def step(params, opt_state, carry, inputs, targets):
            def loss(p):
                new_carry, logits = lm.apply(p, carry, inputs)
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
                return ce, jax.lax.stop_gradient(new_carry)
            (value, new_carry), grads = jax.value_and_grad(loss, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, new_carry, value

        self.step = jax.jit(step, donate_argnums=(0, 1, 2))

    def run(self, steps: int) -> None:
        p, o, c = self.params, self.opt_state, self.carry
        for _ in range(steps):
            p, o, c, self.value = self.step(p, o, c, self.inputs, self.targets)
        self.jax.block_until_ready((p, o, c))
        self.params, self.opt_state, self.carry = p, o, c


class _JaxLSTM:
    """nn.RNN(nn.LSTMCell) forward and jax.vjp for the input and the parameters, jitted."""

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        self.jax = jax
        x, gy, weights = _lstm_data()
        _, lstm = _flax_modules()
        self.params = jax.tree.map(jnp.asarray, {"params": {"cell": _flax_lstm_params(*weights)}})
        self.x, self.gy = jnp.asarray(x), jnp.asarray(gy)

        def fwd_bwd(params, x, gy):
            _, vjp = jax.vjp(lambda p, xs: lstm.apply(p, xs), params, x)
            return vjp(gy)

        self.fn = jax.jit(fwd_bwd)

    def run(self, calls: int) -> None:
        for _ in range(calls):
            self.out = self.fn(self.params, self.x, self.gy)
        self.jax.block_until_ready(self.out)


# --------------------------------------------------------------------------- any backend

class _BackendLM:
    """The backend's own methods: ``lm_loss_and_grads`` (backends/compose_lm.py's model over
    its components, or its override), ``clip_by_global_norm`` (with the epsilon convention
    the backend declares: torch's norm + 1e-6, optax's none) and its ``optimizer``; the final
    state carried. The LM runner of the backends not written out above (the compiled ones,
    benchmarks/bench_compiled.py), on any device they have."""

    def __init__(self, bk, optimizer: str) -> None:
        params, inputs, targets = _lm_data()
        self.bk, self.model = bk, _model()
        eps = bk.conventions.get("clip_by_global_norm", {}).get("eps", "torch")
        self.eps = eps[0] if isinstance(eps, tuple) else eps
        self.params = [bk.asarray(p, "float64") for p in params]
        self.inputs, self.targets = bk.asarray(inputs), bk.asarray(targets)
        self.opt = bk.optimizer(optimizer, **HYPER[optimizer])
        self.opt_state = self.opt.init(self.params)
        self.state = None

    def run(self, steps: int) -> None:
        bk, p, o, s = self.bk, self.params, self.opt_state, self.state
        for _ in range(steps):
            self.value, grads, s = bk.lm_loss_and_grads(self.model, p, self.inputs,
                                                        self.targets, s)
            grads = bk.clip_by_global_norm(grads, MAX_NORM, self.eps)
            p, o = self.opt.update(list(grads), o, p)
        bk.synchronize()
        self.params, self.opt_state, self.state = p, o, s


_BUILD = {
    "lm": {"numpy": _OracleLM, "torch": _TorchLM, "jax": _JaxLM},
    "lstm": {"numpy": _OracleLSTM, "torch": _TorchLSTM, "jax": _JaxLSTM},
}


def _runner(kind: str, backend: str, device: str, optimizer: str = ""):
    """The warmed-up runner: LM training steps (kind "lm") or LSTM forward + backward ("lstm").
    The written-out runners of numpy, torch and jax are wired up for the CPU only (another
    device is skipped); any other backend's LM steps run its own methods (_BackendLM)."""
    if backend not in _BUILD[kind]:
        if kind != "lm":
            raise NotImplementedError(f"bench_rnn has no {kind} runner for {backend}")
        return cached_runner(("rnn", kind, backend, device, optimizer), backend, device,
                             lambda bk: _BackendLM(bk, optimizer), 1)
    if device != "cpu":
        raise NotImplementedError(f"bench_rnn runs on the CPU only, not {device}")
    build = _BUILD[kind][backend]
    return cached_runner(("rnn", kind, backend, device, optimizer), backend, device,
                         lambda bk: build(optimizer) if kind == "lm" else build(), 1)


class CharLMTrainStep:
    """STEPS (5) training steps of the character-level LSTM language model, T 32, N 32,
    E 64, H 128, V 64, clip by global norm, float64."""

    params = (list(BACKENDS), list(OPTIMIZERS), list(DEVICES))
    param_names = ("backend", "optimizer", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300

    def setup(self, backend: str, optimizer: str, device: str) -> None:
        self.runner = _runner("lm", backend, device, optimizer)

    def time_step(self, backend: str, optimizer: str, device: str) -> None:
        """STEPS training steps, synchronised; divide by STEPS for one step."""
        self.runner.run(STEPS)

    def peakmem_step(self, backend: str, optimizer: str, device: str) -> None:
        self.runner.run(STEPS)


class LSTMForwardBackward:
    """LSTM_CALLS (10) forward + backward passes of one LSTM layer, T 32, N 32, I 64, H 128."""

    params = (list(BACKENDS), list(DEVICES))
    param_names = ("backend", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300

    def setup(self, backend: str, device: str) -> None:
        self.runner = _runner("lstm", backend, device)

    def time_forward_backward(self, backend: str, device: str) -> None:
        self.runner.run(LSTM_CALLS)


WORKS = {"lm_step": ("lm", RATIO_OPTIMIZER, STEPS), "lstm": ("lstm", "", LSTM_CALLS)}


class OracleOverTorch(OracleOverTorchTemplate):
    """Time of the oracle / time of torch float64 eager on the same work (the LM training step
    with Adam, the LSTM layer forward + backward), timed alternately in one process
    (training.OracleOverTorch: median of 7 timings each, median ratio of 3 pairs). Target
    <= 2."""

    params = (list(WORKS),)

    def setup(self, work: str) -> None:
        kind, optimizer, self.n = WORKS[work]
        self.oracle = _runner(kind, "numpy", "cpu", optimizer)
        self.torch = _runner(kind, "torch", "cpu", optimizer)


if __name__ == "__main__":
    import sys

    ratio_main(OracleOverTorch, sys.argv[1:])
