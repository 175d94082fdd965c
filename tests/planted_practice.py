"""Planted bugs of weight initialisation and early stopping, each modelled on a real one (see
tests/planted.py): the oracle's adapter with its training practice (backends/practice.py's
NumpyPractice) and one formula broken as user code or a port breaks it. Each must make
properties/test_init.py or properties/test_early_stopping.py fail in its ``component``."""

from __future__ import annotations

import math

import numpy as np

from backends.practice import NumpyPractice, init_shape, layout_of
from reference import init as I
from tests.planted import Planted


class PlantedPractice(Planted, NumpyPractice):
    """Base: the oracle's initialisers and early stopping."""

    def draw(self, dist: I.InitDistribution, scheme: str, shape, layout: str, seed: int
             ) -> np.ndarray:
        out = init_shape(scheme, shape, layout)
        return I.sample(dist, math.prod(out), np.random.default_rng(seed)).reshape(out)


class HeFanOut(PlantedPractice):
    """He / Kaiming initialisation scaled by fan_out where fan_in is claimed (mode='fan_in',
    and jax's he_* whose mode is fan_in): the fan read from the wrong axis, as code that takes
    fan_in = weight.shape[0] of torch's (O, I) weight does."""

    name = "planted-init-he-fan-out"
    component = "weight_init"

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        lay = layout_of(layout, shape)
        if scheme in ("kaiming_uniform", "kaiming_normal") and options.get("mode", "fan_in") == "fan_in":
            dist = I.distribution(scheme, shape, lay, **{**options, "mode": "fan_out"})
        elif scheme in ("he_uniform", "he_normal"):
            dist = I.distribution("variance_scaling", shape, lay, scale=2.0, mode="fan_out",
                                  distribution="uniform" if scheme == "he_uniform"
                                  else "truncated_normal", **options)
        else:
            return super().init_sample(scheme, shape, seed, dtype, layout=layout, **options)
        return self.draw(dist, scheme, shape, layout, seed)


class XavierBoundMissingFactor2(PlantedPractice):
    """Xavier / Glorot uniform with the bound gain sqrt(3 / (fan_in + fan_out)): the factor 2
    of the variance 2 / (fan_in + fan_out) dropped (samples' std sqrt(2) too small)."""

    name = "planted-init-xavier-bound-missing-2"
    component = "weight_init"

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        if scheme not in ("xavier_uniform", "glorot_uniform"):
            return super().init_sample(scheme, shape, seed, dtype, layout=layout, **options)
        fan_in, fan_out = I.fans(shape, layout_of(layout, shape))
        bound = options.get("gain", 1.0) * math.sqrt(3.0 / (fan_in + fan_out))
        return self.draw(I.InitDistribution("uniform", 0.0, bound, -bound, bound), scheme, shape,
                         layout, seed)


class TruncatedNormalNotRescaled(PlantedPractice):
    """A variance-scaling truncated normal (he_normal, glorot_normal, lecun_normal,
    variance_scaling) claimed rescaled but drawn as N(0, v) truncated at 2 sqrt(v) without
    dividing by the truncated std .8796 (a port of jax's initialisers that drops the
    constant): the samples' std is 0.88 of the target."""

    name = "planted-init-truncated-not-rescaled"
    component = "weight_init"

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        if options.get("truncation") == "rescaled":
            options = {**options, "truncation": "plain"}
        return super().init_sample(scheme, shape, seed, dtype, layout=layout, **options)


class TorchDefaultLinearA0(PlantedPractice):
    """torch's default Linear / Conv weight init as kaiming_uniform_ with a = 0 (gain sqrt(2))
    instead of a = sqrt(5): the bound sqrt(6 / fan_in) instead of 1 / sqrt(fan_in)."""

    name = "planted-init-torch-default-a0"
    component = "weight_init"

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        if scheme not in ("torch_default_linear", "torch_default_conv"):
            return super().init_sample(scheme, shape, seed, dtype, layout=layout, **options)
        dist = I.distribution("kaiming_uniform", shape, layout_of(layout, shape), a=0.0)
        return self.draw(dist, scheme, shape, layout, seed)


class PatienceFromWrongEpoch(PlantedPractice):
    """Early stopping that counts patience from the epoch after the last improvement: it
    stops one epoch late (the policy run with patience + 1)."""

    name = "planted-early-stopping-patience-off-by-one"
    component = "early_stopping"

    def early_stopping(self, history, *, patience=0, **kwargs):
        return super().early_stopping(history, patience=patience + 1, **kwargs)


class RestoresLastWeights(PlantedPractice):
    """Early stopping that restores the weights of the last epoch run (the stopped epoch)
    instead of the best epoch's."""

    name = "planted-early-stopping-restores-last"
    component = "early_stopping"

    def early_stopping(self, history, **kwargs):
        stopped, best = super().early_stopping(history, **kwargs)
        if best == -1:
            return stopped, best
        return stopped, (stopped if stopped != -1 else len(history) - 1)


PRACTICE_PLANTED = [HeFanOut, XavierBoundMissingFactor2, TruncatedNormalNotRescaled,
                    TorchDefaultLinearA0, PatienceFromWrongEpoch, RestoresLastWeights]
