"""A NumPy backend's networks are composed from its own components: its forwards and its
``vjps`` (backends/numpy_backend.py), so one broken component reaches the MLP, LeNet and
ResNet, while the plain NumpyBackend still equals the oracle (reference.network)."""

from __future__ import annotations

import numpy as np
import pytest

from backends.numpy_backend import NumpyBackend
from reference import network
from tests import planted, planted_cnn

BN = {"momentum": 0.1, "eps": 1e-5}
ARCHS = {
    "mlp-tanh-mse": network.mlp([3, 5, 4], "tanh", "mse"),
    "mlp-gelu_tanh-ce": network.mlp([3, 5, 4], "gelu_tanh", "cross_entropy"),
    "lenet": network.lenet(1, 8, (2, 3), 3, (5, 4), 3),
    "resnet": network.resnet(2, 6, 2, 3),
}


def problem(arch: network.Architecture, seed: int = 0):
    """(params, state, x, target) for a batch of 4, the running statistics moved off 0 and 1."""
    rng = np.random.default_rng(seed)
    params, state = arch.init(seed)
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]
    state = [s + 0.1 * rng.random(s.shape) for s in state]
    x = rng.standard_normal((4, *arch.input_shape))
    target = (rng.integers(0, arch.classes, 4) if arch.loss == "cross_entropy"
              else rng.standard_normal((4, arch.classes)))
    return params, state, x, target


def run(forward, loss_and_grads, arch: network.Architecture) -> dict[str, list[np.ndarray]]:
    """'forward': outputs and new state in train and eval mode; 'loss', 'grads', 'state': of
    loss_and_grads (a backend's network_forward / network_loss_and_grads, or the oracle's)."""
    params, state, x, target = problem(arch)
    out = {"forward": []}
    for training in (True, False):
        y, new_state = forward(arch, params, state, x, training, BN)
        out["forward"] += [y, *new_state]
    value, grads, new_state = loss_and_grads(arch, params, state, x, target, BN)
    return {**out, "loss": [np.asarray(value)], "grads": grads, "state": new_state}


def backend(cls, arch: network.Architecture) -> dict[str, list[np.ndarray]]:
    bk = cls()
    return run(bk.network_forward, bk.network_loss_and_grads, arch)


def oracle(arch: network.Architecture) -> dict[str, list[np.ndarray]]:
    return run(network.forward, network.loss_and_grads, arch)


def equal(got: dict, want: dict, part: str) -> bool:
    assert len(got[part]) == len(want[part]), part
    return all(np.array_equal(a, e) for a, e in zip(got[part], want[part], strict=True))


@pytest.mark.parametrize("name", ARCHS)
def test_numpy_backend_composes_the_oracle(name):
    got, want = backend(NumpyBackend, ARCHS[name]), oracle(ARCHS[name])
    assert all(equal(got, want, part) for part in want)


def test_network_vjps_follow_the_backend():
    vjps = planted.DenseBiasGradFirstRow().network_vjps()
    assert vjps["dense"] is planted.DenseBiasGradFirstRow.vjps["dense"]
    assert set(network.ORACLE_VJPS) <= set(vjps)


@pytest.mark.parametrize(("cls", "name", "broken"), [
    (planted.DenseBiasGradFirstRow, "mlp-tanh-mse", "grads"),
    (planted.DenseBiasGradFirstRow, "lenet", "grads"),
    (planted.TanhVjpFromInput, "mlp-tanh-mse", "grads"),
    (planted.MseVjpMissingTwo, "mlp-tanh-mse", "grads"),
    (planted_cnn.ConvKernelFlipped, "lenet", "forward"),
    (planted_cnn.BatchNormMomentumFlipped, "resnet", "forward"),
    (planted.ReluStraightThroughBackward, "resnet", "grads"),
    (planted_cnn.GlobalAvgPoolVjpUndivided, "resnet", "grads"),
], ids=lambda v: getattr(v, "name", v))
def test_broken_component_reaches_the_network(cls, name, broken):
    """A component broken in its forward changes the outputs or running statistics; one
    broken in its VJP (the forward intact) changes the gradients only."""
    got, want = backend(cls, ARCHS[name]), oracle(ARCHS[name])
    assert not equal(got, want, broken)
    if broken == "grads":
        assert all(equal(got, want, part) for part in ("forward", "loss", "state"))


@pytest.mark.parametrize(("cls", "name"), [
    (planted.MlpBackpropSkipsActivation, "mlp-tanh-mse"),
    (planted_cnn.ResidualShortcutMissingInBackward, "resnet"),
], ids=lambda v: getattr(v, "name", v))
def test_deliberate_override_is_kept(cls, name):
    """A network_loss_and_grads overridden on purpose is what runs."""
    assert cls.network_loss_and_grads is not NumpyBackend.network_loss_and_grads
    assert not equal(backend(cls, ARCHS[name]), oracle(ARCHS[name]), "grads")


def test_override_defers_to_the_composition():
    """MlpBackpropSkipsActivation off the MLP: the composition of the oracle's components."""
    got, want = backend(planted.MlpBackpropSkipsActivation, ARCHS["lenet"]), oracle(ARCHS["lenet"])
    assert all(equal(got, want, part) for part in want)
