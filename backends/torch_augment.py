"""torchvision.transforms.v2.functional's augmentations behind the oracle's records
(reference/augment.py, backends/augment.py), what users run on image tensors (N, C, H, W):
horizontal_flip, rotate, adjust_brightness and resized_crop (torchvision imported through
backends.torch_vision, which works where its compiled operators cannot load).

Conventions (torchvision 0.28.0, transforms/v2/functional): rotate with a fill value samples
a mask channel with the image and blends (_geometry.py _apply_grid_transform), sampling
'torchvision'; with fill=None (the functional's default) it is plain grid_sample with zero
padding, sampling 'padded' with fill 0. Nearest rounds half to even (grid_sample's nearbyint).
adjust_brightness is ``image.mul(factor).clamp_(0, 1)`` on float images (_color.py
adjust_brightness_image): mode 'multiply_clamp'. resized_crop is crop_image then resize_image,
F.interpolate(mode='bilinear', align_corners=False, antialias=antialias); torchvision has no
align_corners, so align_corners=True is F.interpolate(align_corners=True) of the sliced crop,
as users write it.

random_crop is ``transforms.v2.RandomCrop(size)`` called on the batch (_geometry.py
RandomCrop.make_params: ``torch.randint(0, H - h + 1, size=())`` for top, then for left, each
drawn only where the axis has more than one position; one crop for the whole batch), under
the CPU default generator seeded with ``seed`` (backends/torch_regularization.py ``seeded``):
torch.randint without a device draws on the CPU whatever the image's device.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

from backends.augment import AugmentBackend
from backends.base import Unsupported
from backends.torch_regularization import seeded


@functools.cache
def _functional() -> ModuleType:
    """torchvision.transforms.v2.functional, imported at first use."""
    from backends.torch_vision import import_torchvision

    import_torchvision()
    from torchvision.transforms.v2 import functional
    return functional


def _interpolation(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    modes = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}
    if name not in modes:
        raise ValueError(f"interpolation: expected one of {tuple(modes)}, got {name!r}")
    return modes[name]


@functools.cache
def _random_crop(size: tuple[int, int]) -> Any:
    """transforms.v2.RandomCrop(size), built at first use (torchvision imported then)."""
    _functional()
    from torchvision.transforms.v2 import RandomCrop
    return RandomCrop(size)


class TorchAugment(AugmentBackend):
    """The augmentations of torchvision.transforms.v2.functional."""

    augment_conventions: dict[str, dict[str, Any]] = {
        # rotate(fill=value) blends the sampled mask (pytorch/vision#6517, #8083), fill=None
        # is the zero-padded sample: no dm_pix cut-off
        "rotate": {"sampling": ("torchvision", "padded")},
        # adjust_brightness multiplies and clamps to [0, 1]; it has no additive form
        "brightness": {"mode": "multiply_clamp"},
    }

    def hflip(self, x: torch.Tensor) -> torch.Tensor:
        """horizontal_flip (image.flip(-1))."""
        return _functional().horizontal_flip(x)

    def rotate(self, x: torch.Tensor, angle: float, interpolation: str = "nearest",
               fill: float = 0.0, sampling: str = "torchvision") -> torch.Tensor:
        """rotate(x, angle, interpolation, fill): a fill value for 'torchvision', fill=None
        for 'padded' (fill 0 only); 'pix' is not torchvision's."""
        if sampling == "pix":
            raise Unsupported("torchvision's rotate has no dm_pix cut-off (sampling='pix')")
        if sampling == "padded" and fill != 0.0:
            raise Unsupported(f"torchvision's rotate pads with zeros only without the fill blend "
                              f"(sampling='padded' with fill {fill})")
        return _functional().rotate(x, float(angle), interpolation=_interpolation(interpolation),
                                    fill=float(fill) if sampling == "torchvision" else None)

    def brightness(self, x: torch.Tensor, amount: float, mode: str = "multiply_clamp"
                   ) -> torch.Tensor:
        """adjust_brightness(x, amount): amount x clamped to [0, 1]."""
        if mode != "multiply_clamp":
            raise Unsupported(f"torchvision's adjust_brightness multiplies and clamps "
                              f"(mode='multiply_clamp'), not {mode!r}")
        return _functional().adjust_brightness(x, float(amount))

    def resized_crop(self, x: torch.Tensor, top: int, left: int, height: int, width: int,
                     size: Sequence[int], antialias: bool = True, align_corners: bool = False
                     ) -> torch.Tensor:
        """resized_crop(bilinear, antialias); align_corners=True (antialias off): the crop
        sliced, then F.interpolate(mode='bilinear', align_corners=True)."""
        if align_corners:
            if antialias:
                raise Unsupported("F.interpolate's antialiased kernel ignores align_corners")
            crop = x[:, :, top:top + height, left:left + width]
            return F.interpolate(crop, size=tuple(size), mode="bilinear", align_corners=True)
        return _functional().resized_crop(x, top, left, height, width, list(size),
                                          interpolation=_interpolation("bilinear"),
                                          antialias=bool(antialias))

    def random_crop(self, x: torch.Tensor, size: Sequence[int], seed: int) -> torch.Tensor:
        """RandomCrop(size)(x), the CPU default generator seeded with ``seed``."""
        if x.dim() != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
        with seeded(torch.device("cpu"), seed):
            return _random_crop((int(size[0]), int(size[1])))(x)
