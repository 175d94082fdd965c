"""The docs a clone has stay true: the convention matrix is what properties.matrix generates
from the backends' declarations now, every relative link in the README and docs/ resolves
inside the repository (no ../shared), and every repository path they name exists."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import numpy as np
import pytest

from backends.base import KnownDivergence
from backends.numpy_backend import NumpyBackend
from properties import matrix
from reference import optimizers as O

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md",
               *(ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_SPAN = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: folders whose paths the docs name as files of the repository (reports/ holds outputs: a
#: certificate the README shows being written need not be committed)
_TOP = ("reference", "backends", "properties", "tests", "benchmarks", "docs", ".ci")


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans."""
    return _SPAN.sub("", _FENCE.sub("", text))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a markdown file."""
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """Every relative link of ``path`` that leaves the repository, names a missing file or a
    missing heading."""
    problems = []
    for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        where = f"{path.relative_to(ROOT)}: ({target})"
        if "shared" in Path(file).parts or not dest.is_relative_to(ROOT):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{where}: {dest.relative_to(ROOT)} has no heading #{anchor}")
    return problems


def missing_paths(path: Path) -> list[str]:
    """Repository paths named in code spans (`reference/network.py`) that do not exist;
    patterns (<name>, *) and paths outside the folders of _TOP are not checked."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    problems = []
    for span in _SPAN.findall(text):
        name = span.strip("`").split("::")[0].rstrip("/")
        if (re.fullmatch(r"[\w.\-/]+", name) and "/" in name and name.split("/")[0] in _TOP
                and not (ROOT / name).exists()):
            problems.append(f"{path.relative_to(ROOT)}: {span} does not exist")
    return problems


def test_convention_matrix_is_current():
    classes, unavailable = matrix.load_backends()
    if unavailable:
        why = "; ".join(f"{n}: {w}" for n, w in sorted(unavailable.items()))
        if os.environ.get("TOUCHSTONE_REQUIRE_BACKENDS", "") not in ("", "0"):
            pytest.fail(f"the convention matrix needs every in-tree backend: {why}")
        pytest.skip(f"the convention matrix needs every in-tree backend: {why}")
    committed = matrix.PAGE.read_text(encoding="utf-8") if matrix.PAGE.exists() else ""
    assert matrix.render(classes, unavailable) == committed, \
        "docs/convention-matrix.md is stale: run python -m properties.matrix"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_in_the_repository(path):
    assert "../shared" not in path.read_text(encoding="utf-8")
    assert broken_links(path) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_repository_paths_exist(path):
    assert missing_paths(path) == []


def test_the_link_and_path_checks_have_teeth(tmp_path, monkeypatch):
    """A link to ../shared, to a missing file or heading, and a stale path are each named."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "A.md").write_text("# Title\n\n## Known divergences\n")
    page = tmp_path / "README.md"
    page.write_text("[a](docs/A.md#known-divergences) [b](../shared/DESIGN.md) [c](docs/B.md)\n"
                    "[d](docs/A.md#nowhere) [e](https://example.org/x) `[f](docs/B.md)`\n"
                    "`docs/A.md` `docs/gone.py` `reports/<id>.md`\n")
    problems = broken_links(page)
    assert [p.split(": (")[1].split(")")[0] for p in problems] == [
        "../shared/DESIGN.md", "docs/B.md", "docs/A.md#nowhere"]
    assert missing_paths(page) == ["README.md: `docs/gone.py` does not exist"]


class _Declaring(NumpyBackend):
    """A numpy backend that declares one of everything the matrix shows."""

    name = "declaring"
    conventions = {"max_pool2d": {"ties": "split"}, "adam": {"amsgrad": ("torch", "optax")},
                   "softplus": {"threshold": 20.0}}
    lacks = {"sgd": {"dampening": (0.0, "no dampening here")}}
    unsupported = {"var_mean": "no var_mean here"}
    known_divergences = (KnownDivergence("test_vjp", "gelu", "a reason | with a pipe",
                                         "pytorch#1", ("float64",), (("approximate", "==", "tanh"),)),
                         KnownDivergence("test_forward", "gelu", "a reason | with a pipe",
                                         "pytorch#1", ("float64",), (("approximate", "==", "tanh"),)))


def test_the_matrix_renders_the_declarations():
    page = matrix.render({"numpy": NumpyBackend, "declaring": _Declaring})
    assert page == matrix.render({"numpy": NumpyBackend, "declaring": _Declaring})
    lines = page.splitlines()
    assert "| max_pool2d | ties | `'first'`, `'split'` | `'first'` | — | `'split'` |" in lines
    assert ("| adam (optimizer) | amsgrad | `None`, `'torch'`, `'optax'` | `None` | any of `None`, "
            "`'torch'`, `'optax'` | any of `'torch'`, `'optax'` |") in lines
    assert "| softplus | threshold | `None` | — | `20.0` |" in lines
    assert "| declaring | sgd (optimizer) | dampening | `0.0` | no dampening here |" in lines
    assert "| declaring | var_mean | no var_mean here |" in lines
    # the two divergences share their evidence: one entry naming both tests, its pipe escaped
    assert ("| declaring | gelu | test_forward, test_vjp | float64 | approximate == 'tanh' | "
            "[pytorch#1](https://github.com/pytorch/pytorch/issues/1) |") in lines
    assert "### declaring: gelu, test_forward, test_vjp" in lines
    assert "- declared in code: `tests.test_docs._Declaring.known_divergences`" in lines


def test_optimizer_conventions_are_the_oracles():
    """Every value OPTIMIZER_CONVENTIONS lists is one the oracle accepts, a string convention
    rejects any other, and every optimizer argument with a non-numeric default is listed (or
    is a feature both frameworks share)."""
    features = {"nesterov", "centered"}
    params, grads = [np.ones(3)], [np.full(3, 0.5)]
    for name, args in matrix.OPTIMIZER_CONVENTIONS.items():
        for arg, values in args.items():
            assert f"``{arg}``" in O.__doc__, f"{name} {arg} is not a convention of the module doc"
            for v in values:
                opt = O.make_optimizer(name, lr=0.1, **{arg: v})
                opt.update(grads, opt.init(params), params)
            if all(isinstance(v, str) or v is None for v in values):
                with pytest.raises(ValueError, match=arg):
                    O.make_optimizer(name, lr=0.1, **{arg: "no-such-convention"})
    for name, fn in O.OPTIMIZERS.items():
        for arg, p in inspect.signature(fn).parameters.items():
            if not isinstance(p.default, (int, float)) or isinstance(p.default, bool):
                if p.default is not inspect.Parameter.empty and arg not in features:
                    assert arg in matrix.OPTIMIZER_CONVENTIONS.get(name, {}), (name, arg)
