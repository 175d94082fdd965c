"""The report writer: outcomes, known divergences (failing and now passing), margins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from backends.base import KnownDivergence
from backends.numpy_backend import NumpyBackend
from properties.report import classify, counterexample

ROOT = Path(__file__).resolve().parent.parent


class Divergent(NumpyBackend):
    """tanh is off by 1e-3 and declared; sigmoid is declared divergent but is right."""

    name = "divergent"
    known_divergences = (
        KnownDivergence("test_forward", "tanh", "tanh is off by 1e-3", "example#1"),
        KnownDivergence("test_forward", "sigmoid", "was wrong once", "example#2"),
    )

    def tanh(self, x):
        return np.tanh(x) + 1e-3


def test_known_divergences_are_reported_by_name(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "-k", "test_forward and not tail",
         "--backend", "tests.test_report:Divergent", "--certify", "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = json.loads((tmp_path / "divergent-cpu.json").read_text())
    by = {r["component"]: r for r in rep["results"]}
    assert by["tanh"]["outcome"] == "known divergence"
    assert "tanh is off by 1e-3" in by["tanh"]["reason"]
    assert by["sigmoid"]["outcome"] == "known divergence now passes"
    assert by["relu"]["outcome"] == "passed" and by["relu"]["examples"] > 0
    assert by["relu"]["worst_margin"] is not None and by["relu"]["worst_margin"] <= 1
    md = (tmp_path / "divergent-cpu.md").read_text()
    assert "## Known divergences" in md and "example#1" in md
    assert rep["summary"]["known divergence"] == 1


def test_classify_skips():
    base = {"wasxfail": None, "outcome": "skipped"}
    assert classify({**base, "longrepr": "('f.py', 3, 'Skipped: unsupported: no fp16')"}) == \
        ("unsupported", "no fp16")
    assert classify({**base, "longrepr": "Skipped: unavailable: torch missing"})[0] == "unavailable"


def test_counterexample_keeps_error_and_draws():
    text = "\n".join(["    def f():", "E   AssertionError: tanh forward: margin 3 > 1",
                      "E   Falsifying example: test_forward(", "E       dtype='float32',", "E   )",
                      "E   Draw 1 (x): array([1.])", "E   Explanation:"])
    out = counterexample(text)
    assert "AssertionError: tanh forward: margin 3 > 1" in out
    assert "Draw 1 (x): array([1.])" in out and "def f" not in out
