"""The three-way property (properties/test_three_way.py) passes two correct backends, catches a
backend right on one device and wrong on the other and names that device, states a bug both
devices share as one shared divergence, and applies each side's known divergences to that
side only. Each run is a property-suite subprocess over the planted two-device backends
(tests/planted_devices.py) under the planted profile (the ci profile's examples, without
shrinking), read back from its certificates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backends.base import KnownDivergence
from properties.checks import apart
from properties.plugin import DIVERGED, three_way_divergences
from properties.scoped import ScopedRun, note_arguments

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "tests.planted_devices"
#: the components the planted device bugs break (tests/planted_devices.py DeviceBugs)
SELECT = "-dense] or -softmax]"
TESTS = ("test_three_way_forward", "test_three_way_vjp", "test_three_way_forward_tail")

Run = Callable[[str, str], dict[str, dict]]


@pytest.fixture(scope="module")
def certify(tmp_path_factory) -> Run:
    """run(backends, against): the certificates (by id) of one three-way run over the dense
    and softmax tests, each run once per module."""
    runs: dict[tuple[str, str], dict[str, dict]] = {}

    def run(backends: str, against: str) -> dict[str, dict]:
        if (backends, against) not in runs:
            out = tmp_path_factory.mktemp("three-way")
            cmd = [sys.executable, "-m", "pytest", "properties/test_three_way.py", "-q",
                   "-p", "no:cacheprovider", "--hypothesis-profile", "planted",
                   "--backend", backends, "--against", against, f"-k={SELECT}", "--certify",
                   "--report-dir", str(out), "--replay-failures", "0", "-n", "0"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
            reps = {r["id"]: r for r in (json.loads(p.read_text()) for p in out.glob("*.json"))}
            assert reps, f"no certificate:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            runs[(backends, against)] = reps
        return runs[(backends, against)]

    return run


def _results(rep: dict) -> dict[tuple[str, str], dict]:
    return {(r["test"], r["component"]): r for r in rep["results"]}


def _ran_every_test(results: dict) -> None:
    assert set(results) == {(t, c) for t in TESTS for c in ("dense", "softmax")
                            if (t, c) != ("test_three_way_forward_tail", "dense")}


def test_correct_backends_agree(certify):
    results = _results(certify("numpy", "numpy")["numpy-cpu"])
    _ran_every_test(results)
    for r in results.values():
        assert r["outcome"] == "passed", r["reason"]
        assert r["three_way"]["against"] == "numpy-cpu"
        # one implementation twice: the same numbers, so no distance at all
        assert r["three_way"]["margin_apart"] == r["three_way"]["max_abs"] == 0.0
        assert r["three_way"]["margin_backend"] <= 1 and r["three_way"]["margin_against"] <= 1


def test_a_device_bug_is_caught_naming_the_device(certify):
    reps = certify(f"{PLANTED}:DeviceBugs", f"{PLANTED}:DeviceBugs@fake-gpu")
    results = _results(reps["planted-device-bugs-cpu"])
    _ran_every_test(results)
    failed = {k for k, r in results.items() if r["outcome"] == "failed"}
    # dense's float32 products in its forward and VJP; softmax's overflow only where logits
    # pass 709 (the tail range): its regular range and its VJP (the oracle's) are right
    assert failed == {("test_three_way_forward", "dense"), ("test_three_way_vjp", "dense"),
                      ("test_three_way_forward_tail", "softmax")}
    for key in failed:
        r = results[key]
        assert ("planted-device-bugs-fake-gpu diverges from the oracle and from "
                "planted-device-bugs-cpu") in r["reason"], r["reason"]
        assert r["counterexample"] and "--against" in r["reproduce"]
        assert r["three_way"]["margin_backend"] <= 1 < r["three_way"]["margin_against"]
        assert r["three_way"]["margin_apart"] > 1


def test_one_sides_known_divergence_does_not_excuse_the_other(certify):
    """The cpu side declares softmax's overflow; the fake-gpu side, which has it, does not."""
    reps = certify(f"{PLANTED}:DeclaredDeviceBugs", f"{PLANTED}:DeviceBugs@fake-gpu")
    r = _results(reps["planted-declared-device-bugs-cpu"])[("test_three_way_forward_tail",
                                                            "softmax")]
    assert r["outcome"] == "failed"
    assert "planted-device-bugs-fake-gpu diverges from the oracle" in r["reason"]


def test_a_declared_divergence_is_known_on_its_side(certify):
    reps = certify(f"{PLANTED}:DeviceBugs", f"{PLANTED}:DeclaredDeviceBugs@fake-gpu")
    results = _results(reps["planted-device-bugs-cpu"])
    tail = results[("test_three_way_forward_tail", "softmax")]
    assert tail["outcome"] == "known divergence"
    assert "planted-declared-device-bugs-fake-gpu: fake-gpu's softmax skips" in tail["reason"]
    assert 0 < tail["divergent_examples"] <= tail["examples"]
    # what it does not declare still fails
    assert results[("test_three_way_forward", "dense")]["outcome"] == "failed"


def test_a_shared_bug_is_one_shared_divergence(certify):
    reps = certify(f"{PLANTED}:SharedSoftmaxKernel", f"{PLANTED}:SharedSoftmaxKernel@fake-gpu")
    results = _results(reps["planted-shared-softmax-kernel-cpu"])
    failed = [r for r in results.values() if r["outcome"] != "passed"]
    assert [(r["test"], r["component"], r["outcome"]) for r in failed] == [
        ("test_three_way_forward_tail", "softmax", "failed")]
    assert ("planted-shared-softmax-kernel-cpu and planted-shared-softmax-kernel-fake-gpu "
            "agree with each other") in failed[0]["reason"]
    assert "but not with the oracle: a shared divergence" in failed[0]["reason"]
    assert failed[0]["three_way"]["margin_apart"] <= 1


def test_without_against_nothing_is_collected(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_three_way.py", "-q",
         "-p", "no:cacheprovider", "--backend", "numpy", "--run-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert json.loads((tmp_path / "keys-main.json").read_text()) == {}


def test_apart():
    bound = np.array([1.0, 1.0])
    assert apart([1.0, 2.0], [1.0, 2.0], bound) == (0.0, 0.0, 0.0)
    assert apart([1.0, 2.0], [1.5, 2.0], bound) == (0.5, 0.5, 0.5 / 1.5)
    assert apart([1.0, 2.0], [1.0, 2.0], np.array([0.0, 0.0])) == (0.0, 0.0, 0.0)
    # the same special values agree; a special value against another is infinitely far
    assert apart([np.nan, np.inf], [np.nan, np.inf], bound) == (0.0, 0.0, 0.0)
    assert apart([np.nan, 1.0], [1.0, 1.0], bound) == (np.inf, np.inf, np.inf)
    assert apart([np.inf, 1.0], [-np.inf, 1.0], bound) == (np.inf, np.inf, np.inf)
    assert apart([1.0], [1.0, 1.0], bound) == (np.inf, np.inf, np.inf)


def _example(args: dict, diverged: tuple[str, ...] | None):
    """An example noting ``args``: passing (``diverged`` None), or failing with those sides
    noted as diverged."""
    def inner():
        note_arguments(args)
        if diverged is not None:
            note_arguments({**args, DIVERGED: diverged})
            raise AssertionError("diverged")
        return "ok"
    return inner


def test_a_side_is_excused_by_its_own_divergences_only():
    large = KnownDivergence("test_forward", "softmax", "overflow", scope=(("axis", "==", -1),))
    run = ScopedRun(three_way_divergences(
        "test_three_way_forward", {"backend": [], "against": [large]},
        {"backend": "a-cpu", "against": "a-gpu"}))
    assert run.call(_example({"axis": -1}, ("against",))) is None  # declared, in scope
    assert run.call(_example({"axis": -1}, None)) == "ok"
    for args, diverged in (({"axis": 0}, ("against",)),  # declared, out of scope
                           ({"axis": -1}, ("backend",)),  # the side that declares nothing
                           ({"axis": -1}, ("backend", "against"))):
        with pytest.raises(AssertionError):
            run.call(_example(args, diverged))
    assert (run.in_scope[0], run.diverged[0]) == (2, 1)
    assert run.summary(2).startswith("known divergence observed in 1 of 2 examples (2 in its "
                                     "scope, a-gpu: axis == -1; every example outside it "
                                     "passed): a-gpu: overflow")
