"""The oracle as a backend: float64 NumPy, VJPs from the hand-written backward passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends.base import Backend, Unsupported
from reference import activations as A
from reference import dense as D
from reference import losses as L
from reference import mlp as M
from reference import optimizers as O

COMPONENTS: dict[str, tuple[Callable, Callable]] = {
    "dense": (D.dense, D.dense_vjp),
    **{n: (getattr(A, n), getattr(A, n + "_vjp"))
       for n in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus",
                 "softmax", "log_softmax")},
    **{n: (getattr(L, n), getattr(L, n + "_vjp"))
       for n in ("mse_loss", "l1_loss", "huber_loss", "bce_with_logits", "cross_entropy",
                 "nll_loss")},
}
"""Component name -> (forward, vjp) of the oracle."""


def _component(name: str):
    def method(self, *args, **kwargs):
        return COMPONENTS[name][0](*args, **kwargs)
    method.__name__ = name
    method.__doc__ = COMPONENTS[name][0].__doc__
    return method


class NumpyBackend(Backend):
    """reference/ itself. Certifying it checks the suite's plumbing and the invariants."""

    name = "numpy"
    dtypes = ("float64",)
    conventions: dict[str, dict[str, Any]] = {
        "sgd": {"dampen_first_step": (False, True)},
        "adam": {"amsgrad": (None, "torch", "optax")},
        "adamw": {"amsgrad": (None, "torch", "optax")},
        "rmsprop": {"eps_in_sqrt": (False, True)},
        "adagrad": {"eps_in_sqrt": (False, True)},
    }

    #: the VJP used for each component; a subclass may replace one.
    vjps: dict[str, Callable] = {n: pair[1] for n, pair in COMPONENTS.items()}

    def asarray(self, x, dtype=None):
        x = np.asarray(x)
        if dtype is None:
            return x.copy()
        if dtype != "float64":
            raise Unsupported(f"numpy backend computes in float64 only, not {dtype}")
        return x.astype(np.float64)

    def to_numpy(self, x):
        x = np.asarray(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x

    def dtype_of(self, x):
        return str(np.asarray(x).dtype)

    def component_vjp(self, name: str, primals: Sequence[Any], cotangent: Any, **kwargs: Any):
        if name not in self.vjps:
            raise Unsupported(f"numpy backend has no VJP for {name!r}")
        out = getattr(self, name)(*primals, **kwargs)
        grads = _call_vjp(self.vjps[name], name, primals, cotangent, dict(kwargs))
        return out, tuple(grads[: len(primals)])

    def optimizer(self, name, **hyper):
        return O.make_optimizer(name, **hyper)

    def mlp_forward(self, params, x, activation="tanh"):
        return M.mlp_forward(params, x, activation)

    def mlp_loss_and_grads(self, params, x, target, activation="tanh", loss="mse"):
        return M.mlp_loss_and_grads(params, x, target, activation, loss)


def _call_vjp(vjp: Callable, name: str, primals, cotangent, kwargs) -> tuple:
    """Call an oracle VJP whose non-differentiable positional inputs (target, labels) come
    between the primals and the cotangent."""
    if name in ("mse_loss", "l1_loss", "huber_loss", "bce_with_logits"):
        return vjp(primals[0], kwargs.pop("target"), cotangent, **kwargs)
    if name in ("cross_entropy", "nll_loss"):
        return vjp(primals[0], kwargs.pop("labels"), cotangent, **kwargs)
    if name == "dense":
        x, w, *b = primals
        return vjp(x, w, b[0] if b else kwargs.pop("b", None), cotangent)
    return vjp(*primals, cotangent, **kwargs)


for _name in COMPONENTS:
    setattr(NumpyBackend, _name, _component(_name))
