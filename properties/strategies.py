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
from properties.coverage import SIZES, stratum
from properties.record import current_record
from properties.tolerance import TINY, round_to

small_dims = st.integers(1, 5)
#: arrays above this many elements are drawn from a seed, not element by element
SEEDED_ABOVE = 128
#: the most elements a realistic-size draw gives one array
MAX_ELEMENTS = 2**13


def realistic(data: st.DataObject) -> bool:
    """The size regime, drawn first: small (two examples in three, and where shrinking goes)
    or realistic: reductions of 8 to 1024 terms, up to 64 channels, batches to 128, spatial
    sizes to 64, past the sizes where real kernels switch to blocked, vectorised and split
    paths (at most MAX_ELEMENTS per array)."""
    return stratum(data, "sizes", SIZES, st.sampled_from(("small", "small", "realistic"))) \
        == "realistic"


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 5) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def sized(data: st.DataObject, small: st.SearchStrategy, rows: tuple[int, int],
          length: tuple[int, int], label: str = "shape") -> tuple[tuple[int, ...], bool]:
    """(shape, realistic): a shape from ``small``, or in the realistic regime (``realistic``)
    (rows, length) with rows and length drawn from their ranges, rows cut to keep
    MAX_ELEMENTS (a reduction runs along the length)."""
    if not realistic(data):
        return tuple(data.draw(small, label=label)), False
    n = data.draw(st.integers(*length), label=f"{label}_length")
    return (min(data.draw(st.integers(*rows), label=f"{label}_rows"), MAX_ELEMENTS // n), n), True


def floats_array(shape, lo: float, hi: float, dtype: str, gap: float = 0.0,
                 kinks: tuple[float, ...] = (0.0,)) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` in [lo, hi], rounded to ``dtype``. With ``gap`` > 0 every
    element keeps at least ``gap`` away from each point in ``kinks`` (after rounding). Above
    SEEDED_ABOVE elements: uniform from a drawn seed, each element within ``gap`` of a kink
    moved 2 ``gap`` away from it."""
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    def ok(a):
        return all(np.all(np.abs(a - k) >= gap) for k in kinks) if gap else True

    def seeded(seed: int) -> np.ndarray:
        a = np.random.default_rng(seed).uniform(lo, hi, shape)
        for k in kinks if gap else ():
            a = np.where(np.abs(a - k) < gap, a + np.where(a < k, -2 * gap, 2 * gap), a)
        return a

    if int(np.prod(shape)) > SEEDED_ABOVE:
        arrays = st.integers(0, 2**32 - 1).map(seeded)
    else:
        arrays = hnp.arrays(np.float64, shape, elements=elements)
    return arrays.map(lambda a: round_to(a, dtype)).filter(ok)


def near_zero_array(shape, dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of ``shape`` whose elements have both signs and magnitudes 2^e m
    (m in [1, 2)) with e log-uniform from the dtype's smallest normal up to 2^-6, rounded to
    ``dtype``: where expm1- and log1p-style cancellations show as relative errors."""
    emin = int(np.log2(TINY[dtype]))

    def seeded(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.choice((-1.0, 1.0), shape) * rng.uniform(1.0, 2.0, shape) \
            * 2.0 ** rng.integers(emin, -6, shape)

    if int(np.prod(shape)) > SEEDED_ABOVE:
        arrays = st.integers(0, 2**32 - 1).map(seeded)
    else:
        elements = st.tuples(st.booleans(), st.integers(emin, -7),
                             st.floats(1.0, 2.0, exclude_max=True))
        arrays = hnp.arrays(np.float64, shape, elements=elements.map(
            lambda t: (-1.0 if t[0] else 1.0) * t[2] * 2.0**t[1]))
    return arrays.map(lambda a: round_to(a, dtype))


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
