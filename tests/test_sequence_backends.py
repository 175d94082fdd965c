"""The sequence-layer and clipping interface (backends/recurrent.py): the mixins carry the
oracle's signatures, their conventions join the adapters', the calls name a backend's
failures, and the step-by-step oracle of the tolerance policy (properties/sequence_terms.py)
equals reference/recurrent.py."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import recurrent as BR
from backends.base import Backend, UnsupportedComponent
from backends.harness import BackendError
from backends.numpy_backend import NumpyBackend
from properties.sequence_terms import Stepwise, flat_gradients


@pytest.mark.parametrize("name", BR.COMPONENTS)
def test_interface_has_the_oracles_signature(name):
    want = list(inspect.signature(BR.ORACLE[name][0]).parameters.values())
    got = [p for p in inspect.signature(getattr(BR.RecurrentBackend, name)).parameters.values()
           if p.name != "self"]
    assert [(p.name, p.default) for p in got] == [(p.name, p.default) for p in want]


def test_a_backend_without_the_mixin_methods_is_unsupported():
    class Bare(Backend, BR.RecurrentBackend):
        name = "bare"
        unsupported = {"gru": "no GRU here"}

    with pytest.raises(UnsupportedComponent, match="bare does not implement lstm"):
        Bare().lstm(None, None, None, [])
    with pytest.raises(UnsupportedComponent, match="no GRU here"):
        Bare().gru(None, None, [])


def test_conventions_merge_declarations_win():
    class Declares(NumpyBackend, BR.NumpyRecurrent):
        name = "declares"
        conventions = {"gru": {"reset_after": True}, "sgd": {"dampen_first_step": False}}

    assert Declares.conventions["gru"] == {"direction_order": ("forward_backward",
                                                               "backward_forward"),
                                           "reset_after": True}
    assert Declares.conventions["sgd"] == {"dampen_first_step": False}
    assert NumpyBackend.conventions["clip_by_global_norm"] == {"eps": ("torch", "optax")}
    assert NumpyBackend.conventions["adam"] == {"amsgrad": (None, "torch", "optax")}


def _case(rng, kind, bidirectional, lengths, bias=True):
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    t, n, i, h = 4, 3, 2, 3
    dirs = 2 if bidirectional else 1
    params = [tuple(rng.normal(size=s) * 0.5 for s in
                    [(g * h, i if k < dirs else dirs * h), (g * h, h),
                     *([(g * h,), (g * h,)] if bias else [])]) for k in range(2 * dirs)]
    x = rng.normal(size=(t, n, i))
    states = [rng.normal(size=(2 * dirs, n, h)) for _ in BR.STATES[kind]]
    return x, states, params, {"lengths": np.array([4, 1, 2]) if lengths else None,
                               "bidirectional": bidirectional}


class _Mutates(NumpyBackend):
    name = "mutates"

    def rnn(self, x, h0, params, *args, **kwargs):
        out = super().rnn(x, h0, params, *args, **kwargs)
        params[0][1][0, 0] += 1.0
        return out


def test_calls_name_a_mutated_input_and_a_wrong_output():
    x, states, params, kw = _case(np.random.default_rng(0), "rnn", False, False)
    with pytest.raises(BackendError, match=r"mutated its input params\[0\].w_hh"):
        BR.call_sequence(_Mutates(), "rnn", x, states, params, kw, "float64")

    class Short(NumpyBackend):
        name = "short"

        def lstm(self, *args, **kwargs):
            return super().lstm(*args, **kwargs)[:2]

    x, states, params, kw = _case(np.random.default_rng(0), "lstm", False, False)
    with pytest.raises(BackendError, match="expected a tuple of 3 arrays"):
        BR.call_sequence(Short(), "lstm", x, states, params, kw, "float64")


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(BR.SEQUENCES), bidirectional=st.booleans(), lengths=st.booleans(),
       bias=st.booleans(), order=st.sampled_from(("forward_backward", "backward_forward")),
       seed=st.integers(0, 2**32 - 1))
def test_stepwise_equals_the_oracle(kind, bidirectional, lengths, bias, order, seed):
    """Without noise the step-by-step layers are reference/recurrent.py's, up to the rounding
    of sums taken in another order."""
    rng = np.random.default_rng(seed)
    x, states, params, kw = _case(rng, kind, bidirectional, lengths, bias)
    states[0] = None
    kw["direction_order"] = order
    outs = BR.ORACLE[kind][0](x, *states, params, **kw)
    cots = [rng.normal(size=o.shape) for o in outs]
    engine = Stepwise(kind, **kw)
    got, tape = engine.forward(x, states, params)
    for a, e in zip(got, outs, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    grads = flat_gradients(engine.backward(x, states, tape, cots))
    want = flat_gradients(BR.ORACLE[kind][1](x, *states, params, *cots, **kw))
    for a, e in zip(grads, want, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
