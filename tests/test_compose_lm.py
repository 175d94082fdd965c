"""The language model composed over a backend's components (backends/compose_lm.py) and the
oracle-side helpers of its properties (properties/lm_terms.py): the NumPy composition equals
reference/language_model.py, a broken component reaches the model, a backend without the
sequence layers is unsupported, torch's carried state leaves its graph behind, JAX compiles
the model once per configuration and shapes, and NoisyLM and train_trace without noise are
the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from backends import compose_lm as C
from backends.base import UnsupportedComponent
from backends.harness import BackendError
from backends.recurrent import NumpyRecurrent
from properties.lm_terms import NoisyLM, train_trace
from reference import language_model as LM
from reference.optimizers import make_optimizer
from tests import planted_rnn
from tests.lm_backends import NumpyLM
from tests.optional import need

MODELS = {"lstm-2": LM.CharLM(5, 3, 4, 2, "lstm"), "gru-1": LM.CharLM(4, 2, 3, 1, "gru"),
          "gru-before": LM.CharLM(4, 3, 2, 2, "gru", reset_after=False)}


def problem(model: LM.CharLM, seed: int = 0):
    """(params, state, inputs, targets, batches): 3 columns, 2 TBPTT batches of 4 steps."""
    rng = np.random.default_rng(seed)
    params = LM.init_params(model, seed)
    state = tuple(0.5 * rng.standard_normal(model.state_shape(3))
                  for _ in range(2 if model.cell == "lstm" else 1))
    inputs, targets = (rng.integers(0, model.vocab, (4, 3)) for _ in range(2))
    batches = LM.tbptt_batches(LM.batchify(rng.integers(0, model.vocab, 27), 3), 4)
    return params, state, inputs, targets, batches


def close(got, want, rtol: float = 1e-12) -> bool:
    got, want = list(got), list(want)
    return len(got) == len(want) and all(
        np.allclose(a, b, rtol=rtol, atol=rtol) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("name", MODELS)
def test_numpy_composition_is_the_oracle(name):
    model = MODELS[name]
    params, state, inputs, targets, batches = problem(model)
    value, grads, final = LM.loss_and_grads(model, params, inputs, targets, state)
    got = C.call_lm_loss_and_grads(NumpyLM(), model, params, inputs, targets, state, "float64")
    assert close([got[0]], [value]) and close(got[1], grads) and close(got[2], final)
    want = LM.train(model, params, batches, make_optimizer("adam", lr=0.01), state, 0.3)
    p, history, states = C.call_train_lm(NumpyLM(), model, params, batches, "adam",
                                         {"lr": 0.01}, state, 0.3, "torch", "float64")
    assert close(p, want[0]) and close(history, want[1]) and close(states[-1], want[2])


def test_broken_component_reaches_the_model():
    """The embedding's VJP broken (repeated ids keep one cotangent): the model's gradient of
    the embedding changes, its loss does not."""
    class Broken(planted_rnn.EmbeddingGradientOverwritten, NumpyRecurrent,
                 C.ChainedLanguageModel):
        name = "broken"

    model = MODELS["lstm-2"]
    params, state, inputs, targets, _ = problem(model)
    good = C.call_lm_loss_and_grads(NumpyLM(), model, params, inputs, targets, state, "float64")
    bad = C.call_lm_loss_and_grads(Broken(), model, params, inputs, targets, state, "float64")
    assert close([bad[0]], [good[0]]) and close(bad[1][1:], good[1][1:])
    assert not close(bad[1][:1], good[1][:1])


class NoLayers(NumpyLM):
    """A backend without sequence layers (and, below, without clipping)."""

    name = "no-layers"
    lstm = gru = None


def test_without_sequence_layers_unsupported():
    model = MODELS["gru-1"]
    params, _, inputs, targets, batches = problem(model)
    with pytest.raises(UnsupportedComponent, match="no gru"):
        C.call_lm_loss_and_grads(NoLayers(), model, params, inputs, targets, None, "float64")
    with pytest.raises(UnsupportedComponent, match="no gru"):
        C.call_train_lm(NoLayers(), model, params, batches, "sgd", {"lr": 0.1}, None, None,
                        "torch", "float64")

    class NoClipping(NumpyLM):
        name = "no-clipping"
        clip_by_global_norm = None

    with pytest.raises(UnsupportedComponent, match="no clip_by_global_norm"):
        C.call_train_lm(NoClipping(), model, params, batches, "sgd", {"lr": 0.1}, None, 1.0,
                        "torch", "float64")


def test_failures_are_named():
    class Lossy(NumpyLM):
        name = "lossy"

        def train_lm(self, model, params, batches, optimizer, state=None, max_norm=None,
                     clip_eps="torch"):
            p, history, states = super().train_lm(model, params, batches, optimizer, state,
                                                  max_norm, clip_eps)
            return p, history, states[:-1]

    model = MODELS["gru-1"]
    params, _, _, _, batches = problem(model)
    with pytest.raises(BackendError, match="2 losses and 1 states"):
        C.call_train_lm(Lossy(), model, params, batches, "sgd", {"lr": 0.1}, None, None,
                        "torch", "float64")


def test_torch_carried_state_is_detached():
    need("torch")
    from tests.lm_backends import TorchLM

    model = MODELS["lstm-2"]
    params, state, inputs, targets, batches = problem(model)
    bk = TorchLM()
    native = [bk.asarray(p, "float64") for p in params]
    _, _, final = bk.lm_loss_and_grads(model, native, bk.asarray(inputs), bk.asarray(targets))
    assert all(s.grad_fn is None and not s.requires_grad for s in final)


def test_jax_compiles_once_per_model_and_shapes(monkeypatch):
    need("jax")
    need("flax")
    from backends import jax_compiled
    from tests.lm_backends import JaxLM

    # the memory bound off: had this worker's earlier tests left it at its limit, it would
    # clear the caches here and the next call compile again (seen under -n 3: 201 == 200)
    monkeypatch.setattr(jax_compiled.COMPILED, "limit", 0)

    model = MODELS["gru-1"]
    params, state, inputs, targets, _ = problem(model)
    bk = JaxLM()
    C.call_lm_loss_and_grads(bk, model, params, inputs, targets, None, "float32")
    before = jax_compiled.COMPILES[0]
    for s in (None, state):
        C.call_lm_loss_and_grads(bk, model, params, inputs, targets, s, "float32")
    assert jax_compiled.COMPILES[0] == before


@pytest.mark.parametrize("name", MODELS)
def test_noisy_lm_without_noise_is_the_oracle(name):
    model = MODELS[name]
    params, state, inputs, targets, _ = problem(model)
    for st in (None, state):
        value, grads, final = LM.loss_and_grads(model, params, inputs, targets, st)
        got = NoisyLM(model).loss_and_grads(params, inputs, targets, st)
        assert close([got[0]], [value]) and close(got[1], grads) and close(got[2], final)


@pytest.mark.parametrize("max_norm", [None, 0.1, 1e3])
def test_train_trace_is_the_oracle(max_norm):
    model = MODELS["lstm-2"]
    params, state, _, _, batches = problem(model)
    p, history, final = LM.train(model, params, batches, make_optimizer("sgd", lr=0.5), state,
                                 max_norm)
    got_history, states, got_p = train_trace(model, params, batches,
                                             make_optimizer("sgd", lr=0.5), state, max_norm)
    assert got_history == history and len(states) == len(batches)
    assert all(np.array_equal(a, b) for a, b in zip(got_p, p, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(states[-1], final, strict=True))
