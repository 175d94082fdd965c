"""Regularization: dropout (elementwise and channel), and the L1 and L2 weight penalties.

Dropout's randomness is an input: the 0/1 ``mask`` a backend drew (1 = kept), so every
framework computes on the same numbers (``mask_from_output`` recovers it from an output).
With inverted scaling, during training

    y = x mask / (1 - p),   p in [0, 1] the probability of dropping an element

and y = x when ``training`` is False (the mask is then unused, but still checked). A dropped
element is exactly 0, whatever x is. The VJP is dx = g mask / (1 - p) (g when not training).

- Rounding: both frameworks compute x * fl(1 / (1 - p)), one multiplication by the rounded
  reciprocal, not a division (measured bit for bit in float32 and float64 on CPU); the oracle
  computes the same. torch (CPU, aten ``_dropout_impl``, reached from torch/nn/functional.py
  ``dropout`` -> ``_VF.dropout``): noise = bernoulli(1 - p), noise.div_(1 - p), input * noise
  (torch/_decomp/decompositions.py ``native_dropout``: mask * input * float(1 / (1 - p))).
  flax (flax/linen/stochastic.py ``Dropout.__call__``) writes
  ``lax.select(mask, inputs / keep_prob, 0)``, but XLA on CPU rewrites a division by a
  broadcast constant into a multiplication by its reciprocal, so it computes the same under
  jit and in a plain apply; the primal of an eager (unjitted) ``jax.vjp`` is the correctly
  rounded division, up to 2 eps relative from the oracle's.
- p = 0: both return x unchanged (their mask is all ones). p = 1: both return zeros (torch's
  ``_dropout_impl`` multiplies by a zero, flax returns ``zeros_like``); the oracle returns
  zeros and a zero gradient, whatever the mask. torch's product turns a dropped (or, at
  p = 1, any) inf or NaN into NaN (pytorch#59421); flax's select gives 0, as the oracle.
- Channel dropout (``dropout2d``): one mask value per (sample, channel), mask (N, C), shared
  over the spatial positions of x (N, C, H, W), or (N, C, L). torch ``F.dropout2d``
  (torch/nn/functional.py) reads a 3-D input as (N, C, L) and drops whole length-L channels
  (dropout1d's behaviour, with a warning that a future release will read it as an unbatched
  (C, H, W)); other ranks warn and still drop along dims 0 and 1 (``_VF.feature_dropout``).
  The oracle takes the 3-D and 4-D forms only. flax: ``Dropout(broadcast_dims=(2, 3))`` on
  NCHW (its mask has size 1 along the broadcast dims).

Penalties of one parameter array w (a model's penalty is the sum over its arrays):

- ``l1_penalty`` = lam sum |w|, VJP lam sign(w) (the subgradient 0 at w = 0, torch's abs
  backward: sign(0) = 0). keras.regularizers.L1 (keras/src/regularizers/regularizers.py).
- ``l2_penalty`` with L2_CONVENTIONS: 'half' = (lam / 2) sum w^2, whose gradient lam w is
  what torch's and optax's weight decay add to the gradient (reference/optimizers.py 'l2');
  'full' = lam sum w^2, keras.regularizers.L2 (its gradient 2 lam w). keras.regularizers.L1L2
  (l1, l2) is l1_penalty(w, l1) + l2_penalty(w, l2, 'full'). Keras requires lam >= 0 finite,
  as the oracle does.
"""

from __future__ import annotations

import numpy as np

from reference._validate import as_float, in_unit_interval, positive, same_shape

#: l2_penalty's conventions (the module doc); the first is the default.
L2_CONVENTIONS = ("half", "full")


def _mask(mask, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A 0/1 mask of ``shape`` as float64."""
    m = as_float("mask", mask)
    if m.shape != shape:
        raise ValueError(f"mask: expected shape {shape} ({what}), got {m.shape}")
    if not np.all((m == 0) | (m == 1)):
        raise ValueError(f"mask: expected only 0 and 1 (1 = kept), got values {np.unique(m)[:5]}")
    return m


def _scaled(a: np.ndarray, m: np.ndarray, p: float) -> np.ndarray:
    """a * fl(1 / (1 - p)) where m is 1, exactly 0 where it is 0 or when p = 1."""
    if p == 1:
        return np.zeros_like(a)
    return np.where(m == 1, a * (1.0 / (1.0 - p)), 0.0)


def _dropout_inputs(x, mask, p):
    x = as_float("x", x)
    p = in_unit_interval("p", p, closed_right=True)
    return x, _mask(mask, x.shape, "the shape of x"), p


def dropout(x: np.ndarray, mask: np.ndarray, p: float, training: bool = True) -> np.ndarray:
    """y = x mask / (1 - p) (training), x (not training); x any shape, mask 0/1 of x's shape,
    p in [0, 1] (p = 1: zeros). Computed as x * fl(1 / (1 - p)), as torch and flax do."""
    x, m, p = _dropout_inputs(x, mask, p)
    return _scaled(x, m, p) if training else x.copy()


def dropout_vjp(x: np.ndarray, g: np.ndarray, mask: np.ndarray, p: float,
                training: bool = True) -> tuple[np.ndarray]:
    """(dx,) = (g mask / (1 - p),) when training (zeros for p = 1), (g,) when not."""
    x, m, p = _dropout_inputs(x, mask, p)
    g = as_float("g", g)
    same_shape("g", g, "x", x)
    return (_scaled(g, m, p) if training else g.copy(),)


def _channel_mask(x, mask) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) or (N, C, L), and the (N, C) mask broadcast over its trailing axes."""
    x = as_float("x", x, ndim=(3, 4))
    m = _mask(mask, x.shape[:2], "(N, C) of x")
    return x, np.broadcast_to(m.reshape(m.shape + (1,) * (x.ndim - 2)), x.shape)


def dropout2d(x: np.ndarray, mask: np.ndarray, p: float, training: bool = True) -> np.ndarray:
    """Channel dropout: y[n, c] = x[n, c] mask[n, c] / (1 - p) (training), x (not training);
    x (N, C, H, W) or (N, C, L), mask (N, C) of 0/1, p in [0, 1] (p = 1: zeros)."""
    return dropout(*_channel_mask(x, mask), p, training)


def dropout2d_vjp(x: np.ndarray, g: np.ndarray, mask: np.ndarray, p: float,
                  training: bool = True) -> tuple[np.ndarray]:
    """(dx,) = (g[n, c] mask[n, c] / (1 - p),) when training, (g,) when not."""
    x, m = _channel_mask(x, mask)
    return dropout_vjp(x, g, m, p, training)


def mask_from_output(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The mask a backend drew, recovered from its dropout output y = dropout(x): (y != 0) as
    float64 0/1, of x's shape. x must have no zeros (a kept 0 looks dropped); the values of
    the kept elements are not checked here. For channel dropout, take mask[:, :, 0, 0]."""
    x = as_float("x", x)
    y = np.asarray(y, dtype=np.float64)
    same_shape("y", y, "x", x)
    if np.any(x == 0):
        raise ValueError(f"x: contains zeros (shape {x.shape}); a kept zero looks dropped")
    return (y != 0).astype(np.float64)


def l1_penalty(w: np.ndarray, lam: float) -> float:
    """lam sum |w| over every element of w; lam >= 0."""
    w = as_float("w", w)
    lam = positive("lam", lam, allow_zero=True)
    return lam * float(np.sum(np.abs(w)))


def l1_penalty_vjp(w: np.ndarray, g: float, lam: float) -> tuple[np.ndarray]:
    """(dw,) = (g lam sign(w),), with sign(0) = 0 (torch's abs backward)."""
    w = as_float("w", w)
    lam = positive("lam", lam, allow_zero=True)
    g = as_float("g", g, ndim=0)
    return (float(g) * lam * np.sign(w),)


def _l2_inputs(w, lam, convention):
    w = as_float("w", w)
    lam = positive("lam", lam, allow_zero=True)
    if convention not in L2_CONVENTIONS:
        raise ValueError(f"convention: expected one of {L2_CONVENTIONS}, got {convention!r}")
    return w, lam, (lam / 2 if convention == "half" else lam)


def l2_penalty(w: np.ndarray, lam: float, convention: str = "half") -> float:
    """c sum w^2 with c = lam / 2 ('half', weight decay's) or lam ('full', Keras'); lam >= 0."""
    w, _, c = _l2_inputs(w, lam, convention)
    return c * float(np.sum(w * w))


def l2_penalty_vjp(w: np.ndarray, g: float, lam: float, convention: str = "half") -> tuple[np.ndarray]:
    """(dw,) = (g lam w,) ('half') or (2 g lam w,) ('full')."""
    w, lam, _ = _l2_inputs(w, lam, convention)
    g = as_float("g", g, ndim=0)
    return ((float(g) * lam if convention == "half" else 2 * float(g) * lam) * w,)
