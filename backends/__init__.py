"""Backends: the interface, the loader and the adapters (numpy, torch, jax)."""

from backends.base import Backend, BackendUnavailable, KnownDivergence, Unsupported, UnsupportedComponent
from backends.loader import load_backend, resolve

__all__ = ["Backend", "BackendUnavailable", "KnownDivergence", "Unsupported",
           "UnsupportedComponent", "load_backend", "resolve"]
