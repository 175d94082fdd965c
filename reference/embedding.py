"""Embedding lookup, as F.embedding (without max_norm): rows of a table picked by integer ids.

Layout: weight (V, E), ids an integer array of any shape with values in [0, V);
y = weight[ids], shape ids.shape + (E,).

VJP: a scatter-add, dweight[v] = sum of g over the positions where ids == v (repeated ids
accumulate); the ``padding_idx`` row (an int in [-V, V), negative counting from the end as in
PyTorch) gets no gradient. The forward returns the padding row as it is: PyTorch's
nn.Embedding zeroes it at initialisation, F.embedding does not. ids are data, not
differentiated; the differentiable input comes first, as every oracle component's does.
"""

from __future__ import annotations

import numpy as np

from reference._validate import as_float


def _inputs(weight, ids, padding_idx) -> tuple[np.ndarray, np.ndarray, int | None]:
    w = as_float("weight", weight, 2)
    v = w.shape[0]
    a = np.asarray(ids)
    if a.dtype.kind not in "iu":
        raise ValueError(f"ids: expected an integer array, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= v):
        raise ValueError(f"ids: expected values in [0, {v}) (the rows of weight {w.shape}), "
                         f"got range [{a.min()}, {a.max()}]")
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, int | np.integer) \
                or not -v <= padding_idx < v:
            raise ValueError(f"padding_idx: expected None or an int in [-{v}, {v}), "
                             f"got {padding_idx!r}")
        padding_idx = int(padding_idx) % v
    return w, a.astype(np.intp), padding_idx


def embedding(weight: np.ndarray, ids: np.ndarray, padding_idx: int | None = None) -> np.ndarray:
    """y = weight[ids]: weight (V, E), ids (...) integers -> (..., E)."""
    w, a, _ = _inputs(weight, ids, padding_idx)
    return w[a]


def embedding_vjp(weight: np.ndarray, ids: np.ndarray, g: np.ndarray,
                  padding_idx: int | None = None) -> tuple[np.ndarray]:
    """(dweight,): dweight[v] = sum_{p: ids[p] = v} g[p] (np.add.at), 0 for padding_idx."""
    w, a, pad = _inputs(weight, ids, padding_idx)
    g = as_float("g", g)
    want = a.shape + (w.shape[1],)
    if g.shape != want:
        raise ValueError(f"g: expected shape {want} (ids.shape + (E,)), got {g.shape}")
    dw = np.zeros_like(w)
    np.add.at(dw, a.ravel(), g.reshape(-1, w.shape[1]))
    if pad is not None:
        dw[pad] = 0.0
    return (dw,)
