"""Cases of the recurrent cells and the embedding: inputs valid by construction.

Cells (reference/recurrent.py, PyTorch's layout): x (N, I), states (N, H), w_ih (G H, I),
w_hh (G H, H), b_ih and b_hh (G H,). Sizes come from a short menu per regime (SMALL_CELLS,
REALISTIC_CELLS), so that the examples of one property repeat shapes: JAX compiles a cell
once per configuration and shapes, and a first jax run is dominated by those compilations.
The realistic size reduces over I + H = 256 terms per gate with H = 96 (not a power of
two: blocked kernels run their remainder loops), a batch of 16 (its w_hh, G H x H, is above
strategies.MAX_ELEMENTS: a hidden size of 64-128 is what recurrent kernels are blocked for).
Each menu entry costs a JAX compilation per property, dtype and configuration (about 0.3-1.5
s here, the forward and the VJP apart), hence one shape per regime, the small one with N,
I and H distinct (a transposed operand cannot pass).

Weights are uniform with variance scale^2 / (I + H) (the fan of a gate's pre-activation),
so at scale 1 the pre-activations are of order 1 and the gates are neither all saturated
nor all linear; the scale is a configuration class (SCALES): 'moderate', 'saturating' (8:
most gates saturated, a ReLU cell's output large, the exploding regime) and 'vanishing'
(1/16: every gate near its linear range, outputs small). The tolerance policy measures the
condition on the oracle, so each is compared in relative terms. Initial states are zeros
(a sequence's first step) or drawn (STATES).

A ReLU cell's pre-activations are kept away from 0 by a margin that covers a backend's
rounding of them in the dtype under test (``_relu_margin``): where one falls inside, its
unit's input bias is moved by the least amount that takes every row of the batch out (the
unit then stays alive, or dead, over the batch where the margin is wide, as in bfloat16).

Embedding: weight (V, E), ids of one or two axes, drawn distinct or with repeats on purpose
(IDS: the gradient must accumulate, a scatter-add, not overwrite), and padding_idx None or
an id that occurs (PADDING), sometimes negative (counted from the end, as PyTorch allows).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from properties.coverage import stratum
from properties.inputs import Case, Inputs
from properties.strategies import SEEDED_ABOVE, floats_array, realistic
from properties.tolerance import EPS, round_to
from reference.recurrent import GATES

#: (N, I, H) menus per regime: a handful of shapes per property (see the module docstring)
SMALL_CELLS = ((3, 2, 4),)
REALISTIC_CELLS = ((16, 160, 96),)
#: configuration classes of every cell
SCALES = {"moderate": 1.0, "saturating": 8.0, "vanishing": 1.0 / 16.0}
STATES = ("zeros", "drawn")
NONLINEARITIES = ("tanh", "relu")
RESET_AFTER = ("after", "before")
#: the least distance of a ReLU pre-activation from 0 (and the finite-difference check's
#: step, tests/fd.py, never reaches it)
RELU_GAP = 1e-3


def _uniform(data, shape, bound: float, dtype: str, label: str) -> np.ndarray:
    return data.draw(floats_array(shape, -bound, bound, dtype), label=label)


def _relu_margin(dtype: str, terms: int) -> float:
    """The margin of a ReLU pre-activation from 0, relative to the magnitude T of the terms it
    sums (|x| |w_ih|^T + |h| |w_hh|^T + |b_ih| + |b_hh|): four times eps sqrt(terms) T, above
    any backend's rounding of the sum in ``dtype``."""
    return 4.0 * EPS[dtype] * np.sqrt(terms)


def _relu_clear(x, h, w_ih, w_hh, b_ih, b_hh, dtype: str) -> np.ndarray:
    """b_ih with each unit's entry moved by the least amount that keeps every row's ReLU
    pre-activation p at least max(RELU_GAP, margin T) from 0 (T grows with the bias moved),
    rounded to ``dtype``; the example is rejected where the rounding undoes it (rare)."""
    c = _relu_margin(dtype, x.shape[1] + h.shape[1] + 2)
    rest = np.abs(x) @ np.abs(w_ih).T + np.abs(h) @ np.abs(w_hh).T + np.abs(b_hh)  # T less |b_ih|
    base = x @ w_ih.T + h @ w_hh.T + b_hh                                          # p less b_ih

    def clear(b, widen=1.0):
        return np.abs(base + b) >= widen * np.maximum(RELU_GAP, c * (rest + np.abs(b)))

    bad = ~clear(b_ih).all(axis=0)
    if not bad.any():
        return b_ih
    new = b_ih.copy()
    for j in np.flatnonzero(bad):
        b, p, t = b_ih[j], base[:, j], rest[:, j]
        # where each row's condition turns, piece by piece: |p + b'| = c (t + |b'|) with the
        # signs of p + b' and b' fixed, or |p + b'| = gap; the least move that clears all
        # (solved with 1.2 c and 1.2 gap: a little outside); the largest candidate clears
        # every row (p + b' grows faster than c (t + |b'|), c < 1)
        cands = [b]
        for s1 in (1.0, -1.0):
            cands += list(s1 * 1.2 * RELU_GAP - p)
            for s2 in (1.0, -1.0):
                cands += list((1.2 * c * t - s1 * p) / (s1 - 1.2 * c * s2))
        cands = np.array(cands)
        ok = [bool(np.all(np.abs(p + v) >= 1.1 * np.maximum(RELU_GAP, c * (t + abs(v)))))
              for v in cands]
        assume(any(ok))
        new[j] = min(cands[ok], key=lambda v: abs(v - b))
    new = round_to(new, dtype)
    assume(bool(clear(new).all()))
    return new


def cell(kind: str) -> Case:
    """The case of the 'rnn', 'lstm' or 'gru' cell."""
    gates = GATES[kind]

    def case(data, dtype, tail):
        big = realistic(data)
        n, i, h = data.draw(st.sampled_from(REALISTIC_CELLS if big else SMALL_CELLS),
                            label="N, I, H")
        scale = SCALES[stratum(data, "scale", tuple(SCALES))]
        drawn = stratum(data, "state", STATES) == "drawn"
        kwargs = {}
        if kind == "rnn":
            kwargs["nonlinearity"] = stratum(data, "nonlinearity", NONLINEARITIES)
        if kind == "gru":
            kwargs["reset_after"] = stratum(data, "reset_after", RESET_AFTER) == "after"
        x = _uniform(data, (n, i), 2.0, dtype, "x")
        states = [_uniform(data, (n, h), 1.0, dtype, "h") if drawn else np.zeros((n, h))]
        if kind == "lstm":
            states.append(_uniform(data, (n, h), 3.0, dtype, "c") if drawn else np.zeros((n, h)))
        bound = scale * np.sqrt(3.0 / (i + h))
        w_ih = _uniform(data, (gates * h, i), bound, dtype, "w_ih")
        w_hh = _uniform(data, (gates * h, h), bound, dtype, "w_hh")
        b_ih = _uniform(data, (gates * h,), 0.5 * scale, dtype, "b_ih")
        b_hh = _uniform(data, (gates * h,), 0.5 * scale, dtype, "b_hh")
        if kwargs.get("nonlinearity") == "relu":
            b_ih = _relu_clear(x, states[0], w_ih, w_hh, b_ih, b_hh, dtype)
        # the longest sum: a gate's pre-activation (I + H products and two biases), dx and
        # dh (G H products), a weight or bias gradient (N rows)
        terms = max(i + h + 2, gates * h, n)
        return Inputs((x, *states, w_ih, w_hh, b_ih, b_hh), kwargs, terms=terms)
    return case


def classify_cell(inp: Inputs) -> dict[str, str]:
    """The GRU's reset_after class as the backend runs it (its conventions applied)."""
    if "reset_after" not in inp.kwargs:
        return {}
    return {"reset_after": "after" if inp.kwargs["reset_after"] else "before"}


# -- embedding ----------------------------------------------------------------------------
#: (V, E, ids shape) menus per regime (one shape each: a JAX compilation per shape); the
#: realistic one sums up to a few hundred cotangent rows into one gradient row where ids
#: repeat
SMALL_TABLES = ((8, 3, (2, 3)),)
REALISTIC_TABLES = ((1024, 32, (512,)),)
IDS = ("distinct", "repeated")
PADDING = ("none", "present")


def _ids(data, v: int, shape: tuple[int, ...], repeated: bool) -> np.ndarray:
    count = int(np.prod(shape))
    if count > SEEDED_ABOVE:
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="ids_seed"))
        if repeated:  # a Zipf-like vocabulary: the most frequent id recurs about 200 times
            p = np.arange(1, v + 1) ** -1.5
            ids = rng.permutation(v)[rng.choice(v, count, p=p / p.sum())]
        else:
            ids = rng.permutation(v)[:count]
    elif repeated:
        ids = np.array(data.draw(st.lists(st.integers(0, v - 1), min_size=count,
                                          max_size=count), label="ids"))
        if len(set(ids.tolist())) == count:  # a repeat on purpose
            ids[-1] = ids[0]
    else:
        ids = np.array(data.draw(st.permutations(range(v)), label="ids")[:count])
    return ids.astype(np.int64).reshape(shape)


def embedding(data, dtype, tail):
    big = realistic(data)
    v, e, shape = data.draw(st.sampled_from(REALISTIC_TABLES if big else SMALL_TABLES),
                            label="V, E, ids shape")
    repeated = stratum(data, "ids", IDS) == "repeated"
    ids = _ids(data, v, shape, repeated)
    weight = data.draw(floats_array((v, e), -2.0, 2.0, dtype), label="weight")
    padding_idx = None
    if stratum(data, "padding_idx", PADDING) == "present":
        k = data.draw(st.integers(0, ids.size - 1), label="padding position")
        padding_idx = int(ids.flat[k])
        if data.draw(st.booleans(), label="padding_idx negative"):
            padding_idx -= v
    # the scatter-add sums the cotangents of every position of one id
    terms = int(np.bincount(ids.ravel(), minlength=v).max())
    return Inputs((weight,), {"ids": ids, "padding_idx": padding_idx}, terms=terms)


def classify_embedding(inp: Inputs) -> dict[str, str]:
    """padding_idx as the backend runs it (a backend may lack it: fixed to None)."""
    return {"padding_idx": "none" if inp.kwargs.get("padding_idx") is None else "present"}
