"""Cases of the data-augmentation family: NCHW images in [0, 1], small or realistic (up to 64 x 64,
MAX_ELEMENTS per array), and configurations valid by construction (reference/augment.py).

The rotations and resizes are linear in x, so their only discontinuities are in the sample
coordinates: a nearest rotation's ties (a coordinate at k + 1/2, where the frameworks round
half to even or half away) and dm_pix's cut-off (a bilinear sample exactly on the first or
last row or column: inside for the oracle and torchvision, fill for dm_pix once its cos and sin
move it outward). A backend computes the coordinates in its arithmetic (torchvision in the
image's dtype, _geometry.py rotate_image / _affine_grid: theta, the grid and its bmm in
``image.dtype``), within COORDINATE_ERROR (H + W) eps of the oracle's (the oracle test's
bound, tests/test_oracle_augment.py); draws keep that far from every discontinuity. A nearest
rotation by an angle that is not a multiple of 90 uses the angles of the 3-4-5 triangle (cos
and sin in fifths: every coordinate is a multiple of 1/10, so a tie is exact or at least 0.1
away), the angles without a tie at the drawn size; in float16 and bfloat16 only sizes whose
coordinate error stays below 0.1 (H + W <= 6 in float16, a single pixel in bfloat16) can keep
off the ties, so those draw such sizes there. Brightness keeps x off its clamp's kinks.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from properties.coverage import stratum
from properties.inputs import Inputs
from properties.strategies import MAX_ELEMENTS, floats_array, realistic
from properties.tolerance import EPS, round_to
from reference import augment as A

#: configuration classes (properties/coverage.py)
ANGLES = ("zero", "right", "other")
AMOUNTS = ("below_one", "above_one")
RESAMPLING = ("antialias", "plain", "align_corners")
RESIZES = ("down", "up", "mixed")
#: a backend's sample coordinates lie within COORDINATE_ERROR (H + W) eps of the oracle's
COORDINATE_ERROR = 8
#: the angles of the 3-4-5 triangle in every quadrant (degrees): cos, sin in fifths
PYTHAGOREAN = tuple(sorted({round(s * math.degrees(math.atan2(b, a)) + 90 * k, 12) % 360
                            for a, b in ((3, 4), (4, 3)) for s in (1, -1) for k in range(4)}))
_ZERO = (0.0, 360.0, -360.0)
_RIGHT = (90.0, 180.0, 270.0, -90.0, 450.0)
#: the tie distance of the 3-4-5 angles' coordinates, and of a right angle's (integers)
_TIE_DISTANCE = {"other": 0.1, "right": 0.5}


def _image(data, dtype: str, big: bool, channels=(1, 2, 3), side: tuple[int, int] | None = None,
           hi: float = 1.0) -> np.ndarray:
    """An (N, C, H, W) image in [0, hi], rounded to ``dtype``; sides from ``side`` or the regime."""
    lo_side, hi_side = side or ((8, 64) if big else (1, 5))
    n = data.draw(st.integers(1, 4 if big else 2), label="N")
    c = data.draw(st.sampled_from(channels), label="C")
    h = data.draw(st.integers(lo_side, hi_side), label="H")
    w = data.draw(st.integers(lo_side, hi_side), label="W")
    n = max(1, min(n, MAX_ELEMENTS // (c * h * w)))
    return data.draw(floats_array((n, c, h, w), 0.0, hi, dtype), label="x")


def hflip(data, dtype, tail):
    return Inputs((_image(data, dtype, realistic(data)),), {})


def rotation_coordinates(h: int, w: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's sample coordinates (ys, xs) of every output pixel (reference/augment.py)."""
    c, s = A._cos_sin(angle)
    v, u = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    return s * u + c * v + (h - 1) / 2, c * u - s * v + (w - 1) / 2


def tie_distance(h: int, w: int, angle: float) -> float:
    """The least distance of a sample coordinate from a nearest-rounding tie (k + 1/2)."""
    return float(min(np.min(np.abs(q - np.floor(q) - 0.5)) for q in rotation_coordinates(h, w, angle)))


def cutoff_distance(h: int, w: int, angle: float) -> float:
    """The least distance of a sample coordinate from dm_pix's cut-off (0 and size - 1)."""
    return float(min(np.min(np.minimum(np.abs(q), np.abs(q - (n - 1))))
                     for q, n in zip(rotation_coordinates(h, w, angle), (h, w), strict=True)))


def fast_path(h: int, w: int, angle: float) -> bool:
    """torchvision's rotate_image returns exact copies here (no grid): 0 and 180, and 90 and
    270 of a square image."""
    a = angle % 360
    return a in (0.0, 180.0) or (a in (90.0, 270.0) and h == w)


def rotate(data, dtype, tail):
    big = realistic(data)
    interpolation = stratum(data, "interpolation", A.ROTATE_INTERPOLATIONS)
    sampling = stratum(data, "sampling", A.ROTATE_SAMPLING)
    kind = stratum(data, "angle", ANGLES)
    side = None
    if interpolation == "nearest" and kind != "zero":
        # the largest side whose coordinate error, COORDINATE_ERROR (2 side) eps, stays below
        # the ties' distance
        most = math.ceil(_TIE_DISTANCE[kind] / (2 * COORDINATE_ERROR * EPS[dtype])) - 1
        if most < (64 if big else 5):
            side = (1, max(1, most))
    x = _image(data, dtype, big, side=side)
    h, w = x.shape[2:]
    if kind == "zero":
        angle = data.draw(st.sampled_from(_ZERO), label="angle")
    elif kind == "right":
        angle = data.draw(st.sampled_from(_RIGHT), label="angle")
        if interpolation == "nearest" and not fast_path(h, w, angle) and (h + w) % 2:
            # 90 or 270 of a non-square image samples integer coordinates where H + W is
            # even, ties everywhere where it is odd: one column (or row) less
            x = x[..., :-1] if w > 1 else x[..., :-1, :]
            h, w = x.shape[2:]
    elif interpolation == "nearest":
        gap = COORDINATE_ERROR * (h + w) * EPS[dtype]
        angles = [a for a in PYTHAGOREAN if tie_distance(h, w, a) >= gap]
        assume(angles)
        angle = data.draw(st.sampled_from(angles), label="angle")
    else:
        angle = data.draw(st.floats(-360.0, 360.0, allow_nan=False), label="angle")
        assume(angle % 90 != 0)
        # only dm_pix has a cut-off, and it computes the coordinates in float64 (the cos and
        # sin of a Python float, jax_enable_x64)
        assume(cutoff_distance(h, w, angle) >= COORDINATE_ERROR * (h + w) * EPS["float64"])
    fill = 0.0 if data.draw(st.booleans(), label="fill_zero") else \
        float(round_to(np.array(data.draw(st.floats(0.0, 1.0), label="fill")), dtype))
    kwargs = {"angle": angle, "interpolation": interpolation, "fill": fill, "sampling": sampling}
    return Inputs((x,), kwargs, terms=_rotate_terms(h, w, kwargs))


def _rotate_terms(h: int, w: int, kwargs) -> int:
    """The longest sum: an output's taps and the fill, or the outputs an input is a tap of."""
    index, weight, _ = A._rotation_taps(h, w, kwargs["angle"], kwargs["interpolation"],
                                        kwargs["sampling"])
    used = np.bincount(index[weight != 0], minlength=1)
    return max(index.shape[1] + 1, int(used.max()))


def classify_rotate(inp: Inputs) -> dict[str, str]:
    return {"sampling": inp.kwargs["sampling"]}


def brightness(data, dtype, tail):
    big = realistic(data)
    mode = stratum(data, "mode", A.BRIGHTNESS_MODES)
    # a backend's convention replaces the drawn mode, so the amount suits both: a factor of
    # torchvision (>= 0) that is a delta of dm_pix too (positive only)
    kind = stratum(data, "amount", AMOUNTS)
    amount = data.draw(st.floats(0.0, 0.95) if kind == "below_one" else st.floats(1.05, 3.0),
                       label="amount")
    amount = float(round_to(np.array(amount), dtype))
    # torchvision's adjust_brightness takes 1 or 3 channels; x keeps 1e-2 from the clamp's
    # kinks, amount x = 0 and amount x = 1 (whatever the mode: the drawn one may be replaced)
    kinks = (0.0,) + ((1.0 / amount,) if amount > 0 else ())
    n = data.draw(st.integers(1, 4 if big else 2), label="N")
    c = data.draw(st.sampled_from((1, 3)), label="C")
    h, w = (data.draw(st.integers(*((8, 64) if big else (1, 5))), label=k) for k in "HW")
    n = max(1, min(n, MAX_ELEMENTS // (c * h * w)))
    x = data.draw(floats_array((n, c, h, w), 0.0, 1.0, dtype, gap=1e-2, kinks=kinks), label="x")
    return Inputs((x,), {"amount": amount, "mode": mode})


def classify_brightness(inp: Inputs) -> dict[str, str]:
    return {"mode": inp.kwargs["mode"]}


def _out_size(data, crop: int, direction: str, most: int, label: str) -> int:
    if direction == "down":
        return data.draw(st.integers(1, crop - 1), label=label)
    return data.draw(st.integers(crop + 1, most), label=label)


def resized_crop(data, dtype, tail):
    big = realistic(data)
    resampling = stratum(data, "resampling", RESAMPLING)
    resize = stratum(data, "resize", RESIZES)
    dirs = {"down": ("down", "down"), "up": ("up", "up")}.get(resize) or data.draw(
        st.sampled_from((("down", "up"), ("up", "down"))), label="directions")
    x = _image(data, dtype, big, side=(8, 64) if big else (2, 6))
    h, w = x.shape[2:]
    most = 64 if big else 8
    # a crop of at least 2 along an axis resized down, below ``most`` along one resized up
    # (the output at most ``most`` a side)
    height, width = (data.draw(st.integers(2 if d == "down" else 1,
                                           n if d == "down" else min(n, most - 1)), label=k)
                     for d, n, k in zip(dirs, (h, w), ("height", "width"), strict=True))
    top = data.draw(st.integers(0, h - height), label="top")
    left = data.draw(st.integers(0, w - width), label="left")
    size = (_out_size(data, height, dirs[0], most, "out_h"),
            _out_size(data, width, dirs[1], most, "out_w"))
    # the output within MAX_ELEMENTS: fewer images, then fewer channels
    n = max(1, MAX_ELEMENTS // (x.shape[1] * size[0] * size[1]))
    x = x[:n, :max(1, MAX_ELEMENTS // (size[0] * size[1]))]
    kwargs = {"top": top, "left": left, "height": height, "width": width, "size": size,
              "antialias": resampling == "antialias", "align_corners": resampling == "align_corners"}
    a_h = A.resize_matrix(height, size[0], kwargs["antialias"], kwargs["align_corners"])
    a_w = A.resize_matrix(width, size[1], kwargs["antialias"], kwargs["align_corners"])
    nz_h, nz_w = a_h != 0, a_w != 0
    # an output sums its taps along both axes; an input's gradient, the outputs it is a tap of
    terms = max(int(nz_h.sum(1).max() * nz_w.sum(1).max()),
                int(nz_h.sum(0).max() * nz_w.sum(0).max()))
    return Inputs((x,), kwargs, terms=terms)
