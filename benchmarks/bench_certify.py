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

``CertifyManyBackends.track_wall_seconds``: one certification of the oracle and every
planted-bug backend of tests/planted.py together (MANY_SELECTION's forward tests on each),
as the planted-bug run certifies 117 backends: each result rewrites its own backend's
certificate only. When every result rewrote every selected backend's certificate, the
planted-bug run spent 257 of its 272 s doing so, and this certification of 34 backends took
22.9 s instead of 17.2 s (at d8ee44d and at the fix, one run each, quiet machine; with
every component's forward test instead of four: 175 s instead of 127 s).
"""

from __future__ import annotations

import importlib.util
import math
import sys

from benchmarks import certify_time

BACKENDS = ("torch", "jax")
PROFILES = ("ci", "thorough")
SELECTION = "test_vjp and float64 and (conv2d] or softmax])"
PATHS = ["properties/test_components.py"]
MANY_SELECTION = "test_forward and not tail and (relu] or tanh] or sigmoid] or softmax])"


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


class CertifyManyBackends:
    """Wall time of one certification over the oracle and every tests/planted.py backend."""

    timeout = 1800
    rounds = 1
    repeat = 1
    number = 1

    def setup_cache(self) -> float:
        if str(certify_time.ROOT) not in sys.path:  # tests/ is not an installed package
            sys.path.insert(0, str(certify_time.ROOT))
        from tests.planted import PLANTED

        specs = ["numpy", *(f"{cls.__module__}:{cls.__name__}" for cls in PLANTED)]
        res = certify_time.run(",".join(specs), PATHS, 1, MANY_SELECTION, "planted", True,
                               ["--replay-failures", "0"], {})
        if res["returncode"] not in (0, 1):  # the planted bugs fail their tests
            raise RuntimeError(f"certifying {len(specs)} backends failed: "
                               f"{res['pytest_summary']} (log: {res['log']})")
        return res["wall_s"]

    def track_wall_seconds(self, wall: float) -> float:
        return wall

    track_wall_seconds.unit = "s"
