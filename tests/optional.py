"""Optional dependencies of a test (torch, jax, optax, flax, asv): skipped where one is not
installed, unless ``TOUCHSTONE_REQUIRE_BACKENDS`` is set (as ``.ci/run`` sets it), where a
missing one fails the test instead, so that CI never passes by skipping."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def required() -> bool:
    """Whether a missing optional dependency fails instead of skipping."""
    return os.environ.get("TOUCHSTONE_REQUIRE_BACKENDS", "") not in ("", "0")


def need(module: str, reason: str | None = None) -> ModuleType:
    """``module`` imported; pytest.importorskip's skip where it is missing, or a failure
    where dependencies are required."""
    if not required():
        return pytest.importorskip(module, reason=reason)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} is required (TOUCHSTONE_REQUIRE_BACKENDS) but cannot be "
                    f"imported: {exc}" + (f" ({reason})" if reason else ""))


def need_torchvision() -> ModuleType:
    """torchvision imported by backends.torch_vision (which works around a CUDA torchvision
    over a CPU torch); skipped or failed as ``need``."""
    need("torch", reason="torchvision needs torch")
    try:
        from backends.torch_vision import import_torchvision
        return import_torchvision()
    except ImportError as exc:
        if required():
            pytest.fail(f"torchvision is required (TOUCHSTONE_REQUIRE_BACKENDS) but cannot be "
                        f"imported: {exc}")
        pytest.skip(f"torchvision is not installed: {exc}")


def need_keras() -> ModuleType:
    """Keras 3 on its torch backend (``KERAS_BACKEND`` is read when keras is first imported;
    one already imported keeps its backend), skipped or failed as ``need``."""
    need("torch", reason="Keras runs on its torch backend here")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = need("keras", reason="the Keras comparison needs keras")
    if keras.config.backend() != "torch":
        pytest.skip(f"keras was imported on its {keras.config.backend()} backend, not torch")
    return keras
