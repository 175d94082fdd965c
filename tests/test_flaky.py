"""Flaky failures (issue 9, item 4): a failure that does not come back when its example is
replayed, by Hypothesis in the same process or by its reproduce command in a fresh process,
is reported *flaky* with both observations and the example; a deterministic failure is
'reproduced in a fresh process'. The certification runs the planted profile (no shrinking)
over one test per backend, to stay short."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, FlakyFailure

from properties import flaky, runlog
from properties.record import Record
from properties.report import classify
from tests.flaky_backends import MARKER_ENV

ROOT = Path(__file__).resolve().parent.parent
ONLY = "test_vjp and float64-tanh]"
BACKENDS = {"first-call-wrong-cpu": "tests.flaky_backends:FirstCallWrong",
            "wrong-in-first-process-cpu": "tests.flaky_backends:WrongInFirstProcess",
            "planted-tanh-vjp-from-input-cpu": "tests.planted:TanhVjpFromInput"}
ERROR = "AssertionError: tanh vjp wrt x: margin "


@pytest.fixture(scope="session")  # session: a worker may interleave other modules
def run(tmp_path_factory) -> dict:
    """One certification over the three backends: its process, certificates and marker."""
    tmp = tmp_path_factory.mktemp("flaky")
    marker = tmp / "marker"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "planted", "-k", ONLY, "--backend",
         ",".join(BACKENDS.values()), "--certify", "--report-dir", str(tmp / "reports")],
        cwd=ROOT, env={**os.environ, MARKER_ENV: str(marker)}, capture_output=True, text=True,
        timeout=600)
    reports = {rep["id"]: rep for rep in (json.loads(p.read_text())
                                          for p in (tmp / "reports").glob("*.json"))}
    assert set(reports) == set(BACKENDS), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"proc": proc, "reports": reports, "dir": tmp / "reports", "marker": marker}


def _row(run: dict, backend_id: str) -> dict:
    (row,) = run["reports"][backend_id]["results"]
    return row


def _draw_labels(obs: dict) -> list[str]:
    return [label for label, _ in obs["draws"]]


def test_a_failure_hypothesis_cannot_replay_is_flaky(run):
    row = _row(run, "first-call-wrong-cpu")
    assert row["outcome"] == "flaky", row
    f = row["flaky"]
    assert f["where"] == flaky.IN_PROCESS
    assert row["reason"] == f["summary"] == \
        "failed, then passed when Hypothesis replayed its example in the same process"
    assert f["first"]["outcome"] == "failed" and f["first"]["error"].startswith(ERROR)
    assert _draw_labels(f["first"]) == ["sizes", "shape", "x", "seed"]
    # the replay ran the same example and passed
    assert f["second"] == {"outcome": "passed", "draws": f["first"]["draws"]}
    assert row["counterexample"].startswith(f["first"]["error"] + "\nsizes = 'small'\nshape = ")
    assert row["replay"] == ""  # flaky already: not replayed in a fresh process
    assert run["reports"]["first-call-wrong-cpu"]["summary"] == {"flaky": 1}


def test_a_failure_that_passes_in_a_fresh_process_is_flaky(run):
    row = _row(run, "wrong-in-first-process-cpu")
    assert row["outcome"] == "flaky", row
    f = row["flaky"]
    assert f["where"] == flaky.FRESH_PROCESS
    assert row["reason"] == "failed in the run, passed when replayed in a fresh process"
    assert f["first"]["outcome"] == "failed" and f["first"]["error"].startswith(ERROR)
    assert _draw_labels(f["first"]) == ["sizes", "shape", "x", "seed"]
    assert f["second"]["outcome"] == "passed" and f["second"]["examples"] > 0
    assert row["replay"] == "passed in a fresh process: flaky"
    assert row["counterexample"].startswith(f["first"]["error"] + "\nsizes = 'small'\nshape = ")
    assert run["marker"].exists()  # the run's process answered wrong; the replay did not


def test_a_deterministic_failure_is_reproduced(run):
    row = _row(run, "planted-tanh-vjp-from-input-cpu")
    assert row["outcome"] == "failed" and row["flaky"] is None, row
    assert row["replay"] == "reproduced in a fresh process", row["replay"]
    assert row["reason"].startswith(ERROR)


def test_flaky_tests_fail_the_run_and_replays_show_progress(run):
    proc = run["proc"]
    assert proc.returncode == 1, proc.stdout[-3000:]
    replayed = {f"properties/test_components.py::test_vjp[{b}-float64-tanh]"
                for b in ("wrong-in-first-process-cpu", "planted-tanh-vjp-from-input-cpu")}
    # replays follow the order the tests finished in, which the xdist release decides
    lines = re.findall(r"^touchstone: replaying (\d)/2: (\S+)$", proc.stdout, re.M)
    assert sorted(i for i, _ in lines) == ["1", "2"], proc.stdout[-3000:]
    assert {nodeid for _, nodeid in lines} == replayed


def test_the_markdown_shows_both_observations(run):
    md = (run["dir"] / "wrong-in-first-process-cpu.partial.md").read_text()
    assert "| flaky | 1 |" in md
    section = md.split("### properties/test_components.py::test_vjp[wrong-in-first-process")[1]
    assert "First observation (in the run): failed" in section
    assert "x = array(" in section and ERROR in section
    assert "Second observation (replayed in a fresh process): passed (" in section
    md = (run["dir"] / "first-call-wrong-cpu.partial.md").read_text()
    assert "Second observation (replayed in the run's process): passed" in md
    md = (run["dir"] / "planted-tanh-vjp-from-input-cpu.partial.md").read_text()
    assert "Replay: reproduced in a fresh process" in md


# -- the pieces, without a certification ----------------------------------------------------
def test_hypothesis_flaky_is_caught_with_both_observations():
    """A real Hypothesis Flaky: the first call fails, every later one (the final replay of
    that example included) passes."""
    record, seen = Record(), []

    @settings(database=None, derandomize=True, max_examples=5)
    @given(st.integers(3, 10))
    def prop(n):
        record.begin_example()
        record.note_draw("n", n)
        seen.append(n)
        error = AssertionError(f"wrong at {n}") if len(seen) == 1 else None
        record.end_example(error)
        if error is not None:
            raise error

    with pytest.raises(Flaky) as info:
        prop()
    assert flaky.is_flaky_failure(info.value)
    assert seen[-1] == seen[0]  # Hypothesis' last call replayed the failing example
    obs = flaky.in_process(info.value, record)
    assert obs["first"] == {"outcome": "failed", "error": f"AssertionError: wrong at {seen[0]}",
                            "draws": [["n", repr(seen[0])]]}
    assert obs["second"] == {"outcome": "passed", "draws": [["n", repr(seen[0])]]}


def test_a_replay_that_fails_differently_is_the_second_observation():
    record = Record()
    first, other = AssertionError("margin 3 > 1"), RuntimeError("kernel fault")
    for n, error in ((1, first), (2, None), (1, other)):
        record.begin_example()
        record.note_draw("n", n)
        record.end_example(error)
    obs = flaky.in_process(FlakyFailure("unreliable", [first, other]), record)
    assert obs["first"] == {"outcome": "failed", "error": "AssertionError: margin 3 > 1",
                            "draws": [["n", "1"]]}
    assert obs["second"] == {"outcome": "failed", "error": "RuntimeError: kernel fault",
                             "draws": [["n", "1"]]}
    assert obs["summary"].startswith("failed, then failed with another error")


def _failed(nodeid: str, **props) -> dict:
    return {"nodeid": nodeid, "when": "call", "outcome": "failed", "wasxfail": None,
            "error": "AssertionError: x", "props": {"reproduce": "python -m pytest x",
                                                    "key": ["numpy", "t", "c", "d", ""],
                                                    **props}}


def test_the_plan_replays_at_most_n_failures_and_notes_the_others():
    rows = [_failed("a"), _failed("b"), _failed("c"),
            {**_failed("setup"), "when": "setup"},
            _failed("hung", ended="timed out after 5 s"),
            {**_failed("known"), "wasxfail": "known divergence: x"},
            _failed("flaky", flaky={"summary": "failed, then passed"}),
            {**_failed("ok"), "outcome": "passed"}]
    chosen = flaky.plan(rows, 2)
    assert [r["nodeid"] for r in chosen] == ["a", "b"]
    notes = {r["nodeid"]: r["props"].get("replay") for r in rows}
    assert notes == {"a": None, "b": None, "setup": "not replayed: it failed before its examples ran",
                     "c": "not replayed: only the first 2 failures are replayed "
                          "(--replay-failures 2)",
                     "hung": None, "known": None, "flaky": None, "ok": None}
    rows = [_failed("a")]
    assert flaky.plan(rows, 0) == []
    assert rows[0]["props"]["replay"] == "not replayed: --replay-failures 0"


def test_a_replay_is_read_from_its_run_directory(tmp_path):
    assert flaky.observation(tmp_path, "t", -11)["outcome"] == "crashed"
    (tmp_path / "faults-main.log").write_text("Fatal Python error: Segmentation fault\n")
    assert flaky.observation(tmp_path, "t", -11) == {
        "outcome": "crashed", "error": "the replay ended with exit status -11 and no result: "
                                       "Fatal Python error: Segmentation fault"}
    runlog.write_json(tmp_path / "timeout-main.json", {"nodeid": "t", "seconds": 5})
    assert flaky.observation(tmp_path, "t", 2) == {"outcome": "timed out",
                                                   "error": "timed out after 5 s"}
    runlog.append_row(tmp_path / "results.jsonl", {**_failed("t"), "outcome": "passed",
                                                   "props": {"examples": 20}})
    assert flaky.observation(tmp_path, "t", 0) == {"outcome": "passed", "examples": 20}


def test_applying_a_replay_classifies_the_row():
    failure = {"error": "AssertionError: margin 3 > 1", "draws": [["x", "1.0"]]}
    row = _failed("t", failure=failure)
    assert flaky.apply(row, {"outcome": "passed", "examples": 20}) == \
        "passed in a fresh process: flaky"
    assert classify(row) == ("flaky", "failed in the run, passed when replayed in a fresh process")
    assert row["props"]["flaky"]["first"] == {"outcome": "failed", **failure}
    row = _failed("t", failure=failure)
    assert flaky.apply(row, {"outcome": "failed", **failure}) == "reproduced in a fresh process"
    assert flaky.apply(row, {"outcome": "failed", "error": "ValueError: v", "draws": []}) == \
        "reproduced in a fresh process, with another error: ValueError: v"
    assert classify(row)[0] == "failed"
    assert flaky.apply(row, {"outcome": "timed out", "error": "timed out after 5 s"}) == \
        "not reproduced: the replay in a fresh process: timed out: timed out after 5 s"
