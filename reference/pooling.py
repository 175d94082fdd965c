"""2-D pooling and flattening over NCHW input; each forward beside ``f_vjp(x, g, ...) -> (dx,)``.

Semantics are PyTorch's F.max_pool2d / F.avg_pool2d. kernel_size, stride, padding and dilation
are an int or an (h, w) pair; stride None means kernel_size; padding is at most kernel // 2 per
dimension. Per dimension (input size H, kernel k, stride s, padding p, dilation d) there are

    floor((H + 2p - d(k - 1) - 1) / s) + 1        windows, or with ceil_mode
    ceil((H + 2p - d(k - 1) - 1) / s) + 1,        less one if the last would start at or past H + p

and window o reads input rows o s - p + i d, i < k (the input padded by p on both sides, and on
the right as far as a ceil_mode window overhangs).

max pool: only input elements compete (a window over padding alone gives -inf and no gradient).
ties: the gradient of a window with several maxima goes to the first of them in row-major window
order ("first": PyTorch, lax.reduce_window) or is shared evenly among them ("split").
Overlapping windows (stride < kernel) each route their own gradient; the contributions add.

avg pool: the window's sum over zero padding, divided by the number of window positions inside
[-p, H + p) (count_include_pad=True; as in PyTorch a ceil_mode overhang past the padding is not
counted) or inside [0, H) (count_include_pad=False). No dilation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference._validate import as_float

TIES = ("first", "split")


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Number of windows along one dimension (may be <= 0 when the window does not fit)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Geometry(NamedTuple):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    out: tuple[int, int]
    padded: tuple[int, int] | None  # extent of the padded input, None when no padding is needed


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _ints(name: str, value, lo: int) -> tuple[int, int]:
    v = (value, value) if _is_int(value) else tuple(value) if isinstance(value, tuple | list) else ()
    if len(v) != 2 or not all(_is_int(e) for e in v) or min(v) < lo:
        raise ValueError(f"{name}: expected an int >= {lo} or a pair of them, got {value!r}")
    return int(v[0]), int(v[1])


def _geometry(x: np.ndarray, kernel_size, stride, padding, dilation, ceil_mode) -> _Geometry:
    k = _ints("kernel_size", kernel_size, 1)
    s = k if stride is None else _ints("stride", stride, 1)
    p = _ints("padding", padding, 0)
    d = _ints("dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding: expected at most half the kernel size {k}, got {p}")
    size = x.shape[2:]
    out = tuple(pool_output_size(size[a], k[a], s[a], p[a], d[a], bool(ceil_mode)) for a in (0, 1))
    if min(out) < 1:
        span = tuple(d[a] * (k[a] - 1) + 1 for a in (0, 1))
        raise ValueError(f"kernel_size: the window extent {span} (kernel {k}, dilation {d}) does not "
                         f"fit the input {size} padded by {p}")
    # rows of the padded input that windows read, and the input itself: [-p, max(need, H + p))
    extent = tuple(max((out[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1, size[a] + p[a]) for a in (0, 1))
    padded = None if p == (0, 0) and extent == size else extent
    return _Geometry(k, s, p, d, out, padded)


def _offsets(geo: _Geometry):
    """(rows, cols) slices of the padded input read by kernel offset (i, j), row-major."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.kernel, geo.stride, geo.dilation, geo.out
    for i in range(kh):
        for j in range(kw):
            yield (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                   slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def _pad(x: np.ndarray, geo: _Geometry, fill: float) -> np.ndarray:
    if geo.padded is None:
        return x
    (ph, pw), (h, w) = geo.padding, x.shape[2:]
    xp = np.full(x.shape[:2] + geo.padded, fill)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _crop(dxp: np.ndarray, geo: _Geometry, shape) -> np.ndarray:
    if geo.padded is None:
        return dxp
    (ph, pw), (h, w) = geo.padding, shape[2:]
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])


def _inside(geo: _Geometry, shape):
    """Per offset, an (oh, ow) mask of the windows whose element there is an input element."""
    (ph, pw), (h, w) = geo.padding, shape[2:]
    rows_all = np.arange(geo.padded[0])
    cols_all = np.arange(geo.padded[1])
    real_r, real_c = (rows_all >= ph) & (rows_all < ph + h), (cols_all >= pw) & (cols_all < pw + w)
    for rows, cols in _offsets(geo):
        yield real_r[rows][:, None] & real_c[cols][None, :]


def _cotangent(g, x: np.ndarray, geo: _Geometry) -> np.ndarray:
    g = as_float("g", g, 4)
    want = x.shape[:2] + geo.out
    if g.shape != want:
        raise ValueError(f"g: expected shape {want}, got {g.shape}")
    return g


def _window_max(xp: np.ndarray, geo: _Geometry) -> np.ndarray:
    y = None
    for rows, cols in _offsets(geo):
        v = xp[:, :, rows, cols]
        y = v.copy() if y is None else np.maximum(y, v, out=y)
    return y


def max_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               ties: str = "first") -> np.ndarray:
    """y[n, c, o, q] = max of x over window (o, q); x (N, C, H, W) -> (N, C, oh, ow)."""
    x = as_float("x", x, 4)
    geo = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    _ties(ties)
    return _window_max(_pad(x, geo, -np.inf), geo)


def _ties(ties: str) -> str:
    if ties not in TIES:
        raise ValueError(f"ties: expected one of {TIES}, got {ties!r}")
    return ties


def max_pool2d_vjp(x: np.ndarray, g: np.ndarray, kernel_size, stride=None, padding=0, dilation=1,
                   ceil_mode: bool = False, ties: str = "first") -> tuple[np.ndarray]:
    """Each window's g to its maximum (ties: the first in row-major order, or split evenly)."""
    x = as_float("x", x, 4)
    geo = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _cotangent(g, x, geo)
    _ties(ties)
    xp = _pad(x, geo, -np.inf)
    y = _window_max(xp, geo)
    offsets = list(_offsets(geo))
    inside = [None] * len(offsets) if geo.padded is None else list(_inside(geo, x.shape))
    hits = []
    for (rows, cols), real in zip(offsets, inside, strict=True):
        hit = xp[:, :, rows, cols] == y
        if real is not None:
            hit &= real
        hits.append(hit)
    dxp = np.zeros(xp.shape)
    if ties == "first":
        free = np.ones(y.shape, dtype=bool)
        for (rows, cols), hit in zip(offsets, hits, strict=True):
            hit &= free
            free &= ~hit
            dxp[:, :, rows, cols] += g * hit
    else:
        share = g / np.maximum(sum(h.astype(np.int64) for h in hits), 1)
        for (rows, cols), hit in zip(offsets, hits, strict=True):
            dxp[:, :, rows, cols] += share * hit
    return (_crop(dxp, geo, x.shape),)


def _divisor(geo: _Geometry, shape, count_include_pad: bool) -> np.ndarray:
    """(oh, ow) number of window positions counted by the mean."""
    counts = []
    for a in (0, 1):
        k, s, p, n = geo.kernel[a], geo.stride[a], geo.padding[a], shape[2 + a]
        start = np.arange(geo.out[a]) * s - p
        if count_include_pad:
            counts.append(np.minimum(start + k, n + p) - start)
        else:
            counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return np.multiply.outer(counts[0], counts[1]).astype(np.float64)


def avg_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> np.ndarray:
    """y[n, c, o, q] = (sum of x over window (o, q), padding 0) / divisor; see the module doc."""
    x = as_float("x", x, 4)
    geo = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    xp = _pad(x, geo, 0.0)
    y = None
    for rows, cols in _offsets(geo):
        v = xp[:, :, rows, cols]
        y = v.copy() if y is None else np.add(y, v, out=y)
    y /= _divisor(geo, x.shape, count_include_pad)
    return y


def avg_pool2d_vjp(x: np.ndarray, g: np.ndarray, kernel_size, stride=None, padding=0,
                   ceil_mode: bool = False, count_include_pad: bool = True) -> tuple[np.ndarray]:
    """dx = sum over the windows containing x of g / divisor."""
    x = as_float("x", x, 4)
    geo = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    g = _cotangent(g, x, geo)
    share = g / _divisor(geo, x.shape, count_include_pad)
    dxp = np.zeros(x.shape[:2] + (geo.padded or x.shape[2:]))
    for rows, cols in _offsets(geo):
        dxp[:, :, rows, cols] += share
    return (_crop(dxp, geo, x.shape),)


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean over H and W: (N, C, H, W) -> (N, C)."""
    x = as_float("x", x, 4)
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x: expected a non-empty H x W plane, got shape {x.shape}")
    return x.mean(axis=(2, 3))


def global_avg_pool2d_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    """dx[n, c, h, w] = g[n, c] / (H W)."""
    x = as_float("x", x, 4)
    g = as_float("g", g, 2)
    if g.shape != x.shape[:2]:
        raise ValueError(f"g: expected shape {x.shape[:2]}, got {g.shape}")
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x: expected a non-empty H x W plane, got shape {x.shape}")
    dx = np.empty(x.shape)
    dx[...] = (g / (x.shape[2] * x.shape[3]))[:, :, None, None]
    return (dx,)


def _flat_shape(x: np.ndarray) -> tuple[int, int]:
    if x.ndim < 2:
        raise ValueError(f"x: expected at least 2 dimensions, got shape {x.shape}")
    return x.shape[0], int(np.prod(x.shape[1:]))


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, prod(...)) in C order (a view when x is already float64)."""
    x = as_float("x", x)
    return x.reshape(_flat_shape(x))


def flatten_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    x = as_float("x", x)
    g = as_float("g", g, 2)
    if g.shape != _flat_shape(x):
        raise ValueError(f"g: expected shape {_flat_shape(x)}, got {g.shape}")
    return (g.reshape(x.shape),)
