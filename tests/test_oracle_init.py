"""Weight initialisation as distributions (reference/init.py): fans and gains against torch's
_calculate_fan_in_and_fan_out / calculate_gain and jax's _compute_fans; every scheme's
parameters against the documented formulas written out here; torch.nn.init's and
jax.nn.initializers' own float64 samples (and the modules' default initialisation) against
each distribution by a Kolmogorov-Smirnov test, the support bounds and the sample std, with a
wrong distribution rejected by the same test; the truncated families' moments and CDF by
numerical integration of their density written here; and bad input.

Every sample comes from a fixed seed (torch.manual_seed, jax.random.key, numpy default_rng)
and fixed shapes, so these statistical tests are deterministic: a test that passes passes
every time. The levels say how unlikely the outcome would be under the claimed distribution
for a fresh seed: KS p-value >= 1e-6, sample std within 5 standard errors (two-sided normal
tail 6e-7).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from reference import init as I
from tests.fd import EPS, raises_for
from tests.optional import need

ALPHA = 1e-6
N_SE = 5.0
REL = 8 * EPS
"""A parameter is at most 4 roundings (a division, a square root, two products) from its
inputs in the oracle and again in the formula written here: 8 eps relative covers both."""

shapes = st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple)


def _torch():
    return need("torch", reason="the PyTorch comparison needs torch")


def _jax():
    need("jax", reason="the JAX comparison needs jax")
    import jax

    jax.config.update("jax_enable_x64", True)  # as the jax adapter does
    return jax


# --------------------------------------------------------------------------- moments by quad

def _quad(f, lo: float, hi: float, epsabs: float) -> float:
    """quad to 1e-12 relative (or ``epsabs``); an IntegrationWarning (not converged) fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        return integrate.quad(f, lo, hi, epsabs=epsabs, epsrel=1e-12, limit=200)[0]


def _kernel(dist: I.InitDistribution):
    """(z range, unnormalised density of z = (x - loc) / scale), written here: 1 on [-1, 1]
    for 'uniform', exp(-z^2 / 2) on [(low - loc) / scale, (high - loc) / scale] otherwise."""
    if dist.family == "uniform":
        return -1.0, 1.0, (lambda z: 1.0)
    return ((dist.low - dist.loc) / dist.scale, (dist.high - dist.loc) / dist.scale,
            lambda z: math.exp(-z * z / 2))


def _by_quad(dist: I.InitDistribution):
    """(mean, std, fourth central moment) of ``dist`` by integrating its density (_kernel)."""
    lo, hi, kernel = _kernel(dist)
    mass = _quad(kernel, lo, hi, 0.0)  # a positive integrand: relative accuracy

    def moment(g):  # of the normalised density, whose moments in z are O(1) or more
        return _quad(lambda z: g(z) * kernel(z) / mass, lo, hi, 1e-14)

    m = moment(lambda z: z)
    var = moment(lambda z: (z - m) ** 2)
    mu4 = moment(lambda z: (z - m) ** 4)
    return dist.loc + dist.scale * m, dist.scale * math.sqrt(var), dist.scale**4 * mu4


# Each integral is within 1e-12 relative or 1e-14 absolute (quad converged); the variances in z
# here are above 0.04, so the std is within about 1e-12 relative: 1e-11 leaves room.
QUAD_REL = 1e-11


def _check_samples(x, dist: I.InitDistribution) -> None:
    """float64 samples ``x`` follow ``dist``: the KS p-value is at least ALPHA, every sample
    lies in [low, high] exactly, and the sample std is within N_SE standard errors of
    dist.std (standard error of a sample std: sqrt(mu4 - sigma^4) / (2 sigma sqrt(n)), with
    mu4 and sigma from _by_quad, not from the code under test)."""
    x = np.ravel(np.asarray(x))
    assert x.dtype == np.float64
    p = stats.kstest(x, dist.cdf).pvalue
    assert p >= ALPHA, f"KS p-value {p:.3e} for {dist}"
    assert dist.low <= x.min() and x.max() <= dist.high, (x.min(), x.max(), dist)
    _, sigma, mu4 = _by_quad(dist)
    se = math.sqrt(mu4 - sigma**4) / (2 * sigma * math.sqrt(x.size))
    assert abs(x.std() - dist.std) <= N_SE * se, (x.std(), dist.std, se)


def _rejects(x, wrong: I.InitDistribution) -> None:
    """The same KS test rejects a wrong distribution for these samples (the test has power)."""
    p = stats.kstest(np.ravel(np.asarray(x)), wrong.cdf).pvalue
    assert p < ALPHA, f"KS p-value {p:.3e}: the wrong {wrong} was not rejected"


# --------------------------------------------------------------------------- fans and gains

@given(shape=shapes)
def test_fans_match_torch(shape):
    torch = _torch()
    want = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert I.fans(shape, "OI" if len(shape) == 2 else "OIHW") == want


@given(shape=shapes)
def test_fans_match_jax(shape):
    _jax()
    from jax._src.nn.initializers import _compute_fans

    fan_in, fan_out = _compute_fans(shape)  # in_axis=-2, out_axis=-1 as the initializers
    assert I.fans(shape, "IO" if len(shape) == 2 else "HWIO") == (fan_in, fan_out)


@given(shape=shapes)
def test_fans_by_hand_and_layouts_agree(shape):
    o, i, k = shape[0], shape[1], shape[2:]
    r = math.prod(k)
    torch_layout, jax_layout = ("OI", "IO") if len(shape) == 2 else ("OIHW", "HWIO")
    assert I.fans(shape, torch_layout) == (i * r, o * r)
    # the same weight stored the jax way: (k..., I, O)
    assert I.fans((*k, i, o), jax_layout) == (i * r, o * r)


def test_fans_examples():
    assert I.fans((8, 3, 5, 5), "OIHW") == (75, 200)
    assert I.fans((5, 5, 3, 8), "HWIO") == (75, 200)
    assert I.fans((4, 7), "OI") == (7, 4)
    assert I.fans((7, 4), "IO") == (7, 4)
    assert I.fans((6, 2, 3), "OIHW") == (6, 18)  # conv1d


@pytest.mark.parametrize("nonlinearity", I.NONLINEARITIES)
def test_gain_matches_torch(nonlinearity):
    torch = _torch()
    # the same formula (at most a division and a square root): exact up to 2 eps
    assert I.gain(nonlinearity) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity),
                                                 rel=2 * EPS, abs=0)


@given(slope=st.floats(-10, 10, allow_nan=False))
def test_leaky_relu_gain_matches_torch(slope):
    torch = _torch()
    want = torch.nn.init.calculate_gain("leaky_relu", slope)
    assert I.gain("leaky_relu", slope) == pytest.approx(want, rel=4 * EPS, abs=0)
    assert I.gain("leaky_relu", slope) == pytest.approx(math.sqrt(2 / (1 + slope * slope)),
                                                        rel=4 * EPS, abs=0)


def test_gain_by_hand():
    assert I.gain("linear") == I.gain("conv2d") == I.gain("sigmoid") == 1.0
    assert I.gain("tanh") == pytest.approx(5 / 3, rel=EPS)
    assert I.gain("relu") == pytest.approx(2**0.5, rel=EPS)
    assert I.gain("selu") == 0.75
    assert I.gain("leaky_relu") == pytest.approx((2 / 1.0001) ** 0.5, rel=2 * EPS)
    assert I.gain("relu", 0.3) == I.gain("relu")  # param is read for leaky_relu only (torch)


# --------------------------------------------------------------------------- parameters

def _documented(scheme, fi, fo, **o):
    """(family, bound or std of the underlying normal, truncation bounds in units of it or
    None) from each framework's documentation, written independently of reference/init.py."""
    c = 0.87962566103423978  # jax's constant, jax/_src/nn/initializers.py variance_scaling
    g = o.get("gain", 1.0)
    if scheme == "xavier_uniform":
        return "uniform", g * math.sqrt(6 / (fi + fo)), None
    if scheme == "xavier_normal":
        return "normal", g * math.sqrt(2 / (fi + fo)), None
    if scheme in ("kaiming_uniform", "kaiming_normal"):
        fan = fi if o.get("mode", "fan_in") == "fan_in" else fo
        slope = o.get("a", 0.0)
        gk = {"relu": math.sqrt(2), "tanh": 5 / 3, "selu": 0.75, "linear": 1.0}.get(
            o.get("nonlinearity", "leaky_relu"), math.sqrt(2 / (1 + slope**2)))
        if scheme == "kaiming_uniform":
            return "uniform", gk * math.sqrt(3 / fan), None
        return "normal", gk / math.sqrt(fan), None
    if scheme in ("torch_default_linear", "torch_default_conv", "torch_default_bias"):
        return "uniform", 1 / math.sqrt(fi), None
    vs = {"glorot_uniform": (1, "fan_avg", "uniform"), "glorot_normal": (1, "fan_avg", "tn"),
          "he_uniform": (2, "fan_in", "uniform"), "he_normal": (2, "fan_in", "tn"),
          "lecun_uniform": (1, "fan_in", "uniform"), "lecun_normal": (1, "fan_in", "tn")}
    scale, mode, dist = vs[scheme]
    n = {"fan_in": fi, "fan_avg": (fi + fo) / 2}[mode]
    if dist == "uniform":
        return "uniform", math.sqrt(3 * scale / n), None
    s = math.sqrt(scale / n)
    return "truncated_normal", s / c if o.get("truncation", "rescaled") == "rescaled" else s, 2.0


SHAPE_SCHEMES = [
    ("xavier_uniform", {}), ("xavier_uniform", {"gain": 5 / 3}), ("xavier_normal", {"gain": 0.5}),
    ("kaiming_uniform", {}), ("kaiming_uniform", {"a": 0.2, "mode": "fan_out"}),
    ("kaiming_uniform", {"nonlinearity": "relu"}), ("kaiming_normal", {"nonlinearity": "tanh"}),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "selu"}),
    ("torch_default_bias", {}), ("glorot_uniform", {}), ("glorot_normal", {}),
    ("glorot_normal", {"truncation": "plain"}), ("he_uniform", {}), ("he_normal", {}),
    ("lecun_uniform", {}), ("lecun_normal", {}), ("lecun_normal", {"truncation": "plain"}),
]


@pytest.mark.parametrize(("scheme", "opts"), SHAPE_SCHEMES,
                         ids=[f"{s}-{i}" for i, (s, _) in enumerate(SHAPE_SCHEMES)])
@given(shape=shapes, jax_layout=st.booleans())
def test_parameters_match_the_documented_formulas(scheme, opts, shape, jax_layout):
    layout = ("IO" if jax_layout else "OI") if len(shape) == 2 else ("HWIO" if jax_layout else "OIHW")
    fi, fo = I.fans(shape, layout)
    family, s, k = _documented(scheme, fi, fo, **opts)
    d = I.distribution(scheme, shape, layout, **opts)
    assert d.family == family
    assert d.loc == 0.0
    assert d.scale == pytest.approx(s, rel=REL, abs=0)
    if family == "uniform":
        assert (d.low, d.high) == (-d.scale, d.scale)
    elif family == "normal":
        assert (d.low, d.high) == (-math.inf, math.inf)
    else:
        assert (d.low, d.high) == pytest.approx((-k * s, k * s), rel=REL, abs=0)


@given(shape=shapes, jax_layout=st.booleans())
def test_torch_default_is_one_over_sqrt_fan_in(shape, jax_layout):
    """kaiming_uniform_(a=sqrt(5)) is U(+-1/sqrt(fan_in)) up to rounding: gain sqrt(2/6)
    times sqrt(3), 6 roundings (sqrt(5)^2 is 5 + 1 ulp), against 2 here."""
    scheme = "torch_default_linear" if len(shape) == 2 else "torch_default_conv"
    layout = ("IO" if jax_layout else "OI") if len(shape) == 2 else ("HWIO" if jax_layout else "OIHW")
    fi, _ = I.fans(shape, layout)
    for s in (scheme, "torch_default_bias"):
        d = I.distribution(s, shape, layout)
        assert (d.family, d.loc, d.low, d.high) == ("uniform", 0.0, -d.scale, d.scale)
        assert d.scale == pytest.approx(1 / math.sqrt(fi), rel=REL, abs=0)


@pytest.mark.parametrize(("mode", "n"), [("fan_in", lambda i, o: i), ("fan_out", lambda i, o: o),
                                         ("fan_avg", lambda i, o: (i + o) / 2),
                                         ("fan_geo_avg", lambda i, o: math.sqrt(i * o))])
@given(shape=shapes, scale=st.floats(0.1, 10))
def test_variance_scaling_by_hand(mode, n, shape, scale):
    layout = "IO" if len(shape) == 2 else "HWIO"
    v = scale / n(*I.fans(shape, layout))
    u = I.distribution("variance_scaling", shape, layout, scale=scale, mode=mode,
                       distribution="uniform")
    assert u.scale == pytest.approx(math.sqrt(3 * v), rel=REL, abs=0)
    g = I.distribution("variance_scaling", shape, layout, scale=scale, mode=mode,
                       distribution="normal")
    assert (g.family, g.scale) == ("normal", pytest.approx(math.sqrt(v), rel=REL, abs=0))
    for truncation, s in (("rescaled", math.sqrt(v) / 0.87962566103423978), ("plain", math.sqrt(v))):
        t = I.distribution("variance_scaling", shape, layout, scale=scale, mode=mode,
                           truncation=truncation)  # distribution defaults to truncated_normal
        assert t.family == "truncated_normal"
        assert (t.scale, t.high) == pytest.approx((s, 2 * s), rel=REL, abs=0)
        assert t.low == -t.high


def test_truncated_schemes_by_hand():
    t = I.distribution("trunc_normal", (3, 4), "OI", mean=0.5, std=2.0, a=-1.0, b=0.75)
    assert (t.family, t.loc, t.scale, t.low, t.high) == ("truncated_normal", 0.5, 2.0, -1.0, 0.75)
    assert I.distribution("trunc_normal", (3, 4), "OI") == I.InitDistribution(
        "truncated_normal", 0.0, 1.0, -2.0, 2.0)  # torch's defaults: absolute bounds
    j = I.distribution("truncated_normal", (3, 4), "IO", stddev=0.5, lower=-1.0, upper=3.0)
    assert (j.family, j.loc, j.scale, j.low, j.high) == ("truncated_normal", 0.0, 0.5, -0.5, 1.5)
    assert I.distribution("truncated_normal", (3, 4), "IO") == I.InitDistribution(
        "truncated_normal", 0.0, 0.01, -0.02, 0.02)  # jax's defaults: bounds in stddevs


# --------------------------------------------------------------------------- moments, CDF

TRUNCATED = [
    I.distribution("he_normal", (3, 3, 16, 32), "HWIO"),
    I.distribution("he_normal", (3, 3, 16, 32), "HWIO", truncation="plain"),
    I.distribution("trunc_normal", (2, 2), "OI", mean=0.5, std=2.0, a=-1.0, b=0.75),
    I.distribution("trunc_normal", (2, 2), "OI", mean=-3.0, std=0.5, a=-1.0, b=4.0),  # one tail
    I.distribution("truncated_normal", (2, 2), "IO", stddev=0.5, lower=-1.0, upper=3.0),
]


@pytest.mark.parametrize("dist", TRUNCATED, ids=[f"truncated-{i}" for i in range(len(TRUNCATED))])
def test_truncated_moments_and_cdf_by_quad(dist):
    mean, std, _ = _by_quad(dist)
    assert dist.mean == pytest.approx(mean, rel=QUAD_REL, abs=QUAD_REL * dist.scale)
    assert dist.std == pytest.approx(std, rel=QUAD_REL, abs=0)
    assert dist.std < dist.scale  # truncation shrinks the std
    lo, hi, kernel = _kernel(dist)
    mass = _quad(kernel, lo, hi, 0.0)
    xs = np.linspace(dist.low, dist.high, 7)
    want = [_quad(kernel, lo, (x - dist.loc) / dist.scale, 1e-14 * mass) / mass for x in xs]
    np.testing.assert_allclose(dist.cdf(xs), want, rtol=0, atol=QUAD_REL)
    np.testing.assert_array_equal(dist.cdf([dist.low - 1, dist.high + 1]), [0.0, 1.0])


def test_rescaled_std_is_the_target():
    """jax's .87962566103423978 is the std of the standard normal truncated to [-2, 2]
    (integrated here), so 'rescaled' gives the target std sqrt(scale / n)."""
    std = _by_quad(I.InitDistribution("truncated_normal", 0.0, 1.0, -2.0, 2.0))[1]
    assert I.TRUNCATED_STD == pytest.approx(std, rel=QUAD_REL)
    assert I.TRUNCATED_STD == pytest.approx(0.87962566103423978, rel=EPS)
    d = I.distribution("he_normal", (40, 25), "IO")
    assert d.std == pytest.approx(math.sqrt(2 / 40), rel=QUAD_REL)
    plain = I.distribution("he_normal", (40, 25), "IO", truncation="plain")
    assert plain.std == pytest.approx(0.87962566103423978 * math.sqrt(2 / 40), rel=QUAD_REL)


@pytest.mark.parametrize("dist", [I.distribution("xavier_uniform", (30, 20), "OI"),
                                  I.distribution("kaiming_normal", (30, 20), "OI")],
                         ids=["uniform", "normal"])
def test_untruncated_moments_by_hand(dist):
    want = dist.scale / math.sqrt(3) if dist.family == "uniform" else dist.scale
    assert dist.std == pytest.approx(want, rel=4 * EPS)
    assert dist.mean == 0.0
    x = np.array([-dist.scale, 0.0, 0.5 * dist.scale])
    want_cdf = ([0.0, 0.5, 0.75] if dist.family == "uniform"
                else [0.5 * math.erfc(1 / math.sqrt(2)), 0.5, 0.5 * math.erfc(-0.5 / math.sqrt(2))])
    np.testing.assert_allclose(dist.cdf(x), want_cdf, rtol=16 * EPS, atol=0)


# --------------------------------------------------------------------------- torch's samples

def _wrong_truncation(d):
    """``d`` with its truncated normal's scale rescaled by 1/c: the other truncation."""
    return dataclasses.replace(d, scale=d.scale / I.TRUNCATED_STD)


# (scheme, weight shape OIHW/OI, options, torch.nn.init function and its kwargs, wrong options)
TORCH_CASES = [
    ("xavier_uniform", (200, 30, 2, 2), {"gain": 5 / 3}, "xavier_uniform_", {"gain": 5 / 3},
     {"gain": 1.0}),
    ("xavier_normal", (150, 140), {}, "xavier_normal_", {}, {"gain": 2**0.5}),
    ("kaiming_uniform", (80, 250), {"nonlinearity": "relu"}, "kaiming_uniform_",
     {"nonlinearity": "relu"}, {"nonlinearity": "relu", "mode": "fan_out"}),
    ("kaiming_uniform", (64, 16, 3, 3), {"a": 0.2, "mode": "fan_out"}, "kaiming_uniform_",
     {"a": 0.2, "mode": "fan_out"}, {"a": 0.2}),
    ("kaiming_normal", (400, 50), {"mode": "fan_out"}, "kaiming_normal_", {"mode": "fan_out"}, {}),
    ("kaiming_normal", (64, 12, 3, 3, 3), {"nonlinearity": "selu"}, "kaiming_normal_",
     {"nonlinearity": "selu"}, {"nonlinearity": "linear"}),
    # p = P(a <= N <= b) = 0.95 > 0.3: torch's normal_-and-redraw branch; rescaled is wrong
    ("trunc_normal", (200, 100), {}, "trunc_normal_", {}, None),
    # p = 0.27 <= 0.3: the uniform proposal branch; jax-style relative bounds are wrong
    ("trunc_normal", (200, 100), {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 0.5}, "trunc_normal_",
     {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 0.5}, {"mean": 0.5, "std": 2.0, "a": -2.0, "b": 1.0}),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_torch_init_samples(case):
    torch = _torch()
    scheme, shape, opts, fn, kwargs, wrong = case
    torch.manual_seed(0)
    w = torch.empty(shape, dtype=torch.float64)
    getattr(torch.nn.init, fn)(w, **kwargs)
    layout = "OI" if len(shape) == 2 else "OIHW"
    d = I.distribution(scheme, shape, layout, **opts)
    _check_samples(w.numpy(), d)
    _rejects(w.numpy(), _wrong_truncation(d) if wrong is None
             else I.distribution(scheme, shape, layout, **wrong))


def _modules(torch):
    """(name, tensor, scheme, weight shape, wrong scheme) of torch modules' default init."""
    torch.manual_seed(1)
    f64 = {"dtype": torch.float64}
    lin, lin_b = torch.nn.Linear(300, 100, **f64), torch.nn.Linear(3, 20000, **f64)
    conv, conv_b = torch.nn.Conv2d(6, 200, 5, **f64), torch.nn.Conv1d(2, 20000, 3, **f64)
    # a transposed conv stores (I, O / groups, k, k): torch's fan_in is (O / groups) k^2
    tconv = torch.nn.ConvTranspose2d(300, 8, 3, **f64)
    return [
        ("linear.weight", lin.weight, "torch_default_linear", (100, 300), "xavier_uniform"),
        ("linear.bias", lin_b.bias, "torch_default_bias", (20000, 3), "xavier_uniform"),
        ("conv.weight", conv.weight, "torch_default_conv", (200, 6, 5, 5), "kaiming_uniform"),
        ("conv.bias", conv_b.bias, "torch_default_bias", (20000, 2, 3), "kaiming_uniform"),
        ("conv_transpose.weight", tconv.weight, "torch_default_conv", (300, 8, 3, 3),
         "xavier_uniform"),
    ]


def test_torch_module_default_init():
    torch = _torch()
    for name, t, scheme, shape, wrong in _modules(torch):
        assert t.dtype == torch.float64, name
        x = t.detach().numpy()
        assert x.size >= 20000, name
        layout = "OI" if len(shape) == 2 else "OIHW"
        _check_samples(x, I.distribution(scheme, shape, layout))
        # kaiming_uniform's default (a = 0: sqrt(6 / fan_in)) or xavier: not torch's default
        _rejects(x, I.distribution(wrong, shape, layout))


# --------------------------------------------------------------------------- jax's samples

# (scheme, kernel shape HWIO/IO, options, jax initializer factory and its args, wrong options)
JAX_CASES = [
    ("glorot_uniform", (250, 90), {}, "glorot_uniform", (), ("he_uniform", {})),
    ("glorot_normal", (3, 3, 64, 40), {}, "glorot_normal", (), ("glorot_normal", {"truncation": "plain"})),
    ("he_uniform", (3, 3, 16, 160), {}, "he_uniform", (),
     ("variance_scaling", {"scale": 2.0, "mode": "fan_out", "distribution": "uniform"})),
    ("he_normal", (120, 200), {}, "he_normal", (), ("he_normal", {"truncation": "plain"})),
    ("lecun_uniform", (5, 5, 4, 250), {}, "lecun_uniform", (),
     ("variance_scaling", {"mode": "fan_avg", "distribution": "uniform"})),
    ("lecun_normal", (500, 60), {}, "lecun_normal", (),
     ("variance_scaling", {"mode": "fan_out"})),
    ("variance_scaling", (3, 3, 16, 160), {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "normal"},
     "variance_scaling", (0.5, "fan_geo_avg", "normal"),
     ("variance_scaling", {"scale": 0.5, "mode": "fan_avg", "distribution": "normal"})),
    ("variance_scaling", (7, 3000), {"scale": 3.0, "mode": "fan_out"},
     "variance_scaling", (3.0, "fan_out", "truncated_normal"),
     ("variance_scaling", {"scale": 3.0, "mode": "fan_in"})),
]


@pytest.mark.parametrize("case", JAX_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(JAX_CASES)])
def test_jax_init_samples(case):
    jax = _jax()
    scheme, shape, opts, factory, args, (wrong, wrong_opts) = case
    x = np.asarray(getattr(jax.nn.initializers, factory)(*args)(
        jax.random.key(0), shape, jax.numpy.float64))
    layout = "IO" if len(shape) == 2 else "HWIO"
    _check_samples(x, I.distribution(scheme, shape, layout, **opts))
    _rejects(x, I.distribution(wrong, shape, layout, **wrong_opts))


def test_jax_truncated_normal_is_not_rescaled():
    """jax.nn.initializers.truncated_normal(stddev, lower, upper): stddev is the std of the
    normal before truncation; the samples' std is smaller."""
    jax = _jax()
    init = jax.nn.initializers.truncated_normal(0.5, lower=-1.0, upper=3.0)
    x = np.asarray(init(jax.random.key(1), (200, 110), jax.numpy.float64))
    d = I.distribution("truncated_normal", x.shape, "IO", stddev=0.5, lower=-1.0, upper=3.0)
    _check_samples(x, d)
    assert x.std() < 0.5 * 0.9
    _rejects(x, _wrong_truncation(d))


N_POWER = 2**17
"""The untruncated normal and the rescaled truncated one of the same std differ by 0.0167 in
CDF at most; the KS critical value at 1e-6 is sqrt(log(2 / 1e-6) / (2 n)) = 0.0083 here."""


def test_torch_kaiming_normal_is_not_jax_he_normal():
    """The same name, two distributions: torch's kaiming_normal_ is a plain normal, jax's
    kaiming_normal (an alias of he_normal) a rescaled truncated normal, of the same std."""
    torch, jax = _torch(), _jax()
    assert jax.nn.initializers.kaiming_normal is jax.nn.initializers.he_normal
    torch.manual_seed(2)
    w = torch.empty(512, 256, dtype=torch.float64)  # (O, I): fan_in 256
    torch.nn.init.kaiming_normal_(w)
    k = np.asarray(jax.nn.initializers.kaiming_normal()(jax.random.key(2), (256, 512),
                                                        jax.numpy.float64))  # (I, O): fan_in 256
    torch_d = I.distribution("kaiming_normal", (512, 256), "OI")
    jax_d = I.distribution("he_normal", (256, 512), "IO")
    assert torch_d.std == pytest.approx(jax_d.std, rel=QUAD_REL)
    _check_samples(w.numpy(), torch_d)
    _check_samples(k, jax_d)
    _rejects(w.numpy(), jax_d)
    _rejects(k, torch_d)
    assert np.abs(w.numpy()).max() > jax_d.high  # torch draws past jax's truncation


# --------------------------------------------------------------------------- sample()

@pytest.mark.parametrize("dist", [I.distribution("glorot_uniform", (30, 20), "IO"),
                                  I.distribution("xavier_normal", (30, 20), "OI"), *TRUNCATED],
                         ids=lambda d: d.family)
def test_sample_follows_the_distribution(dist):
    x = I.sample(dist, 20000, np.random.default_rng(3))
    assert x.shape == (20000,)
    _check_samples(x, dist)
    _rejects(x, dataclasses.replace(dist, scale=1.25 * dist.scale, low=dist.low * 1.25,
                                    high=dist.high * 1.25))


# --------------------------------------------------------------------------- bad input

BAD = [
    ("shape", lambda: I.fans((), "OI")),
    ("shape", lambda: I.fans((3, 0), "OI")),
    ("shape", lambda: I.fans((3, -2), "OI")),
    ("shape", lambda: I.fans((3, 2.0), "OI")),
    ("shape", lambda: I.fans((3, True), "OI")),
    ("shape", lambda: I.fans(5, "OI")),
    ("shape", lambda: I.fans((3, 2, 2), "OI")),
    ("shape", lambda: I.fans((3, 2), "HWIO")),
    ("shape", lambda: I.fans((3,), "IO")),
    ("layout", lambda: I.fans((3, 2), "NCHW")),
    ("layout", lambda: I.distribution("torch_default_linear", (3, 2, 2), "OIHW")),
    ("layout", lambda: I.distribution("torch_default_conv", (3, 2), "OI")),
    ("nonlinearity", lambda: I.gain("gelu")),
    ("nonlinearity", lambda: I.distribution("kaiming_uniform", (3, 2), "OI", nonlinearity="Relu")),
    ("param", lambda: I.gain("leaky_relu", True)),
    ("param", lambda: I.gain("leaky_relu", math.nan)),
    ("param", lambda: I.gain("leaky_relu", "0.1")),
    ("scheme", lambda: I.distribution("orthogonal", (3, 2), "OI")),
    ("gain", lambda: I.distribution("xavier_uniform", (3, 2), "OI", gain=0.0)),
    ("gain", lambda: I.distribution("xavier_normal", (3, 2), "OI", gain=-1.0)),
    ("gain", lambda: I.distribution("glorot_uniform", (3, 2), "IO", gain=2.0)),
    ("truncation", lambda: I.distribution("kaiming_normal", (3, 2), "OI", truncation="plain")),
    ("truncation", lambda: I.distribution("he_normal", (3, 2), "IO", truncation="none")),
    ("mode", lambda: I.distribution("kaiming_normal", (3, 2), "OI", mode="fan_avg")),
    ("mode", lambda: I.distribution("variance_scaling", (3, 2), "IO", mode="FAN_IN")),
    ("a", lambda: I.distribution("kaiming_uniform", (3, 2), "OI", a=math.inf)),
    ("distribution", lambda: I.distribution("variance_scaling", (3, 2), "IO",
                                            distribution="untruncated_normal")),
    ("scale", lambda: I.distribution("variance_scaling", (3, 2), "IO", scale=0.0)),
    ("std", lambda: I.distribution("trunc_normal", (3, 2), "OI", std=-1.0)),
    ("mean", lambda: I.distribution("trunc_normal", (3, 2), "OI", mean=math.nan)),
    ("b", lambda: I.distribution("trunc_normal", (3, 2), "OI", a=1.0, b=1.0)),
    ("a", lambda: I.distribution("trunc_normal", (3, 2), "OI", a=-math.inf)),
    ("stddev", lambda: I.distribution("truncated_normal", (3, 2), "IO", stddev=0.0)),
    ("upper", lambda: I.distribution("truncated_normal", (3, 2), "IO", lower=2.0, upper=-2.0)),
    ("family", lambda: I.InitDistribution("laplace", 0.0, 1.0, -1.0, 1.0)),
    ("scale", lambda: I.InitDistribution("normal", 0.0, 0.0, -math.inf, math.inf)),
    ("loc", lambda: I.InitDistribution("normal", math.inf, 1.0, -math.inf, math.inf)),
    ("low", lambda: I.InitDistribution("normal", 0.0, 1.0, -2.0, 2.0)),
    ("low", lambda: I.InitDistribution("uniform", 0.0, 1.0, 1.0, -1.0)),
    ("low", lambda: I.InitDistribution("truncated_normal", 0.0, 1.0, -math.inf, 2.0)),
    ("x", lambda: I.distribution("he_normal", (3, 2), "IO").cdf([0.0, math.nan])),
    ("dist", lambda: I.sample("he_normal", 3, np.random.default_rng(0))),
    ("n", lambda: I.sample(I.distribution("he_normal", (3, 2), "IO"), 0, np.random.default_rng(0))),
    ("n", lambda: I.sample(I.distribution("he_normal", (3, 2), "IO"), 2.0, np.random.default_rng(0))),
    ("rng", lambda: I.sample(I.distribution("he_normal", (3, 2), "IO"), 3, 0)),
]


@pytest.mark.parametrize(("arg", "call"), BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_init_rejects(arg, call):
    with raises_for(arg):
        call()
