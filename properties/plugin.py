"""pytest plugin: backend selection, Hypothesis profiles, known divergences, reports.

Options: --backend (comma list of short names, module:Class paths or entry points),
--device (cpu, cuda/gpu), --certify (write reports/<backend>-<device>.md and .json),
--require-backends (or TOUCHSTONE_REQUIRE_BACKENDS=1: an unavailable backend fails instead
of being skipped), --test-timeout (seconds a test may run; the profile's TIMEOUTS default),
--replay-failures (failed tests a certification replays in a fresh process), --run-dir (keep
the run directory there), --against (a second backend for the three-way tests of
properties/test_three_way.py, deselected without it). Profiles: dev (default), ci, planted,
thorough.

A certification survives its backend: it runs the tests in pytest-xdist workers (one, unless
-n asks for more), so a test that crashes its process or runs past its time ends only its
worker, which xdist replaces; the controller records every result as it arrives
(properties.runlog) and rewrites the certificates after each, marked incomplete until the run
ends. A failure that does not come back when its example is replayed, by Hypothesis in the
same process or by its reproduce command in a fresh one after the tests, is *flaky*
(properties.flaky).
"""

from __future__ import annotations

import _thread
import faulthandler
import functools
import inspect
import os
import resource
import shlex
import shutil
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FailedHealthCheck, Flaky, Unsatisfiable, UnsatisfiedAssumption

from backends import compile_events
from backends.base import Backend, BackendUnavailable, KnownDivergence
from backends.loader import BUILTIN, resolve
from properties import coverage, flaky, report, resume, runlog, scheduling
from properties.record import Record, current_record, start_record
from properties.report import item_key
from properties.scoped import ScopedRun

# No explain phase: it reruns a failing example with a line tracer and keeps the lines each
# run reached; under torch.compile it traced the compiler, 300 of a failing test's 330 s and
# 1.3 GB of its process. A failure's report is the shrunk example, not those lines.
PHASES = [p for p in Phase if p != Phase.explain]
settings.register_profile("dev", max_examples=30, deadline=None, print_blob=True,
                          phases=PHASES)
settings.register_profile(
    "ci", derandomize=True, max_examples=20, deadline=None, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], phases=PHASES)
# the planted-bug run: only whether a property fails matters, so no shrinking
settings.register_profile("planted", settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.register_profile("thorough", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
#: seconds a test may run before its process is ended, per profile (--test-timeout)
TIMEOUTS = {"dev": 900, "ci": 600, "planted": 600, "thorough": 3600}
#: worker restarts a certification allows (each crashed or timed-out test takes one)
MAX_WORKER_RESTARTS = 10_000
#: failed tests a certification replays in a fresh process (--replay-failures)
REPLAY_FAILURES = 20

DEFAULT_BACKENDS = "numpy,torch,jax"
_STATE = pytest.StashKey[dict]()
#: the scoped known divergences matching a test (judged per example, properties.scoped)
_SCOPED = pytest.StashKey[tuple]()
#: the argument a three-way test's failing example notes (properties.scoped.note_arguments):
#: the sides ("backend", "against") that diverged from the oracle
DIVERGED = "three_way_diverged"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("touchstone")
    g.addoption("--backend", default=DEFAULT_BACKENDS,
                help="comma-separated backends: numpy, torch, jax, module:Class or an entry point "
                     f"in touchstone.backends (default {DEFAULT_BACKENDS})")
    g.addoption("--device", default="cpu", help="cpu, cuda or gpu (default cpu)")
    g.addoption("--certify", action="store_true",
                help="write a certification report per backend to --report-dir")
    g.addoption("--report-dir", default="reports", help="where --certify writes (default reports)")
    g.addoption("--test-timeout", type=float, default=None,
                help="seconds a test may run before its worker is ended and the test reported "
                     f"'timed out' (default: the profile's, {TIMEOUTS})")
    g.addoption("--replay-failures", type=int, default=REPLAY_FAILURES, metavar="N",
                help="with --certify, replay up to N failed tests in a fresh process after the "
                     "run; one that passes there is reported flaky (0: none; default "
                     f"{REPLAY_FAILURES})")
    g.addoption("--resume", action="store_true",
                help="with --certify, continue the interrupted certification in --report-dir: "
                     "its finished tests keep their results and only the others run "
                     "(properties/resume.py)")
    g.addoption("--run-dir", default=None,
                help="keep the run directory (results.jsonl, the examples logs) in this "
                     "directory and leave it there (default: a temporary one, removed after "
                     "a run that ends)")
    g.addoption("--against", default=None, metavar="SPEC[@DEVICE]",
                help="a second backend (device: --device unless given) run beside each "
                     "--backend and the oracle on the same examples by the three-way tests "
                     "(properties/test_three_way.py), e.g. torch@cuda; without it those tests "
                     "are deselected")
    g.addoption("--determinism", choices=("auto", "on", "off"), default="auto",
                help="run the backend twice on every example of test_forward and test_vjp and "
                     "report results that differ as nondeterministic (auto, the default: on "
                     "every device but cpu, where GPU kernels reduce with atomics)")
    g.addoption("--require-backends", action="store_true",
                default=os.environ.get("TOUCHSTONE_REQUIRE_BACKENDS", "") not in ("", "0"),
                help="fail, instead of skip, when a selected backend is unavailable")


class _Selected:
    """A selected backend: its class (or why it is unavailable) and, once made, the instance."""

    def __init__(self, spec: str, device: str) -> None:
        self.spec, self.device = spec, device
        self.cls: type[Backend] | None = None
        self.error: str | None = None
        self.instance: Backend | None = None
        try:
            self.cls = resolve(spec)
        except BackendUnavailable as exc:
            self.error = str(exc)

    @property
    def id(self) -> str:
        if self.instance is not None:
            return self.instance.id
        return f"{self.cls.name if self.cls else self.spec}-{self.device}"

    def get(self) -> Backend:
        if self.instance is None and self.error is None:
            try:
                self.instance = self.cls(self.device)
            except BackendUnavailable as exc:
                self.error = str(exc)
        if self.instance is None:
            raise BackendUnavailable(self.error)
        return self.instance


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """A certification runs its tests in pytest-xdist workers (one unless -n says otherwise;
    -n 0 keeps them in this process, without isolation), with restarts enough for every
    crashing test. Runs before xdist's own hook, which turns -n into workers. Only --dist
    load (the default) recovers from a crash: xdist's scope schedulers hand the crashed test
    to the next worker, which crashes again."""
    if (not config.getoption("--certify") or not config.pluginmanager.hasplugin("xdist")
            or _is_worker(config)):
        return
    if config.option.dist not in ("no", "load"):
        raise pytest.UsageError(
            f"--certify runs under --dist load (the default with -n), not --dist "
            f"{config.option.dist}: xdist's scope schedulers rerun a test that crashed its "
            "worker in the next worker, without end")
    if config.option.numprocesses is None and config.option.dist == "no":
        config.option.numprocesses = 1
    if config.option.maxworkerrestart is None:
        config.option.maxworkerrestart = MAX_WORKER_RESTARTS


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def test_timeout(config: pytest.Config) -> float:
    value = config.getoption("--test-timeout")
    return value if value is not None else TIMEOUTS.get(settings.get_current_profile_name(),
                                                        TIMEOUTS["dev"])


def pytest_configure(config: pytest.Config) -> None:
    specs = [s.strip() for s in config.getoption("--backend").split(",") if s.strip()]
    device = config.getoption("--device")
    selected = {s: _Selected(s, device) for s in specs}
    state = {"selected": selected, "results": [], "cmdline": list(config.invocation_params.args)}
    against = config.getoption("--against")
    if against:
        spec, _, on = against.partition("@")
        state["against"] = _Selected(spec.strip(), on.strip() or device)
    config.addinivalue_line("markers", "three_way(test): a three-way test (--against) of the "
                                       "property `test`, whose known divergences it applies")
    config.stash[_STATE] = state
    config.add_cleanup(compile_events.listen(
        lambda seconds, count: current_record().note_compile(seconds, count)))
    if config.getoption("--certify") and not _is_worker(config):
        _check_certificate_names(selected)
    if _is_worker(config):
        run_dir, worker = runlog.worker_run_dir(), config.workerinput["workerid"]
    else:
        run_dir, worker = _controller_run_dir(config, state), "main"
        state["journal"] = run_dir / runlog.JOURNAL
        state["isolated"] = bool(getattr(config.option, "numprocesses", None))
    state["run_dir"], state["worker"] = run_dir, worker
    if run_dir is not None and (_is_worker(config) or not state["isolated"]):
        state["examples"] = runlog.ExampleLog(run_dir / f"examples-{worker}.jsonl")


def _controller_run_dir(config: pytest.Config, state: dict) -> Path:
    """The interrupted run's directory under --resume (its rows become this run's first),
    else --run-dir (made if missing; refused if it holds an earlier run's results), else a
    fresh temporary one; handed to the workers."""
    given = config.getoption("--run-dir")
    if config.getoption("--resume"):
        if not config.getoption("--certify"):
            raise pytest.UsageError("--resume continues an interrupted certification: it "
                                    "needs --certify")
        resumed = resume.plan(
            {sel.id: report.interrupted(config.getoption("--report-dir"), sel.id)
             for sel in state["selected"].values()}, report.run_fields(config), given)
        resume.write_skips(resumed)
        state["results"], state["resumed"] = resumed.rows, resumed.summary()
        os.environ[runlog.ENV] = str(resumed.run_dir)
        return resumed.run_dir
    if given is None:
        return runlog.make_run_dir()
    path = Path(given).resolve()
    path.mkdir(parents=True, exist_ok=True)
    resume.refuse_an_earlier_journal(path)
    os.environ[runlog.ENV] = str(path)
    return path


def _check_certificate_names(selected: dict) -> None:
    """Each certified backend writes its own certificate: refuse two selected backends with
    one id, and a backend class that inherits another's name (it would overwrite that
    backend's certificate)."""
    seen: dict[str, str] = {}
    for spec, sel in selected.items():
        if sel.cls is None:
            continue
        if "name" not in vars(sel.cls) and spec not in BUILTIN:
            owner = next(c for c in sel.cls.__mro__ if "name" in vars(c))
            raise pytest.UsageError(
                f"backend {spec}: {sel.cls.__name__} inherits name {sel.cls.name!r} from "
                f"{owner.__name__}, so its certificate would overwrite {sel.id}; give the class "
                "a name of its own")
        if sel.id in seen:
            raise pytest.UsageError(f"backends {seen[sel.id]} and {spec} both certify as "
                                    f"{sel.id}; give them different names")
        seen[sel.id] = spec


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state and state.get("faults"):
        faulthandler.disable()
        state["faults"].close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[_STATE]
    selected = state["selected"]
    marker = metafunc.definition.get_closest_marker("dtypes")
    wanted = marker.args if marker else None
    # a three-way test: ids name both backends, dtypes are those both run
    other = state.get("against") if "against" in metafunc.fixturenames else None
    also = f"~{other.id}" if other else ""
    values, ids = [], []
    for spec, sel in selected.items():
        if "dtype" not in metafunc.fixturenames:
            values.append(spec)
            ids.append(sel.id + also)
            continue
        dtypes = sel.cls.dtypes if sel.cls else ("float64",)
        for dt in dtypes:
            if (wanted is None or dt in wanted) and (
                    other is None or other.cls is None or dt in other.cls.dtypes):
                values.append((spec, dt))
                ids.append(f"{sel.id}{also}-{dt}")
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "dtype"), values, ids=ids, indirect=["backend"],
                            scope="session")
    else:
        metafunc.parametrize("backend", values, ids=ids, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    return _made(request, request.config.stash[_STATE]["selected"][request.param])


@pytest.fixture(scope="session")
def against(request: pytest.FixtureRequest) -> Backend:
    """The second backend of the three-way tests (--against)."""
    return _made(request, request.config.stash[_STATE]["against"])


def _made(request: pytest.FixtureRequest, sel: _Selected) -> Backend:
    """The selected backend's instance; unavailable: skipped, or failed with
    --require-backends."""
    try:
        return sel.get()
    except BackendUnavailable as exc:
        if request.config.getoption("--require-backends"):
            pytest.fail(f"backend {sel.spec} is required but unavailable: {exc}")
        pytest.skip(f"unavailable: {exc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An unscoped known divergence marks its tests as expected failures; scoped ones are
    kept with the test and judged per example when it runs (an unscoped one wins). Tests
    that draw the same networks are ordered next to each other (properties.scheduling). A
    test whose dtypes no selected backend runs (pytest's empty parameter set: the float32
    invariants of a float64-only backend) is deselected: it tests no backend, as are the
    three-way tests without --against. A three-way test applies each side's known divergences
    of the property it mirrors, judged per example (``three_way_divergences``). Under
    --resume, the tests the interrupted run finished are left out (properties.resume)."""
    state = config.stash[_STATE]
    selected, other = state["selected"], state.get("against")
    untested = [item for item in items if "backend" in getattr(item, "fixturenames", ())
                and (not isinstance(item_key(item)[0], str)
                     or (other is None and "against" in item.fixturenames))]
    done = resume.skips(state["run_dir"]) if config.getoption("--resume") else set()
    finished = [item for item in items if item.nodeid in done]
    if untested or finished:
        config.hook.pytest_deselected(items=untested + finished)
        gone = set(map(id, untested + finished))
        items[:] = [item for item in items if id(item) not in gone]
    for item in items:
        spec, test, component, dtype = item_key(item)
        sel = selected.get(spec) if spec else None
        if sel is None or sel.cls is None or component is None:
            continue
        mirrors = item.get_closest_marker("three_way")
        if mirrors is not None and other is not None:
            sides = {role: [kd for kd in cls.known_divergences
                            if kd.matches(mirrors.args[0], component, dtype)]
                     for role, cls in (("backend", sel.cls), ("against", other.cls)) if cls}
            if any(sides.values()):
                item.stash[_SCOPED] = three_way_divergences(test, sides, {
                    "backend": sel.id, "against": other.id})
            continue
        matching = [kd for kd in sel.cls.known_divergences if kd.matches(test, component, dtype)]
        whole = next((kd for kd in matching if not kd.scoped), None)
        if whole is not None:
            upstream = f" ({whole.upstream})" if whole.upstream else ""
            item.add_marker(pytest.mark.xfail(
                reason=f"known divergence: {whole.reason}{upstream}", strict=False))
            item.user_properties.append(("known_divergence", f"{whole.reason}{upstream}"))
        elif matching:
            item.stash[_SCOPED] = tuple(matching)
    scheduling.order(items)


def three_way_divergences(test: str, sides: dict[str, list[KnownDivergence]],
                          ids: dict[str, str]) -> tuple[KnownDivergence, ...]:
    """The known divergences of a three-way test: each side's (one entry for a declaration
    both sides make), scoped (properties.scoped) to the examples in their own scope where, if
    the example failed, one of its sides diverged and every side that diverged (the test
    notes them as DIVERGED) declares a divergence in scope: one side's declaration never
    excuses the other side."""
    def explains(roles: tuple[str, ...], kd: KnownDivergence, args: dict) -> bool:
        diverged = args.get(DIVERGED, ())
        return kd.in_scope(args) and (not diverged or bool(set(roles) & set(diverged)) and all(
            any(k.in_scope(args) for k in sides[r]) for r in diverged))

    out = []
    for kd in dict.fromkeys(kd for kds in sides.values() for kd in kds):
        roles = tuple(r for r, kds in sides.items() if kd in kds)
        who = " and ".join(dict.fromkeys(ids[r] for r in roles))
        out.append(KnownDivergence(test, kd.component, f"{who}: {kd.reason}", kd.upstream,
                                   kd.dtypes, functools.partial(explains, roles, kd),
                                   f"{who}: {kd.describe_scope()}"))
    return tuple(out)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every collected test's key, on disk for the controller (a crashed test's row)."""
    state = session.config.stash[_STATE]
    if state["run_dir"] is not None:
        runlog.write_json(state["run_dir"] / f"keys-{state['worker']}.json",
                          {i.nodeid: row_key(i) for i in session.items})
    if not _is_worker(session.config):
        state["collected"] = len(session.items) + _resumed_count(state)


def _resumed_count(state: dict) -> int:
    """Tests whose results a resumed run kept from the interrupted one (not collected now)."""
    return (state.get("resumed") or {}).get("results", 0)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Tests that draw the same networks run in one worker (properties.scheduling)."""
    return scheduling.make_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    if _config is not None:
        state = _config.stash[_STATE]
        state["collected"] = len(ids) + _resumed_count(state)


def row_key(item: pytest.Item) -> list:
    """[backend spec, test, component, dtype, variant] of a collected test."""
    spec, test, component, dtype = item_key(item)
    params = getattr(getattr(item, "callspec", None), "params", {})
    variant = ", ".join(f"{k}={v}" for k, v in params.items()
                        if k not in ("backend", "dtype", "component"))
    return [spec, test, component, dtype, variant]


# -- one test in the process that runs it --------------------------------------------------
class _Watchdog:
    """Ends a test that runs past ``seconds``: records it in the run directory, then ends a
    worker process at once (xdist replaces it), or interrupts a process without workers
    (KeyboardInterrupt; the process is ended if that does not stop it in 30 s)."""

    def __init__(self, state: dict, nodeid: str, seconds: float, worker: bool) -> None:
        self.state, self.nodeid, self.seconds, self.worker = state, nodeid, seconds, worker
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True

    def fire(self) -> None:
        run_dir = self.state["run_dir"]
        if run_dir is not None:
            runlog.write_json(run_dir / f"timeout-{self.state['worker']}.json",
                              {"nodeid": self.nodeid, "seconds": self.seconds})
        sys.stderr.write(f"\ntouchstone: {self.nodeid} timed out after {self.seconds:g} s\n")
        sys.stderr.flush()
        if self.worker:
            os._exit(75)
        _thread.interrupt_main()
        hard = threading.Timer(30, os._exit, args=(75,))
        hard.daemon = True
        hard.start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """A property test (one with a backend) runs under the watchdog; its examples are logged."""
    state = item.config.stash[_STATE]
    if item_key(item)[0] is None:
        return (yield)
    if state.get("examples") is not None:
        state["examples"].start_test(item.nodeid)
    dog = _Watchdog(state, item.nodeid, test_timeout(item.config), _is_worker(item.config))
    dog.timer.start()
    try:
        return (yield)
    finally:
        dog.timer.cancel()


def _shrinkless(settings_: settings) -> settings:
    return settings(settings_, phases=[p for p in settings_.phases if p != Phase.shrink])


class _RecordedData:
    """Hypothesis' data object, noting each draw in the test's record."""

    def __init__(self, data, record: Record) -> None:
        self._data, self._record = data, record

    def draw(self, strategy, label=None):
        value = self._data.draw(strategy, label=label)
        self._record.note_draw(label, value)
        return value


def _release_frames(exc: BaseException) -> None:
    """Clear the local variables of the finished frames in ``exc``'s traceback and in those of
    its causes. Hypothesis keeps the exception of every failing example it tries (its data
    cache holds up to 10,000), and their frames held what the backend had built for each
    (tests/test_survival.py: 553 of them alive at once in one shrink). The tracebacks still
    print; Hypothesis raises the final example's exception afresh."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            traceback.clear_frames(e.__traceback__)
            todo += [e.__cause__, e.__context__]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    state = item.config.stash[_STATE]
    record = start_record()
    record.repeat = _repeats(item)
    log = state.get("examples")
    record.on_draw = log.event if log is not None else None
    test_fn = getattr(item, "obj", None)
    handle = getattr(test_fn, "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    scoped = ScopedRun(item.stash[_SCOPED]) if _SCOPED in item.stash else None
    known = any(k == "known_divergence" for k, _ in item.user_properties)
    old_settings = getattr(test_fn, "_hypothesis_internal_use_settings", None)
    if inner is not None:
        @functools.wraps(inner)
        def counted(*args, **kwargs):
            record.begin_example()
            if "data" in kwargs:
                kwargs["data"] = _RecordedData(kwargs["data"], record)
            try:
                result = scoped.call(inner, *args, **kwargs) if scoped is not None \
                    else inner(*args, **kwargs)
            except UnsatisfiedAssumption:
                record.set_aside()
                raise
            except BaseException as exc:
                if isinstance(exc, Exception | pytest.fail.Exception):
                    record.end_example(exc)
                _release_frames(exc)
                raise
            record.end_example()
            return result
        handle.inner_test = counted
        if known and old_settings is not None:
            # an expected failure: found is enough, shrinking and explaining it is not needed
            test_fn._hypothesis_internal_use_settings = _shrinkless(old_settings)
    try:
        result = yield
        if inner is not None and old_settings is not None:
            _top_up(item, test_fn, record, old_settings)
    except (Unsatisfiable, FailedHealthCheck) as exc:
        # no example got past the set-asides; FailedHealthCheck names its check only in the
        # text (filter_too_much: "...filtering out a lot of inputs...")
        if not record.unsupported or (isinstance(exc, FailedHealthCheck)
                                      and "filter" not in str(exc)):
            raise
        pytest.skip(f"unsupported: every example set aside: {unsupported_summary(record)}")
    except Flaky as exc:
        # Hypothesis' replay of a failing example passed or failed differently: a finding
        if flaky.is_flaky_failure(exc):
            item.user_properties.append(("flaky", flaky.in_process(exc, record)))
        raise
    finally:
        if inner is not None:
            handle.inner_test = inner
            if known and old_settings is not None:
                test_fn._hypothesis_internal_use_settings = old_settings
        set_aside = sum(record.unsupported.values())
        item.user_properties.append(("examples", record.examples))
        if record.replays:
            item.user_properties.append(("replays", record.replays))
        item.user_properties.append(("comparisons", record.comparisons))
        item.user_properties.append(("worst_margin", record.worst_margin))
        if record.failure is not None:
            item.user_properties.append(("failure", record.failure))
        if set_aside:
            item.user_properties.append(("unsupported_examples", set_aside))
            item.user_properties.append(("unsupported_reasons", unsupported_summary(record)))
        if record.lacked:  # [component, argument, drawn value or None, examples]
            item.user_properties.append(("lacked_arguments",
                                         [[*key, n] for key, n in record.lacked.items()]))
        if record.classes:  # [dimension, class, examples]
            item.user_properties.append(("classes", [[*k, n] for k, n in record.classes.items()]))
        if record.statistical_checks:
            item.user_properties.append(("statistical_checks", record.statistical_checks))
            item.user_properties.append(("min_pvalue", record.min_pvalue))
        if record.class_gaps:
            item.user_properties.append(("class_gaps", [[*k, why] for k, why in
                                                        record.class_gaps.items()]))
        if record.three_way:
            item.user_properties.append(("three_way", record.three_way))
        if record.nondeterminism["repeated"]:
            item.user_properties.append(("nondeterminism", record.nondeterminism))
        if record.fast_paths:
            item.user_properties.append(("fast_paths", record.fast_paths))
        if record.compiles:
            item.user_properties.append(("compiles", record.compiles))
            item.user_properties.append(("compile_seconds", record.compile_seconds))
        if scoped is not None:
            item.user_properties.extend(scoped.properties())
    if scoped is not None and scoped.observed:
        # every example outside the scopes passed: the test shows the known divergence
        pytest.xfail(scoped.summary(record.examples))
    return result


def _repeats(item: pytest.Item) -> bool:
    """Whether the test's examples run the backend twice (--determinism; auto: off on cpu)."""
    mode = item.config.getoption("--determinism")
    if mode != "auto":
        return mode == "on"
    spec = item_key(item)[0]
    sel = item.config.stash[_STATE]["selected"].get(spec) if isinstance(spec, str) else None
    return sel is not None and sel.device != "cpu"


def _top_up(item: pytest.Item, test_fn: Any, record: Record, base: settings) -> None:
    """Draw each configuration class the test's run missed again, forced, coverage.TOPUP
    examples each (properties/coverage.py); a class still missing gets its reason in
    ``record.class_gaps``. A failing example fails the test as any other."""
    args = {a: item.funcargs[a] for a in inspect.signature(test_fn).parameters
            if a in item.funcargs}
    backend = args.get("backend")
    marker = item.get_closest_marker("component")
    component = args.get("component") or (marker.args[0] if marker and marker.args else None)
    for dimension, cls in coverage.missing(record.declared, record.classes):
        if record.classes.get((dimension, cls)):
            continue  # an earlier top-up drew it
        fixed = coverage.fixed_by(backend, component, dimension) if backend else []
        if fixed:
            record.class_gaps[(dimension, cls)] = f"the backend fixes {', '.join(fixed)}"
            continue
        checked, set_aside = record.examples, sum(record.unsupported.values())
        test_fn._hypothesis_internal_use_settings = settings(
            base, max_examples=coverage.TOPUP, database=None)
        try:
            with coverage.forcing(dimension, cls):
                test_fn(**args)
        except (Unsatisfiable, FailedHealthCheck):
            pass  # every forced example set aside: said below
        finally:
            test_fn._hypothesis_internal_use_settings = base
        if record.classes.get((dimension, cls)):
            continue
        if record.examples > checked:
            why = "the backend's conventions or lacked arguments give another class"
        elif sum(record.unsupported.values()) > set_aside:
            why = f"every forced example set aside: {unsupported_summary(record)}"
        else:
            why = f"not drawn in {coverage.TOPUP} forced examples"
        record.class_gaps[(dimension, cls)] = why


def unsupported_summary(record: Record, shown: int = 3) -> str:
    """'n x reason; ...' of the examples a test set aside as unsupported, the ``shown`` most
    common reasons first, then how many others."""
    common = record.unsupported.most_common()
    text = "; ".join(f"{n} x {reason}" for reason, n in common[:shown])
    rest = common[shown:]
    if rest:
        text += f"; {sum(n for _, n in rest)} more with {len(rest)} other reasons"
    return text


def reproduce_command(config: pytest.Config, nodeid: str, spec: str | None) -> str:
    """One command that re-runs a test on the same backend, profile and seed; a backend
    imported from outside the repository gets its directory on PYTHONPATH."""
    prefix, args = reproduce_args(config, nodeid, spec)
    return (f"PYTHONPATH={shlex.quote(prefix)} " if prefix else "") + \
        shlex.join(["python", "-m", "pytest", *args])


def reproduce_args(config: pytest.Config, nodeid: str, spec: str | None
                   ) -> tuple[str | None, list[str]]:
    """(the directory PYTHONPATH needs or None, pytest's arguments) of a test's reproduce
    command."""
    args = [nodeid, "--device", config.getoption("--device")]
    if spec:
        args += ["--backend", spec]
    if config.getoption("--against"):
        args += ["--against", config.getoption("--against")]
    args += ["--hypothesis-profile", settings.get_current_profile_name()]
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        args += ["--hypothesis-seed", str(seed)]
    return _external_path(config, spec), args


def _external_path(config: pytest.Config, spec: str | None) -> str | None:
    """The directory a backend module outside the repository is imported from, else None."""
    sel = config.stash[_STATE]["selected"].get(spec) if spec else None
    module = sys.modules.get(sel.cls.__module__) if sel is not None and sel.cls else None
    path = getattr(module, "__file__", None)
    if path is None:
        return None
    top = Path(path).resolve().parents[sel.cls.__module__.count(".")]
    root = Path(str(config.rootpath)).resolve()
    if top == root or root in top.parents:
        return None
    if "site-packages" in top.parts or "dist-packages" in top.parts:
        return None  # installed: importable as it is
    return str(top)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    spec = item_key(item)[0]
    if rep.when == "call" or not rep.passed:
        rep.user_properties.append(("key", row_key(item)))
        rep.user_properties.append(("peak_rss_mb", _peak_rss_mb()))
    if rep.failed and spec:
        cmd = reproduce_command(item.config, item.nodeid, spec)
        rep.sections.append(("touchstone: reproduce", cmd))
        rep.user_properties.append(("reproduce", cmd))
    return rep


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched) -> None:
    """xdist lost the worker running ``crashitem``: name what happened (the worker's timeout
    record, else its faulthandler output), the example it was running and its key."""
    state = _config.stash[_STATE]
    run_dir, worker = state["run_dir"], report.node.gateway.id
    timeout = runlog.read_json(run_dir / f"timeout-{worker}.json") or {}
    stack = ""
    if timeout.get("nodeid") == crashitem:
        what = f"timed out after {timeout['seconds']:g} s"
        (run_dir / f"timeout-{worker}.json").unlink(missing_ok=True)
    else:
        faults = run_dir / f"faults-{worker}.log"
        what = "crashed: " + runlog.fault_line(faults, "the worker process")
        # the failure keeps the crash's Python stack as the worker's faulthandler wrote it
        stack = runlog.fault_text(faults).partition("\n")[2]
        faults.write_text("")  # the next crash's own line
    report.user_properties.append(("ended", what))
    draws = runlog.last_example(run_dir / f"examples-{worker}.jsonl", crashitem)
    if draws is not None:
        error = f"{what}\n{stack}" if stack else what
        report.user_properties.append(("failure", {"error": error, "draws": draws}))
    key = _crashed_key(run_dir, crashitem)
    if key is not None:
        report.user_properties.append(("key", key))
        spec = key[0]
        if spec:
            report.user_properties.append(("reproduce",
                                           reproduce_command(_config, crashitem, spec)))


def _crashed_key(run_dir: Path, nodeid: str) -> list | None:
    for path in sorted(run_dir.glob("keys-*.json")):
        keys = runlog.read_json(path) or {}
        if nodeid in keys:
            return keys[nodeid]
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The controller keeps each result as it arrives: in memory, appended to the run's
    journal, and in the certificates, rewritten (marked incomplete) after each."""
    if _config is None or _is_worker(_config):
        return
    state = _config.stash[_STATE]
    entry = report_entry(report)
    if entry is None:
        return
    state["results"].append(entry)
    runlog.append_row(state["journal"], entry)
    if _config.getoption("--certify"):  # only the certificate this row changes
        key = entry["props"].get("key")
        _write_certificates(_config, complete=False, only=[key[0]] if key else None)


def report_entry(rep: pytest.TestReport) -> dict | None:
    """The report row of one test phase, or None when the phase says nothing new. A crashed
    test's report (xdist's, phase '???') is its row."""
    if rep.when in ("call", "???") or (rep.when == "setup" and not rep.passed):
        return {"nodeid": rep.nodeid, "when": rep.when, "outcome": rep.outcome,
                "wasxfail": getattr(rep, "wasxfail", None),
                "error": _error_line(rep) if not rep.passed else "",
                "props": dict(rep.user_properties)}
    return None


def _error_line(rep: pytest.TestReport) -> str:
    """The exception line pytest recorded for a failure ('AssertionError: ...'), or a skip's
    reason: pytest's own structured fields, not its printed text."""
    longrepr = rep.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(longrepr or "")


_config: pytest.Config | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """After every plugin's configure (pytest's faulthandler too): a process that runs tests
    writes its fatal errors to the run directory, for the controller to name a crash."""
    global _config
    _config = session.config
    state = session.config.stash[_STATE]
    if state.get("examples") is not None:
        state["faults"] = (state["run_dir"] / f"faults-{state['worker']}.log").open("a")
        faulthandler.enable(file=state["faults"], all_threads=False)


def _write_certificates(config: pytest.Config, complete: bool,
                        only: list[str] | None = None) -> list[Path]:
    """Every selected backend's certificate, or those of the backends ``only`` names."""
    state = config.stash[_STATE]
    run = {"complete": complete, "selection": report.selection(config),
           "collected": state.get("collected"), "isolated": state.get("isolated", False),
           "timeout_s": test_timeout(config), "run_dir": str(state["run_dir"]),
           "determinism": config.getoption("--determinism"), "resumed": state.get("resumed")}
    return report.write_all(config, state["selected"], state["results"],
                            config.getoption("--report-dir"), run, only)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config):
        return
    state = config.stash[_STATE]
    _timed_out_here(state)
    # -x / --maxfail stop the run early too (pytest's shouldfail): what did not run is missing
    interrupted = (exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop)
                   or bool(session.shouldfail))
    if config.getoption("--certify"):
        if not interrupted:
            interrupted = not _replay_failures(config)
        written = _write_certificates(config, complete=not interrupted)
        for path in written:
            _say(config, f"touchstone: wrote {path}")
        kept = [r["nodeid"] for r in state["results"][:_resumed_count(state)]
                if r["outcome"] == "failed" and not r.get("wasxfail")]
        if kept:
            _say(config, f"touchstone: {len(kept)} failed tests kept from the interrupted run, "
                         f"e.g. {kept[0]}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if (not interrupted and state["run_dir"] is not None and config.getoption("--run-dir") is None
            and not config.getoption("--resume")):
        shutil.rmtree(state["run_dir"], ignore_errors=True)


def _say(config: pytest.Config, line: str) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(line)


def _replay_failures(config: pytest.Config) -> bool:
    """Replay the run's failed property tests (--replay-failures of them) by their reproduce
    commands, each in a fresh process under the test timeout, and note what each replay saw
    in its row; the certificates are rewritten (incomplete) after each. False: interrupted."""
    state = config.stash[_STATE]
    chosen = flaky.plan(state["results"], max(config.getoption("--replay-failures"), 0))
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if chosen and tr is not None:
        tr.write("\n")  # after the progress line of the tests
    for i, entry in enumerate(chosen, 1):
        _say(config, f"touchstone: replaying {i}/{len(chosen)}: {entry['nodeid']}")
        prefix, args = reproduce_args(config, entry["nodeid"], entry["props"]["key"][0])
        try:
            seen = flaky.replay([sys.executable, "-m", "pytest", *args], flaky.replay_env(prefix),
                                Path(str(config.rootpath)), entry["nodeid"], test_timeout(config))
        except KeyboardInterrupt:
            for rest in chosen[i - 1:]:
                rest["props"]["replay"] = "not replayed: the run was interrupted"
            return False
        _say(config, f"touchstone:   {flaky.apply(entry, seen)}")
        _write_certificates(config, complete=False)
    return True


def _timed_out_here(state: dict) -> None:
    """A test this process timed out itself (no workers) gets its row."""
    if state["run_dir"] is None:
        return
    timeout = runlog.read_json(state["run_dir"] / "timeout-main.json")
    if timeout and not any(r["nodeid"] == timeout["nodeid"] for r in state["results"]):
        keys = runlog.read_json(state["run_dir"] / "keys-main.json") or {}
        what = f"timed out after {timeout['seconds']:g} s"
        state["results"].append({
            "nodeid": timeout["nodeid"], "when": "???", "outcome": "failed", "wasxfail": None,
            "error": what, "props": {"ended": what, "key": keys.get(timeout["nodeid"])}})
