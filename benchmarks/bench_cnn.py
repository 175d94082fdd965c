"""asv benchmarks: CNN training steps (LeNet, small ResNet) per backend, and conv2d
forward + backward, float64, one thread pinned to one core (benchmarks/training.py, the
template every architecture's training benchmark uses).

- LeNet: batch 32, 1x28x28, conv 6@5x5 (pad 2), pool, conv 16@5x5, pool, dense 120-84-10.
- ResNet: batch 32, 3x32x32, stem conv 16@3x3 + batch norm + ReLU, an identity block (16),
  a stride-2 projection block (32), global average pooling, dense 10.
- conv2d: N 32, 3 -> 16 channels, 32x32, 3x3 kernel, padding 1; forward and the gradients of
  input, weight and bias.

A timed call runs STEPS training steps (SGD with momentum 0.9) or CONV_CALLS conv2d
forward+backward passes. 'numpy' is the oracle (its hand-chained backward), 'torch' eager
autograd with torch.optim, 'jax' one jitted step (compiled in setup). Batch norms follow each
backend's convention. ``track_oracle_over_torch`` times the oracle and torch alternately in
one process and reports the ratio of their medians: the number the 2.5x target (2x wanted)
is about, measured under the same machine load.
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.training import (
    BACKENDS,
    DEVICES,
    DTYPE,
    REPEAT,
    alternating_timings,
    cached_runner,
    train_runner,
)
from reference import network

ARCHITECTURES = {"lenet": network.lenet(), "resnet": network.resnet()}
BATCH = 32
STEPS = 5
CONV_CALLS = 10
HYPER = {"lr": 0.01, "momentum": 0.9}


class _ConvRunner:
    """conv2d forward and the VJP for x, w and b (the oracle's hand-written one, torch
    autograd, or a jitted jax.vjp)."""

    def __init__(self, bk, name: str) -> None:
        rng = np.random.default_rng(2)
        self.bk, self.name = bk, name
        arrays = (rng.standard_normal((32, 3, 32, 32)), rng.standard_normal((16, 3, 3, 3)),
                  rng.standard_normal(16), rng.standard_normal((32, 16, 32, 32)))
        self.x, self.w, self.b, self.g = (bk.asarray(a, DTYPE) for a in arrays)
        if name == "jax":
            import jax

            self.fn = jax.jit(lambda x, w, b, g: bk.component_vjp("conv2d", (x, w, b), g,
                                                                  padding=1))

    def run(self, calls: int) -> None:
        out = None
        for _ in range(calls):
            if self.name == "jax":
                out = self.fn(self.x, self.w, self.b, self.g)
            else:
                out = self.bk.component_vjp("conv2d", (self.x, self.w, self.b), self.g, padding=1)
        if self.name == "jax":
            import jax

            jax.block_until_ready(out)
        self.bk.synchronize()


def _runner(kind: str, backend: str, arch: str, device: str):
    """The warmed-up runner: a training step of ``arch`` (kind "train") or conv2d ("conv")."""
    if kind == "train":
        return train_runner(backend, device, ARCHITECTURES[arch], "sgd", HYPER, BATCH, 1)
    return cached_runner((kind, backend, device), backend, device,
                         lambda bk: _ConvRunner(bk, backend), 1)


class CNNTrainStep:
    """STEPS (5) SGD-momentum training steps of LeNet or the small ResNet, batch 32, float64."""

    params = (list(BACKENDS), list(ARCHITECTURES), list(DEVICES))
    param_names = ("backend", "architecture", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300

    def setup(self, backend: str, architecture: str, device: str) -> None:
        self.runner = _runner("train", backend, architecture, device)

    def time_step(self, backend: str, architecture: str, device: str) -> None:
        """STEPS training steps, synchronised; divide by STEPS for one step."""
        self.runner.run(STEPS)

    def peakmem_step(self, backend: str, architecture: str, device: str) -> None:
        self.runner.run(STEPS)


class Conv2dForwardBackward:
    """CONV_CALLS (10) conv2d forward+backward passes, N32 3->16 32x32 k3 pad 1, float64."""

    params = (list(BACKENDS), list(DEVICES))
    param_names = ("backend", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300

    def setup(self, backend: str, device: str) -> None:
        self.runner = _runner("conv", backend, "", device)

    def time_forward_backward(self, backend: str, device: str) -> None:
        self.runner.run(CONV_CALLS)


class OracleOverTorch:
    """Time of the oracle / time of torch float64 eager on the same work, timed alternately in
    one process at one thread (median of 7 rounds each, the pair measured 3 times, the
    median ratio reported). Target <= 2.5 (2 wanted)."""

    params = (["lenet", "resnet", "conv2d"],)
    param_names = ("work",)
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, work: str) -> None:
        kind, arch = ("conv", "") if work == "conv2d" else ("train", work)
        self.oracle = _runner(kind, "numpy", arch, "cpu")
        self.torch = _runner(kind, "torch", arch, "cpu")
        self.n = CONV_CALLS if work == "conv2d" else STEPS

    def track_ratio(self, work: str) -> float:
        pairs = alternating_timings(self.oracle, self.torch, self.n, rounds=7, pairs=3)
        return statistics.median(o / t for o, t in pairs)

    track_ratio.unit = "oracle/torch"
