"""Dense (affine) layer.

Layout: x (N, I), w (I, O), b (O,) or None; y = x @ w + b, shape (N, O).
"""

from __future__ import annotations

import numpy as np

from reference._validate import as_float


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """y = x w + b."""
    x = as_float("x", x, 2)
    w = as_float("w", w, 2)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"w: expected {x.shape[1]} input rows to match x {x.shape}, "
                         f"got shape {w.shape}")
    y = x @ w
    if b is not None:
        b = as_float("b", b, 1)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b: expected shape ({w.shape[1]},), got {b.shape}")
        y = y + b
    return y


def dense_vjp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray):
    """(dx, dw, db) = (g w^T, x^T g, sum_n g); db is None when b is None."""
    x = as_float("x", x, 2)
    w = as_float("w", w, 2)
    g = as_float("g", g, 2)
    if g.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"g: expected shape {(x.shape[0], w.shape[1])}, got {g.shape}")
    if b is not None and np.shape(b) != (w.shape[1],):
        raise ValueError(f"b: expected shape ({w.shape[1]},), got {np.shape(b)}")
    return g @ w.T, x.T @ g, (None if b is None else g.sum(axis=0))
