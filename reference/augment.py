"""Data augmentation on NCHW float64 images x (N, C, H, W); each forward beside its VJP
``f_vjp(x, g, ...) -> (dx,)`` w.r.t. x (angles, boxes, sizes and amounts are configuration).
The jax adapter converts to HWC itself.

hflip: y[..., j] = x[..., W - 1 - j] (torchvision.transforms.v2.functional.horizontal_flip_image:
``image.flip(-1)``; dm_pix.flip_left_right on HWC: ``jnp.flip(image, axis=-2)``).

rotate: by ``angle`` degrees counter-clockwise (as displayed, rows downwards) about the image
centre, output the input's size. Output pixel (i, j), centred as u = j - (W - 1)/2,
v = i - (H - 1)/2, samples the input at column and row (pixel-index coordinates)

    xs = cos(t) u - sin(t) v + (W - 1)/2,    ys = sin(t) u + cos(t) v + (H - 1)/2,

t = angle in radians, taken modulo 360 degrees, with cos and sin exact at multiples of 90 degrees.
Rotating a square image by 90 is np.rot90(x, 1, axes=(2, 3)). torchvision (_geometry.py
rotate_image: _get_inverse_affine_matrix(center 0, -angle), _affine_grid, grid_sample with
align_corners=False, whose unnormalisation puts the sample at exactly these coordinates; its fast
paths at 0, 180 and, for square images, 90 and 270 are exact as here) and dm_pix (augment.py
rotate: angle in radians, counter-clockwise, inverse matrix [[c, s], [-s, c]] on (row, col) about
(shape - 1)/2: the same coordinates) agree on the geometry. They differ at the border and, for
nearest, at ties; ``sampling`` selects (ROTATE_SAMPLING). Bilinear first: let S0 be the
bilinear sampling of the image padded with zeros, each of the four taps outside the image
contributing nothing (grid_sample's padding_mode='zeros'), and m = S0 1 the in-bounds weight of
each sample (1 inside, falling to 0 over the one-pixel ring around the image):

- 'torchvision' (default): torchvision.rotate with a fill value (RandomRotation's default
  fill=0 included) samples a mask channel of ones with the image and blends
  (_apply_grid_transform: mask (img - fill) + fill) the already zero-padded sample:
  y = m S0 x + (1 - m) fill. The ring is attenuated twice: fill=0 differs from fill=None, and
  an image equal to fill everywhere does not stay constant near the border
  (pytorch/vision#6517 and #8083, open; the unmerged PR #8098 would change it).
- 'padded': the image extended by fill, sampled: y = S0 x + (1 - m) fill, what that blend's
  comment (img * mask + (1 - mask) * fill) means; torchvision.rotate with fill=None (the
  functional's default: no mask, plain grid_sample) is this with fill = 0.
- 'pix' (dm_pix.rotate with mode='constant', cval=fill; order=1 is
  interpolation.flat_nd_linear_interpolate_constant): a sample with ys outside [0, H - 1] or xs
  outside [0, W - 1] is fill, whole; inside, plain bilinear.

Nearest: the pixel at the rounded coordinates, or fill where that pixel is outside (in
torchvision the sampled mask < 0.5); 'torchvision' and 'padded' round half to even (grid_sample's
nearest, nearbyint), 'pix' half away from zero (order=0 is jax.scipy.ndimage.map_coordinates:
lax.round). So nearest agrees between all three away from ties (a coordinate at k + 1/2), for
any fill; bilinear differs on the border ring between all three, for fill = 0 too (a sample 0.3
pixel left of the first column, on a row centre: 0.49 x, 0.7 x and 0 for fill = 0). dm_pix's
default mode='nearest' replicates the edge instead: not covered. Every form is linear in x,
y = S x + f fill, and its VJP is S^T g. A tie or pix's cut-off is a discontinuity in the
coordinates: frameworks that compute them with other roundings (torchvision's grid at 90
degrees on a non-square image, where cos is 6e-17, not 0) decide such points by their rounding;
compare away from them.

brightness (BRIGHTNESS_MODES): 'multiply_clamp' (torchvision _color.py adjust_brightness_image:
``image.mul(factor).clamp_(0, 1)`` for float images, _max_value(float) = 1; amount >= 0, as
torchvision requires) y = clip(amount x, 0, 1); its VJP is amount g where 0 <= amount x <= 1,
bounds included, as torch's clamp backward (clamp_backward: g where min <= self <= max), else 0.
'add' (dm_pix.adjust_brightness(image, delta) = image + delta, no clamp; tf.image
.adjust_brightness per dm_pix's docstring) y = x + amount, VJP g.

resized_crop: x[:, :, top:top + height, left:left + width] resized to size = (out_h, out_w) by
separable linear resampling, y = A_h crop A_w^T with A (out, in) per axis (torchvision v2
resized_crop_image = crop_image + resize_image: F.interpolate(mode='bilinear',
align_corners=False, antialias=True by default)). Row o of A, for input size m and output n:

    align_corners=False: s = (o + 1/2) m / n - 1/2 and support r = max(m / n, 1) with antialias,
                         1 without;
    align_corners=True:  s = o (m - 1) / (n - 1) (0 for n = 1), r = 1 (antialias=False only);
    A[o, j] = max(0, 1 - |j - s| / r) / sum_j' max(0, 1 - |j' - s| / r),   0 <= j, j' < m,

a triangle filter widened by the downscale factor with antialias, normalised over the in-bounds
taps. torch's antialiased kernel (UpSampleKernel.cpp, C++ not in the wheel, so checked
numerically; compute_indices_weights_aa: centre
scale (o + 1/2), support scale, invscale 1/scale when downsampling, weights normalised over the
taps in range) and its plain bilinear kernel (source index clamped at 0, the upper tap dropped
at the last pixel) are this matrix; so is jax.image.resize(method='linear', antialias=True |
False) (jax/_src/image/scale.py compute_weight_mat: sample_f = (o + 1/2) / scale - 1/2,
kernel_scale = max(1/scale, 1) with antialias, weights normalised over the input, zeroed only
where sample_f leaves [-1/2, m - 1/2], which a resize never does): they agree up to rounding
(measured below 2e-14 for every m, n < 40), so there is no convention to choose. Upsampling
(m <= n) is the same matrix with and without antialias. align_corners=True is
jax.image.scale_and_translate with scale (n - 1)/(m - 1) and translation (1 - scale)/2,
antialias=False (its docstring). torch also accepts antialias=True with align_corners=True and
then uses the half-pixel centres scale (o + 1/2) with scale (m - 1)/(n - 1), aligned with
neither convention: the oracle rejects that combination. An axis whose output size equals the
crop's is the identity. The crop box must lie inside the image (torchvision would zero-pad).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from reference._validate import as_float, positive

#: rotate's interpolation and its border and tie conventions (the module doc); first = default
ROTATE_INTERPOLATIONS = ("nearest", "bilinear")
ROTATE_SAMPLING = ("torchvision", "padded", "pix")
#: brightness: torchvision's clamped multiplication, or dm_pix's (and TensorFlow's) addition
BRIGHTNESS_MODES = ("multiply_clamp", "add")


# --------------------------------------------------------------------------- checks

def _image(x) -> np.ndarray:
    x = as_float("x", x, 4)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x: contains inf (shape {x.shape}); resampling multiplies it by zero weights")
    return x


def _cotangent(g, shape: tuple[int, ...]) -> np.ndarray:
    g = as_float("g", g)
    if g.shape != shape:
        raise ValueError(f"g: expected the output's shape {shape}, got {g.shape}")
    return g


def _choice(name: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
    return value


def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- hflip

def hflip(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W) mirrored along W: y[..., j] = x[..., W - 1 - j]."""
    return as_float("x", x, 4)[..., ::-1].copy()


def hflip_vjp(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray]:
    """dx = g mirrored along W (the flip is its own transpose)."""
    x = as_float("x", x, 4)
    return (_cotangent(g, x.shape)[..., ::-1].copy(),)


# --------------------------------------------------------------------------- rotate

def _cos_sin(angle: float) -> tuple[float, float]:
    """cos and sin of angle degrees, exact at multiples of 90."""
    a = angle % 360.0
    exact = {0.0: (1.0, 0.0), 90.0: (0.0, 1.0), 180.0: (-1.0, 0.0), 270.0: (0.0, -1.0)}
    if a in exact:
        return exact[a]
    t = math.radians(a)
    return math.cos(t), math.sin(t)


def _round_half_away(a: np.ndarray) -> np.ndarray:
    t = np.trunc(a)
    return np.where(np.abs(a - t) == 0.5, t + np.sign(a), np.rint(a))


def _rotation_taps(h: int, w: int, angle: float, interpolation: str, sampling: str):
    """The sampling of rotate as (index (P, K), weight (P, K), fill weight (P,)) over the P = H W
    output pixels: y_p = sum_k weight[p, k] x_flat[index[p, k]] + fill_weight[p] fill."""
    c, s = _cos_sin(angle)
    v, u = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    xs = (c * u - s * v + (w - 1) / 2).ravel()
    ys = (s * u + c * v + (h - 1) / 2).ravel()
    if interpolation == "nearest":
        rnd = _round_half_away if sampling == "pix" else np.rint
        rows, cols = rnd(ys)[:, None], rnd(xs)[:, None]
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        weight = inside.astype(np.float64)
        fill_weight = 1.0 - weight[:, 0]
    else:
        r0, c0 = np.floor(ys), np.floor(xs)
        fy, fx = (ys - r0)[:, None], (xs - c0)[:, None]
        rows = r0[:, None] + np.array([0.0, 0.0, 1.0, 1.0])
        cols = c0[:, None] + np.array([0.0, 1.0, 0.0, 1.0])
        weight = np.hstack([1 - fy, 1 - fy, fy, fy]) * np.hstack([1 - fx, fx, 1 - fx, fx])
        if sampling == "pix":
            inside = (ys >= 0) & (ys <= h - 1) & (xs >= 0) & (xs <= w - 1)
            weight = weight * inside[:, None]
            fill_weight = 1.0 - inside
        else:
            weight = weight * ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w))
            mask = weight.sum(axis=1)
            fill_weight = 1.0 - mask
            if sampling == "torchvision":
                weight = weight * mask[:, None]
    index = (np.clip(rows, 0, h - 1) * w + np.clip(cols, 0, w - 1)).astype(np.intp)
    return index, weight, fill_weight


def _rotate_config(x, angle, interpolation, fill, sampling):
    x = _image(x)
    angle = _finite("angle", angle)
    _choice("interpolation", interpolation, ROTATE_INTERPOLATIONS)
    fill = _finite("fill", fill)
    _choice("sampling", sampling, ROTATE_SAMPLING)
    return x, angle, fill


def rotate(x: np.ndarray, angle: float, interpolation: str = "nearest", fill: float = 0.0,
           sampling: str = "torchvision") -> np.ndarray:
    """x (N, C, H, W) rotated by ``angle`` degrees counter-clockwise about its centre, same size;
    samples outside the image take ``fill`` (border and ties per ``sampling``: module doc)."""
    x, angle, fill = _rotate_config(x, angle, interpolation, fill, sampling)
    n, ch, h, w = x.shape
    index, weight, fill_weight = _rotation_taps(h, w, angle, interpolation, sampling)
    y = np.einsum("pk,ncpk->ncp", weight, x.reshape(n, ch, h * w)[..., index]) + fill * fill_weight
    return y.reshape(x.shape)


def rotate_vjp(x: np.ndarray, g: np.ndarray, angle: float, interpolation: str = "nearest",
               fill: float = 0.0, sampling: str = "torchvision") -> tuple[np.ndarray]:
    """dx = S^T g: each output pixel's g, times its taps' weights, added into the sampled input
    pixels (a scatter-add; fill does not depend on x)."""
    x, angle, fill = _rotate_config(x, angle, interpolation, fill, sampling)
    g = _cotangent(g, x.shape)
    n, ch, h, w = x.shape
    index, weight, _ = _rotation_taps(h, w, angle, interpolation, sampling)
    gt = g.reshape(n * ch, h * w).T  # (P, N C)
    dxt = np.zeros((h * w, n * ch))
    np.add.at(dxt, index.ravel(), (weight[:, :, None] * gt[:, None, :]).reshape(-1, n * ch))
    return (dxt.T.reshape(x.shape),)


# --------------------------------------------------------------------------- brightness

def _brightness_config(x, amount, mode):
    x = as_float("x", x, 4)
    _choice("mode", mode, BRIGHTNESS_MODES)
    amount = positive("amount", amount, allow_zero=True) if mode == "multiply_clamp" \
        else _finite("amount", amount)
    return x, amount


def brightness(x: np.ndarray, amount: float, mode: str = "multiply_clamp") -> np.ndarray:
    """'multiply_clamp': clip(amount x, 0, 1), amount >= 0 (torchvision); 'add': x + amount
    (dm_pix, TensorFlow). x (N, C, H, W)."""
    x, amount = _brightness_config(x, amount, mode)
    if mode == "add":
        return x + amount
    return np.clip(x * amount, 0.0, 1.0)


def brightness_vjp(x: np.ndarray, g: np.ndarray, amount: float,
                   mode: str = "multiply_clamp") -> tuple[np.ndarray]:
    """'multiply_clamp': amount g where 0 <= amount x <= 1 (bounds included, torch's clamp
    backward), 0 elsewhere; 'add': g."""
    x, amount = _brightness_config(x, amount, mode)
    g = _cotangent(g, x.shape)
    if mode == "add":
        return (g.copy(),)
    xa = x * amount
    return (np.where((xa >= 0.0) & (xa <= 1.0), amount * g, 0.0),)


# --------------------------------------------------------------------------- resized_crop

def resize_matrix(m: int, n: int, antialias: bool = True, align_corners: bool = False) -> np.ndarray:
    """The (n, m) linear resampling matrix from m input to n output samples (module doc)."""
    m, n = _int("m", m, 1), _int("n", n, 1)
    if align_corners and antialias:
        raise ValueError("align_corners: True needs antialias=False (torch's antialiased kernel "
                         "ignores the corners; jax has no such mode)")
    o = np.arange(n, dtype=np.float64)
    if align_corners:
        s = o * ((m - 1) / (n - 1)) if n > 1 else np.zeros(1)
        r = 1.0
    else:
        s = (o + 0.5) * (m / n) - 0.5
        r = max(m / n, 1.0) if antialias else 1.0
    a = np.maximum(0.0, 1.0 - np.abs(np.arange(m) - s[:, None]) / r)
    return a / a.sum(axis=1, keepdims=True)


def _crop_config(x, top, left, height, width, size, antialias, align_corners):
    x = as_float("x", x, 4)
    h, w = x.shape[2:]
    top, left = _int("top", top, 0), _int("left", left, 0)
    height, width = _int("height", height, 1), _int("width", width, 1)
    if top + height > h:
        raise ValueError(f"height: rows [{top}, {top + height}) leave the image's {h} rows")
    if left + width > w:
        raise ValueError(f"width: columns [{left}, {left + width}) leave the image's {w} columns")
    if isinstance(size, np.ndarray) or not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"size: expected (out_h, out_w), got {size!r}")
    out = (_int("size", size[0], 1), _int("size", size[1], 1))
    for name, flag in (("antialias", antialias), ("align_corners", align_corners)):
        if not isinstance(flag, bool | np.bool_):
            raise ValueError(f"{name}: expected a bool, got {flag!r}")
    a_h = resize_matrix(height, out[0], bool(antialias), bool(align_corners))
    a_w = resize_matrix(width, out[1], bool(antialias), bool(align_corners))
    return x, (slice(top, top + height), slice(left, left + width)), a_h, a_w


def resized_crop(x: np.ndarray, top: int, left: int, height: int, width: int, size: Sequence[int],
                 antialias: bool = True, align_corners: bool = False) -> np.ndarray:
    """x (N, C, H, W) cropped to rows [top, top + height), columns [left, left + width), resized
    to size = (out_h, out_w): y = A_h crop A_w^T, (N, C, out_h, out_w) (module doc)."""
    x, (rows, cols), a_h, a_w = _crop_config(x, top, left, height, width, size, antialias,
                                             align_corners)
    if not np.all(np.isfinite(x[:, :, rows, cols])):
        raise ValueError("x: contains inf inside the crop; resampling multiplies it by zero weights")
    return a_h @ x[:, :, rows, cols] @ a_w.T


def resized_crop_vjp(x: np.ndarray, g: np.ndarray, top: int, left: int, height: int, width: int,
                     size: Sequence[int], antialias: bool = True,
                     align_corners: bool = False) -> tuple[np.ndarray]:
    """dx = A_h^T g A_w inside the crop window, 0 outside."""
    x, (rows, cols), a_h, a_w = _crop_config(x, top, left, height, width, size, antialias,
                                             align_corners)
    g = _cotangent(g, (*x.shape[:2], a_h.shape[0], a_w.shape[0]))
    dx = np.zeros(x.shape)
    dx[:, :, rows, cols] = a_h.T @ g @ a_w
    return (dx,)
