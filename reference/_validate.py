"""Input checks shared by the oracle: every failure is a ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def as_float(name: str, x, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """Return ``x`` as a float64 array; reject NaN, non-numeric input and a wrong rank."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a real array, got {type(x).__name__}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in allowed:
            raise ValueError(f"{name}: expected {' or '.join(map(str, allowed))} dimensions, "
                             f"got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains NaN (shape {a.shape}); the oracle needs defined input")
    return a


def as_labels(name: str, y, n: int, num_classes: int) -> np.ndarray:
    """Integer class labels of shape (n,) with values in [0, num_classes)."""
    a = np.asarray(y)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer labels, got dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), "
                         f"got range [{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def row_indices(name: str, idx, rows: int) -> np.ndarray:
    """A non-empty 1-D integer array of row indices into an array of ``rows`` rows."""
    a = np.asarray(idx)
    if a.dtype.kind not in "iu" or a.ndim != 1 or a.size == 0 or a.min() < 0 or a.max() >= rows:
        raise ValueError(f"{name}: expected a non-empty 1-D array of row indices into x "
                         f"({rows} rows), got {a!r}")
    return a


def arrays_of_shapes(name: str, arrays, shapes: Sequence[tuple[int, ...]], owner: object
                     ) -> list[np.ndarray]:
    """A sequence of len(shapes) arrays, each of its shape, as float64 (``owner`` names whose
    shapes they are in the error)."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence) \
            or len(arrays) != len(shapes):
        got = len(arrays) if isinstance(arrays, Sequence) else type(arrays).__name__
        raise ValueError(f"{name}: expected {len(shapes)} arrays ({owner}), got {got}")
    out = []
    for i, (a, s) in enumerate(zip(arrays, shapes, strict=True)):
        a = as_float(f"{name}[{i}]", a)
        if a.shape != tuple(s):
            raise ValueError(f"{name}[{i}]: expected shape {tuple(s)}, got {a.shape}")
        out.append(a)
    return out


def same_shape(name: str, a: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if a.shape != ref.shape:
        raise ValueError(f"{name}: expected the shape of {ref_name} {ref.shape}, got {a.shape}")


def reduction(value: str) -> str:
    if value not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {value!r}")
    return value


def _number(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a number, got {value!r}") from exc


def positive(name: str, value: float, allow_zero: bool = False) -> float:
    v = _number(name, value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite value {bound}, got {value!r}")
    return v


def in_unit_interval(name: str, value: float, closed_right: bool = False) -> float:
    v = _number(name, value)
    ok = 0 <= v <= 1 if closed_right else 0 <= v < 1
    if not ok:
        raise ValueError(f"{name}: expected a value in [0, 1{']' if closed_right else ')'}, "
                         f"got {value!r}")
    return v
