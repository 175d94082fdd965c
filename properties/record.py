"""What one property test recorded: comparisons, worst margin, examples, examples set aside.

The plugin starts a fresh record before each test; the tolerance policy adds every comparison
to it; the report reads it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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

    def add(self, c: Comparison) -> None:
        self.comparisons += 1
        self.worst_margin = max(self.worst_margin, c.margin)


_current = Record()


def current_record() -> Record:
    return _current


def start_record() -> Record:
    """Begin a fresh record (the plugin calls this before each test)."""
    global _current
    _current = Record()
    return _current
