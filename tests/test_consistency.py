"""The records stay complete: every component has a spec, planted bugs, an adapter method or a
declared unsupported in torch and jax with the oracle's defaults, conventions the oracle
accepts, lacked arguments that are arguments and not conventions, and known divergences
that name what exists. Each check is also shown failing on a deliberately incomplete record."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

from backends.base import Backend, KnownDivergence
from backends.diffusion import COMPONENTS as DIFFUSION_COMPONENTS
from backends.numpy_backend import NumpyBackend
from backends.practice import COMPONENTS as PRACTICE_COMPONENTS
from backends.recurrent import COMPONENTS as SEQUENCE_COMPONENTS
from backends.regularization import COMPONENTS as REGULARIZATION_COMPONENTS
from properties import consistency as K
from properties.architectures import CASES
from properties.specs import SPECS, Spec
from reference import registry
from reference.component import Component
from reference.optimizers import OPTIMIZERS
from tests.optional import need
from tests.planted import PLANTED
from tests.planted_augment import AUGMENT_PLANTED
from tests.planted_cnn import CNN_PLANTED
from tests.planted_rnn import RNN_PLANTED

ARCHITECTURES = set(CASES)
#: the whole models' properties, by the component their test module files them under
MODELS = {m.args[0] for mod in ("test_language_model", "test_gan", "test_vae", "test_denoiser")
          for m in importlib.import_module(f"properties.{mod}").pytestmark
          if m.name == "component"}
ALL_PLANTED = PLANTED + CNN_PLANTED + RNN_PLANTED + AUGMENT_PLANTED


ADAPTERS = {"TorchBackend": ("torch", "backends.torch_backend"),
            "JaxBackend": ("jax", "backends.jax_backend")}


def _adapter(cls: str) -> type[Backend]:
    framework, module = ADAPTERS[cls]
    need(framework, reason=f"{cls} needs {framework}")
    return getattr(importlib.import_module(module), cls)


def _mish(x):
    """x tanh(softplus(x)): a component with no spec, no planted bug and no adapter."""
    return x * np.tanh(np.logaddexp(0.0, x))


def _mish_vjp(x, g):
    return (g,)


MISH = Component("mish", _mish, _mish_vjp, ("x",), "activation")


def test_every_component_has_a_spec():
    assert K.missing_specs(registry.RECORDS, SPECS) == []


def test_a_component_without_a_spec_is_named():
    assert K.missing_specs({**registry.RECORDS, "mish": MISH}, SPECS) == [
        "component 'mish' has no spec in properties.specs (how its inputs are drawn)"]
    assert K.missing_specs(registry.RECORDS, {**SPECS, "mish": Spec(SPECS["relu"].case)}) == [
        "spec 'mish' has no record in reference.registry"]


def test_every_component_has_a_planted_bug():
    assert K.missing_planted(registry.RECORDS, [c.component for c in ALL_PLANTED]) == []


def test_every_architecture_has_a_planted_bug():
    assert K.missing_planted(CASES, [c.component for c in ALL_PLANTED]) == []


def test_a_component_without_a_planted_bug_is_named():
    assert K.missing_planted({"relu": registry.RECORDS["relu"], "mish": MISH}, ["relu"]) == [
        "component 'mish' has no planted bug in tests/planted*.py"]


@pytest.mark.parametrize("cls", sorted(ADAPTERS))
def test_adapters_implement_or_decline_every_component(cls):
    adapter = _adapter(cls)
    assert K.missing_adapters(adapter, registry.RECORDS) == []
    assert K.default_mismatches(adapter, registry.RECORDS) == []
    assert K.convention_mismatches(adapter, registry.RECORDS) == []
    assert K.lacked_mismatches(adapter, registry.RECORDS) == []
    components = (set(registry.RECORDS) | set(OPTIMIZERS) | ARCHITECTURES
                  | set(SEQUENCE_COMPONENTS) | set(DIFFUSION_COMPONENTS) | MODELS
                  | set(REGULARIZATION_COMPONENTS) | set(PRACTICE_COMPONENTS))
    assert K.unknown_divergences(adapter, K.property_tests(), components) == []


def test_the_numpy_backend_is_every_record():
    backend = NumpyBackend()
    assert all(getattr(backend, n) is rec.forward for n, rec in registry.RECORDS.items())
    assert K.convention_mismatches(NumpyBackend, registry.RECORDS) == []
    assert K.lacked_mismatches(NumpyBackend, registry.RECORDS) == []


class _Incomplete(Backend):
    """Defines relu with another default, lacks softplus, declares gelu unsupported, follows
    a tie rule the oracle lacks and expects a divergence in a test that does not exist."""

    name = "incomplete"
    unsupported = {"gelu": "no GELU here"}
    conventions = {"max_pool2d": {"ties": "last"}, "relu": {"inplace": True}}
    known_divergences = (KnownDivergence("test_nothing", "relu", "made up"),
                         KnownDivergence("test_forward", "nothing", "made up"))

    def leaky_relu(self, x, negative_slope=0.2):
        return x


def test_an_incomplete_adapter_is_named():
    records = {n: registry.RECORDS[n] for n in ("leaky_relu", "softplus", "gelu", "max_pool2d",
                                                "relu")}
    assert K.missing_adapters(_Incomplete, records) == [
        f"_Incomplete neither implements {n!r} nor declares it in unsupported"
        for n in ("max_pool2d", "relu", "softplus")]
    assert K.default_mismatches(_Incomplete, records) == [
        "_Incomplete.leaky_relu(x, negative_slope=0.2) differs from the oracle's "
        "leaky_relu(x, negative_slope=0.01)"]
    assert K.convention_mismatches(_Incomplete, records) == [
        "_Incomplete.conventions['max_pool2d']['ties'] = 'last': the oracle accepts "
        "('first', 'split')",
        "_Incomplete.conventions['relu'] names 'inplace', which is not an argument of relu"]
    assert K.unknown_divergences(_Incomplete, K.property_tests(), {"relu"}) == [
        "_Incomplete: known divergence names test 'test_nothing', which does not exist",
        "_Incomplete: known divergence names component 'nothing', which does not exist"]


class _Lacking(Backend):
    """Declares arguments it lacks: one right, the others malformed, a convention, unknown
    names, or declared among the conventions too."""

    name = "lacking"
    conventions = {"sgd": {"dampening": 0.0}}
    lacks = {"softplus": {"beta": (1.0, "no beta here"), "gamma": (1.0, "made up")},
             "max_pool2d": {"ties": ("first", "no tie rule")},
             "sgd": {"dampening": 0.0},
             "adam": {"eps_root": (0.0, "no eps_root here")},
             "mlp": {"width": (4, "made up")}}


def test_a_malformed_lacked_argument_is_named():
    assert K.lacked_mismatches(_Lacking, registry.RECORDS) == [
        "_Lacking.lacks['max_pool2d']['ties']: ties is a convention of max_pool2d (the "
        "oracle accepts ('first', 'split')); declare it in conventions",
        "_Lacking.lacks names 'mlp', which is neither a component, an optimizer nor a method of the backend",
        "_Lacking.lacks['sgd']['dampening'] = 0.0: expected (the value it is fixed to, why)",
        "_Lacking.lacks['sgd']['dampening'] is declared in conventions too",
        "_Lacking.lacks['softplus'] names 'gamma', which is not an argument of softplus"]


def test_a_declared_unsupported_component_says_why():
    with pytest.raises(Exception, match="incomplete: gelu: no GELU here"):
        _Incomplete().gelu(np.zeros(2))


def test_a_record_rejects_names_its_forward_lacks():
    with pytest.raises(ValueError, match=r"inputs \['y'\] are not parameters of _mish"):
        dataclasses.replace(MISH, inputs=("y",))
    with pytest.raises(ValueError, match="differentiable_outputs"):
        dataclasses.replace(MISH, differentiable_outputs=("z",))
