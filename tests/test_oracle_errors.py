"""The oracle rejects bad input with a ValueError that names the argument, and keeps the edge
semantics DESIGN.md asks of it (stable tails, -inf rows, label smoothing on the true class).
Expected values here are computed independently (SciPy, NumPy one-liners, or by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from reference import activations as A
from reference import dense as D
from reference import losses as L
from reference import network
from reference.optimizers import OPTIMIZERS, make_optimizer
from tests.fd import raises_for

NAN = float("nan")


# --------------------------------------------------------------------------- dense

@pytest.mark.parametrize(("x", "w", "b", "arg"), [
    (np.ones((2, 3)), np.ones((4, 5)), None, r"w"),            # rows of w != columns of x
    (np.ones((2, 3)), np.ones(3), None, r"w"),                 # w not 2-D
    (np.ones((2, 3)), np.ones((3, 4)), np.ones(5), r"b"),      # b has the wrong length
    (np.ones((2, 3)), np.ones((3, 4)), np.ones((1, 4)), r"b"),  # b not 1-D
    (np.ones(3), np.ones((3, 4)), None, r"x"),                 # x not 2-D
    (np.array([[1.0, NAN, 0.0]]), np.ones((3, 4)), None, r"x"),
    (np.ones((2, 3)), np.full((3, 4), NAN), None, r"w"),
])
def test_dense_rejects(x, w, b, arg):
    with raises_for(arg):
        D.dense(x, w, b)


def test_dense_vjp_rejects_a_wrong_cotangent():
    with raises_for("g"):
        D.dense_vjp(np.ones((2, 3)), np.ones((3, 4)), None, np.ones((2, 5)))


def test_dense_rejects_non_numeric_input():
    with raises_for("x"):
        D.dense([["a", "b"]], np.ones((2, 1)))


# --------------------------------------------------------------------------- activations

@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS) + ["softmax", "log_softmax"])
def test_activation_rejects_nan(name):
    with raises_for("x"):
        getattr(A, name)(np.array([0.0, NAN]))
    with raises_for("x"):
        getattr(A, name + "_vjp")(np.array([0.0, NAN]), np.ones(2))


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_activation_vjp_rejects_a_cotangent_of_another_shape(name):
    with raises_for("g"):
        getattr(A, name + "_vjp")(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.parametrize("approximate", ["erf", "sigmoid", "", None, "Tanh"])
def test_gelu_rejects_an_unknown_approximation(approximate):
    with raises_for("approximate"):
        A.gelu(np.ones(2), approximate=approximate)
    with raises_for("approximate"):
        A.gelu_vjp(np.ones(2), np.ones(2), approximate=approximate)


@pytest.mark.parametrize("axis", [2, -3, 5])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_rejects_an_axis_out_of_range(name, axis):
    with raises_for("axis"):
        getattr(A, name)(np.ones((2, 3)), axis=axis)


# --------------------------------------------------------------------------- losses

ELEMENTWISE = ["mse_loss", "l1_loss", "huber_loss", "bce_with_logits"]


@pytest.mark.parametrize("loss", ELEMENTWISE)
def test_elementwise_loss_rejects_a_target_of_another_shape(loss):
    with raises_for("target"):
        getattr(L, loss)(np.ones((2, 3)), np.ones((3, 2)))
    with raises_for("target"):
        getattr(L, loss + "_vjp")(np.ones((2, 3)), np.ones(3), np.float64(1.0))


@pytest.mark.parametrize("loss", ELEMENTWISE)
def test_elementwise_loss_rejects_nan(loss):
    first = "logits" if loss == "bce_with_logits" else "pred"
    with raises_for(first):
        getattr(L, loss)(np.array([NAN, 0.0]), np.zeros(2))
    with raises_for("target"):
        getattr(L, loss)(np.zeros(2), np.array([NAN, 0.0]))


@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", None, "batchmean"])
@pytest.mark.parametrize("loss", ELEMENTWISE + ["cross_entropy", "nll_loss"])
def test_loss_rejects_an_unknown_reduction(loss, reduction):
    args = (np.zeros((2, 3)), np.array([0, 2])) if loss in ("cross_entropy", "nll_loss") else \
        (np.zeros(3), np.ones(3))
    with raises_for("reduction"):
        getattr(L, loss)(*args, reduction=reduction)
    with raises_for("reduction"):
        getattr(L, loss + "_vjp")(*args, np.float64(1.0), reduction=reduction)


@pytest.mark.parametrize(("reduction", "g"), [("mean", np.ones(3)), ("sum", np.ones(1)),
                                              ("none", np.float64(1.0)), ("none", np.ones(4))])
def test_loss_vjp_rejects_a_cotangent_of_the_wrong_shape(reduction, g):
    with raises_for("g"):
        L.mse_loss_vjp(np.zeros(3), np.ones(3), g, reduction=reduction)
    with raises_for("g"):
        L.cross_entropy_vjp(np.zeros((2, 3)), np.array([0, 1]), g, reduction=reduction)


@pytest.mark.parametrize("delta", [0.0, -1.0, NAN, math.inf])
def test_huber_rejects_a_delta_that_is_not_positive(delta):
    with raises_for("delta"):
        L.huber_loss(np.zeros(2), np.ones(2), delta=delta)
    with raises_for("delta"):
        L.huber_loss_vjp(np.zeros(2), np.ones(2), np.float64(1.0), delta=delta)


BAD_LABELS = {
    "negative": np.array([0, -1]),
    "too-large": np.array([0, 3]),
    "float": np.array([0.0, 1.0]),
    "bool": np.array([True, False]),
    "strings": np.array(["0", "1"]),
    "2-D": np.array([[0], [1]]),
    "too-short": np.array([0]),
    "too-long": np.array([0, 1, 2]),
    "scalar": np.int64(0),
}


@pytest.mark.parametrize("labels", BAD_LABELS.values(), ids=BAD_LABELS.keys())
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_losses_reject_bad_labels(loss, labels):
    scores = np.log(np.full((2, 3), 1 / 3))
    with raises_for("labels"):
        getattr(L, loss)(scores, labels)
    with raises_for("labels"):
        getattr(L, loss + "_vjp")(scores, labels, np.float64(1.0))


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_losses_reject_bad_scores_and_weights(loss):
    first = "logits" if loss == "cross_entropy" else "log_probs"
    f = getattr(L, loss)
    with raises_for(first):
        f(np.zeros(3), np.array([0]))                      # not (N, K)
    with raises_for(first):
        f(np.array([[0.0, NAN]]), np.array([0]))
    with raises_for("weight"):
        f(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2))
    with raises_for("weight"):
        f(np.zeros((2, 3)), np.array([0, 1]), weight=np.array([1.0, -1.0, 1.0]))
    with raises_for("weight"):
        f(np.zeros((2, 3)), np.array([0, 1]), weight=np.array([1.0, NAN, 1.0]))


@pytest.mark.parametrize("e", [-0.1, 1.0 + 1e-12, 2.0, NAN, math.inf])
def test_cross_entropy_rejects_label_smoothing_outside_the_unit_interval(e):
    with raises_for("label_smoothing"):
        L.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=e)
    with raises_for("label_smoothing"):
        L.cross_entropy_vjp(np.zeros((2, 3)), np.array([0, 1]), np.float64(1.0), label_smoothing=e)


@pytest.mark.parametrize("e", [0.0, 1.0])
def test_cross_entropy_accepts_the_ends_of_the_unit_interval(e):
    assert np.isfinite(L.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=e))


# --------------------------------------------------------------------------- optimizers

@pytest.mark.parametrize("lr", [0.0, -1e-3, NAN, math.inf, -math.inf])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_rejects_a_learning_rate_that_is_not_positive(name, lr):
    with raises_for("lr"):
        make_optimizer(name, lr=lr)
    with raises_for("lr"):
        OPTIMIZERS[name](lr=lr)


@pytest.mark.parametrize("lr", ["fast", None])
def test_optimizer_rejects_a_non_numeric_learning_rate(lr):
    with raises_for("lr"):
        OPTIMIZERS["sgd"](lr=lr)


@pytest.mark.parametrize("name", ["Adam", "sgdm", "", "lbfgs"])
def test_make_optimizer_rejects_an_unknown_name(name):
    with raises_for("name"):
        make_optimizer(name, lr=1e-3)


def test_make_optimizer_rejects_an_unknown_hyperparameter():
    with raises_for("hyper"):
        make_optimizer("adam", lr=1e-3, beta1=0.9)


@pytest.mark.parametrize(("name", "hyper", "arg"), [
    ("sgd", {"momentum": 1.5}, "momentum"),
    ("sgd", {"dampening": -0.1}, "dampening"),
    ("sgd", {"weight_decay": -1.0}, "weight_decay"),
    ("sgd", {"nesterov": True}, "nesterov"),                          # needs momentum > 0
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov"),
    ("adam", {"b1": 1.0}, "b1"),
    ("adam", {"b2": -0.5}, "b2"),
    ("adam", {"eps": -1e-8}, "eps"),
    ("adam", {"eps_root": NAN}, "eps_root"),
    ("adam", {"amsgrad": "keras"}, "amsgrad"),
    ("adam", {"amsgrad": True}, "amsgrad"),
    ("adamw", {"weight_decay": -1e-2}, "weight_decay"),
    ("rmsprop", {"alpha": 1.0}, "alpha"),
    ("rmsprop", {"momentum": 1.0}, "momentum"),
    ("rmsprop", {"initial_scale": -1.0}, "initial_scale"),
    ("adagrad", {"lr_decay": -0.1}, "lr_decay"),
    ("adagrad", {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
])
def test_optimizer_rejects_a_bad_hyperparameter(name, hyper, arg):
    with raises_for(arg):
        make_optimizer(name, lr=1e-3, **hyper)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_update_rejects_mismatched_grads(name):
    opt = make_optimizer(name, lr=1e-3)
    params = [np.zeros((2, 3)), np.zeros(3)]
    state = opt.init(params)
    with raises_for("grads"):
        opt.update([np.zeros((2, 3))], state, params)                     # one array short
    with raises_for("grads"):
        opt.update([np.zeros((2, 3)), np.zeros(3), np.zeros(1)], state, params)
    with raises_for(r"grads\[1\]"):
        opt.update([np.zeros((2, 3)), np.zeros(4)], state, params)        # shape
    with raises_for(r"grads\[0\]"):
        opt.update([np.zeros((3, 2)), np.zeros(3)], state, params)
    with raises_for(r"grads\[0\]"):
        opt.update([np.full((2, 3), NAN), np.zeros(3)], state, params)
    with raises_for(r"params\[1\]"):
        opt.update([np.zeros((2, 3)), np.zeros(3)], state, [np.zeros((2, 3)), np.full(3, NAN)])


# --------------------------------------------------------------------------- MLP

def _mlp(activation="tanh", loss="mse"):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((2, 3)), np.zeros(3), rng.standard_normal((3, 2)), np.zeros(2)]
    return (network.mlp((2, 3, 2), activation, loss), params, rng.standard_normal((4, 2)),
            rng.standard_normal((4, 2)))


@pytest.mark.parametrize("activation", ["swish", "gelu_erf", "", "GELU", "softmax"])
def test_mlp_rejects_an_unknown_activation(activation):
    with raises_for("activation"):
        network.mlp((2, 3, 2), activation)


@pytest.mark.parametrize("loss", ["l1", "huber", "nll", "bce", ""])
def test_mlp_rejects_an_unknown_loss(loss):
    with raises_for("loss"):
        network.mlp((2, 3, 2), loss=loss)


def test_mlp_rejects_bad_parameters_and_input():
    arch, params, x, y = _mlp()
    with raises_for("params"):
        network.forward(arch, params[:3], [], x)                    # too few arrays
    with raises_for("params"):
        network.forward(arch, [], [], x)
    with raises_for(r"params\[1\]"):
        network.forward(arch, [params[0], np.zeros((1, 3))] + params[2:], [], x)  # bias not 1-D
    with raises_for(r"params\[0\]"):
        network.forward(arch, [np.zeros(2)] + params[1:], [], x)                 # weight not 2-D
    with raises_for("x"):
        network.forward(arch, params, [], np.full((4, 2), NAN))
    with raises_for("target"):
        network.loss_and_grads(arch, params, [], x, y[:, :1])
    arch, params, x, _ = _mlp(loss="cross_entropy")
    with raises_for("labels"):
        network.loss_and_grads(arch, params, [], x, np.array([0, 1, 2, 1]))


BAD_BATCHES = {
    "float": [np.array([0.0, 1.0])],
    "bool": [np.array([True, False, True, False])],
    "empty": [np.array([], dtype=np.int64)],
    "2-D": [np.array([[0, 1]])],
    "negative": [np.array([0, -1])],
    "too-large": [np.array([0, 4])],
    "second-batch": [np.array([0, 1]), np.array([2, 7])],
}


@pytest.mark.parametrize("batches", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_train_rejects_bad_batches(batches):
    arch, params, x, y = _mlp()
    with raises_for(rf"batches\[{len(batches) - 1}\]"):
        network.train(arch, params, [], x, y, make_optimizer("sgd", lr=0.1), batches)


def test_train_rejects_a_target_with_fewer_rows_than_x():
    """A short target is a ValueError naming target, not an IndexError at target[idx]."""
    arch, params, x, y = _mlp()
    with raises_for("target"):
        network.train(arch, params, [], x, y[:2], make_optimizer("sgd", lr=0.1), [np.array([3])])


# --------------------------------------------------------------------------- edge semantics

@pytest.mark.parametrize("x", [-10.0, -20.0, -30.0, -37.0])
def test_gelu_exact_keeps_its_negative_tail(x):
    """x Phi(x), with Phi from SciPy's ndtr: gelu(-10) = -7.6e-23, not 0 (1 + erf underflows)."""
    got = A.gelu(np.array([x]), approximate="none")[0]
    assert got < 0
    assert got == pytest.approx(x * special.ndtr(x), rel=1e-12)


def test_gelu_exact_at_minus_ten():
    assert A.gelu(np.array([-10.0]))[0] == pytest.approx(-7.619853e-23, rel=1e-6)


def test_bce_with_logits_small_tail_is_exact():
    """x = -40, y = 0: log(1 + e^-40) = 4.248e-18, which 1 - sigmoid would round away."""
    expected = np.log1p(np.exp(-40.0))
    assert expected == pytest.approx(4.248354255291589e-18, rel=1e-12)
    for red in ("mean", "sum"):
        assert L.bce_with_logits(np.array([-40.0]), np.array([0.0]), reduction=red) == \
            pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("x", "y", "expected"), [(1000.0, 0.0, 1000.0), (-1000.0, 1.0, 1000.0),
                                                  (1000.0, 1.0, 0.0), (-1000.0, 0.0, 0.0),
                                                  (1000.0, 0.25, 750.0)])
def test_bce_with_logits_is_finite_at_huge_logits(x, y, expected):
    loss = L.bce_with_logits(np.array([x]), np.array([y]), reduction="none")
    (grad,) = L.bce_with_logits_vjp(np.array([x]), np.array([y]), np.ones(1), reduction="none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert loss[0] == pytest.approx(expected, abs=1e-12)
    assert grad[0] == pytest.approx((1.0 if x > 0 else 0.0) - y, abs=1e-12)


def test_softmax_of_an_all_minus_inf_row_is_nan():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 0.0, -np.inf]])
    s = A.softmax(x, axis=-1)
    assert np.all(np.isnan(s[0]))
    np.testing.assert_array_equal(s[1], [0.5, 0.5, 0.0])


def test_log_softmax_keeps_minus_inf():
    np.testing.assert_array_equal(A.log_softmax(np.array([0.0, -np.inf])), [0.0, -np.inf])


def test_label_smoothing_puts_e_over_k_on_the_true_class_too():
    """One row, K = 4, softmax = (1, 2, 3, 4) / 10, label 0, e = 0.2: the target is
    q = (1 - e) onehot + e / K = (0.85, 0.05, 0.05, 0.05) (PyTorch), not the
    (0.8, e/3, e/3, e/3) that leaves the true class out."""
    logits = np.log(np.array([[1.0, 2.0, 3.0, 4.0]]))
    expected = -(0.85 * math.log(0.1) + 0.05 * (math.log(0.2) + math.log(0.3) + math.log(0.4)))
    got = L.cross_entropy(logits, np.array([0]), label_smoothing=0.2)
    assert got == pytest.approx(expected, rel=1e-13)
    # with class weights (2, 1, 1, 1): q = 0.8 * 2 onehot + 0.05 w = (1.7, 0.05, 0.05, 0.05);
    # 'mean' divides by w[y] = 2
    weighted = -(1.7 * math.log(0.1) + 0.05 * (math.log(0.2) + math.log(0.3) + math.log(0.4)))
    got = L.cross_entropy(logits, np.array([0]), label_smoothing=0.2,
                          weight=np.array([2.0, 1.0, 1.0, 1.0]))
    assert got == pytest.approx(weighted / 2, rel=1e-13)
    # the gradient is (sum q) softmax - q: (0.1, 0.2, 0.3, 0.4) - (0.85, 0.05, 0.05, 0.05)
    (d,) = L.cross_entropy_vjp(logits, np.array([0]), np.float64(1.0), label_smoothing=0.2)
    np.testing.assert_allclose(d, [[-0.75, 0.15, 0.25, 0.35]], rtol=0, atol=1e-15)


def test_softplus_threshold_switches_to_the_identity_on_beta_x():
    """PyTorch's threshold compares beta x (not x) with it: beta = 2.5, x = 10 gives 25 > 20,
    so softplus is exactly x with slope exactly 1; JAX's exact form (threshold None) is
    x + log1p(e^-25) / 2.5. Below the threshold (beta x = 19.75) both are exact."""
    x = np.array([10.0])
    assert A.softplus(x, beta=2.5, threshold=20.0)[0] == 10.0
    assert A.softplus_vjp(x, np.ones(1), beta=2.5, threshold=20.0)[0][0] == 1.0
    exact = 10.0 + np.log1p(np.exp(-25.0)) / 2.5
    assert exact != 10.0
    assert A.softplus(x, beta=2.5)[0] == pytest.approx(exact, rel=4e-16)
    assert A.softplus_vjp(x, np.ones(1), beta=2.5)[0][0] == pytest.approx(special.expit(25.0),
                                                                          rel=4e-16)
    below = np.array([7.9])
    for thr in (None, 20.0):
        assert A.softplus(below, beta=2.5, threshold=thr)[0] == \
            pytest.approx(np.log1p(np.exp(2.5 * 7.9)) / 2.5, rel=1e-15)


def test_softplus_rejects_a_beta_that_is_not_positive():
    with raises_for("beta"):
        A.softplus(np.ones(2), beta=0.0)


def test_dense_vjp_checks_the_bias_shape():
    with raises_for("b"):
        D.dense_vjp(np.ones((2, 3)), np.ones((3, 4)), np.ones(3), np.ones((2, 4)))
