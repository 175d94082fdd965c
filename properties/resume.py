"""Resuming an interrupted certification (--resume): the tests that finished keep their
results, and only the others run.

An interrupted or killed certification leaves ``<id>.incomplete.json`` (``.partial.json``
for a selection) naming its run directory, whose ``results.jsonl`` holds every finished
test's row (properties.runlog). ``--resume`` takes that directory as the run's own: the
controller starts from its rows, appends the new ones to the same journal (so a resumed run
can itself be interrupted and resumed), and writes ``resume.json`` there, the node ids every
process (each xdist worker, a replaced one too) leaves out of its collection. The earlier
run must be the same certification: same commit, profile, seed, selection, determinism
check and device; otherwise the run is refused, since the certificate would mix two runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from properties import runlog

SKIP_FILE = "resume.json"
#: what a resumed run must share with the interrupted one (certificate field: description)
SAME = {"commit": "commit", "profile": "Hypothesis profile", "seed": "Hypothesis seed",
        "selection": "selection", "determinism": "--determinism", "device": "device"}


@dataclass
class Resumed:
    """The interrupted run a certification continues: its run directory, its finished rows
    and when its certificate was last written."""

    run_dir: Path
    rows: list[dict[str, Any]]
    interrupted_at: str

    def summary(self) -> dict[str, Any]:
        return {"results": len(self.rows), "interrupted_at": self.interrupted_at}


def plan(certificates: dict[str, dict | None], now: dict[str, Any],
         given_run_dir: str | None) -> Resumed:
    """The run to resume from each selected backend's interrupted certificate (None: there
    is none), checked against this run's fields ``now`` (the keys of SAME); a UsageError
    says why it cannot be resumed."""
    dirs = set()
    date = ""
    for backend_id, cert in certificates.items():
        if cert is None:
            raise pytest.UsageError(f"--resume: no interrupted certificate of {backend_id} in the "
                                    "report directory (nothing to resume)")
        if "incomplete" not in cert["status"]:
            raise pytest.UsageError(f"--resume: the certificate of {backend_id} is "
                                    f"{cert['status']}, not interrupted (nothing to resume)")
        for field, what in SAME.items():
            if str(cert.get(field)) != str(now[field]):
                raise pytest.UsageError(
                    f"--resume: the interrupted run of {backend_id} used {what} "
                    f"{cert.get(field)!r}, this run {now[field]!r}; resume it with the same "
                    "one, or certify afresh without --resume")
        dirs.add(cert["run_dir"])
        date = max(date, cert["date"])
    if len(dirs) != 1:
        raise pytest.UsageError(f"--resume: the selected backends' interrupted runs used "
                                f"different run directories {sorted(dirs)}; resume each alone")
    run_dir = Path(dirs.pop())
    if given_run_dir is not None and Path(given_run_dir).resolve() != run_dir.resolve():
        raise pytest.UsageError(f"--resume: the interrupted run's directory is {run_dir}, "
                                f"not --run-dir {given_run_dir}")
    if not (run_dir / runlog.JOURNAL).exists():
        raise pytest.UsageError(
            f"--resume: the interrupted run's directory {run_dir} has no {runlog.JOURNAL} (a "
            "temporary directory does not outlive a reboot; give a long certification "
            "--run-dir on a lasting disk)")
    latest = {row["nodeid"]: row for row in runlog.read_rows(run_dir / runlog.JOURNAL)}
    return Resumed(run_dir, list(latest.values()), date)


def write_skips(resumed: Resumed) -> None:
    """The node ids every process of the resumed run leaves out of its collection."""
    runlog.write_json(resumed.run_dir / SKIP_FILE, sorted(r["nodeid"] for r in resumed.rows))


def skips(run_dir: Path | None) -> set[str]:
    """The node ids a resumed run does not run again (its controller's resume.json)."""
    if run_dir is None:
        return set()
    return set(runlog.read_json(run_dir / SKIP_FILE) or ())


def refuse_an_earlier_journal(run_dir: Path) -> None:
    """A run that does not resume starts its own journal: a --run-dir holding an earlier
    run's results is refused rather than mixed with them or emptied."""
    journal = run_dir / runlog.JOURNAL
    if journal.exists() and journal.stat().st_size > 0:
        raise pytest.UsageError(
            f"--run-dir {run_dir} holds the results of an earlier run; continue it with "
            "--resume, or give another directory")
