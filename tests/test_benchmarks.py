"""The asv MLP, CNN, recurrent, generative and training-practice benchmarks run one timed call
on every backend (in a subprocess, since the benchmark module pins the process to one core and
one BLAS thread); the recurrent benchmarks' backends start from the same weights (their first
loss and LSTM input gradient equal the oracle's within the tolerance policy's bound), and the
oracle/torch ratios run. The compiled benchmarks (bench_compiled) build the MLP cold under
each compiled backend, noting compilations, and time a call that compiles nothing more."""

from __future__ import annotations

import importlib.util
import os
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
# The tolerance policy's bound for a float64 backend against the oracle, as the LM and
# sequence-layer properties assemble it: the rounding of the inputs (the condition term,
# measured on the oracle) plus the rounding of every step of the computation (each result
# moved by eps times the magnitude of the terms its formula sums, carried through the
# recurrence and BPTT: NoisyLM, propagated), with sqrt(terms) for the longest sum (a weight
# gradient over the T N positions).
from properties.lm_terms import NoisyLM
from properties.sequence_cases import SequenceCase
from properties.sequence_terms import propagated
from properties.tolerance import compare, sensitivity, spread
from reference import language_model as LM
model, (params, inputs, targets) = B._model(), B._lm_data()
terms = max(max(B.EMBED, B.HIDDEN) + B.HIDDEN + 2, 4 * B.HIDDEN, B.SEQ * B.BATCH, B.VOCAB)
loss_cond = (sensitivity(lambda p: [np.asarray(LM.loss(model, p, inputs, targets)[0])], params)[0]
             + spread(lambda noise: [np.asarray(
                 NoisyLM(model, noise).loss_and_grads(params, inputs, targets)[0])])[0])
x, gy, weights = B._lstm_data()
case = SequenceCase("lstm", x, (None, None), [weights], {}, terms)
arrays = case.arrays()
dx_cond = (sensitivity(lambda a: case.gradients(a[:-1], (a[-1], None, None)), [*arrays, gy])[0]
           + propagated("lstm", x, (None, None), [weights], {}, (gy, None, None),
                        dtype="float64")[0])
for b in backends:
    for what, got, want, cond in (("first LM loss", first[b], first["numpy"], loss_cond),
                                  ("LSTM dx", dx[b], dx["numpy"], dx_cond)):
        c = compare(f"{b}: {what}", got, want, "float64", cond, terms)
        assert c.ok, (c.what, c.margin, c.detail)
B.OracleOverTorch.ratio_rounds = B.OracleOverTorch.ratio_pairs = 1
for work in B.WORKS:
    r = B.OracleOverTorch()
    r.setup(work)
    assert r.track_ratio(work) > 0
print("ok")
"""


COMPILED_SCRIPT = """
import sys
import numpy as np
from backends import compile_events
from benchmarks.bench_compiled import CompiledTrainStep
args = (sys.argv[1], "mlp", "cpu")
b = CompiledTrainStep()
b.setup(*args)
assert b.track_compile_seconds(*args) > 0, "building the runner noted no compilation"
r = b.runner
before = [r.bk.to_numpy(p).copy() for p in r.params]
noted = []
stop = compile_events.listen(lambda seconds, count: noted.append(count))
b.time_step(*args)
stop()
assert sum(noted) == 0, f"the timed call compiled {sum(noted)} graphs"
after = [r.bk.to_numpy(p) for p in r.params]
assert all(np.isfinite(a).all() for a in after)
assert any((a != p).any() for a, p in zip(after, before)), "the steps left the parameters"
print("ok")
"""


def _core() -> set[int] | None:
    """The core for this pytest-xdist worker's benchmark processes: a benchmark pins its
    process to the lowest core it may run on (benchmarks/training.py), so two workers' runs
    would otherwise share that core while the other idles."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return {cpus[int(worker.removeprefix("gw") or 0) % len(cpus)]}


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python -c script *args`` in the repository, on this worker's core."""
    core = _core()
    if core is not None:
        script = f"import os\nos.sched_setaffinity(0, {core!r})\n{script}"
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_mlp_cnn_and_rnn_benchmarks_run(framework):
    for module in {"numpy": ["numpy"], "torch": ["torch"], "jax": ["optax", "flax"]}[framework]:
        need(module, reason=f"{module} is not installed (CI installs it and requires it)")
    proc = run_script(SCRIPT, framework)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_rnn_benchmarks_share_weights_and_ratio_runs():
    need("torch", reason="torch is not installed (CI installs it and requires it)")
    backends = ["numpy", "torch"]
    if required() or all(importlib.util.find_spec(m) for m in ("optax", "flax")):
        backends.append("jax")
    proc = run_script(RNN_SCRIPT, *backends)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.parametrize("module", ["bench_generative", "bench_practice"])
def test_ratio_runs(module):
    need("torch", reason="torch is not installed (CI installs it and requires it)")
    script = (f"from benchmarks import {module} as B\n"
              "B.OracleOverTorch.ratio_rounds = B.OracleOverTorch.ratio_pairs = 1\n"
              "for work in B.WORKS:\n"
              "    r = B.OracleOverTorch()\n"
              "    r.setup(work)\n"
              "    assert r.track_ratio(work) > 0\n"
              "print('ok')\n")
    proc = run_script(script)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.parametrize("name,modules", [("torch-compile", ["torch"]),
                                          ("jax-jit", ["jax", "optax", "flax"])])
def test_compiled_benchmark_runs(name, modules):
    """The cheapest architecture (the MLP) under a compiled backend: building it cold notes
    compilations (track_compile_seconds > 0), and a timed call compiles nothing more and
    leaves finite, updated parameters."""
    for module in modules:
        need(module, reason=f"{module} is not installed (CI installs it and requires it)")
    proc = run_script(COMPILED_SCRIPT, name)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
