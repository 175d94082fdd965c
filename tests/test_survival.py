"""A certification survives its backends: every misbehaviour of tests/misbehaving.py gets its
named outcome while the correct backend's results stay intact; a certification killed midway
leaves what finished, marked incomplete; workers (-n 2) and a serial run certify alike."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends.harness import message
from properties import report, runlog
from tests.misbehaving import MISBEHAVING

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = sorted(set(MISBEHAVING.values()))
ONLY = f"test_forward and not tail and ({' or '.join(COMPONENTS)})"


def certify(backends: str, out: Path, *extra: str, only: str = ONLY, profile: str = "ci",
            timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", profile, "-k", only, "--backend", backends,
         "--certify", "--report-dir", str(out), "--replay-failures", "0", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")  # session: a worker may interleave other modules
def survived(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("survival")
    specs = ["tests.misbehaving:Numpy32",
             *(f"tests.misbehaving:{cls.__name__}" for cls in MISBEHAVING)]
    # no shrinking (the planted profile): a failure's outcome is what is tested, and shrinking
    # one (13 s for the non-finite softplus alone) under CI's load ran past the 20 s timeout
    proc = certify(",".join(specs), out, "-n", "2", "--test-timeout", "20", profile="planted")
    reports = {rep["id"]: rep for rep in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    assert len(reports) == len(specs), proc.stdout[-3000:] + proc.stderr[-3000:]
    return reports


def _rows(rep: dict, component: str) -> list[dict]:
    return [r for r in rep["results"] if r["component"] == component]


def test_the_correct_backend_is_intact(survived):
    rep = survived["numpy32-cpu"]
    assert rep["summary"] == {"passed": len(rep["results"])}, rep["summary"]
    assert {r["component"] for r in rep["results"]} == set(COMPONENTS)
    assert all(r["examples"] > 0 and r["worst_margin"] <= 1 for r in rep["results"])


EXPECTED = {
    "raises": ("failed", "BackendError: raises-cpu: relu raised RuntimeError: relu kernel not "
                         "implemented"),
    "returns-list": ("failed", "BackendError: returns-list-cpu: gelu returned list, not an array"),
    "wrong-shape": ("failed", "AssertionError: sigmoid forward: margin inf > 1"),
    "non-finite": ("failed", "AssertionError: softplus forward: margin inf > 1"),
    "mutates": ("failed", "BackendError: mutates-cpu: silu mutated input 0 (x)"),
    "wrong-dtype": ("failed", "BackendError: wrong-dtype-cpu: tanh returned float64 for a "
                              "float32 call"),
    "hangs": ("timed out", "timed out after 20 s"),
    "exits": ("crashed", "the worker process ended with no Python error"),
    "segfaults": ("crashed", "Fatal Python error: Segmentation fault"),
}


@pytest.mark.parametrize("cls", list(MISBEHAVING), ids=lambda c: c.name)
def test_each_misbehaviour_has_its_named_outcome(survived, cls):
    rep = survived[f"{cls.name}-cpu"]
    component = MISBEHAVING[cls]
    broken = _rows(rep, component)
    want = EXPECTED[cls.name]
    if cls.name in ("wrong-dtype", "hangs"):  # misbehaves in float32 only
        by_dtype = {r["dtype"]: r for r in broken}
        assert by_dtype["float64"]["outcome"] == "passed"
        broken = [by_dtype["float32"]]
    assert broken
    for r in broken:
        assert (r["outcome"], r["reason"][:len(want[1])]) == want, r
        assert r["counterexample"] and r["reproduce"], r
        if r["outcome"] == "failed":
            assert r["worst_margin"] is None or r["worst_margin"] > 1, r
    # the example that caused it: its draws (a crash or timeout: the example it was running)
    assert any("\n" in r["counterexample"] for r in broken), broken
    if cls.name == "non-finite":
        assert any("non-finite" in r["reason"] for r in broken), broken
    if cls.name == "segfaults":  # with the Python stack the worker's faulthandler wrote
        assert any('misbehaving.py", line' in r["counterexample"]
                   and "in log_softmax" in r["counterexample"] for r in broken), broken
    others = [r for r in rep["results"] if r["component"] != component]
    assert others and all(r["outcome"] == "passed" for r in others), \
        [(r["nodeid"], r["outcome"]) for r in others if r["outcome"] != "passed"]


def test_a_killed_certification_leaves_an_incomplete_certificate(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "--backend",
         "tests.misbehaving:Numpy32", "--certify", "--report-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    path = tmp_path / "numpy32-cpu.partial.json"  # one file of properties: a selection
    deadline = time.monotonic() + 600
    rows = 0
    while time.monotonic() < deadline and rows < 10:
        time.sleep(0.5)
        try:
            rows = len(json.loads(path.read_text())["results"])
        except (OSError, ValueError, KeyError):
            rows = 0
        assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert rows >= 10
    rep = report.load(tmp_path, "numpy32-cpu")
    assert rep["status"] == "partial, incomplete" and len(rep["results"]) >= 10
    assert not (tmp_path / "numpy32-cpu.json").exists()
    assert (tmp_path / "numpy32-cpu.partial.md").read_text().splitlines()[2].startswith(
        "**Partial and incomplete:**")


def test_an_interrupted_certification_resumes_where_it_stopped(tmp_path):
    """--maxfail stops a serial run at its planted failure (an interrupted certificate, not a
    complete one); --resume refuses another profile, then runs only the rest under -n 2 and
    certifies as one uninterrupted run does, exit status included."""
    only = "test_forward and not tail and (sigmoid or tanh or relu or softplus)"
    spec, cert_id = "tests.planted:SigmoidViaTanh", "planted-sigmoid-via-tanh-cpu"
    whole = certify(spec, tmp_path / "whole", "-n", "0", only=only, profile="planted")
    out, run = tmp_path / "resumed", tmp_path / "run"
    stopped = certify(spec, out, "-n", "0", "--maxfail", "1", "--run-dir", str(run), only=only,
                      profile="planted")
    first = report.load(out, cert_id)
    assert stopped.returncode == 1 and first["status"] == "partial, incomplete", stopped.stdout
    refused = certify(spec, out, "--resume", only=only, profile="ci")
    assert refused.returncode == 4 and "Hypothesis profile 'planted'" in refused.stderr
    resumed = certify(spec, out, "-n", "2", "--resume", only=only, profile="planted")
    assert resumed.returncode == whole.returncode == 1, resumed.stdout[-3000:]
    rep, expected = report.load(out, cert_id), report.load(tmp_path / "whole", cert_id)
    assert rep["status"] == "partial" and rep["resumed"]["results"] == len(first["results"])
    assert 0 < len(first["results"]) < len(rep["results"])

    def rows(r: dict) -> list:
        return sorted((x["nodeid"], x["outcome"], x["examples"], x["worst_margin"])
                      for x in r["results"])
    assert rows(rep) == rows(expected)
    journal = [row["nodeid"] for row in runlog.read_rows(run / "results.jsonl")]
    assert sorted(journal) == sorted(x["nodeid"] for x in rep["results"])  # none ran twice


def test_workers_and_a_serial_run_certify_alike(tmp_path):
    only = "(test_forward or test_vjp) and (tanh or softmax or cross_entropy or dense)"
    runs = {}
    for n in ("0", "2"):
        out = tmp_path / f"n{n}"
        proc = certify("tests.misbehaving:Numpy32", out, "-n", n, only=only)
        assert proc.returncode == 0, proc.stdout[-3000:]
        rep = report.load(out, "numpy32-cpu")
        runs[n] = sorted((r["nodeid"], r["outcome"], r["examples"], r["unsupported_examples"],
                          r["worst_margin"]) for r in rep["results"])
    assert runs["0"] and runs["0"] == runs["2"]


def test_tests_of_no_selected_dtype_are_deselected_not_reported(tmp_path):
    """The float32-only sequence invariants have no parameter for the float64-only oracle
    backend: pytest's empty parameter set (a NOTSET backend) would reach xdist's report
    serialisation and end the worker (execnet's DumpError); they are deselected instead."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_recurrent.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "-k",
         "test_sequence_length_one_is_a_cell_step or test_clip_by_value", "--backend", "numpy",
         "--certify", "--report-dir", str(tmp_path), "--replay-failures", "0", "-n", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "INTERNALERROR" not in proc.stdout + proc.stderr
    rep = report.load(tmp_path, "numpy-cpu")
    ids = [r["nodeid"] for r in rep["results"]]
    assert ids and all("test_clip_by_value[numpy-cpu-float64]" in i for i in ids), ids


def test_failing_examples_do_not_keep_what_the_backend_built(tmp_path):
    """Hypothesis keeps the exception of every failing example it tries while it shrinks;
    their frames must not keep the backend's objects alive (without the plugin's release,
    553 of the backend's graphs were alive at once)."""
    proc = certify("tests.misbehaving:Hoards", tmp_path, "-n", "0",
                   only="test_forward and not tail and float64-relu")
    rows = report.load(tmp_path, "hoards-cpu")["results"]
    assert len(rows) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (r,) = rows
    assert r["outcome"] == "failed" and r["replays"] >= 5, r  # it shrank: many failures
    most = re.search(r"at most (\d+) graphs alive at once", r["reason"])
    assert most and int(most[1]) == 1, r["reason"]


def test_a_long_error_message_is_bounded():
    """A backend's error reaches the record with a compiler's output cut to its head and its
    error lines (Hypothesis keeps the text of every failing example)."""
    text = "compile failed\n" + "warning: a compiler's line\n" * 20000 + "error: the cause"
    got = message(RuntimeError(text))
    assert len(got) < 2200 and got.startswith("compile failed\n")
    assert got.endswith("error: the cause") and f"({len(text) - 2000} more characters)" in got
    assert message(RuntimeError("short")) == "short"
