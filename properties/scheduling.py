"""Which tests run together: parametrizations of one property that differ only in a
parameter drawn after the expensive part (the optimizer of a training test, drawn after its
network and batches) draw the same networks under a derandomised profile, so a compiling
backend (JAX) compiles each network once for all of them, if they run consecutively in one
process. Every run orders them next to each other; --dist loadgroup sends each such scope to
one worker (DrawScopeScheduling). Only speed depends on this, never a result."""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadGroupScheduling

from properties.optimizer_cases import HYPERS

#: test modules whose tests are one unit of work under --dist loadgroup: they share one
#: expensive session fixture (a certification in a subprocess), which would otherwise run
#: once per worker. xdist's own ``xdist_group`` mark works by renaming node ids, which pytest
#: 9.2 no longer allows (Item.nodeid became read-only; pytest-dev/pytest-xdist#1386), so the
#: groups are named here.
MODULE_GROUPS: frozenset[str] = frozenset({
    "tests/test_flaky.py", "tests/test_planted_bugs.py", "tests/test_survival.py"})

#: test name -> the values of its parameter that does not change the drawn network
SHARED_DRAWS: dict[str, frozenset[str]] = {"test_network_training": frozenset(HYPERS)}


def draw_scope(nodeid: str) -> str | None:
    """The nodeid without the parameter value that does not change its draws, for a test of
    SHARED_DRAWS ('...test_network_training[jax-cpu-float64-resnet]'); None for others."""
    path, _, rest = nodeid.partition("::")
    name, _, params = rest.partition("[")
    values = SHARED_DRAWS.get(name)
    if values is None or not params.endswith("]"):
        return None
    parts = params[:-1].split("-")
    found = [i for i, p in enumerate(parts) if p in values]
    if not found:
        return None
    del parts[found[-1]]  # the last: a backend's id may contain an optimizer's name too
    return f"{path}::{name}[{'-'.join(parts)}]"


def order(items: list[pytest.Item]) -> None:
    """Move the tests of one draw scope next to the first of them (otherwise stable)."""
    scopes: dict[str, list[pytest.Item]] = {}
    keyed = []
    for item in items:
        scope = draw_scope(item.nodeid)
        if scope is None:
            keyed.append([item])
        elif scope in scopes:
            scopes[scope].append(item)
        else:
            scopes[scope] = [item]
            keyed.append(scopes[scope])
    items[:] = [item for group in keyed for item in group]


def unit(nodeid: str) -> str:
    """The unit of work of a test under --dist loadgroup: its module for a module of
    MODULE_GROUPS, its draw scope for a test of SHARED_DRAWS, itself otherwise."""
    path = nodeid.partition("::")[0]
    if path in MODULE_GROUPS:
        return path
    return draw_scope(nodeid) or nodeid


class DrawScopeScheduling(LoadGroupScheduling):
    """xdist's loadgroup scheduling (an xdist_group is one unit of work), where the modules
    of MODULE_GROUPS and the tests of one draw scope are one unit too. Like every scope
    scheduler of xdist, it hands a test whose worker crashed to the next worker again: a
    certification refuses it (plugin)."""

    def _split_scope(self, nodeid: str) -> str:
        group = super()._split_scope(nodeid)
        return group if group != nodeid else unit(nodeid)


def make_scheduler(config: pytest.Config, log: Any) -> DrawScopeScheduling | None:
    """The scheduler for --dist loadgroup (the README's test command). Under --dist load
    (xdist's default with -n, and a certification's) the draw scopes stay together as far
    as xdist sends consecutive tests to one worker (order)."""
    if config.getvalue("dist") == "loadgroup":
        return DrawScopeScheduling(config, log)
    return None
