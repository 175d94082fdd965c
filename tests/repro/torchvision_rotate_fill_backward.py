"""torchvision 0.28.0: rotate(bilinear, fill=<a number>) cannot be differentiated.

transforms/v2/functional/_geometry.py _apply_grid_transform blends the fill in place
(``float_img.sub_(fill_img).mul_(mask).add_(fill_img)``) on the grid_sample output, whose
slice ``mask`` the multiplication's backward needs: autograd raises "one of the variables
needed for gradient computation has been modified by an inplace operation". Every dtype and
fill value (0 included: RandomRotation's default fill=0 takes this path); nearest and
fill=None are differentiable. Related: pytorch/vision#6517 (the same blend's border values).
Run: python tests/repro/torchvision_rotate_fill_backward.py
"""

import torch

from backends.torch_vision import import_torchvision

import_torchvision()
from torchvision.transforms import InterpolationMode  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

x = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
F.rotate(x, 30.0, interpolation=InterpolationMode.BILINEAR, fill=None).sum().backward()
print("fill=None: differentiable")
try:
    F.rotate(x, 30.0, interpolation=InterpolationMode.BILINEAR, fill=0.0).sum().backward()
    print("fill=0.0: differentiable (fixed)")
except RuntimeError as exc:
    print(f"fill=0.0: {type(exc).__name__}: {str(exc)[:110]}")
