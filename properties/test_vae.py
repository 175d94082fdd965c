"""The variational autoencoder (reference/vae.py) on each backend, composed from the
backend's own bodies, arithmetic, reconstruction loss, autodiff and optimizers
(backends/compose_vae.py) unless it overrides the model on purpose: the negative ELBO, its
reconstruction and KL parts and every gradient of drawn MLP and conv VAEs (both
reconstructions, beta and the noise drawn); the loss history and parameters after n SGD or
Adam steps; and invariants of the backend's own results (the KL is >= 0 and exactly 0 at
mu = 0, logvar = 0; the gradients flow through the reparameterisation).

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle, plus the magnitudes M of the loss's terms and of every gradient's
(properties/vae_cases.py's vae_terms, network_terms' rule), and for a training run what each
step's rounding becomes at the results (every step's gradients and new parameters moved by
DELTA times their magnitudes, as test_network_training bounds n steps), with the longest
sum's terms times the steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backends.compose_vae import call_train_vae, call_vae_loss_and_grads
from properties import vae_cases as VC
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.scoped import add_arguments
from properties.strategies import conventions, seeded_array
from properties.tolerance import (
    assert_close,
    assert_within,
    moved,
    noisy_update,
    sensitivity,
    spread,
    tolerance,
)
from reference import vae as V
from reference.optimizers import make_optimizer

pytestmark = [pytest.mark.dtypes("float32", "float64"), pytest.mark.component("vae")]


@given(data=st.data())
def test_vae_loss_and_grads(backend, dtype, data):
    """The negative ELBO, its reconstruction and KL parts, and the gradient of every
    parameter (eps held fixed) equal the oracle's."""
    current_record().declared = VC.CLASSES
    case = VC.draw_case(data, dtype)
    VC.avoid_kinks(case.model, case.params, case.x, case.eps, dtype)

    def f(arrays):
        p, x, eps = case.rebuild(arrays)
        value, grads, (rec, kl) = V.loss_and_grads(case.model, p, x, eps)
        return [np.asarray(value), np.asarray(rec), np.asarray(kl), *grads]

    arrays = case.arrays()
    expected = f(arrays)
    with unsupported_example():
        value, grads, rec, kl = call_vae_loss_and_grads(backend, case.model, case.params,
                                                        case.x, case.eps, dtype)
    loss_m, rec_m, kl_m, grad_m = VC.vae_terms(case.model, case.params, case.x, case.eps)
    conds = [c + m for c, m in zip(sensitivity(f, arrays), [loss_m, rec_m, kl_m, *grad_m],
                                   strict=True)]
    names = ["negative ELBO", "reconstruction", "KL",
             *(f"gradient of {n}" for n in case.param_names())]
    for name, a, e, c in zip(names, [value, rec, kl, *grads], expected, conds, strict=True):
        assert_close(f"vae {name}", a, e, dtype, c, case.terms)


@given(data=st.data())
def test_vae_training(backend, dtype, data):
    """n steps of SGD or Adam, one per (x, eps) batch: the loss of every batch before its
    step and the final parameters equal the oracle's."""
    current_record().declared = {**VC.CLASSES, "optimizer": VC.OPTIMIZERS}
    case = VC.draw_case(data, dtype)
    model, k = case.model, len(case.params)
    steps = data.draw(st.integers(1, VC.MAX_STEPS), label="steps")
    xs = [case.x] + [VC.draw_inputs(data, model.reconstruction, case.x.shape, dtype)
                     for _ in range(steps - 1)]
    epss = [case.eps] + [seeded_array(data.draw, case.eps.shape, dtype) for _ in range(steps - 1)]
    optimizer = stratum(data, "optimizer", VC.OPTIMIZERS)
    # what a known divergence may be scoped by
    add_arguments(optimizer=optimizer)
    hyper = conventions(data, backend, optimizer, VC.draw_hyper(data, optimizer))
    loss_ms: list[float] = []

    def run(arrays, noise=None, check=False):
        """The oracle's training; with ``noise`` every step's gradients move by DELTA times
        their magnitudes and its new parameters by DELTA (|p| + |q - p|)."""
        p = list(arrays[:k])
        opt = make_optimizer(optimizer, **hyper)
        state = opt.init(p)
        history = []
        for x, eps in zip(arrays[k:k + steps], arrays[k + steps:], strict=True):
            if check:
                VC.avoid_kinks(model, p, x, eps, dtype)
                loss_ms.append(VC.vae_terms(model, p, x, eps)[0])
            value, grads, _ = V.loss_and_grads(model, p, x, eps)
            history.append(value)
            if noise is not None:
                grads = moved(noise, grads, VC.vae_terms(model, p, x, eps)[3])
            p, state = noisy_update(opt, grads, state, p, noise)
        return [np.asarray(history), *p]

    arrays = [*case.params, *xs, *epss]
    expected = run(arrays, check=True)
    with unsupported_example():
        final, history = call_train_vae(backend, model, case.params, list(zip(xs, epss, strict=True)),
                                        optimizer, hyper, dtype)
    conds = [c + s for c, s in zip(sensitivity(run, arrays),
                                   spread(lambda noise: run(arrays, noise)), strict=True)]
    conds[0] = conds[0] + np.asarray(loss_ms)  # each recorded loss carries its own rounding
    terms = case.terms * steps
    assert_close("vae loss history", history, expected[0], dtype, conds[0], terms)
    for name, a, e, c in zip(case.param_names(), final, expected[1:], conds[1:], strict=True):
        assert_close(f"vae {name} after {steps} steps", a, e, dtype, c, terms)


@given(data=st.data())
def test_vae_kl_invariants(backend, dtype, data):
    """The backend's KL is >= 0 (up to its rounding, eps times the magnitude of its terms),
    and exactly 0 where the encoder's last dense layer is 0 (mu = 0, logvar = 0)."""
    current_record().declared = VC.CLASSES
    case = VC.draw_case(data, dtype)
    with unsupported_example():
        _, _, _, kl = call_vae_loss_and_grads(backend, case.model, case.params, case.x,
                                              case.eps, dtype)
    kl_m = VC.vae_terms(case.model, case.params, case.x, case.eps)[2]
    assert_within("vae KL >= 0", np.minimum(kl, 0.0), 0.0,
                  tolerance(np.float64(0.0), dtype, np.float64(kl_m), case.terms))
    k = len(case.model.encoder().shapes()[0])
    params = list(case.params)
    params[k - 2], params[k - 1] = np.zeros_like(params[k - 2]), np.zeros_like(params[k - 1])
    with unsupported_example():
        _, _, _, kl0 = call_vae_loss_and_grads(backend, case.model, params, case.x, case.eps,
                                               dtype)
    assert_within("vae KL at mu = 0, logvar = 0", kl0, 0.0, 0.0)


@given(data=st.data())
def test_vae_gradients_through_reparameterisation(backend, dtype, data):
    """With beta = 0 the encoder is trained by the reconstruction alone, through
    z = mu + exp(logvar / 2) eps: where eps != 0 and the oracle's encoder gradients are not
    all 0, neither are the backend's (a detached z, or a reparameterisation that drops eps,
    zeroes them)."""
    current_record().declared = VC.CLASSES
    case = VC.draw_case(data, dtype, beta=0.0)
    assume(np.all(case.eps != 0))
    k = len(case.model.encoder().shapes()[0])
    _, grads, _ = V.loss_and_grads(case.model, case.params, case.x, case.eps)
    assume(any(np.any(g != 0) for g in grads[:k]))
    with unsupported_example():
        _, got, _, _ = call_vae_loss_and_grads(backend, case.model, case.params, case.x,
                                               case.eps, dtype)
    assert any(np.any(g != 0) for g in got[:k]), \
        "vae: every encoder gradient is 0 with beta = 0: no gradient through the reparameterisation"
