"""Planted bugs of the character-level language model's training, each modelled on a real
one (see tests/planted.py): the oracle's adapter with its sequence layers and its language
model (the NumPy composition, backends/compose_lm.py) and one thing in the model or the
truncated-BPTT loop broken as training scripts break it. Each must make
properties/test_language_model.py fail (component 'char_lm')."""

from __future__ import annotations

import numpy as np

from backends.compose_lm import ChainedLanguageModel
from backends.recurrent import NumpyRecurrent
from reference import dense as D
from reference import embedding as E
from reference import language_model as LM
from reference import losses as Lo
from reference import recurrent as R
from tests.planted import Planted


class PlantedLM(Planted, NumpyRecurrent, ChainedLanguageModel):
    """Base: train_lm as backends/compose_lm.train, with the hooks a bug overrides."""

    component = "char_lm"

    def train_lm(self, model, params, batches, optimizer, state=None, max_norm=None,
                 clip_eps="torch"):
        p = list(params)
        opt_state = optimizer.init(p)
        history, states, carried, prev = [], [], state, None
        for batch in batches:
            start = self.start_state(model, carried)
            value, grads, carried = self.batch_grads(model, p, batch, start, prev)
            prev = (p, batch, start)
            history.append(float(value))
            states.append(tuple(carried))
            p, opt_state = self.step(optimizer, grads, opt_state, p, max_norm, clip_eps)
        return p, history, states

    def start_state(self, model, carried):
        """The state a batch starts from: the one the previous batch ended in."""
        return carried

    def batch_grads(self, model, p, batch, start, prev):
        """(loss, gradients, final state) of one batch; ``prev``: (params, batch, start) of
        the previous one, or None."""
        return self.lm_loss_and_grads(model, p, batch[0], batch[1], start)

    def step(self, optimizer, grads, opt_state, p, max_norm, clip_eps):
        """Clip the gradients by their global norm, then step."""
        if max_norm is not None:
            grads = self.clip_by_global_norm(grads, max_norm, clip_eps)
        return optimizer.update(grads, opt_state, p)


class LossSummedOverTime(PlantedLM):
    """The loss averaged over the batch but summed over the time steps,
    sum_t criterion(logits[t], targets[t]) (char-RNN tutorials' loop): T times the mean over
    every position, and so are its gradients."""

    name = "planted-lm-loss-summed-over-time"

    def lm_loss_and_grads(self, model, params, inputs, targets, state=None):
        value, grads, final = super().lm_loss_and_grads(model, params, inputs, targets, state)
        t = np.shape(inputs)[0]
        return value * t, [g * t for g in grads], final


class StateResetEachBatch(PlantedLM):
    """The state reset to zeros at every batch (init_hidden inside the training loop)
    instead of carried from the previous batch: the batches are not consecutive any more."""

    name = "planted-lm-state-reset-each-batch"

    def start_state(self, model, carried):
        return None


def _layers(model, p):
    return [tuple(p[1 + 4 * k: 5 + 4 * k]) for k in range(model.layers)]


def _forward(model, p, inputs, start):
    """(x, y, final state, tape) of the oracle's layers from ``start`` (None: zeros)."""
    st = LM.zero_state(model, inputs.shape[1]) if start is None else start
    x = E.embedding(p[0], inputs)
    if model.cell == "lstm":
        y, h, c, tape = R.lstm_forward(x, st[0], st[1], _layers(model, p))
        return x, y, (h, c), tape
    y, h, tape = R.gru_forward(x, st[0], _layers(model, p), reset_after=model.reset_after)
    return x, y, (h,), tape


class StateNotDetached(PlantedLM):
    """The carried state is not detached (no repackage_hidden; retain_graph=True keeps the
    graph): batch k's gradient also flows back through batch k - 1, as that batch ran (its
    parameters then), into the gradients of batch k's step."""

    name = "planted-lm-state-not-detached"

    def batch_grads(self, model, p, batch, start, prev):
        inputs, targets = batch
        t, n = inputs.shape
        _, y, final, tape = _forward(model, p, inputs, start)
        y2 = y.reshape(t * n, model.hidden)
        labels = targets.reshape(-1)
        logits = D.dense(y2, p[-2], p[-1])
        value = float(Lo.cross_entropy(logits, labels))
        (g,) = Lo.cross_entropy_vjp(logits, labels, np.float64(1.0))
        gy, d_w, d_b = D.dense_vjp(y2, p[-2], p[-1], g)
        dx, *d_start, dlayers = R.sequence_backward(tape, gy.reshape(t, n, model.hidden))
        (d_emb,) = E.embedding_vjp(p[0], inputs, dx)
        grads = [d_emb, *(g_ for gs in dlayers for g_ in gs), d_w, d_b]
        if prev is not None:  # on into the previous batch's graph
            p0, (inputs0, _), start0 = prev
            _, _, _, tape0 = _forward(model, p0, inputs0, start0)
            dx0, *_, dlayers0 = R.sequence_backward(tape0, None, *d_start)
            (d_emb0,) = E.embedding_vjp(p0[0], inputs0, dx0)
            extra = [d_emb0, *(g_ for gs in dlayers0 for g_ in gs)]
            grads = [a + b for a, b in zip(grads, extra, strict=False)] + grads[len(extra):]
        return value, grads, final


class ClipPerParameter(PlantedLM):
    """Gradients clipped one parameter at a time (clip_grad_norm_ called in a loop over
    parameters): each keeps a norm up to max_norm, so the global norm is not bounded and the
    parameters' relative scale changes."""

    name = "planted-lm-clip-per-parameter"

    def step(self, optimizer, grads, opt_state, p, max_norm, clip_eps):
        if max_norm is not None:
            grads = [self.clip_by_global_norm([g], max_norm, clip_eps)[0] for g in grads]
        return optimizer.update(grads, opt_state, p)


class ClipAfterStep(PlantedLM):
    """clip_grad_norm_ called after optimizer.step(): the step takes the unclipped gradients
    (the clipping changes .grad when it is too late)."""

    name = "planted-lm-clip-after-step"

    def step(self, optimizer, grads, opt_state, p, max_norm, clip_eps):
        out = optimizer.update(grads, opt_state, p)
        if max_norm is not None:
            self.clip_by_global_norm(grads, max_norm, clip_eps)
        return out


LM_PLANTED = [LossSummedOverTime, StateResetEachBatch, StateNotDetached, ClipPerParameter,
              ClipAfterStep]
"""Every planted-bug backend of the language model."""
