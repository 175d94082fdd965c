"""Every component: forward and VJP against the oracle, and tails in relative terms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.checks import check_forward, check_vjp, draw_inputs
from properties.specs import SPECS, tail_components


@pytest.mark.parametrize("component", sorted(SPECS))
@given(data=st.data())
def test_forward(backend, dtype, component, data):
    """The backend's output equals the oracle's on the same (dtype-rounded) inputs."""
    check_forward(backend, component, draw_inputs(data, backend, component, dtype), dtype)


@pytest.mark.parametrize("component", sorted(SPECS))
@given(data=st.data())
def test_vjp(backend, dtype, component, data):
    """J^T c from the backend's autodiff equals the oracle's hand-written VJP."""
    check_vjp(backend, component, draw_inputs(data, backend, component, dtype), dtype, data)


@pytest.mark.parametrize("component", tail_components())
@given(data=st.data())
def test_forward_tail(backend, dtype, component, data):
    """Saturated and underflowing ranges (GELU on [-12, -4], BCE up to |x| = 800, ...) are
    right in relative terms, not only next to a large neighbour."""
    check_forward(backend, component, draw_inputs(data, backend, component, dtype, tail=True),
                  dtype)
