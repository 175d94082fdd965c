"""Checks shared by the property tests: oracle vs backend, under the tolerance policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import reject
from hypothesis import strategies as st

from backends import harness
from backends.base import Backend, Unsupported, UnsupportedComponent
from properties.cases import CASES, Inputs
from properties.magnitudes import forward_terms, vjp_terms
from properties.strategies import conventions, seeded_array
from properties.tolerance import assert_close, current_record, sensitivity, tolerance
from reference import registry


@contextmanager
def unsupported_example() -> Iterator[None]:
    """UnsupportedComponent skips the property as 'unsupported: ...'. Unsupported (this
    example's arguments) sets the example aside (hypothesis.reject) and counts it by reason in
    the test's record; a property whose examples are all set aside is reported unsupported
    (the plugin)."""
    try:
        yield
    except UnsupportedComponent as exc:
        pytest.skip(f"unsupported: {exc}")
    except Unsupported as exc:
        current_record().unsupported[str(exc)] += 1
        reject()


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
    with unsupported_example():
        actual = harness.call(backend, name, inp.primals, inp.kwargs, dtype)
    conds = _with_terms(sensitivity(f, arrays), forward_terms(name, inp.primals, inp.kwargs))
    outputs = registry.OUTPUTS.get(name)
    if outputs is None:
        assert_close(f"{name} forward", actual, expected, dtype, conds[0], inp.terms)
        return
    if not isinstance(actual, list | tuple) or len(actual) != len(outputs):
        raise AssertionError(f"{name}: expected the {len(outputs)} outputs {outputs}, got "
                             f"{type(actual).__name__}")
    for what, a, e, c in zip(outputs, actual, expected, conds, strict=True):
        assert_close(f"{name} {what}", a, e, dtype, c, inp.terms)


def _with_terms(conds: list[np.ndarray], m) -> list[np.ndarray]:
    """The condition terms of a forward's outputs plus the magnitude M of their formula's
    terms (one array for a single output, a list for several; None: none)."""
    if m is None:
        return conds
    ms = m if isinstance(m, list) else [m]
    return [c + mi for c, mi in zip(conds, ms, strict=True)]


def check_vjp(backend: Backend, name: str, inp: Inputs, dtype: str, data: st.DataObject) -> None:
    f, arrays = _oracle(name, inp)
    out = f(arrays)
    out = np.asarray(out[0] if name in registry.OUTPUTS else out)
    cot = seeded_array(data.draw, out.shape, dtype)
    keys = _float_kwargs(inp)
    n = len(inp.primals)

    def g(arrs):
        kw = {**inp.kwargs, **dict(zip(keys, arrs[n:-1], strict=True))}
        return registry.vjp(name, arrs[:n], arrs[-1], **kw)

    expected = g([*arrays, cot])
    with unsupported_example():
        _, actual = harness.call_vjp(backend, name, inp.primals, inp.kwargs, cot, dtype)
    conds = sensitivity(g, [*arrays, cot])
    ms = vjp_terms(name, inp.primals, inp.kwargs, cot)
    if ms is not None:
        conds = [c + m for c, m in zip(conds, ms, strict=True)]
    for i, (a, e, c) in enumerate(zip(actual, expected, conds, strict=True)):
        assert_close(f"{name} vjp wrt input {i}", a, e, dtype, c, inp.terms)




def expected_and_tolerance(name: str, primals: tuple[np.ndarray, ...], kwargs: dict,
                           dtype: str, terms: int = 1):
    """(oracle output, tolerance of a backend's output) of component ``name`` under the policy,
    the condition term measured on the oracle plus the magnitude of its formula's terms.
    Multi-output components give lists of both."""
    f, arrays = _oracle(name, Inputs(tuple(primals), dict(kwargs), terms))
    expected = f(arrays)
    conds = _with_terms(sensitivity(f, arrays), forward_terms(name, tuple(primals), kwargs))
    if name in registry.OUTPUTS:
        return list(expected), [tolerance(e, dtype, c, terms) for e, c in zip(expected, conds,
                                                                              strict=True)]
    return expected, tolerance(expected, dtype, conds[0], terms)
