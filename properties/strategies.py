"""Hypothesis strategies: inputs valid by construction, rounded to the dtype under test.

Inputs are rounded to the dtype first and the oracle then runs on the rounded values in
float64, so input rounding is never counted as a backend error. Large arrays come from a
drawn seed (fast, and the seed is the whole counterexample); small ones element by element,
so Hypothesis can shrink them to a readable one-line reproduction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backends.base import Backend
from properties.record import current_record
from properties.tolerance import TINY, round_to

small_dims = st.integers(1, 5)


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 5) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def floats_array(shape, lo: float, hi: float, dtype: str, gap: float = 0.0,
                 kinks: tuple[float, ...] = (0.0,)) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` in [lo, hi], rounded to ``dtype``. With ``gap`` > 0 every
    element keeps at least ``gap`` away from each point in ``kinks`` (after rounding)."""
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    def ok(a):
        return all(np.all(np.abs(a - k) >= gap) for k in kinks) if gap else True

    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: round_to(a, dtype)) \
        .filter(ok)


def near_zero_array(shape, dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` whose elements have both signs and magnitudes 2^e m
    (m in [1, 2)) with e log-uniform from the dtype's smallest normal up to 2^-6, rounded to
    ``dtype``: where expm1- and log1p-style cancellations show as relative errors."""
    emin = int(np.log2(TINY[dtype]))
    elements = st.tuples(st.booleans(), st.integers(emin, -7), st.floats(1.0, 2.0, exclude_max=True))
    return hnp.arrays(np.float64, shape, elements=elements.map(
        lambda t: (-1.0 if t[0] else 1.0) * t[2] * 2.0**t[1])).map(lambda a: round_to(a, dtype))


def seeded_array(draw, shape, dtype: str, scale: float = 1.0) -> np.ndarray:
    """A standard-normal array times ``scale`` from a drawn seed, rounded to ``dtype``."""
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return round_to(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def conventions(data: st.DataObject, backend: Backend, component: str, kwargs: dict[str, Any]
                ) -> dict[str, Any]:
    """``kwargs`` with the backend's conventions for ``component`` applied: a fixed value
    replaces the drawn one, a tuple of supported values is drawn from. An argument the
    backend lacks (``Backend.lacks``) is fixed to its value as well, drawing nothing; the
    value drawn for it is noted in the test's record (the report lists those it excluded)."""
    out = dict(kwargs)
    for arg, value in backend.conventions.get(component, {}).items():
        if isinstance(value, tuple):
            out[arg] = data.draw(st.sampled_from(value), label=f"{component}.{arg}")
        else:
            out[arg] = value
    for arg, (value, _why) in backend.lacks.get(component, {}).items():
        if arg in kwargs:
            current_record().note_lacked(component, arg, kwargs[arg], value)
        out[arg] = value
    return out


def kink_free(values: np.ndarray, kinks, gap: float) -> None:
    """Reject an example whose ``values`` lie within ``gap`` of a kink."""
    for k in kinks:
        assume(np.all(np.abs(np.asarray(values) - k) >= gap))
