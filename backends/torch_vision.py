"""torchvision, imported so that its pure-torch transforms work even where its compiled
operators cannot load.

torchvision's compiled extension (``torchvision._C``: nms, roi_align, image decoding) is
built against one torch build. Where it does not match the installed torch (the torchvision
0.28.0 wheel is a CUDA build; over torch 2.13.0+cpu its ``_C.so`` needs libc10_cuda.so),
torchvision skips the extension with a warning, but ``torchvision/_meta_registrations.py``
then registers fake kernels for ``torchvision::nms`` and ``qnms`` unconditionally and the
import fails: "RuntimeError: operator torchvision::nms does not exist". The transforms
Touchstone certifies (``torchvision.transforms.v2.functional``: flips, rotate, brightness,
resized_crop) are pure torch and never call those operators, so where the import fails that
way the two schemas are defined (no kernel: calling them still fails) and the import is
retried. ``EXTENSION_LOADED`` says which import happened; the certificate records it.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

#: whether torchvision's compiled operators loaded (None before the import)
EXTENSION_LOADED: list[bool | None] = [None]

_SCHEMAS = {"nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}


def import_torchvision() -> ModuleType:
    """The torchvision module (ImportError where it is not installed)."""
    if "torchvision" in sys.modules and EXTENSION_LOADED[0] is not None:
        return sys.modules["torchvision"]
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        for op, schema in _SCHEMAS.items():
            if not hasattr(torch.ops.torchvision, op):
                torch.library.define(f"torchvision::{op}", schema)
        import torchvision
        EXTENSION_LOADED[0] = False
        return torchvision
    EXTENSION_LOADED[0] = torchvision.extension._has_ops()
    return torchvision
