"""The run directory: what a test process leaves on disk so that a result survives the
process (a hang, a crash, a kill).

The controlling process (the only one without pytest-xdist, or xdist's controller) makes
the directory (or takes the one --run-dir names, and leaves it) and hands it to its workers
through TOUCHSTONE_RUN_DIR. In it:

- ``results.jsonl``: every result row, appended by the controller as each test finishes;
- ``examples-<worker>.jsonl``: each worker's examples as they run (a line per example
  start with its test, a line per draw), so the controller can name the example a crashed
  or hung worker was running;
- ``timeout-<worker>.json``: written by a worker's watchdog just before it ends a test that
  ran past its time;
- ``faults-<worker>.log``: the worker's faulthandler output (a segfault's signal);
- ``keys-<worker>.json``: every collected test's key (backend, test, component, dtype,
  variant), for rows the controller builds without the worker (a crash).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

ENV = "TOUCHSTONE_RUN_DIR"
#: the results journal's name in a run directory
JOURNAL = "results.jsonl"


def make_run_dir(parent: str | None = None) -> Path:
    """A fresh run directory (under ``parent``, else the system's temporary directory),
    handed to the workers through the environment."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="touchstone-run-", dir=parent))
    os.environ[ENV] = str(path)
    return path


def worker_run_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


class ExampleLog:
    """A worker's examples, one JSON line per event, written unbuffered (a crash loses none)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.nodeid = ""

    def start_test(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def event(self, label: str | None, value: str | None) -> None:
        line = {"test": self.nodeid} if label is None else {"draw": label, "value": value}
        os.write(self._fd, (json.dumps(line) + "\n").encode())


def last_example(path: Path, nodeid: str) -> list[list[str]] | None:
    """The draws of the last example of test ``nodeid`` in an example log (None: none)."""
    if not path.exists():
        return None
    draws: list[list[str]] | None = None
    current = ""
    with path.open() as f:
        for line in f:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the crash
                continue
            if "test" in ev:
                current = ev["test"]
                if current == nodeid:
                    draws = []
            elif current == nodeid and draws is not None:
                draws.append([ev["draw"], ev["value"]])
    return draws


def fault_text(path: Path, limit: int = 60) -> str:
    """What a process's faulthandler wrote (the fatal error, then each thread's Python
    stack, innermost call first), up to ``limit`` lines; '' if nothing."""
    try:
        lines = [ln.rstrip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError:
        return ""
    return "\n".join(lines[:limit] + ([f"... {len(lines) - limit} more lines"]
                                       if len(lines) > limit else []))


def fault_line(path: Path, who: str = "the process") -> str:
    """What a process's faulthandler wrote first ('Fatal Python error: Segmentation fault'),
    or that ``who`` ended with nothing written."""
    text = fault_text(path)
    if text:
        return text.splitlines()[0].strip()
    return f"{who} ended with no Python error (os._exit, abort or a kill signal)"


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def append_row(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results journal; a last line cut short by a kill is dropped."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
