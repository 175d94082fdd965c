"""Weight initialisation as distributions: what each scheme of torch.nn.init and
jax.nn.initializers draws from, as parameters and a CDF. Nothing here is random; a framework's
samples are tested against these distributions (``sample`` draws from one with NumPy, for
tests and benchmarks).

Fans (``fans``) depend on the layout of the weight's shape, as stored:

- ``'OIHW'`` / ``'OI'`` (torch.nn.init._calculate_fan_in_and_fan_out): fan_in = shape[1] r,
  fan_out = shape[0] r, r = prod(shape[2:]) (the receptive field). torch's dense weights are
  (O, I); its grouped conv weights (O, I / groups, k...) count I / groups; its transposed conv
  weights (I, O / groups, k...) get fan_in = (O / groups) r, from the shape as stored.
- ``'HWIO'`` / ``'IO'`` (jax._src.nn.initializers._compute_fans, in_axis=-2, out_axis=-1):
  fan_in = shape[-2] r, fan_out = shape[-1] r, r = prod(shape[:-2]). flax's dense kernels are
  (I, O), its conv kernels (k..., I / groups, O). (The oracle's own dense layout is (I, O), its
  conv layout OIHW.)

Schemes (``distribution``), with std the standard deviation of the samples:

torch.nn.init (torch/nn/init.py):
- ``xavier_uniform`` (xavier_uniform_, option gain=1): U(-b, b), b = sqrt(3) gain
  sqrt(2 / (fan_in + fan_out)) = gain sqrt(6 / (fan_in + fan_out)).
- ``xavier_normal`` (xavier_normal_, gain=1): N(0, s^2), s = gain sqrt(2 / (fan_in + fan_out)),
  not truncated.
- ``kaiming_uniform`` (kaiming_uniform_, a=0, mode='fan_in', nonlinearity='leaky_relu'):
  U(-b, b), b = sqrt(3) gain(nonlinearity, a) / sqrt(fan), fan = fan_in or fan_out by mode.
  The default is leaky_relu with slope a = 0, so gain sqrt(2) (``gain('leaky_relu')`` alone
  takes slope 0.01).
- ``kaiming_normal`` (kaiming_normal_, same options): N(0, s^2), s = gain / sqrt(fan), NOT
  truncated (jax's he_normal, and its alias jax.nn.initializers.kaiming_normal, are).
- ``trunc_normal`` (trunc_normal_, mean=0, std=1, a=-2, b=2): N(mean, std^2) truncated to
  the ABSOLUTE bounds [a, b] (rejection sampling in _no_grad_trunc_normal_), not rescaled, so
  the samples' std is below ``std``.
- ``torch_default_linear`` / ``torch_default_conv`` (nn.Linear.reset_parameters,
  nn.modules.conv._ConvNd.reset_parameters): kaiming_uniform_(a=sqrt(5)) on the weight, i.e.
  gain sqrt(2 / (1 + 5)) and U(-b, b), b = sqrt(3) gain / sqrt(fan_in) = 1 / sqrt(fan_in) up
  to rounding (computed as torch computes it). Linear takes a 2-D layout, conv a >= 3-D one.
- ``torch_default_bias`` (the same reset_parameters): the bias U(-1 / sqrt(fan_in),
  1 / sqrt(fan_in)), fan_in from the WEIGHT's shape: ``shape`` is the weight's.

jax.nn.initializers (jax/_src/nn/initializers.py), with n = fan_in, fan_out, (fan_in +
fan_out) / 2 or sqrt(fan_in fan_out) by mode and v = scale / n:
- ``variance_scaling`` (scale, mode, distribution; jax has no defaults, these are Keras 3's
  VarianceScaling: scale=1, mode='fan_in', distribution='truncated_normal'): 'uniform'
  U(-sqrt(3 v), sqrt(3 v)); 'normal' N(0, v); 'truncated_normal' with ``truncation`` (read
  for this distribution only): 'rescaled' (jax; Keras 3,
  keras/src/initializers/random_initializers.py VarianceScaling): the standard normal
  truncated to [-2, 2] times sqrt(v) / c, c = 0.87962566103423978 the std of that truncated
  normal (TRUNCATED_STD), so the samples' std is sqrt(v); 'plain': N(0, v)
  truncated to [-2 sqrt(v), 2 sqrt(v)] without the correction (a port that forgets it, or
  torch's trunc_normal_ with std sqrt(v) and bounds 2 sqrt(v)), samples' std c sqrt(v).
- ``glorot_uniform`` (scale 1, fan_avg, uniform; alias xavier_uniform), ``glorot_normal``
  (1, fan_avg, truncated_normal; alias xavier_normal), ``he_uniform`` (2, fan_in, uniform;
  alias kaiming_uniform), ``he_normal`` (2, fan_in, truncated_normal; alias kaiming_normal),
  ``lecun_uniform`` (1, fan_in, uniform), ``lecun_normal`` (1, fan_in, truncated_normal: flax's
  default kernel_init, flax/linen/linear.py). The truncated ones take ``truncation``.
- ``truncated_normal`` (stddev=1e-2, lower=-2, upper=2): stddev times the standard normal
  truncated to [lower, upper], i.e. N(0, stddev^2) truncated to [lower stddev, upper stddev],
  NOT rescaled (random.truncated_normal draws erf_inv of a uniform, clamped to the open
  interval): the samples' std is below ``stddev``.

Same names, different distributions: torch's kaiming_normal_ / xavier_normal_ are plain
normals; jax's kaiming_normal / xavier_normal (aliases of he_normal / glorot_normal) are
truncated at 2 / c = 2.27 standard deviations and rescaled. For the same fans (a torch weight
(O, I) is a jax kernel (I, O)) torch's xavier_uniform_ (gain 1) and kaiming_uniform_ (its
defaults) equal jax's glorot_uniform and he_uniform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from reference._validate import as_float, positive

#: weight layouts (the module doc): torch's conv and dense, jax/flax's conv and dense.
LAYOUTS = ("OIHW", "OI", "HWIO", "IO")
#: torch.nn.init.calculate_gain's nonlinearities.
NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
#: torch kaiming_*'s ``mode``.
FAN_MODES = ("fan_in", "fan_out")
#: jax variance_scaling's ``mode``.
VS_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
#: jax variance_scaling's ``distribution``.
VS_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
#: a variance-scaling truncated normal: std corrected to the target (jax, Keras 3) or not.
TRUNCATION = ("rescaled", "plain")
#: the families of InitDistribution.
FAMILIES = ("uniform", "normal", "truncated_normal")
TORCH_SCHEMES = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                 "trunc_normal", "torch_default_linear", "torch_default_conv", "torch_default_bias")
JAX_SCHEMES = ("variance_scaling", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
               "lecun_uniform", "lecun_normal", "truncated_normal")
SCHEMES = TORCH_SCHEMES + JAX_SCHEMES

_KAIMING = {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}
#: each scheme's options and their defaults (the frameworks').
OPTIONS: dict[str, dict[str, object]] = {
    "xavier_uniform": {"gain": 1.0},
    "xavier_normal": {"gain": 1.0},
    "kaiming_uniform": _KAIMING,
    "kaiming_normal": _KAIMING,
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},
    "torch_default_linear": {},
    "torch_default_conv": {},
    "torch_default_bias": {},
    "variance_scaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
                         "truncation": "rescaled"},
    "glorot_uniform": {},
    "glorot_normal": {"truncation": "rescaled"},
    "he_uniform": {},
    "he_normal": {"truncation": "rescaled"},
    "lecun_uniform": {},
    "lecun_normal": {"truncation": "rescaled"},
    "truncated_normal": {"stddev": 1e-2, "lower": -2.0, "upper": 2.0},
}
#: (scale, mode, distribution) of jax's fixed variance-scaling schemes.
_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"), "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"), "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
#: the layouts a torch default scheme's weight may have.
_SCHEME_LAYOUTS = {"torch_default_linear": ("OI", "IO"), "torch_default_conv": ("OIHW", "HWIO")}
LEAKY_RELU_SLOPE = 0.01
#: std of the standard normal truncated to [-2, 2]; jax writes it .87962566103423978.
TRUNCATED_STD = float(stats.truncnorm(-2.0, 2.0).std())


@dataclass(frozen=True)
class InitDistribution:
    """One initialiser's distribution, per element (elements are independent).

    'uniform': U(low, high), loc = (low + high) / 2 and scale = (high - low) / 2.
    'normal': N(loc, scale^2), low = -inf, high = inf.
    'truncated_normal': N(loc, scale^2) conditioned on [low, high] (scale is the std of the
    normal before truncation, not of the samples: see ``std``).
    """

    family: str
    loc: float
    scale: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {self.family!r}")
        if not math.isfinite(self.loc):
            raise ValueError(f"loc: expected a finite value, got {self.loc!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale: expected a finite value > 0, got {self.scale!r}")
        unbounded = self.family == "normal"
        if not self.low < self.high or unbounded != (self.low == -math.inf and self.high == math.inf) \
                or (not unbounded and not (math.isfinite(self.low) and math.isfinite(self.high))):
            raise ValueError(f"low: expected finite low < high for {self.family!r} (infinite for "
                             f"'normal'), got [{self.low!r}, {self.high!r}]")

    def _frozen(self):
        """The scipy.stats frozen distribution."""
        if self.family == "uniform":
            return stats.uniform(loc=self.low, scale=self.high - self.low)
        if self.family == "normal":
            return stats.norm(loc=self.loc, scale=self.scale)
        return stats.truncnorm((self.low - self.loc) / self.scale, (self.high - self.loc) / self.scale,
                               loc=self.loc, scale=self.scale)

    @property
    def mean(self) -> float:
        """E[x] of the samples."""
        return float(self._frozen().mean())

    @property
    def std(self) -> float:
        """The standard deviation of the samples (below ``scale`` for a truncated normal)."""
        return float(self._frozen().std())

    def cdf(self, x) -> np.ndarray:
        """P(X <= x), elementwise, any shape."""
        return np.asarray(self._frozen().cdf(as_float("x", x)), dtype=np.float64)


def _shape(shape) -> tuple[int, ...]:
    try:
        out = tuple(shape)
    except TypeError as exc:
        raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}") from exc
    if not out or any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in out):
        raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}")
    return tuple(int(s) for s in out)


def _choice(name: str, value, allowed: tuple) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
    return value


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def fans(shape: Sequence[int], layout: str) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` in ``layout`` (the module doc): the input
    or output size times the receptive field r (product of the other axes). 'OI' and 'IO'
    take 2-D shapes, 'OIHW' and 'HWIO' shapes of 3 or more dimensions (any number of spatial
    axes)."""
    shape = _shape(shape)
    layout = _choice("layout", layout, LAYOUTS)
    if (len(shape) == 2) != (len(layout) == 2):
        want = "2" if len(layout) == 2 else "3 or more"
        raise ValueError(f"shape: expected {want} dimensions for layout {layout!r}, got {shape}")
    if layout in ("OIHW", "OI"):
        out_size, in_size, r = shape[0], shape[1], math.prod(shape[2:])
    else:
        in_size, out_size, r = shape[-2], shape[-1], math.prod(shape[:-2])
    return in_size * r, out_size * r


def gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain: 1 for linear, conv*, conv_transpose* and sigmoid; 5/3
    for tanh; sqrt(2) for relu; sqrt(2 / (1 + slope^2)) for leaky_relu, slope = ``param``
    (default 0.01); 3/4 for selu. ``param`` is read for leaky_relu only (as torch)."""
    nonlinearity = _choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    if nonlinearity == "leaky_relu":
        slope = LEAKY_RELU_SLOPE if param is None else _real("param", param)
        return math.sqrt(2.0 / (1 + slope**2))
    return 1.0


def _uniform(bound: float) -> InitDistribution:
    return InitDistribution("uniform", 0.0, bound, -bound, bound)


def _normal(std: float) -> InitDistribution:
    return InitDistribution("normal", 0.0, std, -math.inf, math.inf)


def _truncated(loc: float, scale: float, low: float, high: float) -> InitDistribution:
    return InitDistribution("truncated_normal", loc, scale, low, high)


def _bounds(lo_name: str, lo, hi_name: str, hi) -> tuple[float, float]:
    lo, hi = _real(lo_name, lo), _real(hi_name, hi)
    if not lo < hi:
        raise ValueError(f"{hi_name}: expected {lo_name} < {hi_name}, got [{lo!r}, {hi!r}]")
    return lo, hi


def _variance_scaling(fan_in: int, fan_out: int, scale, mode, distribution,
                      truncation) -> InitDistribution:
    scale = positive("scale", scale)
    mode = _choice("mode", mode, VS_MODES)
    distribution = _choice("distribution", distribution, VS_DISTRIBUTIONS)
    truncation = _choice("truncation", truncation, TRUNCATION)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
         "fan_geo_avg": (fan_in * fan_out) ** 0.5}[mode]
    variance = scale / n
    if distribution == "uniform":
        return _uniform(math.sqrt(3 * variance))
    if distribution == "normal":
        return _normal(math.sqrt(variance))
    s = math.sqrt(variance) / (TRUNCATED_STD if truncation == "rescaled" else 1.0)
    return _truncated(0.0, s, -2.0 * s, 2.0 * s)


def _kaiming_std(fan_in: int, fan_out: int, a, mode, nonlinearity) -> float:
    fan = fan_in if _choice("mode", mode, FAN_MODES) == "fan_in" else fan_out
    return gain(nonlinearity, _real("a", a)) / math.sqrt(fan)


def _torch(scheme: str, fan_in: int, fan_out: int, o: dict) -> InitDistribution:
    if scheme in ("xavier_uniform", "xavier_normal"):
        std = positive("gain", o["gain"]) * math.sqrt(2.0 / float(fan_in + fan_out))
        return _uniform(math.sqrt(3.0) * std) if scheme == "xavier_uniform" else _normal(std)
    if scheme == "kaiming_uniform":
        return _uniform(math.sqrt(3.0) * _kaiming_std(fan_in, fan_out, **o))
    if scheme == "kaiming_normal":
        return _normal(_kaiming_std(fan_in, fan_out, **o))
    if scheme == "trunc_normal":
        a, b = _bounds("a", o["a"], "b", o["b"])
        return _truncated(_real("mean", o["mean"]), positive("std", o["std"]), a, b)
    if scheme == "torch_default_bias":
        return _uniform(1 / math.sqrt(fan_in))
    return _uniform(math.sqrt(3.0) * _kaiming_std(fan_in, fan_out, math.sqrt(5), "fan_in", "leaky_relu"))


def distribution(scheme: str, shape: Sequence[int], layout: str, **options) -> InitDistribution:
    """The distribution ``scheme`` (SCHEMES, the module doc) draws each element of a weight of
    ``shape`` in ``layout`` from; ``options`` are the scheme's (OPTIONS, with the frameworks'
    defaults). trunc_normal and truncated_normal do not depend on the shape (it is still
    checked); torch_default_bias takes the weight's shape."""
    scheme = _choice("scheme", scheme, SCHEMES)
    fan_in, fan_out = fans(shape, layout)
    if scheme in _SCHEME_LAYOUTS:
        _choice("layout", layout, _SCHEME_LAYOUTS[scheme])
    for name in options:
        if name not in OPTIONS[scheme]:
            raise ValueError(f"{name}: not an option of {scheme!r}; its options are "
                             f"{tuple(OPTIONS[scheme])}")
    o = {**OPTIONS[scheme], **options}
    if scheme in TORCH_SCHEMES:
        return _torch(scheme, fan_in, fan_out, o)
    if scheme == "truncated_normal":
        stddev = positive("stddev", o["stddev"])
        lower, upper = _bounds("lower", o["lower"], "upper", o["upper"])
        return _truncated(0.0, stddev, lower * stddev, upper * stddev)
    if scheme == "variance_scaling":
        return _variance_scaling(fan_in, fan_out, **o)
    return _variance_scaling(fan_in, fan_out, *_VARIANCE_SCALING[scheme],
                             o.get("truncation", TRUNCATION[0]))


def sample(dist: InitDistribution, n: int, rng: np.random.Generator) -> np.ndarray:
    """n float64 draws from ``dist`` with the NumPy Generator ``rng`` (scipy.stats.truncnorm
    for a truncated normal)."""
    if not isinstance(dist, InitDistribution):
        raise ValueError(f"dist: expected an InitDistribution, got {type(dist).__name__}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if dist.family == "uniform":
        return rng.uniform(dist.low, dist.high, int(n))
    if dist.family == "normal":
        return rng.normal(dist.loc, dist.scale, int(n))
    return np.asarray(dist._frozen().rvs(size=int(n), random_state=rng), dtype=np.float64)
