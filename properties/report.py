"""Certification reports: reports/<backend>-<device>.md and .json.

Per backend: the environment, a summary, the conventions it follows, the arguments it lacks
(fixed to one value, with the drawn values that excluded), then per component and property
the result, examples run and worst margin (error / tolerance), and for each failure the
counterexample and the command that reproduces it. A failure that did not come back when its
example was replayed is *flaky*, with both observations (properties.flaky).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from properties.stats import ALPHA, CHECKS_PER_RUN, FAMILY_RATE

OUTCOMES = ("passed", "failed", "flaky", "timed out", "crashed", "known divergence",
            "known divergence now passes", "known divergence not observed", "unsupported",
            "unavailable", "skipped")
#: outcomes that fail a run, each with its example in the report
FAILING = ("failed", "flaky", "timed out", "crashed")
#: outcomes whose examples ran on the backend
RAN = ("passed", "failed", "flaky", "timed out", "crashed", "known divergence",
       "known divergence now passes", "known divergence not observed")


def classify(entry: dict) -> tuple[str, str]:
    """(outcome, reason) of one result row. A test whose process was lost is 'timed out' or
    'crashed'. An unscoped known divergence that passed is 'not observed' (nothing says its
    examples reached the divergent range); a scoped one whose examples in its scope all passed
    'now passes'. A failure whose replay passed (or failed differently) is 'flaky', its
    reason what the replay did. A failure's reason is its error."""
    props = entry.get("props", {})
    ended = props.get("ended")
    if ended:
        return ("timed out", ended) if ended.startswith("timed out") else \
            ("crashed", ended.removeprefix("crashed: "))
    if entry["wasxfail"] is not None:
        if entry["outcome"] == "passed":
            return ("known divergence not observed",
                    f"not observed in {props.get('examples', 0)} examples: {entry['wasxfail']}")
        return "known divergence", entry["wasxfail"]
    if entry["outcome"] == "passed" and "scoped_divergence" in props:
        scope, n = props["scoped_divergence"], props.get("in_scope_examples", 0)
        if n:
            return ("known divergence now passes",
                    f"not observed in the {n} examples in its scope ({scope})")
        return "passed", f"no example fell in the scope of its known divergence ({scope})"
    if entry["outcome"] == "skipped":
        reason = entry["error"].removeprefix("Skipped: ").strip()
        for kind in ("unsupported", "unavailable"):
            if reason.startswith(f"{kind}: "):
                return kind, reason.removeprefix(f"{kind}: ")
        return "skipped", reason
    if entry["outcome"] == "failed":
        if props.get("flaky"):
            return "flaky", props["flaky"]["summary"]
        failure = props.get("failure")
        return "failed", failure["error"] if failure else entry["error"]
    return entry["outcome"], ""


def counterexample(entry: dict) -> str:
    """The failing example as the test recorded it: its error, then every draw of the last
    failing example (after shrinking, the minimal one; of a flaky test, the one that failed
    first), 'label = value' per line."""
    props = entry.get("props", {})
    failure = props["flaky"]["first"] if props.get("flaky") else props.get("failure")
    if not failure:
        return entry.get("error", "")
    return observation_text(failure)


def observation_text(obs: dict) -> str:
    """An observation's error (if any), then its draws, 'label = value' per line."""
    lines = [obs["error"]] if obs.get("error") else []
    lines += [f"{label} = {value}" for label, value in obs.get("draws", ())]
    return "\n".join(lines)


@functools.cache  # once per process: the code a run tests is the code it started with
def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


_VERSIONS: dict[str, dict[str, str]] = {}


def _versions(sel) -> dict[str, str]:
    """The backend's framework versions, asked once per run."""
    if sel.spec not in _VERSIONS:
        try:
            _VERSIONS[sel.spec] = sel.get().versions()
        except Exception:  # noqa: BLE001 - an unavailable backend still gets a report
            _VERSIONS[sel.spec] = {}
    return _VERSIONS[sel.spec]


def selection(config: pytest.Config) -> str:
    """The run's selection in words ('-k relu', 'properties/test_cnn.py'), '' for the whole
    property suite."""
    parts = []
    if config.option.keyword:
        parts.append(f"-k {config.option.keyword!r}")
    if config.option.markexpr:
        parts.append(f"-m {config.option.markexpr!r}")
    parts += [f"--deselect {d}" for d in (getattr(config.option, "deselect", None) or [])]
    if getattr(config.option, "lf", False) or getattr(config.option, "last_failed_no_failures",
                                                          "all") == "none":
        parts.append("--last-failed")
    root = Path(str(config.rootpath))
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        if "::" in arg or path.is_file() or (path.resolve() != root.resolve()
                                             and path.resolve() != (root / "properties").resolve()):
            parts.append(arg)
    return " ".join(parts)


def run_fields(config: pytest.Config) -> dict[str, Any]:
    """What makes two runs one certification (properties.resume.SAME), as the certificate
    records them."""
    return {"commit": _git_commit(),
            "profile": (config.getoption("hypothesis_profile", None)
                        or settings.get_current_profile_name()),
            "seed": config.getoption("hypothesis_seed", None), "selection": selection(config),
            "determinism": config.getoption("--determinism"), "device": config.getoption("--device")}


def build(config: pytest.Config, sel, rows: list[dict], run: dict[str, Any],
          fields: dict[str, Any]) -> dict[str, Any]:
    """The certificate of one selected backend from its result rows; ``fields`` are the
    run's run_fields, what a --resume compares with the next run's."""
    results = []
    for r in rows:
        outcome, reason = classify(r)
        props = r["props"]
        ran = outcome in RAN
        # a failure that is not a comparison's (an error, a timeout) has no margin: its
        # reason says why
        checked = ran and props.get("comparisons", 1) > 0 and not (
            outcome in FAILING and (props.get("worst_margin") or 0) <= 1)
        results.append({
            "test": r["test"], "variant": r["variant"], "component": r["component"],
            "dtype": r["dtype"],
            "nodeid": r["nodeid"], "outcome": outcome, "reason": reason,
            "examples": props.get("examples", 0) if ran else 0,
            "replays": props.get("replays", 0) if ran else 0,
            "unsupported_examples": props.get("unsupported_examples", 0) if ran else 0,
            "unsupported_reasons": props.get("unsupported_reasons", "") if ran else "",
            "worst_margin": props.get("worst_margin") if checked else None,
            "in_scope_examples": props.get("in_scope_examples"),
            "divergent_examples": props.get("divergent_examples"),
            "counterexample": counterexample(r) if outcome in FAILING else "",
            "reproduce": props.get("reproduce", ""),
            "flaky": props.get("flaky") if outcome == "flaky" else None,
            "replay": props.get("replay", "") if outcome in ("failed", "flaky") else "",
            "classes": props.get("classes", []) if ran else [],
            "class_gaps": props.get("class_gaps", []) if ran else [],
            "statistical_checks": props.get("statistical_checks", 0) if ran else 0,
            "min_pvalue": props.get("min_pvalue") if ran else None,
            "three_way": props.get("three_way") if ran else None,
            "compiles": props.get("compiles", 0),
            "compile_seconds": props.get("compile_seconds", 0.0),
            "nondeterminism": props.get("nondeterminism") if ran else None,
            "fast_paths": props.get("fast_paths") if ran else None,
        })
    cls = sel.cls
    partial = bool(run["selection"])
    status = ("partial" if partial else "complete") if run["complete"] else \
        ("partial, incomplete" if partial else "incomplete")
    peaks = [r["props"]["peak_rss_mb"] for r in rows if "peak_rss_mb" in r["props"]]
    return {
        "status": status, "selection": run["selection"], "tests_recorded": len(rows),
        "tests_collected_all_backends": run["collected"], "isolated": run["isolated"],
        "test_timeout_s": run["timeout_s"], "run_dir": run["run_dir"],
        "determinism": run.get("determinism", "auto"), "resumed": run.get("resumed"),
        "peak_rss_mb": max(peaks) if peaks else None,
        "backend": cls.name if cls else sel.spec, "spec": sel.spec, "device": sel.device,
        "id": sel.id, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(sel),
        "unavailable": sel.error,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "dtypes": list(cls.dtypes) if cls else [],
        "profile": fields["profile"], "seed": fields["seed"],
        "commit": fields["commit"], "command": " ".join(["pytest", *config.invocation_params.args]),
        "conventions": {k: {a: (list(v) if isinstance(v, tuple) else v) for a, v in c.items()}
                        for k, c in (cls.conventions if cls else {}).items()},
        "lacks": lacked_arguments(cls.lacks if cls else {}, rows),
        "known_divergences": [known_divergence(kd) for kd in (cls.known_divergences if cls else ())],
        "summary": dict(Counter(r["outcome"] for r in results)),
        "results": sorted(results, key=lambda r: (r["component"] or "", r["test"], r["variant"],
                                                  r["dtype"] or "")),
    }


def lacked_arguments(lacks: dict[str, dict[str, tuple[Any, str]]], rows: list[dict]
                     ) -> list[dict[str, Any]]:
    """Each argument the backend lacks (``Backend.lacks``): the value it is fixed to, why, the
    examples that drew it and the drawn values it excluded (text -> examples, most first),
    counted over the tests that ran."""
    counts: dict[tuple[str, str], Counter] = {}
    for r in rows:
        if classify(r)[0] not in RAN:
            continue
        for component, arg, text, n in r["props"].get("lacked_arguments", ()):
            counts.setdefault((component, arg), Counter())[text] += n
    out = []
    for component, args in sorted(lacks.items()):
        for arg, (value, why) in args.items():
            c = counts.get((component, arg), Counter())
            out.append({"component": component, "argument": arg, "value": value, "why": why,
                        "drawn": sum(c.values()),
                        "excluded": {t: n for t, n in c.most_common() if t is not None}})
    return out


def _lacked(e: dict[str, Any], shown: int = 8) -> str:
    """'softplus beta: fixed to `1.0` (why); drawn values excluded in 9 of the 12 examples
    that drew it: 2 ×4, 0.5 ×3, ...', the ``shown`` most common values, then how many others
    and their range."""
    text = f"{e['component']} {e['argument']}: fixed to `{e['value']!r}` ({e['why']})"
    excluded = list(e["excluded"].items())
    if not e["drawn"]:
        return text + "; not drawn in this run"
    if not excluded:
        return text + f"; every one of the {e['drawn']} examples drew that value"
    n = sum(k for _, k in excluded)
    text += (f"; drawn values excluded in {n} of the {e['drawn']} examples that drew it: "
             + ", ".join(f"{v} ×{k}" for v, k in excluded[:shown]))
    rest = excluded[shown:]
    if rest:
        text += f", and {len(rest)} other values ({sum(k for _, k in rest)} examples)"
        try:
            nums = [float(v.lstrip("≈")) for v, _ in rest]
            text += f" from {min(nums):.4g} to {max(nums):.4g}"
        except ValueError:  # not numbers: arrays, strings
            pass
    return text


def known_divergence(kd) -> dict[str, Any]:
    """A KnownDivergence as report data; its scope in words (None: every example)."""
    return {"test": kd.test, "component": kd.component, "reason": kd.reason,
            "upstream": kd.upstream, "dtypes": list(kd.dtypes) if kd.dtypes else None,
            "scope": kd.describe_scope() if kd.scoped else None}


def _examples(r: dict) -> str:
    n = r["unsupported_examples"]
    text = f"{r['examples']} (+{n} unsupported)" if n else str(r["examples"])
    if r.get("replays"):
        text += f", {r['replays']} replayed"
    if r.get("divergent_examples"):
        text += f", {r['divergent_examples']} diverged"
    return text


def _failure(r: dict) -> list[str]:
    """A failure's section: its outcome, its example (a flaky test's two observations), what
    its replay in a fresh process did, and its reproduce command."""
    out = [f"### {r['nodeid']}", ""]
    if r["outcome"] == "flaky":
        f = r["flaky"]
        out += [f"flaky: {f['summary']}", "",
                f"First observation (in the run): {f['first']['outcome']}", "",
                "```", observation_text(f["first"]), "```", "",
                f"Second observation (replayed in {f['where']}): {_seen(f['second'])}", ""]
        second = observation_text(f["second"]) if f["second"]["outcome"] != "passed" else ""
        if second:
            out += ["```", second, "```", ""]
    else:
        out += [r["outcome"], "", "```", r["counterexample"], "```", ""]
    if r.get("replay"):
        out += [f"Replay: {r['replay']}", ""]
    return out + [f"Reproduce: `{r['reproduce']}`", ""]


def _seen(obs: dict) -> str:
    """An observation's outcome in words ('passed (20 examples)')."""
    if obs["outcome"] == "passed" and "examples" in obs:
        return f"passed ({obs['examples']} examples)"
    return obs["outcome"]


def _classes(r: dict) -> str:
    """'dim: a 3, b 2; dim2: ...; not exercised: dim=c (why)'."""
    dims: dict[str, list[str]] = {}
    for dim, cls, n in sorted(r.get("classes", [])):
        dims.setdefault(dim, []).append(f"{cls} {n}")
    text = "; ".join(f"{d}: {', '.join(v)}" for d, v in dims.items())
    gaps = [f"{d}={c} ({why})" for d, c, why in r.get("class_gaps", [])]
    return text + (f"; **not exercised:** {', '.join(gaps)}" if gaps else "")


def _property(r: dict) -> str:
    """The test's name, with its other parameters (e.g. the optimizer) where it has any."""
    return f"{r['test']}[{r['variant']}]" if r["variant"] else r["test"]


def _margin(m) -> str:
    return "—" if m is None else f"{m:.3g}"


def _result(r: dict, limit: int = 100) -> str:
    """The outcome, and for a failure, flaky test, timeout or crash its reason, cut to
    ``limit``."""
    if r["outcome"] not in FAILING or not r["reason"]:
        return r["outcome"]
    reason = " ".join(r["reason"].split()).replace("|", "\\|")
    reason = reason if len(reason) <= limit else reason[:limit] + " ..."
    return f"{r['outcome']}: {reason}"


_DETERMINISM = {"auto": "auto: each example run twice on devices other than cpu",
                "on": "on: each example run twice", "off": "off"}

_STATUS_TEXT = {
    "complete": "",
    "incomplete": "**Incomplete:** the run did not finish (interrupted, killed, or still "
                  "running); these are the {n} tests that finished.",
    "partial": "**Partial:** only the tests selected by `{sel}` ran; not a certification of "
               "the whole suite.",
    "partial, incomplete": "**Partial and incomplete:** only the tests selected by `{sel}` "
                           "ran, and the run did not finish; these are the {n} that did.",
}


def markdown(rep: dict[str, Any]) -> str:
    out = [f"# Touchstone certificate: {rep['id']}", ""]
    note = _STATUS_TEXT[rep["status"]].format(n=rep["tests_recorded"], sel=rep["selection"])
    if note:
        out += [note, ""]
    env = [("backend", rep["spec"]), ("device", rep["device"]), ("date", rep["date"]),
           ("commit", rep["commit"]), ("python", rep["python"]), ("platform", rep["platform"]),
           *[(k, v) for k, v in rep["versions"].items()], ("dtypes", ", ".join(rep["dtypes"])),
           ("Hypothesis profile", rep["profile"]), ("seed", rep["seed"]), ("command", rep["command"]),
           ("status", rep["status"]), ("test timeout", f"{rep['test_timeout_s']:g} s"),
           ("crash isolation", "xdist workers" if rep["isolated"] else "none (-n 0)"),
           ("determinism check", _DETERMINISM[rep.get("determinism", "auto")]),
           ("peak memory of a test process", f"{rep['peak_rss_mb']} MiB")]
    if rep.get("resumed"):
        env.append(("resumed", f"{rep['resumed']['results']} results kept from the run "
                               f"interrupted at {rep['resumed']['interrupted_at']}"))
    out += ["| | |", "|---|---|", *[f"| {k} | `{v}` |" for k, v in env], ""]
    if rep["unavailable"]:
        out += [f"**Unavailable:** {rep['unavailable']}", ""]
    out += ["## Summary", "", "| outcome | tests |", "|---|---|"]
    out += [f"| {o} | {rep['summary'][o]} |" for o in OUTCOMES if o in rep["summary"]]
    out += ["", "Margin = worst error / tolerance over every comparison of the test "
            "(<= 1 passes; see properties/tolerance.py).", ""]
    repeated = [r for r in rep["results"] if r.get("nondeterminism")]
    differed = [r for r in repeated if r["nondeterminism"]["differed"]]
    if repeated:
        out += [f"Nondeterministic: {len(differed)} of the {len(repeated)} tests whose examples "
                "ran twice gave different results on a second run of one example "
                "(see Nondeterminism).", ""]
    if rep["conventions"]:
        out += ["## Conventions followed", "", "| component | argument | value(s) |", "|---|---|---|"]
        for comp, args in sorted(rep["conventions"].items()):
            out += [f"| {comp} | {a} | `{v}` |" for a, v in args.items()]
        out.append("")
    if rep.get("lacks"):
        out += ["## Arguments the backend lacks", "",
                "Not conventions: the framework has no such argument, so each example passes "
                "the value it is fixed to in place of the drawn one (nothing is set aside). The "
                "drawn values this excluded are counted over the tests that ran.", ""]
        out += [f"- {_lacked(e)}" for e in rep["lacks"]]
        out.append("")
    if rep["known_divergences"]:
        out += ["## Known divergences", "",
                "| property | component | dtypes | examples | reason | upstream |",
                "|---|---|---|---|---|---|"]
        for kd in rep["known_divergences"]:
            out.append(f"| {kd['test']} | {kd['component']} | {', '.join(kd['dtypes'] or ['all'])} "
                       f"| {kd.get('scope') or 'all'} | {kd['reason']} | {kd['upstream'] or ''} |")
        out.append("")
    out += ["## Results", "", "| component | property | dtype | result | examples | worst margin |",
            "|---|---|---|---|---|---|"]
    for r in rep["results"]:
        out.append(f"| {r['component'] or ''} | {_property(r)} | {r['dtype'] or ''} | {_result(r)} "
                   f"| {_examples(r)} | {_margin(r['worst_margin'])} |")
    scoped = [r for r in rep["results"] if r.get("in_scope_examples") is not None]
    if scoped:
        out += ["", "## Scoped known divergences", "",
                "Examples in a divergence's scope that failed count as the divergence observed; "
                "every other example is checked as usual.", ""]
        out += [f"- {r['component'] or ''} {_property(r)} {r['dtype'] or ''}: {r['outcome']}: "
                f"{r['divergent_examples']} of {r['examples']} examples diverged, "
                f"{r['in_scope_examples']} in the scope" for r in scoped]
    failures = [r for r in rep["results"] if r["outcome"] in FAILING]
    if failures:
        out += ["", "## Failures", "",
                "Each with its error and the draws of the example that showed it (after "
                "shrinking, the minimal one; for a timeout or crash, the example it was running). "
                "A flaky test failed, then passed (or failed differently) when its example was "
                "replayed: both observations are shown.", ""]
        for r in failures:
            out += _failure(r)
    statistical = [r for r in rep["results"] if r.get("statistical_checks")]
    if statistical:
        out += ["", "## Statistical properties", "",
                f"Each check of a backend's own random numbers is a hypothesis test at level "
                f"alpha = {ALPHA:.3g}: with at most {CHECKS_PER_RUN} checks in a full run, 20 "
                f"seeds of the suite raise a false alarm on a correct backend with probability "
                f"below {FAMILY_RATE:.0%} (properties/stats.py). "
                f"Checks in this run: {sum(r['statistical_checks'] for r in statistical)}.", "",
                "| component | property | dtype | checks | smallest p-value |", "|---|---|---|---|---|"]
        out += [f"| {r['component'] or ''} | {_property(r)} | {r['dtype'] or ''} "
                f"| {r['statistical_checks']} | {r['min_pvalue']:.3g} |" for r in statistical]
    three = [r for r in rep["results"] if r.get("three_way")]
    if three:
        out += ["", "## Three-way comparison", "",
                "The same examples on this backend, a second one (--against) and the oracle: "
                "each one's worst margin to the oracle, and the two results' worst distance "
                "from each other (its margin under the sum of their two tolerances; "
                "properties/test_three_way.py).", "",
                *_measured(three, "three_way", ("against", "margin", "against's margin",
                                                    "distance margin", "max abs", "max rel"),
                           lambda t: [t["against"], *map(_margin, (
                               t.get("margin_backend"), t.get("margin_against"),
                               t.get("margin_apart"), t.get("max_abs"), t.get("max_rel")))])]
    if differed:
        out += ["", "## Nondeterminism", "",
                "Tests where running the backend again on the same example gave a different "
                "result (bit for bit; --determinism): a finding about the framework, reported "
                "whether or not both results are within tolerance (the test's outcome says "
                "that). Each with its first such example's draws.", ""]
        for r in differed:
            nd = r["nondeterminism"]
            first = nd["first"]
            out += [f"- {r['component'] or ''} {_property(r)} {r['dtype'] or ''}: "
                    f"{nd['differed']} of {nd['repeated']} examples differed; first: "
                    f"{first['what']}, max abs {first['max_abs']:.3g}, max rel "
                    f"{first['max_rel']:.3g}; result: {_result(r)}", "",
                    "```", observation_text(first), "```", ""]
    fast = [r for r in rep["results"] if r.get("fast_paths")]
    if fast:
        out += ["", "## Fast float32 paths", "",
                "What the device's fast float32 paths (TF32 matmuls and convolutions) cost in "
                "accuracy: the worst margin to the oracle under the float32 tolerance and the "
                "worst normwise relative error (max |error| / max |oracle|), with them off (as "
                "every other property runs) and on. Measured, not failed "
                "(properties/test_fast_paths.py).", "",
                *_measured(fast, "fast_paths", ("paths", "margin off", "margin on",
                                                "max rel off", "max rel on"),
                           lambda f: [f["paths"], *map(_margin, (
                               f.get("margin_off"), f.get("margin_on"), f.get("max_rel_off"),
                               f.get("max_rel_on")))])]
    compiled = compile_times(rep["results"])
    if compiled:
        out += ["", "## Compilation", "",
                "Compilations a compiled backend made while each component's tests ran (its "
                "caches keep them out of later examples) and their seconds, summed over its "
                "tests.", "", "| component | compilations | seconds |", "|---|---|---|"]
        out += [f"| {c} | {n} | {secs:.1f} |" for c, (n, secs) in compiled.items()]
    covered = [r for r in rep["results"] if r.get("classes") or r.get("class_gaps")]
    if covered:
        out += ["", "## Configuration classes", "",
                "Per property, the configuration classes its examples exercised (examples in "
                "each; properties/coverage.py), and each declared class it did not, with why.", ""]
        out += [f"- {r['component'] or ''} {_property(r)} {r['dtype'] or ''}: {_classes(r)}"
                for r in covered]
    aside = [r for r in rep["results"] if r["unsupported_examples"]]
    if aside:
        out += ["", "## Examples set aside as unsupported", "",
                "The property ran on its other examples; these argument values the backend "
                "cannot express.", ""]
        out += [f"- {r['component'] or ''} {_property(r)} {r['dtype'] or ''}: "
                f"{r['unsupported_reasons']}" for r in aside]
    others = [r for r in rep["results"] if r["outcome"] in ("unsupported", "skipped", "unavailable")]
    if others:
        out += ["", "## Not run", ""]
        seen = set()
        for r in others:
            key = (r["component"], _property(r), r["outcome"], r["reason"])
            if key not in seen:
                seen.add(key)
                out.append(f"- {r['component'] or ''} {_property(r)}: {r['outcome']}: {r['reason']}")
    return "\n".join(out) + "\n"


def _measured(results: list[dict], key: str, heads: tuple[str, ...],
              cells: Callable[[dict], list[str]]) -> list[str]:
    """A table of what each result measured (``r[key]``): component, property and dtype, then
    ``heads`` with ``cells(r[key])``."""
    out = ["| " + " | ".join(("component", "property", "dtype", *heads)) + " |",
           "|" + "---|" * (3 + len(heads))]
    return out + ["| " + " | ".join((r["component"] or "", _property(r), r["dtype"] or "",
                                     *cells(r[key]))) + " |" for r in results]


def compile_times(results: list[dict]) -> dict[str, tuple[int, float]]:
    """component -> (compilations, seconds) summed over its tests, most seconds first (a test
    without a component under '')."""
    sums: dict[str, list] = {}
    for r in results:
        if r.get("compiles"):
            entry = sums.setdefault(r["component"] or "", [0, 0.0])
            entry[0] += r["compiles"]
            entry[1] += r.get("compile_seconds") or 0.0
    return {c: (n, secs) for c, (n, secs) in sorted(sums.items(), key=lambda kv: -kv[1][1])}


def item_key(item: pytest.Item) -> tuple[str | None, str, str | None, str | None]:
    """(backend spec, test name, component, dtype) of a collected item."""
    params = getattr(item, "callspec", None)
    p = params.params if params else {}
    marker = item.get_closest_marker("component")
    component = p.get("component") or (marker.args[0] if marker else None)
    return p.get("backend"), item.originalname, component, p.get("dtype")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def certificate_paths(report_dir: Path, backend_id: str, status: str) -> tuple[Path, Path]:
    """(json, md) of a certificate: <id> when complete, <id>.incomplete while a whole-suite
    run has not finished, <id>.partial for a selection (never over a complete certificate)."""
    name = backend_id.replace(":", "_").replace("/", "_")
    name += {"complete": "", "incomplete": ".incomplete"}.get(status, ".partial")
    return report_dir / f"{name}.json", report_dir / f"{name}.md"


def write_all(config: pytest.Config, selected: dict, results: list[dict], report_dir: str,
              run: dict[str, Any], only: Collection[str] | None = None) -> list[Path]:
    """Write one md + json certificate per selected backend from the result rows (each
    carries its key, properties.plugin.row_key), or only those of the backends ``only``
    names; return the paths written."""
    by_spec: dict[str, list[dict]] = {s: [] for s in selected if only is None or s in only}
    for entry in results:
        key = entry["props"].get("key")
        if not key or key[0] not in by_spec:
            continue
        spec, test, component, dtype, variant = key
        by_spec[spec].append({**entry, "test": test, "variant": variant,
                              "component": component, "dtype": dtype})
    out_dir = Path(report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fields = run_fields(config)
    for spec, rows in by_spec.items():
        rep = build(config, selected[spec], rows, run, fields)
        json_path, md_path = certificate_paths(out_dir, rep["id"], rep["status"])
        _atomic_write(json_path, json.dumps(rep, indent=1, default=str) + "\n")
        _atomic_write(md_path, markdown(rep))
        written += [json_path, md_path]
        if rep["status"] == "complete":
            for stale in certificate_paths(out_dir, rep["id"], "incomplete"):
                stale.unlink(missing_ok=True)
    return written


def interrupted(report_dir: Path | str, backend_id: str) -> dict[str, Any] | None:
    """The interrupted certificate of ``backend_id`` in ``report_dir`` (incomplete, or a
    selection's partial and incomplete one), None if there is none."""
    for status in ("incomplete", "partial"):
        path = certificate_paths(Path(report_dir), backend_id, status)[0]
        if path.exists():
            rep = json.loads(path.read_text())
            if "incomplete" in rep["status"]:
                return rep
    return None


def load(report_dir: Path | str, backend_id: str) -> dict[str, Any]:
    """The certificate of ``backend_id`` in ``report_dir``, whatever its status."""
    for status in ("complete", "partial", "incomplete"):
        path = certificate_paths(Path(report_dir), backend_id, status)[0]
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"no certificate of {backend_id} in {report_dir}")
