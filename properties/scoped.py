"""Known divergences scoped to some examples, judged per example at run time.

A property test says what its example's arguments are with ``note_arguments`` (the keyword
arguments of the component, the optimizer's hyperparameters). For a test that a scoped
``KnownDivergence`` matches, the plugin runs each example through ``ScopedRun.call``: an
example whose arguments lie in a divergence's scope and that fails is counted as that
divergence observed and passes on; an example outside every scope is checked as usual, so a
failure there fails the test. An example whose test noted no arguments is outside every scope:
the component properties note theirs (properties.checks.draw_inputs), test_trajectory its
hyperparameters; the MLP and CNN properties note none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis.errors import HypothesisException

from backends.base import KnownDivergence

_args: dict[str, Any] | None = None


def note_arguments(args: Mapping[str, Any]) -> None:
    """The arguments of the example under test, on which scoped known divergences are judged."""
    global _args
    _args = dict(args)


def noted_arguments() -> dict[str, Any] | None:
    return _args


def add_arguments(**args: Any) -> None:
    """Add ``args`` to the example's noted arguments (a test's own parameters, such as its
    optimizer, beside those its case noted)."""
    note_arguments({**(_args or {}), **args})


@dataclass
class ScopedRun:
    """The scoped divergences of one test and what its examples showed: per divergence, the
    examples in its scope and those of them that failed."""

    divergences: tuple[KnownDivergence, ...]
    in_scope: Counter[int] = field(default_factory=Counter)
    diverged: Counter[int] = field(default_factory=Counter)

    def _scope_of(self, args: dict[str, Any] | None) -> int | None:
        if args is None:
            return None
        return next((i for i, kd in enumerate(self.divergences) if kd.in_scope(args)), None)

    def call(self, inner: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one example: a failure in a divergence's scope is counted, not raised.
        Hypothesis' own exceptions (a rejected example, ...) pass through."""
        global _args
        _args = None
        try:
            result = inner(*args, **kwargs)
        except HypothesisException:
            raise
        except Exception:
            i = self._scope_of(_args)
            if i is None:
                raise
            self.in_scope[i] += 1
            self.diverged[i] += 1
            return None
        i = self._scope_of(_args)
        if i is not None:
            self.in_scope[i] += 1
        return result

    @property
    def observed(self) -> int:
        return sum(self.diverged.values())

    def summary(self, examples: int) -> str:
        """'known divergence observed in k of n examples (scope ...: m in scope); ...'."""
        parts = []
        for i, kd in enumerate(self.divergences):
            upstream = f" ({kd.upstream})" if kd.upstream else ""
            parts.append(f"known divergence observed in {self.diverged[i]} of {examples} "
                         f"examples ({self.in_scope[i]} in its scope, {kd.describe_scope()}; "
                         f"every example outside it passed): {kd.reason}{upstream}")
        return "; ".join(parts)

    def properties(self) -> list[tuple[str, Any]]:
        """The counts, as the test's user properties (the report reads them)."""
        return [("scoped_divergence", "; ".join(kd.describe_scope() for kd in self.divergences)),
                ("in_scope_examples", sum(self.in_scope.values())),
                ("divergent_examples", self.observed)]
