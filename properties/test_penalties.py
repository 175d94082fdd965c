"""The L1 and L2 weight penalties (reference/regularization.py) on each backend
(backends/regularization.py): their values and gradients (through the backend's autodiff)
against the oracle, and the relations users rely on between a penalty and an optimizer's
weight decay: SGD's weight_decay = wd is SGD without decay fed g + the gradient of
l2_penalty(w, wd, 'half') (in 'l2' mode; in 'decoupled' mode that step's p - lr wd w), and
AdamW's decoupled decay is NOT Adam fed that gradient: their difference is the oracle's.

Tolerances are the policy's (properties/tolerance.py): a penalty sums m non-negative terms
(terms = m, the condition term measured on the oracle); its gradient is one or two products
per element. An optimizer step is compared with the same backend's other run, from the same
parameters, each within the tolerance of the oracle's step (condition measured over the
parameters and gradients of the step, plus the magnitudes |p_s| + |u_s| of the steps
before, whose roundings the optimizer's state carries, as properties/test_optimizers.py
bounds a trajectory), the two tolerances summed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.regularization import call_regularization, call_regularization_vjp, optimizer_stepper
from properties.checks import unsupported_example
from properties.coverage import SIZES, stratum
from properties.record import current_record
from properties.strategies import conventions, realistic
from properties.tolerance import assert_close, assert_within, round_to, sensitivity, tolerance
from reference import regularization as R
from reference.optimizers import make_optimizer

pytestmark = [pytest.mark.dtypes("float32", "float64")]

#: w's shapes, from a menu (JAX compiles each primitive once per shape): small, or realistic
#: (4096 and 8192 terms in the sum)
SHAPES = {"small": ((3,), (4, 5), (2, 3, 4)), "realistic": ((64, 64), (8, 1024))}
SEEDS = st.integers(0, 2**32 - 1)
#: the optimizer runs' steps: enough for a momentum buffer and Adam's moments to build up
MAX_STEPS = 3


def weights(data, shape, dtype: str, label: str = "w seed") -> np.ndarray:
    """Magnitudes in [0.1, 3] with random signs from a drawn seed, rounded to ``dtype``: w
    keeps away from 0, the L1 penalty's kink (where jax's abs derivative is 1 and torch's 0)."""
    rng = np.random.default_rng(data.draw(SEEDS, label=label))
    return round_to(rng.choice((-1.0, 1.0), shape) * rng.uniform(0.1, 3.0, shape), dtype)


def draw_lam(data, dtype: str, label: str = "lam") -> float:
    """lam log-uniform in [1e-4, 10], rounded to ``dtype`` (the backend multiplies by it in
    its dtype, the oracle by the same value)."""
    return float(round_to(10.0 ** data.draw(st.floats(-4, 1), label=f"log10 {label}"), dtype))


def _check_penalty(backend, dtype, data, name: str) -> None:
    record = current_record()
    record.declared = {"sizes": SIZES, **({"convention": R.L2_CONVENTIONS}
                                          if name == "l2_penalty" else {})}
    shape = data.draw(st.sampled_from(SHAPES["realistic" if realistic(data) else "small"]),
                      label="shape")
    w, lam = weights(data, shape, dtype), draw_lam(data, dtype)
    g = float(round_to(data.draw(st.sampled_from((-1.0, 1.0)), label="sign")
                       * data.draw(st.floats(0.5, 2.0), label="|cotangent|"), dtype))
    kw: dict = {"lam": lam}
    if name == "l2_penalty":
        kw = conventions(data, backend, name, {**kw, "convention": "half"})
        record.note_class("convention", kw["convention"])
    forward, vjp = (R.l1_penalty, R.l1_penalty_vjp) if name == "l1_penalty" else \
        (R.l2_penalty, R.l2_penalty_vjp)
    with unsupported_example():
        value = call_regularization(backend, name, w, dtype, **kw)
        value2, dw = call_regularization_vjp(backend, name, w, np.asarray(g), dtype, **kw)

    def f(arrays):
        return [np.asarray(forward(arrays[0], **kw))]

    def fv(arrays):
        return list(vjp(arrays[0], arrays[1], **kw))

    where = f"{name} lam = {lam:.4g} {kw.get('convention', '')}".rstrip()
    # a sum of w.size non-negative terms
    cond = sensitivity(f, [w])[0]
    assert_close(where, value, f([w])[0], dtype, cond, w.size)
    assert_close(f"{where}, the VJP's output", value2, f([w])[0], dtype, cond, w.size)
    arrays = [w, np.asarray(g)]
    # per element: g lam sign(w), or g lam w (2 g lam w): two or three products
    assert_close(f"{where} gradient, cotangent {g:.4g}", dw, fv(arrays)[0], dtype,
                 sensitivity(fv, arrays)[0], 3)


@pytest.mark.component("l1_penalty")
@given(data=st.data())
def test_l1_penalty(backend, dtype, data):
    """l1_penalty(w, lam) = lam sum |w| and its gradient g lam sign(w) (w away from 0)
    equal the oracle's."""
    _check_penalty(backend, dtype, data, "l1_penalty")


@pytest.mark.component("l2_penalty")
@given(data=st.data())
def test_l2_penalty(backend, dtype, data):
    """l2_penalty(w, lam, convention) = (lam / 2) sum w^2 ('half') or lam sum w^2 ('full')
    and its gradient g lam w or 2 g lam w equal the oracle's, for each convention the backend
    declares."""
    _check_penalty(backend, dtype, data, "l2_penalty")


class Run:
    """One optimizer run on the backend, beside the oracle's run of the same optimizer fed
    the same parameters: each step gives the backend's new parameters, the oracle's, and the
    condition of the oracle's step over its parameters and gradients."""

    def __init__(self, backend, name: str, hyper: dict, params: list[np.ndarray], dtype: str,
                 feed: Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]):
        """``feed(g, penalty gradients)``: the gradients this run's optimizer is given."""
        self.step_backend = optimizer_stepper(backend, name, hyper, params, dtype)
        self.oracle = make_optimizer(name, **hyper)
        self.state = self.oracle.init(params)
        self.feed = feed

    def step(self, grads: list[np.ndarray], params: list[np.ndarray],
             penalty: list[np.ndarray], wd: float
             ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """(backend's, oracle's, condition) after one step from ``params``; the backend is
        fed its own penalty gradients ``penalty``, the oracle its own."""
        got = self.step_backend(self.feed(grads, penalty), params)
        n = len(params)

        def f(arrays):
            ps, gs = arrays[:n], arrays[n:]
            pen = [R.l2_penalty_vjp(q, np.asarray(1.0), wd)[0] for q in ps]
            return self.oracle.update(self.feed(gs, pen), self.state, ps)[0]

        arrays = [*params, *grads]
        expected = f(arrays)
        cond = sensitivity(f, arrays)
        self.state = self.oracle.update(self.feed(grads, [R.l2_penalty_vjp(
            q, np.asarray(1.0), wd)[0] for q in params]), self.state, params)[1]
        return got, expected, cond


def _problem(data, dtype):
    """(params, gradient sequence, lr, wd): 1 or 2 small arrays, 1 to MAX_STEPS steps of
    standard-normal gradients, lr and wd in [0.01, 0.5] (lr wd >= 1e-4: a decay far above
    rounding in float32)."""
    shapes = [data.draw(st.sampled_from(SHAPES["small"]), label="shape")
              for _ in range(data.draw(st.integers(1, 2), label="n_params"))]
    params = [weights(data, s, dtype) for s in shapes]
    steps = data.draw(st.integers(1, MAX_STEPS), label="steps")
    grads = [[round_to(np.random.default_rng(data.draw(SEEDS, label="g seed"))
                       .standard_normal(s), dtype) for s in shapes] for _ in range(steps)]
    lr = float(round_to(data.draw(st.floats(0.01, 0.5), label="lr"), dtype))
    wd = float(round_to(data.draw(st.floats(0.01, 0.5), label="wd"), dtype))
    return params, grads, lr, wd


def _penalty_gradients(backend, params, wd, dtype):
    """The gradient of the backend's l2_penalty(w, wd, 'half') at each parameter."""
    return [call_regularization_vjp(backend, "l2_penalty", q, np.asarray(1.0), dtype, lam=wd,
                                    convention="half")[1] for q in params]


def _plus(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _step_bound(expected, cond, carried, dtype, k):
    """The tolerance of a step k + 1 result: the oracle's step's condition plus the magnitudes
    the state carries from the steps before (spread over their k + 1 roundings)."""
    return [tolerance(e, dtype, c + m / np.sqrt(k + 1), k + 1)
            for e, c, m in zip(expected, cond, carried, strict=True)]


@pytest.mark.component("l2_penalty")
@given(data=st.data())
def test_l2_penalty_is_sgd_weight_decay(backend, dtype, data):
    """SGD with weight_decay = wd on g takes the step of SGD without decay on g + the
    gradient of the backend's l2_penalty(w, wd, 'half') ('l2' weight decay, the backend's
    declared sgd convention), or that step minus lr wd w ('decoupled'), with and without
    momentum, over 1 to 3 steps (each from the decayed run's parameters)."""
    current_record().declared = {"momentum": ("none", "momentum")}
    params, grads, lr, wd = _problem(data, dtype)
    momentum = 0.9 if stratum(data, "momentum", ("none", "momentum")) == "momentum" else 0.0
    nesterov = momentum > 0 and data.draw(st.booleans(), label="nesterov")
    hyper = conventions(data, backend, "sgd", {"lr": lr, "momentum": momentum,
                                               "nesterov": nesterov, "weight_decay": wd,
                                               "weight_decay_mode": "l2"})
    decoupled = hyper["weight_decay_mode"] == "decoupled"
    with unsupported_example():
        decayed = Run(backend, "sgd", hyper, params, dtype, lambda g, pen: g)
        plain = Run(backend, "sgd", {**hyper, "weight_decay": 0.0}, params, dtype,
                    (lambda g, pen: g) if decoupled else _plus)
        p, carried = params, [np.zeros_like(q) for q in params]
        for k, g in enumerate(grads):
            pen = _penalty_gradients(backend, p, wd, dtype)
            got, e_decayed, c_decayed = decayed.step(g, p, pen, wd)
            want, e_plain, c_plain = plain.step(g, p, pen, wd)
            if decoupled:
                want = [q - lr * d for q, d in zip(want, pen, strict=True)]
                e_plain = [q - lr * wd * w for q, w in zip(e_plain, p, strict=True)]
            carried = [m + np.abs(e - q) + np.abs(e) for m, e, q in zip(carried, e_decayed, p,
                                                                         strict=True)]
            bounds = [a + b for a, b in zip(_step_bound(e_decayed, c_decayed, carried, dtype, k),
                                            _step_bound(e_plain, c_plain, carried, dtype, k),
                                            strict=True)]
            for i, (a, b, bound) in enumerate(zip(got, want, bounds, strict=True)):
                assert_within(f"sgd weight_decay = {wd:.4g} against the l2 penalty's gradient "
                              f"({hyper['weight_decay_mode']}), step {k + 1} param {i}", a, b,
                              bound)
            p = got


@pytest.mark.component("l2_penalty")
@given(data=st.data())
def test_l2_penalty_is_not_adamw_decay(backend, dtype, data):
    """AdamW with weight_decay = wd and Adam without decay fed g + the gradient of the
    backend's l2_penalty(w, wd, 'half'), from the same parameters, differ by what the oracle's
    two optimizers differ by (Adam normalises the penalty's gradient, AdamW decays w by
    lr wd w outside it), within the sum of their tolerances, over 1 to 3 steps."""
    params, grads, lr, wd = _problem(data, dtype)
    hyper = conventions(data, backend, "adamw", {"lr": lr, "weight_decay": wd})
    with unsupported_example():
        adamw = Run(backend, "adamw", hyper, params, dtype, lambda g, pen: g)
        adam = Run(backend, "adam", {**hyper, "weight_decay": 0.0}, params, dtype, _plus)
        p, carried = params, [np.zeros_like(q) for q in params]
        for k, g in enumerate(grads):
            pen = _penalty_gradients(backend, p, wd, dtype)
            got_w, e_w, c_w = adamw.step(g, p, pen, wd)
            got_a, e_a, c_a = adam.step(g, p, pen, wd)
            carried = [m + np.abs(e - q) + np.abs(e) for m, e, q in zip(carried, e_w, p,
                                                                         strict=True)]
            bounds = [a + b for a, b in zip(_step_bound(e_w, c_w, carried, dtype, k),
                                            _step_bound(e_a, c_a, carried, dtype, k),
                                            strict=True)]
            for i in range(len(p)):
                assert_within(f"adamw minus adam with the l2 penalty's gradient, wd = {wd:.4g}, "
                              f"step {k + 1} param {i}", got_w[i] - got_a[i], e_w[i] - e_a[i],
                              bounds[i])
            p = got_w
