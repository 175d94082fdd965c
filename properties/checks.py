"""Checks shared by the property tests: oracle vs backend, under the tolerance policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import reject
from hypothesis import strategies as st

from backends import harness
from backends.base import Backend, Unsupported, UnsupportedComponent
from properties.inputs import Inputs
from properties.record import current_record
from properties.scoped import note_arguments
from properties.specs import SPECS, forward_terms, vjp_terms
from properties.strategies import conventions, seeded_array
from properties.tolerance import assert_close, sensitivity, tolerance
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
    """Inputs of ``component`` with the backend's conventions applied (noted as the example's
    arguments, on which a scoped known divergence is judged), and their configuration classes
    noted in the test's record (properties/coverage.py)."""
    spec = SPECS[component]
    record = current_record()
    record.declared = dict(spec.tail_classes if tail else spec.classes)
    inp = spec.case(data, dtype, tail)
    inp.kwargs = conventions(data, backend, component, inp.kwargs)
    # the keyword arguments and, as "<input>_shape", the shapes of the array inputs (a scope
    # may depend on a shape: backends/divergences/predicates.py)
    rec = registry.get(component)
    note_arguments({**inp.kwargs, **{f"{n}_shape": np.shape(p) for n, p in
                                     zip(rec.inputs, inp.primals, strict=False) if p is not None}})
    if spec.classify is not None:  # the classes the backend runs, its conventions applied
        for dimension, cls in spec.classify(inp).items():
            record.note_class(dimension, cls)
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


@dataclass
class Expected:
    """The oracle's side of one checked call: per compared array, its label and the oracle's
    value; ``conditions()``, their condition terms (S + M of the tolerance policy), measured
    when asked: after the backend ran, so an example it sets aside costs no perturbed runs.
    ``cotangents``: a VJP's drawn cotangents, one per output (None: not differentiated)."""

    labels: list[str]
    values: list[np.ndarray]
    conditions: Callable[[], list[np.ndarray]]
    cotangents: tuple[np.ndarray | None, ...] = ()


def forward_expected(name: str, inp: Inputs, dtype: str) -> Expected:
    """The oracle's outputs of component ``name`` on ``inp``, one per output, judged in
    ``dtype``."""
    f, arrays = _oracle(name, inp)
    expected = f(arrays)
    rec = registry.get(name)

    def conditions() -> list[np.ndarray]:
        return _with_terms(sensitivity(f, arrays),
                           forward_terms(name, inp.primals, inp.kwargs, dtype))

    if not rec.multi_output:
        return Expected([f"{name} forward"], [expected], conditions)
    return Expected([f"{name} {what}" for what in rec.outputs], list(expected), conditions)


def forward_actual(backend: Backend, name: str, inp: Inputs, dtype: str) -> list[np.ndarray]:
    """The backend's outputs of component ``name`` on ``inp``, one per output."""
    actual = harness.call(backend, name, inp.primals, inp.kwargs, dtype)
    rec = registry.get(name)
    if not rec.multi_output:
        return [actual]
    outputs = rec.outputs
    if not isinstance(actual, list | tuple) or len(actual) != len(outputs):
        raise AssertionError(f"{name}: expected the {len(outputs)} outputs {outputs}, got "
                             f"{type(actual).__name__}")
    return list(actual)


def assert_expected(expected: Expected, actual: list[np.ndarray], dtype: str, terms: int
                    ) -> None:
    """Every array of ``actual`` close to the oracle's under the policy (assert_close)."""
    for what, a, e, c in zip(expected.labels, actual, expected.values, expected.conditions(),
                             strict=True):
        assert_close(what, a, e, dtype, c, terms)


def check_forward(backend: Backend, name: str, inp: Inputs, dtype: str) -> None:
    expected = forward_expected(name, inp, dtype)
    with unsupported_example():
        actual = forward_actual(backend, name, inp, dtype)
        run_again(expected.labels, actual, lambda: forward_actual(backend, name, inp, dtype))
    assert_expected(expected, actual, dtype, inp.terms)


def _with_terms(conds: list[np.ndarray], m) -> list[np.ndarray]:
    """The condition terms of a forward's outputs plus the magnitude M of their formula's
    terms (one array for a single output, a list for several; None: none)."""
    if m is None:
        return conds
    ms = m if isinstance(m, list) else [m]
    return [c + mi for c, mi in zip(conds, ms, strict=True)]


def vjp_expected(name: str, inp: Inputs, dtype: str, data: st.DataObject) -> Expected:
    """The oracle's gradient of every primal for a drawn cotangent of every differentiated
    output (None for the others)."""
    rec = registry.get(name)
    f, arrays = _oracle(name, inp)
    outs = f(arrays)
    outs = tuple(outs) if rec.multi_output else (outs,)
    cots = tuple(seeded_array(data.draw, np.shape(o), dtype) if out in rec.differentiated
                 else None for out, o in zip(rec.outputs, outs, strict=True))
    live = [i for i, c in enumerate(cots) if c is not None]
    keys = _float_kwargs(inp)
    n, k = len(inp.primals), len(keys)

    def g(arrs):
        kw = {**inp.kwargs, **dict(zip(keys, arrs[n:n + k], strict=True))}
        given = iter(arrs[n + k:])
        return registry.vjp(name, arrs[:n], tuple(next(given) if c is not None else None
                                                  for c in cots), **kw)

    live_cots = [cots[i] for i in live]
    expected = g([*arrays, *live_cots])

    def conditions() -> list[np.ndarray]:
        conds = sensitivity(g, [*arrays, *live_cots])
        ms = vjp_terms(name, inp.primals, inp.kwargs, cots, dtype)
        if ms is not None:
            conds = [c + m for c, m in zip(conds, ms, strict=True)]
        return conds

    return Expected([f"{name} vjp wrt {rec.inputs[i]}" for i in range(len(expected))],
                    list(expected), conditions, cots)


def vjp_actual(backend: Backend, name: str, inp: Inputs, cotangents: tuple, dtype: str
               ) -> list[np.ndarray]:
    """The backend's gradient of every primal of component ``name`` for ``cotangents``."""
    _, actual = harness.call_vjp(backend, name, inp.primals, inp.kwargs, cotangents, dtype)
    return list(actual)


def check_vjp(backend: Backend, name: str, inp: Inputs, dtype: str, data: st.DataObject) -> None:
    """The gradient of every primal for a drawn cotangent of every differentiated output
    (None for the others), against the oracle's VJP."""
    expected = vjp_expected(name, inp, dtype, data)
    with unsupported_example():
        actual = vjp_actual(backend, name, inp, expected.cotangents, dtype)
        run_again(expected.labels, actual,
                  lambda: vjp_actual(backend, name, inp, expected.cotangents, dtype))
    assert_expected(expected, actual, dtype, inp.terms)


def run_again(labels: list[str], first: list[np.ndarray], run: Callable[[], list[np.ndarray]]
              ) -> None:
    """Where the test's record asks for it (``repeat``: the plugin's --determinism), run the
    backend on the same example again and note in the record whether an array differs from
    the first run's (bit for bit, NaN equal to NaN): GPU kernels that reduce with atomics (the
    backward of upsampling, pooling, embedding) are not deterministic."""
    record = current_record()
    if not record.repeat:
        return
    second = run()
    for what, a, b in zip(labels, first, second, strict=True):
        _, max_abs, max_rel = apart(a, b, np.ones(np.shape(a)))
        if max_abs > 0:
            record.note_repeat((what, max_abs, max_rel))
            return
    record.note_repeat(None)


def expected_and_tolerance(name: str, primals: tuple[np.ndarray, ...], kwargs: dict,
                           dtype: str, terms: int = 1):
    """(oracle output, tolerance of a backend's output) of component ``name`` under the policy,
    the condition term measured on the oracle plus the magnitude of its formula's terms.
    Multi-output components give lists of both."""
    f, arrays = _oracle(name, Inputs(tuple(primals), dict(kwargs), terms))
    expected = f(arrays)
    conds = _with_terms(sensitivity(f, arrays), forward_terms(name, tuple(primals), kwargs,
                                                               dtype))
    if registry.get(name).multi_output:
        return list(expected), [tolerance(e, dtype, c, terms) for e, c in zip(expected, conds,
                                                                              strict=True)]
    return expected, tolerance(expected, dtype, conds[0], terms)


def apart(a: np.ndarray, b: np.ndarray, bound: np.ndarray) -> tuple[float, float, float]:
    """(margin = max |a - b| / bound, max |a - b|, max |a - b| / max(|a|, |b|)) of two results:
    equal values (infinities and NaN included) are 0 apart, a NaN or infinity and anything
    else infinitely far; other shapes: infinitely far."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return np.inf, np.inf, np.inf
    if a.size == 0:
        return 0.0, 0.0, 0.0
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = np.where(diff == 0, 0.0, diff / np.maximum(np.abs(a), np.abs(b)))
        ratio = np.where(diff == 0, 0.0, diff / np.broadcast_to(bound, diff.shape))
    rel = np.where(np.isnan(rel), np.inf, rel)
    return float(ratio.max()), float(diff.max()), float(rel.max())
