"""Convolutions, PyTorch's semantics: conv2d, conv1d and conv_transpose2d beside their VJPs.

Layout NCHW (NCL). conv2d: x (N, C, H, W), w (O, C/G, kh, kw) (OIHW), b (O,) or None; a
cross-correlation (no kernel flip): with xp = x zero-padded,

    y[n, o, i, j] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q] xp[n, c, i sh + p dh, j sw + q dw]

Ho = (H + top + bottom - dh (kh - 1) - 1) // sh + 1 (Wo likewise). Groups split C and O into G
consecutive blocks; output block g sees input block g only. conv_transpose2d is the adjoint of
conv2d in x (torch's F.conv_transpose2d). All VJPs return (dx, dw, db), db None when b is None.

Implementation, vectorised over batch, channels, groups (an axis) and pixels: im2col through a
strided view (copied once, by the reshape) and one batched matmul for y and for dw; dx, the
faster per shape, either a full correlation of g with the flipped kernel (the same im2col) or,
per kernel offset, a batched matmul w[:, :, p, q]^T g scatter-added into the padded input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from reference._validate import as_float

Padding2d = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] | str
Pads = tuple[tuple[int, int], tuple[int, int]]
PADDING_STRINGS = ("valid", "same")


# --------------------------------------------------------------------------- argument checks

def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _ints(name: str, value, n: int, minimum: int) -> tuple[int, ...]:
    """An int or a length-n sequence of ints, each >= minimum, as an n-tuple."""
    vals = (value,) * n if _is_int(value) else value
    if (not isinstance(vals, Sequence) or isinstance(vals, str) or len(vals) != n
            or not all(_is_int(v) for v in vals)):
        raise ValueError(f"{name}: expected an int or {n} ints, got {value!r}")
    if any(v < minimum for v in vals):
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return tuple(int(v) for v in vals)


def _groups(groups) -> int:
    return _ints("groups", groups, 1, 1)[0]


def same_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF/JAX 'same': output ceil(size / s); the odd pixel of padding goes to the high side."""
    total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d_padding(padding: Padding2d, in_hw: Sequence[int], kernel_hw: Sequence[int],
                   stride: int | Sequence[int], dilation: int | Sequence[int]) -> Pads:
    """Resolve a padding spec to explicit ((top, bottom), (left, right)).

    int p: p on every side; (ph, pw): symmetric per dim; ((t, b), (l, r)): explicit; 'valid':
    none; 'same': per dim total = max((ceil(H / s) - 1) s + d (k - 1) + 1 - H, 0), low =
    total // 2, high = total - low (TF/JAX; for stride 1 equals torch's padding='same').
    """
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding: expected one of {PADDING_STRINGS}, an int or pairs, "
                             f"got {padding!r}")
        if padding == "valid":
            return (0, 0), (0, 0)
        s, d = _ints("stride", stride, 2, 1), _ints("dilation", dilation, 2, 1)
        top_bottom, left_right = (same_pad(int(in_hw[i]), int(kernel_hw[i]), s[i], d[i])
                                  for i in range(2))
        return top_bottom, left_right
    if (isinstance(padding, Sequence) and len(padding) == 2
            and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)):
        pads = tuple(_ints("padding", p, 2, 0) for p in padding)
    else:
        ph, pw = _ints("padding", padding, 2, 0)
        pads = ((ph, ph), (pw, pw))
    return pads  # type: ignore[return-value]


def _conv_args(x, w, b, groups: int, nd: int):
    """x (N, C, *spatial), w (O, C/G, *kernel), b (O,) or None, all float64 and consistent."""
    x = as_float("x", x, nd + 2)
    w = as_float("w", w, nd + 2)
    if x.shape[1] % groups:
        raise ValueError(f"groups: {groups} does not divide the {x.shape[1]} channels of x")
    if w.shape[0] % groups:
        raise ValueError(f"groups: {groups} does not divide the {w.shape[0]} output channels of w")
    if w.shape[1] != x.shape[1] // groups or min(w.shape) < 1:
        raise ValueError(f"w: expected shape (O, {x.shape[1] // groups}, *kernel) with O and the "
                         f"kernel >= 1 for x {x.shape} and groups={groups}, got {w.shape}")
    if b is not None:
        b = as_float("b", b, 1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b: expected shape ({w.shape[0]},), got {b.shape}")
    return x, w, b


def _out_size(in_hw, pads: Pads, kernel_hw, stride, dilation) -> tuple[int, int]:
    out = tuple((in_hw[i] + sum(pads[i]) - dilation[i] * (kernel_hw[i] - 1) - 1) // stride[i] + 1
                for i in range(2))
    if min(out) < 1:
        raise ValueError(f"x: spatial size {tuple(in_hw)} padded by {pads} is smaller than the "
                         f"dilated kernel {tuple(kernel_hw)} (dilation {tuple(dilation)})")
    return out  # type: ignore[return-value]


def conv2d_output_size(in_hw: Sequence[int], kernel_hw: Sequence[int], stride=1,
                       padding: Padding2d = 0, dilation=1) -> tuple[int, int]:
    """(Ho, Wo) of conv2d: (H + top + bottom - d (k - 1) - 1) // s + 1 per axis, the padding
    resolved as conv2d_padding does; ValueError where the dilated kernel exceeds the padded
    input."""
    s, d = _ints("stride", stride, 2, 1), _ints("dilation", dilation, 2, 1)
    return _out_size(in_hw, conv2d_padding(padding, in_hw, kernel_hw, s, d), kernel_hw, s, d)


def _cotangent(g, shape: tuple[int, ...]) -> np.ndarray:
    g = as_float("g", g, len(shape))
    if g.shape != shape:
        raise ValueError(f"g: expected shape {shape}, got {g.shape}")
    return g


# --------------------------------------------------------------------------- kernels
# Validated float64 input; pads explicit; stride and dilation pairs; no bias.

def _pad(x: np.ndarray, pads) -> np.ndarray:
    """x (N, C, H, W) zero-padded by ((top, bottom), (left, right)); a negative pad crops."""
    n, c, h, w = x.shape
    (t, bo), (le, r) = pads
    x = x[:, :, max(-t, 0):h - max(-bo, 0), max(-le, 0):w - max(-r, 0)]
    t, bo, le, r = (max(v, 0) for v in (t, bo, le, r))
    xp = np.zeros((n, c, x.shape[2] + t + bo, x.shape[3] + le + r))
    xp[:, :, t:t + x.shape[2], le:le + x.shape[3]] = x
    return xp


def _cols(x: np.ndarray, pads, kernel_hw, stride, dilation, groups: int, out_hw) -> np.ndarray:
    """im2col: (N, G, C/G kh kw, Ho Wo) with cols[n, g, (c, p, q), (i, j)] =
    xp[n, g C/G + c, i sh + p dh, j sw + q dw]; one copy of a strided view."""
    xp = _pad(x, pads)
    n, c = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    kh, kw = kernel_hw
    if any((out_hw[i] - 1) * stride[i] + dilation[i] * (kernel_hw[i] - 1) >= xp.shape[2 + i]
           for i in range(2)):  # the strided view would read outside xp: a bug here, not bad input
        raise AssertionError(f"im2col: {out_hw} windows overrun the padded input {xp.shape}")
    view = as_strided(xp, (n, groups, c // groups, kh, kw, *out_hw),
                      (sn, sc * (c // groups), sc, sh * dilation[0], sw * dilation[1],
                       sh * stride[0], sw * stride[1]), writeable=False)
    return view.reshape(n, groups, (c // groups) * kh * kw, out_hw[0] * out_hw[1])


def _forward(x, w, pads, stride, dilation, groups: int, out_hw) -> np.ndarray:
    """conv2d without bias, evaluated at the first out_hw output positions."""
    o = w.shape[0]
    cols = _cols(x, pads, w.shape[2:], stride, dilation, groups, out_hw)
    y = w.reshape(groups, o // groups, -1) @ cols                      # (N, G, O/G, Ho Wo)
    return y.reshape(x.shape[0], o, *out_hw)


def _grad_w(x, g, pads: Pads, kernel_hw, stride, dilation, groups: int) -> np.ndarray:
    """d<conv2d(x, w), g>/dw, shape (O, C/G, kh, kw); the output size is g's."""
    n, o = g.shape[:2]
    cols = _cols(x, pads, kernel_hw, stride, dilation, groups, g.shape[2:])
    gg = g.reshape(n, groups, o // groups, -1)
    dw = (gg @ cols.swapaxes(-1, -2)).sum(axis=0)                    # (G, O/G, C/G kh kw)
    return dw.reshape(o, x.shape[1] // groups, *kernel_hw)


def _grad_x(g, w, in_hw, pads: Pads, stride, dilation, groups: int) -> np.ndarray:
    """d<conv2d(x, w), g>/dx for x of spatial size in_hw. Two algorithms, whichever is faster
    for the shape (measured at one thread): at stride 1, when the im2col of g is at most twice
    the size of the scatter's products (O H W <= 2 C Ho Wo), a full correlation of g with the
    flipped kernel; otherwise a scatter-add over the kernel offsets."""
    o, ho, wo = g.shape[1:]
    if stride == (1, 1) and o * in_hw[0] * in_hw[1] <= 2 * w.shape[1] * groups * ho * wo:
        return _grad_x_full(g, w, in_hw, pads, dilation, groups)
    return _grad_x_scatter(g, w, in_hw, pads, stride, dilation, groups)


def _grad_x_full(g, w, in_hw, pads: Pads, dilation, groups: int) -> np.ndarray:
    """Stride 1: dx[y] = sum_p g[y + top - p d] w[p], i.e. conv2d of g with w flipped and
    transposed per group, g padded (negative: cropped) by (k - 1) d - top below and to the
    length H + (k - 1) d above (conv_transpose2d's output_padding can leave g short)."""
    o, cg, kh, kw = w.shape
    wf = w.reshape(groups, o // groups, cg, kh, kw)[..., ::-1, ::-1].swapaxes(1, 2)
    wf = wf.reshape(groups * cg, o // groups, kh, kw)
    reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    low = [reach[i] - pads[i][0] for i in range(2)]
    full = tuple((low[i], in_hw[i] + reach[i] - low[i] - g.shape[2 + i]) for i in range(2))
    return _forward(g, wf, full, (1, 1), dilation, groups, in_hw)


def _grad_x_scatter(g, w, in_hw, pads: Pads, stride, dilation, groups: int) -> np.ndarray:
    """col2im: dxp[n, c, i sh + p dh, j sw + q dw] += sum_o w[o, c, p, q] g[n, o, i, j] within
    each group; per kernel offset (p, q) one batched matmul and one strided add."""
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    (t, bo), (le, r) = pads
    dxp = np.zeros((n, groups, cg, in_hw[0] + t + bo, in_hw[1] + le + r))
    wt = w.reshape(groups, o // groups, cg, kh, kw).transpose(3, 4, 0, 2, 1)  # (kh, kw, G, C/G, O/G)
    gg = g.reshape(n, groups, o // groups, ho * wo)
    (sh, sw), (eh, ew) = stride, dilation
    for p in range(kh):
        for q in range(kw):
            dxp[..., p * eh:p * eh + sh * (ho - 1) + 1:sh, q * ew:q * ew + sw * (wo - 1) + 1:sw] \
                += (wt[p, q] @ gg).reshape(n, groups, cg, ho, wo)
    return dxp.reshape(n, groups * cg, *dxp.shape[3:])[:, :, t:t + in_hw[0], le:le + in_hw[1]]


# --------------------------------------------------------------------------- conv2d

def _conv2d_setup(x, w, b, stride, padding, dilation, groups):
    groups = _groups(groups)
    x, w, b = _conv_args(x, w, b, groups, 2)
    stride, dilation = _ints("stride", stride, 2, 1), _ints("dilation", dilation, 2, 1)
    pads = conv2d_padding(padding, x.shape[2:], w.shape[2:], stride, dilation)
    out_hw = _out_size(x.shape[2:], pads, w.shape[2:], stride, dilation)
    return x, w, b, stride, pads, dilation, groups, out_hw


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1,
           padding: Padding2d = 0, dilation=1, groups: int = 1) -> np.ndarray:
    """2-D cross-correlation: x (N, C, H, W), w (O, C/G, kh, kw), b (O,) -> (N, O, Ho, Wo).
    stride, dilation: int or (h, w); padding: see conv2d_padding."""
    x, w, b, stride, pads, dilation, groups, out_hw = _conv2d_setup(
        x, w, b, stride, padding, dilation, groups)
    y = _forward(x, w, pads, stride, dilation, groups, out_hw)
    return y if b is None else y + b[:, None, None]


def conv2d_vjp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, stride=1,
               padding: Padding2d = 0, dilation=1, groups: int = 1):
    """(dx, dw, db) for g of shape (N, O, Ho, Wo): dx[n, c, y, x] = sum of w[o, c, p, q]
    g[n, o, i, j] over the taps (i sh + p dh, j sw + q dw) = (y + top, x + left);
    dw[o, c, p, q] = sum_{n, i, j} g[n, o, i, j] xp[n, c, i sh + p dh, j sw + q dw];
    db = sum of g over (N, Ho, Wo), None when b is None."""
    x, w, b, stride, pads, dilation, groups, out_hw = _conv2d_setup(
        x, w, b, stride, padding, dilation, groups)
    g = _cotangent(g, (x.shape[0], w.shape[0], *out_hw))
    dx = _grad_x(g, w, x.shape[2:], pads, stride, dilation, groups)
    dw = _grad_w(x, g, pads, w.shape[2:], stride, dilation, groups)
    return dx, dw, (None if b is None else g.sum(axis=(0, 2, 3)))


# --------------------------------------------------------------------------- conv1d
# The 2-D code with a unit height axis: x (N, C, 1, L), w (O, C/G, 1, k).

def _conv1d_args(x, w, b, stride, padding, dilation, groups):
    groups = _groups(groups)
    x, w, b = _conv_args(x, w, b, groups, 1)
    (s,), (d,) = _ints("stride", stride, 1, 1), _ints("dilation", dilation, 1, 1)
    if isinstance(padding, str):
        pads = conv2d_padding(padding, (1, x.shape[2]), (1, w.shape[2]), (1, s), (1, d))
    else:
        pads = ((0, 0), _ints("padding", padding, 2, 0))
    return x[:, :, None, :], w[:, :, None, :], b, (1, s), pads, (1, d), groups


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> np.ndarray:
    """1-D cross-correlation: x (N, C, L), w (O, C/G, k), b (O,) -> (N, O, Lo).
    padding: int p (both ends), (low, high), 'valid' or 'same' (as conv2d)."""
    y = conv2d(*_conv1d_args(x, w, b, stride, padding, dilation, groups))
    return y[:, :, 0, :]


def conv1d_vjp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, stride=1,
               padding=0, dilation=1, groups: int = 1):
    """(dx, dw, db) for g of shape (N, O, Lo); db None when b is None."""
    x2, w2, b, s, pads, d, groups = _conv1d_args(x, w, b, stride, padding, dilation, groups)
    g = as_float("g", g, 3)
    dx, dw, db = conv2d_vjp(x2, w2, b, g[:, :, None, :], s, pads, d, groups)
    return dx[:, :, 0, :], dw[:, :, 0, :], db


# --------------------------------------------------------------------------- conv_transpose2d

def _transpose_setup(x, w, b, stride, padding, output_padding, groups, dilation):
    """Validated arrays and the conv2d whose input gradient this is: w viewed as conv2d's
    (O = Cin, C/G = Cout/G, kh, kw); the output (N, Cout, Ho, Wo)."""
    groups = _groups(groups)
    x = as_float("x", x, 4)
    w = as_float("w", w, 4)
    if x.shape[1] % groups:
        raise ValueError(f"groups: {groups} does not divide the {x.shape[1]} channels of x")
    if w.shape[0] != x.shape[1] or min(w.shape) < 1:
        raise ValueError(f"w: expected shape ({x.shape[1]}, Cout/G, kh, kw) with Cout/G and the "
                         f"kernel >= 1 for x {x.shape}, got {w.shape}")
    cout = w.shape[1] * groups
    if b is not None:
        b = as_float("b", b, 1)
        if b.shape != (cout,):
            raise ValueError(f"b: expected shape ({cout},), got {b.shape}")
    stride, dilation = _ints("stride", stride, 2, 1), _ints("dilation", dilation, 2, 1)
    ph, pw = _ints("padding", padding, 2, 0)
    op = _ints("output_padding", output_padding, 2, 0)
    if any(op[i] >= max(stride[i], dilation[i]) for i in range(2)):
        raise ValueError(f"output_padding: expected each value < max(stride, dilation) = "
                         f"{tuple(max(s, d) for s, d in zip(stride, dilation, strict=True))}, "
                         f"got {output_padding!r}")
    out_hw = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * (ph, pw)[i]
                   + dilation[i] * (w.shape[2 + i] - 1) + op[i] + 1 for i in range(2))
    if min(out_hw) < 1:
        raise ValueError(f"padding: {padding!r} leaves an output of size {out_hw} for x {x.shape}")
    return x, w, b, stride, ((ph, ph), (pw, pw)), dilation, groups, out_hw


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> np.ndarray:
    """torch's F.conv_transpose2d: x (N, Cin, H, W), w (Cin, Cout/G, kh, kw), b (Cout,) ->
    (N, Cout, Ho, Wo), Ho = (H - 1) sh - 2 ph + dh (kh - 1) + output_padding_h + 1.

    The adjoint of conv2d in its input: the gradient wrt x of <conv2d(x, w), y> for x of size
    (Ho, Wo), same stride, padding, dilation and groups. padding: int or (ph, pw), symmetric;
    output_padding: int or pair, each < max(stride, dilation) of its dim."""
    x, w, b, stride, pads, dilation, groups, out_hw = _transpose_setup(
        x, w, b, stride, padding, output_padding, groups, dilation)
    y = _grad_x(x, w, out_hw, pads, stride, dilation, groups)
    return y if b is None else y + b[:, None, None]


def conv_transpose2d_vjp(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray,
                         stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """(dx, dw, db) for g of shape (N, Cout, Ho, Wo): dx = conv2d(g, w) (cropped to (H, W)),
    dw = conv2d's weight gradient with input g and cotangent x; db = sum of g over (N, Ho, Wo)."""
    x, w, b, stride, pads, dilation, groups, out_hw = _transpose_setup(
        x, w, b, stride, padding, output_padding, groups, dilation)
    g = _cotangent(g, (x.shape[0], w.shape[1] * groups, *out_hw))
    dx = _forward(g, w, pads, stride, dilation, groups, x.shape[2:])
    dw = _grad_w(g, x, pads, w.shape[2:], stride, dilation, groups)
    return dx, dw, (None if b is None else g.sum(axis=(0, 2, 3)))
