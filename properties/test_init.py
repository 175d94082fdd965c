"""Weight initialisation (reference/init.py) drawn by each backend's own initialisers
(backends/practice.py): the samples follow the distribution the oracle says the scheme draws
from, for the backend's weight layout, and the seed decides them.

For a drawn scheme the backend has, a weight (dense or conv, fans from 1 to 512, fan_in equal
to fan_out or differing by a factor 2 or more) and the scheme's options, the backend draws
MIN_SAMPLES values or more: calls with the consecutive seeds s, s + 1, ... when one weight is
smaller (each call's draws are independent of the others'). Two statistical checks per
example (properties/stats.py, level ALPHA each): a Kolmogorov-Smirnov test of the samples
against the oracle's CDF, and a test of their second central moment about the oracle's mean
(below). Deterministic checks: the support's bounds hold up to the dtype's rounding of the
bound, the same seed gives identical samples, and the next seed different ones.

Power (the planted bugs, tests/planted_practice.py), at n = MIN_SAMPLES = 8192 and ALPHA =
1e-7, where the KS statistic must exceed sqrt(ln(2 / ALPHA) / (2 n)) = 0.032 to fail:
- He / Kaiming with fan_out where fan_in is claimed, on fans differing by a factor r >= 2
  (the 'fans' classes): the std is off by sqrt(r) >= sqrt(2), KS distance 0.083 (normal)
  or 0.146 (uniform) and p < 1e-48.
- Xavier uniform with bound sqrt(3 / (fan_in + fan_out)): the bound is sqrt(2) too small, KS
  distance 1/2 (1 - 1/sqrt 2) = 0.146, p < 1e-150.
- A truncated normal not rescaled where rescaled is claimed: KS distance only 0.0325 (about
  even odds), but the variance is 0.774 times the claimed one: the moment test's z is 17.5
  (the truncated normal's excess kurtosis -0.634: sd of the mean of squares sqrt(2.37 / n)).
- torch's default Linear init with a = 0: bound sqrt(6 / fan_in), sqrt(6) too wide: KS
  distance 0.296, and the support bound fails as well.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as S

from backends.practice import call_init, init_shape, layout_of
from properties import stats
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.strategies import conventions
from properties.tolerance import assert_within, tolerance
from reference import init as I

pytestmark = [pytest.mark.dtypes("float32", "float64")]
#: samples per example, at least (the power above is computed at this n)
MIN_SAMPLES = 8192
#: a weight has at least MIN_SAMPLES / 16 elements, so an example makes 16 calls or fewer
MIN_WEIGHT = MIN_SAMPLES // 16
#: a bias (torch_default_bias) has at least 32 elements: 256 calls or fewer
MIN_BIAS = 32
MAX_FAN = 512
WEIGHTS = ("dense", "conv")
#: fan_in == fan_out, or one of them at least twice the other
FANS = ("equal", "fan_in larger", "fan_out larger")
GAINS = (1.0, math.sqrt(2.0), 5.0 / 3, 0.5, 3.0)


def _kernel(data, max_field: int) -> tuple[int, ...]:
    """A conv kernel of 1 to 3 spatial axes whose receptive field is at most max_field."""
    k: list[int] = []
    for _ in range(data.draw(st.integers(1, 3), label="spatial axes")):
        left = max_field // math.prod(k)
        k.append(data.draw(st.integers(1, min(3, left)), label="kernel side"))
    return tuple(k)


def _channels(data, fans: str, field: int, min_size: int, min_out: int) -> tuple[int, int]:
    """(in, out) channels with in * field and out * field at most MAX_FAN, of the ``fans``
    class, in * out * field >= min_size and out >= min_out."""
    cap = MAX_FAN // field
    if fans == "equal":
        c = data.draw(st.integers(max(min_out, math.ceil(math.sqrt(min_size / field))), cap),
                      label="channels")
        return c, c
    # the smaller side, large enough that the larger one can reach min_size within cap
    low = max(1, math.ceil(min_size / (field * cap)))
    if fans == "fan_in larger":
        small = data.draw(st.integers(max(low, min_out), cap // 2), label="out channels")
        return data.draw(st.integers(max(2 * small, math.ceil(min_size / (small * field))), cap),
                         label="in channels"), small
    small = data.draw(st.integers(low, cap // 2), label="in channels")
    return small, data.draw(st.integers(max(2 * small, min_out,
                                            math.ceil(min_size / (small * field))), cap),
                            label="out channels")


def draw_weight(data, scheme: str, layout: str) -> tuple[int, ...]:
    """A weight shape for ``scheme`` in the ``layout`` convention, its classes noted."""
    weight = stratum(data, "weight", WEIGHTS)
    if scheme in ("torch_default_linear", "torch_default_conv"):
        weight = "dense" if scheme == "torch_default_linear" else "conv"
        current_record().note_class("weight", weight)
    fans = stratum(data, "fans", FANS)
    bias = scheme == "torch_default_bias"
    kernel = _kernel(data, 8 if bias else 27) if weight == "conv" else ()
    field = math.prod(kernel)
    c_in, c_out = _channels(data, fans, field, 1 if bias else MIN_WEIGHT, MIN_BIAS if bias else 1)
    if layout_of(layout, (1, 1, *kernel)) in ("OIHW", "OI"):
        return (c_out, c_in, *kernel)
    return (*kernel, c_in, c_out)


def draw_options(data, scheme: str) -> dict:
    """The scheme's options (reference.init.OPTIONS), drawn."""
    o: dict = {}
    if scheme in ("xavier_uniform", "xavier_normal"):
        o["gain"] = data.draw(st.sampled_from(GAINS), label="gain")
    elif scheme in ("kaiming_uniform", "kaiming_normal"):
        o["nonlinearity"] = data.draw(st.sampled_from(("leaky_relu", "relu", "linear", "tanh",
                                                       "selu", "conv2d")), label="nonlinearity")
        o["a"] = data.draw(st.sampled_from((0.0, 0.01, 0.2, math.sqrt(5))), label="a")
        o["mode"] = data.draw(st.sampled_from(I.FAN_MODES), label="mode")
    elif scheme == "trunc_normal":
        # narrow or far intervals (mass <= 0.3) take torch's other sampling path
        mean = data.draw(st.sampled_from((0.0, 0.5, -1.0)), label="mean")
        std = data.draw(st.sampled_from((1.0, 0.02, 3.0)), label="std")
        lo = data.draw(st.sampled_from((-2.0, -1.0, 0.0, 0.5, 1.5)), label="a (in stds)")
        width = data.draw(st.sampled_from((0.25, 1.0, 2.0, 4.0)), label="b - a (in stds)")
        o.update(mean=mean, std=std, a=mean + lo * std, b=mean + (lo + width) * std)
    elif scheme == "variance_scaling":
        o["scale"] = data.draw(st.sampled_from((1.0, 2.0, 0.1, 3.0)), label="scale")
        o["mode"] = data.draw(st.sampled_from(I.VS_MODES), label="mode")
        o["distribution"] = data.draw(st.sampled_from(I.VS_DISTRIBUTIONS), label="distribution")
    elif scheme == "truncated_normal":
        o["stddev"] = data.draw(st.sampled_from((1e-2, 1.0, 0.3)), label="stddev")
        lower = data.draw(st.sampled_from((-2.0, -3.0, -0.5, 0.0, 1.0)), label="lower")
        o["lower"], o["upper"] = lower, lower + data.draw(st.sampled_from((0.5, 2.0, 4.0)),
                                                          label="upper - lower")
    return o


def _frozen(d: I.InitDistribution):
    """scipy's frozen distribution of ``d`` (its family, loc, scale and bounds)."""
    if d.family == "uniform":
        return S.uniform(loc=d.low, scale=d.high - d.low)
    if d.family == "normal":
        return S.norm(loc=d.loc, scale=d.scale)
    return S.truncnorm((d.low - d.loc) / d.scale, (d.high - d.loc) / d.scale, loc=d.loc,
                       scale=d.scale)


def check_second_moment(what: str, x: np.ndarray, d: I.InitDistribution) -> None:
    """One statistical check of the spread: T = mean((x - m)^2), m the oracle's mean, has mean
    var and variance (mu4 - var^2) / n (mu4 the fourth central moment). Its two-sided p-value
    is the gamma distribution's with that mean and variance: exact for the normal family (T
    is var chi2_n / n) and, for the bounded families, matching the skewness closely enough
    (the sample mean of squares of a bounded variable is far less skewed than chi2's) that
    the level stays ALPHA at n >= MIN_SAMPLES."""
    m, var, _, kurt = (float(v) for v in _frozen(d).stats("mvsk"))
    n = x.size
    t = float(np.mean((x - m) ** 2))
    k = n / (kurt + 2.0)  # var^2 n / (mu4 - var^2), mu4 = (kurt + 3) var^2
    g = S.gamma(k, scale=var / k)
    stats.check(f"{what}: mean squared deviation {t:.6g} where the variance is {var:.6g} "
                f"over {n} samples", float(min(1.0, 2.0 * min(g.cdf(t), g.sf(t)))))


def _options_for(scheme: str, kwargs: dict) -> dict:
    """The keyword arguments a scheme takes: the layout and its own options."""
    return {k: v for k, v in kwargs.items() if k == "layout" or k in I.OPTIONS[scheme]}


@pytest.mark.component("weight_init")
@given(data=st.data())
def test_weight_init_follows_its_distribution(backend, dtype, data):
    """KS and second moment against reference.init.distribution(scheme, shape, the backend's
    layout, options); the support's bounds; same seed same samples, next seed other ones
    (2 statistical checks per example)."""
    schemes = getattr(backend, "init_schemes", ())
    if not schemes:
        with unsupported_example():
            call_init(backend, "xavier_uniform", (2, 2), 0, dtype, {})
    current_record().declared = {"scheme": schemes, "weight": WEIGHTS, "fans": FANS}
    scheme = stratum(data, "scheme", schemes)
    drawn = {"layout": "torch", **draw_options(data, scheme)}
    if "truncation" in I.OPTIONS[scheme]:
        drawn["truncation"] = "rescaled"
    kwargs = _options_for(scheme, conventions(data, backend, "weight_init", drawn))
    shape = draw_weight(data, scheme, kwargs["layout"])
    seed = data.draw(st.integers(0, 2**31 - 1 - 256), label="seed")
    per_call = math.prod(init_shape(scheme, shape, kwargs["layout"]))
    calls = max(2, math.ceil(MIN_SAMPLES / per_call))
    options = {k: v for k, v in kwargs.items() if k != "layout"}
    dist = I.distribution(scheme, shape, layout_of(kwargs["layout"], shape), **options)
    with unsupported_example():
        draws = [call_init(backend, scheme, shape, seed + i, dtype, kwargs) for i in range(calls)]
        again = call_init(backend, scheme, shape, seed, dtype, kwargs)
    what = f"{scheme} {shape} {kwargs}"
    assert np.array_equal(again, draws[0]), f"{what}: seed {seed} drew different samples twice"
    assert not np.array_equal(draws[0], draws[1]), f"{what}: seeds {seed} and {seed + 1} drew " \
                                                   "the same samples"
    x = np.concatenate([d.ravel() for d in draws])
    assert np.all(np.isfinite(x)), f"{what}: non-finite samples"
    if dist.family != "normal":  # the support [low, high], up to the rounding of the bounds
        bounds = np.array([dist.low, dist.high])
        excess = np.maximum(np.maximum(dist.low - x, x - dist.high), 0.0)
        assert_within(f"{what}: samples outside [{dist.low:.6g}, {dist.high:.6g}]", excess,
                      np.zeros_like(excess), np.max(tolerance(bounds, dtype)))
    stats.kolmogorov_smirnov(what, x, dist.cdf)
    check_second_moment(what, x, dist)
