"""Planted bugs of the data-augmentation family (reference/augment.py), each modelled on a
real one (see tests/planted.py): the oracle's backend with one augmentation broken."""

from __future__ import annotations

import numpy as np

from properties.augment_cases import rotation_coordinates
from reference import augment as A
from tests.planted import NumpyBackend, Planted


class RotateClockwise(Planted):
    """The angle's sign flipped: a clockwise rotation where every framework turns
    counter-clockwise (torchvision's rotate negates the angle for its inverse affine matrix,
    _geometry.py; forgetting that is the classic bug)."""

    name, component = "planted-rotate-clockwise", "rotate"

    def rotate(self, x, angle, interpolation="nearest", fill=0.0, sampling="torchvision"):
        return A.rotate(x, -angle, interpolation, fill, sampling)


def _rotate_vjp_same_angle(x, g, angle, interpolation="nearest", fill=0.0, sampling="torchvision"):
    return (A.rotate(g, angle, interpolation, 0.0, sampling),)


class RotateVjpSameAngle(Planted):
    """The gradient of a rotation taken as the cotangent rotated by the same angle, not its
    transpose (the rotation back)."""

    name, component = "planted-rotate-vjp-same-angle", "rotate"
    vjps = {**NumpyBackend.vjps, "rotate": _rotate_vjp_same_angle}


class NearestRotationRoundsDown(Planted):
    """Nearest rotation samples the pixel at the floor of its coordinates (an int() cast)
    instead of the nearest one."""

    name, component = "planted-rotate-nearest-floor", "rotate"

    def rotate(self, x, angle, interpolation="nearest", fill=0.0, sampling="torchvision"):
        if interpolation != "nearest":
            return A.rotate(x, angle, interpolation, fill, sampling)
        x = np.asarray(x, dtype=np.float64)
        h, w = x.shape[2:]
        rows, cols = (np.floor(c).astype(np.intp) for c in rotation_coordinates(h, w, angle))
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        y = x[:, :, np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)]
        return np.where(inside, y, fill)


class HflipVertical(Planted):
    """The flip along H (axis -2, an up-down flip) where a horizontal flip mirrors W: the HWC
    and CHW axis mix-up (dm_pix flips axis -2 of HWC, which is H of CHW)."""

    name, component = "planted-hflip-vertical", "hflip"

    def hflip(self, x):
        return np.asarray(x, dtype=np.float64)[..., ::-1, :].copy()


class BrightnessUnclamped(Planted):
    """A brightness factor applied without the clamp to [0, 1] that 'multiply_clamp' claims
    (values above 1 survive, and their gradient)."""

    name, component = "planted-brightness-unclamped", "brightness"

    def brightness(self, x, amount, mode="multiply_clamp"):
        if mode != "multiply_clamp":
            return A.brightness(x, amount, mode)
        return np.asarray(x, dtype=np.float64) * amount


def _half_pixel_dropped(m: int, n: int, antialias: bool, align_corners: bool) -> np.ndarray:
    """resize_matrix with the sample at o m / n: the half-pixel offset dropped (the old
    align_corners=None behaviour of F.upsample before torch 0.4.1)."""
    if align_corners:
        return A.resize_matrix(m, n, antialias, align_corners)
    s = np.arange(n) * (m / n)
    r = max(m / n, 1.0) if antialias else 1.0
    a = np.maximum(0.0, 1.0 - np.abs(np.arange(m) - s[:, None]) / r)
    return a / a.sum(axis=1, keepdims=True)


class ResizeHalfPixelDropped(Planted):
    """resized_crop samples at o m / n instead of (o + 1/2) m / n - 1/2 (align_corners=False
    claimed): the output shifts by half an input pixel less half an output pixel."""

    name, component = "planted-resize-half-pixel-dropped", "resized_crop"

    def resized_crop(self, x, top, left, height, width, size, antialias=True, align_corners=False):
        crop = np.asarray(x, dtype=np.float64)[:, :, top:top + height, left:left + width]
        return np.einsum("oh,nchw,pw->ncop", _half_pixel_dropped(height, size[0], antialias,
                                                                 align_corners),
                         crop, _half_pixel_dropped(width, size[1], antialias, align_corners))


class CropBoundExclusive(Planted):
    """The random crop's upper bound exclusive twice: rng.integers(0, H - h) where the
    window's last position is H - h (randint's inclusive bound carried over to an exclusive
    one; torchvision's get_params draws torch.randint(0, h - th + 1)), kept >= 1 so a full
    axis still crops: the last top and left are never drawn."""

    name, component = "planted-crop-bound-exclusive", "random_crop"

    def crop_position(self, seed, positions):
        rng = np.random.default_rng(seed)
        return (int(rng.integers(0, max(positions[0] - 1, 1))),
                int(rng.integers(0, max(positions[1] - 1, 1))))


class CropOneNumber(Planted):
    """One random number for top and left (``i = j = randint(...)``, code written for square
    images and crops), drawn on the shorter axis' positions: the crops lie on the diagonal."""

    name, component = "planted-crop-one-number", "random_crop"

    def crop_position(self, seed, positions):
        r = int(np.random.default_rng(seed).integers(0, min(positions)))
        return r, r


class CropCentred(Planted):
    """The centre crop whatever the seed: a random crop that ignores its randomness (the
    evaluation transform, CenterCrop, left in the training pipeline)."""

    name, component = "planted-crop-centred", "random_crop"

    def crop_position(self, seed, positions):
        return (positions[0] - 1) // 2, (positions[1] - 1) // 2


AUGMENT_PLANTED = [RotateClockwise, RotateVjpSameAngle, NearestRotationRoundsDown, HflipVertical,
                   BrightnessUnclamped, ResizeHalfPixelDropped, CropBoundExclusive, CropOneNumber,
                   CropCentred]
"""The data-augmentation family's planted bugs."""
