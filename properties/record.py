"""What one property test recorded: comparisons, worst margin, examples, examples set aside,
and the drawn values an argument the backend lacks replaced.

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
    """Comparisons and examples of one test (the report reads it)."""

    examples: int = 0
    worst_margin: float = 0.0
    comparisons: int = 0
    notes: list[str] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)  # examples set aside, by reason
    #: (component, argument, drawn value as text, or None where the draw was the fixed value)
    #: -> examples, for each argument the backend lacks (Backend.lacks)
    lacked: Counter[tuple[str, str, str | None]] = field(default_factory=Counter)

    def add(self, c: Comparison) -> None:
        self.comparisons += 1
        self.worst_margin = max(self.worst_margin, c.margin)

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
