"""The JAX adapters' compiled functions: jax.jit per configuration and input shapes, a bounded
number held in memory (backends/jax_backend.py, jax_recurrent.py, jax_lm.py share ``COMPILED``);
``COMPILES`` counts this process's XLA compilations."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any

import jax

COMPILES = [0]  # XLA compilations in this process, counted by jax.monitoring
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def _count_compile(event: str, secs: float, **kwargs: Any) -> None:  # noqa: ARG001
    if event == _BACKEND_COMPILE:
        COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


class Compiled:
    """jax.jit'd functions keyed on their configuration (one compilation per configuration
    and input shapes), and the bound on what compilations hold in memory: every executable
    JAX compiles stays in its caches (about 1-2 MB each on CPU), so after ``limit`` XLA
    compilations, at a point outside any trace (``bound``, called as arrays come in), JAX's
    caches and these functions are cleared. A later call compiles again (or, with the
    persistent compilation cache, reads the executable back from disk)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fns: dict[tuple, Callable] = {}
        self.mark = COMPILES[0]

    def get(self, key: tuple, make: Callable[[], Callable]) -> Callable:
        fn = self.fns.get(key)
        if fn is None:
            fn = self.fns[key] = jax.jit(make())
        return fn

    def bound(self) -> None:
        if self.limit <= 0 or COMPILES[0] - self.mark < self.limit or not _trace_state_clean():
            return
        self.fns.clear()
        jax.clear_caches()
        _malloc_trim()
        self.mark = COMPILES[0]


def _malloc_trim() -> None:
    """Hand the freed executables' memory back to the system (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _trace_state_clean() -> bool:
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # a JAX without it: never clear
        return False
    return trace_state_clean()


COMPILED = Compiled(int(os.environ.get("TOUCHSTONE_JAX_MAXCOMPILES", "200")))
