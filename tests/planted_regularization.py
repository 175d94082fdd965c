"""Planted bugs of dropout and the weight penalties, each modelled on a real one (see
tests/planted.py): the oracle's adapter with its regularizers (backends/regularization.py's
NumpyRegularization) and one thing broken as framework or user code breaks it. Each must
make properties/test_dropout.py or properties/test_penalties.py fail in its ``component``."""

from __future__ import annotations

import numpy as np

from backends.regularization import DROPOUTS, NumpyRegularization, draw_mask
from reference import regularization as R
from tests.planted import Planted


class PlantedRegularization(Planted, NumpyRegularization):
    """Base: the oracle's regularizers, masks from np.random.default_rng(seed)."""


class DropoutScaledByP(PlantedRegularization):
    """Dropout keeps x / p instead of x / (1 - p): the rate read as the keep probability in
    the scale only (TF1's keep_prob against Keras' rate), right only at p = 0.5."""

    name, component = "planted-dropout-scaled-by-p", "dropout"

    def dropout(self, x, p, training, seed):
        if not training or p in (0.0, 1.0):
            return super().dropout(x, p, training, seed)
        return self.dropout_mask("dropout", np.shape(x), p, seed) * np.asarray(x) / p


class DropoutKeepsWithProbabilityP(PlantedRegularization):
    """The mask keeps an element with probability p, the drop rate (bernoulli(p) where
    bernoulli(1 - p) was meant), the scale still 1 / (1 - p): each output is x mask / (1 - p)
    on its own mask, only the masks' rate is wrong."""

    name, component = "planted-dropout-keeps-with-probability-p", "dropout"

    def dropout_mask(self, name, shape, p, seed):
        return 1.0 - super().dropout_mask(name, shape, p, seed)  # kept where u < p


class DropoutActiveInEval(PlantedRegularization):
    """Dropout ignores ``training`` (a functional call that forgets to pass
    training=self.training): eval mode still drops and scales."""

    name, component = "planted-dropout-active-in-eval", "dropout"

    def dropout(self, x, p, training, seed):
        return super().dropout(x, p, True, seed)

    def dropout2d(self, x, p, training, seed):
        return super().dropout2d(x, p, True, seed)

    def regularization_vjp(self, name, x, cotangent, **kwargs):
        if name in DROPOUTS:
            kwargs["training"] = True
        return super().regularization_vjp(name, x, cotangent, **kwargs)


class Dropout2dPerElement(PlantedRegularization):
    """Channel dropout draws one mask value per element (F.dropout where F.dropout2d was
    meant): whole feature maps are no longer dropped together."""

    name, component = "planted-dropout2d-per-element", "dropout2d"

    def dropout2d(self, x, p, training, seed):
        return R.dropout(x, draw_mask(seed, np.shape(x), p), p, training)

    def regularization_vjp(self, name, x, cotangent, **kwargs):
        if name != "dropout2d":
            return super().regularization_vjp(name, x, cotangent, **kwargs)
        m = draw_mask(kwargs["seed"], np.shape(x), kwargs["p"])
        return (self.dropout2d(x, **kwargs),
                R.dropout_vjp(x, cotangent, m, kwargs["p"], kwargs["training"])[0])


class DropoutGeneratorNotReseeded(PlantedRegularization):
    """The seed is taken once: every call draws the next mask from one generator (a module
    that seeds its generator at construction), so the same seed gives different masks, and
    the backward pass another mask than the forward's."""

    name, component = "planted-dropout-generator-not-reseeded", "dropout"

    def __init__(self, device="cpu"):
        super().__init__(device)
        self._rng = np.random.default_rng(0)

    def dropout_mask(self, name, shape, p, seed):
        return (self._rng.random(shape if name == "dropout" else shape[:2]) >= p) \
            .astype(np.float64)


class L2GradientOffByTwo(PlantedRegularization):
    """The L2 penalty's gradient is 2 lam w whatever the convention: the derivative of
    lam sum w^2 written for the (lam / 2) sum w^2 the penalty computes ('half')."""

    name, component = "planted-l2-gradient-off-by-two", "l2_penalty"

    def regularization_vjp(self, name, x, cotangent, **kwargs):
        if name != "l2_penalty":
            return super().regularization_vjp(name, x, cotangent, **kwargs)
        return (self.l2_penalty(x, **kwargs),
                R.l2_penalty_vjp(x, cotangent, kwargs["lam"], "full")[0])


class L1GradientWithoutLam(PlantedRegularization):
    """The L1 penalty's gradient is g sign(w), lam dropped (a hand-written subgradient that
    forgot the strength)."""

    name, component = "planted-l1-gradient-without-lam", "l1_penalty"

    def regularization_vjp(self, name, x, cotangent, **kwargs):
        if name != "l1_penalty":
            return super().regularization_vjp(name, x, cotangent, **kwargs)
        return self.l1_penalty(x, **kwargs), float(cotangent) * np.sign(x)


REGULARIZATION_PLANTED = [DropoutScaledByP, DropoutKeepsWithProbabilityP, DropoutActiveInEval,
                          Dropout2dPerElement, DropoutGeneratorNotReseeded, L2GradientOffByTwo,
                          L1GradientWithoutLam]
"""Every planted regularization backend."""
