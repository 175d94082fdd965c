"""Tests that draw the same networks run together (properties.scheduling): only speed depends
on it, but a wrong scope would silently cost it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from properties import scheduling

ROOT = Path(__file__).resolve().parent.parent
TRAIN = "properties/test_architectures.py::test_network_training"


@pytest.mark.parametrize(("nodeid", "scope"), [
    (f"{TRAIN}[jax-cpu-float64-adam-resnet]", f"{TRAIN}[jax-cpu-float64-resnet]"),
    (f"{TRAIN}[my-adamw-lib-cpu-float32-adamw-mlp]", f"{TRAIN}[my-adamw-lib-cpu-float32-mlp]"),
    (f"{TRAIN}[jax-cpu-float64-adam-resnet]@group", None),
    ("properties/test_architectures.py::test_network_forward[jax-cpu-float64-resnet]", None),
    ("properties/test_optimizers.py::test_trajectory[jax-cpu-float64-adam]", None),
])
def test_draw_scope_drops_the_optimizer_of_a_training_test(nodeid, scope):
    assert scheduling.draw_scope(nodeid) == scope


@pytest.mark.parametrize(("nodeid", "unit"), [
    ("tests/test_survival.py::test_each_misbehaviour_has_its_named_outcome[hangs]",
     "tests/test_survival.py"),
    ("tests/test_planted_bugs.py::test_planted_bug_is_caught[planted-relu-leaky]",
     "tests/test_planted_bugs.py"),
    (f"{TRAIN}[jax-cpu-float64-adam-resnet]", f"{TRAIN}[jax-cpu-float64-resnet]"),
    ("tests/test_report.py::test_x", "tests/test_report.py::test_x"),
])
def test_a_module_group_and_a_draw_scope_are_units_of_work(nodeid, unit):
    assert scheduling.unit(nodeid) == unit


def test_module_groups_name_modules_that_exist():
    assert all((ROOT / path).is_file() for path in scheduling.MODULE_GROUPS)


def test_order_puts_a_scope_next_to_its_first_test_and_keeps_the_rest():
    ids = [f"{TRAIN}[np-float32-sgd-mlp]", "a::t[1]", f"{TRAIN}[np-float32-sgd-lenet]",
           f"{TRAIN}[np-float32-adam-mlp]", "a::t[2]", f"{TRAIN}[np-float32-adam-lenet]"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    scheduling.order(items)
    assert [i.nodeid for i in items] == [ids[0], ids[3], ids[1], ids[2], ids[5], ids[4]]


def test_a_certification_refuses_a_scope_scheduler(tmp_path):
    """xdist's scope schedulers rerun a test that crashed its worker without end."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "properties/test_components.py", "-q", "-p",
         "no:cacheprovider", "-k", "relu", "--backend", "numpy", "--certify", "--report-dir",
         str(tmp_path), "-n", "1", "--dist", "loadgroup"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:]
    assert "--certify runs under --dist load" in proc.stderr
    assert not list(tmp_path.iterdir())
