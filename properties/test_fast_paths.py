"""What a device's fast float32 paths cost in accuracy: TF32 matmuls and convolutions on
NVIDIA GPUs (``Backend.fast_paths``), which every other property keeps off.

Each matmul-heavy component's forward and VJP on one drawn float32 example run with the
paths off and on; both are compared with the oracle under the float32 tolerance, and the
worst margin and normwise relative error (max |error| / max |oracle|) of each mode are
recorded (``Record.note_fast_paths``) and shown in the certificate's "Fast float32 paths"
section. Measured, never failed on accuracy: TF32
rounds a product's inputs to 10 mantissa bits (relative 2^-11) by design, a trade the
frameworks document, not a bug. A backend error fails the test as anywhere. A device without
fast paths (every CPU) skips with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.checks import (
    draw_inputs,
    forward_actual,
    forward_expected,
    unsupported_example,
    vjp_actual,
    vjp_expected,
)
from properties.record import current_record
from properties.tolerance import compare

#: the components whose work is matrix products or convolutions (what TF32 changes)
MATMUL_HEAVY = ("conv1d", "conv2d", "conv_transpose2d", "dense", "gru_cell", "lstm_cell",
                "rnn_cell")

pytestmark = pytest.mark.dtypes("float32")


@pytest.mark.parametrize("component", MATMUL_HEAVY)
@given(data=st.data())
def test_fast_path_cost(backend, dtype, component, data):
    """Forward and VJP with the device's fast paths off and on, each against the oracle."""
    paths = backend.fast_paths()
    if paths is None:
        pytest.skip(f"{backend.id} has no fast float32 paths (TF32 is a GPU feature)")
    what, turned_on = paths
    inp = draw_inputs(data, backend, component, dtype)
    fwd = forward_expected(component, inp, dtype)
    vjp = vjp_expected(component, inp, dtype, data)

    def run() -> list[np.ndarray]:
        return [*forward_actual(backend, component, inp, dtype),
                *vjp_actual(backend, component, inp, vjp.cotangents, dtype)]

    with unsupported_example():
        off = run()
        with turned_on():
            on = run()
    labels, values = [*fwd.labels, *vjp.labels], [*fwd.values, *vjp.values]
    conds = [*fwd.conditions(), *vjp.conditions()]
    distances = {}
    for mode, actual in (("off", off), ("on", on)):
        comps = [compare(f"{label} ({what} {mode})", a, e, dtype, c, inp.terms)
                 for label, a, e, c in zip(labels, actual, values, conds, strict=True)]
        distances[f"margin_{mode}"] = max(c.margin for c in comps)
        distances[f"max_rel_{mode}"] = max(normwise(a, e)
                                           for a, e in zip(actual, values, strict=True))
    current_record().note_fast_paths(what, distances)


def normwise(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|: the error relative to the result's scale
    (about 2^-11 for TF32's rounding of a product's inputs; elementwise relative errors
    of entries that cancel say nothing about the fast path). Another shape or a non-finite
    value where the oracle's is finite: infinite."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return np.inf
    finite = np.isfinite(e)
    if not finite.any():
        return 0.0
    with np.errstate(invalid="ignore"):
        err = np.abs(a[finite] - e[finite])
    if not np.isfinite(err).all():
        return np.inf
    scale = np.abs(e[finite]).max()
    if scale > 0:
        return float(err.max() / scale)
    return 0.0 if err.max() == 0 else np.inf
