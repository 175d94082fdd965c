"""jax.nn.initializers and flax's EarlyStopping behind backends/practice.py's interface.

Initialisation: jax.nn.initializers.<scheme>(...)(jax.random.key(seed), shape, dtype) on the
backend's device, jitted once per scheme, options, shape and dtype (the key is traced)
(jax/_src/nn/initializers.py): variance_scaling(scale, mode, distribution), glorot_*/he_*/
lecun_* (fixed scale, mode and distribution), truncated_normal(stddev, lower=, upper=), with
their default in_axis=-2, out_axis=-1: layout 'jax', conv HWIO and dense (I, O) as flax
stores its kernels. The truncated normals of variance scaling are rescaled to the target std
(stddev = sqrt(variance) / .87962566103423978): convention truncation='rescaled'.

Early stopping: flax.training.early_stopping.EarlyStopping(min_delta, patience) updated with
each value until should_stop; the best epoch is the last that ``has_improved``. flax has mode
'min' only, no baseline and no start_from_epoch (``practice_lacks``), and no weight
restoring (the training loop restores best_epoch's, as Keras would).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from backends.base import Unsupported
from backends.jax_compiled import COMPILED
from backends.practice import PracticeBackend
from reference import init as I

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
_FLAX = "flax.training.early_stopping.EarlyStopping"


def _initializer(scheme: str, options: dict[str, Any]):
    """The jax.nn.initializers initialiser of ``scheme`` with the oracle's option names."""
    inits = jax.nn.initializers
    o = dict(options)
    truncation = o.pop("truncation", "rescaled")
    if truncation != "rescaled":
        raise Unsupported(f"jax's variance-scaling truncated normal is rescaled, not {truncation!r}")
    if scheme == "variance_scaling":
        return inits.variance_scaling(o.pop("scale", 1.0), o.pop("mode", "fan_in"),
                                      o.pop("distribution", "truncated_normal"), **o)
    if scheme == "truncated_normal":
        return inits.truncated_normal(**o)
    return getattr(inits, scheme)(**o)


class JaxPractice(PracticeBackend):
    """Mixin for JaxBackend (backends/practice.py has the interface)."""

    init_schemes = I.JAX_SCHEMES
    practice_conventions: dict[str, dict[str, Any]] = {
        # _compute_fans(shape, in_axis=-2, out_axis=-1): flax's kernels are HWIO and (I, O);
        # variance_scaling divides its truncated normal by the truncated std .8796...
        "weight_init": {"layout": "jax", "truncation": "rescaled"},
        # flax.training.early_stopping.EarlyStopping's policy
        "early_stopping": {"convention": "flax"},
    }
    practice_lacks: dict[str, dict[str, tuple[Any, str]]] = {
        "early_stopping": {
            "mode": ("min", f"{_FLAX} minimises: it has no mode"),
            "baseline": (None, f"{_FLAX} has no baseline"),
            "start_from_epoch": (0, f"{_FLAX} has no start_from_epoch"),
        },
    }

    def init_sample(self, scheme, shape, seed, dtype, *, layout="jax", **options):
        """jax.nn.initializers.<scheme>(**options)(jax.random.key(seed), shape, dtype)."""
        self._check_scheme(scheme)
        if layout != "jax":
            raise Unsupported(f"jax's initialisers read fans from its own layout, not {layout!r}")
        if dtype not in _DTYPES:
            raise Unsupported(f"the initialiser property draws float32 and float64, not {dtype}")
        init = _initializer(scheme, options)
        shape = tuple(int(s) for s in shape)
        fn = COMPILED.get((id(self), "init_sample", scheme, tuple(sorted(options.items())), shape,
                           dtype), lambda: lambda key: init(key, shape, _DTYPES[dtype]))
        with jax.default_device(self._device):
            return fn(jax.random.key(seed))

    def early_stopping(self, history, *, mode="min", min_delta=0.0, patience=0, baseline=None,
                       start_from_epoch=0, convention="flax"):
        """flax's EarlyStopping updated with each value until should_stop."""
        from flax.training.early_stopping import EarlyStopping

        if convention != "flax":
            raise Unsupported(f"{_FLAX} follows the 'flax' policy, not {convention!r}")
        for name, value, fixed in (("mode", mode, "min"), ("baseline", baseline, None),
                                   ("start_from_epoch", start_from_epoch, 0)):
            if value != fixed:
                raise Unsupported(f"{_FLAX} has no {name} {value!r}")
        es = EarlyStopping(min_delta=min_delta, patience=patience)
        best = -1
        for epoch, v in enumerate(history):
            es = es.update(v)
            if es.has_improved:
                best = epoch
            if es.should_stop:
                return epoch, best
        return -1, best
