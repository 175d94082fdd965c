"""asv benchmarks: one MLP training step (forward, backward, optimizer update) per backend.

Fixed sizes: batch 64, layers 256-256-256-10 (three dense layers), tanh hidden activation,
mean cross-entropy, float64 throughout so the NumPy oracle ('numpy') is comparable with the
frameworks. Parameterised by backend ('numpy' is the oracle itself, 'torch', 'jax'),
optimizer ('sgd' with momentum 0.9, 'adam') and device: 'cpu' unless the environment variable
TOUCHSTONE_BENCH_DEVICES lists others (``TOUCHSTONE_BENCH_DEVICES=cpu,cuda``); a backend
without that device is skipped.

How it is measured (see shared/BENCHMARKING.md for why):

- Every timed call runs STEPS (20) training steps, so a sample is well above timer noise;
  divide ``time_step`` by STEPS for the time of one step.
- asv_runner 0.3.x calls ``setup`` before every sample, so backends, data, optimizer state
  and jitted functions are built once per process in a module-level cache keyed on the
  parameters; one warm-up call of STEPS steps (JAX: compilation) runs there, outside the
  timed region.
- Device work is synchronised inside the timed region: ``backend.synchronize()``, and for
  JAX ``jax.block_until_ready`` on the final parameters and optimizer state.
- JAX runs a jitted whole step (value_and_grad of the backend's own ``mlp_loss`` and the
  backend optimizer's update, parameter and state buffers donated); the compile time is
  tracked separately by ``MLPJaxCompile.track_compile_seconds``.
- One thread, pinned to one core: OMP/MKL/OPENBLAS_NUM_THREADS=1 here before NumPy or a
  framework is imported (benchmarks/run.sh exports them too, because asv_runner itself
  imports NumPy before this module), the thread count of an already-loaded OpenBLAS set to 1
  through its C API, ``torch.set_num_threads(1)``, and ``os.sched_setaffinity`` to the
  lowest core this process may use.
- A backend that cannot be loaded here (framework not installed) makes ``setup`` raise
  NotImplementedError, which asv reports as skipped; importing this module never needs one.
"""

from __future__ import annotations

import ctypes
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

THREADS = 1
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(THREADS)


def _pin_to_one_core() -> None:
    """Restrict this process to the lowest core it may run on (asv --cpu-affinity wins)."""
    if hasattr(os, "sched_getaffinity"):
        cpus = os.sched_getaffinity(0)
        if len(cpus) > 1:
            os.sched_setaffinity(0, {min(cpus)})


def _limit_loaded_blas(n: int) -> None:
    """Set the thread count of every OpenBLAS/MKL already loaded into this process.

    The environment variables act only on libraries loaded after they are set; asv_runner
    imports NumPy (through pympler) before importing this module.
    """
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return
    setters = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
               "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
               "MKL_Set_Num_Threads")
    for path in sorted(set(re.findall(r"(/\S*(?:openblas|mkl_rt)\S*\.so[.\d]*)", maps))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in setters:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                break


_pin_to_one_core()

import numpy as np  # noqa: E402  (after the thread settings above)

_limit_loaded_blas(THREADS)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    # asv imports only the benchmarks package from the repository; the backends come from
    # the same working tree.
    sys.path.insert(0, _ROOT)

from backends.base import BackendUnavailable  # noqa: E402
from backends.loader import load_backend  # noqa: E402

BACKENDS = ("numpy", "torch", "jax")
DEVICES = tuple(d.strip() for d in os.environ.get("TOUCHSTONE_BENCH_DEVICES", "cpu").split(",")
                if d.strip())
OPTIMIZERS = ("sgd", "adam")
HYPER = {"sgd": {"lr": 0.01, "momentum": 0.9}, "adam": {"lr": 1e-3}}
BATCH = 64
SIZES = (256, 256, 256, 10)
ACTIVATION = "tanh"
LOSS = "cross_entropy"
DTYPE = "float64"
STEPS = 20
REPEAT = (10, 20, 30)  # min samples, max samples, max seconds per benchmark and process


def _problem(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Initial parameters [w0, b0, ...], one batch of inputs and its integer labels."""
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        params += [rng.normal(0.0, fan_in ** -0.5, (fan_in, fan_out)), np.zeros(fan_out)]
    x = rng.normal(size=(BATCH, SIZES[0]))
    labels = rng.integers(0, SIZES[-1], BATCH)
    return params, x, labels


def _load(name: str, device: str):
    """The backend, or NotImplementedError (asv: skipped) when it cannot be loaded here."""
    try:
        bk = load_backend(name, device)
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from exc
    if name == "torch":
        import torch

        torch.set_num_threads(THREADS)
        try:
            torch.set_num_interop_threads(THREADS)
        except RuntimeError:  # already set, or parallel work already started
            pass
    return bk


class _EagerRunner:
    """Training steps through the backend's own ``mlp_loss_and_grads`` and optimizer."""

    def __init__(self, bk, optimizer: str) -> None:
        self.bk = bk
        params, x, labels = _problem()
        self.params = [bk.asarray(p, DTYPE) for p in params]
        self.x = bk.asarray(x, DTYPE)
        self.labels = bk.asarray(labels)
        self.opt = bk.optimizer(optimizer, **HYPER[optimizer])
        self.state = self.opt.init(self.params)

    def run(self, steps: int) -> None:
        p, s = self.params, self.state
        for _ in range(steps):
            _, grads = self.bk.mlp_loss_and_grads(p, self.x, self.labels, ACTIVATION, LOSS)
            p, s = self.opt.update(grads, s, p)
        self.bk.synchronize()
        self.params, self.state = p, s


def _jax_step(bk, opt, donate: bool = True):
    """The whole training step as one jitted function: (params, state, x, labels) ->
    (params, state, loss)."""
    import jax

    def loss_fn(params, x, labels):
        return bk.mlp_loss(params, x, labels, ACTIVATION, LOSS)

    def step(params, state, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        params, state = opt.update(grads, state, params)
        return params, state, loss

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


class _JaxJitRunner(_EagerRunner):
    def __init__(self, bk, optimizer: str) -> None:
        super().__init__(bk, optimizer)
        self.step = _jax_step(bk, self.opt)

    def run(self, steps: int) -> None:
        import jax

        p, s = self.params, self.state
        for _ in range(steps):
            p, s, _ = self.step(p, s, self.x, self.labels)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s


_RUNNERS: dict[tuple, object] = {}


def cached_runner(key: tuple, backend: str, device: str, build: Callable[[Any], Any],
                  warm_up: int):
    """The runner ``build(backend instance)`` for ``key``, run ``warm_up`` times (JAX: the
    compilation) and kept for the process, as asv calls setup before every sample. A backend
    that cannot be loaded here raises NotImplementedError (asv: skipped), remembered too."""
    if key not in _RUNNERS:
        try:
            bk = _load(backend, device)
        except NotImplementedError as exc:
            _RUNNERS[key] = exc
        else:
            runner = build(bk)
            runner.run(warm_up)
            _RUNNERS[key] = runner
    runner = _RUNNERS[key]
    if isinstance(runner, NotImplementedError):
        raise NotImplementedError(*runner.args)
    return runner


def _runner(backend: str, optimizer: str, device: str = "cpu"):
    """The warmed-up MLP runner for (backend, optimizer, device)."""
    cls = _JaxJitRunner if backend == "jax" else _EagerRunner
    return cached_runner(("mlp", backend, optimizer, device), backend, device,
                         lambda bk: cls(bk, optimizer), STEPS)


class MLPTrainStep:
    """STEPS training steps of the 256-256-256-10 tanh MLP, batch 64, float64."""

    params = (list(BACKENDS), list(OPTIMIZERS), list(DEVICES))
    param_names = ("backend", "optimizer", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 180

    def setup(self, backend: str, optimizer: str, device: str) -> None:
        self.runner = _runner(backend, optimizer, device)

    def time_step(self, backend: str, optimizer: str, device: str) -> None:
        """STEPS (20) training steps, synchronised; divide by STEPS for one step."""
        self.runner.run(STEPS)

    def peakmem_step(self, backend: str, optimizer: str, device: str) -> None:
        """Peak resident memory of the process (framework included) after training steps."""
        self.runner.run(STEPS)

    def track_samples_per_second(self, backend: str, optimizer: str, device: str) -> float:
        """Training throughput: BATCH * STEPS / (median time of 5 calls of STEPS steps)."""
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            self.runner.run(STEPS)
            times.append(time.perf_counter() - t0)
        return BATCH * STEPS / statistics.median(times)

    track_samples_per_second.unit = "samples/s"


class MLPJaxCompile:
    """Trace + lower + XLA compile of the jitted JAX training step (a fresh jit each call)."""

    params = (list(OPTIMIZERS), list(DEVICES))
    param_names = ("optimizer", "device")
    timeout = 180

    def setup(self, optimizer: str, device: str) -> None:
        self.runner = _runner("jax", optimizer, device)

    def track_compile_seconds(self, optimizer: str, device: str) -> float:
        r = self.runner
        step = _jax_step(r.bk, r.opt)
        t0 = time.perf_counter()
        step.lower(r.params, r.state, r.x, r.labels).compile()
        return time.perf_counter() - t0

    track_compile_seconds.unit = "s"
