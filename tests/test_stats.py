"""The statistical properties' level (properties/stats.py): the false-alarm budget's arithmetic,
each test's size and power on samples of known law (fixed seeds: deterministic), the p-values
a record keeps, and the committed certificates within the budget's count of checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from properties import stats as S
from properties.record import start_record

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def test_budget_arithmetic():
    """SEEDS runs of CHECKS_PER_RUN checks at ALPHA: the union bound is FAMILY_RATE <= 1%."""
    assert S.SEEDS * S.CHECKS_PER_RUN * S.ALPHA == pytest.approx(S.FAMILY_RATE, rel=1e-12)
    assert S.FAMILY_RATE <= 0.01 and S.SEEDS >= 20


def test_check_records_and_fails_below_alpha():
    rec = start_record()
    S.check("fine", 0.5)
    S.check("at the level", S.ALPHA)
    with pytest.raises(AssertionError, match="p = .* < alpha"):
        S.check("too small", S.ALPHA / 2)
    assert rec.statistical_checks == 3 and rec.min_pvalue == S.ALPHA / 2


def test_binomial_size_and_power():
    """A Binomial(n, 0.8) count passes; the count of the complementary rate (a mask kept with
    probability p instead of 1 - p) fails at n = 10^4."""
    start_record()
    rng = np.random.default_rng(0)
    n = 10_000
    S.binomial("right rate", int(np.sum(rng.random(n) < 0.8)), n, 0.8)
    with pytest.raises(AssertionError):
        S.binomial("swapped rate", int(np.sum(rng.random(n) < 0.2)), n, 0.8)


def test_ks_size_and_power():
    start_record()
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 2.0, 20_000)
    S.kolmogorov_smirnov("N(0, 2)", x, sps.norm(0.0, 2.0).cdf)
    with pytest.raises(AssertionError):  # a std 12% off (He's sqrt(2) gain is 41%)
        S.kolmogorov_smirnov("N(0, 2.25)", x, sps.norm(0.0, 2.25).cdf)


def test_uniform_counts_size_and_power():
    start_record()
    rng = np.random.default_rng(2)
    S.uniform_counts("uniform", np.bincount(rng.integers(0, 10, 5000), minlength=10))
    skewed = np.bincount(np.minimum(rng.integers(0, 11, 5000), 9), minlength=10)
    with pytest.raises(AssertionError):  # the last cell twice as likely
        S.uniform_counts("skewed", skewed)


def test_independence_size_and_power():
    start_record()
    rng = np.random.default_rng(3)
    a, b = rng.random(10_000) < 0.7, rng.random(10_000) < 0.7
    S.independent("two draws", a, b)
    with pytest.raises(AssertionError):  # the second mask mostly repeats the first
        S.independent("a repeated mask", a, np.where(rng.random(10_000) < 0.9, a, b))


def test_committed_certificates_within_the_budget():
    """One full run over the committed backends makes at most CHECKS_PER_RUN checks."""
    total = 0
    for path in REPORTS.glob("*-*.json"):
        if ".partial" in path.name or ".incomplete" in path.name:
            continue
        rep = json.loads(path.read_text())
        total += sum(r.get("statistical_checks", 0) for r in rep["results"])
    assert total <= S.CHECKS_PER_RUN
