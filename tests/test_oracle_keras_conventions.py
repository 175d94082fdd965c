"""The three Keras 3 conventions of the oracle, against hand computations: Adam's epsilon
before the bias correction (eps_placement='raw'), decoupled weight decay on every optimizer
(weight_decay_mode='decoupled'), and cross-entropy class weights per example
(class_weighting='per_example'), with its gradient checked by central differences.

Keras' formulas, transcribed from keras/src (3.x) for the hand computations:
- Adam.update_step: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); p -= alpha m / (sqrt(v) + eps)
  (AMSGrad: v replaced by the running max of the raw v).
- BaseOptimizer._apply_weight_decay, run before update_step: p <- p - p wd lr.
- Loss.__call__ with class_weight (sample_weight[i] = class_weight[y_i]): the per-example
  losses times the sample weights, summed, divided by N ('sum_over_batch_size').
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from reference import losses as L
from reference.optimizers import OPTIMIZERS, hyperparameters, make_optimizer


def _trajectory(name: str, params: list[float], grads: list[float], **hyper) -> list[float]:
    """A scalar parameter after every step."""
    opt = make_optimizer(name, **hyper)
    p = [np.array([params[0]])]
    state, out = opt.init(p), []
    for g in grads:
        p, state = opt.update([np.array([g])], state, p)
        out.append(float(p[0][0]))
    return out


# -- Adam: eps before the bias correction -----------------------------------------------------
# b1 = 0.5, b2 = 0.75, lr = 1, eps = 0.5, p0 = 0, g1 = 2: m = 1, v = 1, 1 - b1 = 0.5,
# 1 - b2 = 0.25. Keras: alpha = sqrt(0.25) / 0.5 = 1, p1 = -1 / (1 + 0.5) = -2/3.
# torch: m_hat = 2, v_hat = 4, p1 = -2 / (2 + 0.5) = -4/5.
ROUND = {"lr": 1.0, "b1": 0.5, "b2": 0.75, "eps": 0.5}


def _keras_adam(grads: list[float], p: float, lr: float, b1: float, b2: float, eps: float,
                amsgrad: bool = False, wd: float = 0.0) -> list[float]:
    """Keras' Adam on a scalar, as written in keras/src/optimizers/adam.py."""
    m = v = v_hat = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        p = p - p * wd * lr
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        v_hat = max(v_hat, v)
        p -= m * alpha / (math.sqrt(v_hat if amsgrad else v) + eps)
        out.append(p)
    return out


def test_adam_raw_eps_first_step_by_hand():
    assert _trajectory("adam", [0.0], [2.0], **ROUND, eps_placement="raw") == \
        pytest.approx([-2 / 3], rel=1e-15)
    assert _trajectory("adam", [0.0], [2.0], **ROUND) == pytest.approx([-4 / 5], rel=1e-15)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_raw_eps_follows_keras(name):
    grads = [2.0, 0.0, -1.0, 0.5, 3.0]
    wd = 0.1 if name == "adamw" else 0.0
    got = _trajectory(name, [1.0], grads, **ROUND, weight_decay=wd, eps_placement="raw")
    assert got == pytest.approx(_keras_adam(grads, 1.0, **ROUND, wd=wd), rel=1e-14)
    # the torch form is a different optimizer here
    assert _trajectory(name, [1.0], grads, **ROUND, weight_decay=wd) != pytest.approx(got, rel=1e-3)


def test_amsgrad_with_raw_eps_is_keras_amsgrad():
    """Keras' AMSGrad keeps the max of the raw v (amsgrad='torch'): at step 2 with g = 0,
    v = 0.75 < max 1, so p2 = p1 - sqrt(1 - 0.75^2) / 0.75 * 0.5 / (sqrt(1) + 0.5)."""
    got = _trajectory("adam", [0.0], [2.0, 0.0], **ROUND, amsgrad="torch", eps_placement="raw")
    p2 = -2 / 3 - math.sqrt(1 - 0.75**2) / 0.75 * 0.5 / 1.5
    assert got == pytest.approx([-2 / 3, p2], rel=1e-15)
    assert got == pytest.approx(_keras_adam([2.0, 0.0], 0.0, **ROUND, amsgrad=True), rel=1e-15)


def test_raw_and_corrected_agree_without_eps():
    grads = [0.3, -2.0, 1.0]
    hyper = {**ROUND, "eps": 0.0}
    assert _trajectory("adam", [1.0], grads, **hyper, eps_placement="raw") == \
        pytest.approx(_trajectory("adam", [1.0], grads, **hyper), rel=1e-14)


# -- decoupled weight decay -------------------------------------------------------------------
def test_sgd_decoupled_decay_by_hand():
    """lr 0.1, momentum 0.5, wd 0.5, p0 = 2, g = 1, 1. Keras: p <- p - p wd lr, m <- mu m - lr g,
    p <- p + m: p1 = 1.9 - 0.1 = 1.8, p2 = 1.71 - 0.15 = 1.56. L2 (torch): g1 = 2, b1 = 2,
    p1 = 1.8; g2 = 1 + 0.9 = 1.9, b2 = 1 + 1.9 = 2.9, p2 = 1.8 - 0.29 = 1.51."""
    hyper = {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.5}
    assert _trajectory("sgd", [2.0], [1.0, 1.0], **hyper, weight_decay_mode="decoupled") == \
        pytest.approx([1.8, 1.56], rel=1e-15)
    assert _trajectory("sgd", [2.0], [1.0, 1.0], **hyper) == pytest.approx([1.8, 1.51], rel=1e-15)


def test_sgd_nesterov_decoupled_decay_by_hand():
    """Keras' Nesterov step p <- p + mu m - lr g after the decay: p1 = 1.9 + 0.5 (-0.1) - 0.1
    = 1.75; p2 = 1.6625 + 0.5 (-0.15) - 0.1 = 1.4875."""
    got = _trajectory("sgd", [2.0], [1.0, 1.0], lr=0.1, momentum=0.5, nesterov=True,
                      weight_decay=0.5, weight_decay_mode="decoupled")
    assert got == pytest.approx([1.75, 1.4875], rel=1e-15)


def test_rmsprop_decoupled_decay_by_hand():
    """alpha 0.5, eps 0, lr 0.1, wd 0.5, p0 = 2, g = 1: v = 0.5, p1 = 1.9 - 0.1 / sqrt(0.5);
    L2: g = 2, v = 2, p1 = 2 - 0.2 / sqrt(2)."""
    hyper = {"lr": 0.1, "alpha": 0.5, "eps": 0.0, "weight_decay": 0.5}
    assert _trajectory("rmsprop", [2.0], [1.0], **hyper, weight_decay_mode="decoupled") == \
        pytest.approx([1.9 - 0.1 / math.sqrt(0.5)], rel=1e-15)
    assert _trajectory("rmsprop", [2.0], [1.0], **hyper) == \
        pytest.approx([2 - 0.2 / math.sqrt(2)], rel=1e-15)


def test_adagrad_decoupled_decay_uses_the_decayed_learning_rate():
    """lr 0.1, lr_decay 1, eps 0, wd 0.5, p0 = 2, g = 1, 1: p1 = 2 (1 - 0.05) - 0.1 / 1 = 1.8;
    lr_2 = 0.05: p2 = 1.8 (1 - 0.025) - 0.05 / sqrt(2). L2: g1 = 2, s = 4, p1 = 1.9."""
    hyper = {"lr": 0.1, "lr_decay": 1.0, "eps": 0.0, "weight_decay": 0.5}
    assert _trajectory("adagrad", [2.0], [1.0, 1.0], **hyper, weight_decay_mode="decoupled") == \
        pytest.approx([1.8, 1.8 * 0.975 - 0.05 / math.sqrt(2)], rel=1e-15)
    assert _trajectory("adagrad", [2.0], [1.0], **hyper) == pytest.approx([1.9], rel=1e-15)


def test_adam_decoupled_decay_is_adamw():
    """p0 = 1, wd 0.1, lr 1: p1 = 0.9 - 4/5 = 0.1, and the trajectory is AdamW's."""
    grads = [2.0, -1.0, 0.5]
    hyper = {**ROUND, "weight_decay": 0.1}
    got = _trajectory("adam", [1.0], grads, **hyper, weight_decay_mode="decoupled")
    assert got[0] == pytest.approx(0.1, rel=1e-14)
    assert got == _trajectory("adamw", [1.0], grads, **hyper)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_decay_modes_agree_without_decay(name):
    grads = [0.7, -0.2, 1.5]
    assert _trajectory(name, [1.0], grads, lr=0.1, weight_decay_mode="decoupled") == \
        _trajectory(name, [1.0], grads, lr=0.1)


@pytest.mark.parametrize(("name", "arg"), [("sgd", "weight_decay_mode"),
                                           ("rmsprop", "weight_decay_mode"),
                                           ("adagrad", "weight_decay_mode"),
                                           ("adam", "weight_decay_mode"),
                                           ("adam", "eps_placement"), ("adamw", "eps_placement")])
def test_unknown_convention_values_are_named(name, arg):
    with pytest.raises(ValueError, match=f"{arg}: expected one of"):
        make_optimizer(name, lr=0.1, **{arg: "keras"})


def test_adapters_receive_public_hyperparameters_only():
    """hyperparameters() hands adapters the parameters of the public optimizer functions:
    AdamW has no weight_decay_mode (it is decoupled), and no internal switch exists."""
    assert set(hyperparameters("adam", lr=0.1)) == {
        "lr", "b1", "b2", "eps", "eps_root", "weight_decay", "amsgrad", "eps_placement",
        "weight_decay_mode"}
    assert "weight_decay_mode" not in hyperparameters("adamw", lr=0.1)
    for name in OPTIMIZERS:
        assert "decoupled_weight_decay" not in hyperparameters(name, lr=0.1)
    with pytest.raises(ValueError, match="decoupled_weight_decay"):
        make_optimizer("adam", lr=0.1, decoupled_weight_decay=True)


# -- cross-entropy class weights per example ------------------------------------------------
# logits [[0, ln 3], [ln 3, 0]] have softmax [[1/4, 3/4], [3/4, 1/4]]; labels [1, 0]; class
# weights w = [2, 4]; K = 2.
LOGITS = np.array([[0.0, math.log(3)], [math.log(3), 0.0]])
LABELS = np.array([1, 0])
W = np.array([2.0, 4.0])
LOG_P = np.log(np.array([[0.25, 0.75], [0.75, 0.25]]))


def _keras_ce(e: float) -> np.ndarray:
    """Keras: the smoothed target (1 - e) onehot + e / K, the per-example loss times the
    sample weight class_weight[y_i]."""
    target = np.array([[0.0, 1.0], [1.0, 0.0]]) * (1 - e) + e / 2
    return -(target * LOG_P).sum(axis=1) * W[LABELS]


@pytest.mark.parametrize("e", [0.0, 0.5, 0.2])
def test_per_example_weights_by_hand(e):
    kw = {"label_smoothing": e, "weight": W, "class_weighting": "per_example"}
    per = _keras_ce(e)
    assert L.cross_entropy(LOGITS, LABELS, "none", **kw) == pytest.approx(per, rel=1e-15)
    assert L.cross_entropy(LOGITS, LABELS, "sum", **kw) == pytest.approx(per.sum(), rel=1e-15)
    assert L.cross_entropy(LOGITS, LABELS, "mean", **kw) == pytest.approx(per.sum() / 2, rel=1e-15)


def test_per_class_weights_by_hand_differ():
    """e = 0.5. torch: q_1 = 0.5 w[1] onehot + 0.25 w = [0, 2] + [0.5, 1] = [0.5, 3],
    q_2 = [1, 0] + [0.5, 1] = [1.5, 1]; 'mean' divides by w[1] + w[0] = 6. Keras:
    q_1 = 4 [0.25, 0.75] = [1, 3], q_2 = 2 [0.75, 0.25] = [1.5, 0.5]; 'mean' divides by 2."""
    torch_per = -np.array([0.5 * LOG_P[0, 0] + 3 * LOG_P[0, 1], 1.5 * LOG_P[1, 0] + 1 * LOG_P[1, 1]])
    keras_per = -np.array([1 * LOG_P[0, 0] + 3 * LOG_P[0, 1], 1.5 * LOG_P[1, 0] + 0.5 * LOG_P[1, 1]])
    kw = {"label_smoothing": 0.5, "weight": W}
    assert L.cross_entropy(LOGITS, LABELS, "none", **kw) == pytest.approx(torch_per, rel=1e-15)
    assert L.cross_entropy(LOGITS, LABELS, **kw) == pytest.approx(torch_per.sum() / 6, rel=1e-15)
    assert L.cross_entropy(LOGITS, LABELS, **kw, class_weighting="per_example") == \
        pytest.approx(keras_per.sum() / 2, rel=1e-15)


def test_per_example_gradient_by_hand():
    """e = 0: d loss_i / d x_i = w[y_i] (softmax(x_i) - onehot(y_i)); row 1: 4 ([1/4, 3/4] -
    [0, 1]) = [1, -1], row 2: 2 ([3/4, 1/4] - [1, 0]) = [-1/2, 1/2]; 'mean' halves both."""
    (d,) = L.cross_entropy_vjp(LOGITS, LABELS, np.float64(1.0), weight=W,
                               class_weighting="per_example")
    assert d == pytest.approx(np.array([[0.5, -0.5], [-0.25, 0.25]]), rel=1e-14)


def _fd_directional(f, x: np.ndarray, t: np.ndarray, c: np.ndarray, h: float = 1e-6) -> float:
    """Central difference of <f(x + s t), c> at s = 0."""
    return float(((f(x + h * t) - f(x - h * t)) * c).sum() / (2 * h))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(5))
def test_per_example_vjp_matches_finite_differences(reduction, seed):
    """<J^T c, t> from the VJP equals d/ds <f(x + s t), c>: a smooth float64 function, h = 1e-6,
    so the difference is within h^2 |f'''| + eps |f| / h, about 1e-9 of the terms here."""
    rng = np.random.default_rng(seed)
    n, k = 4, 3
    x = rng.normal(size=(n, k)) * 2
    labels = rng.integers(0, k, size=n)
    kw = {"reduction": reduction, "label_smoothing": float(rng.uniform(0, 0.5)),
          "weight": rng.uniform(0.1, 3.0, size=k), "class_weighting": "per_example"}
    c = rng.normal(size=(n,)) if reduction == "none" else np.float64(rng.normal())
    t = rng.normal(size=(n, k))
    (d,) = L.cross_entropy_vjp(x, labels, c, **kw)
    fd = _fd_directional(lambda z: L.cross_entropy(z, labels, **kw), x, t, c)
    assert abs(fd - float((d * t).sum())) <= 1e-7 * (1 + float(np.abs(d * t).sum()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_conventions_agree_without_weights(reduction):
    """Unit weights multiply by 1 and count N in both conventions: the same floats."""
    rng = np.random.default_rng(7)
    x, labels = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    a = L.cross_entropy(x, labels, reduction, 0.3)
    b = L.cross_entropy(x, labels, reduction, 0.3, class_weighting="per_example")
    np.testing.assert_array_equal(b, a)


def test_unknown_class_weighting_is_named():
    with pytest.raises(ValueError, match="class_weighting: expected one of"):
        L.cross_entropy(LOGITS, LABELS, class_weighting="keras")


def test_readme_lists_the_hyperparameters_adapters_receive():
    """README's optimizer contract table names exactly hyperparameters()' keys."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = dict(re.findall(r"^\| (sgd|adam|adamw|rmsprop|adagrad) \| (.+) \|$", readme, re.M))
    assert set(rows) == set(OPTIMIZERS)
    adam = set(hyperparameters("adam", lr=0.1))
    for name, listed in rows.items():
        names = adam - {"weight_decay_mode"} if listed.startswith("as adam without") \
            else set(listed.split(", "))
        assert names == set(hyperparameters(name, lr=0.1)), name
