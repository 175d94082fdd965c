"""Dropout and the L1/L2 weight penalties: the backend interface, a mixin, the oracle's
implementation and the calls the properties make.

``RegularizationBackend`` gives a Backend the components of reference/regularization.py,
with the backend's OWN random numbers where the oracle takes a mask, each raising
UnsupportedComponent until an adapter overrides it:

    dropout(x, p, training, seed) -> y            x any shape; y = x mask / (1 - p) with the
                                                  backend's mask (kept with probability
                                                  1 - p), x when not training
    dropout2d(x, p, training, seed) -> y          x (N, C, H, W), one mask value per (n, c)
    l1_penalty(w, lam) -> scalar                  lam sum |w|
    l2_penalty(w, lam, convention) -> scalar      (lam / 2) sum w^2 ('half') or lam sum w^2
                                                  ('full'), reference.regularization's
                                                  L2_CONVENTIONS

Arrays are native, of the call's dtype; a penalty is a 0-d array. ``seed`` is an int: the
backend draws its mask from its own generator seeded by it (torch's global generator forked
and seeded, jax.random.key(seed), np.random.default_rng(seed)), so the same seed gives the
same mask, and different seeds independent ones. ``regularization_vjp(name, x, cotangent,
**kwargs)`` is (the output, J^T cotangent) through the backend's generic ``vjp``: the
differentiated call draws with the same seed, so it must use the forward's mask. A mixin's
``regularization_conventions`` join ``conventions`` (the class's own declarations win), so
the properties draw them and certificates list them.

The calls the properties make, NumPy in and out, a backend that raises, returns garbage or
mutates its input named as a BackendError: ``call_regularization``,
``call_regularization_vjp``, and ``optimizer_stepper`` (one optimizer update at a time from
given parameters, for the weight-decay relations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends.base import Family
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference import regularization as R

#: the components the properties file these under
DROPOUTS = ("dropout", "dropout2d")
PENALTIES = ("l1_penalty", "l2_penalty")
COMPONENTS = (*DROPOUTS, *PENALTIES)
#: the oracle's conventions: component -> {argument: the values it accepts}
CONVENTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "l2_penalty": {"convention": R.L2_CONVENTIONS},
}


class RegularizationBackend(Family):
    """Mixin for a Backend: dropout with its own masks, and the weight penalties (module
    docstring)."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    regularization_conventions: dict[str, dict[str, Any]] = {}
    declarations = {"conventions": "regularization_conventions"}

    def dropout(self, x: Any, p: float, training: bool, seed: int) -> Any:
        """x mask / (1 - p) with the backend's mask drawn from ``seed`` (x if not training)."""
        return self._lacks("dropout")

    def dropout2d(self, x: Any, p: float, training: bool, seed: int) -> Any:
        """Channel dropout of x (N, C, H, W): mask (N, C) drawn from ``seed``, shared over
        H and W (x if not training)."""
        return self._lacks("dropout2d")

    def l1_penalty(self, w: Any, lam: float) -> Any:
        """lam sum |w|, a 0-d array."""
        return self._lacks("l1_penalty")

    def l2_penalty(self, w: Any, lam: float, convention: str = "half") -> Any:
        """(lam / 2) sum w^2 ('half') or lam sum w^2 ('full'), a 0-d array."""
        return self._lacks("l2_penalty")

    def regularization_vjp(self, name: str, x: Any, cotangent: Any, **kwargs: Any
                           ) -> tuple[Any, Any]:
        """(name(x, **kwargs), J^T cotangent) by the backend's generic ``vjp``: for dropout
        the differentiated call draws its mask from the same seed as a forward call."""
        fn = getattr(self, name)
        (out,), (dx,) = self.vjp(lambda a: (fn(a, **kwargs),), [x], [cotangent])  # type: ignore[attr-defined]
        return out, dx


def draw_mask(seed: int, shape: tuple[int, ...], p: float) -> np.ndarray:
    """The oracle's mask: 1 where np.random.default_rng(seed).random(shape) >= p (kept with
    probability 1 - p), as float64 0/1."""
    return (np.random.default_rng(seed).random(shape) >= p).astype(np.float64)


class NumpyRegularization(RegularizationBackend):
    """reference/regularization.py itself (float64), masks from np.random.default_rng(seed),
    gradients from its hand-written VJPs; every convention the oracle has."""

    regularization_conventions: dict[str, dict[str, Any]] = CONVENTIONS

    def dropout_mask(self, name: str, shape: tuple[int, ...], p: float, seed: int
                     ) -> np.ndarray:
        """The mask of dropout (x's shape) or dropout2d ((N, C) of x's shape)."""
        return draw_mask(seed, shape if name == "dropout" else shape[:2], p)

    def dropout(self, x, p, training, seed):
        return R.dropout(x, self.dropout_mask("dropout", np.shape(x), p, seed), p, training)

    def dropout2d(self, x, p, training, seed):
        if np.ndim(x) != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {np.shape(x)}")
        return R.dropout2d(x, self.dropout_mask("dropout2d", np.shape(x), p, seed), p, training)

    def l1_penalty(self, w, lam):
        return np.asarray(R.l1_penalty(w, lam))

    def l2_penalty(self, w, lam, convention="half"):
        return np.asarray(R.l2_penalty(w, lam, convention))

    def regularization_vjp(self, name, x, cotangent, **kwargs):
        """The oracle's forward and VJP; dropout's on the mask the forward draws."""
        out = getattr(self, name)(x, **kwargs)
        if name in DROPOUTS:
            vjp: Callable = R.dropout_vjp if name == "dropout" else R.dropout2d_vjp
            p, training, seed = kwargs["p"], kwargs["training"], kwargs["seed"]
            (dx,) = vjp(x, cotangent, self.dropout_mask(name, np.shape(x), p, seed), p, training)
        else:
            (dx,) = (R.l1_penalty_vjp if name == "l1_penalty" else R.l2_penalty_vjp)(
                x, cotangent, **kwargs)
        return out, dx


# -- the calls the properties make: NumPy in and out, failures named ------------------------
def _called(backend: Any, what: str, natives: dict[str, Any], fn: Callable, *args: Any,
            **kwargs: Any) -> Any:
    """fn(*args, **kwargs) under guard, the native inputs untouched (else BackendError)."""
    before = {k: np.array(backend.to_numpy(a)) for k, a in natives.items()}
    out = guard(backend, what, fn, *args, **kwargs)
    for k, a in natives.items():
        if not np.array_equal(backend.to_numpy(a), before[k], equal_nan=True):
            raise BackendError(f"{backend.id}: {what} mutated its input {k}")
    return out


def _shape_of(name: str, x: np.ndarray) -> tuple[int, ...]:
    return tuple(x.shape) if name in DROPOUTS else ()


def _result(backend: Any, what: str, out: Any, dtype: str, shape: tuple[int, ...],
            label: str) -> np.ndarray:
    a = checked_array(backend, what, out, dtype, label)
    if a.shape != shape:
        raise BackendError(f"{backend.id}: {what} returned {label} of shape {a.shape}, "
                           f"expected {shape}")
    return a


def call_regularization(backend: Any, name: str, x: np.ndarray, dtype: str, **kwargs: Any
                        ) -> np.ndarray:
    """backend.<name>(x, **kwargs) (name in COMPONENTS), NumPy in and out: x's shape for a
    dropout, () for a penalty, in ``dtype``, x untouched (else BackendError)."""
    nat = {"x": to_native(backend, x, dtype)}
    out = _called(backend, name, nat, getattr(backend, name), nat["x"], **kwargs)
    return _result(backend, name, out, dtype, _shape_of(name, x), "its result")


def call_regularization_vjp(backend: Any, name: str, x: np.ndarray, cotangent: np.ndarray,
                            dtype: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(output, gradient of x) of backend.regularization_vjp, NumPy in and out, each of its
    shape and ``dtype``, x and the cotangent untouched (else BackendError)."""
    what = f"{name} vjp"
    nat = {"x": to_native(backend, x, dtype),
           "cotangent": to_native(backend, np.asarray(cotangent, dtype=np.float64), dtype)}
    out = _called(backend, what, nat, backend.regularization_vjp, name, nat["x"],
                  nat["cotangent"], **kwargs)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           "(output, gradient)")
    return (_result(backend, what, out[0], dtype, _shape_of(name, x), "its output"),
            _result(backend, what, out[1], dtype, tuple(x.shape), "the gradient"))


def optimizer_stepper(backend: Any, name: str, hyper: dict[str, Any],
                      params: list[np.ndarray], dtype: str
                      ) -> Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]:
    """step(grads, params) -> the new params, NumPy in and out (each of its shape, in
    ``dtype``), one update of backend.optimizer(name, **hyper) initialised at ``params``, its
    state carried from call to call (the params given may differ from the last returned)."""
    opt = guard(backend, f"optimizer {name}", backend.optimizer, name, **hyper)
    state = [guard(backend, f"{name} init", opt.init, [to_native(backend, q, dtype)
                                                       for q in params])]
    steps = [0]

    def step(grads: list[np.ndarray], current: list[np.ndarray]) -> list[np.ndarray]:
        steps[0] += 1
        what = f"{name} update (step {steps[0]})"
        p, state[0] = guard(backend, what, opt.update, [to_native(backend, g, dtype)
                                                        for g in grads],
                            state[0], [to_native(backend, q, dtype) for q in current])
        return [_result(backend, what, q, dtype, c.shape, f"params[{i}]")
                for i, (q, c) in enumerate(zip(p, current, strict=True))]

    return step
