"""PyTorch's dropout and the weight penalties users write, behind backends/regularization.py's
interface.

Dropout is ``F.dropout`` / ``F.dropout2d`` (torch/nn/functional.py ``dropout``,
``dropout2d`` -> ``_VF.dropout`` / ``_VF.feature_dropout``; on CPU aten's ``_dropout_impl``:
noise = bernoulli(1 - p), noise /= 1 - p, x * noise). Neither takes a generator, so each
call forks the global RNG (torch.random.fork_rng: the caller's state is restored after),
seeds the default generator of the tensor's device with ``seed`` and draws there: the same
seed gives the same mask, and the global RNG is left as it was. torch has no penalty
function: they are what users write, ``lam * w.abs().sum()`` (its abs backward gives
sign(0) = 0) and ``(lam / 2) * w.pow(2).sum()`` or ``lam * w.pow(2).sum()``; both L2
conventions are declared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from backends.regularization import RegularizationBackend
from reference.regularization import L2_CONVENTIONS


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Within: the default generator of ``device`` seeded with ``seed``; the global RNG state
    (CPU, and ``device``'s if a GPU) restored on exit."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) \
        if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
        (torch.cuda.default_generators[index] if cuda else torch.default_generator
         ).manual_seed(int(seed))
        yield


class TorchRegularization(RegularizationBackend):
    """Mixin for TorchBackend (backends/regularization.py has the interface)."""

    regularization_conventions: dict[str, dict[str, Any]] = {
        # no torch function: users write either form
        "l2_penalty": {"convention": L2_CONVENTIONS},
    }

    def dropout(self, x, p, training, seed):
        """F.dropout(x, p, training) on the generator seeded with ``seed``."""
        with seeded(x.device, seed):
            return F.dropout(x, p, training)

    def dropout2d(self, x, p, training, seed):
        """F.dropout2d(x, p, training) on x (N, C, H, W), seeded as dropout."""
        if x.dim() != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
        with seeded(x.device, seed):
            return F.dropout2d(x, p, training)

    def l1_penalty(self, w, lam):
        """lam * w.abs().sum()."""
        return lam * w.abs().sum()

    def l2_penalty(self, w, lam, convention="half"):
        """(lam / 2) * w.pow(2).sum() ('half') or lam * w.pow(2).sum() ('full')."""
        if convention not in L2_CONVENTIONS:
            raise ValueError(f"convention: expected one of {L2_CONVENTIONS}, got {convention!r}")
        return (lam / 2 if convention == "half" else lam) * w.pow(2).sum()
