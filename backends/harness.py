"""Calling a backend with NumPy in and NumPy out, with the failures named.

Float inputs are cast to the requested dtype, integer inputs (labels, indices) stay integer.
A backend that raises anything but Unsupported, or returns something that is not an array,
surfaces as BackendError naming the component, so one broken component is one clear entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backends.base import Backend, Unsupported
from reference import registry


class BackendError(Exception):
    """The backend failed in a way that is neither a result nor a declared Unsupported."""


def to_native(backend: Backend, value: Any, dtype: str) -> Any:
    if isinstance(value, np.ndarray):
        return backend.asarray(value, dtype if value.dtype.kind == "f" else None)
    if isinstance(value, list | tuple) and value and isinstance(value[0], np.ndarray):
        return [to_native(backend, v, dtype) for v in value]
    return value


def to_numpy(backend: Backend, value: Any, what: str) -> np.ndarray:
    try:
        out = backend.to_numpy(value)
    except Unsupported:
        raise
    except Exception as exc:
        raise BackendError(f"{backend.id}: {what} returned {type(value).__name__}, "
                           f"which is not an array ({exc})") from exc
    if not isinstance(out, np.ndarray) or out.dtype.kind not in "fiub":
        raise BackendError(f"{backend.id}: {what} returned {type(value).__name__}, "
                           "not a numeric array")
    return out


def _guard(backend: Backend, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (Unsupported, BackendError):
        raise
    except Exception as exc:
        raise BackendError(f"{backend.id}: {what} raised {type(exc).__name__}: {exc}") from exc


def call(backend: Backend, name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
         dtype: str) -> Any:
    """backend.<name>(*args, **kwargs) with NumPy arrays in and out (lists of arrays too)."""
    nargs = [to_native(backend, a, dtype) for a in args]
    nkw = {k: to_native(backend, v, dtype) for k, v in kwargs.items()}
    out = _guard(backend, name, getattr(backend, name), *nargs, **nkw)
    return to_numpy_tree(backend, out, name)


def to_numpy_tree(backend: Backend, value: Any, what: str) -> Any:
    """Native arrays, possibly nested in tuples and lists, as NumPy arrays."""
    if isinstance(value, list | tuple):
        return type(value)(to_numpy_tree(backend, v, what) for v in value)
    if isinstance(value, float | int):
        return np.asarray(value, dtype=np.float64)
    return to_numpy(backend, value, what)


def call_vjp(backend: Backend, name: str, primals: Sequence[np.ndarray],
             kwargs: Mapping[str, Any], cotangents: Any, dtype: str
             ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(the differentiated outputs, gradient of each primal) of component ``name``: one
    cotangent per output (None: not differentiated; a bare array for a single output)."""
    cots = registry.get(name).cotangents(cotangents)
    nprim = [to_native(backend, p, dtype) for p in primals]
    nkw = {k: to_native(backend, v, dtype) for k, v in kwargs.items()}
    ncots = tuple(None if c is None else to_native(backend, c, dtype) for c in cots)
    outs, grads = _guard(backend, f"{name} vjp", backend.component_vjp, name, nprim, ncots,
                         **nkw)
    if len(grads) != len(primals):
        raise BackendError(f"{backend.id}: {name} vjp returned {len(grads)} gradients "
                           f"for {len(primals)} primals")
    return (tuple(to_numpy(backend, o, name) for o in outs),
            tuple(None if g is None else to_numpy(backend, g, f"{name} vjp") for g in grads))


def run_optimizer(backend: Backend, name: str, hyper: Mapping[str, Any],
                  params: Sequence[np.ndarray], grad_steps: Sequence[Sequence[np.ndarray]],
                  dtype: str) -> list[list[np.ndarray]]:
    """The parameters after each step of optimizer ``name`` fed the gradient sequence."""
    opt = _guard(backend, f"optimizer {name}", backend.optimizer, name, **hyper)
    p = [to_native(backend, q, dtype) for q in params]
    state = _guard(backend, f"{name} init", opt.init, p)
    trajectory = []
    for k, grads in enumerate(grad_steps):
        g = [to_native(backend, q, dtype) for q in grads]
        p, state = _guard(backend, f"{name} update (step {k + 1})", opt.update, g, state, p)
        trajectory.append([to_numpy(backend, q, f"{name} step {k + 1}") for q in p])
    return trajectory


def train_network(backend: Backend, arch: Any, params: Sequence[np.ndarray],
                  state: Sequence[np.ndarray], x: np.ndarray, target: np.ndarray, optimizer: str,
                  hyper: Mapping[str, Any], batches: Sequence[np.ndarray], bn: Mapping[str, Any],
                  dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]], np.ndarray]:
    """(final parameters, state after every step, loss history) of backend.train_network
    with the backend's optimizer ``optimizer``."""
    opt = _guard(backend, f"optimizer {optimizer}", backend.optimizer, optimizer, **hyper)
    out = _guard(backend, "train_network", backend.train_network, arch,
                 [to_native(backend, q, dtype) for q in params],
                 [to_native(backend, q, dtype) for q in state], to_native(backend, x, dtype),
                 to_native(backend, target, dtype), opt, list(batches), dict(bn))
    final, states, history = out
    return ([to_numpy(backend, q, "train_network") for q in final],
            [[to_numpy(backend, q, "train_network state") for q in s] for s in states],
            np.asarray(history, dtype=np.float64))
