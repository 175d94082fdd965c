"""Sequence layers (rnn, lstm, gru: several layers, bidirectional, variable lengths) and
gradient clipping against the oracle, and the invariants they keep (backends/recurrent.py
has the interface, properties/sequence_cases.py the cases).

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle, plus what every step's rounding becomes at the results (properties/sequence_terms.py
``propagated``: the magnitudes of each cell step's terms, carried through the recurrence).
An invariant comparing two backend results carries the sum of their tolerances. Where the
oracle's value lies outside the dtype's range (an exploding ReLU RNN over long sequences in
float32), that element is not compared: results are compared wherever finite.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.recurrent import OUTPUTS, call_clip, call_sequence, call_sequence_vjp
from properties import sequence_cases as SC
from properties.checks import unsupported_example
from properties.record import current_record
from properties.sequence_terms import flat_gradients, propagated
from properties.specs import forward_terms, vjp_terms
from properties.strategies import seeded_array
from properties.tolerance import (
    assert_close,
    assert_within,
    sensitivity,
    tolerance,
)
from reference import clipping as Cl
from reference import recurrent as R

pytestmark = pytest.mark.dtypes("float32", "float64")
KINDS = SC.KINDS
#: the sequence invariants check a backend against itself, where float32 is what users run
#: and where a framework's paths differ most; float64 adds a JAX compilation per
#: configuration for no other check (reference/recurrent.py's own invariants are tested in
#: tests/test_oracle_recurrent.py)
INVARIANT_DTYPES = ("float32",)
_CELLS = {"rnn": (R.rnn_cell, R.rnn_cell_vjp), "lstm": (R.lstm_cell, R.lstm_cell_vjp),
          "gru": (R.gru_cell, R.gru_cell_vjp)}


def _in_range(expected: np.ndarray, dtype: str) -> np.ndarray:
    """Where the oracle's value is finite in ``dtype`` (what a backend can return)."""
    big = float(np.finfo(np.float16 if dtype == "float16" else np.float32
                         if dtype in ("float32", "bfloat16") else np.float64).max)
    with np.errstate(invalid="ignore"):
        return np.isfinite(expected) & (np.abs(expected) < big / 2)


def _close(what, actual, expected, dtype, condition, terms):
    """assert_close where the oracle's value is finite in the dtype."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if a.shape != e.shape:
        return assert_close(what, a, e, dtype, condition, terms)
    ok = _in_range(e, dtype)
    return assert_close(what, a[ok], e[ok], dtype, np.broadcast_to(condition, e.shape)[ok],
                        terms)


def _conditions(case: SC.SequenceCase, dtype: str, cots=None
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The oracle's outputs (or, with cotangents, gradients) and each one's condition term:
    the sensitivity measured on the oracle plus the rounding the steps propagate."""
    arrays = case.arrays()
    if cots is None:
        expected = case.forward(arrays)
        conds = sensitivity(case.forward, arrays)
    else:
        n = len(arrays)
        expected = case.gradients(arrays, cots)
        conds = sensitivity(lambda a: case.gradients(a[:n], a[n:]), [*arrays, *cots])
    spread = propagated(case.kind, case.x, case.states, case.params, case.kwargs, cots,
                        dtype=dtype)
    return expected, [c + s for c, s in zip(conds, spread, strict=True)]


def _tolerances(case: SC.SequenceCase, dtype: str, cots=None) -> list[np.ndarray]:
    """The policy's tolerance of each output (or, with cotangents, each gradient)."""
    expected, conds = _conditions(case, dtype, cots)
    return [tolerance(e, dtype, c, case.terms) for e, c in zip(expected, conds, strict=True)]


# -- against the oracle ------------------------------------------------------------------------
@pytest.mark.parametrize("component", KINDS)
@given(data=st.data())
def test_sequence_forward(backend, dtype, component, data):
    """y (outputs past a sequence's end exactly 0) and the final states equal the oracle's."""
    current_record().declared = SC.classes(component)
    case = SC.draw_sequence(data, backend, component, dtype)
    with unsupported_example():
        actual = call_sequence(backend, component, case.x, case.states, case.params,
                               case.kwargs, dtype)
    expected, conds = _conditions(case, dtype)
    for name, a, e, c in zip(OUTPUTS[component], actual, expected, conds, strict=True):
        _close(f"{component} {name}", a, e, dtype, c, case.terms)


@pytest.mark.parametrize("component", KINDS)
@given(data=st.data())
def test_sequence_gradients(backend, dtype, component, data):
    """The gradient of x, of every initial state given and of every weight, for a drawn
    cotangent of every output, by the backend's own autodiff, equal the oracle's
    backpropagation through time."""
    current_record().declared = SC.classes(component)
    case = SC.draw_sequence(data, backend, component, dtype)
    arrays = case.arrays()
    outs = case.forward(arrays)
    cots = SC.cotangents(data, outs, dtype)
    expected, conds = _conditions(case, dtype, cots)
    SC.assume_in_range(expected, dtype)
    with unsupported_example():
        _, grads = call_sequence_vjp(backend, component, case.x, case.states, case.params,
                                          case.kwargs, cots, dtype)
    actual = flat_gradients(grads)
    names = case.gradient_names()
    assert len(actual) == len(expected), f"{len(actual)} gradients for {names}"
    for name, a, e, c in zip(names, actual, expected, conds, strict=True):
        _close(f"{component} gradient of {name}", a, e, dtype, c, case.terms)


# -- invariants --------------------------------------------------------------------------------
def _cell_step(case: SC.SequenceCase, k: int, dtype: str, cots=None):
    """The oracle cell of direction ``k`` on the first step: (its outputs, their tolerances)
    or, given the cotangents of its outputs, (its gradients [dx, d every state, d every given
    weight], their tolerances); each tolerance the policy's condition term plus the cell's own
    magnitudes (specs.forward_terms, specs.vjp_terms)."""
    kind = case.kind
    fn, vjp = _CELLS[kind]
    kw = {key: case.kwargs[key] for key in ("nonlinearity", "reset_after") if key in case.kwargs}
    ws = list(case.params[k]) + [None] * (4 - len(case.params[k]))
    n, h = case.x.shape[1], case.params[0][1].shape[1]
    states = [np.zeros((n, h)) if s is None else s[k] for s in case.states]
    ns = len(states)
    present = [w is not None for w in ws]
    primals = [case.x[0], *states, *(w for w in ws if w is not None)]

    def full(a):
        it = iter(a[1 + ns:])
        return (a[0], *a[1:1 + ns], *(next(it) if p else None for p in present))

    name = f"{kind}_cell"
    if cots is None:
        def f(a):
            out = fn(*full(a), **kw)
            return list(out) if kind == "lstm" else [out]
        arrays = primals
        ms = forward_terms(name, full(primals), kw)
        ms = ms if isinstance(ms, list) else [ms]
    else:
        m = len(primals)

        def f(a):
            return [g for g in vjp(*full(a[:m]), *a[m:], **kw) if g is not None]
        arrays = [*primals, *cots]
        ms = vjp_terms(name, full(primals), kw, tuple(cots) if kind == "lstm" else cots[0])
        ms = [mm for mm, p in zip(ms, [True] * (1 + ns) + present, strict=True) if p]
    expected = f(arrays)
    conds = sensitivity(f, arrays)
    terms = case.x.shape[2] + h + 2
    return expected, [tolerance(e, dtype, c + mm, terms)
                      for e, c, mm in zip(expected, conds, ms, strict=True)]


def _order(case: SC.SequenceCase) -> list[int]:
    """The directions in the order y concatenates them."""
    order = list(range(case.dirs))
    return order[::-1] if case.kwargs.get("direction_order") == "backward_forward" else order


@pytest.mark.dtypes(*INVARIANT_DTYPES)
@pytest.mark.parametrize("component", KINDS)
@given(data=st.data())
def test_sequence_length_one_is_a_cell_step(backend, dtype, component, data):
    """A sequence of one step is one cell step per direction: y[0] is the cells' h'
    concatenated in the backend's direction order, h_n (and c_n) stack them, and the
    gradients are the cells' for the cotangent of y[0]'s part plus that of h_n."""
    current_record().declared = {k: v for k, v in SC.classes(component).items()
                                 if k not in ("length", "sizes", "topology", "lengths")}
    case = SC.draw_sequence(data, backend, component, dtype, t=(1,),
                            topologies=("one_bidirectional",), lengths="none")
    h = case.params[0][1].shape[1]
    with unsupported_example():
        outs = call_sequence(backend, component, case.x, case.states, case.params, case.kwargs,
                             dtype)
    for pos, k in enumerate(_order(case)):
        expected, tols = _cell_step(case, k, dtype)
        part = slice(pos * h, (pos + 1) * h)
        assert_within(f"y[0][..., {part.start}:{part.stop}] vs the cell of direction {k}",
                      outs[0][0][:, part], expected[0], tols[0])
        for j, name in enumerate(OUTPUTS[component][1:]):
            assert_within(f"{name}[{k}] vs the cell of direction {k}", outs[1 + j][k],
                          expected[j], tols[j])
    cots = SC.cotangents(data, list(outs), dtype)
    with unsupported_example():
        _, grads = call_sequence_vjp(backend, component, case.x, case.states, case.params,
                                     case.kwargs, cots, dtype)
    ns = len(case.states)
    dx, dx_tol = 0.0, 0.0
    for pos, k in enumerate(_order(case)):
        part = slice(pos * h, (pos + 1) * h)
        cell_cots = [cots[0][0][:, part] + cots[1][k], *(c[k] for c in cots[2:])]
        expected, _ = _cell_step(case, k, dtype, cell_cots)
        # a backend may backpropagate y[0]'s and h_n's cotangents on their own and add the
        # gradients (jax does: float32 GRU, c_y -0.5443 + c_hn 0.5453 at one unit gave a
        # weight gradient off by 3.6e-5 relative, eps32 times either part, 0.17): the bound is the
        # sum of the two parts' bounds, a sum of independent errors (tolerance.compare's scale)
        y_part = [cots[0][0][:, part], *(np.zeros_like(c[k]) for c in cots[2:])]
        state_part = [cots[1][k], *(c[k] for c in cots[2:])]
        tols = [a + b for a, b in zip(_cell_step(case, k, dtype, y_part)[1],
                                      _cell_step(case, k, dtype, state_part)[1], strict=True)]
        dx, dx_tol = dx + expected[0], dx_tol + tols[0]
        for j, s in enumerate(case.states):
            if s is not None:
                assert_within(f"gradient of {SC.STATES[component][j]}[{k}] vs the cell's",
                              grads[1 + j][k], expected[1 + j], tols[1 + j])
        given = [g for g in grads[-1][k] if g is not None]
        for j, (a, e, t) in enumerate(zip(given, expected[1 + ns:], tols[1 + ns:], strict=True)):
            assert_within(f"gradient of params[{k}][{j}] vs the cell's", a, e, t)
    assert_within("gradient of x[0] vs the cells'", grads[0][0], dx, dx_tol)


@pytest.mark.dtypes(*INVARIANT_DTYPES)
@pytest.mark.parametrize("component", KINDS)
@given(data=st.data())
def test_sequence_padding_changes_nothing(backend, dtype, component, data):
    """Input past each sequence's end, and extra padded steps, change no output and no
    gradient: y and dx there are exactly 0, and everything else equals the unpadded run's
    (within both runs' tolerances)."""
    current_record().declared = {k: v for k, v in SC.classes(component).items()
                                 if k not in ("length", "sizes", "topology", "lengths")}
    # two bidirectional layers: the second reads the first's padded outputs, the backward
    # direction each sequence reversed within its length
    case = SC.draw_sequence(data, backend, component, dtype, t=(SC.SMALL_T,),
                            topologies=("stacked_bidirectional",), lengths="variable")
    t, n, i = case.x.shape
    extra = 2  # padded to the next T of the menu, 5 (compilations shared with the others)
    lengths = case.kwargs["lengths"]
    pad = np.arange(t + extra)[:, None] >= lengths[None, :]
    x2 = np.concatenate([case.x, np.zeros((extra, n, i))])
    x2 = np.where(pad[..., None], seeded_array(data.draw, x2.shape, dtype, 3.0), x2)
    padded = SC.SequenceCase(component, x2, case.states, case.params, case.kwargs, case.terms)
    with unsupported_example():
        y1 = call_sequence(backend, component, case.x, case.states, case.params, case.kwargs,
                           dtype)
        y2 = call_sequence(backend, component, x2, case.states, case.params, case.kwargs, dtype)
    tol1, tol2 = _tolerances(case, dtype), _tolerances(padded, dtype)
    assert_within("y past each sequence's end", y2[0][pad], np.zeros_like(y2[0][pad]), 0.0)
    assert_within("y with padding vs without", y2[0][:t], y1[0], tol1[0] + tol2[0][:t])
    for j, name in enumerate(OUTPUTS[component][1:], start=1):
        assert_within(f"{name} with padding vs without", y2[j], y1[j], tol1[j] + tol2[j])
    cots2 = SC.cotangents(data, list(y2), dtype)
    cots1 = [cots2[0][:t], *cots2[1:]]
    with unsupported_example():
        _, g1 = call_sequence_vjp(backend, component, case.x, case.states, case.params,
                                  case.kwargs, cots1, dtype)
        _, g2 = call_sequence_vjp(backend, component, x2, case.states, case.params, case.kwargs,
                                  cots2, dtype)
    tol1, tol2 = _tolerances(case, dtype, cots1), _tolerances(padded, dtype, cots2)
    assert_within("dx past each sequence's end", g2[0][pad], np.zeros_like(g2[0][pad]), 0.0)
    assert_within("dx with padding vs without", g2[0][:t], g1[0], tol1[0] + tol2[0][:t])
    names = case.gradient_names()
    for j, (a, b, ta, tb) in enumerate(zip(flat_gradients(g2)[1:], flat_gradients(g1)[1:],
                                           tol2[1:], tol1[1:], strict=True), start=1):
        assert_within(f"gradient of {names[j]} with padding vs without", a, b, ta + tb)


@pytest.mark.dtypes(*INVARIANT_DTYPES)
@pytest.mark.parametrize("component", KINDS)
@given(data=st.data())
def test_sequence_backward_direction_is_forward_on_reversed(backend, dtype, component, data):
    """A bidirectional layer's backward direction is the forward-only layer with the backward
    weights run on each sequence reversed within its length, its outputs reversed back; its
    forward direction is the forward-only layer; y concatenates them in the backend's
    direction order and h_n (c_n) stacks them."""
    current_record().declared = {k: v for k, v in SC.classes(component).items()
                                 if k not in ("length", "sizes", "topology")}
    case = SC.draw_sequence(data, backend, component, dtype, t=(SC.SMALL_T,),
                            topologies=("one_bidirectional",))
    t, n, _ = case.x.shape
    h = case.params[0][1].shape[1]
    lengths = case.kwargs["lengths"]
    full = np.full(n, t) if lengths is None else lengths
    steps = np.arange(t)[:, None]
    rev = (np.where(steps < full[None, :], full[None, :] - 1 - steps, steps), np.arange(n)[None, :])
    one = {k: v for k, v in case.kwargs.items() if k != "direction_order"}
    one["bidirectional"] = False
    cases = {"bi": case}
    for d, x in ((0, case.x), (1, case.x[rev])):
        cases[d] = SC.SequenceCase(component, x, tuple(None if s is None else s[d:d + 1]
                                                       for s in case.states),
                                   [case.params[d]], one, case.terms)
    with unsupported_example():
        outs = {k: call_sequence(backend, component, c.x, c.states, c.params, c.kwargs, dtype)
                for k, c in cases.items()}
    tols = {k: _tolerances(c, dtype) for k, c in cases.items()}
    halves = {d: slice(pos * h, (pos + 1) * h) for pos, d in enumerate(_order(case))}
    assert_within("forward half of y vs the forward-only layer", outs["bi"][0][..., halves[0]],
                  outs[0][0], tols["bi"][0][..., halves[0]] + tols[0][0])
    assert_within("backward half of y vs the forward-only layer on the reversed sequences",
                  outs["bi"][0][..., halves[1]], outs[1][0][rev],
                  tols["bi"][0][..., halves[1]] + tols[1][0][rev])
    for j, name in enumerate(OUTPUTS[component][1:], start=1):
        for d in (0, 1):
            assert_within(f"{name}[{d}] vs the forward-only layer's", outs["bi"][j][d],
                          outs[d][j][0], tols["bi"][j][d] + tols[d][j][0])


# -- clipping --------------------------------------------------------------------------------
def _clip_expected(case: SC.ClipCase, dtype: str):
    """(the oracle's clipped gradients, their tolerances): the condition term over the
    gradients and max_norm; the global norm sums ``terms`` squares (no cancellation)."""
    def f(arrays):
        return Cl.clip_by_global_norm(arrays[:-1], float(arrays[-1]), case.kwargs["eps"])
    arrays = [*case.grads, np.asarray(case.kwargs["max_norm"])]
    expected = f(arrays)
    conds = sensitivity(f, arrays)
    return expected, [tolerance(e, dtype, c, case.terms)
                      for e, c in zip(expected, conds, strict=True)]


def _clip(backend, case: SC.ClipCase, dtype: str) -> list[np.ndarray]:
    with unsupported_example():
        return call_clip(backend, "clip_by_global_norm", case.grads, case.kwargs, dtype)


@pytest.mark.component("clip_by_global_norm")
@given(data=st.data())
def test_clip_by_global_norm(backend, dtype, data):
    """Clipping by global norm above, below and within a few ulps of max_norm equals the
    oracle's in the backend's epsilon convention."""
    case = SC.draw_clip(data, backend, dtype, regimes=("above", "below", "near"))
    expected, tols = _clip_expected(case, dtype)
    actual = _clip(backend, case, dtype)
    for i, (a, e, t) in enumerate(zip(actual, expected, tols, strict=True)):
        assert_within(f"clipped grads[{i}]", a, e, t)


@pytest.mark.component("clip_by_global_norm")
@given(data=st.data())
def test_clip_by_global_norm_bounds_norm_keeps_direction(backend, dtype, data):
    """Above max_norm the clipped gradients have a global norm of at most max_norm (torch:
    max_norm n / (n + 1e-6), its epsilon) and are one non-negative multiple c of the
    gradients: each a - c g lies within the tolerance of a plus |g| times that of c."""
    case = SC.draw_clip(data, backend, dtype, regimes=("above",))
    _, tols = _clip_expected(case, dtype)
    actual = _clip(backend, case, dtype)
    g = np.concatenate([x.ravel() for x in case.grads])
    a = np.concatenate([x.ravel() for x in actual])
    tol = np.concatenate([t.ravel() for t in tols])
    n = float(np.sqrt(g @ g))
    m = case.kwargs["max_norm"]
    bound = m * n / (n + Cl.TORCH_EPS) if case.kwargs["eps"] == "torch" else m
    norm_tol = float(np.sqrt(tol @ tol))
    assert_within("global norm above its bound", max(float(np.sqrt(a @ a)) - bound, 0.0), 0.0,
                  norm_tol)
    c = float(a @ g) / float(g @ g)
    assert_within("clipped gradients' multiple of the gradients (>= 0)", min(c, 0.0), 0.0,
                  norm_tol / n)
    assert_within("clipped gradients off the gradients' direction", a, c * g,
                  tol + np.abs(g) * norm_tol / n)


@pytest.mark.component("clip_by_global_norm")
@given(data=st.data())
def test_clip_by_global_norm_below_threshold_changes_nothing(backend, dtype, data):
    """Under max_norm (by more than torch's epsilon and the norm's rounding), and for a zero
    gradient under any max_norm > 0, the gradients come back exactly."""
    case = SC.draw_clip(data, backend, dtype, regimes=("below",))
    actual = _clip(backend, case, dtype)
    for i, (a, g) in enumerate(zip(actual, case.grads, strict=True)):
        assert_within(f"grads[{i}] clipped under max_norm", a, g, 0.0)


@pytest.mark.component("clip_by_global_norm")
@given(data=st.data())
def test_clip_by_global_norm_zero_cases(backend, dtype, data):
    """A zero gradient is returned as zeros under any max_norm, max_norm = 0 included, and
    max_norm = 0 clips any gradient to zeros: defined, never NaN (the oracle's convention)."""
    case = SC.draw_clip(data, backend, dtype, regimes=("zero_gradient", "zero_max_norm"))
    actual = _clip(backend, case, dtype)
    for i, a in enumerate(actual):
        assert_within(f"grads[{i}] clipped ({case.regime})", a, np.zeros_like(a), 0.0)


@pytest.mark.component("clip_by_value")
@given(data=st.data())
def test_clip_by_value(backend, dtype, data):
    """Each element clipped to [-clip_value, clip_value], infinite ones included, exactly."""
    current_record().declared = dict(SC.VALUE_CLASSES)
    grads, clip_value = SC.draw_clip_value(data, dtype)
    expected = Cl.clip_by_value(grads, clip_value)
    with unsupported_example():
        actual = call_clip(backend, "clip_by_value", grads, {"clip_value": clip_value}, dtype)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_within(f"grads[{i}] clipped by value", a, e, 0.0)
