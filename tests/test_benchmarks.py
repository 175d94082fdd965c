"""The asv MLP, CNN, recurrent, generative and training-practice benchmarks run one timed call
on every backend (in a subprocess, since the benchmark module pins the process to one core and
one BLAS thread); the recurrent benchmarks' backends start from the same weights (the same first
loss and LSTM gradients), and the oracle/torch ratios run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optional import need, required

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import sys
from benchmarks.bench_cnn import CNNTrainStep, Conv2dForwardBackward
from benchmarks.bench_mlp import MLPTrainStep
b = MLPTrainStep()
for optimizer in ("sgd", "adam"):
    b.setup(sys.argv[1], optimizer, "cpu")
    b.time_step(sys.argv[1], optimizer, "cpu")
    assert b.track_samples_per_second(sys.argv[1], optimizer, "cpu") > 0
c = CNNTrainStep()
for arch in ("lenet", "resnet"):
    c.setup(sys.argv[1], arch, "cpu")
    c.time_step(sys.argv[1], arch, "cpu")
conv = Conv2dForwardBackward()
conv.setup(sys.argv[1], "cpu")
conv.time_forward_backward(sys.argv[1], "cpu")
from benchmarks.bench_rnn import CharLMTrainStep, LSTMForwardBackward
lm = CharLMTrainStep()
for optimizer in ("sgd", "adam"):
    lm.setup(sys.argv[1], optimizer, "cpu")
    lm.time_step(sys.argv[1], optimizer, "cpu")
lstm = LSTMForwardBackward()
lstm.setup(sys.argv[1], "cpu")
lstm.time_forward_backward(sys.argv[1], "cpu")
from benchmarks.bench_generative import DenoiserTrainStep, GANTrainStep, VAETrainStep
for cls in (GANTrainStep, VAETrainStep, DenoiserTrainStep):
    g = cls()
    g.setup(sys.argv[1], "cpu")
    g.time_step(sys.argv[1], "cpu")
from benchmarks.bench_practice import AugmentPipeline, RegularizedMLPTrainStep
r = RegularizedMLPTrainStep()
r.setup(sys.argv[1], "cpu")
r.time_step(sys.argv[1], "cpu")
a = AugmentPipeline()
a.setup(sys.argv[1], "cpu")
a.time_pipeline(sys.argv[1], "cpu")
print("ok")
"""

RNN_SCRIPT = """
import sys
import numpy as np
from benchmarks import bench_rnn as B
backends = sys.argv[1:]
# each runner ran one warm-up step in setup, from the same weights: its loss and, for the
# LSTM layer, its gradients are the first step's
first = {b: float(B._runner("lm", b, "cpu", "adam").value) for b in backends}
dx = {}
for b in backends:
    out = B._runner("lstm", b, "cpu").out
    dx[b] = np.asarray(out[1] if b == "jax" else out[0])
for b in backends:
    assert abs(first[b] - first["numpy"]) <= 1e-12 * abs(first["numpy"]), first
    err = np.abs(dx[b] - dx["numpy"]).max() / np.abs(dx["numpy"]).max()
    assert err <= 1e-12, (b, err)
B.ROUNDS, B.PAIRS = 1, 1
for work in B.WORKS:
    r = B.OracleOverTorch()
    r.setup(work)
    assert r.track_ratio(work) > 0
print("ok")
"""


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_mlp_cnn_and_rnn_benchmarks_run(framework):
    for module in {"numpy": ["numpy"], "torch": ["torch"], "jax": ["optax", "flax"]}[framework]:
        need(module, reason=f"{module} is not installed (CI installs it and requires it)")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, framework], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_rnn_benchmarks_share_weights_and_ratio_runs():
    need("torch", reason="torch is not installed (CI installs it and requires it)")
    backends = ["numpy", "torch"]
    if required() or all(importlib.util.find_spec(m) for m in ("optax", "flax")):
        backends.append("jax")
    proc = subprocess.run([sys.executable, "-c", RNN_SCRIPT, *backends], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.parametrize("module", ["bench_generative", "bench_practice"])
def test_ratio_runs(module):
    need("torch", reason="torch is not installed (CI installs it and requires it)")
    script = (f"from benchmarks import {module} as B\n"
              "B.ROUNDS, B.PAIRS = 1, 1\n"
              "for work in B.WORKS:\n"
              "    r = B.OracleOverTorch()\n"
              "    r.setup(work)\n"
              "    assert r.track_ratio(work) > 0\n"
              "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
