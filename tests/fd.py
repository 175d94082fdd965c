"""The oracle tests' shared harness: float64's constants, the central finite-difference check
of a VJP and its error bound, the input strategies that feed it, and two helpers several
test files share (a naive loop's window taps, the check of a ValueError's message).

The check uses the inner-product identity. For primals p_i, tangents t_i and a cotangent c,
phi(s) = <f(p + s t), c> has phi'(0) = <J t, c> = sum_i <t_i, (J^T c)_i>; the left side is a
central difference of two forward calls, the right side comes from the VJP under test.

Error bound of the central difference fd(h) = (phi(h) - phi(-h)) / 2h:

    |fd(h) - phi'(0)| <= (h^2 / 6) |phi'''|  +  u M / h

- truncation: measured, not guessed. fd(2h) - fd(h) = 3 (h^2 / 6) phi''' + O(h^4), so
  |fd(2h) - fd(h)| is three times the Richardson estimate of the truncation error; that is
  what we allow (it depends on the forward only, so a wrong VJP cannot widen it).
- rounding: one evaluation of phi is wrong by at most u M, where M bounds the magnitude of
  the terms phi is computed from: max_s sum |f(p + s t) c| (the output at every point
  evaluated), sum <|p_i| + 2h |t_i|, |(J^T c)_i|> (p + s t is itself rounded) and, where
  intermediate terms can cancel in the output, their magnitude weighted by |c| (a matrix
  product's |x| |w|, BCE's x and x y, log-softmax's x and logsumexp, an MLP's layers): each
  test passes that as ``extra_magnitude``. u = 64 eps: libm-grade transcendental functions
  are within a few ulps and the reductions here are at most a few dozen terms long.
- the inner product on the VJP side is a sum of n terms: n eps sum <|t_i|, |(J^T c)_i|>.

h = 1e-6 * max(1, max |p|) keeps u M / h near 1.4e-8 M and h^2 |phi'''| near 1e-12, so a
VJP wrong by more than ~1e-7 of the magnitude of its terms fails (see
tests/test_oracle_fd.py). Every input keeps GAP = 1e-3 away from any kink, which the steps
(|s t| <= 2h <= 2.4e-5) never reach.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
U = 64 * EPS
H_REL = 1e-6
GAP = 1e-3


# --------------------------------------------------------------------------- the FD check

def dot(a, b) -> float:
    """<a, b> in float64."""
    return float(np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)))


def fd_mismatch(f, primals, tangents, cotangent, grads, extra_magnitude: float = 0.0):
    """(|fd - vjp|, tolerance, details) for f(*primals) against grads = J^T cotangent."""
    primals = [np.asarray(p, dtype=np.float64) for p in primals]
    scale = max([1.0] + [float(np.max(np.abs(p), initial=0.0)) for p in primals])
    h = H_REL * scale

    out_mag = 0.0

    def phi(s: float) -> float:
        nonlocal out_mag
        y = np.asarray(f(*[p + s * t for p, t in zip(primals, tangents, strict=True)]))
        out_mag = max(out_mag, float(np.sum(np.abs(y * cotangent))))
        return dot(y, cotangent)

    phi(0.0)
    fd_h = (phi(h) - phi(-h)) / (2 * h)
    fd_2h = (phi(2 * h) - phi(-2 * h)) / (4 * h)
    vjp = sum(dot(t, g) for t, g in zip(tangents, grads, strict=True))
    n = sum(np.size(t) for t in tangents)
    in_mag = sum(dot(np.abs(p) + 2 * h * np.abs(t), np.abs(g))
                 for p, t, g in zip(primals, tangents, grads, strict=True))
    term_mag = sum(dot(np.abs(t), np.abs(g)) for t, g in zip(tangents, grads, strict=True))
    truncation = abs(fd_2h - fd_h)
    rounding = U * (out_mag + in_mag + extra_magnitude) / h + n * EPS * term_mag
    tol = truncation + rounding + TINY
    return abs(fd_h - vjp), tol, dict(fd=fd_h, fd_2h=fd_2h, vjp=vjp, h=h, truncation=truncation,
                                      rounding=rounding)


def assert_vjp_matches_fd(f, primals, tangents, cotangent, grads, extra_magnitude: float = 0.0):
    """Finite gradients of the primals' shapes, within fd_mismatch's tolerance."""
    for p, t, g in zip(primals, tangents, grads, strict=True):
        assert g is not None and np.shape(g) == np.shape(p) == np.shape(t), \
            f"gradient shape {np.shape(g)} for a primal of shape {np.shape(p)}"
        assert np.all(np.isfinite(g)), "the VJP returned a non-finite gradient"
    err, tol, info = fd_mismatch(f, primals, tangents, cotangent, grads, extra_magnitude)
    assert err <= tol, f"|fd - vjp| = {err:.3e} > tolerance {tol:.3e}: {info}"


# --------------------------------------------------------------------------- strategies

def finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from(a, kinks, gap: float = GAP) -> np.ndarray:
    """``a`` with every element within ``gap`` of a kink moved to 2 gap from it, on its side.
    The kinks passed together are always more than 4 gap apart."""
    a = np.array(a, dtype=np.float64)
    for k in kinks:
        d = a - k
        a = np.where(np.abs(d) < gap, k + np.where(d < 0, -2 * gap, 2 * gap), a)
    return a


def arrays(shape, lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=finite(lo, hi))


def unit(shape) -> st.SearchStrategy[np.ndarray]:
    """Tangents and cotangents."""
    return arrays(shape, -1.0, 1.0)


def seeded(data, shape, scale: float = 1.0, label: str = "seed") -> np.ndarray:
    """Standard normal draws from a drawn seed: kink-free with high probability, unlike the
    small round numbers Hypothesis favours, for networks whose kinks are hidden inside."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=label)
    return scale * np.random.default_rng(seed).standard_normal(shape)


small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


# --------------------------------------------------------------------------- shared helpers

def taps(start: int, k: int, d: int, size: int) -> list[tuple[int, int]]:
    """(tap, index) of the k taps of a window along one axis, d apart from ``start``, that
    land inside [0, size): the naive loops' bounds check."""
    return [(t, start + t * d) for t in range(k) if 0 <= start + t * d < size]


def raises_for(arg: str):
    """pytest.raises(ValueError) whose message starts with the argument's name."""
    return pytest.raises(ValueError, match=rf"^{arg}(?!\w)")


def assert_close_chain(got, want, terms: int, what: str = "") -> None:
    """Two float64 computations of one chain of ``terms`` roundings (a recurrence against
    torch or a naive loop) agree to 16 eps per term of the larger magnitude (at least 1)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.max(np.abs(got), initial=0.0)),
                float(np.max(np.abs(want), initial=0.0)))
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= 16 * terms * EPS * scale, f"{what}: max |diff| {err:.3e} (scale {scale:.3e})"
