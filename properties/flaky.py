"""Flaky failures: a failure that does not come back when its example runs again. A framework
that is not deterministic on one input is a finding, so such a test is reported as *flaky*
with both observations (the failure, with its error and draws, and what the replay did) and
the example.

Two detections:

- in the run's process: Hypothesis replays a failing example once more before it reports it,
  and raises ``hypothesis.errors.Flaky`` when that replay passes or fails differently; the
  plugin catches it (``in_process``);
- in a fresh process: after a certification, the controller runs each failed property test's
  reproduce command again in a subprocess (``plan``, ``replay``, ``apply``), with
  ``--run-dir`` naming a temporary directory, and reads the replay's result from the journal
  and files the run leaves there (properties.runlog), never from printed text.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import errors

from properties import runlog
from properties.record import Record, error_text
from properties.report import classify

IN_PROCESS = "the run's process"
FRESH_PROCESS = "a fresh process"
#: Flaky errors that are not a failure that did not reproduce (the suite's own strategy)
NOT_FAILURES = tuple(getattr(errors, n) for n in ("FlakyStrategyDefinition",)
                     if hasattr(errors, n))
#: seconds a replay may take besides its test: starting Python, importing the framework
STARTUP_S = 120

Observation = dict[str, Any]


def is_flaky_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is Hypothesis saying a failure did not reproduce on its replay."""
    return isinstance(exc, errors.Flaky) and not isinstance(exc, NOT_FAILURES)


def in_process(exc: BaseException, record: Record) -> dict[str, Any]:
    """The flaky observations of a test whose failure Hypothesis' replay did not reproduce:
    first the failure it names (its error and draws, from the record), then the replay (the
    test's latest example: passed, failed with another error, or set aside)."""
    second = record.last_example or {"outcome": "not run", "draws": []}
    named = [f for e in getattr(exc, "exceptions", ()) if (f := record.failure_of(e))
             and f is not record.last_example]
    first = named[0] if named else record.first_failure
    if first is None:  # a failure the record did not see: Hypothesis' own exception
        originals = getattr(exc, "exceptions", ()) or (exc,)
        first = {"error": error_text(originals[0]), "draws": []}
    return {"where": IN_PROCESS, "summary": _in_process_summary(second["outcome"]),
            "first": {"outcome": "failed", **first}, "second": second}


def _in_process_summary(second: str) -> str:
    replayed = "when Hypothesis replayed its example in the same process"
    if second == "passed":
        return f"failed, then passed {replayed}"
    if second == "failed":
        return f"failed, then failed with another error {replayed}"
    return f"failed, then was {second} {replayed}"


def not_replayable(entry: dict) -> str | None:
    """Why a failed result row cannot be replayed (None: it can)."""
    if entry.get("when") != "call":
        return "it failed before its examples ran"
    if not entry["props"].get("reproduce") or not entry["props"].get("key"):
        return "it has no reproduce command"
    return None


def plan(rows: list[dict], limit: int) -> list[dict]:
    """The failed property tests to replay (outcome 'failed': not a known divergence, a
    timeout, a crash or a flaky row), at most ``limit``, in the order they finished; every
    other failed row notes in its ``replay`` property why it is not replayed."""
    chosen = []
    for entry in rows:
        if classify(entry)[0] != "failed":
            continue
        why = not_replayable(entry)
        if why is None and len(chosen) < limit:
            chosen.append(entry)
            continue
        if why is None:
            why = (f"--replay-failures {limit}" if limit == 0 else
                   f"only the first {limit} failures are replayed (--replay-failures {limit})")
        entry["props"]["replay"] = f"not replayed: {why}"
    return chosen


def replay_env(pythonpath: str | None) -> dict[str, str]:
    """This process's environment for a replay: the backend's directory first on
    PYTHONPATH where it comes from outside the repository; no inherited run directory."""
    env = {k: v for k, v in os.environ.items() if k != runlog.ENV}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return env


def replay(argv: list[str], env: dict[str, str], cwd: Path, nodeid: str,
           test_timeout: float) -> Observation:
    """Run a reproduce command (``argv``, its test ``nodeid``) in a fresh process, with the
    test's timeout, and return what the replay observed."""
    with tempfile.TemporaryDirectory(prefix="touchstone-replay-") as tmp:
        cmd = [*argv, "-p", "no:cacheprovider", "--test-timeout", f"{test_timeout:g}",
               "--run-dir", tmp]
        try:
            proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=test_timeout + STARTUP_S)
        except subprocess.TimeoutExpired:
            return {"outcome": "timed out",
                    "error": f"the replay did not end in {test_timeout + STARTUP_S:g} s"}
        return observation(Path(tmp), nodeid, proc.returncode)


def observation(run_dir: Path, nodeid: str, returncode: int) -> Observation:
    """What a replay's run directory says of test ``nodeid``: its result row (outcome, error
    and draws of a failure, examples of a pass), else its watchdog's timeout, else the
    crash (the process's exit status and faulthandler line)."""
    rows = [r for r in runlog.read_rows(run_dir / runlog.JOURNAL) if r["nodeid"] == nodeid]
    if rows:
        return _row_observation(rows[-1])
    timeout = runlog.read_json(run_dir / "timeout-main.json")
    if timeout and timeout.get("nodeid") == nodeid:
        return {"outcome": "timed out", "error": f"timed out after {timeout['seconds']:g} s"}
    fault = runlog.fault_line(run_dir / "faults-main.log")
    return {"outcome": "crashed",
            "error": f"the replay ended with exit status {returncode} and no result: {fault}"}


def _row_observation(row: dict) -> Observation:
    outcome, reason = classify(row)
    props = row["props"]
    if outcome == "passed":
        return {"outcome": "passed", "examples": props.get("examples", 0)}
    if outcome in ("failed", "flaky"):
        failure = props.get("failure") or {"error": row["error"], "draws": []}
        return {"outcome": outcome, "error": failure["error"], "draws": failure["draws"]}
    return {"outcome": outcome, "error": reason}


def first_observation(entry: dict) -> Observation:
    """The failure a result row recorded: its error and the draws of its example."""
    failure = entry["props"].get("failure") or {"error": entry["error"], "draws": []}
    return {"outcome": "failed", "error": failure["error"], "draws": failure["draws"]}


def apply(entry: dict, seen: Observation) -> str:
    """Note a replay's observation in a failed row and return the note: a replay that passed
    makes the row flaky (both observations kept), one that failed reproduces it."""
    props = entry["props"]
    first = first_observation(entry)
    if seen["outcome"] == "passed":
        props["flaky"] = {"where": FRESH_PROCESS,
                          "summary": "failed in the run, passed when replayed in a fresh process",
                          "first": first, "second": seen}
        note = "passed in a fresh process: flaky"
    elif seen["outcome"] in ("failed", "flaky"):
        note = "reproduced in a fresh process"
        if seen["error"] != first["error"]:
            note += f", with another error: {seen['error']}"
        if seen["outcome"] == "flaky":
            note += " (and not on Hypothesis' replay within it: flaky there)"
    else:
        note = f"not reproduced: the replay in a fresh process: {seen['outcome']}"
        if seen.get("error"):
            note += f": {seen['error']}"
    props["replay"] = note
    return note
