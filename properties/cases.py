"""How each component's inputs are drawn: primals, keyword inputs, and the reduction length.

A case is ``draw(data, dtype, tail) -> Inputs``. Regular draws keep away from kinks (relu at
0, |d| = delta in Huber, ...) so gradients are defined; ``tail`` draws the saturated and
underflowing ranges, and the range near 0, where a result must still be right in relative
terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from properties.coverage import stratum
from properties.inputs import Case, Inputs
from properties.strategies import (
    MAX_ELEMENTS,
    floats_array,
    kink_free,
    near_zero_array,
    realistic,
    shapes,
    sized,
)
from properties.tolerance import round_to

#: activations whose derivative jumps at these points
_KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,)}
#: the near-zero range: both signs, magnitudes from the dtype's smallest normal up
NEAR_ZERO = "near_zero"
#: tail ranges per activation: (lo, hi) pairs (saturation, underflow) and NEAR_ZERO, where
#: expm1- and log1p-style cancellation shows (no kink gap: a forward has no kink problem)
TAILS = {
    "sigmoid": ((-80.0, -10.0), (10.0, 80.0), NEAR_ZERO),
    "tanh": ((-20.0, -3.0), (3.0, 20.0), NEAR_ZERO),
    "gelu": ((-12.0, -4.0), NEAR_ZERO),
    "silu": ((-80.0, -10.0), NEAR_ZERO),
    "softplus": ((-80.0, -10.0), (10.0, 80.0), NEAR_ZERO),
    "elu": ((-80.0, -10.0), NEAR_ZERO),
}


#: the reductions of a loss, a configuration class of each
REDUCTIONS = ("mean", "sum", "none")


def range_name(rng) -> str:
    """A tail range's class name: 'near_zero' or 'lo..hi'."""
    return rng if rng == NEAR_ZERO else f"{rng[0]:g}..{rng[1]:g}"


def tail_array(data, shape, ranges, dtype: str, label: str) -> np.ndarray:
    """An array in one range of ``ranges`` ((lo, hi) or NEAR_ZERO), the class 'tail'."""
    names = tuple(range_name(r) for r in ranges)
    rng = ranges[names.index(stratum(data, "tail", names))]
    if rng == NEAR_ZERO:
        return data.draw(near_zero_array(shape, dtype), label=label)
    return data.draw(floats_array(shape, *rng, dtype), label=label)


def activation_case(name: str, **draw_kwargs) -> Case:
    """Draws of activation ``name``; a keyword given as {class: strategy} is a configuration
    class (its class drawn first, then its value from that class's strategy)."""
    def case(data, dtype, tail):
        shape, _ = sized(data, shapes(), (1, 64), (8, 512))
        if tail:
            x = tail_array(data, shape, TAILS[name], dtype, "x")
        else:
            x = data.draw(floats_array(shape, -6.0, 6.0, dtype, gap=1e-2,
                                       kinks=_KINKS.get(name, ())), label="x")
        kwargs = {}
        for k, s in draw_kwargs.items():
            if isinstance(s, dict):
                s = s[stratum(data, k, tuple(s))]
            kwargs[k] = data.draw(s, label=k)
        return Inputs((x,), kwargs)
    return case


def softmax(data, dtype, tail):
    shape, big = sized(data, shapes(1, 3), (1, 32), (8, 1024))
    axis = -1 if big else data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    bound = 800.0 if tail else 10.0
    x = data.draw(floats_array(shape, -bound, bound, dtype), label="x")
    return Inputs((x,), {"axis": axis}, terms=shape[axis])


def dense(data, dtype, tail):
    if realistic(data):  # I up to 1024 terms per output, batches to 128
        i, o = data.draw(st.integers(8, 1024), label="I"), data.draw(st.integers(1, 64), label="O")
        n = min(data.draw(st.integers(1, 128), label="N"), MAX_ELEMENTS // i)
    else:
        n, i, o = (data.draw(st.integers(1, 6), label=k) for k in "NIO")
    x = data.draw(floats_array((n, i), -2.0, 2.0, dtype), label="x")
    w = data.draw(floats_array((i, o), -2.0, 2.0, dtype), label="w")
    b = data.draw(floats_array((o,), -2.0, 2.0, dtype), label="b")
    return Inputs((x, w, b), {}, terms=i + 1)


def regression(name: str) -> Case:
    def case(data, dtype, tail):
        shape, _ = sized(data, shapes(1, 2), (1, 128), (8, 256))
        kwargs: dict[str, Any] = {"reduction": stratum(data, "reduction", REDUCTIONS)}
        if tail:  # near the origin, where Huber is 0.5 d^2 (relative accuracy)
            pred, target = (data.draw(near_zero_array(shape, dtype), label=k)
                            for k in ("pred", "target"))
            return Inputs((pred,), {"target": target, **kwargs, "delta": 1.0}, terms=pred.size)
        target = data.draw(floats_array(shape, -3.0, 3.0, dtype), label="target")
        kinks: tuple[float, ...] = (0.0,)
        if name == "huber_loss":
            delta = float(round_to(np.array(data.draw(st.floats(0.25, 3.0), label="delta")), dtype))
            kwargs["delta"] = delta
            kinks = (0.0, delta, -delta)
        diff = data.draw(floats_array(shape, -4.0, 4.0, "float64"), label="diff")
        if name != "mse_loss":  # move |diff| out of [k - 0.05, k + 0.05] around each kink
            a = np.abs(diff)
            for k in sorted({abs(k) for k in kinks}, reverse=True):
                a = np.where(np.abs(a - k) < 0.05, a + 0.1, a)
            diff = np.where(diff < 0, -a, a)
        pred = round_to(target + diff, dtype)
        kink_free(pred - target, kinks, 0.04 if name != "mse_loss" else 0.0)
        return Inputs((pred,), {"target": target, **kwargs}, terms=pred.size)
    return case


BCE_TAILS = ((-100.0, -4.0), (4.0, 100.0), (-800.0, -100.0), (100.0, 800.0), NEAR_ZERO)


def bce(data, dtype, tail):
    shape, _ = sized(data, shapes(1, 2), (1, 128), (8, 256))
    logits = tail_array(data, shape, BCE_TAILS, dtype, "logits") if tail else \
        data.draw(floats_array(shape, -12.0, 12.0, dtype), label="logits")
    hard = data.draw(st.booleans(), label="hard_targets")
    if hard:
        target = data.draw(floats_array(shape, 0.0, 1.0, dtype), label="target").round()
    else:
        target = data.draw(floats_array(shape, 0.0, 1.0, dtype), label="target")
    reduction = "none" if tail else stratum(data, "reduction", REDUCTIONS)
    return Inputs((logits,), {"target": target, "reduction": reduction}, terms=logits.size)


#: class weights or none; for cross-entropy, with label smoothing or not (and both together)
WEIGHTS = ("unweighted", "class_weights")
WEIGHT_SMOOTHING = ("neither", "class_weights", "label_smoothing", "both")


def _classes(data, dtype, weighted: bool):
    if realistic(data):  # up to 1024 classes
        k = data.draw(st.integers(8, 1024), label="K")
        n = data.draw(st.integers(1, 32), label="N")
    else:
        n = data.draw(st.integers(1, 6), label="N")
        k = data.draw(st.integers(2, 6), label="K")
    labels = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
                                  label="labels"), dtype=np.int64)
    weight = data.draw(floats_array((k,), 0.1, 3.0, dtype), label="weight") if weighted else None
    reduction = stratum(data, "reduction", REDUCTIONS)
    return n, k, labels, weight, reduction


def cross_entropy(data, dtype, tail):
    form = stratum(data, "weight_smoothing", WEIGHT_SMOOTHING)
    n, k, labels, weight, reduction = _classes(data, dtype, form in ("class_weights", "both"))
    logits = data.draw(floats_array((n, k), -8.0, 8.0, dtype), label="logits")
    smoothing = data.draw(st.sampled_from((0.1,)) | st.floats(0.01, 0.5), label="label_smoothing") \
        if form in ("label_smoothing", "both") else 0.0
    return Inputs((logits,), {"labels": labels, "reduction": reduction,
                              "label_smoothing": smoothing, "weight": weight}, terms=n * k)


def nll(data, dtype, tail):
    weighted = stratum(data, "weight", WEIGHTS) == "class_weights"
    n, k, labels, weight, reduction = _classes(data, dtype, weighted)
    log_probs = data.draw(floats_array((n, k), -8.0, 0.0, dtype), label="log_probs")
    return Inputs((log_probs,), {"labels": labels, "reduction": reduction, "weight": weight},
                  terms=n)


def var_mean(data, dtype, tail):
    shape, big = sized(data, shapes(1, 3), (1, 16), (8, 1024))
    axis = -1 if big else data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    correction = data.draw(st.sampled_from((0, 1)), label="correction")
    if shape[axis] <= correction:  # one degree of freedom left
        shape = tuple(s + 1 if i == axis % len(shape) else s for i, s in enumerate(shape))
    offset = data.draw(st.sampled_from((0.0, 3.0)), label="offset")
    x = data.draw(floats_array(shape, offset - 2.0, offset + 2.0, dtype), label="x")
    return Inputs((x,), {"axis": axis, "correction": correction}, terms=shape[axis])
