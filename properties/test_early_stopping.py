"""Early stopping (reference/early_stopping.py) as each backend's framework runs it
(backends/practice.py): its policy over drawn validation histories, and a training loop that
stops by it, against the oracle under the backend's declared convention ('keras', 'flax').

Near ties are set aside and counted (an Unsupported with the reason, in the test's record),
never guessed:
- Keras compares in float32 (``ops.less(v - min_delta, best)`` converts both operands to its
  floatx, float32; the difference v - min_delta is a Python float64): a history on which one
  of the comparisons the policy can make (each monitored epoch against each earlier one, and
  against the baseline) comes out differently in float32 than in float64 is a near tie of
  the 'keras' convention. flax compares Python floats (float64), like the oracle.
- In the training loop, a comparison whose two sides are within the sum of their
  tolerances (the backend's validation losses carry their rounding) is a near tie.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import harness
from backends.base import Unsupported
from backends.practice import call_early_stopping
from properties.architectures import CASES, avoid_kinks, network_terms
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.strategies import conventions
from properties.tolerance import assert_close, moved, noisy_update, sensitivity, spread, tolerance
from reference import early_stopping as ES
from reference import network
from reference.optimizers import Optimizer, make_optimizer

GRID = 16.0
"""History values, min_delta and baselines start on the grid k / GRID (exact in float32 and
float64: ties are ties in both); the 'near ties' classes move them off it by a few float32
ulps or less."""
HISTORIES = ("walk", "plateau", "free", "near ties", "specials")
DELTAS = ("zero", "a step", "near a step")
BASELINES = ("none", "set")
STARTS = ("0", "later")
#: the arguments flax's EarlyStopping has only one value of
FLAX_ONLY = {"mode": "min", "baseline": None, "start_from_epoch": 0}


def _nudge(data, v: float, label: str) -> float:
    """v moved by 0 to 4 float32 ulps of it, or by a float64-only amount (1e-12 relative)."""
    ulp = np.spacing(np.float32(max(abs(v), 2.0**-10)))
    k = data.draw(st.sampled_from((-4, -1, 0, 1, 3)), label=label)
    return float(v + k * (float(ulp) if data.draw(st.booleans(), label=f"{label} f32") else
                          abs(v) * 1e-12))


def draw_history(data) -> np.ndarray:
    """A validation history of the 'history' class (HISTORIES): grid random walks with
    plateaus and ties, constant ones, free grid values, walks nudged off the grid, and walks
    with NaN and +-inf."""
    kind = stratum(data, "history", HISTORIES)
    n = data.draw(st.integers(1, 14), label="epochs")
    start = data.draw(st.integers(-16, 16), label="start") / GRID
    if kind == "plateau":
        return np.full(n, start)
    if kind == "free":
        return np.array(data.draw(st.lists(st.integers(-32, 32), min_size=n, max_size=n),
                                  label="values"), dtype=float) / GRID
    steps = data.draw(st.lists(st.sampled_from([-3, -2, -1, -1, 0, 0, 1, 2]), min_size=n,
                               max_size=n), label="steps")
    h = start + np.cumsum(steps) / GRID
    if kind == "near ties":
        h = np.array([_nudge(data, v, f"nudge {i}") for i, v in enumerate(h)])
    elif kind == "specials":
        for _ in range(data.draw(st.integers(1, 2), label="specials")):
            i = data.draw(st.integers(0, n - 1), label="at")
            h[i] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="special")
    return h


def draw_policy(data, backend) -> dict:
    """The policy's arguments, the backend's conventions and lacked arguments applied."""
    d = stratum(data, "min_delta", DELTAS)
    delta = 0.0 if d == "zero" else data.draw(st.integers(1, 3), label="delta steps") / GRID
    if d == "near a step":
        delta = _nudge(data, delta, "delta nudge")
    sign = data.draw(st.sampled_from((1.0, -1.0)), label="delta sign")
    baseline = None
    if stratum(data, "baseline", BASELINES) == "set":
        baseline = _nudge(data, data.draw(st.integers(-24, 24), label="baseline") / GRID,
                          "baseline nudge")
    start = 0 if stratum(data, "start_from_epoch", STARTS) == "0" else \
        data.draw(st.integers(1, 4), label="start_from_epoch")
    drawn = {"mode": stratum(data, "mode", ES.MODES), "min_delta": sign * delta,
             "patience": data.draw(st.integers(0, 4), label="patience"), "baseline": baseline,
             "start_from_epoch": start, "convention": "keras"}
    policy = conventions(data, backend, "early_stopping", drawn)
    if policy["convention"] == "flax":  # flax's policy has only these (the oracle's module doc)
        policy.update(FLAX_ONLY)
        record = current_record()
        record.note_class("mode", "min")
        record.note_class("baseline", "none")
        record.note_class("start_from_epoch", "0")
    return policy


def keras_float32_ties(h: np.ndarray, policy: dict) -> list[str]:
    """The comparisons Keras' policy can make on ``h`` whose float32 outcome differs from the
    float64 one: v - d against each earlier monitored value and against the baseline, with
    d = -|min_delta| ('min': ops.less) or |min_delta| ('max': ops.greater)."""
    if policy["convention"] != "keras":
        return []
    mode, start = policy["mode"], policy["start_from_epoch"]
    d = -abs(policy["min_delta"]) if mode == "min" else abs(policy["min_delta"])
    lhs = h[start:] - d  # float64, as Keras' Python subtraction

    def decide(a, b):
        with np.errstate(invalid="ignore", over="ignore"):
            return a < b if mode == "min" else a > b

    def f32(a):
        with np.errstate(over="ignore"):
            return np.asarray(a, dtype=np.float64).astype(np.float32)

    refs = h[start:]
    pair64 = decide(lhs[:, None], refs[None, :])
    pair32 = decide(f32(lhs)[:, None], f32(refs)[None, :])
    later = np.tri(len(refs), k=-1, dtype=bool)  # row j against earlier column i < j
    out = [f"epoch {start + j} against epoch {start + i}"
           for j, i in zip(*np.nonzero((pair64 != pair32) & later), strict=True)]
    if policy["baseline"] is not None:
        b = policy["baseline"]
        out += [f"epoch {start + j} against the baseline" for j in
                np.flatnonzero(decide(lhs, b) != decide(f32(lhs), f32(b)))]
    return out


@pytest.mark.component("early_stopping")
@given(data=st.data())
def test_early_stopping_policy(backend, data):
    """The backend's policy over a drawn history stops at the oracle's epoch and restores the
    oracle's best epoch, under its declared convention (no tolerance: the decisions are
    exact, near ties of its comparison precision set aside)."""
    current_record().declared = {"history": HISTORIES, "min_delta": DELTAS,
                                 "baseline": BASELINES, "start_from_epoch": STARTS,
                                 "mode": ES.MODES}
    h = draw_history(data)
    policy = draw_policy(data, backend)
    want = ES.early_stopping(h, **policy)
    with unsupported_example():
        ties = keras_float32_ties(h, policy)
        if ties:
            raise Unsupported(f"near tie: Keras' float32 comparison differs from float64's "
                              f"({ties[0]})")
        stopped, best = call_early_stopping(backend, h, policy)
    assert (stopped, best) == (want.stopped_epoch, want.best_epoch), (
        f"{policy} over {h.tolist()}: stopped at {stopped}, restored epoch {best}; the oracle "
        f"stops at {want.stopped_epoch} and restores epoch {want.best_epoch}")


# --------------------------------------------------------------------------- the training loop
#: the loop's validation losses are minimised; flax has no other mode
LOOP_FIXED = {"mode": "min", "start_from_epoch": 0}
LOOP_BASELINES = ("none", "set")


def _loop_policy(data, backend, first_loss: float) -> dict:
    """Patience, min_delta (0 or a small fraction of the first validation loss, either sign)
    and a baseline (None or a multiple of the first validation loss), the backend's
    conventions and lacked arguments applied."""
    delta = data.draw(st.sampled_from((0.0, 1e-3, 1e-2)), label="min_delta (of the loss)")
    baseline = None
    if stratum(data, "baseline", LOOP_BASELINES) == "set":
        baseline = first_loss * data.draw(st.sampled_from((0.5, 0.9, 1.1)), label="baseline")
    drawn = {**LOOP_FIXED, "min_delta": delta * first_loss * data.draw(
        st.sampled_from((1.0, -1.0)), label="delta sign"),
        "patience": data.draw(st.integers(0, 3), label="patience"), "baseline": baseline,
        "convention": "keras"}
    policy = conventions(data, backend, "early_stopping", drawn)
    if policy["convention"] == "flax":
        policy.update(FLAX_ONLY)
        current_record().note_class("baseline", "none")
    return policy


def loop_near_ties(h: np.ndarray, tol: np.ndarray, policy: dict) -> list[str]:
    """The comparisons the policy can make on the validation history ``h`` (one tolerance per
    value) whose two sides are within the sum of their tolerances: Keras' v - d against an
    earlier value or the baseline (plus float32's rounding of both sides: Keras compares in
    float32), flax's best - v against min_delta."""
    d = -abs(policy["min_delta"]) if policy["convention"] == "keras" else policy["min_delta"]
    out = []
    for j in range(len(h)):
        for i in range(j):
            if policy["convention"] == "keras":
                gap, bound = h[j] - d - h[i], tol[i] + tol[j] + float(
                    tolerance(h[j] - d, "float32") + tolerance(h[i], "float32"))
            else:
                gap, bound = h[i] - h[j] - d, tol[i] + tol[j]
            if abs(gap) <= bound:
                out.append(f"epoch {j} against epoch {i}: {gap:.3g} within {bound:.3g}")
        if policy["baseline"] is not None:
            b = policy["baseline"]
            bound = tol[j] + float(tolerance(h[j] - d, "float32") + tolerance(b, "float32"))
            if abs(h[j] - d - b) <= bound:
                out.append(f"epoch {j} against the baseline: {h[j] - d - b:.3g} within {bound:.3g}")
    return out


@pytest.mark.component("early_stopping")
@pytest.mark.dtypes("float32", "float64")
@given(data=st.data())
def test_early_stopping_training_loop(backend, dtype, data):
    """An MLP (properties/architectures.py's draw) trained by the backend's train_network, one
    SGD mini-batch step per epoch, its validation loss per epoch the backend's network loss,
    stopped by the backend's early_stopping on that history, restoring the best epoch's
    weights: the same stopped and best epochs as reference.early_stopping.
    train_with_early_stopping on the oracle's training, and the restored weights and the
    validation losses equal to the oracle's under the architecture properties' tolerance
    (the condition of the whole run, and each step's rounding propagated). An example where a
    decision of the policy is within the tolerance of a tie is set aside and counted."""
    current_record().declared = {"baseline": LOOP_BASELINES}
    case = CASES["mlp"]
    n_train = data.draw(st.integers(*case.train_rows), label="training rows")
    n_val = data.draw(st.integers(1, 4), label="validation rows")
    prob = case.draw(data, backend, dtype, n_train + n_val)
    epochs = data.draw(st.integers(2, 6), label="epochs")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="batch_seed"))
    size = data.draw(st.integers(case.min_batch, n_train), label="batch_size")
    batches = [rng.permutation(n_train)[:size] for _ in range(epochs)]
    lr = data.draw(st.sampled_from((0.02, 0.05, case.max_lr)), label="lr")
    val = np.arange(n_train, n_train + n_val)

    def run(arrays, noise=None):
        """The oracle's whole run (every epoch, no stopping): [validation losses, the params
        after each epoch...] and the validation losses' rounding magnitudes; with ``noise``
        each step's gradients and new parameters move by DELTA times their rounding
        magnitudes, as in test_network_training."""
        p, s, x, t = prob.rebuild(arrays)
        base = make_optimizer("sgd", lr=lr)
        seen: dict = {}

        def callback(p_, s_, idx):
            avoid_kinks(prob, dtype, p_, s_, idx)
            seen["grad_m"] = network_terms(prob.arch, p_, s_, x[idx], t[idx], prob.bn)[1]

        opt = base
        if noise is not None:
            opt = Optimizer(base.init, lambda grads, state, params: noisy_update(
                base, moved(noise, grads, seen["grad_m"]), state, params, noise))
        history, loss_m, after = [], [], []
        for e in range(epochs):
            p, _, _ = network.train(prob.arch, p, s, x[:n_train], t[:n_train], opt, [batches[e]],
                                    prob.bn, callback)
            avoid_kinks(prob, dtype, p, s, val)
            history.append(network.loss_and_grads(prob.arch, p, s, x[val], t[val], prob.bn)[0])
            loss_m.append(network_terms(prob.arch, p, s, x[val], t[val], prob.bn)[0])
            after += p
        return [np.asarray(history), *after], loss_m

    arrays = prob.float_inputs()
    expected, loss_m = run(arrays)
    conds = [c + s for c, s in zip(sensitivity(lambda a: run(a)[0], arrays),
                                   spread(lambda noise: run(arrays, noise)[0], expected),
                                   strict=True)]
    conds[0] = conds[0] + np.asarray(loss_m)
    terms = prob.terms * epochs
    policy = _loop_policy(data, backend, float(expected[0][0]))

    def step(params, epoch):
        return network.train(prob.arch, params, prob.state, prob.x[:n_train],
                             prob.target[:n_train], make_optimizer("sgd", lr=lr),
                             [batches[epoch]], prob.bn)[0]

    def evaluate(params):
        return network.loss_and_grads(prob.arch, params, prob.state, prob.x[val],
                                      prob.target[val], prob.bn)[0]

    restored, _, outcome = ES.train_with_early_stopping(step, evaluate, prob.params, epochs,
                                                        restore_best_weights=True, **policy)
    with unsupported_example():
        ties = loop_near_ties(expected[0], tolerance(expected[0], dtype, conds[0], terms),
                              policy)
        if ties:
            raise Unsupported(f"near tie of the policy's decisions: {ties[0]}")
        params, history, saved, stopped = list(prob.params), [], [], None
        for e in range(epochs):
            params, _, _ = harness.train_network(
                backend, prob.arch, params, prob.state, prob.x[:n_train], prob.target[:n_train],
                "sgd", {"lr": lr}, [batches[e]], prob.bn, dtype)
            value, _, _ = harness.call(backend, "network_loss_and_grads",
                                       (prob.arch, params, prob.state, prob.x[val],
                                        prob.target[val]), {"bn": prob.bn}, dtype)
            history.append(float(value))
            saved.append(params)
            stopped, best = call_early_stopping(backend, np.array(history), policy)
            if stopped is not None:
                break
    run_epochs = len(history)
    # which way the run ended, in the certificate's classes (not forced: the losses decide)
    current_record().note_class("outcome", "stopped early" if stopped is not None else
                                "ran every epoch")
    assert_close("validation losses", np.array(history), expected[0][:run_epochs], dtype,
                 conds[0][:run_epochs], terms)
    assert (stopped, best) == (outcome.stopped_epoch, outcome.best_epoch), (
        f"{policy}: stopped at {stopped}, restored epoch {best}; the oracle stops at "
        f"{outcome.stopped_epoch} and restores epoch {outcome.best_epoch}")
    got = saved[best] if best is not None else params
    k = len(prob.params)
    names = prob.arch.param_names()
    for i, (a, e) in enumerate(zip(got, restored, strict=True)):
        j = 1 + (run_epochs - 1 if best is None else best) * k + i
        assert_close(f"restored {names[i]} (epoch {best})", a, e, dtype, conds[j], terms)
