"""Planted two-device backends for the three-way comparison (properties/test_three_way.py):
the oracle's adapter on a "cpu" and a "fake-gpu" device, with components broken the way
device kernels break, on one device or on both. Each must make the three-way property fail
in its ``components``, naming the device that diverged (tests/test_three_way.py). They
subclass the numpy backend, so they run anywhere, fast.

Also the devices of the GPU-only checks: NondeterministicDevice (a kernel that rounds
differently at each call; the determinism check, --determinism) and Tf32Device (fast float32
paths; properties/test_fast_paths.py), tested in tests/test_gpu_checks.py.

Not in tests/test_planted_bugs.py's ALL_PLANTED: on "cpu", where the single-backend suite
runs them, they are right, as a framework whose GPU kernel alone is wrong is."""

from __future__ import annotations

import contextlib

import numpy as np

from backends.base import KnownDivergence
from backends.numpy_backend import NumpyBackend
from reference import activations as A
from reference import dense as D


def _softmax_without_max_shift(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum exp(x): a fused kernel that skips the max subtraction overflows to inf
    past x = 709.78 in float64, and inf / inf is NaN."""
    with np.errstate(all="ignore"):
        e = np.exp(np.asarray(x, dtype=np.float64))
        return e / e.sum(axis=axis, keepdims=True)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(np.float32)


def _dense_float32(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """x w + b with the product's inputs rounded to float32 and summed in float32 inside a
    float64 call (a TF32-style fast path left on): relative errors of 1e-7, where float64 is
    held to a few 1e-16."""
    y = (_f32(x) @ _f32(w)).astype(np.float64)
    return y if b is None else y + np.asarray(b, dtype=np.float64)


def _dense_vjp_float32(x, w, b, g):
    """(g w^T, x^T g, sum_n g) with both products in float32, as the forward."""
    return ((_f32(g) @ _f32(w).T).astype(np.float64), (_f32(x).T @ _f32(g)).astype(np.float64),
            None if b is None else np.asarray(g, dtype=np.float64).sum(axis=0))


class DeviceBugs(NumpyBackend):
    """Right on "cpu"; on "fake-gpu" softmax skips the max subtraction (NaN for large
    logits) and dense runs its forward and backward products in float32."""

    name = "planted-device-bugs"
    devices = ("cpu", "fake-gpu")
    #: the devices whose kernels are broken
    broken_on: tuple[str, ...] = ("fake-gpu",)
    #: the components the bugs break
    components = ("dense", "softmax")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if self.broken("dense"):
            self.vjps = {**NumpyBackend.vjps, "dense": _dense_vjp_float32}

    def broken(self, component: str) -> bool:
        """Whether this device runs ``component``'s broken kernel."""
        return self.device in self.broken_on and component in self.components

    def softmax(self, x, axis=-1):
        return _softmax_without_max_shift(x, axis) if self.broken("softmax") else \
            A.softmax(x, axis)

    def dense(self, x, w, b=None):
        return _dense_float32(x, w, b) if self.broken("dense") else D.dense(x, w, b)


class SharedSoftmaxKernel(DeviceBugs):
    """Both devices run one softmax kernel without the max subtraction (a shared upstream
    kernel): the two agree with each other, not with the oracle."""

    name = "planted-shared-softmax-kernel"
    broken_on = ("cpu", "fake-gpu")
    components = ("softmax",)


class DeclaredDeviceBugs(DeviceBugs):
    """DeviceBugs declaring fake-gpu's softmax overflow as a known divergence (dense stays
    undeclared): the three-way property must report the softmax divergence as known and
    still fail dense."""

    name = "planted-declared-device-bugs"
    known_divergences = (KnownDivergence(
        "test_forward_tail", "softmax", "fake-gpu's softmax skips the max subtraction: exp "
        "overflows past x = 709.78 and inf / inf is NaN"),)


def _dense_vjp_unordered(x, w, b, g):
    """(g w^T, x^T g, sum_n g) with x^T g summed over the rows in a fresh random order at each
    call, as a GPU kernel accumulating the rows' products with atomics does: the same inputs
    round differently from call to call."""
    x, g = np.asarray(x, dtype=np.float64), np.asarray(g, dtype=np.float64)
    dw = np.zeros((x.shape[1], g.shape[1]))
    for n in np.random.default_rng().permutation(x.shape[0]):  # unseeded: nondeterministic
        dw += np.outer(x[n], g[n])
    return g @ np.asarray(w, dtype=np.float64).T, dw, None if b is None else g.sum(axis=0)


class NondeterministicDevice(NumpyBackend):
    """Right on both devices, but on "fake-gpu" dense's weight gradient accumulates the rows
    in an order that changes from call to call: every result within tolerance, not the same
    twice. The determinism check (--determinism) must report it, and only it."""

    name = "planted-nondeterministic-device"
    devices = ("cpu", "fake-gpu")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if device == "fake-gpu":
            self.vjps = {**NumpyBackend.vjps, "dense": _dense_vjp_unordered}


def _tf32(a: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32 (10 mantissa bits, to nearest, ties to even), as tensor cores
    read a product's float32 inputs."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))) \
        & np.uint32(0xFFFFE000)
    return rounded.view(np.float32)


class Tf32Device(NumpyBackend):
    """dense in float32 (NumPy's float32 products) on a "cpu" and a "fake-gpu" device;
    fake-gpu has fast paths, which round the products' inputs to TF32. Only dense runs in
    float32: the fast-path property (properties/test_fast_paths.py) must measure a cost above
    the float32 tolerance with them on and none with them off, and fail nothing."""

    name = "planted-tf32-device"
    devices = ("cpu", "fake-gpu")
    dtypes = ("float32",)

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.fast = False
        self.vjps = {**NumpyBackend.vjps, "dense": self._dense_vjp}

    def asarray(self, x, dtype=None):
        if dtype == "float32":
            return np.array(x, dtype=np.float32)
        return super().asarray(x, dtype)

    def fast_paths(self):
        if self.device == "cpu":
            return None

        @contextlib.contextmanager
        def on():
            self.fast = True
            try:
                yield
            finally:
                self.fast = False

        return "TF32 (planted: products' inputs rounded to 10 mantissa bits)", on

    def _product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _tf32(a) @ _tf32(b) if self.fast else a @ b

    def dense(self, x, w, b=None):
        y = self._product(x, w)
        return y if b is None else y + b

    def _dense_vjp(self, x, w, b, g):
        return (self._product(g, w.T), self._product(x.T, g),
                None if b is None else g.sum(axis=0, dtype=np.float32))
