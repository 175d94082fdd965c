"""A component added from outside the tree, as README "Adding a component" shows: mish.

Load it as a pytest plugin (``-p tests.extension.mish``) so it is registered before the
properties are collected; certify ``tests.extension.mish:TorchMish`` / ``JaxMish``.
"""

from __future__ import annotations

import jax
import numpy as np
import torch.nn.functional as F

from backends.jax_backend import JaxBackend
from backends.torch_backend import TorchBackend
from properties import specs
from properties.inputs import Inputs
from properties.strategies import floats_array, shapes
from reference import registry
from reference.component import Component


# 1. the oracle: forward and hand-written VJP, float64
def mish(x: np.ndarray) -> np.ndarray:
    """x tanh(softplus(x)) (Misra 2019, torch.nn.functional.mish)."""
    return x * np.tanh(np.logaddexp(0.0, x))


def mish_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    """d/dx = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = softplus(x)."""
    t = np.tanh(np.logaddexp(0.0, x))
    return (g * (t + x * (1 - t * t) / (1 + np.exp(-x))),)


# 2. its record
registry.register(Component("mish", mish, mish_vjp, inputs=("x",), family="activation"))


# 3. its case: how the properties draw its inputs
def _case(data, dtype, tail):
    shape = data.draw(shapes(), label="shape")
    return Inputs((data.draw(floats_array(shape, -6.0, 6.0, dtype), label="x"),), {})


specs.register("mish", specs.Spec(_case))


# 4. one method per adapter
class TorchMish(TorchBackend):
    name = "torch-extended"  # a name without "mish": the test selects by -k mish

    def mish(self, x):
        return F.mish(x)


class JaxMish(JaxBackend):
    name = "jax-extended"

    def mish(self, x):
        return jax.nn.mish(x)

