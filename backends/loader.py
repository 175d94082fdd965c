"""Select a backend by short name, ``module:Class`` path or entry point."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from backends.base import Backend, BackendUnavailable

BUILTIN = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "torch": "backends.torch_backend:TorchBackend",
    "jax": "backends.jax_backend:JaxBackend",
    "jax-jit": "backends.jax_jit:JaxJitBackend",
    "torch-compile": "backends.torch_compile:TorchCompileBackend",
}
ENTRY_POINT_GROUP = "touchstone.backends"


def resolve(spec: str) -> type[Backend]:
    """The Backend class for a short name, a ``module:Class`` path or an entry-point name.

    Raises BackendUnavailable when its framework cannot be imported, ValueError when the
    name is unknown or does not name a Backend subclass.
    """
    target = BUILTIN.get(spec)
    if target is None and ":" in spec:
        target = spec
    if target is None:
        eps = entry_points(group=ENTRY_POINT_GROUP, name=spec)
        if not eps:
            raise ValueError(f"backend: unknown {spec!r}; expected one of {sorted(BUILTIN)}, "
                             f"a 'module:Class' path or an entry point in {ENTRY_POINT_GROUP!r}")
        target = next(iter(eps)).value
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and not module_name.startswith(exc.name) and exc.name != module_name:
            # the module exists but fails to import something: a broken adapter, not an
            # absent framework, unless what is missing is a framework it adapts
            if exc.name.split(".")[0] not in ("torch", "jax", "jaxlib", "optax", "flax",
                                              "tensorflow", "keras"):
                raise
        raise BackendUnavailable(f"{spec}: cannot import {module_name} ({exc})") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"backend: {target!r} is not a touchstone Backend subclass")
    return cls


def load_backend(spec: str, device: str = "cpu") -> Backend:
    """An instance of the backend ``spec`` on ``device`` ('cpu', 'cuda' or 'gpu')."""
    return resolve(spec)(device)
