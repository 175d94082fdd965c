"""The oracle certifies itself: every hand-written backward pass in reference/ agrees with
float64 central finite differences, and the optimizer updates obey invariants that follow from
their formulas (checked without re-implementing any optimizer).

Gradients use the inner-product identity. For primals p_i, tangents t_i and a cotangent c,
phi(s) = <f(p + s t), c> has phi'(0) = <J t, c> = sum_i <t_i, (J^T c)_i>; the left side is a
central difference of two forward calls, the right side comes from the VJP under test.

Error bound of the central difference fd(h) = (phi(h) - phi(-h)) / 2h:

    |fd(h) - phi'(0)| <= (h^2 / 6) |phi'''|  +  u M / h

- truncation: measured, not guessed. fd(2h) - fd(h) = 3 (h^2 / 6) phi''' + O(h^4), so
  |fd(2h) - fd(h)| is three times the Richardson estimate of the truncation error; that is
  what we allow (it depends on the forward only, so a wrong VJP cannot widen it).
- rounding: one evaluation of phi is wrong by at most u M, where M bounds the magnitude of
  the terms phi is computed from: max_s sum |f(p + s t) c| (the output at every point
  evaluated), sum <|p_i| + 2h |t_i|, |(J^T c)_i|> (p + s t is itself rounded) and, where
  intermediate terms can cancel in the output, their magnitude weighted by |c| (a matrix
  product's |x| |w|, BCE's x and x y, log-softmax's x and logsumexp, an MLP's layers): each
  test passes that as ``extra_magnitude``. u = 64 eps: libm-grade transcendental functions
  are within a few ulps and the reductions here are at most a few dozen terms long.
- the inner product on the VJP side is a sum of n terms: n eps sum <|t_i|, |(J^T c)_i|>.

h = 1e-6 * max(1, max |p|) keeps u M / h near 1.4e-8 M and h^2 |phi'''| near 1e-12, so a
VJP wrong by more than ~1e-7 of the magnitude of its terms fails (see
test_the_check_rejects_a_slightly_wrong_vjp). Every input keeps GAP = 1e-3 away from any
kink, which the steps (|s t| <= 2h <= 2.4e-5) never reach.

The Hypothesis profile is the project's (--hypothesis-profile dev|ci|thorough).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import activations as A
from reference import dense as D
from reference import losses as L
from reference import mlp as M
from reference.optimizers import make_optimizer

EPS = float(np.finfo(np.float64).eps)
U = 64 * EPS
H_REL = 1e-6
GAP = 1e-3


# --------------------------------------------------------------------------- the FD check

def _dot(a, b) -> float:
    return float(np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)))


def fd_mismatch(f, primals, tangents, cotangent, grads, extra_magnitude: float = 0.0):
    """(|fd - vjp|, tolerance, details) for f(*primals) against grads = J^T cotangent."""
    primals = [np.asarray(p, dtype=np.float64) for p in primals]
    scale = max([1.0] + [float(np.max(np.abs(p), initial=0.0)) for p in primals])
    h = H_REL * scale

    out_mag = 0.0

    def phi(s: float) -> float:
        nonlocal out_mag
        y = np.asarray(f(*[p + s * t for p, t in zip(primals, tangents, strict=True)]))
        out_mag = max(out_mag, float(np.sum(np.abs(y * cotangent))))
        return _dot(y, cotangent)

    phi(0.0)
    fd_h = (phi(h) - phi(-h)) / (2 * h)
    fd_2h = (phi(2 * h) - phi(-2 * h)) / (4 * h)
    vjp = sum(_dot(t, g) for t, g in zip(tangents, grads, strict=True))
    n = sum(np.size(t) for t in tangents)
    in_mag = sum(_dot(np.abs(p) + 2 * h * np.abs(t), np.abs(g))
                 for p, t, g in zip(primals, tangents, grads, strict=True))
    term_mag = sum(_dot(np.abs(t), np.abs(g)) for t, g in zip(tangents, grads, strict=True))
    truncation = abs(fd_2h - fd_h)
    rounding = U * (out_mag + in_mag + extra_magnitude) / h + n * EPS * term_mag
    tol = truncation + rounding + np.finfo(np.float64).tiny
    return abs(fd_h - vjp), tol, dict(fd=fd_h, fd_2h=fd_2h, vjp=vjp, h=h, truncation=truncation,
                                      rounding=rounding)


def assert_vjp_matches_fd(f, primals, tangents, cotangent, grads, extra_magnitude: float = 0.0):
    for p, t, g in zip(primals, tangents, grads, strict=True):
        assert g is not None and np.shape(g) == np.shape(p) == np.shape(t), \
            f"gradient shape {np.shape(g)} for a primal of shape {np.shape(p)}"
        assert np.all(np.isfinite(g)), "the VJP returned a non-finite gradient"
    err, tol, info = fd_mismatch(f, primals, tangents, cotangent, grads, extra_magnitude)
    assert err <= tol, f"|fd - vjp| = {err:.3e} > tolerance {tol:.3e}: {info}"


# --------------------------------------------------------------------------- strategies

def _finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from(a, kinks, gap: float = GAP) -> np.ndarray:
    """``a`` with every element within ``gap`` of a kink moved to 2 gap from it, on its side.
    The kinks passed together are always more than 4 gap apart."""
    a = np.array(a, dtype=np.float64)
    for k in kinks:
        d = a - k
        a = np.where(np.abs(d) < gap, k + np.where(d < 0, -2 * gap, 2 * gap), a)
    return a


def arrays(shape, lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=_finite(lo, hi))


def unit(shape) -> st.SearchStrategy[np.ndarray]:
    """Tangents and cotangents."""
    return arrays(shape, -1.0, 1.0)


def seeded(data, shape, scale: float = 1.0, label: str = "seed") -> np.ndarray:
    """Standard normal draws from a drawn seed: kink-free with high probability, unlike the
    small round numbers Hypothesis favours, for networks whose kinks are hidden inside."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=label)
    return scale * np.random.default_rng(seed).standard_normal(shape)


small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


# --------------------------------------------------------------------------- dense

@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@given(data=st.data())
def test_dense_vjp_matches_fd(data, with_bias):
    n, i, o = (data.draw(st.integers(1, 4), label=k) for k in "nio")
    x = data.draw(arrays((n, i), -3, 3), label="x")
    w = data.draw(arrays((i, o), -3, 3), label="w")
    b = data.draw(arrays((o,), -3, 3), label="b") if with_bias else None
    c = data.draw(unit((n, o)), label="cotangent")
    dx, dw, db = D.dense_vjp(x, w, b, c)
    primals, grads = [x, w], [dx, dw]
    if with_bias:
        primals.append(b)
        grads.append(db)
    else:
        assert db is None
    tangents = [data.draw(unit(p.shape), label=f"t{j}") for j, p in enumerate(primals)]
    magnitude = _dot(np.abs(c), np.abs(x) @ np.abs(w))  # the terms of x @ w can cancel
    assert_vjp_matches_fd(lambda *p: D.dense(*p), primals, tangents, c, grads, magnitude)


# --------------------------------------------------------------------------- activations

#: (name, fixed conventions); continuous conventions are drawn in _activation_kwargs.
ACTIVATION_CASES = [
    ("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {}), ("elu", {}),
    ("gelu", {"approximate": "none"}), ("gelu", {"approximate": "tanh"}), ("silu", {}),
    ("softplus", {"threshold": None}), ("softplus", {"threshold": 20.0}),
]


def test_activation_cases_cover_every_activation():
    assert {name for name, _ in ACTIVATION_CASES} == set(A.ACTIVATIONS)
    assert {kw["approximate"] for name, kw in ACTIVATION_CASES if name == "gelu"} == \
        set(A.GELU_APPROXIMATIONS)


def _activation_kwargs(data, name: str, fixed: dict) -> tuple[dict, tuple[float, ...]]:
    """Keyword conventions and the kinks of the activation under them."""
    kw = dict(fixed)
    if name == "leaky_relu":
        kw["negative_slope"] = data.draw(_finite(0.0, 2.0), label="negative_slope")
    elif name == "elu":
        kw["alpha"] = data.draw(_finite(0.1, 3.0), label="alpha")
    elif name == "softplus":
        kw["beta"] = data.draw(_finite(0.25, 8.0), label="beta")
    if name in ("relu", "leaky_relu", "elu"):
        return kw, (0.0,)
    if name == "softplus" and kw["threshold"] is not None:
        return kw, (kw["threshold"] / kw["beta"],)  # PyTorch switches to x there (a tiny jump)
    return kw, ()


@pytest.mark.parametrize(("name", "fixed"), ACTIVATION_CASES,
                         ids=[n + "".join(f"-{v}" for v in kw.values()) for n, kw in ACTIVATION_CASES])
@given(data=st.data())
def test_activation_vjp_matches_fd(data, name, fixed):
    f, f_vjp = A.ACTIVATIONS[name]
    kw, kinks = _activation_kwargs(data, name, fixed)
    shape = data.draw(small_shapes, label="shape")
    x = away_from(data.draw(arrays(shape, -12, 12), label="x"), kinks)
    t = data.draw(unit(shape), label="tangent")
    c = data.draw(unit(shape), label="cotangent")
    (dx,) = f_vjp(x, c, **kw)
    assert_vjp_matches_fd(lambda x: f(x, **kw), [x], [t], c, [dx])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("ndim", [2, 3])
@given(data=st.data())
def test_softmax_vjp_matches_fd_on_every_axis(data, fn, ndim):
    f, f_vjp = getattr(A, fn), getattr(A, fn + "_vjp")
    shape = data.draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=4),
                      label="shape")
    axis = data.draw(st.integers(-ndim, ndim - 1), label="axis")
    x = data.draw(arrays(shape, -10, 10), label="x")
    t = data.draw(unit(shape), label="tangent")
    c = data.draw(unit(shape), label="cotangent")
    (dx,) = f_vjp(x, c, axis=axis)
    # x - max - log(sum exp): terms up to |x| + max|x| + log K cancel (softmax: inside exp,
    # so relative to s)
    terms = np.abs(x) + np.max(np.abs(x), axis=axis, keepdims=True) + math.log(shape[axis])
    weight = np.abs(c) * (A.softmax(x, axis) if fn == "softmax" else 1.0)
    assert_vjp_matches_fd(lambda x: f(x, axis=axis), [x], [t], c, [dx], _dot(weight, terms))


# --------------------------------------------------------------------------- losses

REDUCTIONS = ["mean", "sum", "none"]


def _cotangent(data, red: str, shape) -> np.ndarray:
    return data.draw(unit(shape) if red == "none" else _finite(-2, 2).map(np.asarray),
                     label="cotangent")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "huber_loss", "bce_with_logits"])
@given(data=st.data())
def test_elementwise_loss_vjp_matches_fd(data, loss, reduction):
    f, f_vjp = getattr(L, loss), getattr(L, loss + "_vjp")
    shape = data.draw(small_shapes, label="shape")
    kw = {"reduction": reduction}
    if loss == "bce_with_logits":
        target = data.draw(arrays(shape, 0, 1), label="target")
        pred = data.draw(arrays(shape, -20, 20), label="logits")
    else:
        target = data.draw(arrays(shape, -5, 5), label="target")
        kinks: tuple[float, ...] = ()
        if loss == "l1_loss":
            kinks = (0.0,)
        elif loss == "huber_loss":
            kw["delta"] = data.draw(_finite(0.1, 3.0), label="delta")
            kinks = (-kw["delta"], kw["delta"])
        diff = away_from(data.draw(arrays(shape, -6, 6), label="pred - target"), kinks)
        pred = target + diff
        assert np.all([np.abs(np.abs(pred - target) - abs(k)) >= GAP for k in kinks])
    t = data.draw(unit(shape), label="tangent")
    c = _cotangent(data, reduction, shape)
    (dp,) = f_vjp(pred, target, c, **kw)
    magnitude = 0.0
    if loss == "bce_with_logits":  # max(x, 0) - x y cancels: terms of size |x| and |x y|
        per_element = np.abs(c) / (pred.size if reduction == "mean" else 1)
        magnitude = _dot(np.broadcast_to(per_element, shape), np.abs(pred) * (1 + np.abs(target)))
    assert_vjp_matches_fd(lambda p: f(p, target, **kw), [pred], [t], c, [dp], magnitude)


def _class_case(data, lo: float, hi: float):
    n = data.draw(st.integers(1, 4), label="n")
    k = data.draw(st.integers(1, 5), label="k")
    scores = data.draw(arrays((n, k), lo, hi), label="scores")
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)), label="labels")
    weight = data.draw(st.none() | arrays((k,), 0.1, 3.0), label="weight")
    return scores, labels, weight


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data())
def test_cross_entropy_vjp_matches_fd(data, reduction):
    logits, labels, weight = _class_case(data, -10, 10)
    e = data.draw(st.sampled_from([0.0, 1.0]) | _finite(0.0, 1.0), label="label_smoothing")
    kw = dict(reduction=reduction, label_smoothing=e, weight=weight)
    t = data.draw(unit(logits.shape), label="tangent")
    c = _cotangent(data, reduction, labels.shape)
    (dx,) = L.cross_entropy_vjp(logits, labels, c, **kw)
    # row i: sum_k q_ik (x_ik - logsumexp_i), q_ik <= max w, terms up to 2 max|x_i| + log K
    # cancel; 'mean' divides by sum_i w[y_i]
    w = np.ones(logits.shape[1]) if weight is None else weight
    per_row = np.broadcast_to(np.abs(c) / (w[labels].sum() if reduction == "mean" else 1),
                              labels.shape)
    terms = np.max(w) * (2 * np.max(np.abs(logits), axis=1) + math.log(logits.shape[1]))
    assert_vjp_matches_fd(lambda x: L.cross_entropy(x, labels, **kw), [logits], [t], c, [dx],
                          _dot(per_row, terms))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(data=st.data())
def test_nll_loss_vjp_matches_fd(data, reduction):
    log_probs, labels, weight = _class_case(data, -10, 0)
    kw = dict(reduction=reduction, weight=weight)
    t = data.draw(unit(log_probs.shape), label="tangent")
    c = _cotangent(data, reduction, labels.shape)
    (dx,) = L.nll_loss_vjp(log_probs, labels, c, **kw)
    assert_vjp_matches_fd(lambda x: L.nll_loss(x, labels, **kw), [log_probs], [t], c, [dx])


# --------------------------------------------------------------------------- MLP

MLP_ACTIVATIONS = sorted(A.ACTIVATIONS) + ["gelu_tanh"]
_KINKED = {"relu", "leaky_relu", "elu"}


def _mlp_magnitude(params, x, target, activation: str, loss: str) -> float:
    """Rounding scale of the MLP loss. Layer l computes terms of magnitude |h_l| |w_l| + |b_l|;
    the error already in h_l is carried through |w_l| (these activations are at most
    1.2-Lipschitz) and the activation adds its own few ulps of |h|. At the output y, |dL/dy| is
    at most 2 |y - t| / (N O) (mse) or 2 / N per row (cross-entropy); the loss adds its own
    terms: (y - t)^2 / (N O), or (2 max_k |y_ik| + log K) / N (logsumexp cancels)."""
    act, _ = M.activation_pair(activation)
    h, err = np.asarray(x), np.zeros_like(x)
    for i in range(0, len(params), 2):
        w, b = params[i], params[i + 1]
        z = h @ w + b
        err = np.abs(h) @ np.abs(w) + np.abs(b) + err @ np.abs(w)
        if i + 2 < len(params):
            h = act(z)
            err = 1.2 * err + np.abs(h)
        else:
            h = z
    n = h.shape[0]
    if loss == "mse":
        d = np.abs(h - target)
        return float(np.sum(2 * d * err + d * d) / h.size)
    return float(np.sum(2 * err.max(axis=1) + 2 * np.abs(h).max(axis=1) + math.log(h.shape[1])) / n)


def _pre_activations(params, x, activation):
    """Every hidden layer's pre-activation, by the oracle's forward pieces."""
    act, _ = M.activation_pair(activation)
    h, out = x, []
    for i in range(0, len(params) - 2, 2):
        z = D.dense(h, params[i], params[i + 1])
        out.append(z)
        h = act(z)
    return out


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("activation", MLP_ACTIVATIONS)
@given(data=st.data())
def test_mlp_gradients_match_fd(data, activation, loss):
    depth = data.draw(st.integers(1, 3), label="depth")
    widths = [data.draw(st.integers(1, 4), label=f"width{j}") for j in range(depth + 1)]
    n = data.draw(st.integers(1, 4), label="n")
    params = []
    for j in range(depth):
        params.append(seeded(data, (widths[j], widths[j + 1]), 1 / math.sqrt(widths[j]), f"w{j}"))
        params.append(seeded(data, (widths[j + 1],), 0.5, f"b{j}"))
    x = seeded(data, (n, widths[0]), 1.0, "x")
    if loss == "mse":
        target = seeded(data, (n, widths[-1]), 1.0, "target")
    else:
        target = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, widths[-1] - 1)),
                           label="labels")
    if activation in _KINKED:
        # a kink hidden inside the network cannot be placed by construction: reject the rare
        # draw (standard normal inputs) with a pre-activation within GAP of 0
        assume(all(np.all(np.abs(z) >= GAP) for z in _pre_activations(params, x, activation)))
    value, grads = M.mlp_loss_and_grads(params, x, target, activation, loss)
    assert len(grads) == len(params)
    assert value == pytest.approx(M.mlp_loss(params, x, target, activation, loss), rel=1e-14,
                                  abs=1e-300)
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / math.sqrt(p.size)
                for j, p in enumerate(params)]
    assert_vjp_matches_fd(lambda *p: np.asarray(M.mlp_loss(list(p), x, target, activation, loss)),
                          params, tangents, np.asarray(1.0), grads,
                          _mlp_magnitude(params, x, target, activation, loss))


# --------------------------------------------------------------------------- the check has teeth

def test_the_check_rejects_a_slightly_wrong_vjp():
    """A gradient wrong by one part in a million fails; the right one passes."""
    rng = np.random.default_rng(0)
    x, t, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    (dx,) = A.gelu_vjp(x, c, approximate="tanh")

    def f(x):
        return A.gelu(x, "tanh")

    err, tol, _ = fd_mismatch(f, [x], [t], c, [dx])
    assert err <= tol
    err, tol, _ = fd_mismatch(f, [x], [t], c, [dx * (1 + 1e-6)])
    assert err > tol


# --------------------------------------------------------------------------- optimizers
# Invariants that follow from the update formulas; no optimizer is re-implemented here.

def _param_list(data, lo: float = -5, hi: float = 5, label: str = "params") -> list[np.ndarray]:
    shapes = data.draw(st.lists(hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
                                min_size=1, max_size=2), label=f"{label}.shapes")
    return [data.draw(arrays(s, lo, hi), label=f"{label}[{j}]") for j, s in enumerate(shapes)]


def _grad_steps(data, params, k: int, lo: float = -10, hi: float = 10) -> list[list[np.ndarray]]:
    return [[data.draw(arrays(p.shape, lo, hi), label=f"grads{s}[{j}]") for j, p in enumerate(params)]
            for s in range(k)]


def _run(opt, params, grad_steps):
    """Every iterate p_0 .. p_k."""
    state = opt.init(params)
    traj = [params]
    for g in grad_steps:
        params, state = opt.update(g, state, params)
        traj.append(params)
    return traj


def _assert_close(actual, expected, scale, ulps: float = 16):
    """|actual - expected| <= ulps eps scale, elementwise."""
    for a, e, s in zip(actual, expected, scale, strict=True):
        assert np.all(np.abs(a - e) <= ulps * EPS * s), f"{a} != {e}"


lrs = _finite(1e-4, 2.0)


def _bias_condition(b1: float, b2: float) -> float:
    """Relative rounding of Adam's bias-corrected moments, in ulps: 1 - b^t carries an absolute
    error of an ulp of b^t, i.e. a relative one of eps / (1 - b^t) <= eps / (1 - b)."""
    return 1 / (1 - b1) + 1 / (1 - b2)


@given(data=st.data())
def test_sgd_without_momentum_is_plain_gradient_descent(data):
    """momentum = 0: every step is p - lr (g + wd p), whatever dampening says."""
    lr, wd = data.draw(lrs, label="lr"), data.draw(_finite(0, 1), label="weight_decay")
    opt = make_optimizer("sgd", lr=lr, momentum=0.0, weight_decay=wd,
                         dampening=data.draw(_finite(0, 1), label="dampening"),
                         dampen_first_step=data.draw(st.booleans(), label="dampen_first_step"))
    params = _param_list(data)
    steps = _grad_steps(data, params, data.draw(st.integers(1, 3), label="k"))
    traj = _run(opt, params, steps)
    for p, q, g in zip(traj, traj[1:], steps, strict=False):
        expected = [pi - lr * (gi + wd * pi) for pi, gi in zip(p, g, strict=True)]
        _assert_close(q, expected, [np.abs(pi) + lr * (np.abs(gi) + wd * np.abs(pi))
                                    for pi, gi in zip(p, g, strict=True)])


# (momentum, dampening, nesterov, dampen_first_step, weight_decay, lr, p0, [g1, g2], [p1, p2]),
# worked on paper from the documented update; every number is exact in binary.
#   g' = g + wd p;  b1 = g' (PyTorch) or mu 0 + (1 - d) g' (dampen_first_step);
#   b_t = mu b + (1 - d) g';  step = g' + mu b (nesterov) or b;  p <- p - lr step.
SGD_BY_HAND = {
    # b1 = 4, p1 = 10 - 4 = 6; b2 = .5*4 + .5*2 = 3, p2 = 6 - 3 = 3
    "momentum-dampening": (0.5, 0.5, False, False, 0.0, 1.0, 10.0, [4.0, 2.0], [6.0, 3.0]),
    # b1 = .5*0 + .5*4 = 2, p1 = 8; b2 = .5*2 + .5*2 = 2, p2 = 6
    "dampen-first-step": (0.5, 0.5, False, True, 0.0, 1.0, 10.0, [4.0, 2.0], [8.0, 6.0]),
    # b1 = 4, step = 4 + .5*4 = 6, p1 = 4; b2 = .5*4 + 2 = 4, step = 2 + .5*4 = 4, p2 = 0
    "nesterov": (0.5, 0.0, True, False, 0.0, 1.0, 10.0, [4.0, 2.0], [4.0, 0.0]),
    # with no dampening, starting the buffer at zero changes nothing: b1 = .5*0 + 1*4 = 4
    "nesterov-dampen-first-step": (0.5, 0.0, True, True, 0.0, 1.0, 10.0, [4.0, 2.0], [4.0, 0.0]),
    # g'1 = 2 + .5*4 = 4, b1 = 4, p1 = 4 - .5*4 = 2; g'2 = 1 + .5*2 = 2, b2 = .5*4 + 2 = 4,
    # p2 = 2 - .5*4 = 0
    "weight-decay": (0.5, 0.0, False, False, 0.5, 0.5, 4.0, [2.0, 1.0], [2.0, 0.0]),
    # momentum 1, dampening 1 (allowed): b1 = 3, p1 = 3; b2 = 1*3 + 0*5 = 3, p2 = 0
    "momentum-1-dampening-1": (1.0, 1.0, False, False, 0.0, 1.0, 6.0, [3.0, 5.0], [3.0, 0.0]),
}


@pytest.mark.parametrize("case", SGD_BY_HAND.values(), ids=SGD_BY_HAND.keys())
def test_sgd_two_steps_by_hand(case):
    mu, d, nesterov, first, wd, lr, p0, gs, expected = case
    opt = make_optimizer("sgd", lr=lr, momentum=mu, dampening=d, nesterov=nesterov,
                         dampen_first_step=first, weight_decay=wd)
    traj = _run(opt, [np.array([p0, -p0])], [[np.array([g, -g])] for g in gs])
    assert [list(p[0]) for p in traj[1:]] == [[e, -e] for e in expected]


@pytest.mark.parametrize("amsgrad", [None, "torch", "optax"])
@pytest.mark.parametrize("name", ["adam", "adamw"])
@given(data=st.data())
def test_adam_constant_gradient_moves_by_sign_like_steps(data, name, amsgrad):
    """eps_root = 0, no L2 decay: m_hat = g and v_hat = g^2 exactly when g is constant (the
    bias corrections undo the zero start; both AMSGrad maxima are v_hat itself), so every step,
    the first included, is lr g / (|g| + eps); AdamW first scales p by 1 - lr wd."""
    lr, eps = data.draw(lrs, label="lr"), data.draw(_finite(1e-12, 1e-2), label="eps")
    b1, b2 = data.draw(_finite(0, 0.999), label="b1"), data.draw(_finite(0, 0.9999), label="b2")
    wd = data.draw(_finite(0, 0.5), label="weight_decay") if name == "adamw" else 0.0
    hyper = dict(lr=lr, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad)
    opt = make_optimizer(name, weight_decay=wd, **hyper) if name == "adamw" else \
        make_optimizer(name, **hyper)
    params = _param_list(data)
    g = _grad_steps(data, params, 1)[0]
    k = data.draw(st.integers(1, 4), label="k")
    traj = _run(opt, params, [g] * k)
    for p, q in zip(traj, traj[1:], strict=False):
        step = [lr * gi / (np.abs(gi) + eps) for gi in g]
        expected = [pi * (1 - lr * wd) - si for pi, si in zip(p, step, strict=True)]
        cond = _bias_condition(b1, b2)
        _assert_close(q, expected, [np.abs(pi) + np.abs(si) * k * cond
                                    for pi, si in zip(p, step, strict=True)], ulps=64)


@pytest.mark.parametrize("amsgrad", [None, "torch", "optax"])
@given(data=st.data())
def test_adamw_without_decay_is_adam(data, amsgrad):
    hyper = dict(lr=data.draw(lrs, label="lr"), b1=data.draw(_finite(0, 0.999), label="b1"),
                 b2=data.draw(_finite(0, 0.9999), label="b2"),
                 eps=data.draw(_finite(1e-12, 1e-2), label="eps"),
                 eps_root=data.draw(st.just(0.0) | _finite(0, 1e-3), label="eps_root"),
                 amsgrad=amsgrad)
    params = _param_list(data)
    steps = _grad_steps(data, params, data.draw(st.integers(1, 4), label="k"))
    adam = _run(make_optimizer("adam", **hyper), params, steps)
    adamw = _run(make_optimizer("adamw", weight_decay=0.0, **hyper), params, steps)
    for a, w in zip(adam, adamw, strict=True):
        for ai, wi in zip(a, w, strict=True):
            np.testing.assert_array_equal(ai, wi)


@pytest.mark.parametrize("name", ["adam", "adamw"])
@given(data=st.data())
def test_amsgrad_variants_agree_when_gradient_magnitudes_do_not_decrease(data, name):
    """torch: v_hat_t = max_{s<=t} v_s / c2_t; optax: v_hat_t = max_{s<=t} (v_s / c2_s). With
    |g_1| <= |g_2| <= ... per coordinate, v_{t-1} <= c2_{t-1} max g^2 <= g_t^2, so
    v_t = b2 v_{t-1} + (1 - b2) g_t^2 >= v_{t-1}: the torch max is v_t. And v_t / c2_t is a
    convex combination of v_{t-1} / c2_{t-1} and g_t^2 >= it, so the optax max is v_t / c2_t
    too. The two then compute the same v_hat, so the same trajectory up to rounding. (No L2
    weight decay: it would change the gradients' magnitudes; AdamW's decoupled decay does not.)"""
    lr, eps = data.draw(lrs, label="lr"), data.draw(_finite(1e-12, 1e-2), label="eps")
    hyper = dict(lr=lr, b1=data.draw(_finite(0, 0.999), label="b1"),
                 b2=data.draw(_finite(0, 0.9999), label="b2"), eps=eps,
                 eps_root=data.draw(st.just(0.0) | _finite(0, 1e-3), label="eps_root"))
    if name == "adamw":
        hyper["weight_decay"] = data.draw(_finite(0, 0.5), label="weight_decay")
    params = _param_list(data)
    k = data.draw(st.integers(2, 5), label="k")
    mags = [np.abs(g) for g in _grad_steps(data, params, 1, 0, 5)[0]]
    steps = []
    for s in range(k):
        if s:
            mags = [m + np.abs(i) for m, i in zip(mags, _grad_steps(data, params, 1, 0, 3)[0],
                                                   strict=True)]
        signs = [data.draw(hnp.arrays(np.float64, p.shape, elements=st.sampled_from([-1.0, 1.0])),
                           label=f"signs{s}") for p in params]
        steps.append([sg * m for sg, m in zip(signs, mags, strict=True)])
    torch = _run(make_optimizer(name, amsgrad="torch", **hyper), params, steps)
    optax = _run(make_optimizer(name, amsgrad="optax", **hyper), params, steps)
    # rounding scale: |p0| plus the distance each coordinate travelled
    moved = [np.abs(p0) + sum(np.abs(q[j] - p[j]) for p, q in zip(torch, torch[1:], strict=False))
             for j, p0 in enumerate(params)]
    _assert_close(torch[-1], optax[-1], moved,
                  ulps=64 * k * _bias_condition(hyper["b1"], hyper["b2"]))


def test_amsgrad_variants_differ_by_hand():
    """Shrinking gradients separate the conventions. b1 = b2 = 1/2, eps = 0, lr = 1, p0 = 0,
    g = 1 then 0. Step 1 (all): m = v = 1/2, c1 = c2 = 1/2, step g / |g| = 1, p1 = -1.
    Step 2: m = 1/4, v = 1/4, c1 = c2 = 3/4, m_hat = 1/3.
      plain:  v_hat = 1/3,                     p2 = -1 - (1/3) / sqrt(1/3) = -1 - sqrt(1/3)
      torch:  v_hat = max(1/2, 1/4) / (3/4) = 2/3,  p2 = -1 - (1/3) / sqrt(2/3) = -1 - sqrt(1/6)
      optax:  v_hat = max(1/2 / (1/2), 1/3) = 1,    p2 = -1 - 1/3"""
    expected = {None: -1 - math.sqrt(1 / 3), "torch": -1 - math.sqrt(1 / 6), "optax": -4 / 3}
    for amsgrad, p2 in expected.items():
        opt = make_optimizer("adam", lr=1.0, b1=0.5, b2=0.5, eps=0.0, amsgrad=amsgrad)
        traj = _run(opt, [np.zeros(1)], [[np.ones(1)], [np.zeros(1)]])
        assert traj[1][0][0] == -1.0
        assert traj[2][0][0] == pytest.approx(p2, rel=4 * EPS)


@given(data=st.data())
def test_rmsprop_eps_placement_is_irrelevant_when_eps_is_zero(data):
    """sqrt(v) + 0 = sqrt(v + 0): with eps = 0 PyTorch's and optax's forms are one update."""
    initial_scale = data.draw(st.just(0.0) | _finite(1e-3, 1.0), label="initial_scale")
    # with v_0 = 0 and no decay, |g| >= 0.1 keeps v (and the centred v - a^2) positive
    wd = data.draw(_finite(0, 0.5), label="weight_decay") if initial_scale else 0.0
    hyper = dict(lr=data.draw(lrs, label="lr"), alpha=data.draw(_finite(0.5, 0.999), label="alpha"),
                 eps=0.0, weight_decay=wd, initial_scale=initial_scale,
                 momentum=data.draw(st.just(0.0) | _finite(0, 0.99), label="momentum"),
                 centered=data.draw(st.booleans(), label="centered"))
    params = _param_list(data)
    steps = [[away_from(g, (0.0,), 0.1) for g in gs]
             for gs in _grad_steps(data, params, data.draw(st.integers(1, 4), label="k"))]
    outside = _run(make_optimizer("rmsprop", eps_in_sqrt=False, **hyper), params, steps)
    inside = _run(make_optimizer("rmsprop", eps_in_sqrt=True, **hyper), params, steps)
    for a, b in zip(outside, inside, strict=True):
        for ai, bi in zip(a, b, strict=True):
            assert np.all(np.isfinite(ai))
            np.testing.assert_array_equal(ai, bi)


@pytest.mark.parametrize("eps_in_sqrt", [False, True])
@given(data=st.data())
def test_adagrad_first_step_from_a_zero_accumulator(data, eps_in_sqrt):
    """s_1 = 0 + g^2, so step 1 is lr g / (|g| + eps), or lr g / sqrt(g^2 + eps) with eps
    inside the root; lr_decay only acts from step 2 (lr / (1 + 0 lr_decay))."""
    lr, eps = data.draw(lrs, label="lr"), data.draw(_finite(1e-12, 1e-2), label="eps")
    opt = make_optimizer("adagrad", lr=lr, eps=eps, eps_in_sqrt=eps_in_sqrt,
                         lr_decay=data.draw(_finite(0, 1), label="lr_decay"))
    params = _param_list(data)
    g = _grad_steps(data, params, 1)[0]
    (p1,) = _run(opt, params, [g])[1:]
    den = [np.sqrt(gi * gi + eps) if eps_in_sqrt else np.abs(gi) + eps for gi in g]
    step = [lr * gi / di for gi, di in zip(g, den, strict=True)]
    _assert_close(p1, [p - s for p, s in zip(params, step, strict=True)],
                  [np.abs(p) + np.abs(s) for p, s in zip(params, step, strict=True)])
