"""A backend that follows Keras 3's conventions (tests/keras_backend.py, written from Keras'
source) passes the optimizer and loss properties when it declares them, and fails them when it
declares PyTorch's instead: the properties hold each backend to the conventions it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from properties import consistency
from reference import registry
from tests.keras_backend import KerasMislabelled, KerasNumpy

ROOT = Path(__file__).resolve().parent.parent
PROPERTIES = ["properties/test_optimizers.py", "properties/test_components.py",
              "properties/test_invariants.py", "properties/test_architectures.py"]
ONLY = "test_trajectory or cross_entropy or (test_network_training and mlp)"
OPTIMIZERS = {"sgd", "adam", "adamw", "rmsprop", "adagrad"}


def certify(backend: str, profile: str, out: Path, only: str = ONLY, *extra: str
            ) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *PROPERTIES, "-q", "-p", "no:cacheprovider",
         "--hypothesis-profile", profile, "-k", only, "--backend", backend, "--certify",
         "--report-dir", str(out), *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    reports = list(out.glob("*.json"))
    assert len(reports) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(reports[0].read_text())


def test_keras_backend_declaring_keras_conventions_passes(tmp_path):
    proc, rep = certify("tests.keras_backend:KerasNumpy", "ci", tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    outcome = {(r["test"], r["component"], r["variant"]): (r["outcome"], r["examples"])
               for r in rep["results"]}
    expected = {*(("test_trajectory", o, "") for o in OPTIMIZERS),
                ("test_forward", "cross_entropy", ""), ("test_vjp", "cross_entropy", ""),
                *(("test_network_training", "mlp", f"optimizer={o}") for o in OPTIMIZERS)}
    assert expected <= set(outcome), sorted(outcome)
    for key in expected:
        result, examples = outcome[key]
        assert result == "passed" and examples > 0, (key, outcome[key])
    assert rep["conventions"]["adam"]["eps_placement"] == "raw"
    assert rep["conventions"]["cross_entropy"]["class_weighting"] == "per_example"


def test_keras_backend_declaring_torch_conventions_fails(tmp_path):
    """The same code declaring eps_placement='corrected', weight_decay_mode='l2' and
    class_weighting='per_class' fails in every optimizer and in cross-entropy (the planted
    profile: the ci examples, no shrinking; the optimizer and loss properties only)."""
    # its failures are not replayed in fresh processes: whether they reproduce is not tested
    proc, rep = certify("tests.keras_backend:KerasMislabelled", "planted", tmp_path,
                        "test_trajectory or cross_entropy", "--replay-failures", "0")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = {(r["test"], r["component"]) for r in rep["results"] if r["outcome"] == "failed"}
    assert {("test_trajectory", o) for o in OPTIMIZERS} <= failed, sorted(failed)
    assert {("test_forward", "cross_entropy"), ("test_vjp", "cross_entropy")} <= failed
    for r in rep["results"]:
        if r["outcome"] == "failed":
            assert "AssertionError" in r["counterexample"] and r["reproduce"], r


def test_keras_backends_declare_what_the_oracle_accepts():
    """Their conventions are values the oracle accepts and their lacked arguments are not
    conventions (properties/consistency.py), as a backend author's would be checked."""
    for cls in (KerasNumpy, KerasMislabelled):
        assert consistency.convention_mismatches(cls, registry.RECORDS) == []
        assert consistency.lacked_mismatches(cls, registry.RECORDS) == []
    assert KerasNumpy.lacks["sgd"]["dampening"][0] == 0.0
