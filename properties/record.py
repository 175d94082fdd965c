"""What one property test recorded: comparisons, worst margin, examples, examples set aside,
the drawn values an argument the backend lacks replaced, and each example's draws (the last
failing example's draws are the counterexample: Hypothesis replays the shrunk one last). The
first failing example and the latest example are kept as observations: when Hypothesis' replay
of a failure does not fail (``Flaky``), they are the two sides of it.

The plugin starts a fresh record before each test; the tolerance policy adds every comparison
to it; the report reads it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Comparison:
    """The outcome of one comparison: margin = max(error / tolerance)."""

    what: str
    margin: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.margin <= 1.0


@dataclass
class Record:
    """Comparisons and examples of one test (the report reads it). ``examples``: the examples
    that reached the backend and were checked, up to and including the first failure;
    ``replays``: the examples run after it (shrinking, explaining); ``rejected``: examples
    set aside (unsupported arguments, kinks)."""

    examples: int = 0
    replays: int = 0
    rejected: int = 0
    worst_margin: float = 0.0
    comparisons: int = 0
    notes: list[str] = field(default_factory=list)
    #: the current example's draws: (label, value as text)
    draws: list[tuple[str, str]] = field(default_factory=list)
    #: the last failing example: {"error": 'Type: message', "draws": [[label, value], ...]}
    failure: dict[str, Any] | None = None
    #: the first failing example (``failure`` is overwritten by later ones), same form
    first_failure: dict[str, Any] | None = None
    #: the latest example: {"outcome": "passed", "failed" or "set aside", "error"?, "draws"}
    last_example: dict[str, Any] | None = None
    #: called with each draw (label, text) and at each example's start (None, None)
    on_draw: Any = None
    unsupported: Counter[str] = field(default_factory=Counter)  # examples set aside, by reason
    #: (component, argument, drawn value as text, or None where the draw was the fixed value)
    #: -> examples, for each argument the backend lacks (Backend.lacks)
    lacked: Counter[tuple[str, str, str | None]] = field(default_factory=Counter)
    #: (dimension, class) -> examples checked in it (properties/coverage.py)
    classes: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: the configuration classes the test's component declares (dimension -> names)
    declared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: (dimension, class) -> why a declared class was not exercised
    class_gaps: dict[tuple[str, str], str] = field(default_factory=dict)
    #: statistical checks made (properties/stats.py) and the smallest p-value among them
    statistical_checks: int = 0
    min_pvalue: float | None = None
    #: a three-way test's distances, worst over its examples (properties/test_three_way.py):
    #: {"against": the second backend's id, "margin_backend" / "margin_against": each one's
    #: margin to the oracle, "margin_apart": their difference's margin, "max_abs" / "max_rel":
    #: its largest absolute and relative value}
    three_way: dict[str, Any] | None = None
    #: compilations a compiled backend (jax-jit, torch-compile) made while the test ran, and
    #: their seconds, summed (kept out of the properties' budget by its caches)
    compiles: int = 0
    compile_seconds: float = 0.0
    #: whether each example runs the backend twice (the plugin's --determinism); the
    #: examples that did ("repeated"), those whose second run differed ("differed") and the
    #: first such ("first": {"what", "max_abs", "max_rel", "draws"}; ``note_repeat``)
    repeat: bool = False
    nondeterminism: dict[str, Any] = field(default_factory=lambda: {
        "repeated": 0, "differed": 0, "first": None})
    #: a fast-path test's accuracy with the device's fast float32 paths off and on, worst
    #: over its examples (properties/test_fast_paths.py): {"paths", "margin_off",
    #: "margin_on", "max_rel_off", "max_rel_on"}
    fast_paths: dict[str, Any] | None = None
    #: the current example's classes, counted when it ends
    _pending: dict[str, str] = field(default_factory=dict, repr=False)
    #: the exceptions of ``first_failure`` and ``failure`` (which failure Hypothesis names)
    _errors: dict[str, BaseException] = field(default_factory=dict, repr=False)

    def begin_example(self) -> None:
        self.draws = []
        self._pending = {}
        self.last_example = None
        if self.on_draw is not None:
            self.on_draw(None, None)

    def note_draw(self, label: str | None, value: Any) -> None:
        text = draw_text(value)
        self.draws.append((label or f"draw {len(self.draws) + 1}", text))
        if self.on_draw is not None:
            self.on_draw(*self.draws[-1])

    def end_example(self, error: BaseException | None = None) -> None:
        """An example that reached its checks ended: passed (``error`` None) or failed."""
        if self.failure is None:
            self.examples += 1
            self.classes.update(self._pending.items())
        else:
            self.replays += 1
        draws = [list(d) for d in self.draws]
        if error is None:
            self.last_example = {"outcome": "passed", "draws": draws}
            return
        self.failure = {"error": error_text(error), "draws": draws}
        self.last_example = {"outcome": "failed", **self.failure}
        self._errors["last"] = error
        if self.first_failure is None:
            self.first_failure = self.failure
            self._errors["first"] = error

    def set_aside(self) -> None:
        """The current example was set aside (unsupported arguments, an assumption)."""
        self.rejected += 1
        self.last_example = {"outcome": "set aside", "draws": [list(d) for d in self.draws]}

    def failure_of(self, error: BaseException) -> dict[str, Any] | None:
        """The recorded failing example (the first or the latest) that raised ``error``."""
        if error is self._errors.get("last"):
            return self.failure
        if error is self._errors.get("first"):
            return self.first_failure
        return None

    def add(self, c: Comparison) -> None:
        self.comparisons += 1
        self.worst_margin = max(self.worst_margin, c.margin)

    def note_class(self, dimension: str, cls: str) -> None:
        """The current example's class of ``dimension``, counted if the example reaches its
        end (properties/coverage.py)."""
        self._pending[dimension] = cls

    def note_pvalue(self, pvalue: float) -> None:
        """One statistical check made, with its p-value (properties/stats.py)."""
        self.statistical_checks += 1
        self.min_pvalue = pvalue if self.min_pvalue is None else min(self.min_pvalue, pvalue)

    def note_three_way(self, against: str, distances: dict[str, float]) -> None:
        """One example's three-way distances (the keys of ``three_way``), kept at their worst."""
        if self.three_way is None:
            self.three_way = {"against": against}
        for key, value in distances.items():
            self.three_way[key] = max(self.three_way.get(key, 0.0), value)

    def note_repeat(self, differed: tuple[str, float, float] | None) -> None:
        """One example run twice; ``differed``: (what, max abs, max rel difference) of the
        first array whose second run differed, or None where every array was equal."""
        nd = self.nondeterminism
        nd["repeated"] += 1
        if differed is None:
            return
        nd["differed"] += 1
        if nd["first"] is None:
            what, max_abs, max_rel = differed
            nd["first"] = {"what": what, "max_abs": max_abs, "max_rel": max_rel,
                           "draws": [list(d) for d in self.draws]}

    def note_fast_paths(self, paths: str, distances: dict[str, float]) -> None:
        """One example's accuracy with fast paths off and on (the keys of ``fast_paths``),
        kept at their worst."""
        if self.fast_paths is None:
            self.fast_paths = {"paths": paths}
        for key, value in distances.items():
            self.fast_paths[key] = max(self.fast_paths.get(key, 0.0), value)

    def note_compile(self, seconds: float, count: int = 1) -> None:
        """``count`` compilations (0: more seconds of one already counted) took ``seconds``."""
        self.compiles += count
        self.compile_seconds += seconds

    def note_lacked(self, component: str, argument: str, drawn: Any, fixed: Any) -> None:
        """An example drew ``drawn`` for an argument the backend lacks and got ``fixed``."""
        text = None if same_value(drawn, fixed) else value_text(drawn)
        self.lacked[(component, argument, text)] += 1


def same_value(a: Any, b: Any) -> bool:
    """Whether two argument values are equal (arrays element by element, None only to None)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if a is None or b is None:
        return a is b
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def error_text(exc: BaseException, limit: int = 500) -> str:
    """'Type: first lines of the message' of an exception."""
    msg = str(exc).strip()
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def draw_text(value: Any, limit: int = 300) -> str:
    """A drawn value for a counterexample: repr, arrays in full up to ``limit`` characters."""
    with np.printoptions(threshold=50, precision=17):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def value_text(value: Any) -> str:
    """An argument value in a report: floats to 4 significant digits ('≈' where that rounds
    them: '≈1' is not 1), arrays by shape."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    if isinstance(value, float | np.floating):
        text = f"{float(value):.4g}"
        return text if float(text) == value else f"≈{text}"
    return repr(value)


_current = Record()


def current_record() -> Record:
    return _current


def start_record() -> Record:
    """Begin a fresh record (the plugin calls this before each test)."""
    global _current
    _current = Record()
    return _current
