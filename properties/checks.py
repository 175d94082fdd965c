"""Checks shared by the property tests: oracle vs backend, under the tolerance policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import strategies as st

from backends import harness
from backends.base import Backend, Unsupported
from properties.cases import CASES, Inputs
from properties.magnitudes import forward_terms, vjp_terms
from properties.strategies import conventions, seeded_array
from properties.tolerance import assert_close, sensitivity
from reference import registry


@contextmanager
def unsupported_as_skip() -> Iterator[None]:
    """A declared Unsupported becomes a skip that reports name as 'unsupported: ...'."""
    try:
        yield
    except Unsupported as exc:
        pytest.skip(f"unsupported: {exc}")



def draw_inputs(data: st.DataObject, backend: Backend, component: str, dtype: str,
                tail: bool = False) -> Inputs:
    """Inputs of ``component`` with the backend's conventions applied."""
    inp = CASES[component](data, dtype, tail)
    inp.kwargs = conventions(data, backend, component, inp.kwargs)
    return inp


def _float_kwargs(inp: Inputs) -> list[str]:
    return [k for k, v in inp.kwargs.items()
            if isinstance(v, np.ndarray) and v.dtype.kind == "f"]


def _oracle(name: str, inp: Inputs):
    """(f, arrays): the oracle forward as a function of every float input, and those inputs."""
    keys = _float_kwargs(inp)
    n = len(inp.primals)

    def f(arrays):
        kw = {**inp.kwargs, **dict(zip(keys, arrays[n:], strict=True))}
        return registry.forward(name, arrays[:n], **kw)

    return f, [*inp.primals, *(inp.kwargs[k] for k in keys)]


def check_forward(backend: Backend, name: str, inp: Inputs, dtype: str) -> None:
    f, arrays = _oracle(name, inp)
    expected = f(arrays)
    with unsupported_as_skip():
        actual = harness.call(backend, name, inp.primals, inp.kwargs, dtype)
    (cond,) = sensitivity(f, arrays)
    m = forward_terms(name, inp.primals, inp.kwargs)
    assert_close(f"{name} forward", actual, expected, dtype, cond if m is None else cond + m,
                 inp.terms)


def check_vjp(backend: Backend, name: str, inp: Inputs, dtype: str, data: st.DataObject) -> None:
    f, arrays = _oracle(name, inp)
    out = np.asarray(f(arrays))
    cot = seeded_array(data.draw, out.shape, dtype)
    keys = _float_kwargs(inp)
    n = len(inp.primals)

    def g(arrs):
        kw = {**inp.kwargs, **dict(zip(keys, arrs[n:-1], strict=True))}
        return registry.vjp(name, arrs[:n], arrs[-1], **kw)

    expected = g([*arrays, cot])
    with unsupported_as_skip():
        _, actual = harness.call_vjp(backend, name, inp.primals, inp.kwargs, cot, dtype)
    conds = sensitivity(g, [*arrays, cot])
    ms = vjp_terms(name, inp.primals, inp.kwargs, cot)
    if ms is not None:
        conds = [c + m for c, m in zip(conds, ms, strict=True)]
    for i, (a, e, c) in enumerate(zip(actual, expected, conds, strict=True)):
        assert_close(f"{name} vjp wrt input {i}", a, e, dtype, c, inp.terms)


