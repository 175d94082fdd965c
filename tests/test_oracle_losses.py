"""The losses of reference.losses certify themselves: every hand-written VJP agrees with
float64 central finite differences (tests/fd.py explains the check and its bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import losses as L
from tests.fd import GAP, arrays, assert_vjp_matches_fd, away_from, dot, finite, small_shapes, unit

REDUCTIONS = ["mean", "sum", "none"]


def _cotangent(data, red: str, shape) -> np.ndarray:
    return data.draw(unit(shape) if red == "none" else finite(-2, 2).map(np.asarray),
                     label="cotangent")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "huber_loss", "bce_with_logits"])
@given(data=st.data())
def test_elementwise_loss_vjp_matches_fd(data, loss, reduction):
    f, f_vjp = getattr(L, loss), getattr(L, loss + "_vjp")
    shape = data.draw(small_shapes, label="shape")
    kw = {"reduction": reduction}
    if loss == "bce_with_logits":
        target = data.draw(arrays(shape, 0, 1), label="target")
        pred = data.draw(arrays(shape, -20, 20), label="logits")
    else:
        target = data.draw(arrays(shape, -5, 5), label="target")
        kinks: tuple[float, ...] = ()
        if loss == "l1_loss":
            kinks = (0.0,)
        elif loss == "huber_loss":
            kw["delta"] = data.draw(finite(0.1, 3.0), label="delta")
            kinks = (-kw["delta"], kw["delta"])
        # twice the gap: target + diff rounds, and a diff of exactly GAP would end up below it
        diff = away_from(data.draw(arrays(shape, -6, 6), label="pred - target"), kinks, 2 * GAP)
        pred = target + diff
        assert np.all([np.abs(np.abs(pred - target) - abs(k)) >= GAP for k in kinks])
    t = data.draw(unit(shape), label="tangent")
    c = _cotangent(data, reduction, shape)
    (dp,) = f_vjp(pred, target, c, **kw)
    magnitude = 0.0
    if loss == "bce_with_logits":  # max(x, 0) - x y cancels: terms of size |x| and |x y|
        per_element = np.abs(c) / (pred.size if reduction == "mean" else 1)
        magnitude = dot(np.broadcast_to(per_element, shape), np.abs(pred) * (1 + np.abs(target)))
    assert_vjp_matches_fd(lambda p: f(p, target, **kw), [pred], [t], c, [dp], magnitude)


def _class_case(data, lo: float, hi: float):
    n = data.draw(st.integers(1, 4), label="n")
    k = data.draw(st.integers(1, 5), label="k")
    scores = data.draw(arrays((n, k), lo, hi), label="scores")
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)), label="labels")
    weight = data.draw(st.none() | arrays((k,), 0.1, 3.0), label="weight")
    return scores, labels, weight


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data())
def test_cross_entropy_vjp_matches_fd(data, reduction):
    logits, labels, weight = _class_case(data, -10, 10)
    e = data.draw(st.sampled_from([0.0, 1.0]) | finite(0.0, 1.0), label="label_smoothing")
    kw = dict(reduction=reduction, label_smoothing=e, weight=weight)
    t = data.draw(unit(logits.shape), label="tangent")
    c = _cotangent(data, reduction, labels.shape)
    (dx,) = L.cross_entropy_vjp(logits, labels, c, **kw)
    # row i: sum_k q_ik (x_ik - logsumexp_i), q_ik <= max w, terms up to 2 max|x_i| + log K
    # cancel; 'mean' divides by sum_i w[y_i]
    w = np.ones(logits.shape[1]) if weight is None else weight
    per_row = np.broadcast_to(np.abs(c) / (w[labels].sum() if reduction == "mean" else 1),
                              labels.shape)
    terms = np.max(w) * (2 * np.max(np.abs(logits), axis=1) + math.log(logits.shape[1]))
    assert_vjp_matches_fd(lambda x: L.cross_entropy(x, labels, **kw), [logits], [t], c, [dx],
                          dot(per_row, terms))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data())
def test_nll_loss_vjp_matches_fd(data, reduction):
    log_probs, labels, weight = _class_case(data, -10, 0)
    kw = dict(reduction=reduction, weight=weight)
    t = data.draw(unit(log_probs.shape), label="tangent")
    c = _cotangent(data, reduction, labels.shape)
    (dx,) = L.nll_loss_vjp(log_probs, labels, c, **kw)
    assert_vjp_matches_fd(lambda x: L.nll_loss(x, labels, **kw), [log_probs], [t], c, [dx])
