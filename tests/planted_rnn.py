"""Planted bugs of the recurrent cells and the embedding, each modelled on a real one (see
tests/planted.py): the oracle's adapter with one component broken as ports of weights
between layouts, hand-written cells and scatter kernels break it."""

from __future__ import annotations

import numpy as np

from reference import embedding as E
from reference import recurrent as R
from tests.planted import NumpyBackend, Planted


def _swap_g_o(v):
    """An LSTM weight or bias with its g and o blocks swapped (gates read as i, f, o, g)."""
    if v is None:
        return None
    v = np.asarray(v)
    hid = v.shape[0] // 4
    return np.concatenate([v[:2 * hid], v[3 * hid:], v[2 * hid:3 * hid]], axis=0)


class LstmGatesPermuted(Planted):
    """LSTM weights ported from a layout with gates i, f, o, g (Keras' is i, f, c, o;
    cuDNN-style exports differ) into torch's i, f, g, o without reordering the blocks."""

    name, component = "planted-lstm-gates-permuted", "lstm_cell"

    def lstm_cell(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        return R.lstm_cell(x, h, c, *(_swap_g_o(v) for v in (w_ih, w_hh, b_ih, b_hh)))

    def _vjp(x, h, c, w_ih, w_hh, b_ih, b_hh, gh, gc):
        dx, dh, dc, *dw = R.lstm_cell_vjp(x, h, c, *(_swap_g_o(v) for v in (w_ih, w_hh, b_ih,
                                                                               b_hh)), gh, gc)
        return (dx, dh, dc, *(_swap_g_o(v) for v in dw))  # the swap is its own inverse

    vjps = {**NumpyBackend.vjps, "lstm_cell": _vjp}


class LstmForgetBiasTwice(Planted):
    """Two biases folded into one for a framework with a single bias (b_ih + b_hh), then the
    forget gate's hidden bias added again where the framework adds its own forget bias."""

    name, component = "planted-lstm-forget-bias-twice", "lstm_cell"

    def lstm_cell(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        if b_hh is not None:
            hid = np.shape(w_hh)[1]
            b_ih = np.array(b_ih if b_ih is not None else np.zeros_like(b_hh), dtype=np.float64)
            b_ih[hid:2 * hid] += np.asarray(b_hh)[hid:2 * hid]
        return R.lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh)


class LstmCellCotangentIgnored(Planted):
    """The LSTM cell's backward takes the cotangent of h' only: the one of c' (the cell
    state carried to the next step) is dropped, as a VJP interface with one cotangent per
    component would."""

    name, component = "planted-lstm-c-cotangent-ignored", "lstm_cell"

    def _vjp(x, h, c, w_ih, w_hh, b_ih, b_hh, gh, gc):
        return R.lstm_cell_vjp(x, h, c, w_ih, w_hh, b_ih, b_hh, gh, None)

    vjps = {**NumpyBackend.vjps, "lstm_cell": _vjp}


class GruResetBeforeClaimedAfter(Planted):
    """A GRU that applies the reset gate before the hidden matmul ((r h) W_hn^T + b_hn, the
    original and Keras reset_after=False form) whatever it is asked, so the torch and flax
    convention it claims (reset_after=True) is computed wrongly."""

    name, component = "planted-gru-reset-before", "gru_cell"

    def gru_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
        return R.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after=False)


class GruHiddenCandidateBiasDropped(Planted):
    """The GRU's b_hn (the bias of the hidden candidate inside the reset gate) is dropped:
    flax.nnx.GRUCell fuses its hidden Dense without bias (flax#5594), which a zero
    initialisation hides until the bias is trained or ported."""

    name, component = "planted-gru-b-hn-dropped", "gru_cell"

    def gru_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
        if b_hh is not None:
            b_hh = np.array(b_hh, dtype=np.float64)
            b_hh[2 * np.shape(w_hh)[1]:] = 0.0
        return R.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after=reset_after)


class GruUpdateGateSwapped(Planted):
    """h' = z n + (1 - z) h: the update gate interpolates the other way round (the two
    conventions of the GRU papers; torch, flax and Keras all keep z h + (1 - z) n)."""

    name, component = "planted-gru-update-gate-swapped", "gru_cell"

    def gru_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
        # with z' = 1 - z: negate z's pre-activation (its weights and biases)
        hid = np.shape(w_hh)[1]

        def flip(v):
            if v is None:
                return None
            v = np.array(v, dtype=np.float64)
            v[hid:2 * hid] *= -1.0
            return v

        return R.gru_cell(x, h, flip(w_ih), flip(w_hh), flip(b_ih), flip(b_hh),
                          reset_after=reset_after)


class ReluRnnComputesTanh(Planted):
    """An RNN cell that drops its nonlinearity argument (always tanh, the default), as a
    port to a cell class with a fixed activation does."""

    name, component = "planted-rnn-relu-as-tanh", "rnn_cell"

    def rnn_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
        return R.rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh)


class EmbeddingGradientOverwritten(Planted):
    """The embedding's backward scatters with assignment, dweight[ids] = g: a repeated id
    keeps the cotangent of its last position instead of their sum (NumPy fancy-index
    assignment, a non-atomic GPU scatter)."""

    name, component = "planted-embedding-grad-overwritten", "embedding"

    def _vjp(weight, ids, g, padding_idx=None):
        w = np.asarray(weight, dtype=np.float64)
        dw = np.zeros_like(w)
        dw[np.asarray(ids).ravel()] = np.asarray(g, dtype=np.float64).reshape(-1, w.shape[1])
        if padding_idx is not None:
            dw[padding_idx] = 0.0
        return (dw,)

    vjps = {**NumpyBackend.vjps, "embedding": _vjp}


class EmbeddingPaddingRowTrained(Planted):
    """The padding row receives its gradient: padding_idx is honoured by the forward's
    caller (an initial zero row) but not by the backward."""

    name, component = "planted-embedding-padding-trained", "embedding"

    def _vjp(weight, ids, g, padding_idx=None):
        return E.embedding_vjp(weight, ids, g, padding_idx=None)

    vjps = {**NumpyBackend.vjps, "embedding": _vjp}


RNN_PLANTED = [LstmGatesPermuted, LstmForgetBiasTwice, LstmCellCotangentIgnored,
               GruResetBeforeClaimedAfter, GruHiddenCandidateBiasDropped, GruUpdateGateSwapped,
               ReluRnnComputesTanh, EmbeddingGradientOverwritten, EmbeddingPaddingRowTrained]
"""Every planted-bug backend of the recurrent family."""
