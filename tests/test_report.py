"""The report writer: outcomes, known divergences (failing and now passing), margins, and the
arguments a backend lacks, apart from its conventions."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from backends.base import KnownDivergence, Unsupported
from backends.numpy_backend import NumpyBackend
from properties import report
from properties.record import start_record
from properties.report import _lacked, classify, counterexample, lacked_arguments
from properties.strategies import conventions
from reference import activations

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
         "--backend", "tests.test_report:Divergent", "--certify", "--report-dir", str(tmp_path),
         "--replay-failures", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = report.load(tmp_path, "divergent-cpu")
    assert rep["status"] == "partial" and "test_forward and not tail" in rep["selection"]
    by = {r["component"]: r for r in rep["results"]}
    assert by["tanh"]["outcome"] == "known divergence"
    assert "tanh is off by 1e-3" in by["tanh"]["reason"]
    # unscoped: nothing says the examples reached the divergent range, so not "now passes"
    assert by["sigmoid"]["outcome"] == "known divergence not observed"
    assert by["sigmoid"]["reason"].startswith(f"not observed in {by['sigmoid']['examples']} ")
    assert by["relu"]["outcome"] == "passed" and by["relu"]["examples"] > 0
    assert by["relu"]["worst_margin"] is not None and by["relu"]["worst_margin"] <= 1
    md = (tmp_path / "divergent-cpu.partial.md").read_text()
    assert md.splitlines()[2].startswith("**Partial:**")
    assert "## Known divergences" in md and "example#1" in md
    assert rep["summary"]["known divergence"] == 1


def test_classify_skips_and_lost_processes():
    base = {"wasxfail": None, "outcome": "skipped", "props": {}}
    assert classify({**base, "error": "Skipped: unsupported: no fp16"}) == \
        ("unsupported", "no fp16")
    assert classify({**base, "error": "Skipped: unavailable: torch missing"})[0] == "unavailable"
    lost = {"wasxfail": None, "outcome": "failed", "error": ""}
    assert classify({**lost, "props": {"ended": "timed out after 5 s"}}) == \
        ("timed out", "timed out after 5 s")
    assert classify({**lost, "props": {"ended": "crashed: Fatal Python error: Segmentation "
                                                "fault"}}) == \
        ("crashed", "Fatal Python error: Segmentation fault")


def test_counterexample_is_the_recorded_error_and_draws():
    entry = {"error": "AssertionError: tanh forward: margin 3 > 1", "props": {"failure": {
        "error": "AssertionError: tanh forward: margin 3 > 1",
        "draws": [["shape", "(2,)"], ["seed", "7"]]}}}
    assert counterexample(entry) == "AssertionError: tanh forward: margin 3 > 1\nshape = (2,)\n" \
        "seed = 7"


class WrongTanh(NumpyBackend):
    """tanh off by 1e-3: a real failing property."""

    name = "wrong-tanh"

    def tanh(self, x):
        return np.tanh(x) + 1e-3


def test_counterexample_of_a_real_failing_property(tmp_path):
    """The certificate's counterexample comes from the draws the test recorded, under the
    Hypothesis that is installed (shrunk: the last failing example is the minimal one)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "-k", "test_forward and tanh",
         "--backend", "tests.test_report:WrongTanh", "--certify", "--report-dir", str(tmp_path),
         "--replay-failures", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:]
    rep = report.load(tmp_path, "wrong-tanh-cpu")
    (row,) = [r for r in rep["results"] if r["test"] == "test_forward" and r["component"] == "tanh"]
    assert row["outcome"] == "failed" and row["reason"].startswith("AssertionError: tanh")
    lines = row["counterexample"].splitlines()
    assert lines[0] == row["reason"]
    draws = dict(line.split(" = ", 1) for line in lines[1:])
    assert draws, row["counterexample"]
    assert row["examples"] >= 1 and row["examples"] <= 20
    assert row["worst_margin"] > 1
    md = (tmp_path / "wrong-tanh-cpu.partial.md").read_text()
    assert row["counterexample"] in md and "Reproduce: `python -m pytest" in md


class LacksBeta(NumpyBackend):
    """A softplus without a beta argument: declared in ``lacks`` (fixed to 1), not among the
    conventions. Any other beta is Unsupported, so were the draw not replaced, examples would
    be set aside."""

    name = "lacking"
    lacks = {"softplus": {"beta": (1.0, "this softplus has no beta argument")}}

    def softplus(self, x, beta=1.0, threshold=None):
        if beta != 1.0:
            raise Unsupported(f"this softplus has no beta (got {beta})")
        return activations.softplus(x, 1.0, threshold)


def test_a_lacked_argument_replaces_the_draw_and_is_noted():
    rec = start_record()
    backend = LacksBeta()
    assert conventions(None, backend, "softplus", {"beta": 2.5, "threshold": None}) == \
        {"beta": 1.0, "threshold": None}
    assert conventions(None, backend, "softplus", {"beta": 1.0}) == {"beta": 1.0}
    assert conventions(None, backend, "softplus", {"beta": 1.00001}) == {"beta": 1.0}
    assert conventions(None, backend, "relu", {}) == {}
    assert rec.lacked == Counter({("softplus", "beta", "2.5"): 1, ("softplus", "beta", None): 1,
                                  ("softplus", "beta", "≈1"): 1})


def test_lacked_arguments_count_the_tests_that_ran():
    def row(outcome, lacked, error=""):
        return {"wasxfail": None, "outcome": outcome, "error": error,
                "props": {"lacked_arguments": lacked}}

    rows = [row("passed", [["sgd", "dampening", "0.5", 3], ["sgd", "dampening", None, 2],
                           ["sgd", "weight", "array of shape (3,)", 1]]),
            row("failed", [["sgd", "dampening", "0.1", 4]]),
            row("skipped", [["sgd", "dampening", "0.9", 7]], "Skipped: unsupported: no")]
    (entry,) = lacked_arguments({"sgd": {"dampening": (0.0, "no dampening")}}, rows)
    assert entry == {"component": "sgd", "argument": "dampening", "value": 0.0,
                     "why": "no dampening", "drawn": 9, "excluded": {"0.1": 4, "0.5": 3}}
    head = "sgd dampening: fixed to `0.0` (no dampening); drawn values excluded in 7 of the 9 " \
        "examples that drew it: "
    assert _lacked(entry) == head + "0.1 ×4, 0.5 ×3"
    assert _lacked(entry, shown=1) == head + "0.1 ×4, and 1 other values (3 examples) from 0.5 to 0.5"
    assert _lacked({**entry, "drawn": 0, "excluded": {}}).endswith("; not drawn in this run")


def test_lacked_arguments_are_reported_apart_from_conventions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "-k", "softplus",
         "--backend", "tests.test_report:LacksBeta", "--certify", "--report-dir", str(tmp_path),
         "--replay-failures", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = report.load(tmp_path, "lacking-cpu")
    rows = [r for r in rep["results"] if r["component"] == "softplus"]
    assert {r["test"] for r in rows} == {"test_forward", "test_vjp", "test_forward_tail"}
    assert all(r["outcome"] == "passed" and r["examples"] > 0 and r["unsupported_examples"] == 0
               for r in rows)
    assert "softplus" not in rep["conventions"]
    (entry,) = rep["lacks"]
    assert (entry["component"], entry["argument"], entry["value"], entry["why"]) == \
        ("softplus", "beta", 1.0, "this softplus has no beta argument")
    excluded = entry["excluded"]
    assert excluded and "1" not in excluded  # the case draws beta in [0.5, 3]
    assert all(0.5 <= float(v.lstrip("≈")) <= 3.0 for v in excluded)
    # every checked example drew beta; so did examples set aside later (kinks, ties)
    assert 0 < sum(excluded.values()) <= entry["drawn"]
    assert sum(r["examples"] for r in rows) <= entry["drawn"]
    md = (tmp_path / "lacking-cpu.partial.md").read_text()
    section = md.split("## Arguments the backend lacks", 1)[1].split("## Results", 1)[0]
    assert (f"- softplus beta: fixed to `1.0` (this softplus has no beta argument); drawn "
            f"values excluded in {sum(excluded.values())} of the {entry['drawn']} examples that "
            "drew it: ") in section
    top, n = next(iter(excluded.items()))
    assert f"{top} ×{n}" in section
    assert "beta" not in md.split("## Arguments the backend lacks", 1)[0]  # nor in conventions
