"""The suite must catch bugs: every planted-bug backend fails in the component it breaks,
under the ci profile's examples (without shrinking). That the correct oracle backend passes
the same examples is the property run's business (``--backend numpy`` under the ci profile:
Hypothesis seeds both profiles from the test's source, so they draw the same examples)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.planted import PLANTED
from tests.planted_augment import AUGMENT_PLANTED
from tests.planted_cnn import CNN_PLANTED
from tests.planted_diffusion import DIFFUSION_PLANTED
from tests.planted_gan import GAN_PLANTED
from tests.planted_lm import LM_PLANTED
from tests.planted_practice import PRACTICE_PLANTED
from tests.planted_regularization import REGULARIZATION_PLANTED
from tests.planted_rnn import RNN_PLANTED
from tests.planted_sequence import SEQUENCE_PLANTED
from tests.planted_sizes import SIZE_PLANTED
from tests.planted_vae import VAE_PLANTED

ALL_PLANTED = (PLANTED + CNN_PLANTED + RNN_PLANTED + SIZE_PLANTED + LM_PLANTED
               + SEQUENCE_PLANTED + GAN_PLANTED + VAE_PLANTED + DIFFUSION_PLANTED
               + REGULARIZATION_PLANTED + PRACTICE_PLANTED + AUGMENT_PLANTED)
#: errors that say the planted backend's own code is broken, not the component it models
PROGRAMMING_ERRORS = r"\b(RecursionError|TypeError|AttributeError|NameError)\b"

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")  # session: a worker may interleave other modules
def planted_run(tmp_path_factory) -> dict[str, dict]:
    """One property-suite run over every planted backend (its failures are not replayed in a
    fresh process: only whether a property fails matters here)."""
    out = tmp_path_factory.mktemp("planted-reports")
    specs = [f"{cls.__module__}:{cls.__name__}" for cls in ALL_PLANTED]
    # each planted backend runs the tests of the component it breaks (their ids carry the
    # component's name)
    def tests_of(component: str) -> str:
        # a component's tests end their id with it ("...-float64-adam]") or carry it in their
        # name ("test_max_pool2d_tie_convention")
        return f"(-{component}] or test_{component})"

    only = " or ".join(f"({cls.name}-cpu and {tests_of(cls.component)})" for cls in ALL_PLANTED)
    # an architecture's training runs with SGD only: the other optimizers train the same
    # networks (their own bugs are planted in the optimizers, and caught there)
    only = f"({only}) and not (test_network_training and not -sgd-)"
    cmd = [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider",
           "--hypothesis-profile", "planted", "--backend", ",".join(specs), "--certify",
           "--report-dir", str(out), "-k", only, "--replay-failures", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    reports = {rep["id"]: rep for rep in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    assert reports, f"the planted run wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return reports


@pytest.mark.parametrize("cls", ALL_PLANTED, ids=lambda c: c.name)
def test_planted_bug_is_caught(planted_run, cls):
    rep = planted_run[f"{cls.name}-cpu"]
    failed = [r for r in rep["results"] if r["outcome"] == "failed"]
    where = sorted({r["component"] for r in failed})
    assert cls.component in where, (
        f"{cls.name} ({cls.__doc__.strip()}) was not caught in {cls.component!r}; "
        f"failures were in {where}")
    for r in failed:
        assert r["counterexample"] and r["reproduce"], f"{r['nodeid']} lacks a reproduction"
    # caught by a property, or by the backend refusing a valid input as the bug makes it do;
    # never only by a programming error in the planted backend itself
    assert any(not re.search(PROGRAMMING_ERRORS, r["counterexample"])
               for r in failed if r["component"] == cls.component), (
        f"{cls.name} failed in {cls.component!r} only by a programming error: "
        f"{[r['counterexample'][:300] for r in failed]}")
