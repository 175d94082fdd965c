"""Certification reports: reports/<backend>-<device>.md and .json.

Per backend: the environment, a summary, the conventions it follows, the arguments it lacks
(fixed to one value, with the drawn values that excluded), then per component and property
the result, examples run and worst margin (error / tolerance), and for each failure the
counterexample and the command that reproduces it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

OUTCOMES = ("passed", "failed", "known divergence", "known divergence now passes",
            "unsupported", "unavailable", "skipped")


def classify(entry: dict) -> tuple[str, str]:
    """(outcome, reason) of one result row. A test with a scoped known divergence that passed
    either had examples in the scope, all right ('known divergence now passes'), or none."""
    if entry["wasxfail"] is not None:
        return ("known divergence now passes", entry["wasxfail"]) if entry["outcome"] == "passed" \
            else ("known divergence", entry["wasxfail"])
    props = entry.get("props", {})
    if entry["outcome"] == "passed" and "scoped_divergence" in props:
        scope, n = props["scoped_divergence"], props.get("in_scope_examples", 0)
        if n:
            return ("known divergence now passes",
                    f"not observed in the {n} examples in its scope ({scope})")
        return "passed", f"no example fell in the scope of its known divergence ({scope})"
    if entry["outcome"] == "skipped":
        text = entry["longrepr"]
        reason = text.split("Skipped: ", 1)[-1].strip().strip("')\"")
        for kind in ("unsupported", "unavailable"):
            if f"{kind}: " in reason:
                return kind, reason.split(f"{kind}: ", 1)[1]
        return "skipped", reason
    return entry["outcome"], ""


def counterexample(longrepr: str, limit: int = 60) -> str:
    """The error lines and each falsifying example with its draws, from a failure's text
    (pytest's 'E' lines, or the '|' lines of an exception group)."""
    lines = [re.sub(r"^(E {0,3}|\s*(\|\s?)+)", "", ln).rstrip() for ln in longrepr.splitlines()]
    keep: list[str] = []
    in_example = False
    for ln in lines:
        text = ln.strip()
        if text.startswith(("Falsifying example", "Failing test case", "Failing explicit example")):
            in_example = True
        if in_example:
            keep.append(ln)
            if text.startswith("You can reproduce") or text.startswith("Explanation"):
                in_example = False
        elif re.match(r"^[\w.]*(Error|Exception|HealthCheck)\b.*:", text):
            keep.append(text)
    return "\n".join(keep[:limit])


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def build(config: pytest.Config, sel, rows: list[dict]) -> dict[str, Any]:
    backend = None
    try:
        backend = sel.get()
    except Exception:  # noqa: BLE001 - an unavailable backend still gets a report
        pass
    results = []
    for r in rows:
        outcome, reason = classify(r)
        props = r["props"]
        ran = outcome not in ("unsupported", "unavailable", "skipped")
        results.append({
            "test": r["test"], "variant": r["variant"], "component": r["component"],
            "dtype": r["dtype"],
            "nodeid": r["nodeid"], "outcome": outcome, "reason": reason,
            "examples": props.get("examples", 0) if ran else 0,
            "unsupported_examples": props.get("unsupported_examples", 0) if ran else 0,
            "unsupported_reasons": props.get("unsupported_reasons", "") if ran else "",
            "worst_margin": props.get("worst_margin") if ran else None,
            "in_scope_examples": props.get("in_scope_examples"),
            "divergent_examples": props.get("divergent_examples"),
            "counterexample": counterexample(r["longrepr"]) if outcome == "failed" else "",
            "reproduce": props.get("reproduce", ""),
        })
    cls = sel.cls
    return {
        "backend": cls.name if cls else sel.spec, "spec": sel.spec, "device": sel.device,
        "id": sel.id, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": backend.versions() if backend else {},
        "unavailable": sel.error,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "dtypes": list(cls.dtypes) if cls else [],
        "profile": settings.get_current_profile_name(),
        "seed": config.getoption("hypothesis_seed", None),
        "commit": _git_commit(), "command": " ".join(["pytest", *config.invocation_params.args]),
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
        if classify(r)[0] in ("unsupported", "unavailable", "skipped"):
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
    if r.get("divergent_examples"):
        text += f", {r['divergent_examples']} diverged"
    return text


def _property(r: dict) -> str:
    """The test's name, with its other parameters (e.g. the optimizer) where it has any."""
    return f"{r['test']}[{r['variant']}]" if r["variant"] else r["test"]


def _margin(m) -> str:
    return "" if m is None else f"{m:.3g}"


def markdown(rep: dict[str, Any]) -> str:
    out = [f"# Touchstone certificate: {rep['id']}", ""]
    env = [("backend", rep["spec"]), ("device", rep["device"]), ("date", rep["date"]),
           ("commit", rep["commit"]), ("python", rep["python"]), ("platform", rep["platform"]),
           *[(k, v) for k, v in rep["versions"].items()], ("dtypes", ", ".join(rep["dtypes"])),
           ("Hypothesis profile", rep["profile"]), ("seed", rep["seed"]), ("command", rep["command"])]
    out += ["| | |", "|---|---|", *[f"| {k} | `{v}` |" for k, v in env], ""]
    if rep["unavailable"]:
        out += [f"**Unavailable:** {rep['unavailable']}", ""]
    out += ["## Summary", "", "| outcome | tests |", "|---|---|"]
    out += [f"| {o} | {rep['summary'][o]} |" for o in OUTCOMES if o in rep["summary"]]
    out += ["", "Margin = worst error / tolerance over every comparison of the test "
            "(<= 1 passes; see properties/tolerance.py).", ""]
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
        out.append(f"| {r['component'] or ''} | {_property(r)} | {r['dtype'] or ''} | {r['outcome']} "
                   f"| {_examples(r)} | {_margin(r['worst_margin'])} |")
    scoped = [r for r in rep["results"] if r.get("in_scope_examples") is not None]
    if scoped:
        out += ["", "## Scoped known divergences", "",
                "Examples in a divergence's scope that failed count as the divergence observed; "
                "every other example is checked as usual.", ""]
        out += [f"- {r['component'] or ''} {_property(r)} {r['dtype'] or ''}: {r['outcome']}: "
                f"{r['divergent_examples']} of {r['examples']} examples diverged, "
                f"{r['in_scope_examples']} in the scope" for r in scoped]
    failures = [r for r in rep["results"] if r["outcome"] == "failed"]
    if failures:
        out += ["", "## Failures", ""]
        for r in failures:
            out += [f"### {r['nodeid']}", "", "```", r["counterexample"], "```", "",
                    f"Reproduce: `{r['reproduce']}`", ""]
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


def write_all(config: pytest.Config, selected: dict, results: list[dict], items: dict,
              report_dir: str) -> list[Path]:
    """Write one md + json report per selected backend; return the paths written."""
    by_spec: dict[str, list[dict]] = {s: [] for s in selected}
    for entry in results:
        item = items.get(entry["nodeid"])
        if item is None:
            continue
        spec, test, component, dtype = item_key(item)
        if spec in by_spec:
            params = getattr(getattr(item, "callspec", None), "params", {})
            variant = ", ".join(f"{k}={v}" for k, v in params.items()
                                if k not in ("backend", "dtype", "component"))
            by_spec[spec].append({**entry, "test": test, "variant": variant,
                                  "component": component, "dtype": dtype})
    out_dir = Path(report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec, rows in by_spec.items():
        rep = build(config, selected[spec], rows)
        base = out_dir / rep["id"].replace(":", "_").replace("/", "_")
        _atomic_write(base.with_suffix(".json"), json.dumps(rep, indent=1, default=str) + "\n")
        _atomic_write(base.with_suffix(".md"), markdown(rep))
        written += [base.with_suffix(".json"), base.with_suffix(".md")]
    return written
