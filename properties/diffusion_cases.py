"""Cases of the diffusion schedulers (reference/diffusion.py): schedules, forward-process
batches, sampling runs and the steps drawn from them, valid by construction.

- A schedule: 'linear', 'scaled_linear' or 'squaredcos_cap_v2' over T training steps from
  a short menu (T_MENU: JAX compiles a schedule once per T), beta_start log-uniform in
  [1e-4, 1e-3], beta_end in [5e-3, 0.03] (every beta above float32's resolution at 1: abar
  strictly decreasing in both dtypes), the cosine schedule's max_beta 0.999 (diffusers'
  fixed cap) three times in four, else in [0.02, 0.5], where the cap binds at many steps.
- Samples (N, C, H, W) from SHAPES, standard normal (the scale a diffusion model's x_t and
  outputs have), rounded to the dtype; the schedule is the oracle's float64 one, rounded by
  the harness like any input.
- A sampling run: T, num_inference_steps n in [1, min(T, 50)], a spacing and (for 'leading')
  steps_offset 0 or 1; a step is an entry t of its timesteps (the first, the last and t = 0
  among the likely ones) and prev_t by the scheduler's rule: DDPM's next entry
  (ddpm_previous_timestep; without inference steps, t - 1 over every training step), DDIM's
  t - T // n (previous_timestep).

Configuration classes (properties/coverage.py), each drawn first: the ``schedule``; the
``chain`` (DDPM's training-time chain over every step, or a sampling run); the ``spacing``;
the ``step``'s position in its run (the first, an inner one, or the last, where prev_t may
be -1); the ``prediction_type``; ``clip_sample`` on or off; and each scheduler's own (STEP
and DDIM's). A test declares the dimensions it draws (``classes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from properties.coverage import stratum
from properties.strategies import seeded_array
from reference import diffusion as Df

T_MENU = (10, 17, 100, 1000)
SHAPES = ((2, 1, 4, 4), (3, 2, 8, 8))
MAX_STEPS = 50
#: every dimension a case of this module can draw, and its classes
CLASSES: dict[str, tuple[str, ...]] = {
    "schedule": Df.SCHEDULES, "chain": ("training", "sampling"), "spacing": Df.SPACINGS,
    "step": ("first", "inner", "last"), "prediction_type": Df.PREDICTION_TYPES,
    "clip_sample": ("clipped", "unclipped"), "variance_type": Df.VARIANCE_TYPES,
    "eta": ("zero", "between", "one"), "final_alpha": ("one", "first_alpha"),
    "model_output": ("given", "clipped")}


def classes(*dimensions: str) -> dict[str, tuple[str, ...]]:
    """The declared classes of a test that draws these dimensions."""
    return {d: CLASSES[d] for d in dimensions}


@dataclass(frozen=True)
class Schedule:
    """A beta schedule's arguments (reference.diffusion.betas)."""

    schedule: str
    num_train_timesteps: int
    beta_start: float
    beta_end: float
    max_beta: float

    def alphas_cumprod(self) -> np.ndarray:
        """The oracle's abar (T,), float64."""
        return Df.alphas_cumprod(Df.betas(self.schedule, self.num_train_timesteps,
                                          self.beta_start, self.beta_end, self.max_beta))

    def arguments(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "num_train_timesteps": self.num_train_timesteps,
                "beta_start": self.beta_start, "beta_end": self.beta_end,
                "max_beta": self.max_beta}


def draw_schedule(data: st.DataObject) -> Schedule:
    schedule = stratum(data, "schedule", Df.SCHEDULES)
    t_count = data.draw(st.sampled_from(T_MENU), label="num_train_timesteps")
    start = 10 ** data.draw(st.floats(-4, -3), label="log10 beta_start")
    end = data.draw(st.floats(5e-3, 0.03), label="beta_end")
    cap = 0.999
    if schedule == "squaredcos_cap_v2" and data.draw(st.integers(0, 3), label="cap") == 0:
        cap = data.draw(st.floats(0.02, 0.5), label="max_beta")
    return Schedule(schedule, t_count, float(start), float(end), cap)


def draw_samples(data: st.DataObject, dtype: str, count: int, shape=None
                 ) -> list[np.ndarray]:
    """``count`` standard-normal arrays of one shape from SHAPES (or ``shape``)."""
    if shape is None:
        shape = data.draw(st.sampled_from(SHAPES), label="shape")
    return [seeded_array(data.draw, shape, dtype) for _ in range(count)]


def draw_timesteps(data: st.DataObject, n: int, t_count: int, at_zero: bool = False
                   ) -> np.ndarray:
    """Per-sample training timesteps (N,) in [0, T); all 0 with ``at_zero``."""
    if at_zero:
        return np.zeros(n, dtype=np.int64)
    return np.asarray(data.draw(st.lists(st.sampled_from((0, t_count - 1)) |
                                         st.integers(0, t_count - 1), min_size=n, max_size=n),
                                label="timesteps"), dtype=np.int64)


@dataclass
class Sampling:
    """A sampling run's timesteps: T, n (None: every training step, DDPM's training-time
    chain), spacing and steps_offset."""

    num_train_timesteps: int
    num_inference_steps: int | None
    spacing: str = "leading"
    steps_offset: int = 0

    def timesteps(self) -> np.ndarray:
        if self.num_inference_steps is None:
            return np.arange(self.num_train_timesteps - 1, -1, -1, dtype=np.int64)
        return Df.timesteps(self.num_train_timesteps, self.num_inference_steps, self.spacing,
                            self.steps_offset)


def draw_sampling(data: st.DataObject, t_count: int, allow_training: bool) -> Sampling:
    if allow_training and stratum(data, "chain", CLASSES["chain"]) == "training":
        return Sampling(t_count, None)
    n = data.draw(st.integers(1, min(t_count, MAX_STEPS)), label="num_inference_steps")
    spacing = stratum(data, "spacing", Df.SPACINGS)
    offset = data.draw(st.integers(0, 1), label="steps_offset") if spacing == "leading" else 0
    assume((n - 1) * (t_count // n) + offset < t_count)
    return Sampling(t_count, n, spacing, offset)


@dataclass
class StepCase:
    """One reverse step: the schedule, t and prev_t, the model output, sample and noise, and
    the scheduler's keyword arguments (prev_t among them)."""

    schedule: Schedule
    sampling: Sampling
    t: int
    model_output: np.ndarray
    sample: np.ndarray
    noise: np.ndarray
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prev_t(self) -> int:
        return self.kwargs["prev_t"]


def draw_step(data: st.DataObject, dtype: str, scheduler: str, min_t: int = 0,
              shape=None, model: bool = True) -> StepCase:
    """A step of ``scheduler`` ('ddpm' or 'ddim') with t >= min_t, its prev_t by the
    scheduler's rule, the arrays and the common keyword arguments (prediction type and
    clipping, drawn where ``model``, else 'epsilon' unclipped); the caller adds the
    scheduler's own."""
    sch = draw_schedule(data)
    sampling = draw_sampling(data, sch.num_train_timesteps, scheduler == "ddpm")
    ts = sampling.timesteps()
    ts = ts[ts >= min_t]
    assume(ts.size > 0)
    position = stratum(data, "step", CLASSES["step"])
    assume(position != "inner" or ts.size > 2)
    i = {"first": 0, "last": ts.size - 1}.get(position)
    if i is None:
        i = data.draw(st.integers(1, ts.size - 2), label="step index")
    t = int(ts[i])
    if scheduler == "ddpm":
        prev_t = (t - 1 if sampling.num_inference_steps is None
                  else Df.ddpm_previous_timestep(t, sampling.timesteps()))
    else:
        prev_t = Df.previous_timestep(t, sch.num_train_timesteps, sampling.num_inference_steps)
    m, x, noise = draw_samples(data, dtype, 3, shape)
    kwargs: dict[str, Any] = {"prev_t": prev_t, "prediction_type": "epsilon",
                              "clip_sample": False, "clip_sample_range": 1.0}
    if model:
        kwargs.update(
            prediction_type=stratum(data, "prediction_type", Df.PREDICTION_TYPES),
            clip_sample=stratum(data, "clip_sample", CLASSES["clip_sample"]) == "clipped",
            clip_sample_range=data.draw(st.sampled_from((1.0,)) | st.floats(0.5, 3.0),
                                        label="clip_sample_range"))
    return StepCase(sch, sampling, t, m, x, noise, kwargs)


# -- the rounding magnitudes of the steps' own formulas ---------------------------------------
class Rounded:
    """A value and a first-order bound of its absolute rounding error in units of the dtype's
    eps (running error analysis): each operation rounds its result once (adds |result|) and
    carries its operands' errors by their partial derivatives. An input of error 0 is exact;
    x / x is exactly 1; a clip passes its input's error (it is 1-Lipschitz)."""

    def __init__(self, v, e=0.0) -> None:
        self.v = np.asarray(v, dtype=np.float64)
        self.e = np.asarray(e, dtype=np.float64)

    @staticmethod
    def of(x) -> Rounded:
        return x if isinstance(x, Rounded) else Rounded(x)

    def __add__(self, o) -> Rounded:
        o = Rounded.of(o)
        v = self.v + o.v
        return Rounded(v, self.e + o.e + np.abs(v))

    __radd__ = __add__

    def __neg__(self) -> Rounded:
        return Rounded(-self.v, self.e)

    def __sub__(self, o) -> Rounded:
        return self + (-Rounded.of(o))

    def __rsub__(self, o) -> Rounded:
        return Rounded.of(o) + (-self)

    def __mul__(self, o) -> Rounded:
        o = Rounded.of(o)
        v = self.v * o.v
        return Rounded(v, self.e * np.abs(o.v) + o.e * np.abs(self.v) + np.abs(v))

    __rmul__ = __mul__

    def __truediv__(self, o) -> Rounded:
        if o is self:
            return Rounded(np.ones_like(self.v))
        o = Rounded.of(o)
        v = self.v / o.v
        return Rounded(v, (self.e + o.e * np.abs(v)) / np.abs(o.v) + np.abs(v))

    def __rtruediv__(self, o) -> Rounded:
        return Rounded.of(o) / self

    def sqrt(self) -> Rounded:
        """sqrt, its error e / (2 sqrt(v)) (an exact 0 stays exact)."""
        v = np.sqrt(np.maximum(self.v, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            carried = np.where(self.e == 0, 0.0, self.e / (2 * v))
        return Rounded(v, carried + v)

    def clip(self, r: float | None) -> Rounded:
        return self if r is None else Rounded(np.clip(self.v, -r, r), self.e)

    def where(self, keep: bool, other) -> Rounded:
        return self if keep else Rounded.of(other)


def _x0_eps(prediction_type: str, m: Rounded, x: Rounded, a: Rounded, b: Rounded
            ) -> tuple[Rounded, Rounded]:
    """(x0_hat, eps_hat) in diffusers' order of operations (scheduling_ddim.py 455-463)."""
    if prediction_type == "epsilon":
        return (x - b.sqrt() * m) / a.sqrt(), m
    if prediction_type == "sample":
        return m, (x - a.sqrt() * m) / b.sqrt()
    return a.sqrt() * x - b.sqrt() * m, a.sqrt() * m + b.sqrt() * x


def step_magnitudes(scheduler: str, case: StepCase, noise: np.ndarray, dtype_rounds: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The rounding magnitudes M of (prev_sample, pred_original_sample) of a DDPM or DDIM
    step computed in diffusers' order of operations (the coefficients from abar_t and
    abar_prev, then the elementwise terms), ``Rounded``; the schedule's entries carry their
    rounding to the dtype where ``dtype_rounds``."""
    ac = case.schedule.alphas_cumprod()
    kw = case.kwargs
    m, x, n = Rounded(case.model_output), Rounded(case.sample), Rounded(noise)

    def entry(i: int) -> Rounded:
        return Rounded(ac[i], ac[i] if dtype_rounds else 0.0)

    a = entry(case.t)
    r = kw["clip_sample_range"] if kw["clip_sample"] else None
    b = 1 - a
    if scheduler == "ddpm":
        ap = entry(case.prev_t) if case.prev_t >= 0 else Rounded(1.0)
        alpha = a / ap
        beta = 1 - alpha
        x0 = _x0_eps(kw["prediction_type"], m, x, a, b)[0].clip(r)
        prev = (ap.sqrt() * beta) / b * x0 + alpha.sqrt() * (1 - ap) / b * x
        small = (1 - ap) / b * beta
        var = beta if kw["variance_type"] == "fixed_large" else \
            Rounded(np.maximum(small.v, kw["min_variance"]), small.e)
        return (prev + var.sqrt() * n).where(case.t > 0, prev).e, x0.e
    if case.prev_t >= 0:
        ap = entry(case.prev_t)
    else:
        ap = Rounded(1.0) if kw["set_alpha_to_one"] else (a if case.t == 0 else entry(0))
    x0, eps = _x0_eps(kw["prediction_type"], m, x, a, b)
    x0 = x0.clip(r)
    std = kw["eta"] * ((1 - ap) / b * (1 - a / ap)).sqrt()
    if kw["use_clipped_model_output"]:
        eps = (x - a.sqrt() * x0) / b.sqrt()
    prev = ap.sqrt() * x0 + (1 - ap - std * std).sqrt() * eps
    return (prev + std * n).where(kw["eta"] > 0, prev).e, x0.e
