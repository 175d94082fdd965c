"""Data augmentation (reference/augment.py): the adapters' mixin base.

The four augmentations are component records (reference/registry.py, family "augment":
``hflip``, ``rotate``, ``brightness``, ``resized_crop``), so an adapter implements them as
methods with the oracle's names and signatures (backends/torch_augment.py,
backends/jax_augment.py) and the standard properties (properties/test_components.py) and the
invariants (properties/test_augment_invariants.py) check them; the numpy backend runs the
oracle's forwards from the registry. A mixin's ``augment_conventions`` (rotate's
``sampling``, brightness' ``mode``) join the class's ``conventions`` (the class's own
declarations win), so the properties draw them and certificates list them.

A random crop is no record (it is not a function of its inputs): the mixin's method

    random_crop(x, size, seed) -> y      x (N, C, H, W), size (h, w) with h <= H, w <= W;
                                         y = x[:, :, top:top + h, left:left + w], one
                                         window for the whole batch

draws the window's top-left corner from the backend's own generator seeded by ``seed`` (the
same seed, the same crop): top uniform on {0, ..., H - h}, left uniform on {0, ..., W - w},
independent. It raises UnsupportedComponent until an adapter overrides it; ``NumpyAugment``
is the numpy backend's, and ``call_random_crop`` the call the properties make
(properties/test_random_crop.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backends.base import Family, UnsupportedComponent
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array

#: the augmentation components (records of reference/registry.py)
COMPONENTS = ("hflip", "rotate", "brightness", "resized_crop")


class AugmentBackend(Family):
    """Mixin base for a Backend's augmentation methods and their conventions."""

    #: component -> {argument: the value it follows, or a tuple of those it supports}
    augment_conventions: dict[str, dict[str, Any]] = {}
    declarations = {"conventions": "augment_conventions"}

    def random_crop(self, x: Any, size: Sequence[int], seed: int) -> Any:
        """x[:, :, top:top + h, left:left + w] of x (N, C, H, W), size (h, w), the corner
        drawn from ``seed`` (module docstring)."""
        return self._lacks("random_crop")


def _window(x: np.ndarray, size: Sequence[int]) -> tuple[int, int]:
    """The number of crop positions (H - h + 1, W - w + 1) of x (N, C, H, W), size (h, w)."""
    if np.ndim(x) != 4:
        raise ValueError(f"x: expected (N, C, H, W), got shape {np.shape(x)}")
    (height, width), (h, w) = np.shape(x)[2:], size
    if not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(f"size: expected (h, w) within {(height, width)}, got {tuple(size)}")
    return height - h + 1, width - w + 1


class NumpyAugment(AugmentBackend):
    """The numpy backend's random crop: the corner from np.random.default_rng(seed)."""

    def crop_position(self, seed: int, positions: tuple[int, int]) -> tuple[int, int]:
        """(top, left): rng.integers(0, H - h + 1), then rng.integers(0, W - w + 1), on
        ``positions`` = (H - h + 1, W - w + 1)."""
        rng = np.random.default_rng(seed)
        return int(rng.integers(0, positions[0])), int(rng.integers(0, positions[1]))

    def random_crop(self, x, size, seed):
        top, left = self.crop_position(seed, _window(x, size))
        return np.asarray(x)[:, :, top:top + size[0], left:left + size[1]].copy()


def call_random_crop(backend: Any, x: np.ndarray, size: Sequence[int], dtype: str, seed: int
                     ) -> np.ndarray:
    """backend.random_crop(x, size, seed), NumPy in and out: (N, C, h, w) in ``dtype``, x
    untouched (else BackendError); a backend without the method lacks the component."""
    fn = getattr(backend, "random_crop", None)
    if fn is None:
        raise UnsupportedComponent(f"{backend.id} does not implement random_crop")
    nat = to_native(backend, x, dtype)
    before = np.array(backend.to_numpy(nat))
    out = guard(backend, "random_crop", fn, nat, (int(size[0]), int(size[1])), int(seed))
    if not np.array_equal(backend.to_numpy(nat), before, equal_nan=True):
        raise BackendError(f"{backend.id}: random_crop mutated its input x")
    y = checked_array(backend, "random_crop", out, dtype, "its result")
    shape = (*x.shape[:2], int(size[0]), int(size[1]))
    if y.shape != shape:
        raise BackendError(f"{backend.id}: random_crop returned shape {y.shape}, expected "
                           f"{shape}")
    return y
