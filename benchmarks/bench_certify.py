"""asv benchmarks: what a certification costs in memory and time, per backend.

One certification per (backend, profile) of a fixed selection of property tests, run once per
benchmark session in ``setup_cache`` by benchmarks/certify_time.py (a pytest subprocess with
--certify, reports in a temporary directory, one worker, the persistent JAX cache off):

- SELECTION: the VJP properties of conv2d and softmax in float64, the tests that compile
  most per example in JAX;
- profiles ``ci`` (20 examples) and ``thorough`` (300): peak memory must not grow with the
  number of examples (compiled-function caches, recorded examples and framework graphs are
  what accumulate), so the two peaks should be close while the times are not.

``track_peak_rss_mb`` is the peak resident memory of the largest process (the xdist worker
that runs the tests), ``track_wall_seconds`` the run's wall time. A backend whose framework
is not installed is skipped (NaN).
"""

from __future__ import annotations

import importlib.util
import math

from benchmarks import certify_time

BACKENDS = ("torch", "jax")
PROFILES = ("ci", "thorough")
SELECTION = "test_vjp and float64 and (conv2d] or softmax])"
PATHS = ["properties/test_components.py"]


def _certify(backend: str, profile: str) -> dict[str, float]:
    if importlib.util.find_spec(backend) is None:
        return {"peak_rss_mb": math.nan, "wall_s": math.nan}
    res = certify_time.run(backend, PATHS, 1, SELECTION, profile, True, [],
                           {"TOUCHSTONE_JAX_CACHE": "off"})
    if res["returncode"] != 0:
        raise RuntimeError(f"certifying {backend} ({profile}) failed: {res['pytest_summary']}"
                           f" (log: {res['log']})")
    return {"peak_rss_mb": res["peak_rss_process_mb"], "wall_s": res["wall_s"]}


class CertifyCost:
    """Peak memory and wall time of certifying SELECTION under a profile."""

    params = (list(BACKENDS), list(PROFILES))
    param_names = ("backend", "profile")
    timeout = 1800
    rounds = 1
    repeat = 1
    number = 1

    def setup_cache(self) -> dict[tuple[str, str], dict[str, float]]:
        return {(b, p): _certify(b, p) for b in BACKENDS for p in PROFILES}

    def track_peak_rss_mb(self, costs, backend: str, profile: str) -> float:
        return costs[(backend, profile)]["peak_rss_mb"]

    track_peak_rss_mb.unit = "MB"

    def track_wall_seconds(self, costs, backend: str, profile: str) -> float:
        return costs[(backend, profile)]["wall_s"]

    track_wall_seconds.unit = "s"
