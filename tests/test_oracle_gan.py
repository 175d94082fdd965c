"""The DCGAN of reference/gan.py: its losses and their VJPs (finite differences, closed forms,
saturation), the two networks' hand-chained gradients against finite differences of the
composed losses (tests/fd.py), the training step against its pieces written out here with an
independent SGD update, the order of the running-statistics updates against
reference.batchnorm, the architectures against the example's layers, and bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference import batchnorm as B
from reference import conv as C
from reference import gan, network
from reference.optimizers import Optimizer, make_optimizer
from tests.fd import GAP, U, arrays, assert_vjp_matches_fd, raises_for, seeded

BN = {"momentum": 0.1, "eps": 1e-5, "momentum_convention": "torch", "unbiased_running_var": True}
SMALL = gan.DCGAN(latent=3, channels=2, size=8, gen_features=2, disc_features=2, stages=2)


def _model(data) -> gan.DCGAN:
    return gan.DCGAN(latent=data.draw(st.integers(2, 4), label="latent"),
                     channels=data.draw(st.integers(1, 2), label="channels"), size=8,
                     gen_features=data.draw(st.integers(1, 2), label="gen_features"),
                     disc_features=data.draw(st.integers(1, 2), label="disc_features"),
                     stages=data.draw(st.integers(1, 2), label="stages"))


def _kink_free():
    """The oracle's ops, rejecting inputs within GAP of a ReLU or leaky-ReLU kink."""
    ops = network.ORACLE_OPS

    def relu(x):
        assume(np.all(np.abs(x) >= GAP))
        return ops.relu(x)

    def leaky_relu(x, negative_slope):
        assume(np.all(np.abs(x) >= GAP))
        return ops.leaky_relu(x, negative_slope)

    return SimpleNamespace(**{**vars(ops), "relu": relu, "leaky_relu": leaky_relu})


def _tangents(data, primals):
    return [seeded(data, p.shape, 1.0, f"t{j}") / np.sqrt(p.size) for j, p in enumerate(primals)]


def _sgd(params, grads, lr):
    return [p - lr * g for p, g in zip(params, grads, strict=True)]


def _batch(model, seed, n=3):
    rng = np.random.default_rng(seed)
    return (np.tanh(rng.standard_normal((n, model.channels, model.size, model.size))),
            rng.standard_normal((n, model.latent)))


# --------------------------------------------------------------------------- losses

def _logits(data, label):
    n = data.draw(st.integers(1, 4), label=f"N {label}")
    return data.draw(arrays((n, 1), -30.0, 30.0), label=label)


@given(data=st.data())
def test_discriminator_loss_vjp_matches_fd(data):
    real, fake = _logits(data, "real"), _logits(data, "fake")
    g = data.draw(arrays((), -2.0, 2.0), label="g")
    grads = gan.discriminator_loss_vjp(real, fake, g)
    assert_vjp_matches_fd(gan.discriminator_loss, [real, fake], _tangents(data, [real, fake]),
                          g, list(grads))


@pytest.mark.parametrize("kind", gan.GENERATOR_LOSSES)
@given(data=st.data())
def test_generator_loss_vjp_matches_fd(data, kind):
    fake = _logits(data, "fake")
    g = data.draw(arrays((), -2.0, 2.0), label="g")
    grads = gan.generator_loss_vjp(fake, g, kind)
    assert_vjp_matches_fd(lambda f: gan.generator_loss(f, kind), [fake],
                          _tangents(data, [fake]), g, list(grads))


def test_losses_are_the_binary_cross_entropies():
    """Closed forms with math: D(x) = 1 / (1 + e^-x), BCE = -log D (label 1), -log(1 - D)
    (label 0); 2 log 2 at zero logits."""
    assert gan.discriminator_loss(np.zeros((3, 1)), np.zeros((5, 1))) == \
        pytest.approx(2 * math.log(2), rel=4 * np.finfo(float).eps)
    real, fake = np.array([[0.3], [-1.2], [2.5]]), np.array([[-0.7], [1.1]])

    def d(x):
        return 1 / (1 + math.exp(-x))

    want_d = (sum(-math.log(d(x)) for x in real[:, 0]) / 3
              + sum(-math.log(1 - d(x)) for x in fake[:, 0]) / 2)
    assert gan.discriminator_loss(real, fake) == pytest.approx(want_d, rel=1e-13)
    want_ns = sum(-math.log(d(x)) for x in fake[:, 0]) / 2
    want_mm = sum(math.log(1 - d(x)) for x in fake[:, 0]) / 2
    assert gan.generator_loss(fake, "non_saturating") == pytest.approx(want_ns, rel=1e-13)
    assert gan.generator_loss(fake, "minimax") == pytest.approx(want_mm, rel=1e-13)
    assert gan.generator_loss(fake) == gan.generator_loss(fake, "non_saturating")


def test_non_saturating_gradient_survives_where_minimax_vanishes():
    """Where D confidently rejects the fakes (logit -30), d/dlogit of log(1 - D) is
    -D = -1 / (1 + e^30) ~ 1e-13 while that of -log D is -(1 - D) ~ -1 (Goodfellow et al.)."""
    fake = np.full((4, 1), -30.0)
    (ns,) = gan.generator_loss_vjp(fake, 1.0, "non_saturating")
    (mm,) = gan.generator_loss_vjp(fake, 1.0, "minimax")
    np.testing.assert_allclose(ns, -(1 - 1 / (1 + math.exp(30))) / 4, rtol=U)
    np.testing.assert_allclose(mm, -1 / (1 + math.exp(30)) / 4, rtol=U)
    assert np.all(np.abs(mm) < 1e-13) and np.all(np.abs(ns) > 0.24)
    assert np.isfinite(gan.generator_loss(np.full((2, 1), -800.0)))
    assert np.all(np.isfinite(gan.generator_loss_vjp(np.full((2, 1), -800.0), 1.0)[0]))


# --------------------------------------------------------------------------- network gradients

@given(data=st.data())
def test_discriminator_grads_match_fd(data):
    model = _model(data)
    _, _, dparams, dstate = gan.init_params(model, data.draw(st.integers(0, 2**32 - 1), label="init"))
    disc = model.discriminator()
    n = data.draw(st.integers(2, 3), label="N")
    shape = (n, *disc.input_shape)
    real, fake = np.tanh(seeded(data, shape, 1.5, "real")), np.tanh(seeded(data, shape, 1.5, "fake"))
    for x in (real, fake):
        network.apply(disc, _kink_free(), dparams, dstate, x, True, BN)
    value, grads, new_state = gan.discriminator_loss_and_grads(model, dparams, dstate, real, fake, BN)

    def loss(*p):
        r, after_real = network.forward(disc, list(p), dstate, real, True, BN)
        f, _ = network.forward(disc, list(p), after_real, fake, True, BN)
        return gan.discriminator_loss(r, f)

    assert value == loss(*dparams) and len(grads) == len(dparams)
    _, after_real = network.forward(disc, dparams, dstate, real, True, BN)
    _, after_fake = network.forward(disc, dparams, after_real, fake, True, BN)
    for a, b in zip(new_state, after_fake, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_vjp_matches_fd(loss, dparams, _tangents(data, dparams), np.asarray(1.0), grads)


@pytest.mark.parametrize("kind", gan.GENERATOR_LOSSES)
@given(data=st.data())
def test_generator_grads_match_fd(data, kind):
    """Through D (training mode, its parameters fixed) into G: d loss / d G's parameters."""
    model = _model(data)
    gparams, gstate, dparams, dstate = gan.init_params(
        model, data.draw(st.integers(0, 2**32 - 1), label="init"))
    gen, disc = model.generator(), model.discriminator()
    z = seeded(data, (data.draw(st.integers(2, 3), label="N"), model.latent), 1.0, "z")
    fake, _ = network.apply(gen, _kink_free(), gparams, gstate, z, True, BN)
    network.apply(disc, _kink_free(), dparams, dstate, fake, True, BN)
    value, grads, new_gstate, new_dstate = gan.generator_loss_and_grads(
        model, gparams, gstate, dparams, dstate, z, BN, kind)

    def loss(*p):
        f, _ = network.forward(gen, list(p), gstate, z, True, BN)
        return gan.generator_loss(network.forward(disc, dparams, dstate, f, True, BN)[0], kind)

    assert value == loss(*gparams) and len(grads) == len(gparams)
    f, want_gstate = network.forward(gen, gparams, gstate, z, True, BN)
    _, want_dstate = network.forward(disc, dparams, dstate, f, True, BN)
    for a, b in zip(new_gstate + new_dstate, want_gstate + want_dstate, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_vjp_matches_fd(loss, gparams, _tangents(data, gparams), np.asarray(1.0), grads)


# --------------------------------------------------------------------------- training

FROZEN = Optimizer(lambda params: None, lambda grads, state, params: (list(params), state))
"""An optimizer that never moves its parameters."""


def _assert_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", gan.GENERATOR_LOSSES)
def test_train_step_is_its_pieces(kind):
    """fake = G(z); D step on (real, fake) with SGD; G step through the updated D, SGD."""
    gp, gs, dp, ds = gan.init_params(SMALL, 5)
    real, z = _batch(SMALL, 6)
    lr_g, lr_d = 0.05, 0.2
    g_opt, d_opt = make_optimizer("sgd", lr=lr_g), make_optimizer("sgd", lr=lr_d)
    step = gan.train_step(SMALL, gp, gs, dp, ds, g_opt, g_opt.init(gp), d_opt, d_opt.init(dp),
                          real, z, BN, kind)
    fake, gs1 = network.forward(SMALL.generator(), gp, gs, z, True, BN)
    d_loss, d_grads, ds2 = gan.discriminator_loss_and_grads(SMALL, dp, ds, real, fake, BN)
    dp1 = _sgd(dp, d_grads, lr_d)
    g_loss, g_grads, gs_g, ds3 = gan.generator_loss_and_grads(SMALL, gp, gs, dp1, ds2, z, BN, kind)
    _assert_equal(gs_g, gs1)  # the generator step's G state is the one forward's
    _assert_equal(step.dparams, dp1)
    _assert_equal(step.gparams, _sgd(gp, g_grads, lr_g))
    _assert_equal(step.gstate, gs1)
    _assert_equal(step.dstate, ds3)
    assert step.losses == (d_loss, g_loss)
    assert step.g_opt_state["t"] == step.d_opt_state["t"] == 1


def test_each_step_leaves_the_other_network_alone():
    """With G's optimizer frozen the step moves D alone, by its own gradient; with D's frozen
    it moves G alone, by the gradient through the unchanged D. The inputs are not mutated."""
    gp, gs, dp, ds = gan.init_params(SMALL, 7)
    real, z = _batch(SMALL, 8)
    copies = [[a.copy() for a in xs] for xs in (gp, gs, dp, ds)]
    sgd = make_optimizer("sgd", lr=0.1)
    fake, _ = network.forward(SMALL.generator(), gp, gs, z, True, BN)
    _, d_grads, ds2 = gan.discriminator_loss_and_grads(SMALL, dp, ds, real, fake, BN)
    _, g_grads, _, _ = gan.generator_loss_and_grads(SMALL, gp, gs, dp, ds2, z, BN)

    d_only = gan.train_step(SMALL, gp, gs, dp, ds, FROZEN, None, sgd, sgd.init(dp), real, z, BN)
    _assert_equal(d_only.gparams, gp)
    _assert_equal(d_only.dparams, _sgd(dp, d_grads, 0.1))
    g_only = gan.train_step(SMALL, gp, gs, dp, ds, sgd, sgd.init(gp), FROZEN, None, real, z, BN)
    _assert_equal(g_only.dparams, dp)
    _assert_equal(g_only.gparams, _sgd(gp, g_grads, 0.1))
    for xs, ys in zip((gp, gs, dp, ds), copies, strict=True):
        _assert_equal(xs, ys)


def test_train_is_repeated_train_step():
    gp, gs, dp, ds = gan.init_params(SMALL, 9)
    batches = [_batch(SMALL, 10 + k) for k in range(3)]
    adam = make_optimizer("adam", lr=2e-4, b1=0.5)
    sgd = make_optimizer("sgd", lr=0.01, momentum=0.9)
    trained = gan.train(SMALL, gp, gs, dp, ds, adam, sgd, batches, BN, "minimax")
    state = (gp, gs, dp, ds, adam.init(gp), sgd.init(dp))
    d_losses, g_losses = [], []
    for real, z in batches:
        g, gst, d, dst, go, do, (dl, gl) = gan.train_step(SMALL, *state[:4], adam, state[4], sgd,
                                                          state[5], real, z, BN, "minimax")
        state = (g, gst, d, dst, go, do)
        d_losses.append(dl)
        g_losses.append(gl)
    for got, want in zip(trained[:4], state[:4], strict=True):
        _assert_equal(got, want)
    assert (trained.d_losses, trained.g_losses) == (d_losses, g_losses)
    assert len(set(d_losses)) == 3  # the steps moved the networks


def test_running_statistics_order():
    """The first batch norm of each network, recomputed from its own layers: G's updated once
    (by G(z)); D's by D(real), D(fake), then D(fake) with the updated parameters."""
    gp, gs, dp, ds = gan.init_params(SMALL, 11)
    real, z = _batch(SMALL, 12)
    g_opt, d_opt = make_optimizer("sgd", lr=0.1), make_optimizer("sgd", lr=0.3)
    step = gan.train_step(SMALL, gp, gs, dp, ds, g_opt, g_opt.init(gp), d_opt, d_opt.init(dp),
                          real, z, BN)
    f, b = 2 * SMALL.gen_features, SMALL.base
    h = (z @ gp[0] + gp[1]).reshape(len(z), f, b, b)
    _, rm, rv = B.batch_norm(h, gp[2], gp[3], gs[0], gs[1], True, **BN)
    np.testing.assert_allclose(step.gstate[0], rm, rtol=U)
    np.testing.assert_allclose(step.gstate[1], rv, rtol=U)

    def bn_input(p, x):  # conv(bias) -> leaky_relu(0.2) -> conv (no bias)
        a = C.conv2d(x, p[0], p[1], stride=2, padding=1)
        return C.conv2d(np.where(a > 0, a, 0.2 * a), p[2], None, stride=2, padding=1)

    fake, _ = network.forward(SMALL.generator(), gp, gs, z, True, BN)
    stats = (ds[0], ds[1])
    for p, x in ((dp, real), (dp, fake), (step.dparams, fake)):
        _, *stats = B.batch_norm(bn_input(p, x), p[3], p[4], *stats, True, **BN)
        if x is real:
            after_real = stats
    np.testing.assert_allclose(step.dstate[0], stats[0], rtol=U)
    np.testing.assert_allclose(step.dstate[1], stats[1], rtol=U)
    _, *fake_first = B.batch_norm(bn_input(dp, fake), dp[3], dp[4], ds[0], ds[1], True, **BN)
    _, *other_order = B.batch_norm(bn_input(dp, real), dp[3], dp[4], *fake_first, True, **BN)
    assert not np.allclose(other_order[0], after_real[0])  # the order is observable


# --------------------------------------------------------------------------- architectures

def test_default_is_a_32x32_dcgan():
    model = gan.DCGAN()
    gen, disc = model.generator(), model.discriminator()
    assert [(layer.kind, layer.out) for layer in gen.layers] == [
        ("dense", 256 * 16), ("reshape", 0), ("bn", 0), ("relu", 0),
        ("conv_transpose", 128), ("bn", 0), ("relu", 0), ("conv_transpose", 64), ("bn", 0),
        ("relu", 0), ("conv_transpose", 3), ("tanh", 0)]
    assert [(layer.kind, layer.out) for layer in disc.layers] == [
        ("conv", 64), ("leaky_relu", 0), ("conv", 128), ("bn", 0), ("leaky_relu", 0),
        ("conv", 256), ("bn", 0), ("leaky_relu", 0), ("flatten", 0), ("dense", 1)]
    assert gen.shapes()[2] == disc.input_shape == (3, 32, 32) and disc.shapes()[2] == (1,)
    for layers in (gen.layers, disc.layers):
        for layer, after in zip(layers, layers[1:], strict=False):
            if layer.kind in ("conv", "conv_transpose"):
                assert (layer.kernel, layer.stride, layer.padding) == (4, 2, 1)
                assert layer.bias == (after.kind != "bn")  # none before a batch norm
    assert {layer.negative_slope for layer in disc.layers if layer.kind == "leaky_relu"} == {0.2}


def test_dense_ends_are_the_examples_4x4_convolutions():
    """G's dense + reshape is ConvTranspose2d(nz, F, base, 1, 0) on z (N, nz, 1, 1), D's
    flatten + dense(1) is Conv2d(F, 1, base, 1, 0) on its last map (zero biases: the example
    has none)."""
    model = gan.DCGAN(latent=3, channels=1, size=16, gen_features=2, disc_features=2, stages=2)
    gp, gs, dp, ds = gan.init_params(model, 13)
    _, z = _batch(model, 14)
    f, b = 4, model.base
    _, _, tape = network.forward_tape(model.generator(), gp, gs, z, BN)
    first_map = tape[2][1]  # the input of the batch norm after the reshape
    want = C.conv_transpose2d(z[:, :, None, None], gp[0].reshape(3, f, b, b), None, stride=1,
                              padding=0)
    np.testing.assert_allclose(first_map, want, rtol=U, atol=U)
    x, _ = network.forward(model.generator(), gp, gs, z, True, BN)
    logits, _, tape = network.forward_tape(model.discriminator(), dp, ds, x, BN)
    last_map = tape[-2][1]  # the input of the flatten
    want = C.conv2d(last_map, dp[-2][:, 0].reshape(1, f, b, b), None, stride=1, padding=0)
    np.testing.assert_allclose(logits, want.reshape(-1, 1), rtol=U, atol=U)


def test_init_params():
    gp, gs, dp, ds = gan.init_params(SMALL, 3)
    gen, disc = SMALL.generator(), SMALL.discriminator()
    assert [p.shape for p in gp] == gen.shapes()[0] and [p.shape for p in dp] == disc.shapes()[0]
    assert [s.shape for s in gs] == gen.shapes()[1] and [s.shape for s in ds] == disc.shapes()[1]
    again = gan.init_params(SMALL, 3)
    for xs, ys in zip((gp, gs, dp, ds), again, strict=True):
        _assert_equal(xs, ys)
    assert not np.array_equal(gan.init_params(SMALL, 4)[0][0], gp[0])


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("arg", "kwargs"), [
    ("latent", {"latent": 0}), ("channels", {"channels": True}), ("stages", {"stages": 1.0}),
    ("size", {"size": 12}), ("size", {"size": 8, "stages": 4}),
    ("negative_slope", {"negative_slope": -0.2}), ("negative_slope", {"negative_slope": "x"})])
def test_bad_model(arg, kwargs):
    with raises_for(arg):
        gan.DCGAN(**kwargs)


def test_bad_logits_and_kind():
    ok = np.zeros((2, 1))
    for bad in (np.zeros((2, 2)), np.zeros(2), np.zeros((0, 1)), [[np.nan], [0.0]]):
        with raises_for("real_logits"):
            gan.discriminator_loss(bad, ok)
        with raises_for("fake_logits"):
            gan.discriminator_loss_vjp(ok, bad, 1.0)
        with raises_for("fake_logits"):
            gan.generator_loss(bad)
    with raises_for("kind"):
        gan.generator_loss(ok, "wasserstein")
    with raises_for("kind"):
        gan.generator_loss_vjp(ok, 1.0, "wasserstein")
    with raises_for("g"):
        gan.generator_loss_vjp(ok, np.ones(2))


def test_bad_batches():
    gp, gs, dp, ds = gan.init_params(SMALL, 0)
    real, z = _batch(SMALL, 0)
    sgd = make_optimizer("sgd", lr=0.1)
    with raises_for("real"):
        gan.discriminator_loss_and_grads(SMALL, dp, ds, real[:, :1], real, BN)
    with raises_for("fake"):
        gan.discriminator_loss_and_grads(SMALL, dp, ds, real, real[..., :4, :4], BN)
    with raises_for("z"):
        gan.generator_loss_and_grads(SMALL, gp, gs, dp, ds, z[:, :2], BN)
    with raises_for("z"):
        gan.generator_loss_and_grads(SMALL, gp, gs, dp, ds, z[:, :, None], BN)
    with raises_for("loss"):
        gan.generator_loss_and_grads(SMALL, gp, gs, dp, ds, z, BN, "hinge")
    with raises_for("z"):
        gan.train_step(SMALL, gp, gs, dp, ds, sgd, sgd.init(gp), sgd, sgd.init(dp), real, z[:2], BN)
    with raises_for("loss"):
        gan.train_step(SMALL, gp, gs, dp, ds, sgd, sgd.init(gp), sgd, sgd.init(dp), real, z, BN,
                       "hinge")
    with raises_for("batches"):
        gan.train(SMALL, gp, gs, dp, ds, sgd, sgd, [], BN)
    with raises_for(r"batches\[1\]"):
        gan.train(SMALL, gp, gs, dp, ds, sgd, sgd, [(real, z), (real,)], BN)
    with raises_for("params"):
        gan.generator_loss_and_grads(SMALL, gp[:-1], gs, dp, ds, z, BN)
