"""The torch adapter refuses, as Unsupported, the float16 convolutions that segfault torch
2.13.0 on CPU (tests/repro/torch_float16_conv_segfault.py), and only those."""

from __future__ import annotations

import numpy as np
import pytest

from backends.base import Unsupported
from tests.optional import need

torch = need("torch", reason="the torch adapter needs torch")
from backends.torch_backend import TorchBackend  # noqa: E402


@pytest.mark.parametrize(("name", "xs", "ws", "groups"), [
    ("conv1d", (1, 4, 1), (2, 2, 1), 2), ("conv2d", (1, 2, 2, 1), (1, 2, 1, 1), 1)])
def test_the_crashing_form_is_refused_in_float16_only(name, xs, ws, groups):
    b = TorchBackend()
    args = {"stride": 2, "padding": 1, "dilation": 2, "groups": groups}
    x16, w16 = (b.asarray(np.zeros(s), "float16") for s in (xs, ws))
    with pytest.raises(Unsupported, match="segfaults"):
        getattr(b, name)(x16, w16, None, **args)
    x32, w32 = (b.asarray(np.zeros(s), "float32") for s in (xs, ws))
    assert b.to_numpy(getattr(b, name)(x32, w32, None, **args)).shape[0] == 1
    # a longer input, or stride 1, is computed
    longer = b.asarray(np.zeros(xs[:-1] + (3,)), "float16")
    assert b.to_numpy(getattr(b, name)(longer, w16, None, **args)).shape[0] == 1
