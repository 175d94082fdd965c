"""The convention matrix: docs/convention-matrix.md, generated from declarations.

For every convention the oracle knows (a record's ``conventions`` in reference.registry, the
optimizers' conventions, OPTIMIZER_CONVENTIONS, and the sequence layers' and clipping's,
backends.recurrent.CONVENTIONS) the values it accepts, its default and the
value each in-tree backend declares (``Backend.conventions``); then the arguments a backend
fixes that are not conventions, the arguments it lacks (``Backend.lacks``), the components it
declares unsupported and every known divergence (``Backend.known_divergences``, most read
from backends/divergences/*.toml) with its evidence. The output is sorted and has no
timestamp, so tests/test_docs.py can hold the committed page to it.

    python -m properties.matrix            # rewrite docs/convention-matrix.md
    python -m properties.matrix --check    # exit 1 if the committed page is stale
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from backends.base import Backend, BackendUnavailable, KnownDivergence
from backends.divergences import load as load_divergences
from backends.loader import BUILTIN, resolve
from backends.recurrent import CONVENTIONS as SEQUENCE_CONVENTIONS
from backends.recurrent import ORACLE as SEQUENCE_ORACLE
from reference import optimizers as O
from reference import registry

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "convention-matrix.md"
BACKENDS = ("numpy", "torch", "jax", "torch-compile", "jax-jit")

_BOOL = (False, True)
_AMSGRAD = (None, "torch", "optax")
#: optimizer -> {convention argument: the values the oracle accepts} (reference/optimizers.py,
#: module doc); defaults come from the functions' signatures.
OPTIMIZER_CONVENTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "sgd": {"dampen_first_step": _BOOL, "weight_decay_mode": O.WEIGHT_DECAY_MODES},
    "adam": {"amsgrad": _AMSGRAD, "eps_placement": O.EPS_PLACEMENTS,
             "weight_decay_mode": O.WEIGHT_DECAY_MODES},
    "adamw": {"amsgrad": _AMSGRAD, "eps_placement": O.EPS_PLACEMENTS},
    "rmsprop": {"eps_in_sqrt": _BOOL, "weight_decay_mode": O.WEIGHT_DECAY_MODES},
    "adagrad": {"eps_in_sqrt": _BOOL, "weight_decay_mode": O.WEIGHT_DECAY_MODES},
}
#: "<project>#<n>" upstream references -> GitHub repository
UPSTREAM_REPOS = {"pytorch": "pytorch/pytorch", "jax": "jax-ml/jax", "flax": "google/flax",
                  "optax": "google-deepmind/optax", "keras": "keras-team/keras"}
_REPRO = re.compile(r"tests/repro/[\w/-]+\.py")


def oracle_conventions() -> dict[tuple[str, str], tuple[tuple[Any, ...], Any]]:
    """(component or optimizer, argument) -> (the values the oracle accepts, its default)."""
    out = {}
    for name, rec in registry.RECORDS.items():
        defaults = rec.defaults()
        for arg, values in rec.conventions.items():
            out[(name, arg)] = (tuple(values), defaults.get(arg))
    for name, args in OPTIMIZER_CONVENTIONS.items():
        params = inspect.signature(O.OPTIMIZERS[name]).parameters
        for arg, values in args.items():
            out[(name, arg)] = (values, params[arg].default)
    for name, args in SEQUENCE_CONVENTIONS.items():  # sequence layers and clipping
        params = inspect.signature(SEQUENCE_ORACLE[name][0]).parameters
        for arg, values in args.items():
            out[(name, arg)] = (tuple(values), params[arg].default)
    return out


def load_backends(names: Sequence[str] = BACKENDS) -> tuple[dict[str, type[Backend]], dict[str, str]]:
    """({name: Backend class}, {name: why it is unavailable}) for backend short names."""
    classes, unavailable = {}, {}
    for name in names:
        try:
            classes[name] = resolve(name)
        except BackendUnavailable as exc:
            unavailable[name] = str(exc)
    return classes, unavailable


_ABSENT = object()


def _code(value: Any) -> str:
    return f"`{value!r}`"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _declared(value: Any) -> str:
    if value is _ABSENT:
        return "—"
    if isinstance(value, tuple):
        return "any of " + ", ".join(_code(v) for v in value)
    return _code(value)


def _owner(name: str) -> str:
    return f"{name} (optimizer)" if name in O.OPTIMIZERS and name not in registry.RECORDS else name


def _order(key: tuple[str, str]) -> tuple[bool, str, str]:
    return (key[0] in O.OPTIMIZERS and key[0] not in registry.RECORDS, key[0], key[1])


def upstream_link(upstream: str | None) -> str:
    """An upstream reference as markdown: 'pytorch#123' links its GitHub issue."""
    if not upstream:
        return "none recorded"
    m = re.fullmatch(r"([A-Za-z]+)#(\d+)", upstream)
    if m and m.group(1).lower() in UPSTREAM_REPOS:
        return f"[{upstream}](https://github.com/{UPSTREAM_REPOS[m.group(1).lower()]}/issues/{m.group(2)})"
    if upstream.startswith(("http://", "https://")):
        return f"<{upstream}>"
    return f"`{upstream}`"


def _conventions(classes: Mapping[str, type[Backend]]) -> list[str]:
    known = oracle_conventions()
    names = list(classes)
    head = ["| component | argument | oracle accepts | oracle default | " + " | ".join(names) + " |",
            "|---|---|---|---|" + "---|" * len(names)]
    rows = [f"| {_owner(c)} | {a} | {', '.join(_code(v) for v in known[(c, a)][0])} | "
            f"{_code(known[(c, a)][1])} | "
            + " | ".join(_declared(classes[n].conventions.get(c, {}).get(a, _ABSENT)) for n in names)
            + " |" for c, a in sorted(known, key=_order)]
    other = sorted({(c, a) for cls in classes.values() for c, args in cls.conventions.items()
                    for a in args} - set(known), key=_order)
    out = ["## Conventions", "",
           "Where frameworks legitimately differ, the oracle takes the convention as an argument. "
           "A cell is what the backend declares in `Backend.conventions`: one value (every "
           "example passes it) or *any of* several (the properties draw among them); — is "
           "not declared: the property draws that argument as for any backend (every value its "
           "case draws, or none, the oracle's default).", "", *head, *rows, ""]
    out += ["## Other arguments a backend fixes", "",
            "Declared in `Backend.conventions` for an argument that is not one of the oracle's "
            "conventions: the properties pass only these values.", ""]
    if not other:
        return out + ["None.", ""]
    out += ["| component | argument | oracle default | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names)]
    for c, a in other:
        out.append(f"| {_owner(c)} | {a} | {_code(_default(c, a))} | "
                   + " | ".join(_declared(classes[n].conventions.get(c, {}).get(a, _ABSENT))
                                for n in names) + " |")
    return out + [""]


def _default(name: str, arg: str) -> Any:
    target = registry.RECORDS[name].forward if name in registry.RECORDS else O.OPTIMIZERS.get(name)
    if target is None and name in SEQUENCE_ORACLE:
        target = SEQUENCE_ORACLE[name][0]
    if target is None:
        return None
    param = inspect.signature(target).parameters.get(arg)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _lacks(classes: Mapping[str, type[Backend]]) -> list[str]:
    """Each backend's lacked arguments, but those of the backend it derives from."""
    def inherited(n: str, c: str, a: str) -> bool:
        base = base_backend(n, classes)
        return base is not None and classes[base].lacks.get(c, {}).get(a) == classes[n].lacks[c][a]
    rows = [f"| {n} | {_owner(c)} | {a} | {_code(value)} | {_cell(why)} |"
            for n, cls in sorted(classes.items()) for c, args in sorted(cls.lacks.items())
            for a, (value, why) in sorted(args.items()) if not inherited(n, c, a)]
    return _table_section(
        "Arguments a backend lacks",
        "`Backend.lacks`: the framework has no such argument, so the properties pass the fixed "
        "value in place of the drawn one (nothing is set aside), and the certificate counts the "
        "drawn values this excluded. A backend derived from another (torch-compile, jax-jit) "
        "lacks what its base lacks; listed are only the arguments it adds.",
        ("backend", "component", "argument", "fixed to", "why"), rows, "None.")


def _unsupported(classes: Mapping[str, type[Backend]]) -> list[str]:
    rows = [f"| {n} | {c} | {_cell(why)} |" for n, cls in sorted(classes.items())
            for c, why in sorted(cls.unsupported.items())]
    return _table_section(
        "Components a backend declares unsupported",
        "`Backend.unsupported`: reported *unsupported*, never failed.",
        ("backend", "component", "why"), rows,
        "None: every in-tree backend implements every registered component.")


def _table_section(title: str, intro: str, header: tuple[str, ...], rows: list[str],
                   empty: str) -> list[str]:
    """A '## title' section: the intro, then the table of ``rows``, or ``empty`` without."""
    out = [f"## {title}", "", intro, ""]
    if not rows:
        return out + [empty, ""]
    return out + ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows, ""]


def _sources(name: str, cls: type[Backend]) -> dict[KnownDivergence, str]:
    """Each known divergence of ``cls`` -> where it is declared."""
    code = f"code: `{cls.__module__}.{cls.__qualname__}.known_divergences`"
    data = name.replace("-", "_")
    toml = resources.files("backends.divergences").joinpath(f"{data}.toml")
    from_toml = set(load_divergences(data)) if toml.is_file() else set()
    path = f"backends/divergences/{data}.toml"
    return {kd: f"[{path}](../{path})" if kd in from_toml else code for kd in cls.known_divergences}


def base_backend(name: str, classes: Mapping[str, type[Backend]]) -> str | None:
    """The listed backend whose class ``name``'s derives from most closely (torch-compile:
    torch), or None."""
    mro = classes[name].__mro__[1:]
    bases = [(mro.index(cls), n) for n, cls in classes.items() if n != name and cls in mro]
    return min(bases)[1] if bases else None


def _divergences(classes: Mapping[str, type[Backend]]) -> list[str]:
    groups: dict[tuple, list[str]] = {}
    inherits = []
    for n, cls in sorted(classes.items()):
        where = _sources(n, cls)
        base = base_backend(n, classes)
        inherited = set(classes[base].known_divergences) if base else set()
        if base:
            inherits.append(f"{n} has every known divergence of {base}, whose adapter it "
                            "derives from; listed under its name are only those it adds.")
        for kd in cls.known_divergences:
            if kd in inherited:
                continue
            key = (n, kd.component, kd.reason, kd.upstream, kd.dtypes,
                   kd.describe_scope() if kd.scoped else "every example", where[kd])
            groups.setdefault(key, []).append(kd.test)
    entries = sorted(((key, sorted(tests)) for key, tests in groups.items()),
                     key=lambda e: (e[0][0], e[0][1], e[1], e[0][2]))
    out = ["## Known divergences", "",
           "`Backend.known_divergences`: real, documented differences between a framework and "
           "the oracle. An unscoped one makes its tests expected failures, reported by name; a "
           "scoped one is judged per example, on the example's arguments.", ""]
    out += [" ".join(inherits), ""] if inherits else []
    if not entries:
        return out + ["None.", ""]
    out += ["| backend | component | tests | dtypes | scope | upstream |", "|---|---|---|---|---|---|"]
    out += [f"| {n} | {c} | {', '.join(tests)} | {', '.join(d) if d else 'all'} | {_cell(s)} | "
            f"{upstream_link(u)} |" for (n, c, _r, u, d, s, _w), tests in entries]
    out.append("")
    for (n, c, reason, u, d, s, where), tests in entries:
        repro = sorted(set(_REPRO.findall(reason)))
        out += [f"### {n}: {c}, {', '.join(tests)}", "",
                f"- dtypes: {', '.join(d) if d else 'all'}", f"- scope: {s}",
                f"- upstream: {upstream_link(u)}",
                "- reproduction: " + (", ".join(f"[{p}](../{p})" for p in repro) or "none"),
                f"- declared in {where}", "", reason, ""]
    return out


def render(classes: Mapping[str, type[Backend]], unavailable: Mapping[str, str] | None = None) -> str:
    """The page for these backend classes (short name -> class), in this column order."""
    out = ["# Convention matrix", "",
           "Generated by `python -m properties.matrix` from the oracle's records and the in-tree "
           "backends' declarations; do not edit it by hand (`tests/test_docs.py` fails when it "
           "is stale). What each convention means and why frameworks differ: "
           "[CONVENTIONS.md](CONVENTIONS.md); how a backend declares them: "
           "[Plug in a new backend](../README.md#plug-in-a-new-backend).", "",
           "| backend | class | dtypes |", "|---|---|---|"]
    out += [f"| {n} | `{cls.__module__}.{cls.__qualname__}` | {', '.join(cls.dtypes)} |"
            for n, cls in classes.items()]
    out.append("")
    for n, why in sorted((unavailable or {}).items()):
        out += [f"Skipped {n} ({BUILTIN.get(n, n)}): {_cell(why)}", ""]
    out += [*_conventions(classes), *_lacks(classes), *_unsupported(classes), *_divergences(classes)]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or, with --check, compare) the page; 1 when --check finds it stale."""
    parser = argparse.ArgumentParser(prog="python -m properties.matrix", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=PAGE, help=f"default {PAGE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    classes, unavailable = load_backends()
    for n, why in unavailable.items():
        print(f"skipping {n}: {why}", file=sys.stderr)
    text = render(classes, unavailable)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m properties.matrix", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
