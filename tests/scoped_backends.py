"""Test backends for known divergences scoped to some examples (tests/test_scoped_divergence.py).

``EpsScopedAdam`` puts Adam's eps under the square root when eps >= 1e-3, and declares that
divergence with the scope eps >= 1e-3: its certificate must show the divergence as known while
every other Adam example (AMSGrad, weight decay, small eps) is still checked.
``EpsScopedAdamAmsgradBug`` declares the same scope but also gets AMSGrad wrong for every eps:
the examples outside the scope must fail the test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import KnownDivergence
from backends.numpy_backend import NumpyBackend
from reference.optimizers import Optimizer, hyperparameters, make_optimizer

EPS_UNDER_ROOT = KnownDivergence(
    "test_trajectory", "adam", "eps >= 1e-3 is added under the square root: "
    "m_hat / sqrt(v_hat + eps)", "example#3", scope=(("eps", ">=", 1e-3),))


class EpsScopedAdam(NumpyBackend):
    """Adam divides by sqrt(v_hat + eps) when eps >= 1e-3; declared, scoped to eps >= 1e-3."""

    name = "eps-scoped-adam"
    known_divergences = (EPS_UNDER_ROOT,)

    def adam_hyperparameters(self, h: dict[str, Any]) -> dict[str, Any]:
        if h["eps"] >= 1e-3:
            h["eps_root"], h["eps"] = h["eps_root"] + h["eps"], 0.0
        return h

    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        if name != "adam":
            return super().optimizer(name, **hyper)
        return make_optimizer("adam", **self.adam_hyperparameters(hyperparameters("adam", **hyper)))


def _amsgrad_without_v_correction(lr, b1, b2, eps, eps_root, weight_decay, **_) -> Optimizer:
    """AMSGrad whose running max of the raw v is not divided by 1 - b2^t (L2 decay)."""
    def init(params):
        return {"t": 0, "m": [np.zeros_like(p) for p in params],
                "v": [np.zeros_like(p) for p in params], "vmax": [np.zeros_like(p) for p in params]}

    def update(grads, state, params):
        t = state["t"] + 1
        out = {"t": t, "m": [], "v": [], "vmax": []}
        new = []
        for g, p, m, v, vm in zip(grads, params, state["m"], state["v"], state["vmax"],
                                  strict=True):
            g = g + weight_decay * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vm = np.maximum(vm, v)
            new.append(p - lr * (m / (1 - b1**t)) / (np.sqrt(vm + eps_root) + eps))
            for key, value in (("m", m), ("v", v), ("vmax", vm)):
                out[key].append(value)
        return new, out

    return Optimizer(init, update)


class EpsScopedAdamAmsgradBug(EpsScopedAdam):
    """As EpsScopedAdam, and AMSGrad (either variant) forgets to divide the running max of v by
    1 - b2^t, for every eps: outside the declared scope too."""

    name = "eps-scoped-adam-amsgrad-bug"

    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        h = hyperparameters(name, **hyper)
        if name == "adam" and h["amsgrad"] and h["weight_decay_mode"] == "l2":
            return _amsgrad_without_v_correction(**self.adam_hyperparameters(h))
        return super().optimizer(name, **hyper)
