"""The oracle as a backend: float64 NumPy, VJPs from the hand-written backward passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends.augment import NumpyAugment
from backends.base import Backend, Unsupported
from backends.compose_denoiser import ChainedDenoiser
from backends.compose_gan import ChainedGAN
from backends.compose_lm import ChainedLanguageModel
from backends.compose_vae import ChainedVAE
from backends.diffusion import NumpyDiffusion
from backends.practice import NumpyPractice
from backends.recurrent import NumpyRecurrent
from backends.regularization import NumpyRegularization
from reference import network, registry
from reference import optimizers as O


class NumpyBackend(Backend, NumpyRecurrent, ChainedLanguageModel, ChainedGAN, ChainedVAE,
                   ChainedDenoiser, NumpyDiffusion, NumpyRegularization,
                   NumpyPractice, NumpyAugment):
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

    #: the oracle-style VJP (reference.component) used for each component; a subclass may
    #: replace one.
    vjps: dict[str, Callable] = {n: rec.vjp_fn for n, rec in registry.RECORDS.items()}

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

    def is_array(self, x):
        return isinstance(x, np.ndarray | np.generic)

    def dtype_of(self, x):
        return str(np.asarray(x).dtype)

    def __getattr__(self, name: str):
        """Every registered component (those registered later too) is the oracle's forward."""
        if name in registry.RECORDS:
            return registry.get(name).forward
        return super().__getattr__(name)

    def component_vjp(self, name: str, primals: Sequence[Any], cotangents: Sequence[Any],
                      **kwargs: Any):
        rec = registry.get(name)
        cots = rec.cotangents(cotangents)
        out = getattr(self, name)(*primals, **kwargs)
        outs = tuple(out) if rec.multi_output else (out,)
        grads = rec.call_vjp(primals, cots, kwargs, self.vjps.get(name, rec.vjp_fn))
        return tuple(o for o, c in zip(outs, cots, strict=True) if c is not None), grads

    def optimizer(self, name, **hyper):
        return O.make_optimizer(name, **hyper)

    def network_forward(self, arch, params, state, x, training=False, bn=None):
        """reference.network.forward over this backend's own components."""
        return network.forward(arch, params, state, x, training, bn, ops=self)

    def network_loss_and_grads(self, arch, params, state, x, target, bn=None):
        """reference.network.loss_and_grads over this backend's own components, chaining its
        own ``vjps``: a subclass's broken component reaches the networks."""
        return network.loss_and_grads(arch, params, state, x, target, bn, ops=self,
                                      vjps=self.network_vjps())

    def network_vjps(self) -> dict[str, Callable]:
        """``vjps`` under reference.network.ORACLE_VJPS's keys ('gelu_tanh': gelu's VJP with
        approximate='tanh')."""
        vjps = {**network.ORACLE_VJPS, **self.vjps}
        return {**vjps, "gelu_tanh": lambda x, g: vjps["gelu"](x, g, approximate="tanh")}


