"""torch.nn.init and Keras 3's EarlyStopping behind backends/practice.py's interface.

Initialisation: torch.nn.init.<scheme>_ (torch/nn/init.py: xavier_uniform_, xavier_normal_,
kaiming_uniform_, kaiming_normal_, trunc_normal_, each taking ``generator=`` in torch 2.13)
on torch.empty of the shape, in the call's dtype, with a torch.Generator seeded by the seed;
torch's module defaults by constructing the module itself (nn.Linear, nn.Conv1d/2d/3d:
reset_parameters, kaiming_uniform_(a=sqrt(5)) on the weight and U(+-1/sqrt(fan_in)) on the
bias, which take no generator) under torch.random.fork_rng with torch.manual_seed(seed), so
the global generator is left as it was. Layout 'torch': conv OIHW, dense (O, I).

Early stopping: keras.callbacks.EarlyStopping (keras/src/callbacks/early_stopping.py) on
Keras 3's torch backend, driven epoch by epoch on a stub model whose weights name their
epoch: on_train_begin, on_epoch_end(epoch, {"val_loss": v}) until the model's
stop_training, on_train_end (which restores the best weights, stopped or not). Keras
compares in float32 (``ops.less`` on its floatx tensors).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import torch

from backends.base import Unsupported
from backends.practice import PracticeBackend
from reference import init as I

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CONV = {3: torch.nn.Conv1d, 4: torch.nn.Conv2d, 5: torch.nn.Conv3d}


def keras_module() -> ModuleType:
    """keras, imported at first use on its torch backend (KERAS_BACKEND is read when keras
    is first imported; one already imported keeps its backend, whose comparisons are
    float32 as well)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    return keras


class _StubModel:
    """What EarlyStopping uses of a model: stop_training, and weights that name their epoch."""

    def __init__(self) -> None:
        self.stop_training = False
        self.epoch = -1
        self.restored = -1

    def get_weights(self) -> int:
        return self.epoch

    def set_weights(self, weights: int) -> None:
        self.restored = weights


class TorchPractice(PracticeBackend):
    """Mixin for TorchBackend (backends/practice.py has the interface)."""

    init_schemes = I.TORCH_SCHEMES
    practice_conventions: dict[str, dict[str, Any]] = {
        # torch stores conv weights OIHW and nn.Linear's weight (O, I)
        # (torch.nn.init._calculate_fan_in_and_fan_out reads fans from that layout)
        "weight_init": {"layout": "torch"},
        # keras.callbacks.EarlyStopping's policy
        "early_stopping": {"convention": "keras"},
    }

    def _default_module(self, scheme: str, shape: tuple[int, ...], dtype: torch.dtype
                        ) -> torch.nn.Module:
        """nn.Linear(I, O) for a weight (O, I), nn.Conv<k>d(I, O, kernel) for (O, I, *kernel)."""
        dense = {"torch_default_linear": True, "torch_default_conv": False}.get(scheme, len(shape) == 2)
        if dense != (len(shape) == 2) or (not dense and len(shape) not in _CONV):
            raise Unsupported(f"torch has no {scheme} module for a weight of shape {shape}")
        if dense:
            return torch.nn.Linear(shape[1], shape[0], dtype=dtype, device=self._device)
        return _CONV[len(shape)](shape[1], shape[0], tuple(shape[2:]), dtype=dtype,
                                 device=self._device)

    def init_sample(self, scheme, shape, seed, dtype, *, layout="torch", **options):
        """torch.nn.init.<scheme>_(torch.empty(shape), **options, generator=), or the
        weight (bias) of the module torch_default_* names, built under fork_rng."""
        self._check_scheme(scheme)
        if layout != "torch":
            raise Unsupported(f"torch stores weights in its own layout, not {layout!r}")
        if dtype not in _DTYPES:
            raise Unsupported(f"the initialiser property draws float32 and float64, not {dtype}")
        shape = tuple(int(s) for s in shape)
        if scheme.startswith("torch_default"):
            cuda = [self._device] if self._device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(seed)
                module = self._default_module(scheme, shape, _DTYPES[dtype])
            return (module.bias if scheme == "torch_default_bias" else module.weight).detach()
        generator = torch.Generator(device=self._device).manual_seed(seed)
        weight = torch.empty(shape, dtype=_DTYPES[dtype], device=self._device)
        return getattr(torch.nn.init, f"{scheme}_")(weight, **options, generator=generator)

    def early_stopping(self, history, *, mode="min", min_delta=0.0, patience=0, baseline=None,
                       start_from_epoch=0, convention="keras"):
        """keras.callbacks.EarlyStopping(restore_best_weights=True) over the history."""
        if convention != "keras":
            raise Unsupported(f"Keras' EarlyStopping follows the 'keras' policy, not {convention!r}")
        keras = keras_module()
        cb = keras.callbacks.EarlyStopping(monitor="val_loss", mode=mode, min_delta=min_delta,
                                           patience=patience, baseline=baseline,
                                           restore_best_weights=True,
                                           start_from_epoch=start_from_epoch)
        model = _StubModel()
        cb.set_model(model)
        cb.on_train_begin()
        for epoch, v in enumerate(history):
            model.epoch = epoch
            cb.on_epoch_end(epoch, {"val_loss": v})
            if model.stop_training:
                break
        cb.on_train_end()
        return (cb.stopped_epoch if model.stop_training else -1), model.restored

