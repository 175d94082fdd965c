"""The GPU-only checks, on planted numpy "devices" (tests/planted_devices.py), so they are
tested where CI runs, without a GPU:

- the determinism check (--determinism; auto: every device but cpu) runs each example of
  test_forward and test_vjp twice and reports, without failing, the tests whose second run
  differed, with the example;
- the fast-path property (properties/test_fast_paths.py) measures what TF32 costs, reports it
  and fails nothing; a device without fast paths skips it with the reason;
- without a GPU, the GPU devices skip with their reason and the run passes.

Each run is a property-suite subprocess under the planted profile, read back from its
certificate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optional import need

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "tests.planted_devices"


def certify(tmp_path: Path, tests: str, backend: str, device: str, select: str,
            *extra: str) -> tuple[dict, str]:
    """(the JSON certificate, the markdown one) of one run."""
    cmd = [sys.executable, "-m", "pytest", tests, "-q", "-p", "no:cacheprovider",
           "--hypothesis-profile", "planted", "--backend", backend, "--device", device,
           f"-k={select}", "--certify", "--report-dir", str(tmp_path), "-n", "0", *extra]
    # a GPU device missing here is skipped, not failed, whatever CI's environment asks
    env = {**os.environ, "TOUCHSTONE_REQUIRE_BACKENDS": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    reps = list(tmp_path.glob("*.json"))
    assert len(reps) == 1, f"no certificate:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(reps[0].read_text()), reps[0].with_suffix(".md").read_text()


def _by_test(rep: dict) -> dict[tuple[str, str], dict]:
    return {(r["test"], r["component"]): r for r in rep["results"]}


def test_nondeterministic_kernel_is_reported_not_failed(tmp_path):
    rep, md = certify(tmp_path, "properties/test_components.py",
                      f"{PLANTED}:NondeterministicDevice", "fake-gpu", "-dense] or -relu]")
    results = _by_test(rep)
    assert set(results) == {(t, c) for t in ("test_forward", "test_vjp")
                            for c in ("dense", "relu")}
    for key, r in results.items():
        assert r["outcome"] == "passed", (key, r["reason"])
        nd = r["nondeterminism"]
        assert nd["repeated"] == r["examples"] > 0, key
        # only dense's weight gradient accumulates in a changing order
        assert (nd["differed"] > 0) == (key == ("test_vjp", "dense")), (key, nd)
    first = results[("test_vjp", "dense")]["nondeterminism"]["first"]
    assert first["what"] == "dense vjp wrt w" and first["max_abs"] > 0
    assert {label for label, _ in first["draws"]} >= {"x", "w"}
    assert "## Nondeterminism" in md and "dense test_vjp float64" in md
    assert "Nondeterministic: 1 of the 4 tests" in md


@pytest.mark.parametrize(("device", "mode", "repeated"), [
    ("cpu", "auto", False), ("fake-gpu", "off", False), ("cpu", "on", True)])
def test_determinism_modes(tmp_path, device, mode, repeated):
    """auto repeats on every device but cpu; on and off force it either way."""
    rep, md = certify(tmp_path, "properties/test_components.py",
                      f"{PLANTED}:NondeterministicDevice", device, "test_vjp and dense]",
                      "--determinism", mode)
    (r,) = rep["results"]
    assert r["outcome"] == "passed", r["reason"]
    assert rep["determinism"] == mode
    if repeated:  # on cpu the planted kernel is the oracle's: run twice, never differing
        assert r["nondeterminism"] == {"repeated": r["examples"], "differed": 0, "first": None}
        assert "## Nondeterminism" not in md
    else:
        assert r["nondeterminism"] is None


def test_fast_path_cost_is_measured_not_failed(tmp_path):
    rep, md = certify(tmp_path, "properties/test_fast_paths.py", f"{PLANTED}:Tf32Device",
                      "fake-gpu", "dense")
    (r,) = rep["results"]
    assert r["outcome"] == "passed" and r["examples"] > 0, r["reason"]
    fp = r["fast_paths"]
    assert fp["paths"].startswith("TF32")
    # off: NumPy's float32 products, within the float32 tolerance; on: inputs rounded to
    # 10 mantissa bits, errors of order 2^-11 of the result's scale, far past it
    assert fp["margin_off"] <= 1 < fp["margin_on"]
    assert fp["max_rel_off"] < 1e-5 < fp["max_rel_on"] < 1e-2
    assert "## Fast float32 paths" in md


def test_a_device_without_fast_paths_skips_with_its_reason(tmp_path):
    rep, _ = certify(tmp_path, "properties/test_fast_paths.py", f"{PLANTED}:Tf32Device",
                     "cpu", "dense")
    (r,) = rep["results"]
    assert r["outcome"] == "skipped" and "no fast float32 paths" in r["reason"], r


def test_gpu_devices_skip_without_a_gpu(tmp_path):
    torch = need("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the GPU paths run instead")
    rep, _ = certify(tmp_path, "properties/test_fast_paths.py", "torch", "cuda", "dense")
    assert rep["unavailable"] and "cuda" in rep["unavailable"]
    assert rep["results"] and all(r["outcome"] in ("unavailable", "skipped")
                                  for r in rep["results"])
