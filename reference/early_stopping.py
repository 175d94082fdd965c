"""Early stopping as a pure policy over a validation history (one monitored value per epoch).

``early_stopping(history, ...)`` replays a callback over history[0], history[1], ... and
returns where it stops (``stopped_epoch``: the training loop ran epochs 0..stopped_epoch), the
epoch whose weights restoring the best weights gives back (``best_epoch``) and the wait
counter after each epoch run. Comparisons are float64 (see Keras' float32 below).

convention='keras' (the default; keras/src/callbacks/early_stopping.py ``EarlyStopping`` and
keras/src/callbacks/monitor_callback.py ``MonitorCallback``, keras 3.15):

- mode 'min' or 'max' (Keras' 'auto' picks 'min' for 'loss' / 'val_loss' and otherwise a
  compiled metric's direction). d = |min_delta| (the sign of min_delta is ignored); v
  improves on a reference r when v + d < r ('min': written v - (-d) < r) or v - d > r
  ('max'); every v improves on no reference (best = None at the start).
- Epochs before ``start_from_epoch`` are skipped entirely (wait stays 0, no best).
- Each monitored epoch: wait += 1; if v improves on best: best = v, best_epoch = epoch, and
  wait = 0 only if baseline is None or v also improves on the baseline; the epoch never
  stops training. Otherwise, if wait >= patience and epoch > 0, training stops at this epoch.
  The first monitored epoch always improves (no best yet), so ``epoch > 0`` never binds when
  epochs count from 0. patience 0 and 1 both stop at the first non-improving epoch.
- baseline: best still starts at None (the baseline is not the initial best); an epoch that
  improves on best but not on the baseline keeps counting wait without stopping, so with a
  baseline never beaten training stops at the first non-improving epoch with wait >=
  patience (a history that keeps improving on best never stops).
- restore_best_weights: the weights saved at the last improving epoch (the first monitored
  epoch's when no later one improves). Keras 3 restores them in ``on_train_end`` whether or
  not training stopped early; nothing is restored when no epoch was monitored
  (best_epoch None). best_epoch is the last epoch that improved by more than d on the best
  so far, not necessarily the arg-min: [1.0, 0.95] with d = 0.1 gives best_epoch 0; ties
  keep the earlier epoch.
- NaN: every comparison with NaN is False, so a NaN never improves and counts as a wait;
  a NaN at the first monitored epoch becomes best, and then nothing improves on it.
- Keras compares in floatx (float32 by default): ``ops.less`` converts both operands to
  tensors, so values closer than float32 resolution are ties there (with the torch backend,
  [1.0, 1.0 - 1e-9] does not improve at epoch 1). The oracle compares in float64.

convention='flax' (flax/training/early_stopping.py ``EarlyStopping.update``): mode 'min'
only, no baseline, no start_from_epoch. v improves when best is +-inf (initially +inf) or
best - v > min_delta (min_delta used with its sign); an improvement sets best = v and
patience_count = 0. Otherwise should_stop |= patience_count >= patience, computed before
patience_count += 1, so training stops at the (patience + 1)-th consecutive non-improving
epoch (Keras: the max(patience, 1)-th). best_epoch is the epoch of best_metric (flax has no
weight restoring; ``train_with_early_stopping`` restores it as Keras would). Because of the
isinf test, any value improves on a best of -inf (or +inf). ``wait`` traces patience_count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the policies' conventions and monitor modes (the module doc); the first is the default.
CONVENTIONS = ("keras", "flax")
MODES = ("min", "max")


@dataclass(frozen=True)
class EarlyStoppingOutcome:
    """stopped_epoch: the epoch at which the policy stops training (None: it never stops);
    best_epoch: the epoch whose weights are restored (None: no epoch monitored); epochs_run:
    the epochs consumed (stopped_epoch + 1, or the whole history); wait: the wait counter
    (flax: patience_count) after each epoch run, one per epoch."""

    stopped_epoch: int | None
    best_epoch: int | None
    epochs_run: int
    wait: tuple[int, ...]


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return int(value)


def _real(name: str, value, allow_inf: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a number, got {value!r}") from exc
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name}: expected a {'non-NaN' if allow_inf else 'finite'} number, "
                         f"got {value!r}")
    return v


def _history(history) -> np.ndarray:
    try:
        h = np.asarray(history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"history: expected a 1-D real array, got {type(history).__name__}") from exc
    if h.ndim != 1:
        raise ValueError(f"history: expected 1 dimension, got shape {h.shape}")
    return h


def _keras(h, mode, min_delta, patience, baseline, start_from_epoch) -> EarlyStoppingOutcome:
    d = -abs(min_delta) if mode == "min" else abs(min_delta)

    def improves(v: float, ref: float | None) -> bool:
        if ref is None:
            return True
        return v - d < ref if mode == "min" else v - d > ref

    best, best_epoch, wait, trace = None, None, 0, []
    for epoch, v in enumerate(h.tolist()):
        if epoch >= start_from_epoch:
            wait += 1
            if improves(v, best):
                best, best_epoch = v, epoch
                if baseline is None or improves(v, baseline):
                    wait = 0
            elif wait >= patience and epoch > 0:
                return EarlyStoppingOutcome(epoch, best_epoch, epoch + 1, (*trace, wait))
        trace.append(wait)
    return EarlyStoppingOutcome(None, best_epoch, len(h), tuple(trace))


def _flax(h, min_delta, patience) -> EarlyStoppingOutcome:
    best, best_epoch, count, trace = math.inf, None, 0, []
    for epoch, v in enumerate(h.tolist()):
        if math.isinf(best) or best - v > min_delta:
            best, best_epoch, count = v, epoch, 0
            trace.append(count)
            continue
        stop = count >= patience
        count += 1
        trace.append(count)
        if stop:
            return EarlyStoppingOutcome(epoch, best_epoch, epoch + 1, tuple(trace))
    return EarlyStoppingOutcome(None, best_epoch, len(h), tuple(trace))


def early_stopping(history: np.ndarray, mode: str = "min", min_delta: float = 0.0,
                   patience: int = 0, baseline: float | None = None, start_from_epoch: int = 0,
                   convention: str = "keras") -> EarlyStoppingOutcome:
    """Replay the early-stopping policy of ``convention`` over ``history`` (1-D, one value per
    epoch, NaN and inf allowed; see the module doc). mode in MODES; min_delta finite (Keras
    uses |min_delta|, flax its sign); patience, start_from_epoch ints >= 0; baseline None or
    a non-NaN number. The flax convention takes mode 'min', no baseline, start_from_epoch 0."""
    h = _history(history)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    min_delta = _real("min_delta", min_delta, allow_inf=False)
    patience = _count("patience", patience)
    start_from_epoch = _count("start_from_epoch", start_from_epoch)
    if baseline is not None:
        baseline = _real("baseline", baseline, allow_inf=True)
    if convention == "keras":
        return _keras(h, mode, min_delta, patience, baseline, start_from_epoch)
    if convention != "flax":
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    for name, value, flax_value in (("mode", mode, "min"), ("baseline", baseline, None),
                                    ("start_from_epoch", start_from_epoch, 0)):
        if value != flax_value:
            raise ValueError(f"{name}: flax's EarlyStopping has only {flax_value!r}, got {value!r}")
    return _flax(h, min_delta, patience)


def train_with_early_stopping(step: Callable[[Any, int], Any], evaluate: Callable[[Any], float],
                              params: Any, epochs: int, restore_best_weights: bool = False,
                              **policy) -> tuple[Any, np.ndarray, EarlyStoppingOutcome]:
    """for epoch in range(epochs): params = step(params, epoch); history += evaluate(params);
    stop after the epoch at which ``early_stopping(history, **policy)`` stops. Returns (the
    params of the outcome's best_epoch if restore_best_weights and an epoch was monitored,
    else the last params; the history of the epochs run; the outcome)."""
    epochs = _count("epochs", epochs)
    outcome = early_stopping(np.empty(0), **policy)  # checks the policy before any step
    history: list[float] = []
    best = None
    for epoch in range(epochs):
        params = step(params, epoch)
        history.append(float(evaluate(params)))
        outcome = early_stopping(np.array(history), **policy)
        if outcome.best_epoch == epoch:
            best = params
        if outcome.stopped_epoch is not None:
            break
    restored = best if restore_best_weights and outcome.best_epoch is not None else params
    return restored, np.array(history, dtype=np.float64), outcome
