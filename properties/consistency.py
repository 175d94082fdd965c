"""Checks that keep the component records honest: each returns the problems it finds, one
sentence each (an empty list: none). tests/test_consistency.py runs them on the suite's own
records, specs, planted bugs and adapters; a backend author can run them on an adapter."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from backends.base import Backend
from properties.specs import Spec
from reference.component import Component
from reference.optimizers import OPTIMIZERS


def missing_specs(records: Mapping[str, Component], specs: Mapping[str, Spec]) -> list[str]:
    """Every record has a spec (a case to draw it) and every spec a record."""
    return [f"component {n!r} has no spec in properties.specs (how its inputs are drawn)"
            for n in sorted(set(records) - set(specs))] + \
        [f"spec {n!r} has no record in reference.registry" for n in sorted(set(specs) - set(records))]


def missing_planted(records: Mapping[str, Any], planted: Iterable[str]) -> list[str]:
    """Every record (component or architecture) has at least one planted-bug backend (its
    ``component``)."""
    have = set(planted)
    return [f"component {n!r} has no planted bug in tests/planted*.py" for n in sorted(records)
            if n not in have]


def _defines(cls: type, name: str) -> bool:
    return any(name in vars(c) for c in cls.__mro__ if c is not Backend and c is not object)


def missing_adapters(cls: type[Backend], records: Mapping[str, Component]) -> list[str]:
    """Every record is a method of the adapter or declared in its ``unsupported``."""
    return [f"{cls.__name__} neither implements {n!r} nor declares it in unsupported"
            for n in sorted(records) if not _defines(cls, n) and n not in cls.unsupported]


def default_mismatches(cls: type[Backend], records: Mapping[str, Component]) -> list[str]:
    """The adapter's parameters and defaults are the oracle's (same names, same order)."""
    problems = []
    for n, rec in sorted(records.items()):
        if not _defines(cls, n):
            continue
        want = [(p.name, p.default) for p in inspect.signature(rec.forward).parameters.values()]
        got = [(p.name, p.default) for p in
               inspect.signature(getattr(cls, n)).parameters.values() if p.name != "self"]
        if got != want:
            problems.append(f"{cls.__name__}.{n}{_sig(got)} differs from the oracle's "
                            f"{n}{_sig(want)}")
    return problems


def _sig(params: list[tuple[str, Any]]) -> str:
    return "(" + ", ".join(p if d is inspect.Parameter.empty else f"{p}={d!r}"
                           for p, d in params) + ")"


def convention_mismatches(cls: type[Backend], records: Mapping[str, Component]) -> list[str]:
    """A declared convention names an argument of the component, and, where the record lists
    the values the oracle accepts for it, only those values."""
    problems = []
    for n, declared in sorted(cls.conventions.items()):
        rec = records.get(n)
        if rec is None:
            continue  # an optimizer or an architecture: not a component record
        params = inspect.signature(rec.forward).parameters
        for arg, value in declared.items():
            values = value if isinstance(value, tuple) else (value,)
            if arg not in params:
                problems.append(f"{cls.__name__}.conventions[{n!r}] names {arg!r}, which is "
                                f"not an argument of {n}")
            elif arg in rec.conventions and not set(values) <= set(rec.conventions[arg]):
                problems.append(f"{cls.__name__}.conventions[{n!r}][{arg!r}] = {value!r}: the "
                                f"oracle accepts {rec.conventions[arg]}")
    return problems


def lacked_mismatches(cls: type[Backend], records: Mapping[str, Component]) -> list[str]:
    """A declared lacked argument is a (value, why) pair for an argument of a component, an
    optimizer or a family interface's method (early_stopping), neither one of the record's
    conventions nor declared in ``conventions`` too."""
    problems = []
    where = f"{cls.__name__}.lacks"
    for n, declared in sorted(cls.lacks.items()):
        target = records[n].forward if n in records else OPTIMIZERS.get(n)
        if target is None and callable(getattr(cls, n, None)):
            target = getattr(cls, n)
        if target is None:
            problems.append(f"{where} names {n!r}, which is neither a component, an optimizer "
                            "nor a method of the backend")
            continue
        params = inspect.signature(target).parameters
        for arg, entry in declared.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str)
                    and entry[1]):
                problems.append(f"{where}[{n!r}][{arg!r}] = {entry!r}: expected (the value it "
                                "is fixed to, why)")
            if arg not in params:
                problems.append(f"{where}[{n!r}] names {arg!r}, which is not an argument of {n}")
            elif n in records and arg in records[n].conventions:
                problems.append(f"{where}[{n!r}][{arg!r}]: {arg} is a convention of {n} (the "
                                f"oracle accepts {records[n].conventions[arg]}); declare it in "
                                "conventions")
            if arg in cls.conventions.get(n, {}):
                problems.append(f"{where}[{n!r}][{arg!r}] is declared in conventions too")
    return problems


def property_tests() -> set[str]:
    """The names of the property test functions in properties/."""
    names = set()
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if mod.name.startswith("test_"):
            module = importlib.import_module(f"properties.{mod.name}")
            names |= {n for n, f in vars(module).items() if n.startswith("test_") and callable(f)}
    return names


def unknown_divergences(cls: type[Backend], tests: set[str], components: set[str]) -> list[str]:
    """Every known divergence names a property test and a component that exist."""
    problems = []
    for d in cls.known_divergences:
        if d.test not in tests:
            problems.append(f"{cls.__name__}: known divergence names test {d.test!r}, which "
                            "does not exist")
        if d.component not in components:
            problems.append(f"{cls.__name__}: known divergence names component "
                            f"{d.component!r}, which does not exist")
    return problems
