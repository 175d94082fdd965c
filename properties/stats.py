"""Statistical properties: the level each check is held to, and the tests they use.

A backend's own random numbers (dropout masks, initialisers, random crops) are checked by
hypothesis tests against the distribution the oracle says they follow. A correct backend
fails such a check with probability ALPHA, so the suite budgets its false alarms:

    P(any false alarm in SEEDS full runs) <= SEEDS * CHECKS_PER_RUN * ALPHA = FAMILY_RATE

(Bonferroni's union bound, true whatever the dependence between the checks). FAMILY_RATE
is 1%: over 20 seeds of the whole suite, a correct backend raises a false alarm with
probability below 1%. CHECKS_PER_RUN bounds the statistical checks one full run makes over
every backend and dtype; the certificates count them (``statistical_checks``) and
tests/test_stats.py holds the committed certificates to the bound. Each check records its
p-value: the certificate lists the smallest per property, beside ALPHA.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from properties.record import current_record

FAMILY_RATE = 0.01
SEEDS = 20
CHECKS_PER_RUN = 5000
ALPHA = FAMILY_RATE / (SEEDS * CHECKS_PER_RUN)  # 1e-7


def check(what: str, pvalue: float) -> None:
    """Record the p-value of one statistical check; fail where it is below ALPHA."""
    pvalue = float(pvalue)  # a NumPy scalar does not serialise into the results journal
    current_record().note_pvalue(pvalue)
    assert pvalue >= ALPHA, (f"{what}: p = {pvalue:.3g} < alpha = {ALPHA:.3g} (the level that "
                             f"keeps the suite's false alarms below {FAMILY_RATE:.0%} over "
                             f"{SEEDS} seeds)")


def binomial(what: str, successes: int, trials: int, prob: float) -> None:
    """Two-sided exact binomial test of successes ~ Binomial(trials, prob)."""
    check(f"{what}: {successes} of {trials} where the rate is {prob:.6g}",
          float(stats.binomtest(int(successes), int(trials), prob).pvalue))


def kolmogorov_smirnov(what: str, samples: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]
                       ) -> None:
    """One-sample Kolmogorov-Smirnov test of ``samples`` against the continuous ``cdf``."""
    res = stats.kstest(np.ravel(samples), cdf)
    check(f"{what}: KS statistic {res.statistic:.4g} over {np.size(samples)} samples",
          float(res.pvalue))


def uniform_counts(what: str, counts: np.ndarray) -> None:
    """Pearson's chi-square test that ``counts`` (every cell expected >= 5) are uniform."""
    counts = np.ravel(counts)
    check(f"{what}: counts from {counts.min()} to {counts.max()} over {counts.size} cells",
          float(stats.chisquare(counts).pvalue))


def independent(what: str, a: np.ndarray, b: np.ndarray) -> None:
    """Two 0/1 arrays of one shape are independent: the chi-square test of their 2x2 table
    (Fisher's exact test where a cell is expected below 5)."""
    a, b = np.ravel(a).astype(bool), np.ravel(b).astype(bool)
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    if np.any(table.sum(1) == 0) or np.any(table.sum(0) == 0):
        return  # a constant mask: its rate is the binomial checks' business
    if expected.min() < 5:
        p = float(stats.fisher_exact(table).pvalue)
    else:
        p = float(stats.chi2_contingency(table, correction=False).pvalue)
    check(f"{what}: 2x2 table {table.tolist()}", p)
