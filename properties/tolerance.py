"""The one tolerance policy.

A backend computing f in precision ``dtype`` with a backward-stable algorithm returns
f(x + dx) + dy with |dx| <= c eps |x| per input (c grows with the length n of the longest
reduction: sqrt(n) for rounding errors that do not conspire) and |dy| <= eps |f|. To first
order its error is therefore at most

    eps * (sqrt(n) * S + |f|),     S_i = sum_j |d f_i / d x_j| |x_j|,

where S is the condition term. Where the oracle's formula itself combines terms larger than
its result, their magnitude M (properties/magnitudes.py) joins S: a backend is held to the
accuracy the oracle's formula reaches in its dtype. S is not guessed: ``sensitivity``
measures it on the float64 oracle by perturbing every float input elementwise by a relative
DELTA with random Gaussian weights (an exact input, such as a target of 0, stays exact). The bound is
multiplied by the safety factor FACTOR[dtype] (the c above, a few ulps of slack for
transcendental functions that are not correctly rounded) and given an absolute floor of the
dtype's smallest normal number (results below it are subnormal or flushed to zero).

Every comparison records its margin = max(error / tolerance): <= 1 passes, and reports show
how close a backend came to failing. Nothing else in the suite holds a tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from properties.record import Comparison, current_record

EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
TINY = {"float64": 2.0**-1022, "float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}
#: ulps of slack per dtype: libm-grade exp/log/erf are within 1-4 ulp, and reduction orders
#: differ between implementations; 8 covers both without admitting a wrong formula, whose
#: errors are of the order of the value itself.
FACTOR = {"float64": 8.0, "float32": 8.0, "float16": 8.0, "bfloat16": 8.0}
#: relative input perturbation used to measure the condition term (linear regime in float64:
#: far above float64 rounding, far below any curvature the suite meets away from kinks).
DELTA = 2.0**-24
_PROBES = 4


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` (round to nearest even) and returned as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype in ("float32", "float16"):
        with np.errstate(over="ignore"):
            return x.astype(dtype).astype(np.float64)
    if dtype == "bfloat16":
        u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return u.astype(np.uint32).view(np.float32).astype(np.float64)
    raise ValueError(f"dtype: expected one of {sorted(EPS)}, got {dtype!r}")


def _flat(out) -> list[np.ndarray]:
    if isinstance(out, list | tuple):
        return [np.asarray(o, dtype=np.float64) for o in out if o is not None]
    return [np.asarray(out, dtype=np.float64)]


def sensitivity(f: Callable[[list[np.ndarray]], object], inputs: Sequence[np.ndarray]
                ) -> list[np.ndarray]:
    """Condition term S of each output of the float64 oracle ``f(inputs)``: the largest change
    over a few random Gaussian relative perturbations of size DELTA, divided by DELTA."""
    rng = np.random.default_rng(20261124)
    base = _flat(f(list(inputs)))
    spread = [np.zeros_like(b) for b in base]
    for _ in range(_PROBES):
        moved = [a * (1 + DELTA * rng.standard_normal(np.shape(a))) for a in inputs]
        with np.errstate(all="ignore"):
            out = _flat(f(moved))
        for s, o, b in zip(spread, out, base, strict=True):
            d = np.abs(o - b)
            np.maximum(s, np.where(np.isfinite(d), d, 0.0), out=s)
    return [s / DELTA for s in spread]


def spread(run: Callable[[np.random.Generator | None], list[np.ndarray]],
           base: Sequence[np.ndarray] | None = None, probes: int = _PROBES) -> list[np.ndarray]:
    """What a run's per-step rounding becomes at each of its results: the largest change over
    ``probes`` noisy runs ``run(noise)`` (each step moved by DELTA times its rounding
    magnitudes, ``moved`` and ``noisy_update``) from the exact one (``base``, else
    ``run(None)``), divided by DELTA."""
    rng = np.random.default_rng(20261124)
    base = [np.asarray(b, dtype=np.float64) for b in (run(None) if base is None else base)]
    out = [np.zeros_like(b) for b in base]
    for _ in range(probes):
        with np.errstate(all="ignore"):
            moved_ = run(rng)
        for s, m, b in zip(out, moved_, base, strict=True):
            d = np.abs(np.asarray(m, dtype=np.float64) - b)
            np.maximum(s, np.where(np.isfinite(d), d, 0.0), out=s)
    return [s / DELTA for s in out]


def moved(noise: np.random.Generator | None, values: Sequence[np.ndarray],
          magnitudes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each value v + DELTA m z (z standard normal from ``noise``): a rounding of magnitude m
    in a random direction; the values unchanged when ``noise`` is None."""
    if noise is None:
        return list(values)
    return [v + DELTA * m * noise.standard_normal(np.shape(v))
            for v, m in zip(values, magnitudes, strict=True)]


def noisy_update(opt, grads: Sequence[np.ndarray], state, params: Sequence[np.ndarray],
                 noise: np.random.Generator | None) -> tuple[list[np.ndarray], object]:
    """``opt.update(grads, state, params)`` with each new parameter q moved by DELTA times
    |p| + |q - p| (a backend stores p - u in its dtype); exact when ``noise`` is None."""
    new, state = opt.update(list(grads), state, list(params))
    return moved(noise, new, [np.abs(p) + np.abs(q - p) for p, q in zip(params, new,
                                                                       strict=True)]), state


def tolerance(expected: np.ndarray, dtype: str, condition: np.ndarray | None = None,
              terms: int = 1) -> np.ndarray:
    """Per-element bound FACTOR eps (sqrt(terms) S + |expected|) + FACTOR tiny."""
    e = np.abs(np.asarray(expected, dtype=np.float64))
    s = np.zeros_like(e) if condition is None else np.asarray(condition, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = EPS[dtype] * (np.sqrt(max(terms, 1)) * s + np.where(np.isfinite(e), e, 0.0))
    return FACTOR[dtype] * (bound + TINY[dtype])


def compare(what: str, actual: np.ndarray, expected: np.ndarray, dtype: str,
            condition: np.ndarray | None = None, terms: int = 1, scale: float = 1.0) -> Comparison:
    """Compare ``actual`` with ``expected`` under the policy. ``scale`` > 1 only where the
    bound is a sum of independent errors (``scale`` = how many are summed, e.g. 2 when two
    backend results that each carry the error are compared with each other)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return Comparison(what, np.inf, f"shape {a.shape}, expected {e.shape}")
    if a.size == 0:
        return Comparison(what, 0.0)
    tol = scale * tolerance(e, dtype, condition, terms)
    finite = np.isfinite(e)
    same_special = (np.isnan(a) & np.isnan(e)) | ((a == e) & ~finite)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(a - e), np.where(same_special, 0.0, np.inf))
        ratio = np.where(np.isnan(err), np.inf, err / tol)
    i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    margin = float(ratio[i])
    detail = (f"worst at index {tuple(int(k) for k in i)}: got {a[i]!r}, expected {e[i]!r}, "
              f"error {err[i]:.3g}, tolerance {tol[i]:.3g}")
    if not np.isfinite(a[i]) and np.isfinite(e[i]):
        detail = "non-finite value where the oracle is finite; " + detail
    return Comparison(what, margin, detail)


def assert_close(what: str, actual, expected, dtype: str, condition=None, terms: int = 1,
                 scale: float = 1.0) -> Comparison:
    """compare(), recorded in the current test's record; AssertionError when margin > 1."""
    c = compare(what, actual, expected, dtype, condition, terms, scale)
    current_record().add(c)
    if not c.ok:
        raise AssertionError(f"{what}: margin {c.margin:.3g} > 1 ({dtype}); {c.detail}")
    return c


def assert_within(what: str, actual, expected, bound: np.ndarray) -> Comparison:
    """Like assert_close, for a bound assembled from tolerance() terms (an invariant that
    compares two backend results carries the sum of their tolerances)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        c = Comparison(what, np.inf, f"shape {a.shape}, expected {e.shape}")
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(a - e)
            bound = np.broadcast_to(bound, e.shape)
            # an exact match passes even a zero bound (a value that must not change)
            ratio = np.where(err == 0, 0.0, np.where(np.isnan(err), np.inf, err / bound))
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
        margin = float(ratio[i]) if ratio.size else 0.0
        c = Comparison(what, margin, f"worst at {tuple(int(k) for k in i)}: got {a[i]!r}, "
                                     f"expected {e[i]!r}" if ratio.size else "")
    current_record().add(c)
    if not c.ok:
        raise AssertionError(f"{what}: margin {c.margin:.3g} > 1; {c.detail}")
    return c
