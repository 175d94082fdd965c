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
