"""The language model's rounding, for the tolerance policy, and the oracle's training trace.

``NoisyLM`` runs reference/language_model.py's loss and gradients one oracle component at a
time (embedding; the recurrent layers one cell step at a time, by
properties.sequence_terms.Stepwise; dense; cross-entropy; and their VJPs: BPTT over the
cells' VJPs). With a noise Generator every result moves by DELTA times the magnitude of the
terms its formula sums (properties/specs.py forward_terms and vjp_terms: the policy's M) in
a random direction: what a backend's rounding of each step is, carried through every
later step (and, backwards, every earlier one); properties.tolerance.spread is the largest
change of the results over a few such runs divided by DELTA. Without noise NoisyLM equals
reference.language_model.loss_and_grads (tests/test_compose_lm.py).

``train_trace`` is reference.language_model.train that also returns the state after every
batch (the carried states the properties compare); with noise its clipped gradients and new
parameters move by DELTA times their magnitudes too (a backend stores them in its dtype).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from properties.sequence_terms import Stepwise
from properties.specs import forward_terms, vjp_terms
from properties.tolerance import DELTA, noisy_update
from reference import clipping as Cl
from reference import dense as D
from reference import embedding as E
from reference import language_model as LM
from reference import losses as Lo
from reference.optimizers import Optimizer

State = tuple[np.ndarray, ...]


class NoisyLM:
    """The oracle's CharLM step by step; ``noise``: a Generator for the rounding probes."""

    def __init__(self, model: LM.CharLM, noise: np.random.Generator | None = None) -> None:
        self.model, self.noise = model, noise
        self.layers = Stepwise(model.cell, reset_after=model.reset_after, noise=noise)

    def _jitter(self, values: Sequence[Any], magnitudes: Any) -> list[Any]:
        """``values`` moved by DELTA times their magnitudes in random directions (noise)."""
        if self.noise is None or magnitudes is None:
            return list(values)
        ms = magnitudes if isinstance(magnitudes, list | tuple) else [magnitudes]
        moved = [v if v is None or m is None
                 else v + DELTA * np.abs(m) * self.noise.standard_normal(np.shape(v))
                 for v, m in zip(values, ms, strict=False)]
        return moved + list(values[len(ms):])

    def loss_and_grads(self, params: Sequence[np.ndarray], inputs: np.ndarray,
                       targets: np.ndarray, state: Sequence[np.ndarray] | None = None
                       ) -> tuple[float, list[np.ndarray], State]:
        """reference.language_model.loss_and_grads, one component at a time."""
        m = self.model
        p = [np.asarray(a, dtype=np.float64) for a in params]
        t, n = inputs.shape
        st = LM.zero_state(m, n) if state is None else tuple(np.asarray(s, float) for s in state)
        layers = [tuple(p[1 + 4 * k: 5 + 4 * k]) for k in range(m.layers)]
        emb = E.embedding(p[0], inputs)
        (ys, *finals), tape = self.layers.forward(emb, st, layers)
        y2 = ys.reshape(t * n, m.hidden)
        labels = targets.reshape(-1)
        ce = {"labels": labels, "reduction": "mean"}
        logits = self._jitter([D.dense(y2, p[-2], p[-1])],
                              forward_terms("dense", (y2, p[-2], p[-1]), {}))[0]
        value = self._jitter([Lo.cross_entropy(logits, labels)],
                             forward_terms("cross_entropy", (logits,), ce))[0]
        one = np.float64(1.0)
        g_logits = self._jitter(list(Lo.cross_entropy_vjp(logits, labels, one)),
                                vjp_terms("cross_entropy", (logits,), ce, one))[0]
        g_y2, d_w, d_b = self._jitter(list(D.dense_vjp(y2, p[-2], p[-1], g_logits)),
                                      vjp_terms("dense", (y2, p[-2], p[-1]), {}, g_logits))
        g_y = g_y2.reshape(t, n, m.hidden)
        g_emb, *_, dlayers = self.layers.backward(emb, st, tape, (g_y, *(None for _ in st)))
        (d_emb,) = self._jitter(list(E.embedding_vjp(p[0], inputs, g_emb)),
                                vjp_terms("embedding", (p[0],), {"ids": inputs}, g_emb))
        grads = [d_emb, *(g for dw in dlayers for g in dw), d_w, d_b]
        return float(value), grads, tuple(finals)


def train_trace(model: LM.CharLM, params: Sequence[np.ndarray],
                batches: Sequence[tuple[np.ndarray, np.ndarray]], optimizer: Optimizer,
                state: Sequence[np.ndarray] | None = None, max_norm: float | None = None,
                clip_eps: str = "torch", noise: np.random.Generator | None = None
                ) -> tuple[list[float], list[State], list[np.ndarray]]:
    """reference.language_model.train (loss_and_grads, clip_by_global_norm, the optimizer's
    step, the state carried) returning (loss history, the state after every batch, final
    params). With ``noise``, loss and gradients come from NoisyLM, and the clipped gradients
    (when clipping changes them: the norm's scale and each product) and the new parameters
    q (by |p| + |q - p|) move by DELTA times their magnitudes."""
    lag: Callable[..., Any] = (LM.loss_and_grads if noise is None else
                               lambda *a: NoisyLM(model, noise).loss_and_grads(*a[1:]))
    p = [np.asarray(a, dtype=np.float64) for a in params]
    opt_state = optimizer.init(p)
    history, states = [], []
    st = state
    for inputs, targets in batches:
        value, grads, st = lag(model, p, inputs, targets, st)
        if max_norm is not None:
            clipped = Cl.clip_by_global_norm(grads, max_norm, clip_eps)
            if noise is not None and any(np.any(c != g) for c, g in zip(clipped, grads,
                                                                         strict=True)):
                scale = 1.0 + DELTA * noise.standard_normal()
                clipped = [c * scale + DELTA * np.abs(c) * noise.standard_normal(c.shape)
                           for c in clipped]
            grads = clipped
        history.append(value)
        states.append(tuple(st))
        p, opt_state = noisy_update(optimizer, grads, opt_state, p, noise)
    return history, states, p
