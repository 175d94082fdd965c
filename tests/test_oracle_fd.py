"""The finite-difference check of tests/fd.py has teeth."""

from __future__ import annotations

import numpy as np

from reference import activations as A
from tests.fd import fd_mismatch


def test_the_check_rejects_a_slightly_wrong_vjp():
    """A gradient wrong by one part in a million fails; the right one passes."""
    rng = np.random.default_rng(0)
    x, t, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    (dx,) = A.gelu_vjp(x, c, approximate="tanh")

    def f(x):
        return A.gelu(x, "tanh")

    err, tol, _ = fd_mismatch(f, [x], [t], c, [dx])
    assert err <= tol
    err, tol, _ = fd_mismatch(f, [x], [t], c, [dx * (1 + 1e-6)])
    assert err > tol
