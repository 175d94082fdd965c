"""Invariants of the data augmentations, checked on the backend's own results: the identities
every framework computes without rounding are compared exactly, up to the policy's floor for
flushed subnormals (a flip twice, a rotation by 0, a brightness factor of 1 on [0, 1] images
or a delta of 0), the others under the tolerance
policy (properties/tolerance.py; a right-angle rotation and a resize to the crop's own size
compute coordinates and weights, exactly or not, as the backend's arithmetic gives them)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends import harness
from properties import augment_cases as AK
from properties.checks import expected_and_tolerance, unsupported_example
from properties.coverage import SIZES, stratum
from properties.record import current_record
from properties.scoped import note_arguments
from properties.strategies import conventions, realistic
from properties.tolerance import assert_within, tolerance
from reference import augment as A

pytestmark = pytest.mark.dtypes("float32", "float64")


def _call(backend, name, x, kwargs, dtype):
    with unsupported_example():
        return harness.call(backend, name, (x,), kwargs, dtype)


def _exact(what: str, actual, dtype: str, expected) -> None:
    """An identity: exact, but for the policy's floor (a result below the dtype's smallest
    normal may be flushed to zero: XLA on CPU flushes float32 subnormals)."""
    assert_within(what, actual, expected, tolerance(np.zeros(np.shape(expected)), dtype))


@pytest.mark.component("hflip")
@given(data=st.data())
def test_hflip_twice_is_the_identity(backend, dtype, data):
    current_record().declared = {"sizes": SIZES}
    x = AK._image(data, dtype, realistic(data))
    y = _call(backend, "hflip", x, {}, dtype)
    _exact("hflip(hflip(x)) vs x", _call(backend, "hflip", y, {}, dtype), dtype, x)


def _rotate_kwargs(data, backend, angle: float) -> dict:
    kwargs = {"angle": angle,
              "interpolation": stratum(data, "interpolation", A.ROTATE_INTERPOLATIONS),
              "fill": data.draw(st.sampled_from((0.0, 0.5)), label="fill"),
              "sampling": data.draw(st.sampled_from(A.ROTATE_SAMPLING), label="sampling")}
    kwargs = conventions(data, backend, "rotate", kwargs)
    note_arguments(kwargs)  # a scoped known divergence is judged on them
    return kwargs


@pytest.mark.component("rotate")
@given(data=st.data())
def test_rotate_by_zero_is_the_identity(backend, dtype, data):
    """Every sample lands on its own pixel (cos 0 = 1 and sin 0 = 0 exactly): y = x, whatever
    the interpolation, fill and border rule."""
    current_record().declared = {"sizes": SIZES, "interpolation": A.ROTATE_INTERPOLATIONS}
    x = AK._image(data, dtype, realistic(data))
    _exact("rotate(x, 0) vs x", _call(backend, "rotate", x, _rotate_kwargs(data, backend, 0.0),
                                      dtype), dtype, x)


@pytest.mark.component("rotate")
@given(data=st.data())
def test_rotate_by_90_is_rot90(backend, dtype, data):
    """A square image rotated by 90 degrees counter-clockwise is np.rot90(x, 1, axes=(2, 3))
    (the last column becomes the first row), both interpolations, under the policy."""
    current_record().declared = {"sizes": SIZES, "interpolation": A.ROTATE_INTERPOLATIONS}
    big = realistic(data)
    side = data.draw(st.integers(*((8, 64) if big else (1, 5))), label="side")
    x = AK._image(data, dtype, big, side=(side, side))
    kwargs = _rotate_kwargs(data, backend, 90.0)
    expected, tol = expected_and_tolerance("rotate", (x,), kwargs, dtype)
    np.testing.assert_array_equal(expected, np.rot90(x, 1, axes=(2, 3)))  # the oracle's own
    assert_within("rotate(x, 90) vs rot90(x)", _call(backend, "rotate", x, kwargs, dtype),
                  np.rot90(x, 1, axes=(2, 3)), tol)


@pytest.mark.component("brightness")
@given(data=st.data())
def test_brightness_identity(backend, dtype, data):
    """A factor of 1 ('multiply_clamp', on [0, 1] images) or a delta of 0 ('add') is x."""
    current_record().declared = {"sizes": SIZES, "mode": A.BRIGHTNESS_MODES}
    x = AK._image(data, dtype, realistic(data), channels=(1, 3))
    kwargs = conventions(data, backend, "brightness",
                         {"amount": 1.0, "mode": stratum(data, "mode", A.BRIGHTNESS_MODES)})
    kwargs["amount"] = 1.0 if kwargs["mode"] == "multiply_clamp" else 0.0
    current_record().note_class("mode", kwargs["mode"])
    _exact("brightness identity vs x", _call(backend, "brightness", x, kwargs, dtype), dtype, x)


@pytest.mark.component("resized_crop")
@given(data=st.data())
def test_resized_crop_to_its_own_size_is_the_crop(backend, dtype, data):
    """Without antialias (or with align_corners) a resize to the crop's own size samples every
    pixel on itself: the plain crop, under the policy."""
    current_record().declared = {"sizes": SIZES, "resampling": ("plain", "align_corners")}
    x = AK._image(data, dtype, realistic(data))
    h, w = x.shape[2:]
    height, width = (data.draw(st.integers(1, n), label=k) for n, k in ((h, "height"),
                                                                        (w, "width")))
    top, left = (data.draw(st.integers(0, n), label=k) for n, k in ((h - height, "top"),
                                                                    (w - width, "left")))
    align = stratum(data, "resampling", ("plain", "align_corners")) == "align_corners"
    kwargs = {"top": top, "left": left, "height": height, "width": width,
              "size": (height, width), "antialias": False, "align_corners": align}
    crop = x[:, :, top:top + height, left:left + width]
    _, tol = expected_and_tolerance("resized_crop", (x,), kwargs, dtype)
    assert_within("resized_crop to its own size vs the crop",
                  _call(backend, "resized_crop", x, kwargs, dtype), crop, tol)
