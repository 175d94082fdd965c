"""The diffusion schedulers (reference/diffusion.py) on each backend
(backends/diffusion.py): the cumulative alphas of a schedule, the forward process (add_noise,
the velocity and training targets), the DDPM and DDIM steps with the noise given, and the
inference timesteps, against the oracle, and invariants on the backend's own results
(properties/diffusion_cases.py draws them).

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle over every float input (the samples, model output, noise and the schedule itself,
which the harness rounds to the dtype like any input); for a step, plus the magnitudes of the
terms its own formulas combine (diffusion_cases.step_magnitudes: the coefficients'
cancellations, 1 - abar_t / abar_prev among them, and terms that cancel in the result, as
sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps_hat does at the last DDIM step); for a
schedule computed from its arguments, plus what each rounding of its betas, of 1 - beta and of
every partial product becomes at abar (``schedule_spread``), over T factors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.diffusion import call_forward_process, call_schedule, call_step, call_timesteps
from properties import diffusion_cases as DC
from properties import tolerance as Tol
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.scoped import note_arguments
from properties.strategies import conventions
from properties.tolerance import DELTA, assert_close, assert_within, round_to, sensitivity, spread
from reference import diffusion as Df

pytestmark = [pytest.mark.dtypes("float32", "float64")]
#: the longest sum behind one element of a step's results: x0_hat's two terms, then the
#: posterior mean's two and the noise (DDPM), or x0's, the direction's and the noise (DDIM)
STEP_TERMS = 4


def schedule_spread(sch: DC.Schedule) -> np.ndarray:
    """What the rounding of each beta, each 1 - beta and each partial product becomes at abar:
    the oracle's schedule with each of them moved by DELTA times its magnitude."""
    betas = Df.betas(**sch.arguments())

    def run(noise):
        if noise is None:
            return [np.cumprod(1 - betas)]
        b = betas * (1 + DELTA * noise.standard_normal(betas.shape))
        alphas = (1 - b) + DELTA * noise.standard_normal(b.shape)  # |1| + |b| ~ 1
        return [np.cumprod(alphas * (1 + DELTA * noise.standard_normal(b.shape)))]

    return spread(run)[0]


@pytest.mark.component("diffusion_schedule")
@given(data=st.data())
def test_diffusion_schedule(backend, dtype, data):
    """The cumulative alphas of a drawn schedule equal the oracle's."""
    current_record().declared = DC.classes("schedule")
    sch = DC.draw_schedule(data)
    with unsupported_example():
        got = call_schedule(backend, *sch.arguments().values(), dtype)

    def f(arrays):
        start, end, cap = (float(a) for a in arrays)
        return Df.alphas_cumprod(Df.betas(sch.schedule, sch.num_train_timesteps, start, end,
                                          cap))

    arrays = [np.asarray(sch.beta_start), np.asarray(sch.beta_end), np.asarray(sch.max_beta)]
    cond = sensitivity(f, arrays)[0] + schedule_spread(sch)
    assert_close(f"{sch.schedule} alphas_cumprod", got, f(arrays), dtype, cond,
                 sch.num_train_timesteps)


@pytest.mark.component("diffusion_schedule")
@given(data=st.data())
def test_diffusion_schedule_decreases(backend, dtype, data):
    """The backend's cumulative alphas lie in (0, 1] and decrease strictly."""
    current_record().declared = DC.classes("schedule")
    sch = DC.draw_schedule(data)
    with unsupported_example():
        got = call_schedule(backend, *sch.arguments().values(), dtype)
    assert np.all((got > 0) & (got <= 1)), f"alphas_cumprod outside (0, 1]: {got}"
    steps = np.diff(got)
    assert np.all(steps < 0), f"alphas_cumprod not strictly decreasing at " \
                              f"{np.flatnonzero(steps >= 0).tolist()}"


def _forward_case(data, dtype, at_zero=False):
    current_record().declared = DC.classes("schedule")
    sch = DC.draw_schedule(data)
    x0, noise = DC.draw_samples(data, dtype, 2)
    ts = DC.draw_timesteps(data, x0.shape[0], sch.num_train_timesteps, at_zero)
    return sch.alphas_cumprod(), x0, noise, ts


@pytest.mark.component("add_noise")
@given(data=st.data())
def test_add_noise(backend, dtype, data):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise equals the oracle's, per-sample
    timesteps."""
    ac, x0, noise, ts = _forward_case(data, dtype)
    with unsupported_example():
        got = call_forward_process(backend, "add_noise", x0, noise, ts, ac, dtype)

    def f(arrays):
        return Df.add_noise(arrays[0], arrays[1], ts, arrays[2])

    arrays = [x0, noise, ac]
    assert_close("add_noise", got, f(arrays), dtype, sensitivity(f, arrays)[0], 2)


@pytest.mark.component("add_noise")
@given(data=st.data())
def test_add_noise_at_zero(backend, dtype, data):
    """At t = 0, x_t - x0 = (sqrt(abar_0) - 1) x0 + sqrt(1 - abar_0) noise, so
    |x_t - x0| <= (1 - sqrt(abar_0)) |x0| + sqrt(1 - abar_0) |noise| (abar_0 = 1 - beta_0: x_t
    is x0 up to the first beta), plus the rounding of the backend's two products and sum."""
    ac, x0, noise, ts = _forward_case(data, dtype, at_zero=True)
    with unsupported_example():
        got = call_forward_process(backend, "add_noise", x0, noise, ts, ac, dtype)
    a0 = float(round_to(ac, dtype)[0])  # the schedule as the backend holds it
    terms = math.sqrt(a0) * np.abs(x0) + math.sqrt(1 - a0) * np.abs(noise)
    bound = (1 - math.sqrt(a0)) * np.abs(x0) + math.sqrt(1 - a0) * np.abs(noise)
    assert_within("add_noise at t = 0 minus x0", got - x0, np.zeros_like(x0),
                  bound + Tol.tolerance(got, dtype, terms, 2))


@pytest.mark.component("training_target")
@given(data=st.data())
def test_training_target(backend, dtype, data):
    """The velocity sqrt(abar_t) noise - sqrt(1 - abar_t) x0 and the training target of a
    drawn prediction type (noise, x0 or the velocity) equal the oracle's."""
    ac, x0, noise, ts = _forward_case(data, dtype)
    current_record().declared = DC.classes("schedule", "prediction_type")
    kind = stratum(data, "prediction_type", Df.PREDICTION_TYPES)
    with unsupported_example():
        v = call_forward_process(backend, "velocity", x0, noise, ts, ac, dtype)
        target = call_forward_process(backend, "training_target", x0, noise, ts, ac, dtype,
                                      kind)

    def fv(arrays):
        return Df.velocity(arrays[0], arrays[1], ts, arrays[2])

    def ft(arrays):
        return Df.training_target(kind, arrays[0], arrays[1], ts, arrays[2])

    arrays = [x0, noise, ac]
    assert_close("velocity", v, fv(arrays), dtype, sensitivity(fv, arrays)[0], 2)
    assert_close(f"{kind} training target", target, ft(arrays), dtype,
                 sensitivity(ft, arrays)[0], 2)


#: the classes of a step's case (diffusion_cases.CLASSES): DDPM's and DDIM's
DDPM_CLASSES = DC.classes("schedule", "chain", "spacing", "step", "prediction_type",
                          "clip_sample", "variance_type")
DDIM_CLASSES = DC.classes("schedule", "spacing", "step", "prediction_type", "clip_sample",
                          "eta", "final_alpha", "model_output")


def _ddpm_case(data, backend, dtype, min_t=0):
    current_record().declared = DDPM_CLASSES
    case = DC.draw_step(data, dtype, "ddpm", min_t)
    case.kwargs["variance_type"] = stratum(data, "variance_type", Df.VARIANCE_TYPES)
    case.kwargs["min_variance"] = data.draw(st.sampled_from((1e-20, 0.0)), label="min_variance")
    case.kwargs = conventions(data, backend, "ddpm_step", case.kwargs)
    return case


def _ddim_case(data, backend, dtype, deterministic=False):
    """A DDIM step; ``deterministic``: eta = 0 and an 'epsilon' model without clipping."""
    current_record().declared = (DC.classes("schedule", "spacing", "step", "final_alpha")
                                 if deterministic else DDIM_CLASSES)
    case = DC.draw_step(data, dtype, "ddim", model=not deterministic)
    eta, case.kwargs["use_clipped_model_output"] = 0.0, False
    if not deterministic:
        eta = {"zero": 0.0, "one": 1.0}.get(stratum(data, "eta", DC.CLASSES["eta"]))
        if eta is None:
            eta = data.draw(st.floats(0.05, 0.99), label="eta")
        case.kwargs["use_clipped_model_output"] = \
            stratum(data, "model_output", DC.CLASSES["model_output"]) == "clipped"
    case.kwargs.update(eta=eta, set_alpha_to_one=stratum(data, "final_alpha",
                                                         DC.CLASSES["final_alpha"]) == "one")
    case.kwargs = conventions(data, backend, "ddim_step", case.kwargs)
    return case


def _step(name, case, noise=None):
    """(f, arrays): the oracle's step as a function of its float inputs."""
    oracle = Df.ddpm_step if name == "ddpm_step" else Df.ddim_step

    def f(arrays):
        m, x, n, ac = arrays
        return list(oracle(m, case.t, x, n, ac, **case.kwargs))

    return f, [case.model_output, case.sample,
               case.noise if noise is None else noise, case.schedule.alphas_cumprod()]


def _conditions(name, case, dtype, noise=None):
    """(expected, [condition of prev_sample, of pred_original_sample]): the oracle's step and
    its condition terms, measured over the float inputs, plus the rounding magnitudes of the
    step's own formulas (diffusion_cases.step_magnitudes)."""
    f, arrays = _step(name, case, noise)
    mags = DC.step_magnitudes(name.removesuffix("_step"), case, arrays[2], dtype != "float64")
    return f(arrays), [c + mg for c, mg in zip(sensitivity(f, arrays), mags, strict=True)]


def _check_step(backend, dtype, name, case):
    # the example's arguments, on which a scoped known divergence is judged
    note_arguments({**case.schedule.arguments(), **case.kwargs, "t": case.t})
    with unsupported_example():
        prev, x0 = call_step(backend, name, case.model_output, case.t, case.sample, case.noise,
                             case.schedule.alphas_cumprod(), case.kwargs, dtype)
    expected, conds = _conditions(name, case, dtype)
    where = f"{name} t = {case.t} -> {case.prev_t}"
    assert_close(f"{where} pred_original_sample", x0, expected[1], dtype, conds[1], STEP_TERMS)
    assert_close(f"{where} prev_sample", prev, expected[0], dtype, conds[0], STEP_TERMS)


@pytest.mark.component("ddpm_step")
@given(data=st.data())
def test_ddpm_step(backend, dtype, data):
    """prev_sample and pred_original_sample of DDPMScheduler.step equal the oracle's, for each
    prediction and variance type, with and without clipping, over training chains and
    sampling runs of every spacing (prev_t the next entry)."""
    _check_step(backend, dtype, "ddpm_step", _ddpm_case(data, backend, dtype))


@pytest.mark.component("ddpm_step")
@given(data=st.data())
def test_ddpm_step_variance(backend, dtype, data):
    """The noise a DDPM step adds at t > 0 is the declared variance's: the step with noise n
    minus the step with noise 0 is sqrt(ddpm_variance) n (beta-tilde for 'fixed_small', beta
    for 'fixed_large'), each step within its own tolerance."""
    case = _ddpm_case(data, backend, dtype, min_t=1)
    zero = np.zeros_like(case.noise)
    ac = case.schedule.alphas_cumprod()
    with unsupported_example():
        p1, _ = call_step(backend, "ddpm_step", case.model_output, case.t, case.sample,
                          case.noise, ac, case.kwargs, dtype)
        p0, _ = call_step(backend, "ddpm_step", case.model_output, case.t, case.sample, zero,
                          ac, case.kwargs, dtype)
    kw = case.kwargs
    var = Df.ddpm_variance(case.t, kw["prev_t"], round_to(ac, dtype), kw["variance_type"],
                           kw["min_variance"])
    (e1, _), (c1, _) = _conditions("ddpm_step", case, dtype)
    (e0, _), (c0, _) = _conditions("ddpm_step", case, dtype, zero)
    bound = (Tol.tolerance(e1, dtype, c1, STEP_TERMS)
             + Tol.tolerance(e0, dtype, c0, STEP_TERMS))
    assert_within(f"{kw['variance_type']} noise of the step t = {case.t} -> {kw['prev_t']}",
                  p1 - p0, math.sqrt(var) * case.noise, bound)


@pytest.mark.component("ddim_step")
@given(data=st.data())
def test_ddim_step(backend, dtype, data):
    """prev_sample and pred_original_sample of DDIMScheduler.step equal the oracle's, eta 0
    and > 0, each prediction type, clipping, set_alpha_to_one and use_clipped_model_output,
    over sampling runs of every spacing (prev_t = t - T // n)."""
    _check_step(backend, dtype, "ddim_step", _ddim_case(data, backend, dtype))


@pytest.mark.component("ddim_step")
@given(data=st.data())
def test_ddim_step_deterministic(backend, dtype, data):
    """With eta = 0 a DDIM step adds no noise: two different noises give the same result;
    and for an 'epsilon' model without clipping the oracle's ddim_inverse_step of the
    backend's prev_sample recovers x_t, within the backend's tolerance carried back by the
    inversion's factor sqrt(abar_t / abar_prev)."""
    case = _ddim_case(data, backend, dtype, deterministic=True)
    other = DC.draw_samples(data, dtype, 1, case.sample.shape)[0]
    ac = case.schedule.alphas_cumprod()
    with unsupported_example():
        p1, _ = call_step(backend, "ddim_step", case.model_output, case.t, case.sample,
                          case.noise, ac, case.kwargs, dtype)
        p2, _ = call_step(backend, "ddim_step", case.model_output, case.t, case.sample, other,
                          ac, case.kwargs, dtype)
    where = f"ddim_step eta = 0, t = {case.t} -> {case.prev_t}"
    assert_within(f"{where}, a second noise", p2, p1, Tol.tolerance(p1, dtype))
    one = case.kwargs["set_alpha_to_one"]

    def inverse(arrs):
        m, prev, a = arrs
        return Df.ddim_inverse_step(m, case.prev_t, prev, a, t=case.t, set_alpha_to_one=one)

    ac_r = round_to(ac, dtype)
    a = float(ac_r[case.t])
    ap = float(ac_r[case.prev_t]) if case.prev_t >= 0 else (1.0 if one else float(ac_r[0]))
    inv = [case.model_output, p1, ac_r]
    (expected, _), (cond, _) = _conditions("ddim_step", case, dtype)
    tol_prev = Tol.tolerance(expected, dtype, cond, STEP_TERMS)
    bound = math.sqrt(a / ap) * tol_prev + Tol.tolerance(case.sample, "float64",
                                                     sensitivity(inverse, inv)[0], STEP_TERMS)
    assert_within(f"{where}, ddim_inverse_step of its result", inverse(inv), case.sample, bound)


@pytest.mark.dtypes("float64")
@pytest.mark.component("diffusion_timesteps")
@given(data=st.data())
def test_diffusion_timesteps(backend, dtype, data):
    """The inference timesteps of a drawn spacing equal the oracle's, entry for entry
    (diffusers' float64 rounding, half to even; 'trailing''s extra -1 kept or dropped as
    the backend declares)."""
    current_record().declared = DC.classes("spacing")
    t_count = data.draw(st.sampled_from(DC.T_MENU) | st.integers(1, 1000),
                        label="num_train_timesteps")
    s = DC.draw_sampling(data, t_count, allow_training=False)
    kw = conventions(data, backend, "diffusion_timesteps",
                     {"extra_step": data.draw(st.sampled_from(Df.EXTRA_STEPS),
                                              label="extra_step")})
    with unsupported_example():
        got = call_timesteps(backend, t_count, s.num_inference_steps, s.spacing,
                             s.steps_offset, kw["extra_step"])
    expected = Df.scheduler_timesteps(t_count, s.num_inference_steps, s.spacing,
                                      s.steps_offset, kw["extra_step"])
    assert_within(f"{s.spacing} timesteps, T = {t_count}, n = {s.num_inference_steps}", got,
                  expected, np.zeros(expected.shape))
