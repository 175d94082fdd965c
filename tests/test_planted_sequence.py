"""The sequence-layer and clipping properties catch real bugs: every planted-bug backend of
tests/planted_sequence.py fails in the component it breaks, by a property (not a crash),
under the planted profile (the ci examples, without shrinking), while the correct oracle
backend passes the same tests in the same run (as tests/test_planted_bugs.py does for the
registry's components)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.planted_sequence import SEQUENCE_PLANTED
from tests.test_planted_bugs import PROGRAMMING_ERRORS

ROOT = Path(__file__).resolve().parent.parent
CORRECT = "tests.sequence_backends:NumpySequences"


def _tests_of(component: str) -> str:
    return f"(-{component}] or test_{component})"


@pytest.fixture(scope="session")
def planted_sequence_run(tmp_path_factory) -> dict[str, dict]:
    """One run of properties/test_recurrent.py over the oracle and every planted backend,
    each on the tests of the component it breaks."""
    out = tmp_path_factory.mktemp("planted-sequence-reports")
    specs = [CORRECT, *(f"{cls.__module__}:{cls.__name__}" for cls in SEQUENCE_PLANTED)]
    components = sorted({_tests_of(cls.component) for cls in SEQUENCE_PLANTED})
    only = " or ".join([f"(numpy-cpu and ({' or '.join(components)}))",
                        *(f"({cls.name}-cpu and {_tests_of(cls.component)})"
                          for cls in SEQUENCE_PLANTED)])
    cmd = [sys.executable, "-m", "pytest", "properties/test_recurrent.py", "-q",
           "-p", "no:cacheprovider", "--hypothesis-profile", "planted", "--backend",
           ",".join(specs), "--certify", "--report-dir", str(out), "-k", only,
           "--replay-failures", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    reports = {rep["id"]: rep for rep in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    assert reports, f"the planted run wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return reports


def test_correct_sequence_backend_passes(planted_sequence_run):
    rep = planted_sequence_run["numpy-cpu"]
    failed = [r["nodeid"] for r in rep["results"] if r["outcome"] == "failed"]
    assert not failed, f"the oracle backend failed: {failed}"
    assert rep["summary"].get("passed", 0) > 0


@pytest.mark.parametrize("cls", SEQUENCE_PLANTED, ids=lambda c: c.name)
def test_planted_sequence_bug_is_caught(planted_sequence_run, cls):
    rep = planted_sequence_run[f"{cls.name}-cpu"]
    failed = [r for r in rep["results"] if r["outcome"] == "failed"]
    where = sorted({r["component"] for r in failed})
    assert cls.component in where, (
        f"{cls.name} ({cls.__doc__.strip()}) was not caught in {cls.component!r}; "
        f"failures were in {where}")
    for r in failed:
        assert r["counterexample"] and r["reproduce"], f"{r['nodeid']} lacks a reproduction"
    assert any(not re.search(PROGRAMMING_ERRORS, r["counterexample"])
               for r in failed if r["component"] == cls.component), (
        f"{cls.name} failed in {cls.component!r} only by a programming error: "
        f"{[r['counterexample'][:300] for r in failed]}")
