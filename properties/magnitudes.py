"""Magnitude of the terms each oracle formula combines, for the tolerance policy.

A backend is held to the accuracy the oracle's own formula reaches in the backend's dtype.
Where that formula adds or subtracts terms larger than its result (tanh' = 1 - t^2 near
|t| = 1, softmax' = s (g - <g, s>) near s = 1, log_softmax = x - max - log(sum exp(.))), the
rounding error of any implementation of it is eps times those terms, not eps times the
result: ``forward_terms`` and ``vjp_terms`` return that magnitude M, which the tolerance adds
to the condition term. Formulas that avoid cancellation (the oracle's erfc GELU and softplus
BCE) have no entry, so a backend that cancels there is held to relative accuracy.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from reference import augment as A_
from reference import registry
from reference.activations import softmax


def _class_weights(kwargs, n, k):
    w = kwargs.get("weight")
    w = np.ones(k) if w is None else np.asarray(w)
    labels = np.asarray(kwargs["labels"])
    e = kwargs.get("label_smoothing", 0.0)
    if kwargs.get("class_weighting", "per_class") == "per_example":  # Keras: w[y_i] loss_i / N
        q = np.full((n, k), e / k)
        q[np.arange(n), labels] += 1 - e
        return q * w[labels][:, None], float(n)
    q = np.tile((e / k) * w, (n, 1))
    q[np.arange(n), labels] += (1 - e) * w[labels]
    return q, w[labels].sum()


def _abs(cot) -> np.ndarray:
    return np.abs(np.asarray(cot, dtype=np.float64))


def _per_example(v: np.ndarray, reduction: str, denom: float) -> np.ndarray:
    if reduction == "none":
        return v
    return np.asarray(v.sum() if reduction == "sum" else v.sum() / denom)


def dense_forward(primals, kwargs):
    x, w, b = primals
    return np.abs(x) @ np.abs(w) + np.abs(b)


def abs_forward(name: str):
    """Bilinear y = f(x, w) + b and sums of one sign: the terms summed are those of f(|x|, ...)."""
    def terms(primals, kwargs):
        return registry.forward(name, tuple(np.abs(p) for p in primals), **kwargs)
    return terms


def log_softmax_forward(primals, kwargs):
    (x,) = primals
    axis = kwargs.get("axis", -1)
    z = x - x.max(axis=axis, keepdims=True)
    # log of a sum >= 1 that is rounded relative to itself: an absolute error of eps
    return np.abs(z) + np.log(np.exp(z).sum(axis=axis, keepdims=True)) + 1.0


def cross_entropy_forward(primals, kwargs):
    (x,) = primals
    n, k = x.shape
    z = x - x.max(axis=1, keepdims=True)
    terms = np.abs(z) + np.log(np.exp(z).sum(axis=1, keepdims=True)) + 1.0
    q, denom = _class_weights(kwargs, n, k)
    return _per_example((np.abs(q) * terms).sum(axis=1), kwargs.get("reduction", "mean"), denom)


def dense_vjp(primals, kwargs, cot):
    g = _abs(cot)
    x, w, _ = primals
    return [g @ np.abs(w).T, np.abs(x).T @ g, g.sum(axis=0)]


def bilinear_vjp(name: str):
    """dx is linear in (w, g) and dw in (x, g): each is the VJP with absolute values."""
    def terms(primals, kwargs, cot):
        return list(registry.vjp(name, tuple(np.abs(p) for p in primals), _abs(cot), **kwargs))
    return terms


def summing_vjp(name: str):
    """Pooling: the VJP adds the cotangents of every window an input belongs to."""
    def terms(primals, kwargs, cot):
        return list(registry.vjp(name, primals, _abs(cot), **kwargs))
    return terms


def tanh_vjp(primals, kwargs, cot):
    g = _abs(cot)
    return [g * (1 + np.tanh(primals[0]) ** 2)]


def sigmoid_vjp(primals, kwargs, cot):
    g = _abs(cot)
    return [g * special.expit(primals[0])]


def silu_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    s = special.expit(x)
    return [g * (s + np.abs(x) * s * (1 - s))]


def gelu_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    if kwargs.get("approximate", "none") == "none":
        return [g * (special.ndtr(x) + np.abs(x) * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))]
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    su = special.expit(2 * u)
    du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
    return [g * (su + np.abs(2 * x * su * (1 - su) * du))]


def softmax_vjp(primals, kwargs, cot):
    (x,) = primals
    axis = kwargs.get("axis", -1)
    s = softmax(x, axis)
    return [s * (_abs(cot) + np.abs((np.asarray(cot) * s).sum(axis=axis, keepdims=True)))]


def log_softmax_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    axis = kwargs.get("axis", -1)
    return [g + softmax(x, axis) * g.sum(axis=axis, keepdims=True)]


def cross_entropy_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    n, k = x.shape
    q, denom = _class_weights(kwargs, n, k)
    red = kwargs.get("reduction", "mean")
    gi = g if red == "none" else np.full(n, g / denom if red == "mean" else g)
    return [(q.sum(axis=1, keepdims=True) * softmax(x, 1) + q) * gi[:, None]]


def bce_with_logits_vjp(primals, kwargs, cot):
    g = _abs(cot)
    (x,) = primals
    y = np.abs(kwargs["target"])
    red = kwargs.get("reduction", "mean")
    gi = g if red == "none" else np.broadcast_to(g / (x.size if red == "mean" else 1), x.shape)
    return [gi * (special.expit(x) + y)]


def _bn_channels(x: np.ndarray):
    """(axes over which a channel's statistics run, the shape of a per-channel array in x)."""
    return (0, *range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)


def _fast_variance(x: np.ndarray, kwargs) -> np.ndarray | None:
    """E[x^2] per channel where the batch variance is E[x^2] - E[x]^2 (variance="fast",
    training): both terms are about E[x^2] and each is rounded relative to it, so the
    variance carries eps 2 E[x^2] where the two-pass variance carries eps var. None: no such
    terms (two-pass, or eval mode, which computes no statistic)."""
    if kwargs.get("variance", "two_pass") != "fast" or not kwargs.get("training", True):
        return None
    return (x * x).mean(axis=_bn_channels(x)[0], keepdims=True)


def _bn_centred(x: np.ndarray, kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(x - mu, r = 1 / sqrt(var + eps)) with the training batch's statistics, per channel."""
    axes, _ = _bn_channels(x)
    xc = x - x.mean(axis=axes, keepdims=True)
    return xc, 1.0 / np.sqrt((xc**2).mean(axis=axes, keepdims=True) + kwargs.get("eps", 1e-5))


def batch_norm_forward(primals, kwargs):
    """[M of y, of the running mean, of the running variance] for the fast variance: its
    error d var = eps 2 E[x^2] reaches the running variance times the weight of the new
    statistic (and n / (n - 1) when unbiased), and y = (x - mu) r w + b through
    r = (var + eps)^(-1/2): |x - mu| |w| r^3 d var / 2. None for the two-pass variance."""
    x = primals[0]
    weight = primals[1] if len(primals) > 1 else kwargs.get("weight")
    ms = _fast_variance(x, kwargs)
    if ms is None:
        return None
    _, shape = _bn_channels(x)
    xc, r = _bn_centred(x, kwargs)
    w = 1.0 if weight is None else np.abs(weight).reshape(shape)
    n = x.size // x.shape[1]
    m = kwargs.get("momentum", 0.1)
    take = m if kwargs.get("momentum_convention", "torch") == "torch" else 1.0 - m
    unbiased = n / (n - 1) if kwargs.get("unbiased_running_var", True) else 1.0
    return [np.abs(xc) * w * r**3 * ms, np.zeros(x.shape[1]),
            (take * unbiased * 2 * ms).reshape(-1)]


def batch_norm_vjp(primals, kwargs, cot):
    """Training: dx = r w (g - mean(g) - xhat mean(g xhat)) with r = 1 / sqrt(var + eps) sums
    terms of size r |w| (|g| + mean|g| + |xhat| mean|g xhat|), far above dx when g is nearly
    affine in xhat; dw = sum g xhat and db = sum g sum |g xhat| and |g|. Eval mode multiplies
    only: no terms beyond the result. The fast variance's error eps 2 E[x^2] moves r by the
    relative k = r^2 E[x^2] eps: dx (r, and r^3 in xhat mean(g xhat)) by 3 k, dw by k."""
    g = _abs(cot)
    x, weight, _ = primals
    axes, shape = _bn_channels(x)
    mu, r = _bn_mu_r(x, kwargs)
    xhat = np.abs((x - mu) * r)
    w = np.ones_like(r) if weight is None else np.abs(weight).reshape(shape)
    gx = g * xhat
    dx = r * w * (g + g.mean(axis=axes, keepdims=True) + xhat * gx.mean(axis=axes, keepdims=True)) \
        if kwargs.get("training", True) else g * r * w
    dw = gx.sum(axis=axes)
    ms = _fast_variance(x, kwargs)
    if ms is not None:
        k = r * r * ms
        dx, dw = dx * (1 + 3 * k), dw * (1 + k.reshape(-1))
    return [dx, dw, g.sum(axis=axes)]


def _bn_mu_r(x: np.ndarray, kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(mu, r = 1 / sqrt(var + eps)) per channel: the batch's statistics (training) or the
    running ones (eval)."""
    axes, shape = _bn_channels(x)
    if kwargs.get("training", True):
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    else:
        mu = np.asarray(kwargs["running_mean"], dtype=np.float64).reshape(shape)
        var = np.asarray(kwargs["running_var"], dtype=np.float64).reshape(shape)
    return mu, 1.0 / np.sqrt(var + kwargs.get("eps", 1e-5))


def _flushed(v: np.ndarray, tiny: float, computed: bool = True) -> np.ndarray:
    """What flushing ``v`` to zero loses where it is subnormal (below ``tiny``, the dtype's
    smallest normal, or, for a ``computed`` value, within a bfloat16 rounding of it): |v| up
    to tiny; 0 where it is normal."""
    a = np.abs(v)
    return np.where(a < tiny * (1 + 2.0**-7 if computed else 1), np.minimum(a, tiny), 0.0)


def _bn_flush(x: np.ndarray, mu: np.ndarray, training: bool, tiny: float) -> np.ndarray:
    """The error on x - mu from its subnormal parts flushed to zero, as XLA's CPU code does:
    of x, of mu (computed in training, the given running mean in eval) and of the
    difference."""
    return (_flushed(x, tiny, computed=False) + _flushed(mu, tiny, computed=training)
            + _flushed(x - mu, tiny))


def batch_norm_forward_floor(primals, kwargs, tiny):
    """[error of y, of the running mean, of the running variance] from subnormals flushed
    (_bn_flush): y = (x - mu) r w + b multiplies them by r |w| (up to 316 |w| at eps = 1e-5);
    the statistics only add them, below the policy's floor."""
    x = primals[0]
    weight = primals[1] if len(primals) > 1 else kwargs.get("weight")
    _, shape = _bn_channels(x)
    mu, r = _bn_mu_r(x, kwargs)
    w = 1.0 if weight is None else np.abs(weight).reshape(shape)
    zero = np.zeros(x.shape[1])
    return [r * w * _bn_flush(x, mu, bool(kwargs.get("training", True)), tiny), zero, zero]


def batch_norm_vjp_floor(primals, kwargs, cot, tiny):
    """[error of dx, dw, db] from subnormals flushed (_bn_flush, e): xhat moves by r e, so dw
    = sum g xhat by sum |g| r e, and in training dx = r w (g - mean(g) - xhat mean(g xhat))
    by r |w| (r e mean|g xhat| + |xhat| mean(|g| r e)); eval's dx = g r w has none."""
    g = _abs(cot)
    x, weight, _ = primals
    axes, shape = _bn_channels(x)
    training = bool(kwargs.get("training", True))
    mu, r = _bn_mu_r(x, kwargs)
    w = np.ones_like(r) if weight is None else np.abs(weight).reshape(shape)
    dxhat = r * _bn_flush(x, mu, training, tiny)
    if training:
        xhat = np.abs((x - mu) * r)
        dx = r * w * (dxhat * (g * xhat).mean(axis=axes, keepdims=True)
                      + xhat * (g * dxhat).mean(axis=axes, keepdims=True))
    else:
        dx = np.zeros_like(g)
    return [dx, (g * dxhat).sum(axis=axes), np.zeros(x.shape[1])]


# -- recurrent cells (reference/recurrent.py) -----------------------------------------------
def _cell_parts(kind: str, primals, kwargs):
    """(x, states, w_ih, w_hh, b_ih, b_hh, number of primals) of a cell's primals, absent
    biases as zeros."""
    n_states = 2 if kind == "lstm" else 1
    x, *rest = (np.asarray(p, dtype=np.float64) if p is not None else None for p in primals)
    states, rest = rest[:n_states], rest[n_states:]
    w_ih, w_hh, *biases = rest
    biases = [*biases, kwargs.get("b_ih"), kwargs.get("b_hh")][:2]
    zero = np.zeros(w_hh.shape[0])
    b_ih, b_hh = (zero if b is None else np.asarray(b, dtype=np.float64) for b in biases)
    return x, states, w_ih, w_hh, b_ih, b_hh, len(primals)


def _sig(v):
    return special.expit(v)


def _cell_forward_parts(kind: str, primals, kwargs):
    """The cell's forward in float64 with the magnitudes of the terms of each gate's
    pre-activation: A = |x| |w_ih|^T + |b_ih| and B = |h| |w_hh|^T + |b_hh| (N, G H)."""
    x, states, w_ih, w_hh, b_ih, b_hh, count = _cell_parts(kind, primals, kwargs)
    h = states[0]
    a = x @ w_ih.T + b_ih
    b = h @ w_hh.T + b_hh
    big_a = np.abs(x) @ np.abs(w_ih).T + np.abs(b_ih)
    big_b = np.abs(h) @ np.abs(w_hh).T + np.abs(b_hh)
    return x, states, w_ih, w_hh, a, b, big_a, big_b, count


def _chunks(v, hid: int, k: int):
    return [v[:, j * hid:(j + 1) * hid] for j in range(k)]


def rnn_cell_forward(primals, kwargs):
    """h' = act(a + b): the terms of the pre-activation, A + B, through act' (<= 1)."""
    *_, a, b, big_a, big_b, _ = _cell_forward_parts("rnn", primals, kwargs)
    pre = a + b
    if kwargs.get("nonlinearity", "tanh") == "tanh":
        return (1.0 - np.tanh(pre) ** 2) * (big_a + big_b)
    return (pre > 0) * (big_a + big_b)


def _lstm_gates(primals, kwargs):
    x, (h, c), w_ih, w_hh, a, b, big_a, big_b, count = _cell_forward_parts("lstm", primals, kwargs)
    hid = h.shape[1]
    pi, pf, pg, po = _chunks(a + b, hid, 4)
    ti, tf, tg, to = _chunks(big_a + big_b, hid, 4)
    i, f, g, o = _sig(pi), _sig(pf), np.tanh(pg), _sig(po)
    c_new = f * c + i * g
    # c' = f c + i g: each gate's terms through its derivative, and the two products summed
    m_c = (np.abs(c) * f * (1 - f) * tf + np.abs(g) * i * (1 - i) * ti + i * (1 - g * g) * tg
           + np.abs(f * c) + np.abs(i * g))
    return (x, h, c, w_ih, w_hh, i, f, g, o, c_new, m_c, to, count)


def lstm_cell_forward(primals, kwargs):
    """[M of h', M of c']: c' = f c + i g sums the gates' terms through their derivatives and
    the two products; h' = o tanh(c') carries c''s through tanh' and o's terms through o'."""
    *_, o, c_new, m_c, to, _ = _lstm_gates(primals, kwargs)
    tc = np.tanh(c_new)
    return [np.abs(tc) * o * (1 - o) * to + o * (1 - tc * tc) * m_c, m_c]


def _gru_gates(primals, kwargs):
    x, (h,), w_ih, w_hh, a, b, big_a, big_b, count = _cell_forward_parts("gru", primals, kwargs)
    hid = h.shape[1]
    ar, az, an = _chunks(a, hid, 3)
    tar, taz, tan = _chunks(big_a, hid, 3)
    br, bz, bn = _chunks(b, hid, 3)
    tbr, tbz, tbn = _chunks(big_b, hid, 3)
    r, z = _sig(ar + br), _sig(az + bz)
    tr, tz = tar + tbr, taz + tbz
    w_hn, b_hn = w_hh[2 * hid:], _cell_parts("gru", primals, kwargs)[5][2 * hid:]
    if kwargs.get("reset_after", True):
        pre_n = an + r * bn
        # a_n + r (h W_hn^T + b_hn): r's terms through r' times |bn|
        m_n = tan + r * tbn + np.abs(bn) * r * (1 - r) * tr
    else:
        rh = r * h
        pre_n = an + rh @ w_hn.T + b_hn
        m_n = (tan + np.abs(rh) @ np.abs(w_hn).T + np.abs(b_hn)
               + (np.abs(h) * r * (1 - r) * tr) @ np.abs(w_hn).T)
    n = np.tanh(pre_n)
    return x, h, w_ih, w_hh, r, z, n, bn, tbn, m_n, tz, count


def gru_cell_forward(primals, kwargs):
    """h' = n + z (h - n): n's pre-activation terms through tanh', z's through z', and the
    sum's own terms |n| + z (|h| + |n|)."""
    _, h, _, _, _, z, n, _, _, m_n, tz, _ = _gru_gates(primals, kwargs)
    return ((1 - z) * (1 - n * n) * m_n + np.abs(h - n) * z * (1 - z) * tz
            + np.abs(n) + z * (np.abs(h) + np.abs(n)))


def _cell_grads(x, h, w_ih, w_hh, da, db, count, states=(), dh=None, dw_hh=None):
    """[dx, dh, *states, dw_ih, dw_hh, db_ih, db_hh] in magnitude, cut to the ``count``
    primals given, from the magnitudes da and db of the cotangents of the input and hidden
    pre-activations: dx = da |w_ih|, dh = db |w_hh| (or ``dh``), dw_ih = da^T |x|, dw_hh =
    db^T |h| (or ``dw_hh``), the biases sum da and db over the batch."""
    return [da @ np.abs(w_ih), db @ np.abs(w_hh) if dh is None else dh, *states,
            da.T @ np.abs(x), db.T @ np.abs(h) if dw_hh is None else dw_hh,
            da.sum(axis=0), db.sum(axis=0)][:count]


def _cot(cot, shape) -> np.ndarray:
    return np.zeros(shape) if cot is None else _abs(cot)


def rnn_cell_vjp(primals, kwargs, cot):
    """d = g act'(pre): tanh' computed as 1 - y^2 sums terms 1 + y^2 (as tanh_vjp); then
    the matrix products and the batch sums of the cell in magnitude."""
    x, (h,), w_ih, w_hh, a, b, _, _, count = _cell_forward_parts("rnn", primals, kwargs)
    g = _cot(cot, h.shape)
    if kwargs.get("nonlinearity", "tanh") == "tanh":
        d = g * (1 + np.tanh(a + b) ** 2)
    else:
        d = g * (a + b > 0)
    return _cell_grads(x, h, w_ih, w_hh, d, d, count)


def lstm_cell_vjp(primals, kwargs, cots):
    """The oracle's backward (reference.recurrent._step_back) in magnitude, for the
    cotangents (gh, gc) of (h', c'): dc' = gc + gh o (1 - tanh(c')^2); a gate's derivative
    s (1 - s) sums s (1 + s), tanh' 1 + t^2; dc = dc' f."""
    gh_, gc_ = cots
    x, h, c, w_ih, w_hh, i, f, g, o, c_new, _, _, count = _lstm_gates(primals, kwargs)
    gh, gc = _cot(gh_, h.shape), _cot(gc_, h.shape)
    tc = np.tanh(c_new)
    dc = gc + gh * o * (1 + tc * tc)
    d = np.concatenate([dc * np.abs(g) * i * (1 + i), dc * np.abs(c) * f * (1 + f),
                        dc * i * (1 + g * g), gh * np.abs(tc) * o * (1 + o)], axis=1)
    return _cell_grads(x, h, w_ih, w_hh, d, d, count, states=(dc * f,))


def gru_cell_vjp(primals, kwargs, cot):
    """The oracle's backward in magnitude: dn = g (1 - z)(1 - n^2), dz = g (h - n) z (1 - z),
    dh = g z plus the gates' paths; reset_after: dr = dn (h W_hn^T + b_hn) r (1 - r) with the
    terms of h W_hn^T + b_hn, else d(r h) = dn W_hn, dr = d(r h) h r (1 - r)."""
    x, h, w_ih, w_hh, r, z, n, _, tbn, _, _, count = _gru_gates(primals, kwargs)
    hid = h.shape[1]
    g = _cot(cot, h.shape)
    dn = g * (1 + z) * (1 + n * n)
    dz = g * (np.abs(h) + np.abs(n)) * z * (1 + z)
    if kwargs.get("reset_after", True):
        dr = dn * tbn * r * (1 + r)
        da = np.concatenate([dr, dz, dn], axis=1)
        db = np.concatenate([dr, dz, dn * r], axis=1)
        return _cell_grads(x, h, w_ih, w_hh, da, db, count, dh=db @ np.abs(w_hh) + g * z)
    w_hn = np.abs(w_hh[2 * hid:])
    d_rh = dn @ w_hn
    dr = d_rh * np.abs(h) * r * (1 + r)
    da = np.concatenate([dr, dz, dn], axis=1)
    dh = d_rh * r + da[:, :2 * hid] @ np.abs(w_hh[:2 * hid]) + g * z
    dw_hh = np.concatenate([da[:, :2 * hid].T @ np.abs(h), dn.T @ np.abs(r * h)], axis=0)
    return _cell_grads(x, h, w_ih, w_hh, da, da, count, dh=dh, dw_hh=dw_hh)


# -- data augmentation: resamplings y = S x + f fill with S >= 0 ---------------------------------
# A backend computes each weight from a sample coordinate of magnitude up to the image's
# extent E (a rotation's centred coordinates, a resize's (o + 1/2) m / n), rounded in its
# arithmetic: the coordinate moves by about eps E, and so does every weight of its taps (a
# bilinear weight 1 - |j - s|, a triangle filter's over its support). An output therefore
# carries eps E times the sum of |x| over its taps, beyond the eps S |x| of the sum itself; its
# gradient, eps E times the sum of |g| over the outputs an input is a tap of.

def _rotate_stencil(x: np.ndarray, kwargs):
    """(index (P, 9), in bounds (P, 9)) of a bilinear rotation: the 3 x 3 pixels around each
    sample's rounded coordinates, which hold its four taps wherever rounding moves the sample
    by less than a pixel (the taps of a sample on a pixel row or column change sides); None
    for nearest, which away from ties copies a pixel or the fill, rounding nothing."""
    if kwargs.get("interpolation", "nearest") != "bilinear":
        return None
    h, w = x.shape[2:]
    c, s = A_._cos_sin(float(kwargs["angle"]))
    v, u = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    near = np.array([-1.0, 0.0, 1.0])
    rows = np.rint(s * u + c * v + (h - 1) / 2).reshape(-1, 1, 1) + near[:, None]
    cols = np.rint(c * u - s * v + (w - 1) / 2).reshape(-1, 1, 1) + near[None, :]
    rows, cols = (a.reshape(h * w, 9) for a in np.broadcast_arrays(rows, cols))
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    return (np.clip(rows, 0, h - 1) * w + np.clip(cols, 0, w - 1)).astype(np.intp), inside


def rotate_forward(primals, kwargs):
    (x,) = primals
    stencil = _rotate_stencil(x, kwargs)
    if stencil is None:
        return None
    index, inside = stencil
    n, c, h, w = x.shape
    fill = abs(float(kwargs.get("fill", 0.0)))
    ax = np.abs(x)
    taps = (ax.reshape(n, c, h * w)[..., index] * inside).sum(axis=-1).reshape(x.shape)
    # S|x| + (1 - m)|fill| (the form is linear with nonnegative weights), and the weights' error
    # on the taps and on the fill (the blend's in-bounds weight m moves as much)
    return registry.forward("rotate", (ax,), **{**kwargs, "fill": fill}) + (h + w) * (taps + fill)


def rotate_vjp(primals, kwargs, cot):
    (x,) = primals
    g = _abs(cot)
    out = registry.vjp("rotate", (np.abs(x),), g, **kwargs)[0]
    stencil = _rotate_stencil(x, kwargs)
    if stencil is None:
        return [out]
    index, inside = stencil
    n, c, h, w = x.shape
    per_tap = np.zeros((n * c, h * w))
    # every output's g added into each pixel of its stencil (index is (P, 9), output-major)
    np.add.at(per_tap, (slice(None), index.ravel()),
              np.repeat(g.reshape(n * c, h * w), index.shape[1], axis=1) * inside.ravel())
    return [out + (h + w) * per_tap.reshape(x.shape)]


def _support(a: np.ndarray) -> np.ndarray:
    """1 on the taps of a resampling matrix's rows and their neighbours (a tap at the edge of
    a filter's support, weight 0, gets a rounding's weight in a backend), else 0."""
    nz = a > 0
    wide = nz.copy()
    wide[:, 1:] |= nz[:, :-1]
    wide[:, :-1] |= nz[:, 1:]
    return wide * 1.0


def _crop_matrices(x: np.ndarray, kwargs):
    """(rows, cols, A_h, A_w, extent) of a resized_crop: the crop's slices, the resampling
    matrices and the extent E = crop and output sizes summed."""
    top, left, height, width = (kwargs[k] for k in ("top", "left", "height", "width"))
    aa, ac = bool(kwargs.get("antialias", True)), bool(kwargs.get("align_corners", False))
    a_h = A_.resize_matrix(height, kwargs["size"][0], aa, ac)
    a_w = A_.resize_matrix(width, kwargs["size"][1], aa, ac)
    return (slice(top, top + height), slice(left, left + width), a_h, a_w,
            height + width + sum(kwargs["size"]))


def resized_crop_forward(primals, kwargs):
    (x,) = primals
    rows, cols, a_h, a_w, extent = _crop_matrices(x, kwargs)
    crop = np.abs(x[:, :, rows, cols])
    return np.einsum("oh,nchw,pw->ncop", a_h, crop, a_w) \
        + extent * np.einsum("oh,nchw,pw->ncop", _support(a_h), crop, _support(a_w))


def resized_crop_vjp(primals, kwargs, cot):
    (x,) = primals
    rows, cols, a_h, a_w, extent = _crop_matrices(x, kwargs)
    g = _abs(cot)
    dx = np.zeros(x.shape)
    dx[:, :, rows, cols] = np.einsum("oh,ncop,pw->nchw", a_h, g, a_w) \
        + extent * np.einsum("oh,ncop,pw->nchw", _support(a_h), g, _support(a_w))
    return [dx]


def brightness_forward(primals, kwargs):
    """'add': x + amount cancels where x is near -amount: the terms are |x| + |amount|; the
    clamped product is one rounding of its result."""
    (x,) = primals
    if kwargs.get("mode", "multiply_clamp") != "add":
        return None
    return np.abs(x) + abs(float(kwargs["amount"]))
