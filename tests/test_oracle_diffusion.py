"""The diffusion oracle (reference/diffusion.py): every VJP against central finite differences
(tests/fd.py), the schedules' closed forms and bounds, the forward process as a rotation of
(x0, noise), the inference timesteps on cases worked by hand from diffusers' formulas, the
DDPM posterior as a product of Gaussians, DDIM's special cases (eta = 0 deterministic and
invertible, eta = 1 the DDPM step), a perfect model recovering x0 under every prediction
type, the timestep embedding by hand, the denoiser's gradients and training loop, and bad
input.

Where two float64 computations of one quantity are compared, the bound is a few eps per
rounding of the largest term, amplified by 1 / sqrt(abar_t) where x0 is recovered from x_t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import diffusion as Df
from reference import network as Net
from reference.optimizers import Optimizer, make_optimizer
from tests.fd import EPS, H_REL, assert_vjp_matches_fd, away_from, raises_for, seeded


def _ac(data, max_t: int = 20) -> np.ndarray:
    schedule = data.draw(st.sampled_from(Df.SCHEDULES), label="schedule")
    return Df.alphas_cumprod(Df.betas(schedule, data.draw(st.integers(2, max_t), label="T")))


def _t_prev(data, ac: np.ndarray, negative_prev: bool = True) -> tuple[int, int]:
    t = data.draw(st.integers(0 if negative_prev else 1, ac.size - 1), label="t")
    return t, data.draw(st.integers(-1 if negative_prev else 0, t - 1), label="prev_t")


def _shape(data) -> tuple[int, ...]:
    return data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3),
                     label="shape")


def _uniform(data, shape, label: str) -> np.ndarray:
    """Tangents and cotangents in [-1, 1] from a drawn seed."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=label)
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def _close(got, want, tol, what: str = "") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.abs(got - want)
    assert np.all(err <= tol), f"{what}: max |diff| {err.max():.3e}, tolerance {np.min(tol):.3e}"


def _coefficients(prediction_type: str, a: float) -> tuple[float, float, float, float]:
    """(A, B, C, D) with x0 = A x_t + B m and eps = C x_t + D m, solved from
    x_t = sqrt(a) x0 + sqrt(1 - a) eps and the model output m = eps, x0 or
    v = sqrt(a) eps - sqrt(1 - a) x0."""
    sa, sb = math.sqrt(a), math.sqrt(1 - a)
    if prediction_type == "epsilon":
        return 1 / sa, -sb / sa, 0.0, 1.0
    if prediction_type == "sample":
        return 0.0, 1.0, 1 / sb, -sa / sb
    return sa, -sb, sb, sa  # (x_t, v) is (x0, eps) rotated by the angle with cos = sqrt(a)


# --------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("t_count", [1, 2, 10, 1000])
@pytest.mark.parametrize("schedule", Df.SCHEDULES)
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(schedule, t_count):
    b = Df.betas(schedule, t_count)
    assert b.shape == (t_count,) and b.dtype == np.float64
    assert np.all((b > 0) & (b < 1))
    ac = Df.alphas_cumprod(b)
    assert np.all((ac > 0) & (ac <= 1)) and np.all(np.diff(ac) < 0)
    assert ac[0] == 1 - b[0]


def _cos_abar(u: float) -> float:
    return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2


def test_cosine_betas_capped_at_max_beta():
    b = Df.betas("squaredcos_cap_v2", 1000)
    assert np.all(b <= 0.999)
    # abar(1) = cos(pi / 2)^2 ~ 4e-33: the last uncapped beta would be ~1
    assert 1 - _cos_abar(1.0) / _cos_abar(0.999) > 0.999
    assert b[-1] == 0.999 and np.all(b[:-1] < 0.999)
    # uncapped, abar_t telescopes to abar((t + 1) / T) / abar(0): 1000 factors of a few eps
    ac = Df.alphas_cumprod(b)
    for t in (0, 1, 500, 900, 998):
        assert ac[t] == pytest.approx(_cos_abar((t + 1) / 1000) / _cos_abar(0.0), rel=8000 * EPS)
    low = Df.betas("squaredcos_cap_v2", 100, max_beta=0.2)
    assert low.max() == 0.2 and np.sum(low == 0.2) > 1


@given(data=st.data())
def test_linear_and_scaled_linear_closed_forms(data):
    t_count = data.draw(st.integers(2, 50), label="T")
    b0 = data.draw(st.floats(1e-5, 1e-2), label="beta_start")
    b1 = data.draw(st.floats(1e-3, 0.5), label="beta_end")
    lin = Df.betas("linear", t_count, b0, b1)
    assert lin[0] == b0 and lin[-1] == b1
    k = np.arange(t_count)
    _close(lin, b0 + k * (b1 - b0) / (t_count - 1), 4 * EPS * max(b0, b1), "linear")
    sc = Df.betas("scaled_linear", 2 * (t_count // 2) + 1, b0, b1)
    mid = ((math.sqrt(b0) + math.sqrt(b1)) / 2) ** 2
    assert sc[t_count // 2] == pytest.approx(mid, rel=8 * EPS)
    assert sc[0] == pytest.approx(b0, rel=4 * EPS) and sc[-1] == pytest.approx(b1, rel=4 * EPS)
    assert Df.betas("linear", 1, b0, b1).tolist() == [b0]


# --------------------------------------------------------------------------- forward process

def _forward_case(data, ac):
    shape = _shape(data)
    ts = data.draw(hnp.arrays(np.int64, (shape[0],), elements=st.integers(0, ac.size - 1)),
                   label="timesteps")
    return seeded(data, shape, 1.0, "x0"), seeded(data, shape, 1.0, "noise"), ts


@given(data=st.data())
def test_add_noise_and_velocity_rotate_x0_and_noise(data):
    ac = _ac(data)
    x0, noise, ts = _forward_case(data, ac)
    xt = Df.add_noise(x0, noise, ts, ac)
    v = Df.velocity(x0, noise, ts, ac)
    sa = np.sqrt(ac[ts]).reshape((-1,) + (1,) * (x0.ndim - 1))
    sb = np.sqrt(1 - ac[ts]).reshape(sa.shape)
    tol = 8 * EPS * (np.abs(x0) + np.abs(noise))
    _close(xt * xt + v * v, x0 * x0 + noise * noise, 4 * tol * (np.abs(x0) + np.abs(noise)),
           "norm")
    _close(sa * xt - sb * v, x0, tol, "x0")
    _close(sb * xt + sa * v, noise, tol, "noise")
    for pt, want in (("epsilon", noise), ("sample", x0), ("v_prediction", v)):
        got = Df.training_target(pt, x0, noise, ts, ac)
        np.testing.assert_array_equal(got, want)
        assert not np.shares_memory(got, x0) and not np.shares_memory(got, noise)


def test_add_noise_at_abar_one_returns_x0():
    ac = Df.alphas_cumprod(np.array([0.0, 0.1, 0.2]))
    assert ac[0] == 1.0
    x0, noise = np.array([[1.5, -2.0]]), np.array([[0.3, 0.7]])
    np.testing.assert_array_equal(Df.add_noise(x0, noise, np.array([0]), ac), x0)
    np.testing.assert_array_equal(Df.velocity(x0, noise, np.array([0]), ac), noise)


@pytest.mark.parametrize("name", ["add_noise", "velocity"])
@given(data=st.data())
def test_forward_vjps_match_fd(data, name):
    ac = _ac(data)
    x0, noise, ts = _forward_case(data, ac)
    f = getattr(Df, name)
    g = _uniform(data, x0.shape, "cotangent")
    grads = getattr(Df, f"{name}_vjp")(x0, noise, ts, ac, g)
    tangents = [_uniform(data, x0.shape, "t0"), _uniform(data, x0.shape, "t1")]
    assert_vjp_matches_fd(lambda a, b: f(a, b, ts, ac), [x0, noise], tangents, g, list(grads))


# --------------------------------------------------------------------------- timesteps

# worked by hand from diffusers' set_timesteps (scheduling_ddpm.py 322-340): 'leading'
# arange(n) * (T // n) reversed, + steps_offset; 'trailing' round(arange(T, 0, -T / n)) - 1;
# 'linspace' round(linspace(0, T - 1, n)) reversed; np.round is half to even
TIMESTEPS = [
    (10, 3, "leading", 0, [6, 3, 0]),
    (10, 3, "leading", 1, [7, 4, 1]),
    (10, 3, "trailing", 0, [9, 6, 2]),     # 10, 6.67, 3.33 -> 10, 7, 3
    (10, 3, "linspace", 0, [9, 4, 0]),     # 0, 4.5, 9: 4.5 rounds to 4
    (10, 4, "leading", 0, [6, 4, 2, 0]),
    (10, 4, "trailing", 0, [9, 7, 4, 1]),  # 10, 7.5, 5, 2.5 -> 10, 8, 5, 2
    (10, 4, "linspace", 0, [9, 6, 3, 0]),
    (17, 7, "trailing", 0, [16, 14, 11, 9, 6, 4, 1]),  # diffusers appends a -1
    (5, 5, "linspace", 0, [4, 3, 2, 1, 0]),
    (1000, 1, "leading", 0, [0]),
    (1000, 1, "trailing", 0, [999]),
    (1000, 1, "linspace", 0, [0]),
    (1000, 4, "leading", 1, [751, 501, 251, 1]),
]


@pytest.mark.parametrize(("t_count", "n", "spacing", "offset", "want"), TIMESTEPS)
def test_timesteps_by_hand(t_count, n, spacing, offset, want):
    got = Df.timesteps(t_count, n, spacing, offset)
    assert got.dtype == np.int64 and got.tolist() == want


def test_timesteps_round_a_float_half_as_diffusers():
    # 715 - 3 (715 / 30) = 643.5 exactly, but np.arange's float64 value is 643.4999...:
    # diffusers 0.42.1 returns 642 at index 3, not round-half-even(643.5) - 1 = 643
    assert Df.timesteps(715, 30, "trailing")[3] == 642


@given(data=st.data())
def test_timesteps_descend_inside_the_range(data):
    t_count = data.draw(st.integers(1, 1000), label="T")
    n = data.draw(st.integers(1, t_count), label="n")
    got = Df.timesteps(t_count, n, data.draw(st.sampled_from(Df.SPACINGS), label="spacing"))
    assert got.shape == (n,) and np.all(np.diff(got) < 0)
    assert got.min() >= 0 and got.max() < t_count


def test_previous_timesteps_of_ddim_and_ddpm_differ():
    # DDIM: t - 10 // 3; DDPM: the next entry of the schedule
    assert [Df.previous_timestep(t, 10, 3) for t in (9, 6, 4, 2, 0)] == [6, 3, 1, -1, -1]
    schedule = Df.timesteps(10, 3, "linspace")
    assert [Df.ddpm_previous_timestep(t, schedule) for t in (9, 4, 0)] == [4, 0, -1]
    assert [Df.ddpm_previous_timestep(t, np.arange(5)[::-1]) for t in (4, 1, 0)] == [3, 0, -1]
    assert Df.ddpm_previous_timestep(4, np.array([9, 4, 0], dtype=np.uint8)) == 0


# --------------------------------------------------------------------------- DDPM

@given(data=st.data())
def test_posterior_is_the_product_of_the_two_gaussians(data):
    ac = _ac(data)
    t, prev = _t_prev(data, ac, negative_prev=False)
    shape = _shape(data)
    x0, xt = seeded(data, shape, 1.0, "x0"), seeded(data, shape, 1.0, "x_t")
    # q(x_prev | x_t, x0) is proportional to N(x_t; sqrt(alpha) x_prev, beta)
    # N(x_prev; sqrt(abar_prev) x0, 1 - abar_prev): add the precisions and the weighted means
    a, ap = ac[t], ac[prev]
    alpha = a / ap
    beta = 1 - alpha
    precision = alpha / beta + 1 / (1 - ap)
    mean = (math.sqrt(alpha) / beta * xt + math.sqrt(ap) / (1 - ap) * x0) / precision
    # the two forms agree through 1 - abar_t = beta + alpha (1 - abar_prev), which the rounded
    # differences (small beside 1 for small betas) satisfy only to this relative error
    slip = abs((1 - a) - (beta + alpha * (1 - ap))) / (1 - a)
    rel = 32 * EPS + 4 * slip
    _close(Df.posterior_mean(x0, xt, t, prev, ac), mean, rel * (np.abs(x0) + np.abs(xt)), "mean")
    var = Df.ddpm_variance(t, prev, ac, "fixed_small")
    assert var == pytest.approx(1 / precision, rel=rel)
    assert Df.ddpm_variance(t, prev, ac, "fixed_large") == pytest.approx(beta, rel=8 * EPS)


@given(data=st.data())
def test_posterior_before_the_first_step_is_x0(data):
    ac = _ac(data)
    t = data.draw(st.integers(0, ac.size - 1), label="t")
    x0, xt = seeded(data, (2, 3), 1.0, "x0"), seeded(data, (2, 3), 1.0, "x_t")
    np.testing.assert_array_equal(Df.posterior_mean(x0, xt, t, -1, ac), x0)
    # beta-tilde is 0 there: diffusers' clamp, or 0 without it; fixed_large is 1 - abar_t
    assert Df.ddpm_variance(t, -1, ac) == 1e-20
    assert Df.ddpm_variance(t, -1, ac, min_variance=0.0) == 0.0
    assert Df.ddpm_variance(t, -1, ac, "fixed_large") == pytest.approx(1 - ac[t], rel=4 * EPS)


@pytest.mark.parametrize("schedule", Df.SCHEDULES)
def test_fixed_large_is_beta_for_consecutive_steps(schedule):
    b = Df.betas(schedule, 50)
    ac = Df.alphas_cumprod(b)
    got = [Df.ddpm_variance(t, t - 1, ac, "fixed_large") for t in range(1, 50)]
    _close(got, b[1:], 4 * EPS, "fixed_large")


def _perfect(prediction_type, x0, noise, ts, ac):
    """The model output of a model that is exactly right."""
    return Df.training_target(prediction_type, x0, noise, ts, ac)


@pytest.mark.parametrize("prediction_type", Df.PREDICTION_TYPES)
@given(data=st.data())
def test_ddpm_step_with_a_perfect_model(data, prediction_type):
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    shape = _shape(data)
    x0, eps, z = (seeded(data, shape, 1.0, k) for k in ("x0", "noise", "z"))
    ts = np.full(shape[0], t)
    xt = Df.add_noise(x0, eps, ts, ac)
    m = _perfect(prediction_type, x0, eps, ts, ac)
    vt = data.draw(st.sampled_from(Df.VARIANCE_TYPES), label="variance_type")
    prev_sample, pred_x0 = Df.ddpm_step(m, t, xt, z, ac, prev_t=prev,
                                        prediction_type=prediction_type, variance_type=vt,
                                        clip_sample=False)
    tol = 16 * EPS * (np.abs(x0) + np.abs(eps)) / math.sqrt(ac[t])
    _close(pred_x0, x0, tol, "pred_original_sample")
    noise_term = math.sqrt(Df.ddpm_variance(t, prev, ac, vt)) * z if t > 0 else 0.0
    want = Df.posterior_mean(x0, xt, t, prev, ac) + noise_term
    _close(prev_sample, want, 2 * tol + 8 * EPS * np.abs(z), "prev_sample")


@given(data=st.data())
def test_ddpm_step_at_t0_adds_no_noise_and_clips(data):
    ac = _ac(data)
    shape = _shape(data)
    m, x = seeded(data, shape, 2.0, "model_output"), seeded(data, shape, 2.0, "sample")
    r = data.draw(st.sampled_from([0.5, 1.0, 2.5]), label="clip_sample_range")
    kw = dict(prev_t=-1, clip_sample_range=r)
    quiet = Df.ddpm_step(m, 0, x, None, ac, **kw)
    noisy = Df.ddpm_step(m, 0, x, seeded(data, shape, 1.0, "z"), ac, **kw)
    for a, b in zip(quiet, noisy, strict=True):
        np.testing.assert_array_equal(a, b)
    unclipped = Df.ddpm_step(m, 0, x, None, ac, prev_t=-1, clip_sample=False)[1]
    np.testing.assert_array_equal(quiet[1], np.clip(unclipped, -r, r))


def _clip_safe_step(data, ac, t, prediction_type, r):
    """(model_output, sample) whose x0_hat stays 5% of r away from +-r."""
    shape = _shape(data)
    x = seeded(data, shape, 1.0, "sample")
    x0 = away_from(seeded(data, shape, r, "x0_hat"), [-r, r], 0.05 * r)
    ca, cb, _, _ = _coefficients(prediction_type, ac[t])
    m = (x0 - ca * x) / cb
    # a central difference moves x0_hat by at most 2 h (|A| + |B|)
    h = H_REL * max(1.0, np.abs(m).max(), np.abs(x).max())
    assume(np.min(np.abs(np.abs(x0) - r)) > 4 * h * (abs(ca) + abs(cb)))
    return m, x


def _step_magnitude(g, m, x, noise, prediction_type, a, extra: float = 0.0) -> float:
    """The terms a step adds up, every coefficient at most 1 (c0, ct, sqrt(abar_prev), the
    direction's) but x0_hat's and eps_hat's, weighted by |g|."""
    ca, cb, cc, cd = _coefficients(prediction_type, a)
    terms = (abs(ca) + abs(cc) + 1 + extra) * np.abs(x) + (abs(cb) + abs(cd)) * np.abs(m)
    return float(np.sum(np.abs(g) * (terms + np.abs(noise))))


@pytest.mark.parametrize("prediction_type", Df.PREDICTION_TYPES)
@given(data=st.data())
def test_ddpm_step_vjp_matches_fd(data, prediction_type):
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    clip = data.draw(st.booleans(), label="clip_sample")
    r = data.draw(st.sampled_from([1.0, 2.5]), label="clip_sample_range")
    m, x = _clip_safe_step(data, ac, t, prediction_type, r)
    z = seeded(data, x.shape, 1.0, "noise")
    vt = data.draw(st.sampled_from(Df.VARIANCE_TYPES), label="variance_type")
    kw = dict(prev_t=prev, prediction_type=prediction_type, clip_sample=clip,
              clip_sample_range=r)
    g = _uniform(data, x.shape, "cotangent")
    grads = Df.ddpm_step_vjp(m, t, x, ac, g, **kw)
    tangents = [_uniform(data, x.shape, "t0"), _uniform(data, x.shape, "t1")]
    assert_vjp_matches_fd(lambda a, b: Df.ddpm_step(a, t, b, z, ac, variance_type=vt, **kw)[0],
                          [m, x], tangents, g, list(grads),
                          _step_magnitude(g, m, x, z, prediction_type, ac[t]))


# --------------------------------------------------------------------------- DDIM

@given(data=st.data())
def test_ddim_eta0_ignores_the_noise(data):
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    shape = _shape(data)
    m, x = seeded(data, shape, 1.0, "model_output"), seeded(data, shape, 1.0, "sample")
    pt = data.draw(st.sampled_from(Df.PREDICTION_TYPES), label="prediction_type")
    kw = dict(prev_t=prev, prediction_type=pt)
    quiet = Df.ddim_step(m, t, x, None, ac, **kw)
    noisy = Df.ddim_step(m, t, x, seeded(data, shape, 1.0, "z"), ac, **kw)
    for a, b in zip(quiet, noisy, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("prediction_type", Df.PREDICTION_TYPES)
@given(data=st.data())
def test_ddim_eta0_with_a_perfect_model_stays_on_the_noise(data, prediction_type):
    """x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps: the same x0 and eps one level
    down (x0 where prev_t < 0 and abar_prev = 1; at abar_0 without set_alpha_to_one)."""
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    one = data.draw(st.booleans(), label="set_alpha_to_one")
    shape = _shape(data)
    x0, eps = seeded(data, shape, 1.0, "x0"), seeded(data, shape, 1.0, "noise")
    ts = np.full(shape[0], t)
    xt = Df.add_noise(x0, eps, ts, ac)
    m = _perfect(prediction_type, x0, eps, ts, ac)
    got, _ = Df.ddim_step(m, t, xt, None, ac, prev_t=prev, prediction_type=prediction_type,
                          clip_sample=False, set_alpha_to_one=one)
    if prev < 0 and one:
        want = x0
    else:
        want = Df.add_noise(x0, eps, np.full(shape[0], max(prev, 0)), ac)
    tol = 32 * EPS * (np.abs(x0) + np.abs(eps)) / math.sqrt(ac[t] * (1 - ac[t]))
    _close(got, want, tol, "prev_sample")


@given(data=st.data())
def test_ddim_inverse_step_recovers_x_t(data):
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    one = data.draw(st.booleans(), label="set_alpha_to_one")
    shape = _shape(data)
    m, x = seeded(data, shape, 1.0, "model_output"), seeded(data, shape, 1.0, "sample")
    xp, _ = Df.ddim_step(m, t, x, None, ac, prev_t=prev, clip_sample=False,
                         set_alpha_to_one=one)
    back = Df.ddim_inverse_step(m, prev, xp, ac, t=t, set_alpha_to_one=one)
    # each way rounds a few terms of at most |x|, |m| and |x_prev|; the way back scales the
    # first way's error by sqrt(abar_t / abar_prev) <= 1
    _close(back, x, 16 * EPS * (np.abs(x) + np.abs(m) + np.abs(xp)), "x_t")


@given(data=st.data())
def test_ddim_eta1_is_the_ddpm_step(data):
    """sigma^2 at eta = 1 is DDPM's beta-tilde, and with eps_hat = eps the DDIM mean is the
    posterior mean: the two steps agree for the same noise (no clamp, no clipping)."""
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    shape = _shape(data)
    m, x, z = (seeded(data, shape, 1.0, k) for k in ("model_output", "sample", "noise"))
    kw = dict(prev_t=prev, clip_sample=False)
    ddim, ddim_x0 = Df.ddim_step(m, t, x, z, ac, eta=1.0, **kw)
    ddim0, _ = Df.ddim_step(m, t, x, np.zeros(shape), ac, eta=1.0, **kw)
    sigma = (ddim - ddim0) / z
    var = Df.ddpm_variance(t, prev, ac, "fixed_small", min_variance=0.0)
    scale = (np.abs(x) + np.abs(m)) / math.sqrt(ac[t]) + np.abs(z)
    _close(sigma * sigma, np.full(shape, var), 32 * EPS * scale / np.abs(z) + 8 * EPS * var,
           "sigma^2")
    ddpm, ddpm_x0 = Df.ddpm_step(m, t, x, z, ac, min_variance=0.0, **kw)
    np.testing.assert_array_equal(ddim_x0, ddpm_x0)
    # as for the posterior: the means agree through 1 - abar_t = beta + alpha (1 - abar_prev)
    a, ap = ac[t], (ac[prev] if prev >= 0 else 1.0)
    alpha = a / ap
    slip = abs((1 - a) - ((1 - alpha) + alpha * (1 - ap))) / (1 - a)
    _close(ddim, ddpm, (32 * EPS + 8 * slip) * scale, "prev_sample")


@given(data=st.data())
def test_ddim_clipped_model_output_is_the_noise_of_the_clipped_x0(data):
    """use_clipped_model_output: the step is the unclipped step of the model output that
    would have predicted the clipped x0_hat (eps = (x_t - sqrt(abar_t) x0c) / sqrt(1 - abar_t))."""
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    shape = _shape(data)
    m, x = seeded(data, shape, 2.0, "model_output"), seeded(data, shape, 1.0, "sample")
    eta = data.draw(st.sampled_from([0.0, 0.5, 1.0]), label="eta")
    z = seeded(data, shape, 1.0, "noise")
    got, x0c = Df.ddim_step(m, t, x, z, ac, prev_t=prev, eta=eta,
                            use_clipped_model_output=True)
    eps = (x - math.sqrt(ac[t]) * x0c) / math.sqrt(1 - ac[t])
    want, x0 = Df.ddim_step(eps, t, x, z, ac, prev_t=prev, eta=eta, clip_sample=False)
    tol = 32 * EPS * (np.abs(x) + np.abs(x0c) + np.abs(z)) / math.sqrt(ac[t] * (1 - ac[t]))
    _close(x0, x0c, tol, "x0_hat")
    _close(got, want, tol, "prev_sample")


@pytest.mark.parametrize("prediction_type", Df.PREDICTION_TYPES)
@given(data=st.data())
def test_ddim_step_vjp_matches_fd(data, prediction_type):
    ac = _ac(data)
    t, prev = _t_prev(data, ac)
    clip = data.draw(st.booleans(), label="clip_sample")
    r = data.draw(st.sampled_from([1.0, 2.5]), label="clip_sample_range")
    m, x = _clip_safe_step(data, ac, t, prediction_type, r)
    z = seeded(data, x.shape, 1.0, "noise")
    ucm = data.draw(st.booleans(), label="use_clipped_model_output")
    kw = dict(prev_t=prev, eta=data.draw(st.sampled_from([0.0, 0.4, 1.0]), label="eta"),
              prediction_type=prediction_type, clip_sample=clip, clip_sample_range=r,
              set_alpha_to_one=data.draw(st.booleans(), label="set_alpha_to_one"),
              use_clipped_model_output=ucm)
    g = _uniform(data, x.shape, "cotangent")
    grads = Df.ddim_step_vjp(m, t, x, ac, g, **kw)
    tangents = [_uniform(data, x.shape, "t0"), _uniform(data, x.shape, "t1")]
    # the clipped eps_hat adds (|x_t| + |x0c|) (1 + sqrt(abar_t)) / sqrt(1 - abar_t)
    extra = (1 + abs(_coefficients(prediction_type, ac[t])[0])) / math.sqrt(1 - ac[t]) * 2
    assert_vjp_matches_fd(lambda a, b: Df.ddim_step(a, t, b, z, ac, **kw)[0],
                          [m, x], tangents, g, list(grads),
                          _step_magnitude(g, m, x, z, prediction_type, ac[t],
                                          extra if ucm else 0.0))


# --------------------------------------------------------------------------- embedding

def test_timestep_embedding_by_hand():
    t = np.array([0.0, 1.0, 2.5])
    p = 10000.0
    # dim 4, shift 1: h = 2, frequencies exp(-ln p i / 1) = 1, 1 / p
    want = np.stack([np.sin(t), np.sin(t / p), np.cos(t), np.cos(t / p)], axis=1)
    _close(Df.timestep_embedding(t, 4), want, 2 * EPS, "sin, cos")
    _close(Df.timestep_embedding(t, 4, flip_sin_to_cos=True), want[:, [2, 3, 0, 1]], 2 * EPS,
           "cos, sin")
    odd = Df.timestep_embedding(t, 5)
    _close(odd[:, :4], want, 2 * EPS, "odd")
    np.testing.assert_array_equal(odd[:, 4], 0.0)
    np.testing.assert_array_equal(Df.timestep_embedding(t, 1), np.zeros((3, 1)))
    # dim 6, shift 0, max_period 64, scale 2: frequencies 64^(-i / 3) = 1, 1/4, 1/16
    f = np.array([1.0, 0.25, 0.0625])
    a = 2 * t[:, None] * f
    got = Df.timestep_embedding(t, 6, downscale_freq_shift=0.0, scale=2.0, max_period=64)
    _close(got, np.concatenate([np.sin(a), np.cos(a)], axis=1), 8 * EPS, "shift 0")


# --------------------------------------------------------------------------- the denoiser

def _model(data) -> Df.Denoiser:
    hidden = tuple(data.draw(st.lists(st.integers(1, 4), max_size=2), label="hidden"))
    return Df.Denoiser(dim=data.draw(st.integers(1, 3), label="dim"),
                       embed=data.draw(st.integers(1, 4), label="embed"), hidden=hidden,
                       prediction_type=data.draw(st.sampled_from(Df.PREDICTION_TYPES),
                                                 label="prediction_type"))


def _denoiser_batch(data, model, ac, label: str = ""):
    n = data.draw(st.integers(1, 4), label=f"N{label}")
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, ac.size - 1)),
                  label=f"t{label}")
    return (seeded(data, (n, model.dim), 1.0, f"x0{label}"),
            seeded(data, (n, model.dim), 1.0, f"noise{label}"), t)


def _mlp_magnitude(params, x, target) -> float:
    """The MLP's rounding scale: layer terms |h| |w| + |b| carried through |w| (SiLU is at most
    1.1-Lipschitz and adds a few ulps of |h|), weighted by |dL/dy| = 2 |y - t| / (N O), plus
    the loss's own (y - t)^2 / (N O)."""
    silu = Net.ACTIVATIONS["silu"][0]
    h, err = x, np.zeros_like(x)
    for i in range(0, len(params), 2):
        w, b = params[i], params[i + 1]
        z = h @ w + b
        err = np.abs(h) @ np.abs(w) + np.abs(b) + err @ np.abs(w)
        h = silu(z) if i + 2 < len(params) else z
        if i + 2 < len(params):
            err = 1.1 * err + np.abs(h)
    d = np.abs(h - target)
    return float(np.sum(2 * d * err + d * d) / h.size)


@given(data=st.data())
def test_denoiser_gradients_match_fd(data):
    model = _model(data)
    ac = _ac(data)
    x0, noise, t = _denoiser_batch(data, model, ac)
    params = Df.init_params(model, data.draw(st.integers(0, 2**16), label="seed"))
    value, grads = Df.loss_and_grads(model, params, x0, noise, t, ac)
    xt = Df.add_noise(x0, noise, t, ac)
    target = Df.training_target(model.prediction_type, x0, noise, t, ac)
    y = Df.predict(model, params, xt, t)
    assert value == pytest.approx(float(np.mean((y - target) ** 2)), rel=1e-14, abs=1e-300)
    tangents = [seeded(data, p.shape, 1.0, f"t{j}") / math.sqrt(p.size)
                for j, p in enumerate(params)]

    def f(*ps):
        return np.asarray(Df.loss_and_grads(model, list(ps), x0, noise, t, ac)[0])

    inp = Df.denoiser_input(model, xt, t)
    assert_vjp_matches_fd(f, params, tangents, np.asarray(1.0), grads,
                          _mlp_magnitude(params, inp, target))


def test_denoiser_architecture_and_input():
    model = Df.Denoiser(dim=3, embed=4, hidden=(5, 2))
    arch = model.architecture()
    assert arch == Net.mlp((7, 5, 2, 3), activation="silu", loss="mse")
    for a, b in zip(Df.init_params(model, 3), arch.init(3)[0], strict=True):
        np.testing.assert_array_equal(a, b)
    xt, t = np.arange(6.0).reshape(2, 3), np.array([0, 7])
    inp = Df.denoiser_input(model, xt, t)
    np.testing.assert_array_equal(inp[:, :3], xt)
    # the UNets' convention: cos first, frequencies 10000^(-i / 2), i < 2
    f = np.array([1.0, 0.01])
    want = np.concatenate([np.cos(t[:, None] * f), np.sin(t[:, None] * f)], axis=1)
    _close(inp[:, 3:], want, 4 * EPS, "embedding")


@given(data=st.data())
def test_train_steps_the_optimizer_once_per_batch(data):
    model = _model(data)
    ac = _ac(data)
    batches = [_denoiser_batch(data, model, ac, str(j)) for j in range(2)]
    params = Df.init_params(model, 0)
    frozen = Optimizer(lambda p: None, lambda g, s, p: (list(p), s))  # lr = 0 (sgd needs > 0)
    same, history = Df.train(model, params, frozen, batches, ac)
    for a, b in zip(same, params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert history == [Df.loss_and_grads(model, params, *b, ac)[0] for b in batches]
    lr = 0.1
    stepped, history = Df.train(model, params, make_optimizer("sgd", lr=lr), batches[:1], ac)
    value, grads = Df.loss_and_grads(model, params, *batches[0], ac)
    assert history == [value]
    for a, p, g in zip(stepped, params, grads, strict=True):
        np.testing.assert_array_equal(a, p - lr * g)
    _, history = Df.train(model, params, make_optimizer("adam", lr=1e-3), batches, ac)
    assert len(history) == 2 and all(math.isfinite(v) for v in history)


# --------------------------------------------------------------------------- bad input

AC = Df.alphas_cumprod(Df.betas("linear", 10))
X = np.ones((2, 3))
T2 = np.array([1, 2])
MODEL = Df.Denoiser(dim=3, embed=4, hidden=(2,))
BAD = [
    ("schedule", lambda: Df.betas("cosine")),
    ("num_train_timesteps", lambda: Df.betas("linear", 0)),
    ("num_train_timesteps", lambda: Df.betas("linear", 10.0)),
    ("beta_start", lambda: Df.betas("linear", beta_start=1.0)),
    ("beta_end", lambda: Df.betas("linear", beta_end=-0.1)),
    ("max_beta", lambda: Df.betas("squaredcos_cap_v2", max_beta=0.0)),
    ("max_beta", lambda: Df.betas("squaredcos_cap_v2", max_beta=1.0)),
    ("betas", lambda: Df.alphas_cumprod(np.array([0.1, 1.0]))),
    ("betas", lambda: Df.alphas_cumprod(np.ones((2, 2)) * 0.1)),
    ("betas", lambda: Df.alphas_cumprod(np.array([]))),
    ("alphas_cumprod", lambda: Df.add_noise(X, X, T2, Df.betas("linear", 10))),
    ("alphas_cumprod", lambda: Df.add_noise(X, X, T2, np.array([0.9, 0.9]))),
    ("alphas_cumprod", lambda: Df.add_noise(X, X, T2, AC[None])),
    ("noise", lambda: Df.add_noise(X, np.ones((2, 2)), T2, AC)),
    ("x0", lambda: Df.add_noise(1.0, 1.0, T2, AC)),
    ("x0", lambda: Df.velocity(np.full((2, 3), np.nan), X, T2, AC)),
    ("timesteps", lambda: Df.add_noise(X, X, np.array([1.0, 2.0]), AC)),
    ("timesteps", lambda: Df.add_noise(X, X, np.array([1, 10]), AC)),
    ("timesteps", lambda: Df.add_noise(X, X, np.array([-1, 0]), AC)),
    ("timesteps", lambda: Df.velocity(X, X, np.array([1]), AC)),
    ("g", lambda: Df.add_noise_vjp(X, X, T2, AC, np.ones(3))),
    ("g", lambda: Df.velocity_vjp(X, X, T2, AC, np.ones((3, 2)))),
    ("prediction_type", lambda: Df.training_target("eps", X, X, T2, AC)),
    ("spacing", lambda: Df.timesteps(10, 3, "uniform")),
    ("num_inference_steps", lambda: Df.timesteps(10, 11)),
    ("num_inference_steps", lambda: Df.timesteps(10, 0)),
    ("num_train_timesteps", lambda: Df.timesteps(0, 1)),
    ("steps_offset", lambda: Df.timesteps(10, 3, "leading", -1)),
    ("steps_offset", lambda: Df.timesteps(10, 10, "leading", 1)),
    ("t", lambda: Df.previous_timestep(10, 10, 3)),
    ("num_inference_steps", lambda: Df.previous_timestep(5, 10, 11)),
    ("t", lambda: Df.ddpm_previous_timestep(5, np.array([9, 6, 2]))),
    ("schedule", lambda: Df.ddpm_previous_timestep(2, np.array([2, 6, 9]))),
    ("schedule", lambda: Df.ddpm_previous_timestep(2, np.array([9.0, 2.0]))),
    ("variance_type", lambda: Df.ddpm_variance(5, 4, AC, "learned")),
    ("min_variance", lambda: Df.ddpm_variance(5, 4, AC, min_variance=-1.0)),
    ("prev_t", lambda: Df.ddpm_variance(5, 5, AC)),
    ("prev_t", lambda: Df.posterior_mean_coefficients(5, 4.0, AC)),
    ("t", lambda: Df.posterior_mean_coefficients(10, 4, AC)),
    ("x_t", lambda: Df.posterior_mean(X, np.ones(3), 5, 4, AC)),
    ("t", lambda: Df.ddpm_step(X, -1, X, X, AC, prev_t=-2)),
    ("t", lambda: Df.ddpm_step(X, True, X, X, AC, prev_t=0)),
    ("t", lambda: Df.ddpm_step(X, 0, X, X, Df.alphas_cumprod(np.array([0.0, 0.1])), prev_t=-1)),
    ("prev_t", lambda: Df.ddpm_step(X, 3, X, X, AC, prev_t=4)),
    ("sample", lambda: Df.ddpm_step(X, 3, np.ones((3, 2)), X, AC, prev_t=2)),
    ("noise", lambda: Df.ddpm_step(X, 3, X, None, AC, prev_t=2)),
    ("noise", lambda: Df.ddpm_step(X, 3, X, np.ones(3), AC, prev_t=2)),
    ("model_output", lambda: Df.ddpm_step(1.0, 3, 1.0, 1.0, AC, prev_t=2)),
    ("clip_sample", lambda: Df.ddpm_step(X, 3, X, X, AC, prev_t=2, clip_sample="yes")),
    ("clip_sample_range", lambda: Df.ddpm_step(X, 3, X, X, AC, prev_t=2, clip_sample_range=0)),
    ("prediction_type", lambda: Df.ddpm_step(X, 3, X, X, AC, prev_t=2, prediction_type="v")),
    ("variance_type", lambda: Df.ddpm_step(X, 3, X, X, AC, prev_t=2, variance_type="learned")),
    ("g", lambda: Df.ddpm_step_vjp(X, 3, X, AC, np.ones((2, 2)), prev_t=2)),
    ("eta", lambda: Df.ddim_step(X, 3, X, X, AC, prev_t=2, eta=1.5)),
    ("eta", lambda: Df.ddim_step(X, 3, X, X, AC, prev_t=2, eta=-0.1)),
    ("noise", lambda: Df.ddim_step(X, 3, X, None, AC, prev_t=2, eta=0.5)),
    ("set_alpha_to_one", lambda: Df.ddim_step(X, 3, X, X, AC, prev_t=2, set_alpha_to_one=1)),
    ("prediction_type", lambda: Df.ddim_step(X, 3, X, X, AC, prev_t=2, prediction_type="x0")),
    ("use_clipped_model_output",
     lambda: Df.ddim_step(X, 3, X, X, AC, prev_t=2, use_clipped_model_output=0)),
    ("clip_sample", lambda: Df.ddim_step_vjp(X, 3, X, AC, X, prev_t=2, clip_sample=1)),
    ("g", lambda: Df.ddim_step_vjp(X, 3, X, AC, np.ones(3), prev_t=2)),
    ("prev_sample", lambda: Df.ddim_inverse_step(X, 2, np.ones(3), AC, t=3)),
    ("prev_t", lambda: Df.ddim_inverse_step(X, 3, X, AC, t=3)),
    ("timesteps", lambda: Df.timestep_embedding(np.ones((2, 1)), 4)),
    ("dim", lambda: Df.timestep_embedding(np.ones(2), 0)),
    ("downscale_freq_shift", lambda: Df.timestep_embedding(np.ones(2), 2)),
    ("downscale_freq_shift", lambda: Df.timestep_embedding(np.ones(2), 3)),
    ("max_period", lambda: Df.timestep_embedding(np.ones(2), 4, max_period=0)),
    ("flip_sin_to_cos", lambda: Df.timestep_embedding(np.ones(2), 4, flip_sin_to_cos=None)),
    ("dim", lambda: Df.Denoiser(dim=0, embed=4, hidden=())),
    ("embed", lambda: Df.Denoiser(dim=2, embed=0, hidden=())),
    ("hidden", lambda: Df.Denoiser(dim=2, embed=4, hidden=[3])),
    ("hidden", lambda: Df.Denoiser(dim=2, embed=4, hidden=(3, 0))),
    ("prediction_type", lambda: Df.Denoiser(dim=2, embed=4, hidden=(), prediction_type="x")),
    ("downscale_freq_shift", lambda: Df.Denoiser(2, 2, (), downscale_freq_shift=1.0)),
    ("x_t", lambda: Df.denoiser_input(MODEL, np.ones((2, 2)), T2)),
    ("t", lambda: Df.denoiser_input(MODEL, X, np.array([1.0, 2.0]))),
    ("params", lambda: Df.loss_and_grads(MODEL, [], X, X, T2, AC)),
    ("batches", lambda: Df.train(MODEL, Df.init_params(MODEL), make_optimizer("sgd", lr=0.1),
                                 [], AC)),
    ("batches", lambda: Df.train(MODEL, Df.init_params(MODEL),
                                    make_optimizer("sgd", lr=0.1), [(X, X)], AC)),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_diffusion_rejects(arg, call):
    with raises_for(arg):
        call()
