"""The character-level language model (reference/language_model.py) composed over a
backend's own components: the default behind ``LanguageModelBackend``'s methods.

    tokens (T, N) -> bk.embedding (T, N, E) -> bk.lstm / bk.gru, L layers (T, N, H)
                  -> bk.dense to logits (T N, V) -> bk.cross_entropy, the mean over T N

Parameters are reference.language_model.CharLM's flat list: [embedding (V, E), per layer
w_ih, w_hh, b_ih, b_hh, dense w (H, V), dense b (V,)]; the state is (h,) for the GRU or
(h, c) for the LSTM, each (L, N, H), None meaning zeros. Gradients come from the backend's
autodiff through the whole model (``loss_and_grads``, as ``loss.backward()``), or, for a
backend without a generic autodiff (the NumPy oracle), from its components' VJPs chained by
hand (``loss_and_grads_chained``). ``train`` is truncated BPTT: one step per batch, the state
carried to the next batch without gradient, clipping by the backend's clip_by_global_norm,
the step by its optimizer. A broken component of the backend reaches the language model.

A backend overrides a method of ``LanguageModelBackend`` on purpose only (to certify its
framework's own model, or to compile the composition: backends/jax_lm.py); ``method`` gives
the composition to a backend without the mixin. ``call_lm_loss_and_grads`` and
``call_train_lm`` are the calls the properties make: NumPy in and out, failures named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from backends.base import UnsupportedComponent
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference.language_model import CharLM
from reference.optimizers import Optimizer

State = tuple[Any, ...]
Batch = tuple[Any, Any]


def split(model: CharLM, params: Sequence[Any]) -> tuple[Any, list[tuple], Any, Any]:
    """(embedding (V, E), one (w_ih, w_hh, b_ih, b_hh) per layer, dense w (H, V), dense b)."""
    p = list(params)
    layers = [tuple(p[1 + 4 * k: 5 + 4 * k]) for k in range(model.layers)]
    return p[0], layers, p[-2], p[-1]


def detached(x: Any) -> Any:
    """``x`` cut from the graph that computed it, where the framework records one on the
    array (torch: ``h.detach()``, the word-language-model's repackage_hidden); JAX and NumPy
    arrays are values already."""
    detach = getattr(x, "detach", None)
    return detach() if callable(detach) else x


def _needs(bk: Any, name: str) -> None:
    """UnsupportedComponent for a backend without the sequence layer or clipping
    (backends/recurrent.py's mixin): the model is composed from them."""
    if getattr(bk, name, None) is None:
        raise UnsupportedComponent(f"{getattr(bk, 'name', type(bk).__name__)} has no {name} "
                                   "(backends/recurrent.py), which the language model is "
                                   "composed from")


def _recurrent(bk: Any, model: CharLM, x: Any, layers: list[tuple], state: State | None
               ) -> tuple[Any, State]:
    """(y (T, N, H), final state) of the backend's sequence layer."""
    _needs(bk, model.cell)
    if model.cell == "lstm":
        h0, c0 = (None, None) if state is None else state
        y, h_n, c_n = bk.lstm(x, h0, c0, layers)
        return y, (h_n, c_n)
    (h0,) = (None,) if state is None else state
    y, h_n = bk.gru(x, h0, layers, reset_after=model.reset_after)
    return y, (h_n,)


def forward(bk: Any, model: CharLM, params: Sequence[Any], inputs: Any,
            state: State | None = None) -> tuple[Any, State]:
    """(logits (T, N, V), final state) for integer inputs (T, N)."""
    emb, layers, w, b = split(model, params)
    t, n = inputs.shape
    y, new_state = _recurrent(bk, model, bk.embedding(emb, inputs), layers, state)
    logits = bk.dense(y.reshape(t * n, model.hidden), w, b)
    return logits.reshape(t, n, model.vocab), new_state


def loss(bk: Any, model: CharLM, params: Sequence[Any], inputs: Any, targets: Any,
         state: State | None = None) -> tuple[Any, State]:
    """(mean cross-entropy over the T N positions, final state)."""
    logits, new_state = forward(bk, model, params, inputs, state)
    t, n = inputs.shape
    value = bk.cross_entropy(logits.reshape(t * n, model.vocab), targets.reshape(t * n))
    return value, new_state


def loss_and_grads(bk: Any, model: CharLM, params: Sequence[Any], inputs: Any, targets: Any,
                   state: State | None = None) -> tuple[Any, list[Any], State]:
    """(loss, the gradient of every parameter, final state (detached)) by the backend's
    autodiff through ``loss``; the initial state is held fixed."""
    _needs(bk, model.cell)
    value, grads, new_state = bk.value_and_grad_aux(
        lambda p: loss(bk, model, p, inputs, targets, state), list(params))
    return value, list(grads), tuple(detached(s) for s in new_state)


def loss_and_grads_chained(bk: Any, model: CharLM, params: Sequence[Any], inputs: Any,
                           targets: Any, state: State | None = None
                           ) -> tuple[Any, list[Any], State]:
    """``loss_and_grads`` by the chain rule over the backend's component VJPs
    (component_vjp of cross_entropy, dense and embedding; sequence_vjp of the layer): for a
    backend without a generic autodiff."""
    emb, layers, w, b = split(model, params)
    t, n = inputs.shape
    states = (None,) * (2 if model.cell == "lstm" else 1) if state is None else tuple(state)
    kw = {} if model.cell == "lstm" else {"reset_after": model.reset_after}
    x = bk.embedding(emb, inputs)
    y, new_state = _recurrent(bk, model, x, layers, state)
    y2 = y.reshape(t * n, model.hidden)
    logits = bk.dense(y2, w, b)
    labels = targets.reshape(t * n)
    one = bk.asarray(np.array(1.0), bk.dtype_of(logits))
    (value,), (g_logits,) = bk.component_vjp("cross_entropy", [logits], [one], labels=labels)
    _, (g_y2, d_w, d_b) = bk.component_vjp("dense", [y2, w, b], [g_logits])
    cots = (g_y2.reshape(t, n, model.hidden), *(None,) * len(states))
    _, (dx, *_, dlayers) = bk.sequence_vjp(model.cell, x, states, layers, cots, **kw)
    _, (d_emb,) = bk.component_vjp("embedding", [emb], [dx], ids=inputs)
    grads = [d_emb, *(g for gs in dlayers for g in gs), d_w, d_b]
    return value, grads, new_state


def method(bk: Any, name: str) -> Callable[..., Any]:
    """The backend's ``name`` ('lm_forward', 'lm_loss_and_grads', 'train_lm'), or the
    composition for a backend without the mixin."""
    found = getattr(bk, name, None)
    return found if found is not None else partial(_DEFAULTS[name], bk)


def train(bk: Any, model: CharLM, params: Sequence[Any], batches: Sequence[Batch],
          optimizer: Optimizer, state: State | None = None, max_norm: float | None = None,
          clip_eps: str = "torch") -> tuple[list[Any], list[float], list[State]]:
    """Truncated BPTT (reference.language_model.train): per (inputs, targets) batch in order,
    the backend's lm_loss_and_grads from the state the previous batch ended in (the first
    from ``state``), its clip_by_global_norm when ``max_norm`` is given, one step of
    ``optimizer``. Returns (final params, the loss of each batch before its step, the state
    after every batch)."""
    step = method(bk, "lm_loss_and_grads")
    if max_norm is not None:
        _needs(bk, "clip_by_global_norm")
    p = list(params)
    opt_state = optimizer.init(p)
    history, states = [], []
    st = state
    for inputs, targets in batches:
        value, grads, st = step(model, p, inputs, targets, st)
        if max_norm is not None:
            grads = bk.clip_by_global_norm(grads, max_norm, clip_eps)
        history.append(float(bk.to_numpy(value)))
        states.append(tuple(st))
        p, opt_state = optimizer.update(list(grads), opt_state, p)
    return p, history, states


_DEFAULTS: dict[str, Callable[..., Any]] = {"lm_forward": forward,
                                            "lm_loss_and_grads": loss_and_grads,
                                            "train_lm": train}


class LanguageModelBackend:
    """Mixin for a Backend with the sequence layers (backends/recurrent.py): the language
    model composed from its own components, differentiated by its own autodiff."""

    def lm_forward(self, model: CharLM, params: Sequence[Any], inputs: Any,
                   state: State | None = None) -> tuple[Any, State]:
        """(logits (T, N, V), final state)."""
        return forward(self, model, params, inputs, state)

    def lm_loss_and_grads(self, model: CharLM, params: Sequence[Any], inputs: Any,
                          targets: Any, state: State | None = None
                          ) -> tuple[Any, list[Any], State]:
        """(loss, gradient of every parameter, final state)."""
        return loss_and_grads(self, model, params, inputs, targets, state)

    def train_lm(self, model: CharLM, params: Sequence[Any], batches: Sequence[Batch],
                 optimizer: Optimizer, state: State | None = None,
                 max_norm: float | None = None, clip_eps: str = "torch"
                 ) -> tuple[list[Any], list[float], list[State]]:
        """(final params, loss history, state after every batch) of truncated BPTT."""
        return train(self, model, params, batches, optimizer, state, max_norm, clip_eps)


class ChainedLanguageModel(LanguageModelBackend):
    """The mixin for a backend whose gradients are its components' VJPs (the NumPy oracle)."""

    def lm_loss_and_grads(self, model, params, inputs, targets, state=None):
        """(loss, gradient of every parameter, final state) by chained VJPs."""
        return loss_and_grads_chained(self, model, params, inputs, targets, state)


# -- the calls the properties make: NumPy in and out, failures named ------------------------


def _state_out(backend: Any, what: str, model: CharLM, st: Any, dtype: str, label: str
               ) -> tuple[np.ndarray, ...]:
    k = 2 if model.cell == "lstm" else 1
    if not isinstance(st, tuple | list) or len(st) != k:
        raise BackendError(f"{backend.id}: {what} returned {type(st).__name__} as {label}, "
                           f"expected {k} array(s)")
    return tuple(checked_array(backend, what, s, dtype, f"{label}[{j}]") for j, s in enumerate(st))


def call_lm_loss_and_grads(backend: Any, model: CharLM, params: Sequence[np.ndarray],
                           inputs: np.ndarray, targets: np.ndarray,
                           state: Sequence[np.ndarray] | None, dtype: str
                           ) -> tuple[np.ndarray, list[np.ndarray], tuple[np.ndarray, ...]]:
    """(loss, gradients, final state) of the backend's lm_loss_and_grads, NumPy in and out."""
    what = "lm_loss_and_grads"
    np_params = to_native(backend, params, dtype)
    ns = to_native(backend, state, dtype)
    out = guard(backend, what, method(backend, what), model, np_params,
                 backend.asarray(inputs), backend.asarray(targets),
                 None if ns is None else tuple(ns))
    if not isinstance(out, tuple | list) or len(out) != 3:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(loss, grads, state)")
    value, grads, st = out
    if len(grads) != len(params):
        raise BackendError(f"{backend.id}: {what} returned {len(grads)} gradients for "
                           f"{len(params)} parameters")
    return (checked_array(backend, what, value, dtype, "the loss"),
            [checked_array(backend, what, g, dtype, f"grads[{i}]") for i, g in enumerate(grads)],
            _state_out(backend, what, model, st, dtype, "the state"))


def call_train_lm(backend: Any, model: CharLM, params: Sequence[np.ndarray],
                  batches: Sequence[tuple[np.ndarray, np.ndarray]], optimizer: str,
                  hyper: dict[str, Any], state: Sequence[np.ndarray] | None,
                  max_norm: float | None, clip_eps: str, dtype: str
                  ) -> tuple[list[np.ndarray], np.ndarray, list[tuple[np.ndarray, ...]]]:
    """(final params, loss history, state after every batch) of the backend's train_lm with
    its optimizer ``optimizer``, NumPy in and out."""
    what = "train_lm"
    opt = guard(backend, f"optimizer {optimizer}", backend.optimizer, optimizer, **hyper)
    native_batches = [(backend.asarray(i), backend.asarray(t)) for i, t in batches]
    ns = to_native(backend, state, dtype)
    out = guard(backend, what, method(backend, what), model, to_native(backend, params, dtype),
                 native_batches, opt, None if ns is None else tuple(ns), max_norm, clip_eps)
    if not isinstance(out, tuple | list) or len(out) != 3:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(params, history, states)")
    final, history, states = out
    if len(final) != len(params) or len(states) != len(batches) or len(history) != len(batches):
        raise BackendError(f"{backend.id}: {what} returned {len(final)} parameters, "
                           f"{len(history)} losses and {len(states)} states for "
                           f"{len(params)} parameters and {len(batches)} batches")
    return ([checked_array(backend, what, p, dtype, f"params[{i}]") for i, p in enumerate(final)],
            np.asarray(history, dtype=np.float64),
            [_state_out(backend, what, model, s, dtype, f"the state after batch {k + 1}")
             for k, s in enumerate(states)])
