"""asv benchmarks: one MLP training step (forward, backward, optimizer update) per backend.

Fixed sizes: batch 64, layers 256-256-256-10 (three dense layers), tanh hidden activation,
mean cross-entropy, float64 throughout so the NumPy oracle ('numpy') is comparable with the
frameworks. Parameterised by backend ('numpy' is the oracle itself, 'torch', 'jax'),
optimizer ('sgd' with momentum 0.9, 'adam') and device: 'cpu' unless the environment variable
TOUCHSTONE_BENCH_DEVICES lists others (``TOUCHSTONE_BENCH_DEVICES=cpu,cuda``); a backend
without that device is skipped. Every timed call runs STEPS (20) training steps, so a sample
is well above timer noise; divide ``time_step`` by STEPS for the time of one step. How the
runs are set up and timed: benchmarks/training.py, the template every architecture uses.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.training import BACKENDS, DEVICES, REPEAT, jax_step, train_runner
from reference import network

OPTIMIZERS = ("sgd", "adam")
HYPER = {"sgd": {"lr": 0.01, "momentum": 0.9}, "adam": {"lr": 1e-3}}
BATCH = 64
ARCH = network.mlp((256, 256, 256, 10), "tanh", "cross_entropy")
STEPS = 20


def _runner(backend: str, optimizer: str, device: str = "cpu"):
    """The warmed-up MLP runner for (backend, optimizer, device)."""
    return train_runner(backend, device, ARCH, optimizer, HYPER[optimizer], BATCH, STEPS)


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
        step = jax_step(r)
        t0 = time.perf_counter()
        step.lower(r.params, r.state, r.opt_state, r.x, r.target).compile()
        return time.perf_counter() - t0

    track_compile_seconds.unit = "s"
