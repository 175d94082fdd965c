"""The diffusion denoiser's training (reference/diffusion.py's Denoiser) on each backend,
composed from the backend's own timestep embedding (diffusers' on torch), arithmetic, dense,
SiLU, mse_loss, autodiff and optimizers (backends/compose_denoiser.py): the loss and every
gradient for each prediction type, and the loss history and parameters after n SGD or Adam
steps.

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle (parameters, x0, noise and alphas_cumprod perturbed; the integer timesteps are
exact), plus what the rounding of the MLP's inputs becomes at the results (the embedding's
sin and cos of a = t f carry eps (|a| + 1), x_t and the velocity eps times the magnitudes
of their two products: the oracle rerun with them moved by DELTA times those magnitudes),
plus the magnitudes of the loss's and the gradients' terms (network_terms); for a training
run every step's inputs, gradients and new parameters are moved so, as
test_network_training bounds n steps, with the longest sum's terms times the steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.compose_denoiser import call_denoiser_loss_and_grads, call_train_denoiser
from properties.architectures import network_terms
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.scoped import add_arguments, note_arguments
from properties.strategies import conventions, seeded_array
from properties.tolerance import DELTA, assert_close, moved, noisy_update, round_to, sensitivity, spread
from properties.vae_cases import OPTIMIZERS, draw_hyper
from reference import diffusion as D
from reference import network as Net
from reference.optimizers import make_optimizer

pytestmark = [pytest.mark.dtypes("float32", "float64"), pytest.mark.component("denoiser")]

#: (dim, embed, hidden, batch rows): a short menu, one JAX compilation per entry,
#: prediction type and dtype
MENU = {"small": (3, 4, (5,), 3), "deep": (2, 5, (4, 3), 3)}
CLASSES = {"architecture": tuple(MENU), "prediction_type": D.PREDICTION_TYPES}
T = 1000
ALPHAS_CUMPROD = D.alphas_cumprod(D.betas("linear", T))
MAX_STEPS = 3


@dataclass
class Batch:
    """One (x0, noise, t) batch."""

    x0: np.ndarray
    noise: np.ndarray
    t: np.ndarray


def _batch(data, dim: int, n: int, dtype: str) -> Batch:
    t = np.asarray(data.draw(st.lists(st.integers(0, T - 1), min_size=n, max_size=n),
                             label="t"), dtype=np.int64)
    return Batch(seeded_array(data.draw, (n, dim), dtype), seeded_array(data.draw, (n, dim), dtype),
                 t)


def _model(data, dtype: str) -> tuple[D.Denoiser, list[np.ndarray], int, int]:
    """(model, He-normal parameters from a drawn seed, batch rows, longest reduction)."""
    arch = stratum(data, "architecture", CLASSES["architecture"])
    prediction = stratum(data, "prediction_type", CLASSES["prediction_type"])
    dim, embed, hidden, n = MENU[arch]
    model = D.Denoiser(dim, embed, hidden, prediction)
    params = [round_to(p, dtype) for p in
              D.init_params(model, data.draw(st.integers(0, 2**32 - 1), label="init_seed"))]
    note_arguments({"architecture": arch, "prediction_type": prediction, "N": n})
    return model, params, n, max(dim + embed, *hidden) + n * dim


def _oracle(model: D.Denoiser, params, b: Batch, ac, noise=None):
    """(loss, gradients, MLP input, target) of the oracle; with ``noise`` (a Generator) the
    embedding, x_t and the target move by DELTA times their rounding magnitudes."""
    x_t = D.add_noise(b.x0, b.noise, b.t, ac)
    target = D.training_target(model.prediction_type, b.x0, b.noise, b.t, ac)
    emb = D.timestep_embedding(b.t, model.embed, model.flip_sin_to_cos,
                               model.downscale_freq_shift)
    if noise is not None:
        abar = np.asarray(ac)[b.t][:, None]
        sa, sb = np.sqrt(abar), np.sqrt(1 - abar)
        half = model.embed // 2
        freqs = np.exp(-math.log(10000) * np.arange(half) / (half - model.downscale_freq_shift))
        arg = np.abs(b.t[:, None] * freqs[None, :]) + 1
        emb_m = np.concatenate([arg, arg, np.ones((b.t.size, model.embed % 2))], axis=1)
        x_t = x_t + DELTA * (np.abs(sa * b.x0) + np.abs(sb * b.noise)) * noise.standard_normal(
            x_t.shape)
        emb = emb + DELTA * emb_m * noise.standard_normal(emb.shape)
        if model.prediction_type == "v_prediction":
            target = target + DELTA * (np.abs(sa * b.noise) + np.abs(sb * b.x0)) \
                * noise.standard_normal(target.shape)
    h = np.concatenate([x_t, emb], axis=1)
    value, grads, _ = Net.loss_and_grads(model.architecture(), params, [], h, target)
    return value, grads, h, target


@given(data=st.data())
def test_denoiser_loss_and_grads(backend, dtype, data):
    """The mean squared error of the denoiser's output at x_t = add_noise(x0, noise, t) to
    its prediction type's target, and the gradient of every parameter, equal the oracle's."""
    current_record().declared = CLASSES
    model, params, n, terms = _model(data, dtype)
    b = _batch(data, model.dim, n, dtype)
    ac = round_to(ALPHAS_CUMPROD, dtype)
    k = len(params)

    def f(arrays, noise=None):
        value, grads, _, _ = _oracle(model, arrays[:k], Batch(arrays[k], arrays[k + 1], b.t),
                                     arrays[k + 2], noise)
        return [np.asarray(value), *grads]

    arrays = [*params, b.x0, b.noise, ac]
    expected = f(arrays)
    with unsupported_example():
        value, grads = call_denoiser_loss_and_grads(backend, model, params, b.x0, b.noise, b.t,
                                                    ac, dtype)
    _, _, h, target = _oracle(model, params, b, ac)
    loss_m, grad_m = network_terms(model.architecture(), params, [], h, target, {})
    conds = [c + s + m for c, s, m in zip(sensitivity(f, arrays),
                                          spread(lambda noise: f(arrays, noise)),
                                          [loss_m, *grad_m], strict=True)]
    names = ["loss", *(f"gradient of {p}" for p in model.architecture().param_names())]
    for name, a, e, c in zip(names, [value, *grads], expected, conds, strict=True):
        assert_close(f"denoiser {name}", a, e, dtype, c, terms)


@given(data=st.data())
def test_denoiser_training(backend, dtype, data):
    """n steps of SGD or Adam, one per (x0, noise, t) batch: the loss of every batch before
    its step and the final parameters equal the oracle's."""
    current_record().declared = {**CLASSES, "optimizer": OPTIMIZERS}
    model, params, n, terms = _model(data, dtype)
    steps = data.draw(st.integers(1, MAX_STEPS), label="steps")
    batches = [_batch(data, model.dim, n, dtype) for _ in range(steps)]
    optimizer = stratum(data, "optimizer", OPTIMIZERS)
    # what a known divergence may be scoped by
    add_arguments(optimizer=optimizer)
    hyper = conventions(data, backend, optimizer, draw_hyper(data, optimizer))
    ac = round_to(ALPHAS_CUMPROD, dtype)
    k = len(params)
    loss_ms: list[float] = []

    def run(arrays, noise=None, check=False):
        """The oracle's training; with ``noise`` every step's inputs, gradients and new
        parameters move by DELTA times their magnitudes."""
        p = list(arrays[:k])
        opt = make_optimizer(optimizer, **hyper)
        state = opt.init(p)
        history = []
        for j, bt in enumerate(batches):
            b = Batch(arrays[k + j], arrays[k + steps + j], bt.t)
            value, grads, h, target = _oracle(model, p, b, arrays[-1], noise)
            history.append(value)
            if check or noise is not None:
                loss_m, grad_m = network_terms(model.architecture(), p, [], h, target, {})
                loss_ms.append(loss_m)
            if noise is not None:
                grads = moved(noise, grads, grad_m)
            p, state = noisy_update(opt, grads, state, p, noise)
        return [np.asarray(history), *p]

    arrays = [*params, *(b.x0 for b in batches), *(b.noise for b in batches), ac]
    expected = run(arrays, check=True)
    exact_loss_m = np.asarray(loss_ms)
    with unsupported_example():
        final, history = call_train_denoiser(
            backend, model, params, [(b.x0, b.noise, b.t) for b in batches], ac, optimizer,
            hyper, dtype)
    conds = [c + s for c, s in zip(sensitivity(run, arrays),
                                   spread(lambda noise: run(arrays, noise)), strict=True)]
    conds[0] = conds[0] + exact_loss_m  # each recorded loss carries its own rounding
    terms *= steps
    assert_close("denoiser loss history", history, expected[0], dtype, conds[0], terms)
    for name, a, e, c in zip(model.architecture().param_names(), final, expected[1:], conds[1:],
                             strict=True):
        assert_close(f"denoiser {name} after {steps} steps", a, e, dtype, c, terms)
