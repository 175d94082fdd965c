"""Early stopping (reference/early_stopping.py): the 'keras' convention against
keras.callbacks.EarlyStopping driven epoch by epoch on a stub model, the 'flax' convention
against flax.training.early_stopping.EarlyStopping, on drawn histories with ties, plateaus,
NaN and inf, min_delta at the steps, baselines and start_from_epoch; invariants written out
by hand; the training loop; and bad input.

Keras compares in float32 (module doc), the oracle in float64: the drawn histories, deltas
and baselines are multiples of 1/16 below 2^6, whose sums and differences are exact in both,
so ties are ties in both (a test shows the float32 difference on purpose).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import early_stopping as E
from tests.fd import raises_for
from tests.optional import need, need_keras

GRID = 16.0
"""History values, deltas and baselines are k / GRID: exact in float32 and float64."""


@st.composite
def histories(draw, specials: bool = True, max_len: int = 12):
    """Random walks on the grid (plateaus and ties from zero steps) or free draws, with NaN
    and +-inf sometimes."""
    n = draw(st.integers(0, max_len), label="epochs")
    if draw(st.booleans(), label="walk"):
        steps = draw(st.lists(st.sampled_from([-3, -2, -1, -1, 0, 0, 1, 2]), min_size=n, max_size=n))
        h = (np.cumsum(steps) + draw(st.integers(-16, 16), label="start")) / GRID
    else:
        h = np.array(draw(st.lists(st.integers(-32, 32), min_size=n, max_size=n)), dtype=float) / GRID
    if specials and n and draw(st.booleans(), label="specials"):
        for _ in range(draw(st.integers(1, 2))):
            i = draw(st.integers(0, n - 1))
            h[i] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return h


deltas = st.sampled_from([0.0, 1 / GRID, 2 / GRID, 3 / GRID])
baselines = st.one_of(st.none(), st.integers(-24, 24).map(lambda k: k / GRID))


# --------------------------------------------------------------------------- keras

class _Model:
    """What EarlyStopping uses of a model: stop_training, and weights that name their epoch."""

    def __init__(self):
        self.stop_training = False
        self.epoch = None
        self.restored = None

    def get_weights(self):
        return self.epoch

    def set_weights(self, weights):
        self.restored = weights


def _run_keras(history, mode, min_delta, patience, baseline, start_from_epoch):
    """(stopped_epoch or None, restored epoch or None, wait trace, cb.best_epoch)."""
    keras = need_keras()
    cb = keras.callbacks.EarlyStopping(monitor="val_loss", mode=mode, min_delta=min_delta,
                                       patience=patience, baseline=baseline,
                                       restore_best_weights=True, start_from_epoch=start_from_epoch)
    model = _Model()
    cb.set_model(model)
    cb.on_train_begin()
    wait = []
    for epoch, v in enumerate(history.tolist()):
        model.epoch = epoch
        cb.on_epoch_end(epoch, {"val_loss": v})
        wait.append(cb.wait)
        if model.stop_training:
            break
    cb.on_train_end()
    stopped = cb.stopped_epoch if model.stop_training else None
    return stopped, model.restored, tuple(wait), cb.best_epoch


@given(h=histories(), min_delta=deltas, patience=st.integers(0, 4), baseline=baselines,
       start=st.integers(0, 4))
def test_keras_convention_matches_keras(h, min_delta, patience, baseline, start):
    """Both modes and both signs of min_delta on every draw (the profiles draw few)."""
    for mode in E.MODES:
        for d in (min_delta, -min_delta):
            got = E.early_stopping(h, mode, d, patience, baseline, start)
            stopped, restored, wait, best_epoch = _run_keras(h, mode, d, patience, baseline, start)
            assert got.stopped_epoch == stopped
            assert got.epochs_run == len(wait) == (len(h) if stopped is None else stopped + 1)
            assert got.wait == wait
            assert got.best_epoch == restored  # Keras 3 restores at the end, stopped or not
            if restored is not None:
                assert got.best_epoch == best_epoch


def test_keras_compares_in_float32():
    """1.0 - 1e-9 is below 1.0 in float64 but rounds to 1.0 in float32: Keras sees a tie."""
    h = np.array([1.0, 1.0 - 1e-9, 1.0 - 2e-9])
    stopped, restored, _, _ = _run_keras(h, "min", 0.0, 0, None, 0)
    assert (stopped, restored) == (1, 0)
    got = E.early_stopping(h, patience=0)
    assert (got.stopped_epoch, got.best_epoch) == (None, 2)


# --------------------------------------------------------------------------- flax

def _run_flax(history, min_delta, patience):
    """(stopped_epoch or None, the epoch of best_metric or None, patience_count trace)."""
    need("flax", reason="the flax comparison needs flax")
    from flax.training.early_stopping import EarlyStopping

    es = EarlyStopping(min_delta=min_delta, patience=patience)
    best, counts = None, []
    for epoch, v in enumerate(history.tolist()):
        es = es.update(v)
        counts.append(es.patience_count)
        if es.has_improved:
            best = epoch
        if es.should_stop:
            return epoch, best, tuple(counts)
    return None, best, tuple(counts)


@given(h=histories(), min_delta=deltas, patience=st.integers(0, 4))
def test_flax_convention_matches_flax(h, min_delta, patience):
    for d in (min_delta, -min_delta):
        got = E.early_stopping(h, min_delta=d, patience=patience, convention="flax")
        stopped, best, counts = _run_flax(h, d, patience)
        assert (got.stopped_epoch, got.best_epoch, got.wait) == (stopped, best, counts)
        assert got.epochs_run == len(counts)


def test_flax_any_value_improves_on_minus_inf():
    h = np.array([-math.inf, 1.0, 2.0])
    got = E.early_stopping(h, convention="flax")
    assert (got.stopped_epoch, got.best_epoch) == (2, 1) == _run_flax(h, 0.0, 0)[:2]
    assert E.early_stopping(h).stopped_epoch == 1  # Keras: nothing improves on -inf


# --------------------------------------------------------------------------- by hand

@given(h=histories(specials=False), d=deltas)
def test_patience_0_stops_at_the_first_non_improvement(h, d):
    """Every epoch before the stop improved, so the best is the previous epoch's value: the
    stop is the first e >= 1 with not h[e] + |d| < h[e - 1] (Keras, patience 0 and 1) and
    not h[e - 1] - h[e] > d (flax, patience 0)."""
    keras_first = np.flatnonzero(~(h[1:] + abs(d) < h[:-1]))
    flax_first = np.flatnonzero(~(h[:-1] - h[1:] > d))
    for patience in (0, 1):
        got = E.early_stopping(h, min_delta=d, patience=patience)
        assert got.stopped_epoch == (keras_first[0] + 1 if keras_first.size else None)
    got = E.early_stopping(h, min_delta=d, convention="flax")
    assert got.stopped_epoch == (flax_first[0] + 1 if flax_first.size else None)


@given(n=st.integers(1, 12), patience=st.integers(0, 5), start=st.integers(0, 3),
       mode=st.sampled_from(E.MODES), convention=st.sampled_from(E.CONVENTIONS))
def test_strict_progress_never_stops(n, patience, start, mode, convention):
    h = np.arange(n, 0, -1) / GRID * (1 if mode == "min" else -1)
    if convention == "flax":
        if mode == "max":
            return
        start = 0
    got = E.early_stopping(h, mode, 0.0, patience, None, start, convention)
    assert (got.stopped_epoch, got.epochs_run, got.wait) == (None, n, (0,) * n)
    assert got.best_epoch == (n - 1 if start < n else None)


@given(n=st.integers(1, 12), patience=st.integers(0, 5), c=st.integers(-16, 16))
def test_a_plateau_stops_after_patience(n, patience, c):
    """A constant history improves only at epoch 0; Keras stops at epoch max(patience, 1),
    flax at patience + 1 (when the history is that long)."""
    h = np.full(n, c / GRID)
    for convention, stop in (("keras", max(patience, 1)), ("flax", patience + 1)):
        got = E.early_stopping(h, patience=patience, convention=convention)
        assert got.stopped_epoch == (stop if stop < n else None)
        assert got.best_epoch == 0


@given(h=histories(), min_delta=deltas, patience=st.integers(0, 4), baseline=baselines,
       start=st.integers(0, 4))
def test_max_mode_is_min_mode_on_the_negated_history(h, min_delta, patience, baseline, start):
    a = E.early_stopping(h, "max", min_delta, patience, baseline, start)
    b = E.early_stopping(-h, "min", min_delta, patience, None if baseline is None else -baseline, start)
    assert a == b


@given(h=histories(), min_delta=deltas, patience=st.integers(0, 4), baseline=baselines,
       start=st.integers(1, 4))
def test_start_from_epoch_skips_the_first_epochs(h, min_delta, patience, baseline, start):
    """Starting at epoch s is running on h[s:] shifted by s (its first epoch always
    improves, so Keras' epoch > 0 condition never binds)."""
    got = E.early_stopping(h, "min", min_delta, patience, baseline, start)
    if len(h) <= start:
        assert (got.stopped_epoch, got.best_epoch, got.wait) == (None, None, (0,) * len(h))
        return
    tail = E.early_stopping(h[start:], "min", min_delta, patience, baseline)
    shift = None if tail.stopped_epoch is None else tail.stopped_epoch + start
    assert got.stopped_epoch == shift
    assert got.best_epoch == tail.best_epoch + start
    assert got.wait == (0,) * start + tail.wait


def test_baseline_by_hand():
    """Improving on best but never on the baseline 0 keeps counting wait without stopping;
    the first non-improving epoch with wait >= patience stops."""
    h = np.array([3.0, 2.0, 1.0, 1.0, 0.5])
    got = E.early_stopping(h, patience=2, baseline=0.0)
    assert (got.stopped_epoch, got.best_epoch, got.wait) == (3, 2, (1, 2, 3, 4))
    assert E.early_stopping(h[:3], patience=0, baseline=0.0).stopped_epoch is None
    got = E.early_stopping(h, patience=2, baseline=2.5)  # beaten at epoch 1: wait resets
    assert (got.stopped_epoch, got.wait) == (None, (1, 0, 0, 1, 0))


def test_min_delta_by_hand():
    """best_epoch is the last epoch improving by more than |min_delta|, not the arg-min."""
    h = np.array([1.0, 0.95, 0.92, 0.91])
    got = E.early_stopping(h, min_delta=0.1, patience=5)
    assert (got.stopped_epoch, got.best_epoch, got.wait) == (None, 0, (0, 1, 2, 3))
    assert E.early_stopping(h, min_delta=-0.1, patience=5) == got  # Keras: the sign is ignored
    got = E.early_stopping(h, min_delta=-0.1, patience=5, convention="flax")  # flax: it is not
    assert got.best_epoch == 3
    got = E.early_stopping(np.array([1.0, 0.875, 0.875]), min_delta=0.125, patience=5)
    assert got.best_epoch == 0  # an improvement of exactly min_delta is not one


def test_nan_by_hand():
    got = E.early_stopping(np.array([1.0, math.nan, 0.5]), patience=2)
    assert (got.stopped_epoch, got.best_epoch, got.wait) == (None, 2, (0, 1, 0))
    got = E.early_stopping(np.array([math.nan, 0.5, 0.25]), patience=1)
    assert (got.stopped_epoch, got.best_epoch) == (1, 0)  # NaN became best; nothing beats it


def test_empty_history():
    for convention in E.CONVENTIONS:
        assert E.early_stopping([], convention=convention) == E.EarlyStoppingOutcome(None, None, 0, ())


# --------------------------------------------------------------------------- the loop

def test_train_with_early_stopping_restores_the_best_epoch():
    """Gradient descent w <- w - lr (w - 2) from w = 0 on a training loss (w - 2)^2 / 2, with
    the validation loss (w - 1)^2: w_t = 2 (1 - 0.7^(t + 1)) after epoch t (lr = 0.3) passes
    1 between epochs 0 (0.6) and 1 (1.02), so the validation loss is lowest at epoch 1."""
    calls = []

    def step(w, epoch):
        calls.append(epoch)
        return w - 0.3 * (w - 2.0)

    def evaluate(w):
        return (w - 1.0) ** 2

    w_by_epoch = [2.0 * (1 - 0.7 ** (t + 1)) for t in range(10)]
    w, hist, out = E.train_with_early_stopping(step, evaluate, 0.0, 10, restore_best_weights=True,
                                               patience=2)
    assert (out.stopped_epoch, out.best_epoch, out.epochs_run) == (3, 1, 4)
    assert calls == [0, 1, 2, 3]
    np.testing.assert_allclose(hist, [(v - 1.0) ** 2 for v in w_by_epoch[:4]], rtol=1e-14)
    assert w == pytest.approx(w_by_epoch[1], rel=1e-15)
    last, _, _ = E.train_with_early_stopping(step, evaluate, 0.0, 10, patience=2)
    assert last == pytest.approx(w_by_epoch[3], rel=1e-15)


@given(h=histories(), patience=st.integers(0, 3), start=st.integers(0, 3),
       restore=st.booleans(), convention=st.sampled_from(E.CONVENTIONS))
def test_train_with_early_stopping_follows_the_policy(h, patience, start, restore, convention):
    """Params name their epoch; the loop consumes exactly the policy's epochs_run."""
    policy = dict(patience=patience, convention=convention,
                  start_from_epoch=start if convention == "keras" else 0)
    params, hist, out = E.train_with_early_stopping(lambda _, epoch: epoch, lambda epoch: h[epoch],
                                                    None, len(h), restore, **policy)
    assert out == E.early_stopping(h, **policy)
    np.testing.assert_array_equal(hist, h[:out.epochs_run])
    want = out.best_epoch if restore and out.best_epoch is not None else (out.epochs_run - 1 if len(h)
                                                                         else None)
    assert params == want


def test_train_checks_the_policy_before_any_step():
    def step(params, epoch):
        raise AssertionError("step was called")

    with raises_for("patience"):
        E.train_with_early_stopping(step, float, 0.0, 3, patience=-1)
    with raises_for("epochs"):
        E.train_with_early_stopping(step, float, 0.0, -1)


# --------------------------------------------------------------------------- bad input

BAD = [
    ("history", lambda: E.early_stopping(np.ones((2, 2)))),
    ("history", lambda: E.early_stopping("abc")),
    ("mode", lambda: E.early_stopping([1.0], mode="auto")),
    ("min_delta", lambda: E.early_stopping([1.0], min_delta=math.nan)),
    ("min_delta", lambda: E.early_stopping([1.0], min_delta=math.inf)),
    ("patience", lambda: E.early_stopping([1.0], patience=1.5)),
    ("patience", lambda: E.early_stopping([1.0], patience=True)),
    ("start_from_epoch", lambda: E.early_stopping([1.0], start_from_epoch=-1)),
    ("baseline", lambda: E.early_stopping([1.0], baseline=math.nan)),
    ("baseline", lambda: E.early_stopping([1.0], baseline="x")),
    ("convention", lambda: E.early_stopping([1.0], convention="torch")),
    ("mode", lambda: E.early_stopping([1.0], mode="max", convention="flax")),
    ("baseline", lambda: E.early_stopping([1.0], baseline=0.5, convention="flax")),
    ("start_from_epoch", lambda: E.early_stopping([1.0], start_from_epoch=1, convention="flax")),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_early_stopping_rejects(arg, call):
    with raises_for(arg):
        call()
