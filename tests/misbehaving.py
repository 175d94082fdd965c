"""Backends that misbehave the way a new backend can: each is the oracle (NumpyBackend, in
float32 and float64) with one activation broken. A certification over them must give each a
named outcome and leave every other result intact (tests/test_survival.py)."""

from __future__ import annotations

import ctypes
import os
import time
import weakref

import numpy as np

from backends.numpy_backend import NumpyBackend
from reference import activations as A


class Numpy32(NumpyBackend):
    """The oracle in float32 and float64: float32 calls compute in float64 and round."""

    name = "numpy32"
    dtypes = ("float32", "float64")

    def asarray(self, x, dtype=None):
        x = np.asarray(x)
        if dtype is None:
            return x.copy()
        return x.astype(np.float32 if dtype == "float32" else np.float64)

    def __getattr__(self, name):
        forward = super().__getattr__(name)

        def rounded(*args, **kwargs):
            out = forward(*args, **kwargs)
            dtype = next((a.dtype for a in args if isinstance(a, np.ndarray)
                          and a.dtype.kind == "f"), np.float64)
            if isinstance(out, tuple):
                return tuple(np.asarray(o).astype(dtype) for o in out)
            return np.asarray(out).astype(dtype)
        return rounded

    def component_vjp(self, name, primals, cotangents, **kwargs):
        outs, grads = super().component_vjp(name, primals, cotangents, **kwargs)
        dtype = next(p.dtype for p in primals if p is not None)
        return (tuple(np.asarray(o).astype(dtype) for o in outs),
                tuple(None if g is None else np.asarray(g).astype(dtype) for g in grads))


class Raises(Numpy32):
    """relu raises."""

    name = "raises"

    def relu(self, x):
        raise RuntimeError("relu kernel not implemented for this layout")


class ReturnsList(Numpy32):
    """gelu returns a Python list."""

    name = "returns-list"

    def gelu(self, x, approximate="none"):
        return A.gelu(x, approximate).tolist()


class WrongShape(Numpy32):
    """sigmoid drops the last column."""

    name = "wrong-shape"

    def sigmoid(self, x):
        return A.sigmoid(x)[..., :-1].astype(x.dtype)


class WrongDtype(Numpy32):
    """tanh returns float64 whatever the call's dtype."""

    name = "wrong-dtype"

    def tanh(self, x):
        return np.tanh(np.asarray(x, dtype=np.float64))


class NonFinite(Numpy32):
    """softplus returns NaN for x > 1, where the oracle is finite."""

    name = "non-finite"

    def softplus(self, x, beta=1.0, threshold=None):
        y = A.softplus(x, beta, threshold).astype(x.dtype)
        return np.where(x > 1, np.nan, y).astype(x.dtype)


class Mutates(Numpy32):
    """silu computes in place, overwriting its input."""

    name = "mutates"

    def silu(self, x):
        x *= A.sigmoid(x).astype(x.dtype)
        return x


class Hangs(Numpy32):
    """elu never returns on float32 arrays (one hanging test: each costs the timeout)."""

    name = "hangs"

    def elu(self, x, alpha=1.0):
        if x.dtype == np.float32:
            time.sleep(3600)
        return Numpy32.__getattr__(self, "elu")(x, alpha)


class Exits(Numpy32):
    """leaky_relu ends its process (os._exit)."""

    name = "exits"

    def leaky_relu(self, x, negative_slope=0.01):
        os._exit(1)


class Segfaults(Numpy32):
    """log_softmax dereferences a null pointer (signal 11)."""

    name = "segfaults"

    def log_softmax(self, x, axis=-1):
        ctypes.string_at(0)


MISBEHAVING = {Raises: "relu", ReturnsList: "gelu", WrongShape: "sigmoid",
               WrongDtype: "tanh", NonFinite: "softplus", Mutates: "silu", Hangs: "elu",
               Exits: "leaky_relu", Segfaults: "log_softmax"}
"""Each misbehaving backend and the component it breaks."""


class _Graph:
    """What a compiling backend builds for a call (Inductor's graphs: megabytes each)."""

    def __init__(self) -> None:
        self.buffers = np.zeros(1 << 20)


_LIVE: weakref.WeakSet[_Graph] = weakref.WeakSet()
_MOST = [0]


class Hoards(Numpy32):
    """relu builds a graph, then fails with a compiler's long message, as Inductor does; the
    message counts the most graphs alive at once, its own included: 1 unless something keeps
    the failing examples' frames (tests/test_survival.py; a frame's locals are freed by
    reference counting, no collection needed)."""

    name = "hoards"

    def relu(self, x):
        graph = _Graph()
        _LIVE.add(graph)
        _MOST[0] = max(_MOST[0], len(_LIVE))
        raise RuntimeError(f"compile failed; at most {_MOST[0]} graphs alive at once\n"
                           + "warning: a compiler's line\n" * 2000 + "error: the cause")
