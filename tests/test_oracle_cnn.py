"""The oracle's CNNs certify themselves: the hand-chained backward of the residual block, LeNet
and the ResNet agrees with float64 central finite differences (tests/fd.py explains
the check and its bound), and the training loop is the composition it claims."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.specs import forward_terms
from reference import batchnorm as B
from reference import network
from reference import residual as R
from reference.losses import cross_entropy
from reference.optimizers import make_optimizer
from tests.fd import GAP, assert_vjp_matches_fd, seeded

BN = {"momentum": 0.1, "eps": 1e-5, "momentum_convention": "torch", "unbiased_running_var": True}


class _Kinks:
    """The oracle's ops, rejecting inputs within GAP of a ReLU kink or of a max-pool tie
    (a window whose maximum is a ReLU zero is exempt: its gradient is 0 either way)."""

    def __init__(self) -> None:
        ops = network.ORACLE_OPS
        self.conv2d, self.batch_norm, self.flatten = ops.conv2d, ops.batch_norm, ops.flatten
        self.global_avg_pool2d, self.dense = ops.global_avg_pool2d, ops.dense

    def relu(self, x):
        assume(np.all(np.abs(x) >= GAP))
        return network.ORACLE_OPS.relu(x)

    def max_pool2d(self, x, k):
        n, c, h, w = x.shape
        win = x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
        top = np.sort(win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k), -1)
        assume(np.all((top[..., -1] - top[..., -2] >= GAP) | (top[..., -1] == 0)))
        return network.ORACLE_OPS.max_pool2d(x, k)


def _net(data, name):
    arch = network.lenet(1, 8, (2, 3), 3, (5, 4), 3) if name == "lenet" else network.resnet(2, 5, 2, 3)
    params, state = arch.init(data.draw(st.integers(0, 2**32 - 1), label="init"))
    state = [s + (0.2 * seeded(data, s.shape, 1.0, f"s{i}") if i % 2 == 0 else 0.0)
             for i, s in enumerate(state)]
    x = seeded(data, (3, *arch.input_shape), 1.0, "x")
    labels = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=3, max_size=3),
                                  label="labels"))
    return arch, params, state, x, labels


@pytest.mark.parametrize("name", ["lenet", "resnet"])
@given(data=st.data())
def test_cnn_gradients_match_fd(data, name):
    arch, params, state, x, labels = _net(data, name)
    network.apply(arch, _Kinks(), params, state, x, True, BN)
    value, grads, new_state = network.loss_and_grads(arch, params, state, x, labels, BN)
    logits, fwd_state = network.forward(arch, params, state, x, True, BN)
    assert len(grads) == len(params) == len(arch.param_names())
    for a, b in zip(new_state, fwd_state, strict=True):
        np.testing.assert_array_equal(a, b)  # the same arithmetic, bit for bit

    def loss(*p):
        out, _ = network.forward(arch, list(p), state, x, True, BN)
        return cross_entropy(out, labels)

    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / np.sqrt(p.size) for j, p in enumerate(params)]
    # the logsumexp of the loss combines terms of the logits' size (see magnitudes.py)
    extra = float(forward_terms("cross_entropy", (logits,), {"labels": labels}))
    assert_vjp_matches_fd(loss, params, tangents, np.asarray(1.0), grads, extra)
    assert np.isfinite(value)


@pytest.mark.parametrize("projection", [False, True])
@given(data=st.data())
def test_residual_block_vjp_matches_fd(data, projection):
    c = 2
    o, stride = (3, 2) if projection else (2, 1)
    params = [seeded(data, s, 0.5, f"p{i}") for i, s in enumerate(
        [(o, c, 3, 3), (o,), (o,), (o, o, 3, 3), (o,), (o,)]
        + ([(o, c, 1, 1), (o,), (o,)] if projection else []))]
    state = [np.zeros(o) if i % 2 == 0 else np.ones(o) for i in range(6 if projection else 4)]
    x = seeded(data, (2, c, 5, 5), 1.0, "x")
    _, _, tape = R.residual_block_forward(x, params, state, stride, True, BN)
    for op, args, _ in tape:
        if op == "relu":
            assume(np.all(np.abs(args[0]) >= GAP))
    y, _ = R.residual_block(network.ORACLE_OPS, x, params, state, stride, True, BN)
    g = seeded(data, y.shape, 1.0, "g")
    dx, dparams = R.residual_block_vjp(x, params, state, g, stride, True, BN)

    def f(x_, *p):
        return R.residual_block(network.ORACLE_OPS, x_, list(p), state, stride, True, BN)[0]

    primals = [x, *params]
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / np.sqrt(p.size) for j, p in enumerate(primals)]
    assert_vjp_matches_fd(f, primals, tangents, g, [dx, *dparams])


def _bodies():
    """A generator body (dense, reshape, bn, relu, stride-2 conv_transpose, tanh) and a
    discriminator body (stride-2 conv, leaky ReLU 0.2, flatten, dense): no loss of their own."""
    L = network.Layer
    gen = network.Architecture("gen", (3,), (
        L("dense", 2 * 2 * 2), L("reshape", shape=(2, 2, 2)), L("bn"), L("relu"),
        L("conv_transpose", 2, 4, 2, 1), L("tanh")), loss=None)
    disc = network.Architecture("disc", (2, 4, 4), (
        L("conv", 3, 4, 2, 1), L("leaky_relu", negative_slope=0.2), L("flatten"), L("dense", 1)),
        loss=None)
    return gen, disc


class _LeakyKinks(_Kinks):
    def leaky_relu(self, x, negative_slope):
        assume(np.all(np.abs(x) >= GAP))
        return network.ORACLE_OPS.leaky_relu(x, negative_slope)


@pytest.mark.parametrize("which", [0, 1])
@given(data=st.data())
def test_body_backprop_matches_fd(data, which):
    """backprop's input and parameter gradients of a loss-less body, for a drawn cotangent."""
    arch = _bodies()[which]
    params, state = arch.init(data.draw(st.integers(0, 2**32 - 1), label="init"))
    x = seeded(data, (3, *arch.input_shape), 1.0, "x")
    ops = _LeakyKinks()
    ops.conv_transpose2d, ops.tanh = network.ORACLE_OPS.conv_transpose2d, np.tanh
    network.apply(arch, ops, params, state, x, True, BN)
    out, _, tape = network.forward_tape(arch, params, state, x, BN)
    g = seeded(data, out.shape, 1.0, "g")
    dx, grads = network.backprop(tape, g, BN)
    assert len(grads) == len(params) and out.shape[1:] == arch.shapes()[2]

    def f(x_, *p):
        return network.forward(arch, list(p), state, x_, True, BN)[0]

    primals = [x, *params]
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / np.sqrt(p.size)
                for j, p in enumerate(primals)]
    assert_vjp_matches_fd(f, primals, tangents, g, [dx, *grads])


def test_body_has_no_loss():
    gen, _ = _bodies()
    params, state = gen.init(0)
    with pytest.raises(ValueError, match="no loss"):
        network.loss_and_grads(gen, params, state, np.zeros((2, 3)), np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="changes the number of features"):
        network.Architecture("bad", (5,), (network.Layer("reshape", shape=(2, 2)),), loss=None)


def test_identity_block_needs_matching_channels():
    with pytest.raises(ValueError, match="layers"):
        network.Architecture("bad", (2, 5, 5), (network.Layer("block", 3),))


def test_training_is_steps_of_loss_and_grads():
    """network.train = loss_and_grads then the optimizer, per batch, running statistics carried."""
    arch = network.resnet(2, 5, 2, 3)
    params, state = arch.init(3)
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((4, 2, 5, 5)), rng.integers(0, 3, 4)
    batches = [np.array([0, 1]), np.array([2, 3, 1])]
    final, states, history = network.train(arch, params, state, x, labels,
                                       make_optimizer("sgd", lr=0.1, momentum=0.9), batches, BN)
    opt = make_optimizer("sgd", lr=0.1, momentum=0.9)
    p, s, o = params, state, opt.init(params)
    for k, idx in enumerate(batches):
        value, grads, s = network.loss_and_grads(arch, p, s, x[idx], labels[idx], BN)
        assert value == history[k]
        for a, b in zip(s, states[k], strict=True):
            np.testing.assert_array_equal(a, b)
        p, o = opt.update(grads, o, p)
    for a, b in zip(p, final, strict=True):
        np.testing.assert_array_equal(a, b)
    # the first batch norm's running mean moved by momentum 0.1 towards the batch mean
    _, _, tape = network.forward_tape(arch, params, state, x[batches[0]], BN)
    _, bn_input, _, _ = tape[1]  # layer 1 is the stem's batch norm
    _, mean, _ = B.batch_norm(bn_input, params[1], params[2], state[0], state[1], True, **BN)
    np.testing.assert_array_equal(mean, states[0][0])
