"""Training practice: weight initialisation drawn by the framework, and the framework's
early-stopping policy. The backend interface as a mixin, the oracle's implementation and the
calls the properties make.

``PracticeBackend`` gives a Backend two methods, each raising UnsupportedComponent until an
adapter overrides it:

    init_sample(scheme, shape, seed, dtype, *, layout, **options) -> native array
        A weight (or, for 'torch_default_bias', the bias of a layer whose weight has
        ``shape``: ``init_shape``) drawn by the framework's initialiser ``scheme``
        (reference/init.py's SCHEMES; the backend's own are ``init_schemes``) with its own
        generator seeded by ``seed`` (an int: the same seed gives the same draws), in
        ``dtype``. ``shape`` is in the backend's weight layout, a convention: 'torch' (conv
        OIHW, dense (O, I) as torch.nn.Linear stores it) or 'jax' (conv HWIO, dense (I, O) as
        flax's kernels); ``options`` are the scheme's (reference.init.OPTIONS), with
        ``truncation`` a convention of the variance-scaling truncated normals.
    early_stopping(history, *, mode, min_delta, patience, baseline, start_from_epoch,
                   convention) -> (stopped_epoch, best_epoch)
        The framework's early-stopping callback replayed over ``history`` (a sequence of
        Python floats, one monitored value per epoch, epochs counted from 0): the epoch at
        which it stops training and the epoch whose weights restoring the best weights gives
        back, each -1 for none (reference/early_stopping.py). ``convention`` ('keras',
        'flax') is the backend's declared policy; arguments a framework lacks are ``lacks``.

A mixin's ``practice_conventions`` join ``conventions`` and its ``practice_lacks`` join
``lacks`` (the class's own declarations win), so the properties draw them and certificates
list them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from backends.base import Family, Unsupported, UnsupportedComponent
from backends.harness import BackendError, guard
from backends.recurrent import checked_array
from reference import early_stopping as ES
from reference import init as I

#: the components the properties file these under
COMPONENTS = ("weight_init", "early_stopping")
#: weight layout conventions: name -> (the conv layout, the dense layout) of reference.init
LAYOUTS: dict[str, tuple[str, str]] = {"torch": ("OIHW", "OI"), "jax": ("HWIO", "IO")}
#: the oracle's conventions: component -> {argument: the values it accepts}
CONVENTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "weight_init": {"layout": tuple(LAYOUTS), "truncation": I.TRUNCATION},
    "early_stopping": {"convention": ES.CONVENTIONS},
}


def layout_of(layout: str, shape: Sequence[int]) -> str:
    """reference.init's layout of a weight of ``shape`` under the ``layout`` convention: the
    conv layout for 3 or more dimensions, the dense one for 2."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {tuple(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout][0 if len(shape) >= 3 else 1]


def init_shape(scheme: str, shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """The shape ``init_sample`` returns: ``shape``, or for 'torch_default_bias' (``shape``
    the weight's) the output size (O,)."""
    shape = tuple(int(s) for s in shape)
    if scheme != "torch_default_bias":
        return shape
    return (shape[0],) if layout_of(layout, shape) in ("OIHW", "OI") else (shape[-1],)


class PracticeBackend(Family):
    """Mixin for a Backend: weight initialisation and early stopping (module docstring)."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    practice_conventions: dict[str, dict[str, Any]] = {}
    #: component -> {argument: (the value it is fixed to, why)}
    practice_lacks: dict[str, dict[str, tuple[Any, str]]] = {}
    declarations = {"conventions": "practice_conventions", "lacks": "practice_lacks"}
    #: the initialisation schemes (reference.init.SCHEMES) the framework has
    init_schemes: tuple[str, ...] = ()

    def _check_scheme(self, scheme: str) -> None:
        """Unsupported for a scheme of reference.init the framework does not have."""
        if scheme not in self.init_schemes:
            raise Unsupported(f"{getattr(self, 'name', type(self).__name__)} has no "
                              f"initialiser {scheme!r}")

    def init_sample(self, scheme: str, shape: Sequence[int], seed: int, dtype: str, *,
                    layout: str = "torch", **options: Any) -> Any:
        """A weight of ``shape`` drawn by the framework's ``scheme``, seeded by ``seed``."""
        return self._lacks("init_sample")

    def early_stopping(self, history: Sequence[float], *, mode: str = "min",
                       min_delta: float = 0.0, patience: int = 0, baseline: float | None = None,
                       start_from_epoch: int = 0, convention: str = "keras") -> tuple[int, int]:
        """(stopped_epoch, best_epoch) of the framework's policy over ``history``, -1 for
        none."""
        return self._lacks("early_stopping")


class NumpyPractice(PracticeBackend):
    """reference/init.py's distributions sampled by NumPy (float64), and
    reference/early_stopping.py's policies."""

    practice_conventions: dict[str, dict[str, Any]] = CONVENTIONS
    init_schemes = I.SCHEMES

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        """reference.init.sample of the scheme's distribution with
        numpy.random.default_rng(seed)."""
        self._check_scheme(scheme)
        if dtype != "float64":
            raise UnsupportedComponent(f"the numpy initialisers are float64 only, not {dtype}")
        dist = I.distribution(scheme, shape, layout_of(layout, shape), **options)
        out = init_shape(scheme, shape, layout)
        return I.sample(dist, math.prod(out), np.random.default_rng(seed)).reshape(out)

    def early_stopping(self, history, *, mode="min", min_delta=0.0, patience=0, baseline=None,
                       start_from_epoch=0, convention="keras"):
        """reference.early_stopping.early_stopping."""
        out = ES.early_stopping(np.asarray(history, dtype=np.float64), mode, min_delta, patience,
                                baseline, start_from_epoch, convention)
        return (-1 if out.stopped_epoch is None else out.stopped_epoch,
                -1 if out.best_epoch is None else out.best_epoch)


# -- the calls the properties make: NumPy in and out, failures named ------------------------
def _method(backend: Any, name: str) -> Any:
    """backend.<name>; UnsupportedComponent for a backend without the mixin."""
    if not isinstance(backend, PracticeBackend):
        raise UnsupportedComponent(f"{backend.id} does not implement {name}")
    return getattr(backend, name)


def call_init(backend: Any, scheme: str, shape: Sequence[int], seed: int, dtype: str,
              kwargs: dict[str, Any]) -> np.ndarray:
    """backend.init_sample(scheme, shape, seed, dtype, **kwargs) as a NumPy array of
    ``init_shape`` and ``dtype`` (else BackendError)."""
    what = f"init_sample {scheme}"
    out = guard(backend, what, _method(backend, "init_sample"), scheme, tuple(shape), int(seed), dtype,
                **kwargs)
    a = checked_array(backend, what, out, dtype, "the weight")
    want = init_shape(scheme, shape, kwargs.get("layout", "torch"))
    if a.shape != want:
        raise BackendError(f"{backend.id}: {what} returned shape {a.shape}, expected {want}")
    return a


def _epoch(backend: Any, value: Any, label: str, epochs: int) -> int | None:
    """An epoch the policy returned: -1 is None; anything but an int in [-1, epochs) is a
    BackendError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not -1 <= value < epochs:
        raise BackendError(f"{backend.id}: early_stopping returned {value!r} as {label}, "
                           f"expected an int in [-1, {epochs})")
    return None if value == -1 else int(value)


def call_early_stopping(backend: Any, history: np.ndarray, kwargs: dict[str, Any]
                        ) -> tuple[int | None, int | None]:
    """(stopped_epoch, best_epoch) of backend.early_stopping(history as Python floats,
    **kwargs), None for none."""
    values = [float(v) for v in np.asarray(history, dtype=np.float64)]
    out = guard(backend, "early_stopping", _method(backend, "early_stopping"), list(values),
                **kwargs)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise BackendError(f"{backend.id}: early_stopping returned {type(out).__name__}, "
                           "expected (stopped_epoch, best_epoch)")
    return (_epoch(backend, out[0], "stopped_epoch", len(values)),
            _epoch(backend, out[1], "best_epoch", len(values)))
