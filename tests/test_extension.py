"""Adding a component from outside the tree takes its oracle function with a record, a case
and one method per adapter (tests/extension/mish.py): the properties then check it on every
backend, and the consistency checks see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from properties import report as certificate
from tests.optional import need

ROOT = Path(__file__).resolve().parent.parent


def test_mish_registered_from_outside_is_certified(tmp_path):
    need("torch", reason="the mish extension adapts torch")
    need("jax", reason="the mish extension adapts jax")
    backends = "numpy,tests.extension.mish:TorchMish,tests.extension.mish:JaxMish"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q",
         "-p", "no:cacheprovider", "-p", "tests.extension.mish", "--hypothesis-profile", "ci",
         "--backend", backends, "-k", "mish and (float32 or float64)", "--certify",
         "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for report in ("numpy-cpu", "torch-extended-cpu", "jax-extended-cpu"):
        rows = certificate.load(tmp_path, report)["results"]
        got = {(r["test"], r["dtype"]): r["outcome"] for r in rows if r["component"] == "mish"}
        # two dtypes (the oracle has one): the mechanism, not mish's accuracy in each dtype,
        # is what this checks
        dtypes = ("float64",) if report == "numpy-cpu" else ("float32", "float64")
        assert set(got) == {(t, d) for t in ("test_forward", "test_vjp") for d in dtypes}, \
            (report, got)
        assert set(got.values()) == {"passed"}, (report, got)
