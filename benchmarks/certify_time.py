"""How long a certification takes, and what it costs: a script, not a test or an asv benchmark.

    python benchmarks/certify_time.py --backend jax [-n 2] [-k EXPR] [--json out.json]
        [--per-test 15] [paths ...] [-- extra pytest arguments]

runs ``python -m pytest <paths, default properties> --backend B --hypothesis-profile ci
--certify --report-dir <a temporary directory>`` (never the repository's reports/) in a
subprocess and reports, as JSON (stdout or --json) and a one-line summary (stderr):

* wall time, and CPU time (user + sys) of the pytest process and every process it waited
  for (the pytest-xdist workers included), from getrusage(RUSAGE_CHILDREN);
* peak RSS: the largest single process (ru_maxrss of the children) and the largest sum over
  the pytest process tree, sampled from /proc every 0.2 s;
* per pytest process (this module is also a pytest plugin, passed with ``-p``): for JAX the
  compilations counted by jax.monitoring's structured events (backend compiles, traces,
  lowerings and their seconds, persistent-cache hits), and per test its wall and CPU
  seconds, compilations and the process's RSS after it, summed per test file.

The plugin is inert unless TOUCHSTONE_BENCH_OUT names a directory (the script sets it), so
``-p benchmarks.certify_time`` changes nothing else in a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_OUT_ENV = "TOUCHSTONE_BENCH_OUT"
_JAX_ENV = "TOUCHSTONE_BENCH_JAX"

# the jax.monitoring events (jax._src.dispatch): a backend compile wraps
# compiler.compile_or_get_cached, so it counts persistent-cache hits too
_COMPILE = "/jax/core/compile/backend_compile_duration"
_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_CACHE_MISS = "/jax/compilation_cache/cache_misses"


# -- the pytest plugin (loaded in the pytest process and in each xdist worker) --------------
class _Counters:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.names: dict[str, int] = defaultdict(int)  # compiled functions by name

    def duration(self, event: str, secs: float, **kwargs: Any) -> None:
        if event in (_COMPILE, _TRACE, _LOWER):
            self.counts[event] += 1
            self.seconds[event] += secs
            if event == _COMPILE:
                self.names[str(kwargs.get("fun_name", "?"))] += 1

    def event(self, event: str, **kwargs: Any) -> None:
        if event in (_CACHE_HIT, _CACHE_MISS):
            self.counts[event] += 1

    def snapshot(self) -> tuple[int, float, int, int]:
        return (self.counts[_COMPILE], self.seconds[_COMPILE], self.counts[_TRACE],
                self.counts[_CACHE_HIT])


_counters: _Counters | None = None
_tests: dict[str, dict[str, Any]] = {}
_start: tuple[float, float] = (0.0, 0.0)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    """The current resident set of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pytest_configure(config: Any) -> None:
    global _counters, _start
    if not os.environ.get(_OUT_ENV):
        return
    _start = (time.perf_counter(), _cpu())
    _counters = _Counters()
    if os.environ.get(_JAX_ENV):
        import jax.monitoring as monitoring
        monitoring.register_event_duration_secs_listener(_counters.duration)
        monitoring.register_event_listener(_counters.event)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any):  # noqa: ARG001 (pytest's signature)
    if _counters is None:
        return (yield)
    wall, cpu, (c0, s0, t0, h0) = time.perf_counter(), _cpu(), _counters.snapshot()
    try:
        return (yield)
    finally:
        c1, s1, t1, h1 = _counters.snapshot()
        _tests[item.nodeid] = {
            "wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(_cpu() - cpu, 3),
            "compiles": c1 - c0, "compile_s": round(s1 - s0, 3), "traces": t1 - t0,
            "cache_hits": h1 - h0, "rss_mb": round(_rss_mb(), 1)}


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:  # noqa: ARG001
    if _counters is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = {"pid": os.getpid(), "worker": worker,
           "wall_s": round(time.perf_counter() - _start[0], 2),
           "cpu_s": round(_cpu() - _start[1], 2), "maxrss_mb": round(_maxrss_mb(), 1),
           "rss_end_mb": round(_rss_mb(), 1),
           "jax": {"backend_compiles": _counters.counts[_COMPILE],
                   "backend_compile_s": round(_counters.seconds[_COMPILE], 2),
                   "traces": _counters.counts[_TRACE],
                   "trace_s": round(_counters.seconds[_TRACE], 2),
                   "lowerings": _counters.counts[_LOWER],
                   "lower_s": round(_counters.seconds[_LOWER], 2),
                   "persistent_cache_hits": _counters.counts[_CACHE_HIT],
                   "persistent_cache_misses": _counters.counts[_CACHE_MISS],
                   "compiled_names": dict(sorted(_counters.names.items(),
                                                 key=lambda kv: -kv[1])[:40])},
           "tests": _tests}
    path = Path(os.environ[_OUT_ENV]) / f"{worker}-{os.getpid()}.json"
    path.write_text(json.dumps(out))


# -- the script ---------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree_rss_mb(pid: int) -> float:
    total, todo = 0.0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page / 2**20
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return total


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def run(backend: str, paths: list[str], workers: int | None, keyword: str | None,
        profile: str, certify: bool, extra: list[str], env_extra: dict[str, str]
        ) -> dict[str, Any]:
    out_dir = Path(tempfile.mkdtemp(prefix="touchstone-bench-"))
    report_dir = out_dir / "reports"
    cmd = [sys.executable, "-m", "pytest", *paths, "--backend", backend,
           "--hypothesis-profile", profile, "-p", "benchmarks.certify_time", "-q",
           "-o", "cache_dir=" + str(out_dir / "pytest-cache")]
    if certify:
        cmd += ["--certify", "--report-dir", str(report_dir)]
    if workers:
        cmd += ["-n", str(workers)]
    if keyword:
        cmd += ["-k", keyword]
    cmd += extra
    env = {**os.environ, _OUT_ENV: str(out_dir), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")])),
           **env_extra}
    if "jax" in backend:
        env[_JAX_ENV] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    log = open(out_dir / "pytest.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    peak_tree = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.wait(0.2):
            peak_tree = max(peak_tree, _tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    done.set()
    sampler.join()
    log.close()
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    tests = {k: v for p in procs for k, v in p["tests"].items()}
    per_file: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for nodeid, t in tests.items():
        f = per_file[_file_of(nodeid)]
        f["tests"] += 1
        for key in ("wall_s", "cpu_s", "compiles", "compile_s"):
            f[key] += t[key]
    tail = (out_dir / "pytest.log").read_text().strip().splitlines()[-1:] or [""]
    return {
        "command": shlex.join(cmd), "returncode": rc, "pytest_summary": tail[0],
        "report_dir": str(report_dir) if certify else None, "log": str(out_dir / "pytest.log"),
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
        "peak_rss_process_mb": round(after.ru_maxrss / 1024, 1),
        "peak_rss_tree_mb": round(peak_tree, 1),
        "jax_backend_compiles": sum(p["jax"]["backend_compiles"] for p in procs),
        "jax_backend_compile_s": round(sum(p["jax"]["backend_compile_s"] for p in procs), 1),
        "jax_persistent_cache_hits": sum(p["jax"]["persistent_cache_hits"] for p in procs),
        "per_file": {k: {kk: round(vv, 2) for kk, vv in v.items()}
                     for k, v in sorted(per_file.items())},
        "processes": [{k: v for k, v in p.items() if k != "tests"} for p in procs],
        "tests": tests,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", default=["properties"])
    ap.add_argument("--backend", default="jax")
    ap.add_argument("-n", "--workers", type=int, default=None, help="pytest-xdist workers")
    ap.add_argument("-k", "--keyword", default=None)
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--no-certify", action="store_true",
                    help="run the properties without --certify (e.g. with -n before worker "
                         "certificates are merged)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the run (repeatable)")
    ap.add_argument("--json", default=None, help="write the JSON here instead of stdout")
    ap.add_argument("--per-test", type=int, default=15,
                    help="keep the N tests with the most CPU seconds in the JSON (0: all)")
    a = ap.parse_args(argv)
    env_extra = dict(e.split("=", 1) for e in a.env)
    res = run(a.backend, a.paths, a.workers, a.keyword, a.profile, not a.no_certify, extra,
              env_extra)
    if a.per_test:
        worst = sorted(res["tests"].items(), key=lambda kv: -kv[1]["cpu_s"])[:a.per_test]
        res["tests"] = dict(worst)
    text = json.dumps(res, indent=1)
    if a.json:
        Path(a.json).write_text(text + "\n")
    else:
        print(text)
    line = (f"certify {a.backend}: rc {res['returncode']}, wall {res['wall_s']} s, CPU "
            f"{res['cpu_s']} s, peak RSS {res['peak_rss_process_mb']:.0f} MB/process "
            f"{res['peak_rss_tree_mb']:.0f} MB/tree")
    if "jax" in a.backend:
        line += (f", {res['jax_backend_compiles']} XLA compiles "
                 f"({res['jax_backend_compile_s']} s, {res['jax_persistent_cache_hits']} "
                 f"from the persistent cache)")
    print(line + f" | {res['pytest_summary']}", file=sys.stderr)
    return res["returncode"]


if __name__ == "__main__":
    sys.exit(main())
