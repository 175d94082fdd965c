"""The asv MLP and CNN benchmarks run one timed call on every backend (in a subprocess, since the
benchmark module pins the process to one core and one BLAS thread)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
print("ok")
"""


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_mlp_and_cnn_benchmarks_run(framework):
    pytest.importorskip({"numpy": "numpy", "torch": "torch", "jax": "optax"}[framework],
                        reason=f"{framework} is not installed (CI installs it and requires it)")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, framework], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
