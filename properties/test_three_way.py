"""Three-way comparison: one drawn example of every component through two backends (two
devices or modes of one framework: --backend and --against) and the oracle.

Each side is held to the oracle under the tolerance policy, as test_forward, test_vjp and
test_forward_tail hold one backend; the two sides are compared with each other as well, under
the sum of their two bounds (what two results within tolerance can differ by). Both within
tolerance: the test passes and records the distances (``Record.three_way``). One outside: it
fails naming that side. Both outside but within tolerance of each other: one failure stated
as a shared divergence (a kernel or a convention the two share); both outside and apart: one
failure naming both. Each side's known divergences of the property a test mirrors (its
``three_way`` mark) excuse that side only, judged per example
(properties.plugin.three_way_divergences). The example is drawn with --backend's
conventions; one that --against does not follow is set aside as unsupported.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.base import Backend, Unsupported
from properties.checks import (
    Expected,
    apart,
    draw_inputs,
    forward_actual,
    forward_expected,
    unsupported_example,
    vjp_actual,
    vjp_expected,
)
from properties.inputs import Inputs
from properties.plugin import DIVERGED
from properties.record import Comparison, current_record, error_text, same_value
from properties.scoped import add_arguments
from properties.specs import SPECS, tail_components
from properties.tolerance import compare, tolerance

#: two results each within the policy's bound of the oracle are within twice it of each other
SIDES = 2.0


@pytest.mark.three_way("test_forward")
@pytest.mark.parametrize("component", sorted(SPECS))
@given(data=st.data())
def test_three_way_forward(backend, against, dtype, component, data):
    """Both backends' outputs on one example, against the oracle and each other."""
    inp = shared_inputs(data, backend, against, component, dtype)
    judge(backend, against, forward_expected(component, inp, dtype), dtype, inp.terms,
          lambda side: forward_actual(side, component, inp, dtype))


@pytest.mark.three_way("test_vjp")
@pytest.mark.parametrize("component", sorted(SPECS))
@given(data=st.data())
def test_three_way_vjp(backend, against, dtype, component, data):
    """Both backends' J^T c for one example and cotangent, against the oracle's VJP and each
    other."""
    inp = shared_inputs(data, backend, against, component, dtype)
    expected = vjp_expected(component, inp, dtype, data)
    judge(backend, against, expected, dtype, inp.terms,
          lambda side: vjp_actual(side, component, inp, expected.cotangents, dtype))


@pytest.mark.three_way("test_forward_tail")
@pytest.mark.parametrize("component", tail_components())
@given(data=st.data())
def test_three_way_forward_tail(backend, against, dtype, component, data):
    """Both backends' outputs on a saturated or underflowing range (where device kernels
    overflow and cancel), in relative terms."""
    inp = shared_inputs(data, backend, against, component, dtype, tail=True)
    judge(backend, against, forward_expected(component, inp, dtype), dtype, inp.terms,
          lambda side: forward_actual(side, component, inp, dtype))


def shared_inputs(data: st.DataObject, backend: Backend, against: Backend, component: str,
                  dtype: str, tail: bool = False) -> Inputs:
    """The example both sides run: drawn with ``backend``'s conventions (draw_inputs, as
    test_components draws), set aside as unsupported where ``against`` fixes an argument to
    another value or supports other values of a convention."""
    inp = draw_inputs(data, backend, component, dtype, tail)
    fixed = {**against.conventions.get(component, {}),
             **{arg: value for arg, (value, _) in against.lacks.get(component, {}).items()}}
    for arg, value in fixed.items():
        got = inp.kwargs.get(arg)
        allowed = value if isinstance(value, tuple) else (value,)
        if not any(same_value(got, v) for v in allowed):
            with unsupported_example():
                raise Unsupported(f"{against.id} takes {component} {arg} in {allowed!r}, "
                                  f"{backend.id} drew {got!r}")
    return inp


def judge(backend: Backend, against: Backend, expected: Expected, dtype: str, terms: int,
          run: Callable[[Backend], list[np.ndarray]]) -> None:
    """Run both sides (an example either sets aside is set aside), compare each with the
    oracle and with each other, record the distances, and fail with the finding (naming the
    sides that diverged, noted as DIVERGED for their known divergences) unless both agree
    with the oracle."""
    sides = {"backend": backend, "against": against}
    names = {role: side.id if backend.id != against.id else f"{side.id} (--{role})"
             for role, side in sides.items()}
    with unsupported_example():
        results = {role: _outcome(side, run) for role, side in sides.items()}
    conds = expected.conditions()
    record = current_record()
    worst: dict[str, Comparison] = {}
    for role, result in results.items():
        if isinstance(result, str):
            worst[role] = Comparison(names[role], np.inf, f"raised {result}")
            continue
        comps = [compare(f"{names[role]} {what}", a, e, dtype, c, terms)
                 for what, a, e, c in zip(expected.labels, result, expected.values, conds,
                                           strict=True)]
        for c in comps:
            record.add(c)
        worst[role] = max(comps, key=lambda c: c.margin)
    margin = max_abs = max_rel = np.inf
    if not any(isinstance(r, str) for r in results.values()):
        margin, max_abs, max_rel = np.max(
            [apart(a, b, SIDES * tolerance(e, dtype, c, terms)) for a, b, e, c in
             zip(results["backend"], results["against"], expected.values, conds, strict=True)],
            axis=0)
    record.note_three_way(against.id, {
        "margin_backend": worst["backend"].margin, "margin_against": worst["against"].margin,
        "margin_apart": float(margin), "max_abs": float(max_abs), "max_rel": float(max_rel)})
    diverged = [role for role in sides if not worst[role].ok]
    if not diverged:
        return
    add_arguments(**{DIVERGED: tuple(diverged)})
    distance = f"distance: max abs {max_abs:.3g}, max rel {max_rel:.3g}, margin {margin:.3g}"
    findings = "; ".join(_finding(worst[role], dtype) for role in diverged)
    if len(diverged) == 2:
        a, b = names["backend"], names["against"]
        if margin <= 1:
            raise AssertionError(f"{a} and {b} agree with each other ({distance}) but not with "
                                 f"the oracle: a shared divergence; {findings}")
        raise AssertionError(f"{a} and {b} both diverge from the oracle and from each other "
                             f"({distance}): {findings}")
    bad = diverged[0]
    good = "against" if bad == "backend" else "backend"
    where = f"and from {names[good]}" if margin > 1 else f"though within tolerance of {names[good]}"
    raise AssertionError(f"{names[bad]} diverges from the oracle {where} ({names[good]}: margin "
                         f"{worst[good].margin:.3g}; {distance}): {findings}")


def _outcome(side: Backend, run: Callable[[Backend], list[np.ndarray]]
             ) -> list[np.ndarray] | str:
    """The side's arrays, or the error it raised ('Type: message'); Unsupported propagates."""
    try:
        return run(side)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - a side's failure is a finding about that side
        return error_text(exc)


def _finding(c: Comparison, dtype: str) -> str:
    """'<side> <what>: margin m > 1 (dtype); <detail>', or '<side> raised <error>'."""
    if c.detail.startswith("raised "):
        return f"{c.what} {c.detail}"
    return f"{c.what}: margin {c.margin:.3g} > 1 ({dtype}); {c.detail}"
