"""The benchmark template every architecture's training benchmark uses: one thread pinned
to one core, backends loaded and cached per process, and a training runner over the backend
interface for any reference.network architecture.

How it is measured (see docs/BENCHMARKING.md for why):

- asv_runner 0.3.x calls ``setup`` before every sample, so backends, data, optimizer state
  and jitted functions are built once per process in a module-level cache keyed on the
  parameters (``cached_runner``); a warm-up run (JAX: compilation) happens there, outside
  the timed region.
- Device work is synchronised inside the timed region: ``backend.synchronize()``, and for
  JAX ``jax.block_until_ready`` on the final parameters and optimizer state.
- Eager backends step through ``Backend.network_loss_and_grads`` (the oracle: its
  hand-chained backward) and the backend's optimizer; JAX runs one jitted whole step
  (value_and_grad of the backend's own network forward and loss, the optax update, the
  parameter, state and optimizer buffers donated).
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
from abc import ABC, abstractmethod
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
from reference import network, registry  # noqa: E402

BACKENDS = ("numpy", "torch", "jax")
DEVICES = tuple(d.strip() for d in os.environ.get("TOUCHSTONE_BENCH_DEVICES", "cpu").split(",")
                if d.strip())
DTYPE = "float64"
REPEAT = (10, 20, 30)  # min samples, max samples, max seconds per benchmark and process


def _load(name: str, device: str):
    """The backend, or NotImplementedError (asv: skipped) when it cannot be loaded here."""
    try:
        bk = load_backend(name, device)
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from exc
    if name in ("torch", "torch-compile"):
        import torch

        torch.set_num_threads(THREADS)
        try:
            torch.set_num_interop_threads(THREADS)
        except RuntimeError:  # already set, or parallel work already started
            pass
    return bk



class TrainRunner:
    """Training steps of ``arch`` on one fixed batch of ``batch`` rows (seeded inputs and
    targets, ``arch.init`` parameters), float64, through the backend's
    network_loss_and_grads and optimizer ``optimizer`` with ``hyper``. Batch norms follow the
    backend's fixed conventions over the oracle's defaults."""

    def __init__(self, bk, arch: network.Architecture, optimizer: str, hyper: dict,
                 batch: int) -> None:
        self.bk, self.arch = bk, arch
        params, state = arch.init(0)
        rng = np.random.default_rng(1)
        self.x = bk.asarray(rng.standard_normal((batch, *arch.input_shape)), DTYPE)
        self.target = bk.asarray(rng.integers(0, arch.classes, batch)) \
            if arch.loss == "cross_entropy" else \
            bk.asarray(rng.standard_normal((batch, arch.classes)), DTYPE)
        self.params = [bk.asarray(p, DTYPE) for p in params]
        self.state = [bk.asarray(s, DTYPE) for s in state]
        self.opt = bk.optimizer(optimizer, **hyper)
        self.opt_state = self.opt.init(self.params)
        fixed = {k: v for k, v in bk.conventions.get("batch_norm", {}).items()
                 if not isinstance(v, tuple)}
        self.bn = {k: v for k, v in registry.get("batch_norm").defaults().items()
                   if k != "training"} | fixed

    def run(self, steps: int) -> None:
        p, s, o = self.params, self.state, self.opt_state
        for _ in range(steps):
            _, grads, s = self.bk.network_loss_and_grads(self.arch, p, s, self.x, self.target,
                                                         self.bn)
            p, o = self.opt.update(grads, o, p)
        self.bk.synchronize()
        self.params, self.state, self.opt_state = p, s, o


def jax_step(runner: TrainRunner, donate: bool = True):
    """The runner's whole training step as one jitted function: (params, state, opt_state,
    x, target) -> (params, state, opt_state, loss)."""
    import jax

    bk, arch, opt, bn = runner.bk, runner.arch, runner.opt, runner.bn

    def step(params, state, opt_state, x, target):
        def loss(p):
            out, new_state = bk.network_forward(arch, p, state, x, True, bn)
            return network.loss(bk, arch.loss, out, target), new_state
        (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        params, opt_state = opt.update(grads, opt_state, params)
        return params, new_state, opt_state, value

    return jax.jit(step, donate_argnums=(0, 1, 2) if donate else ())


class JaxTrainRunner(TrainRunner):
    """TrainRunner as one jitted step (compiled by the first run)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.step = jax_step(self)

    def run(self, steps: int) -> None:
        import jax

        p, s, o = self.params, self.state, self.opt_state
        for _ in range(steps):
            p, s, o, _ = self.step(p, s, o, self.x, self.target)
        jax.block_until_ready((p, s, o))
        self.params, self.state, self.opt_state = p, s, o


def train_runner(backend: str, device: str, arch: network.Architecture, optimizer: str,
                 hyper: dict, batch: int, warm_up: int):
    """The warmed-up, cached TrainRunner (JaxTrainRunner for jax) of these parameters."""
    cls = JaxTrainRunner if backend == "jax" else TrainRunner
    return cached_runner(("train", backend, device, arch, optimizer, tuple(sorted(hyper.items())),
                          batch), backend, device,
                         lambda bk: cls(bk, arch, optimizer, hyper, batch), warm_up)


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




def median_seconds(runner: Any, n: int, rounds: int) -> float:
    """The median over ``rounds`` of the time ``runner.run(n)`` takes, divided by n (s)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runner.run(n)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / n


def alternating_timings(oracle: Any, torch: Any, n: int, rounds: int, pairs: int
                        ) -> list[tuple[float, float]]:
    """``pairs`` (oracle, torch) median_seconds, measured alternately in this process (so
    that a change of load falls on both sides of a ratio)."""
    return [(median_seconds(oracle, n, rounds), median_seconds(torch, n, rounds))
            for _ in range(pairs)]


class OracleOverTorch(ABC):
    """The ratio template: time of the oracle / time of torch float64 eager on the same work,
    timed alternately in one process at one thread (median of ``ratio_rounds`` (7) timings
    each, the pair measured ``ratio_pairs`` (3) times, the median ratio reported). A module's
    ``OracleOverTorch`` subclasses it (asv names the benchmark after the module's class; an
    abstract class is not collected) with ``params`` its works and a ``setup(work)`` that
    sets the runners ``oracle`` and ``torch``; ``n`` is the steps or calls per timing."""

    param_names = ("work",)
    timeout = 600
    number = 1
    repeat = 1
    ratio_rounds, ratio_pairs = 7, 3  # not asv's `rounds` (processes of a time_ benchmark)
    params: tuple[list[str]]
    oracle: Any
    torch: Any
    n: int

    @abstractmethod
    def setup(self, work: str) -> None:
        """Set ``oracle`` and ``torch`` (and ``n`` where it depends on the work)."""

    def timings(self) -> list[tuple[float, float]]:
        """``ratio_pairs`` (oracle, torch) median seconds per step or call, alternately."""
        return alternating_timings(self.oracle, self.torch, self.n, self.ratio_rounds,
                                   self.ratio_pairs)

    def track_ratio(self, work: str) -> float:
        return statistics.median(o / t for o, t in self.timings())

    track_ratio.unit = "oracle/torch"


def ratio_main(cls: type[OracleOverTorch], argv: list[str]) -> None:
    """Print the oracle's and torch's times and their ratio for each work of ``cls`` named
    in ``argv`` (all by default), as ``cls`` measures them: the modules' command line."""
    for work in argv or list(cls.params[0]):
        b = cls()
        b.setup(work)
        pairs = b.timings()
        print(f"{work}: oracle/torch {statistics.median(o / t for o, t in pairs):.2f} (median "
              f"of {b.ratio_pairs}); fastest median of {b.ratio_rounds}: oracle "
              f"{min(p[0] for p in pairs) * 1e3:.2f} ms, torch {min(p[1] for p in pairs) * 1e3:.2f}"
              " ms")
