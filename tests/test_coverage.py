"""Configuration classes (properties/coverage.py): a class-stratified draw, forcing, and a ci
certification whose every property exercised every class it declares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from properties import coverage
from properties.record import start_record
from properties.specs import SPECS

ROOT = Path(__file__).resolve().parent.parent


def test_stratum_draws_declared_classes_and_forcing_overrides():
    classes = ("a", "b", "c")
    seen = set()

    @settings(max_examples=50, database=None)
    @given(data=st.data())
    def draw(data):
        seen.add(coverage.stratum(data, "dim", classes))

    draw()
    assert seen == set(classes)
    record = start_record()
    with coverage.forcing("dim", "c"):
        assert coverage.stratum(None, "dim", classes) == "c"  # draws nothing
    assert record.draws == [("dim (forced)", "'c'")]


def test_missing_lists_declared_classes_never_seen():
    declared = {"padding": ("valid", "same_odd"), "sizes": coverage.SIZES}
    seen = {("padding", "valid"): 3, ("sizes", "small"): 2, ("sizes", "realistic"): 0}
    assert coverage.missing(declared, seen) == [("padding", "same_odd"), ("sizes", "realistic")]


def test_ci_certificate_exercises_every_declared_class(tmp_path):
    """The numpy backend, under ci, over the components with the most classes: each property
    lists every class its spec declares, none left out."""
    names = ("conv2d", "conv1d", "max_pool2d", "avg_pool2d", "cross_entropy", "batch_norm",
             "softplus", "bce_with_logits")
    only = "(" + " or ".join(f"-{n}]" for n in names) + ")"
    cmd = [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
           "no:cacheprovider", "--hypothesis-profile", "ci", "--backend", "numpy", "--certify",
           "--report-dir", str(tmp_path), "-k", only]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = json.loads(next(tmp_path.glob("numpy-cpu*.json")).read_text())
    rows = [r for r in rep["results"] if r["component"] in names]
    assert len(rows) >= 2 * len(names)
    for r in rows:
        spec = SPECS[r["component"]]
        declared = spec.tail_classes if r["test"] == "test_forward_tail" else spec.classes
        seen = {(d, c) for d, c, n in r["classes"] if n > 0}
        assert not r["class_gaps"], (r["nodeid"], r["class_gaps"])
        assert not coverage.missing(declared, dict.fromkeys(seen, 1)), (r["nodeid"], seen)
