"""Known divergences scoped by a predicate over an example's arguments: judged per example, a
divergence in scope is reported as observed in k of n examples while every other example is
still checked, so a second bug outside the scope fails the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis.errors import UnsatisfiedAssumption

from backends.base import KnownDivergence
from properties.report import classify
from properties.scoped import ScopedRun, note_arguments

ROOT = Path(__file__).resolve().parent.parent
EPS = KnownDivergence("test_trajectory", "adam", "eps under the root", "example#3",
                      scope=(("eps", ">=", 1e-3), ("amsgrad", "in", [None, "torch"])))


def test_scope_conditions():
    assert EPS.scope == (("eps", ">=", 1e-3), ("amsgrad", "in", (None, "torch")))
    assert EPS.in_scope({"eps": 1e-3, "amsgrad": None})
    assert not EPS.in_scope({"eps": 1e-8, "amsgrad": None})
    assert not EPS.in_scope({"eps": 1e-3, "amsgrad": "optax"})
    assert not EPS.in_scope({"amsgrad": None})  # an argument the example lacks
    assert not EPS.in_scope({"eps": None, "amsgrad": None})  # values that do not compare
    assert EPS.describe_scope() == "eps >= 0.001 and amsgrad in (None, 'torch')"
    assert KnownDivergence("t", "c", "r").in_scope({}) and not KnownDivergence("t", "c", "r").scoped


def test_scope_predicate():
    kd = KnownDivergence("t", "c", "r", scope=lambda a: a["b2"] < 0.9, scope_text="b2 < 0.9")
    assert kd.in_scope({"b2": 0.5}) and not kd.in_scope({"b2": 0.99})
    assert kd.describe_scope() == "b2 < 0.9"


def test_bad_condition_is_named():
    with pytest.raises(ValueError, match="scope: expected"):
        KnownDivergence("t", "c", "r", scope=(("eps", "~", 1),))


def _example(args, fails: bool):
    def inner():
        if args is not None:
            note_arguments(args)
        if fails:
            raise AssertionError("wrong")
        return "ok"
    return inner


def test_failures_in_scope_are_counted_and_the_others_raised():
    run = ScopedRun((EPS,))
    assert run.call(_example({"eps": 1e-3, "amsgrad": None}, True)) is None
    assert run.call(_example({"eps": 1e-3, "amsgrad": "torch"}, False)) == "ok"
    assert run.call(_example({"eps": 1e-8, "amsgrad": None}, False)) == "ok"
    with pytest.raises(AssertionError, match="wrong"):
        run.call(_example({"eps": 1e-8, "amsgrad": None}, True))
    with pytest.raises(AssertionError, match="wrong"):  # no arguments noted: out of scope
        run.call(_example(None, True))
    assert (run.in_scope[0], run.diverged[0], run.observed) == (2, 1, 1)
    assert run.summary(5).startswith("known divergence observed in 1 of 5 examples (2 in its "
                                     "scope, eps >= 0.001 and amsgrad in (None, 'torch')")


def test_rejected_examples_pass_through():
    def rejected():
        note_arguments({"eps": 1e-3, "amsgrad": None})
        raise UnsatisfiedAssumption()

    with pytest.raises(UnsatisfiedAssumption):
        ScopedRun((EPS,)).call(rejected)


def test_passing_scoped_tests_are_classified():
    row = {"wasxfail": None, "outcome": "passed", "longrepr": "",
           "props": {"scoped_divergence": "eps >= 0.001", "in_scope_examples": 3}}
    assert classify(row)[0] == "known divergence now passes"
    row["props"]["in_scope_examples"] = 0
    assert classify(row) == ("passed", "no example fell in the scope of its known divergence "
                                       "(eps >= 0.001)")


def certify(backend: str, profile: str, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """A certification of ``backend``'s Adam trajectory (a failure is not replayed in a fresh
    process: only its outcome and draws are tested)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_optimizers.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", profile, "-k", "test_trajectory and adam]",
         "--backend", backend, "--certify", "--report-dir", str(out), "--replay-failures", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    reports = list(out.glob("*.json"))
    assert len(reports) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(reports[0].read_text())


def test_divergence_in_scope_is_reported_as_known(tmp_path):
    proc, rep = certify("tests.scoped_backends:EpsScopedAdam", "ci", tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (adam,) = rep["results"]
    assert adam["outcome"] == "known divergence", adam
    assert 0 < adam["divergent_examples"] <= adam["in_scope_examples"] < adam["examples"], adam
    assert f"observed in {adam['divergent_examples']} of {adam['examples']} examples" \
        in adam["reason"]
    assert rep["known_divergences"][0]["scope"] == "eps >= 0.001"
    md = next(tmp_path.glob("*.md")).read_text()
    assert "| eps >= 0.001 |" in md and "diverged" in md


def test_bug_outside_the_scope_fails(tmp_path):
    """The same declaration with AMSGrad also wrong: an example with eps = 1e-8 fails."""
    proc, rep = certify("tests.scoped_backends:EpsScopedAdamAmsgradBug", "planted", tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (adam,) = rep["results"]
    assert adam["outcome"] == "failed", adam
    # the recorded draws of the failing example: outside the scope (eps < 1e-3), AMSGrad on
    draws = dict(line.split(" = ", 1) for line in adam["counterexample"].splitlines()[1:])
    assert float(draws["eps"]) < 1e-3, adam["counterexample"]
    assert draws["adam.amsgrad"] in ("'torch'", "'optax'"), adam["counterexample"]
