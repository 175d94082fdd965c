"""pytest plugin: backend selection, Hypothesis profiles, known divergences, reports.

Options: --backend (comma list of short names, module:Class paths or entry points),
--device (cpu, cuda/gpu), --certify (write reports/<backend>-<device>.md and .json),
--require-backends (or TOUCHSTONE_REQUIRE_BACKENDS=1: an unavailable backend fails instead
of being skipped). Profiles: dev (default), ci, thorough.
"""

from __future__ import annotations

import functools
import os
import shlex

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from backends.base import Backend, BackendUnavailable
from backends.loader import resolve
from properties import report
from properties.record import Record, start_record
from properties.report import item_key
from properties.scoped import ScopedRun

settings.register_profile("dev", max_examples=30, deadline=None, print_blob=True)
settings.register_profile(
    "ci", derandomize=True, max_examples=20, deadline=None, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# the planted-bug run: only whether a property fails matters, so no shrinking or explaining
settings.register_profile("planted", settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.register_profile("thorough", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

DEFAULT_BACKENDS = "numpy,torch,jax"
_STATE = pytest.StashKey[dict]()
#: the scoped known divergences matching a test (judged per example, properties.scoped)
_SCOPED = pytest.StashKey[tuple]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("touchstone")
    g.addoption("--backend", default=DEFAULT_BACKENDS,
                help="comma-separated backends: numpy, torch, jax, module:Class or an entry point "
                     f"in touchstone.backends (default {DEFAULT_BACKENDS})")
    g.addoption("--device", default="cpu", help="cpu, cuda or gpu (default cpu)")
    g.addoption("--certify", action="store_true",
                help="write a certification report per backend to --report-dir")
    g.addoption("--report-dir", default="reports", help="where --certify writes (default reports)")
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


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--certify") and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--certify runs serially for now: certificates of pytest-xdist "
                                "workers (-n) are not merged yet; run without -n")
    specs = [s.strip() for s in config.getoption("--backend").split(",") if s.strip()]
    device = config.getoption("--device")
    config.stash[_STATE] = {"selected": {s: _Selected(s, device) for s in specs},
                            "results": [], "cmdline": list(config.invocation_params.args)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    selected = metafunc.config.stash[_STATE]["selected"]
    marker = metafunc.definition.get_closest_marker("dtypes")
    wanted = marker.args if marker else None
    values, ids = [], []
    for spec, sel in selected.items():
        if "dtype" not in metafunc.fixturenames:
            values.append(spec)
            ids.append(sel.id)
            continue
        dtypes = sel.cls.dtypes if sel.cls else ("float64",)
        for dt in dtypes:
            if wanted is None or dt in wanted:
                values.append((spec, dt))
                ids.append(f"{sel.id}-{dt}")
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "dtype"), values, ids=ids, indirect=["backend"],
                            scope="session")
    else:
        metafunc.parametrize("backend", values, ids=ids, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    sel = request.config.stash[_STATE]["selected"][request.param]
    try:
        return sel.get()
    except BackendUnavailable as exc:
        if request.config.getoption("--require-backends"):
            pytest.fail(f"backend {sel.spec} is required but unavailable: {exc}")
        pytest.skip(f"unavailable: {exc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An unscoped known divergence marks its tests as expected failures; scoped ones are
    kept with the test and judged per example when it runs (an unscoped one wins)."""
    selected = config.stash[_STATE]["selected"]
    for item in items:
        spec, test, component, dtype = item_key(item)
        sel = selected.get(spec) if spec else None
        if sel is None or sel.cls is None or component is None:
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    record = start_record()
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    scoped = ScopedRun(item.stash[_SCOPED]) if _SCOPED in item.stash else None
    if inner is not None:
        @functools.wraps(inner)
        def counted(*args, **kwargs):
            record.examples += 1
            if scoped is not None:
                return scoped.call(inner, *args, **kwargs)
            return inner(*args, **kwargs)
        handle.inner_test = counted
    try:
        result = yield
    except (Unsatisfiable, FailedHealthCheck) as exc:
        # no example got past the set-asides; FailedHealthCheck names its check only in the
        # text (filter_too_much: "...filtering out a lot of inputs...")
        if not record.unsupported or (isinstance(exc, FailedHealthCheck)
                                      and "filter" not in str(exc)):
            raise
        pytest.skip(f"unsupported: every example set aside: {unsupported_summary(record)}")
    finally:
        if inner is not None:
            handle.inner_test = inner
        set_aside = sum(record.unsupported.values())
        item.user_properties.append(("examples", record.examples - set_aside))
        item.user_properties.append(("worst_margin", record.worst_margin))
        if set_aside:
            item.user_properties.append(("unsupported_examples", set_aside))
            item.user_properties.append(("unsupported_reasons", unsupported_summary(record)))
        if record.lacked:  # [component, argument, drawn value or None, examples]
            item.user_properties.append(("lacked_arguments",
                                         [[*key, n] for key, n in record.lacked.items()]))
        if scoped is not None:
            item.user_properties.extend(scoped.properties())
    if scoped is not None and scoped.observed:
        # every example outside the scopes passed: the test shows the known divergence
        pytest.xfail(scoped.summary(record.examples - sum(record.unsupported.values())))
    return result


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
    """One command that re-runs a test on the same backend, profile and seed."""
    parts = ["python", "-m", "pytest", nodeid, "--device", config.getoption("--device")]
    if spec:
        parts += ["--backend", spec]
    parts += ["--hypothesis-profile", settings.get_current_profile_name()]
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        parts += ["--hypothesis-seed", str(seed)]
    return shlex.join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    spec = item_key(item)[0]
    if rep.failed and spec:
        cmd = reproduce_command(item.config, item.nodeid, spec)
        rep.sections.append(("touchstone: reproduce", cmd))
        rep.user_properties.append(("reproduce", cmd))
    return rep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _config.stash[_STATE] if _config else None
    if state is None:
        return
    entry = report_entry(report)
    if entry is not None:
        state["results"].append(entry)


def report_entry(rep: pytest.TestReport) -> dict | None:
    """The report row of one test phase, or None when the phase says nothing new."""
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        return {"nodeid": rep.nodeid, "when": rep.when, "outcome": rep.outcome,
                "wasxfail": getattr(rep, "wasxfail", None),
                "longrepr": rep.longreprtext if not rep.passed else "",
                "props": dict(rep.user_properties)}
    return None


_config: pytest.Config | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _config
    _config = session.config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.getoption("--certify"):
        return
    state = config.stash[_STATE]
    items = {i.nodeid: i for i in session.items}
    written = report.write_all(config, state["selected"], state["results"], items,
                               config.getoption("--report-dir"))
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        for path in written:
            tr.write_line(f"touchstone: wrote {path}")
