"""dm_pix's augmentations and jax.image's resampling behind the oracle's records
(reference/augment.py, backends/augment.py), each jitted once per configuration and shapes
(backends.jax_compiled.COMPILED): dm_pix.flip_left_right, dm_pix.rotate(mode='constant'),
dm_pix.adjust_brightness, and for resized_crop the crop sliced, then jax.image.resize(
method='linear', antialias=...) (align_corners=True: jax.image.scale_and_translate, its
docstring's recipe). The angle and amount are traced (weakly typed float64 scalars
under jax_enable_x64, as dm_pix takes a Python float: one compilation serves every angle); the
crop box, sizes, fill and modes are the configuration.

Layout: the suite's images are NCHW; dm_pix works on HWC images (rotate on one 3-d image:
its affine_transform maps every axis), so the adapter transposes to NHWC, maps dm_pix over
the batch (jax.vmap) and transposes back. jax.image.resize takes the layout as it is: it
resizes the axes whose size changes.

Conventions (dm_pix 0.4.5, _src/augment.py): rotate(order=0 | 1, mode='constant', cval=fill)
samples a point outside [0, H - 1] x [0, W - 1] as the fill, whole, and rounds nearest half
away from zero (jax.scipy.ndimage.map_coordinates' lax.round): sampling 'pix'.
adjust_brightness adds a delta (``image + delta``), no clamp: mode 'add'.

random_crop is ``dm_pix.random_crop(jax.random.key(seed), x, crop_sizes=(N, C, h, w))`` on
the NCHW batch (its key split in four, one ``jax.random.randint(k, (), 0, size - crop + 1)``
per axis, then lax.dynamic_slice: one crop for the whole batch), jitted once per shape and
crop size, the seed traced: the key is made in the trace, the crops those of an eager
``key(seed)``, at a quarter of the cost of passing the key in (its eager device_put).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import dm_pix as pix
import jax
import jax.numpy as jnp

from backends.augment import AugmentBackend
from backends.base import Unsupported
from backends.jax_compiled import COMPILED


def _nhwc(f: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """f on one HWC image, mapped over an NCHW batch."""
    def run(x, *args):
        y = jax.vmap(lambda im: f(im, *args))(jnp.transpose(x, (0, 2, 3, 1)))
        return jnp.transpose(y, (0, 3, 1, 2))
    return run


def _rotate(x, angle, *, order: int, fill: float):
    """dm_pix.rotate by ``angle`` degrees (dm_pix takes radians, counter-clockwise); its cval
    is a static argument of map_coordinates, so the fill is configuration."""
    return _nhwc(lambda im, a: pix.rotate(im, a * (math.pi / 180.0), order=order,
                                          mode="constant", cval=fill))(x, angle)


def _flip(x):
    return _nhwc(pix.flip_left_right)(x)


def _add(x, delta):
    return pix.adjust_brightness(x, delta)


def _axis(m: int, n: int, align_corners: bool) -> tuple[float, float]:
    """(scale, translation) of jax.image.scale_and_translate along an axis of m samples
    resized to n: align_corners (n - 1)/(m - 1) and (1 - scale)/2; a single sample or
    output, where that scale is undefined, half-pixel centres: n/m (copies of the sample) or,
    for one output, 1 (the first sample), translation 0."""
    if not align_corners or m == n:
        return n / m, 0.0
    if m == 1:
        return float(n), 0.0
    if n == 1:
        return 1.0, 0.0
    scale = (n - 1) / (m - 1)
    return scale, 0.5 * (1.0 - scale)


def _resized_crop(x, *, box: tuple[int, int, int, int], size: tuple[int, int], antialias: bool,
                  align_corners: bool):
    top, left, height, width = box
    crop = x[:, :, top:top + height, left:left + width]
    shape = (*crop.shape[:2], *size)
    if not align_corners:
        return jax.image.resize(crop, shape, "linear", antialias=antialias)
    (sh, th), (sw, tw) = _axis(height, size[0], True), _axis(width, size[1], True)
    return jax.image.scale_and_translate(crop, shape, (2, 3), jnp.array([sh, sw], crop.dtype),
                                         jnp.array([th, tw], crop.dtype), "linear",
                                         antialias=False)


def _random_crop(x, seed, *, size: tuple[int, int]):
    return pix.random_crop(jax.random.key(seed), x, crop_sizes=(*x.shape[:2], *size))


class JaxAugment(AugmentBackend):
    """dm_pix's augmentations and jax.image.resize."""

    augment_conventions: dict[str, dict[str, Any]] = {
        # dm_pix.rotate(mode='constant'): the fill outside the image's sample box, whole
        "rotate": {"sampling": "pix"},
        # dm_pix.adjust_brightness adds a delta (tf.image.adjust_brightness); no clamp
        "brightness": {"mode": "add"},
    }

    def _compiled(self, name: str, fn: Callable, **config: Any) -> Callable:
        return COMPILED.get((id(self), "augment", name, tuple(sorted(config.items()))),
                            lambda: functools.partial(fn, **config) if config else fn)

    def hflip(self, x: jax.Array) -> jax.Array:
        """dm_pix.flip_left_right on NHWC."""
        return self._compiled("hflip", _flip)(x)

    def rotate(self, x: jax.Array, angle: float, interpolation: str = "nearest",
               fill: float = 0.0, sampling: str = "torchvision") -> jax.Array:
        """dm_pix.rotate(order 0 (nearest) or 1 (bilinear), mode='constant', cval=fill)."""
        if sampling != "pix":
            raise Unsupported(f"dm_pix.rotate(mode='constant') fills every sample outside the "
                              f"image's box whole (sampling='pix'), not {sampling!r}")
        orders = {"nearest": 0, "bilinear": 1}
        if interpolation not in orders:
            raise ValueError(f"interpolation: expected one of {tuple(orders)}, got "
                             f"{interpolation!r}")
        return self._compiled("rotate", _rotate, order=orders[interpolation],
                              fill=float(fill))(x, angle)

    # the arguments JaxBackend.component_vjp holds as configuration, not traced (backends/
    # jax_backend.py _jit's ``static``): the fill is dm_pix's static cval
    rotate.static = ("fill",)  # type: ignore[attr-defined]

    def brightness(self, x: jax.Array, amount: float, mode: str = "multiply_clamp"
                   ) -> jax.Array:
        """dm_pix.adjust_brightness(x, amount): x + amount (amount cast to x's dtype)."""
        if mode != "add":
            raise Unsupported(f"dm_pix.adjust_brightness adds a delta (mode='add'), not {mode!r}")
        return self._compiled("brightness", _add)(x, amount)

    def resized_crop(self, x: jax.Array, top: int, left: int, height: int, width: int,
                     size: Sequence[int], antialias: bool = True, align_corners: bool = False
                     ) -> jax.Array:
        """x sliced to the crop, then jax.image.resize(method='linear', antialias) or, with
        align_corners, scale_and_translate."""
        if align_corners and antialias:
            raise Unsupported("jax.image has no antialiased align_corners resampling")
        return self._compiled("resized_crop", _resized_crop,
                              box=(int(top), int(left), int(height), int(width)),
                              size=(int(size[0]), int(size[1])), antialias=bool(antialias),
                              align_corners=bool(align_corners))(x)

    def random_crop(self, x: jax.Array, size: Sequence[int], seed: int) -> jax.Array:
        """dm_pix.random_crop(key(seed), x, (N, C, h, w))."""
        if x.ndim != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
        return self._compiled("random_crop", _random_crop, size=(int(size[0]), int(size[1])))(
            x, int(seed))
