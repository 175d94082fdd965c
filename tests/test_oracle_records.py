"""Every registered component's VJP against central finite differences of its forward, on the
inputs its spec draws in float64: a component added to the registry is self-checked with no
test of its own. The check (tests/fd.py) is of <J t, c> summed over every differentiated
output, so a VJP that drops one output's cotangent fails."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.specs import SPECS
from reference import moments as Mo
from reference import registry
from tests.fd import assert_vjp_matches_fd, seeded


@pytest.mark.parametrize("name", sorted(registry.RECORDS))
@given(data=st.data())
def test_record_vjp_matches_fd(name, data):
    check_record(name, data)


@given(data=st.data())
def test_a_vjp_that_drops_an_output_fails(data):
    """var_mean's VJP without the mean's cotangent (the old one-output interface) is caught."""
    def first_output_only(x, gv, gm, **kw):
        return Mo.var_mean_vjp(x, gv, np.zeros_like(gm), **kw)

    broken = dataclasses.replace(registry.get("var_mean"), vjp_fn=first_output_only)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.RECORDS, "var_mean", broken)
        with pytest.raises(AssertionError, match="fd - vjp"):
            check_record("var_mean", data)


def check_record(name: str, data: st.DataObject) -> None:
    """The record's VJP against finite differences on one example of its spec's case."""
    rec = registry.get(name)
    inp = SPECS[name].case(data, "float64", False)
    primals = [np.asarray(p, dtype=np.float64) for p in inp.primals]
    outs = registry.forward(name, primals, **inp.kwargs)
    outs = tuple(outs) if rec.multi_output else (outs,)
    live = [i for i, out in enumerate(rec.outputs) if out in rec.differentiated]
    cots = [seeded(data, np.shape(outs[i]), label=f"cotangent_{rec.outputs[i]}") for i in live]
    tangents = [seeded(data, p.shape, label=f"tangent_{k}") for k, p in enumerate(primals)]

    def f(*ps):
        ys = registry.forward(name, ps, **inp.kwargs)
        ys = tuple(ys) if rec.multi_output else (ys,)
        return np.concatenate([np.ravel(ys[i]) for i in live])

    given = dict(zip(live, cots, strict=True))
    grads = registry.vjp(name, primals, tuple(given.get(i) for i in range(len(rec.outputs))),
                         **inp.kwargs)
    if name == "embedding" and inp.kwargs.get("padding_idx") is not None:
        # PyTorch's convention: the padding row is read but never trained, so it gets no
        # gradient; finite differences hold it fixed
        pad = inp.kwargs["padding_idx"]
        assert not np.any(grads[0][pad]), "the padding row got a gradient"
        tangents[0][pad] = 0.0
    # the forward's cancelling terms (the tolerance policy's magnitude M), weighted by |c|
    m = SPECS[name].forward_terms
    terms = m(tuple(primals), inp.kwargs) if m else None
    if terms is not None and not rec.multi_output:
        terms = [terms]
    extra = 0.0 if terms is None else sum(float(np.sum(np.abs(terms[i]) * np.abs(given[i])))
                                          for i in live)
    assert_vjp_matches_fd(f, primals, tangents, np.concatenate([np.ravel(c) for c in cots]),
                          grads, extra)
