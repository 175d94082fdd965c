"""Calling a backend with NumPy in and NumPy out, with the failures named.

Float inputs are cast to the requested dtype, integer inputs (labels, indices) stay integer.
A backend that raises anything but Unsupported, returns something that is not one of its
arrays (a list, a float) or a float array of another dtype than the call's, or changes an
input in place, surfaces as BackendError naming the component and what it did, so one broken
component is one clear entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from backends.base import DTYPES, Backend, Unsupported
from reference import registry


class BackendError(Exception):
    """The backend failed in a way that is neither a result nor a declared Unsupported."""


def to_native(backend: Backend, value: Any, dtype: str) -> Any:
    if isinstance(value, np.generic):  # a NumPy scalar (a loss's cotangent) is an array too
        value = np.asarray(value)
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


def message(exc: BaseException, head: int = 2000, errors: int = 5) -> str:
    """An exception's message, bounded: its first ``head`` characters, then up to ``errors``
    later lines that name an error. A compiler's message holds its whole output (Inductor's
    C++ errors run to 250 kB), and Hypothesis keeps the text of every failing example."""
    text = str(exc)
    if len(text) <= head:
        return text
    later = [ln for ln in text[head:].splitlines() if "error" in ln.lower()][:errors]
    return "\n".join([text[:head], f"... ({len(text) - head} more characters)", *later])


def guard(backend: Backend, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (Unsupported, BackendError):
        raise
    except Exception as exc:
        raise BackendError(f"{backend.id}: {what} raised {type(exc).__name__}: "
                           f"{message(exc)}") from exc


def _snapshot(backend: Backend, natives: Sequence[Any]) -> list[np.ndarray | None]:
    """NumPy copies of the native arrays among ``natives`` (None for anything else)."""
    return [np.array(backend.to_numpy(a)) if backend.is_array(a) else None for a in natives]


def _check_unchanged(backend: Backend, what: str, natives: Sequence[Any],
                     before: Sequence[np.ndarray | None], names: Sequence[str]) -> None:
    """BackendError when a call changed one of its input arrays in place."""
    for i, (a, b) in enumerate(zip(natives, before, strict=True)):
        if b is not None and not np.array_equal(backend.to_numpy(a), b, equal_nan=True):
            name = f" ({names[i]})" if i < len(names) else ""
            raise BackendError(f"{backend.id}: {what} mutated input {i}{name}")


def _check_array(backend: Backend, what: str, value: Any, dtype: str, label: str = "") -> None:
    """BackendError unless ``value`` is one of the backend's arrays, of ``dtype`` if float."""
    if not backend.is_array(value):
        raise BackendError(f"{backend.id}: {what} returned {type(value).__name__}{label}, "
                           "not an array")
    got = backend.dtype_of(value)
    if got in DTYPES and got != dtype:
        raise BackendError(f"{backend.id}: {what} returned {got}{label} for a {dtype} call")


def _check_outputs(backend: Backend, name: str, out: Any, dtype: str) -> None:
    """A registered component returns one array per output of its record, in the call's
    dtype (several outputs as a tuple or list)."""
    rec = registry.RECORDS.get(name)
    if rec is None:
        return
    if not rec.multi_output:
        _check_array(backend, name, out, dtype)
        return
    if not isinstance(out, tuple | list) or len(out) != len(rec.outputs):
        raise BackendError(f"{backend.id}: {name} returned {type(out).__name__}, expected a "
                           f"tuple of {len(rec.outputs)} arrays {rec.outputs}")
    for o, oname in zip(out, rec.outputs, strict=True):
        _check_array(backend, name, o, dtype, f" as {oname}")


def call(backend: Backend, name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
         dtype: str) -> Any:
    """backend.<name>(*args, **kwargs) with NumPy arrays in and out (lists of arrays too);
    a registered component's outputs and its untouched inputs are checked (BackendError)."""
    nargs = [to_native(backend, a, dtype) for a in args]
    nkw = {k: to_native(backend, v, dtype) for k, v in kwargs.items()}
    rec = registry.RECORDS.get(name)
    before = _snapshot(backend, nargs) if rec is not None else []
    out = guard(backend, name, getattr(backend, name), *nargs, **nkw)
    if rec is not None:
        _check_outputs(backend, name, out, dtype)
        _check_unchanged(backend, name, nargs, before, rec.inputs)
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
    before = _snapshot(backend, [*nprim, *ncots])
    outs, grads = guard(backend, f"{name} vjp", backend.component_vjp, name, nprim, ncots,
                         **nkw)
    if not isinstance(grads, tuple | list) or len(grads) != len(primals):
        raise BackendError(f"{backend.id}: {name} vjp returned {_count(grads)} gradients "
                           f"for {len(primals)} primals")
    for g, p in zip(grads, primals, strict=True):
        if g is not None or p is not None:
            _check_array(backend, f"{name} vjp", g, dtype, " as a gradient")
    _check_unchanged(backend, f"{name} vjp", [*nprim, *ncots], before,
                     [*registry.get(name).inputs, *(f"cotangent of {o}" for o in
                                                    registry.get(name).outputs)])
    return (tuple(to_numpy(backend, o, name) for o in outs),
            tuple(None if g is None else to_numpy(backend, g, f"{name} vjp") for g in grads))


def _count(value: Any) -> str:
    return str(len(value)) if isinstance(value, tuple | list) else type(value).__name__


def run_optimizer(backend: Backend, name: str, hyper: Mapping[str, Any],
                  params: Sequence[np.ndarray], grad_steps: Sequence[Sequence[np.ndarray]],
                  dtype: str) -> list[list[np.ndarray]]:
    """The parameters after each step of optimizer ``name`` fed the gradient sequence."""
    opt = guard(backend, f"optimizer {name}", backend.optimizer, name, **hyper)
    p = [to_native(backend, q, dtype) for q in params]
    state = guard(backend, f"{name} init", opt.init, p)
    trajectory = []
    for k, grads in enumerate(grad_steps):
        g = [to_native(backend, q, dtype) for q in grads]
        p, state = guard(backend, f"{name} update (step {k + 1})", opt.update, g, state, p)
        trajectory.append([to_numpy(backend, q, f"{name} step {k + 1}") for q in p])
    return trajectory


def train_network(backend: Backend, arch: Any, params: Sequence[np.ndarray],
                  state: Sequence[np.ndarray], x: np.ndarray, target: np.ndarray, optimizer: str,
                  hyper: Mapping[str, Any], batches: Sequence[np.ndarray], bn: Mapping[str, Any],
                  dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]], np.ndarray]:
    """(final parameters, state after every step, loss history) of backend.train_network
    with the backend's optimizer ``optimizer``."""
    opt = guard(backend, f"optimizer {optimizer}", backend.optimizer, optimizer, **hyper)
    out = guard(backend, "train_network", backend.train_network, arch,
                 [to_native(backend, q, dtype) for q in params],
                 [to_native(backend, q, dtype) for q in state], to_native(backend, x, dtype),
                 to_native(backend, target, dtype), opt, list(batches), dict(bn))
    final, states, history = out
    return ([to_numpy(backend, q, "train_network") for q in final],
            [[to_numpy(backend, q, "train_network state") for q in s] for s in states],
            np.asarray(history, dtype=np.float64))
