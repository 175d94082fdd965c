"""The variational autoencoder (reference/vae.py): each piece's VJP and the hand-chained
gradients of the negative ELBO against central finite differences (tests/fd.py), the KL
against the two-Gaussian closed form and a numerical integral, the reconstruction losses
against their likelihoods written out by hand, the architectures, the training loop as steps
of loss_and_grads, and bad input."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import network
from reference import vae as V
from reference.optimizers import Optimizer, make_optimizer
from tests.fd import EPS, GAP, assert_vjp_matches_fd, finite, seeded

MODELS = {"mlp": ((5,), (4, 3)), "conv": ((2, 4, 4), (3, 2))}
"""input_shape, hidden: an MLP 5 -> 4 -> 3 -> 2 L and a conv VAE 4x4 -> 2x2 -> 1x1."""


def _model(kind: str, reconstruction: str = "bernoulli", beta: float = 1.0, latent: int = 2):
    shape, hidden = MODELS[kind]
    return V.VAE(shape, hidden, latent, reconstruction, beta)


def _uniform(data, shape, label):
    """x in [0, 1]: uniform draws, or their rounding to {0, 1} (binarised images)."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=label)
    x = np.random.default_rng(seed).uniform(size=shape)
    return np.round(x) if data.draw(st.booleans(), label=f"{label} binary") else x


def _x(data, model, n):
    shape = (n, *model.input_shape)
    return _uniform(data, shape, "x") if model.reconstruction == "bernoulli" else seeded(data, shape)


def _kink_free_ops():
    """The oracle's ops, rejecting ReLU inputs within GAP of the kink."""
    ops = SimpleNamespace(**vars(network.ORACLE_OPS))

    def relu(h):
        assume(np.all(np.abs(h) >= GAP))
        return network.ORACLE_OPS.relu(h)

    ops.relu = relu
    return ops


def _by_hand(model, params, x, eps, ops=network.ORACLE_OPS):
    """(out, mu, logvar): the encoder, the split, z = mu + sqrt(exp(logvar)) eps and the
    decoder, composed here from reference.network over ``ops``."""
    enc = model.encoder()
    n_enc = len(enc.shapes()[0])
    h, _ = network.apply(enc, ops, params[:n_enc], [], x)
    mu, logvar = h[:, :model.latent], h[:, model.latent:]
    out, _ = network.apply(model.decoder(), ops, params[n_enc:], [],
                           mu + np.sqrt(np.exp(logvar)) * eps)
    return out, mu, logvar


# --------------------------------------------------------------------------- reparameterize

@given(data=st.data())
def test_reparameterize_vjp_matches_fd(data):
    n, lat = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 3), label="L")
    mu, logvar = seeded(data, (n, lat), 1.0, "mu"), seeded(data, (n, lat), 2.0, "logvar")
    eps, g = seeded(data, (n, lat), 1.0, "eps"), seeded(data, (n, lat), 1.0, "g")
    grads = V.reparameterize_vjp(mu, logvar, eps, g)
    tangents = [seeded(data, (n, lat), 1.0, f"t{j}") for j in range(2)]
    assert_vjp_matches_fd(lambda m, lv: V.reparameterize(m, lv, eps), [mu, logvar], tangents, g,
                          grads)


@given(data=st.data())
def test_reparameterize_is_mu_plus_sigma_eps(data):
    n, lat = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 3), label="L")
    mu, logvar = seeded(data, (n, lat), 1.0, "mu"), seeded(data, (n, lat), 3.0, "logvar")
    eps = seeded(data, (n, lat), 1.0, "eps")
    np.testing.assert_array_equal(V.reparameterize(mu, logvar, np.zeros((n, lat))), mu)
    want = np.array([[m + math.sqrt(math.exp(lv)) * e for m, lv, e in zip(*rows, strict=True)]
                     for rows in zip(mu, logvar, eps, strict=True)])
    scale = np.abs(mu) + np.exp(logvar / 2) * np.abs(eps)
    assert np.all(np.abs(V.reparameterize(mu, logvar, eps) - want) <= 4 * EPS * scale)


# --------------------------------------------------------------------------- KL

@given(data=st.data())
def test_kl_vjp_matches_fd(data):
    n, lat = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 3), label="L")
    mu, logvar = seeded(data, (n, lat), 1.0, "mu"), seeded(data, (n, lat), 2.0, "logvar")
    g = np.float64(data.draw(finite(-2.0, 2.0), label="g"))
    grads = V.kl_divergence_vjp(mu, logvar, g)
    tangents = [seeded(data, (n, lat), 1.0, f"t{j}") for j in range(2)]
    # the terms the sum cancels: mu^2, expm1(logvar) and logvar
    extra = abs(g) * float((mu**2 + np.abs(np.expm1(logvar)) + np.abs(logvar)).sum()) / n
    assert_vjp_matches_fd(V.kl_divergence, [mu, logvar], tangents, g, grads, extra)


@given(mu=hnp.arrays(np.float64, (3, 2), elements=finite(-1e3, 1e3)),
       logvar=hnp.arrays(np.float64, (3, 2), elements=finite(-50.0, 50.0)))
def test_kl_is_nonnegative(mu, logvar):
    kl = V.kl_divergence(mu, logvar)
    assert kl >= 0.0
    if np.any(np.abs(mu) >= 1e-4) or np.any(np.abs(logvar) >= 1e-4):
        assert kl > 0.0


def test_kl_is_zero_at_the_prior():
    assert V.kl_divergence(np.zeros((4, 3)), np.zeros((4, 3))) == 0.0
    d_mu, d_logvar = V.kl_divergence_vjp(np.zeros((4, 3)), np.zeros((4, 3)), 1.0)
    assert not d_mu.any() and not d_logvar.any()


@given(data=st.data())
def test_kl_matches_two_gaussian_closed_form(data):
    """KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1/2 per latent dimension,
    summed over dimensions and averaged over the batch, one element at a time in math."""
    n, lat = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(1, 3), label="L")
    mu, logvar = seeded(data, (n, lat), 2.0, "mu"), seeded(data, (n, lat), 3.0, "logvar")
    total, mag = 0.0, 0.0
    for m, lv in zip(mu.ravel().tolist(), logvar.ravel().tolist(), strict=True):
        s = math.exp(lv / 2)
        total += math.log(1 / s) + (s * s + m * m) / 2 - 0.5
        mag += abs(math.log(s)) + s * s + m * m + 1
    assert abs(V.kl_divergence(mu, logvar) - total / n) <= 16 * EPS * mag / n


@given(m=finite(-3.0, 3.0), logvar=finite(-3.0, 3.0))
def test_kl_matches_numerical_integral(m, logvar):
    """KL(p || q) = integral of p (log p - log q) by the trapezoidal rule over m +- 12 s (on a
    Gaussian integrand its error is far below float64's; the tails beyond are ~exp(-72))."""
    s = math.exp(logvar / 2)
    t = np.linspace(m - 12 * s, m + 12 * s, 4001)
    u = (t - m) / s
    p = np.exp(-0.5 * u * u) / (s * math.sqrt(2 * math.pi))
    log_ratio = -0.5 * u * u - math.log(s) + 0.5 * t * t
    want = float(np.trapezoid(p * log_ratio, t))
    assert V.kl_divergence(np.array([[m]]), np.array([[logvar]])) == pytest.approx(
        want, rel=1e-10, abs=1e-12)


# --------------------------------------------------------------------------- reconstruction

@pytest.mark.parametrize("kind", V.RECONSTRUCTIONS)
@given(data=st.data())
def test_reconstruction_vjp_matches_fd(data, kind):
    n = data.draw(st.integers(1, 3), label="N")
    shape = (n, *data.draw(st.sampled_from([(3,), (2, 2, 2)]), label="pixels"))
    out = seeded(data, shape, 3.0, "out")
    x = _uniform(data, shape, "x") if kind == "bernoulli" else seeded(data, shape, 1.0, "x")
    g = np.float64(data.draw(finite(-2.0, 2.0), label="g"))
    grads = V.reconstruction_loss_vjp(out, x, g, kind)
    # BCE's max(o, 0), o x and softplus; the squared error's o - x times |o| + |x|
    terms = np.abs(out) * (1 + np.abs(x)) + 1 if kind == "bernoulli" else \
        (np.abs(out) + np.abs(x)) * np.abs(out - x)
    assert_vjp_matches_fd(lambda o: V.reconstruction_loss(o, x, kind), [out],
                          [seeded(data, shape, 1.0, "t")], g, grads,
                          abs(g) * float(terms.sum()) / n)


@given(data=st.data())
def test_bernoulli_is_the_negative_log_likelihood(data):
    """-1/N sum x log sigmoid(o) + (1 - x) log(1 - sigmoid(o)), one element at a time."""
    n = data.draw(st.integers(1, 3), label="N")
    out = np.clip(seeded(data, (n, 2, 3), 3.0, "out"), -8.0, 8.0)
    x = _uniform(data, (n, 2, 3), "x")
    total, mag = 0.0, 0.0
    for o, y in zip(out.ravel().tolist(), x.ravel().tolist(), strict=True):
        p = 1 / (1 + math.exp(-o))
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
        mag += abs(math.log(p)) + abs(math.log(1 - p))
    # 1 - p loses up to eps / (1 - p) <= eps e^8 of its relative precision
    got = V.reconstruction_loss(out, x, "bernoulli")
    assert abs(got - total / n) <= 16 * EPS * math.exp(8) * mag / n


def test_bernoulli_is_exact_for_saturated_logits():
    out = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    x = np.array([[1.0, 0.0, 0.0, 1.0]])
    assert V.reconstruction_loss(out, x, "bernoulli") == 2000.0
    np.testing.assert_array_equal(V.reconstruction_loss_vjp(out, x, 1.0, "bernoulli")[0],
                                  [[0.0, 0.0, 1.0, -1.0]])


@given(data=st.data())
def test_gaussian_is_the_negative_log_likelihood_without_its_constant(data):
    """-1/N sum log N(x; o, 1) - D/2 log(2 pi) per example, one element at a time."""
    n = data.draw(st.integers(1, 3), label="N")
    out, x = seeded(data, (n, 5), 1.0, "out"), seeded(data, (n, 5), 1.0, "x")
    total, mag = 0.0, 0.0
    for o, y in zip(out.ravel().tolist(), x.ravel().tolist(), strict=True):
        density = math.exp(-0.5 * (y - o) ** 2) / math.sqrt(2 * math.pi)
        total += -math.log(density) - 0.5 * math.log(2 * math.pi)
        mag += 0.5 * (y - o) ** 2 + math.log(2 * math.pi)
    assert abs(V.reconstruction_loss(out, x, "gaussian") - total / n) <= 16 * EPS * mag / n


# --------------------------------------------------------------------------- the model

def test_architectures():
    mlp, conv = _model("mlp"), _model("conv")
    kinds = [[layer.kind for layer in a.layers] for a in (mlp.encoder(), mlp.decoder(),
                                                          conv.encoder(), conv.decoder())]
    assert kinds == [["dense", "relu", "dense", "relu", "dense"],
                     ["dense", "relu", "dense", "relu", "dense"],
                     ["conv", "relu", "conv", "relu", "flatten", "dense"],
                     ["dense", "reshape", "conv_transpose", "relu", "conv_transpose"]]
    assert [layer.out for layer in mlp.decoder().layers if layer.kind == "dense"] == [3, 4, 5]
    assert [(la.out, la.kernel, la.stride, la.padding) for la in conv.encoder().layers
            if la.kind == "conv"] == [(3, 4, 2, 1), (2, 4, 2, 1)]
    assert [(la.out, la.kernel, la.stride, la.padding) for la in conv.decoder().layers
            if la.kind == "conv_transpose"] == [(3, 4, 2, 1), (2, 4, 2, 1)]
    assert conv.decoder().layers[1].shape == (2, 1, 1)
    for model in (mlp, conv):
        assert model.encoder().shapes()[2] == (4,) and model.encoder().loss is None
        assert model.decoder().shapes()[2] == model.input_shape and model.decoder().loss is None
        params = V.init_params(model, 7)
        want = model.encoder().init(7)[0] + model.decoder().init(8)[0]
        assert [p.shape for p in params] == model.param_shapes() == [p.shape for p in want]
        for a, b in zip(params, want, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_mu_and_logvar_are_the_encoder_outputs_split(kind):
    """mu = the first L encoder outputs, logvar the last L: a torch fc_mu / fc_logvar pair is
    the last dense layer's weight columns split; forward is the composition by hand."""
    model = _model(kind)
    params = V.init_params(model, 1)
    rng = np.random.default_rng(2)
    x, eps = rng.uniform(size=(3, *model.input_shape)), rng.standard_normal((3, 2))
    out, mu, logvar = V.forward(model, params, x, eps)
    body = network.Architecture("body", model.input_shape, model.encoder().layers[:-1], loss=None)
    n_enc = len(model.encoder().shapes()[0])
    h, _ = network.forward(body, params[:n_enc - 2], [], x)
    w, b = params[n_enc - 2], params[n_enc - 1]
    np.testing.assert_allclose(mu, h @ w[:, :2] + b[:2], rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(logvar, h @ w[:, 2:] + b[2:], rtol=1e-14, atol=1e-14)
    want_out, want_mu, want_logvar = _by_hand(model, params, x, eps)
    np.testing.assert_array_equal(mu, want_mu)
    np.testing.assert_array_equal(logvar, want_logvar)
    np.testing.assert_allclose(out, want_out, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("reconstruction", V.RECONSTRUCTIONS)
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@given(data=st.data())
def test_vae_gradients_match_fd(data, kind, reconstruction):
    beta = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]), label="beta")
    model = _model(kind, reconstruction, beta)
    n = data.draw(st.integers(1, 3), label="N")
    # nonzero biases: with init's zero biases a row whose ReLUs all died feeds the next ReLU
    # exactly 0, its kink
    params = [p + 0.1 * seeded(data, p.shape, 1.0, f"b{j}") if p.ndim == 1 else p for j, p in
              enumerate(V.init_params(model, data.draw(st.integers(0, 2**16), label="init")))]
    x, eps = _x(data, model, n), seeded(data, (n, model.latent), 1.0, "eps")
    out, mu, logvar = _by_hand(model, params, x, eps, _kink_free_ops())
    value, grads, (rec, kl) = V.loss_and_grads(model, params, x, eps)
    assert (value, rec, kl) == V.loss(model, params, x, eps)
    assert value == rec + beta * kl and kl >= 0.0
    assert len(grads) == len(params)

    def f(*ps):
        return np.asarray(V.loss(model, list(ps), x, eps)[0])

    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / np.sqrt(p.size) for j, p in enumerate(params)]
    # the cancelling terms of the reconstruction (as in the test above) and of the KL
    rec_terms = np.abs(out) * (1 + np.abs(x)) + 1 if reconstruction == "bernoulli" else \
        (np.abs(out) + np.abs(x)) * np.abs(out - x)
    kl_terms = beta * (mu**2 + np.abs(np.expm1(logvar)) + np.abs(logvar))
    extra = float(rec_terms.sum() + kl_terms.sum()) / n
    assert_vjp_matches_fd(f, params, tangents, np.float64(1.0), grads, extra)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_gradient_flows_through_the_reparameterization(kind):
    """With beta = 0 the encoder learns only through z = mu + exp(logvar / 2) eps: every
    encoder gradient is nonzero when eps != 0; with eps = 0 the logvar half of the last dense
    layer gets exactly none and the mu half still does."""
    model = _model(kind, beta=0.0)
    params = V.init_params(model, 3)
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(3, *model.input_shape))
    n_enc = len(model.encoder().shapes()[0])
    _, grads, _ = V.loss_and_grads(model, params, x, rng.standard_normal((3, 2)))
    assert all(np.any(g != 0) for g in grads[:n_enc])
    _, grads, (_, kl) = V.loss_and_grads(model, params, x, np.zeros((3, 2)))
    dw, db = grads[n_enc - 2], grads[n_enc - 1]
    assert kl > 0 and not dw[:, 2:].any() and not db[2:].any()
    assert dw[:, :2].any() and db[:2].any()


def _plain_sgd(lr: float) -> Optimizer:
    """p - lr g, written here (the oracle's sgd requires lr > 0)."""
    return Optimizer(lambda params: None,
                     lambda grads, state, params: ([p - lr * g for p, g in zip(params, grads,
                                                                                 strict=True)],
                                                   state))


def _batches(model, rng, count):
    return [(rng.uniform(size=(2, *model.input_shape)), rng.standard_normal((2, model.latent)))
            for _ in range(count)]


def test_train_with_lr_zero_leaves_params_unchanged():
    model = _model("conv")
    params = V.init_params(model, 5)
    batches = _batches(model, np.random.default_rng(6), 2)
    final, history = V.train(model, params, _plain_sgd(0.0), batches)
    for a, b in zip(final, params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert history == [V.loss(model, params, x, eps)[0] for x, eps in batches]


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_train_is_steps_of_loss_and_grads(kind):
    model = _model(kind, "gaussian", beta=0.5)
    params = V.init_params(model, 9)
    rng = np.random.default_rng(10)
    batches = [(rng.standard_normal((2, *model.input_shape)), rng.standard_normal((2, 2)))
               for _ in range(2)]
    lr = 0.1
    final, history = V.train(model, params, make_optimizer("sgd", lr=lr), batches)
    p, values = params, []
    for x, eps in batches:
        value, grads, _ = V.loss_and_grads(model, p, x, eps)
        values.append(value)
        p = [q - lr * g for q, g in zip(p, grads, strict=True)]
    assert history == values
    for a, b in zip(final, p, strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_lowers_the_loss():
    model = _model("mlp")
    rng = np.random.default_rng(11)
    x = np.round(rng.uniform(size=(8, 5)))
    batches = [(x, rng.standard_normal((8, 2))) for _ in range(60)]
    _, history = V.train(model, V.init_params(model, 12), make_optimizer("adam", lr=1e-2), batches)
    assert history[-1] < 0.8 * history[0]


# --------------------------------------------------------------------------- bad input

_M = _model("mlp")
_P = V.init_params(_M, 0)
_X, _E = np.full((2, 5), 0.5), np.zeros((2, 2))
_BAD_SHAPE = [*_P[:3], np.zeros((2, 2)), *_P[4:]]

BAD = [
    ("input_shape", "(F,) or (C, H, W)", lambda: V.VAE((5, 5), (3,), 2)),
    ("input_shape", "positive ints", lambda: V.VAE((0,), (3,), 2)),
    ("input_shape", "multiples of 2^2", lambda: V.VAE((1, 6, 6), (3, 3), 2)),
    ("hidden", "non-empty", lambda: V.VAE((5,), (), 2)),
    ("hidden", "positive ints", lambda: V.VAE((5,), (3, 0), 2)),
    ("hidden", "positive ints", lambda: V.VAE((5,), 3, 2)),
    ("latent", "positive int", lambda: V.VAE((5,), (3,), 0)),
    ("latent", "positive int", lambda: V.VAE((5,), (3,), True)),
    ("reconstruction", "one of ('bernoulli', 'gaussian')", lambda: V.VAE((5,), (3,), 2, "poisson")),
    ("beta", ">= 0", lambda: V.VAE((5,), (3,), 2, beta=-0.5)),
    ("beta", ">= 0", lambda: V.VAE((5,), (3,), 2, beta=float("inf"))),
    ("beta", "a number", lambda: V.VAE((5,), (3,), 2, beta="one")),
    ("mu", "2 dimensions", lambda: V.kl_divergence(np.zeros(3), np.zeros(3))),
    ("mu", "at least one example", lambda: V.kl_divergence(np.zeros((0, 2)), np.zeros((0, 2)))),
    ("logvar", "shape of mu", lambda: V.kl_divergence(np.zeros((2, 3)), np.zeros((2, 2)))),
    ("g", "a scalar", lambda: V.kl_divergence_vjp(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2))),
    ("eps", "expected shape (2, 2)",
     lambda: V.reparameterize(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((3, 2)))),
    ("g", "shape of z", lambda: V.reparameterize_vjp(np.zeros((2, 2)), np.zeros((2, 2)),
                                                      np.zeros((2, 2)), np.zeros((2, 3)))),
    ("kind", "one of", lambda: V.reconstruction_loss(_X, _X, "poisson")),
    ("kind", "one of", lambda: V.reconstruction_loss_vjp(_X, _X, 1.0, "l1")),
    ("logits_or_mean", "non-batch axis", lambda: V.reconstruction_loss(np.zeros(3), np.zeros(3),
                                                                        "gaussian")),
    ("x", "shape of logits_or_mean", lambda: V.reconstruction_loss(_X, _X[:1], "gaussian")),
    ("x", "values in [0, 1]", lambda: V.reconstruction_loss(_X, _X + 1, "bernoulli")),
    ("g", "a scalar", lambda: V.reconstruction_loss_vjp(_X, _X, np.ones(2), "bernoulli")),
    ("params", "expected 12 arrays", lambda: V.loss(_M, _P[:-1], _X, _E)),
    ("params", "expected 12 arrays", lambda: V.loss(_M, np.zeros(12), _X, _E)),
    ("params[3]", "expected shape (3,)", lambda: V.loss(_M, _BAD_SHAPE, _X, _E)),
    ("x", "expected shape (N, 5)", lambda: V.loss(_M, _P, np.zeros((2, 4)), _E)),
    ("x", "N >= 1", lambda: V.loss(_M, _P, np.zeros((0, 5)), np.zeros((0, 2)))),
    ("x", "NaN", lambda: V.loss(_M, _P, np.full((2, 5), np.nan), _E)),
    ("x", "values in [0, 1]", lambda: V.loss_and_grads(_M, _P, _X - 1, _E)),
    ("eps", "expected shape (2, 2)", lambda: V.loss_and_grads(_M, _P, _X, np.zeros((3, 2)))),
    ("eps", "2 dimensions", lambda: V.forward(_M, _P, _X, np.zeros(2))),
    ("batches", "non-empty list", lambda: V.train(_M, _P, make_optimizer("sgd", lr=0.1), [])),
    ("batches", "non-empty list",
     lambda: V.train(_M, _P, make_optimizer("sgd", lr=0.1), np.zeros((2, 2)))),
    ("batches[0]", "an (x, eps) pair",
     lambda: V.train(_M, _P, make_optimizer("sgd", lr=0.1), [(_X,)])),
]


@pytest.mark.parametrize(("arg", "words", "call"), BAD, ids=[f"{i}-{a}" for i, (a, _, _) in
                                                             enumerate(BAD)])
def test_vae_rejects(arg, words, call):
    with pytest.raises(ValueError, match=rf"^{re.escape(arg)}: .*{re.escape(words)}"):
        call()
