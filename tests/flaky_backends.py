"""Backends whose tanh gradient is not deterministic, the way a framework's kernel can be:
each is the oracle (NumpyBackend) with tanh's VJP wrong only sometimes. A certification must
report each such test flaky, with both observations and the example (tests/test_flaky.py)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from backends.base import BackendUnavailable
from backends.numpy_backend import NumpyBackend

#: the file WrongInFirstProcess marks once it has answered wrong
MARKER_ENV = "TOUCHSTONE_FLAKY_MARKER"

#: tanh VJP calls per backend class in this process
_CALLS: Counter[str] = Counter()


def off(grads: tuple) -> tuple:
    """Each gradient moved away from the right one by |g| + 1: wrong whatever the example."""
    return tuple(None if g is None else g + np.where(g >= 0, 1.0, -1.0) * (np.abs(g) + 1.0)
                 for g in grads)


class FirstCallWrong(NumpyBackend):
    """tanh's VJP is wrong on its first call in a process and right on every later one (a
    kernel whose first call reads memory not yet written): flaky within one process."""

    name = "first-call-wrong"

    def component_vjp(self, name, primals, cotangents, **kwargs):
        outs, grads = super().component_vjp(name, primals, cotangents, **kwargs)
        if name != "tanh":
            return outs, grads
        _CALLS[self.name] += 1
        return outs, off(grads) if _CALLS[self.name] == 1 else grads


class WrongInFirstProcess(NumpyBackend):
    """tanh's VJP is wrong in every call of a process that started before the marker file
    ($TOUCHSTONE_FLAKY_MARKER) existed, and right in a process started after it; the first
    wrong answer creates the marker. Deterministic within a process, not across processes
    (as torch's bfloat16 conv1d weight gradient: -6.98e-10 in one process, 0 in others)."""

    name = "wrong-in-first-process"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if not os.environ.get(MARKER_ENV):
            raise BackendUnavailable(f"{self.name}: set {MARKER_ENV} to a file path")
        self.marker = Path(os.environ[MARKER_ENV])
        self.wrong = not self.marker.exists()

    def component_vjp(self, name, primals, cotangents, **kwargs):
        outs, grads = super().component_vjp(name, primals, cotangents, **kwargs)
        if name != "tanh" or not self.wrong:
            return outs, grads
        self.marker.touch()
        return outs, off(grads)
