"""Known divergences as data: one TOML file per adapter (torch.toml, jax.toml) beside this
module, read into the KnownDivergence tuples the adapters declare.

A file has an optional ``[texts]`` table of prose shared by several entries, written
``{name}`` inside a reason, and one ``[[divergence]]`` table per entry:

    [[divergence]]
    tests = ["test_forward", "test_vjp"]    # one KnownDivergence per test
    component = "gelu"
    reason = "{gelu} Outside the tolerance from x = -3."
    upstream = "pytorch#187806"              # optional
    dtypes = ["float32", "float64"]          # optional: every dtype
    scope = [["eps", ">=", 1e-3]]            # optional: [argument, operator, value] conditions,
                                             # or the name of a predicate in predicates.py
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Any

from backends.base import KnownDivergence
from backends.divergences.predicates import PREDICATES

_KEYS = {"tests", "component", "reason", "upstream", "dtypes", "scope", "scope_text"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load(backend: str) -> tuple[KnownDivergence, ...]:
    """The known divergences of ``backend`` from <backend>.toml shipped in this package."""
    text = resources.files(__name__).joinpath(f"{backend}.toml").read_text(encoding="utf-8")
    return from_toml(text, f"{backend}.toml")


def from_toml(text: str, source: str = "<toml>") -> tuple[KnownDivergence, ...]:
    """KnownDivergence entries from TOML text in the format of the module doc; any problem is
    a ValueError naming ``source`` and the entry."""
    data = tomllib.loads(text)
    unknown = set(data) - {"texts", "divergence"}
    if unknown:
        raise ValueError(f"{source}: unknown tables {sorted(unknown)} (expected texts, divergence)")
    texts: dict[str, str] = data.get("texts", {})
    out: list[KnownDivergence] = []
    for n, entry in enumerate(data.get("divergence", []), start=1):
        where = f"{source}: divergence {n}"
        extra = set(entry) - _KEYS
        missing = {"tests", "component", "reason"} - set(entry)
        if extra or missing:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}, missing {sorted(missing)}")
        reason = _PLACEHOLDER.sub(lambda m, w=where: _text(texts, m.group(1), w), entry["reason"])
        out += [_divergence(test, entry, reason, where) for test in entry["tests"]]
    return tuple(out)


def _text(texts: dict[str, str], name: str, where: str) -> str:
    if name not in texts:
        raise ValueError(f"{where}: reason names {{{name}}}, which [texts] lacks")
    return texts[name]


def _divergence(test: str, entry: dict[str, Any], reason: str, where: str) -> KnownDivergence:
    dtypes = entry.get("dtypes")
    scope, scope_text = entry.get("scope"), entry.get("scope_text")
    if isinstance(scope, str):
        if scope not in PREDICATES:
            raise ValueError(f"{where}: scope names {scope!r}, not a predicate of "
                             f"backends/divergences/predicates.py ({sorted(PREDICATES)})")
        scope, scope_text = PREDICATES[scope], scope_text or _first_line(PREDICATES[scope])
    return KnownDivergence(test, entry["component"], reason, entry.get("upstream"),
                           tuple(dtypes) if dtypes is not None else None, scope, scope_text)


def _first_line(fn: Any) -> str:
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0]
