"""The plug-in contract: loading backends, and one broken component never stops a run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backends import (
    Backend,
    BackendUnavailable,
    Unsupported,
    UnsupportedComponent,
    harness,
    load_backend,
    loader,
    resolve,
)
from backends.numpy_backend import NumpyBackend
from properties import report

ROOT = Path(__file__).resolve().parent.parent


def test_short_names_and_paths_resolve():
    assert resolve("numpy") is NumpyBackend
    assert resolve("backends.numpy_backend:NumpyBackend") is NumpyBackend
    assert load_backend("numpy").id == "numpy-cpu"


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown 'nope'"):
        resolve("nope")


def test_missing_module_is_unavailable_not_a_crash():
    with pytest.raises(BackendUnavailable, match="cannot import"):
        resolve("no_such_module_xyz:Thing")


def test_non_backend_class_is_rejected():
    with pytest.raises(ValueError, match="not a touchstone Backend"):
        resolve("numpy:ndarray")


def test_entry_point_group(monkeypatch):
    class EP:
        value = "backends.numpy_backend:NumpyBackend"

    def fake_entry_points(group, name):
        assert group == loader.ENTRY_POINT_GROUP
        return [EP()] if name == "external" else []

    monkeypatch.setattr(loader, "entry_points", fake_entry_points)
    assert resolve("external") is NumpyBackend


def test_missing_device_is_unavailable():
    with pytest.raises(BackendUnavailable, match="device 'cuda'"):
        load_backend("numpy", "cuda")


class Broken(NumpyBackend):
    name = "broken"

    def sigmoid(self, x):
        raise RuntimeError("kernel crashed")

    def tanh(self, x):
        return "not an array"

    def relu(self, x):
        raise Unsupported("no relu here")


def test_backend_exceptions_become_named_errors():
    b = Broken()
    x = np.ones(3)
    with pytest.raises(harness.BackendError, match="sigmoid raised RuntimeError: kernel crashed"):
        harness.call(b, "sigmoid", (x,), {}, "float64")
    with pytest.raises(harness.BackendError, match="tanh"):
        harness.call(b, "tanh", (x,), {}, "float64")
    with pytest.raises(Unsupported):
        harness.call(b, "relu", (x,), {}, "float64")


def test_base_class_reports_everything_unsupported():
    class Empty(Backend):
        name = "empty"

    with pytest.raises(UnsupportedComponent, match="empty does not implement softmax"):
        Empty().softmax(np.zeros(2))


EXTERNAL = '''
import numpy as np
from backends import Backend, Unsupported


class TinyNumpy32(Backend):
    """NumPy in float32: three activations, no autodiff."""

    name = "tiny32"
    dtypes = ("float32",)

    def asarray(self, x, dtype=None):
        return np.asarray(x, dtype=np.float32 if dtype else None)

    def to_numpy(self, x):
        x = np.asarray(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x

    def dtype_of(self, x):
        return str(np.asarray(x).dtype)

    def sigmoid(self, x):
        return 1 / (1 + np.exp(-x))

    def tanh(self, x):
        return np.tanh(x)

    def softmax(self, x, axis=-1):
        if axis not in (-1, x.ndim - 1):
            raise Unsupported("softmax along the last axis only")  # this example's argument
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def relu(self, x):
        return np.abs(x)  # a bug: the suite must say so

    def leaky_relu(self, x, negative_slope=0.01):
        raise Unsupported(f"no negative_slope {negative_slope}")  # declines every example
'''


def test_external_backend_is_certified(tmp_path):
    """The README's worked example: a backend outside the repository, certified."""
    pkg = tmp_path / "external"
    pkg.mkdir()
    (pkg / "tiny.py").write_text(textwrap.dedent(EXTERNAL))
    reports = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": f"{pkg}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "--hypothesis-profile", "ci", "--backend", "tiny:TinyNumpy32",
         "--certify", "--report-dir", str(reports)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:]  # the planted relu bug fails the run
    rep = report.load(reports, "tiny32-cpu")
    outcome = {(r["test"], r["component"]): r["outcome"] for r in rep["results"]}
    assert outcome[("test_forward", "tanh")] == "passed"
    assert outcome[("test_forward", "relu")] == "failed"
    assert outcome[("test_forward", "dense")] == "unsupported"
    assert outcome[("test_vjp", "tanh")] == "unsupported"
    # an argument value the backend declines sets that example aside, not the property
    softmax = next(r for r in rep["results"]
                   if (r["test"], r["component"]) == ("test_forward", "softmax"))
    assert softmax["outcome"] == "passed" and softmax["examples"] > 0, softmax
    assert softmax["unsupported_examples"] > 0, softmax
    assert "softmax along the last axis only" in softmax["unsupported_reasons"]
    leaky = next(r for r in rep["results"]
                 if (r["test"], r["component"]) == ("test_forward", "leaky_relu"))
    assert leaky["outcome"] == "unsupported", leaky
    assert leaky["reason"].startswith("every example set aside"), leaky
    assert (reports / "tiny32-cpu.partial.md").read_text().startswith(
        "# Touchstone certificate: tiny32-cpu")
    # the reproduce command works as printed: it names where the external module lives
    relu = next(r for r in rep["results"] if (r["test"], r["component"]) == ("test_forward", "relu"))
    assert relu["reproduce"].startswith(f"PYTHONPATH={pkg} "), relu["reproduce"]
