"""The DCGAN (reference/gan.py) on each backend, composed from the backend's own convolutions,
batch norm, activations, dense, BCE-with-logits, autodiff and optimizers
(backends/compose_gan.py) unless it overrides the model on purpose: the discriminator's loss,
every gradient and running statistic; the generator's through the discriminator, for both
generator losses; and the losses, running statistics and parameters after n alternating
training steps with Adam (b1 = 0.5) and SGD (properties/gan_cases.py draws them). Invariants
on the backend's own results: a discriminator with a zero last layer has loss 2 log 2; each
network's step leaves the other's parameters alone; the non-saturating generator gradient
stays finite and nonzero where the discriminator rejects the fakes with logits far below 0.

Tolerances are the policy's (properties/tolerance.py): the condition term measured on the
oracle plus the magnitudes of the terms each loss and gradient sums (gan_cases'
discriminator_terms and generator_terms), and for training what every step's rounding
becomes at the results (gan_cases.train_trace with noise), as test_network_training builds
them, the longest sum's terms times the steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.compose_gan import (
    call_gan_discriminator_loss_and_grads,
    call_gan_generator_loss_and_grads,
    call_train_gan,
)
from properties import gan_cases as GC
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record
from properties.tolerance import assert_close, assert_within, sensitivity, spread
from reference import gan
from reference.optimizers import make_optimizer

pytestmark = [pytest.mark.dtypes("float32", "float64"), pytest.mark.component("dcgan")]


def _discriminator(backend, case: GC.GANCase, dtype: str) -> None:
    """The backend's discriminator step on the case against the oracle's."""
    def f(arrays):
        _, _, dp, ds, real, fake, _ = case.rebuild(arrays)
        value, grads, state = gan.discriminator_loss_and_grads(case.model, dp, ds, real, fake,
                                                               case.bn)
        return [np.asarray(value), *grads, *state]

    arrays = case.arrays()
    expected = f(arrays)
    with unsupported_example():
        value, grads, state = call_gan_discriminator_loss_and_grads(
            backend, case.model, case.dparams, case.dstate, case.real,
            case.fake, case.bn, dtype)
    loss_m, grad_m = GC.discriminator_terms(case.model, case.dparams, case.dstate, case.real,
                                            case.fake, case.bn)
    conds = sensitivity(f, arrays)
    ms = [loss_m, *grad_m, *(0.0 for _ in state)]
    names = ["loss", *(f"gradient of {n}" for n in case.discriminator_names()),
             *(f"discriminator state[{i}]" for i in range(len(state)))]
    for name, a, e, c, m in zip(names, [value, *grads, *state], expected, conds, ms,
                                strict=True):
        assert_close(f"dcgan discriminator {name}", a, e, dtype, c + m, case.terms)


def _generator(backend, case: GC.GANCase, dtype: str, loss: str, gradients_only: bool = False
               ) -> list[np.ndarray]:
    """The backend's generator step against the oracle's (``gradients_only``: its gradients
    alone); returns its gradients."""
    def f(arrays):
        gp, gs, dp, ds, _, _, z = case.rebuild(arrays)
        value, grads, new_gs, new_ds = gan.generator_loss_and_grads(case.model, gp, gs, dp, ds,
                                                                    z, case.bn, loss)
        return [np.asarray(value), *grads, *new_gs, *new_ds]

    arrays = case.arrays()
    expected = f(arrays)
    with unsupported_example():
        value, grads, gs, ds = call_gan_generator_loss_and_grads(
            backend, case.model, case.gparams, case.gstate, case.dparams, case.dstate, case.z,
            case.bn, loss, dtype)
    loss_m, grad_m = GC.generator_terms(case.model, case.gparams, case.gstate, case.dparams,
                                        case.dstate, case.z, case.bn, loss)
    conds = sensitivity(f, arrays)
    ms = [abs(loss_m), *grad_m, *(0.0 for _ in (*gs, *ds))]
    names = ["loss", *(f"gradient of {n}" for n in case.generator_names()),
             *(f"generator state[{i}]" for i in range(len(gs))),
             *(f"discriminator state[{i}]" for i in range(len(ds)))]
    checked = slice(1, 1 + len(grads)) if gradients_only else slice(None)
    for name, a, e, c, m in zip(names[checked], [value, *grads, *gs, *ds][checked],
                                expected[checked], conds[checked], ms[checked], strict=True):
        assert_close(f"dcgan {loss} generator {name}", a, e, dtype, c + m, case.terms)
    return grads


@given(data=st.data())
def test_dcgan_discriminator_loss_and_grads(backend, dtype, data):
    """BCE(D(real), 1) + BCE(D(fake), 0) in training mode, the gradient of every
    discriminator parameter (the two passes' summed) and the running statistics after both
    passes equal the oracle's."""
    current_record().declared = GC.CLASSES
    case = GC.draw(data, backend, dtype, loss=False)
    GC.avoid_kinks(case.model, case.gparams, case.gstate, case.dparams, case.dstate, case.z,
                   (case.real, case.fake), case.bn, dtype)
    _discriminator(backend, case, dtype)


@given(data=st.data())
def test_dcgan_generator_loss_and_grads(backend, dtype, data):
    """The generator's loss of D(G(z)) (non-saturating BCE(D(G(z)), 1) or minimax
    -BCE(D(G(z)), 0)), the gradient of every generator parameter through the discriminator,
    and both networks' running statistics equal the oracle's."""
    current_record().declared = GC.GENERATOR_CLASSES
    case = GC.draw(data, backend, dtype)
    GC.avoid_kinks(case.model, case.gparams, case.gstate, case.dparams, case.dstate, case.z,
                   (), case.bn, dtype)
    _generator(backend, case, dtype, case.loss)


@given(data=st.data())
def test_dcgan_training(backend, dtype, data):
    """n alternating steps (fake = G(z); the D step on real and the detached fake; the G
    step through the updated D), Adam (b1 = 0.5) or SGD for each network: every step's two
    losses, and both networks' running statistics and parameters after the last step, equal
    the oracle's."""
    current_record().declared = GC.TRAINING_CLASSES
    case = GC.draw_training(data, backend, dtype)
    steps = len(case.batches)

    def run(arrays, noise=None, kinks=None):
        g_opt = make_optimizer(case.g_optimizer[0], **case.g_optimizer[1])
        d_opt = make_optimizer(case.d_optimizer[0], **case.d_optimizer[1])
        return GC.train_trace(case, arrays, g_opt, d_opt, noise, kinks)

    arrays = case.arrays()
    expected, loss_m = run(arrays, kinks=dtype)
    with unsupported_example():
        gp, gs, dp, ds, d_losses, g_losses = call_train_gan(
            backend, case.model, case.gparams, case.gstate, case.dparams, case.dstate,
            case.g_optimizer, case.d_optimizer, case.batches, case.bn, case.loss, dtype)
    conds = [c + s for c, s in zip(sensitivity(lambda a: run(a)[0], arrays),
                                   spread(lambda noise: run(arrays, noise)[0]), strict=True)]
    conds[0] = conds[0] + np.asarray(loss_m[0::2])  # each loss carries its own rounding
    conds[1] = conds[1] + np.asarray(loss_m[1::2])
    terms = case.terms * steps
    assert_close("discriminator loss history", d_losses, expected[0], dtype, conds[0], terms)
    assert_close(f"{case.loss} generator loss history", g_losses, expected[1], dtype, conds[1],
                 terms)
    names = [*(f"{n} after {steps} steps" for n in case.generator_names()),
             *(f"generator state[{i}] after {steps} steps" for i in range(len(gs))),
             *(f"{n} after {steps} steps" for n in case.discriminator_names()),
             *(f"discriminator state[{i}] after {steps} steps" for i in range(len(ds)))]
    for name, a, e, c in zip(names, [*gp, *gs, *dp, *ds], expected[2:], conds[2:], strict=True):
        assert_close(name, a, e, dtype, c, terms)


@given(data=st.data())
def test_dcgan_zero_logits(backend, dtype, data):
    """A discriminator whose last dense weight and bias are 0 gives every image the logit 0:
    the discriminator's loss is 2 log 2, the non-saturating generator's log 2 and the
    minimax one's -log 2, each within the rounding of its own terms."""
    current_record().declared = GC.GENERATOR_CLASSES
    case = GC.draw(data, backend, dtype)
    case.dparams[-2] = np.zeros_like(case.dparams[-2])
    case.dparams[-1] = np.zeros_like(case.dparams[-1])
    n = case.real.shape[0]
    with unsupported_example():
        d_loss, _, _ = call_gan_discriminator_loss_and_grads(
            backend, case.model, case.dparams, case.dstate, case.real, case.fake, case.bn, dtype)
        g_loss, _, _, _ = call_gan_generator_loss_and_grads(
            backend, case.model, case.gparams, case.gstate, case.dparams, case.dstate, case.z,
            case.bn, case.loss, dtype)
    log2 = np.log(2.0)
    assert_close("discriminator loss at zero logits", d_loss, 2 * log2, dtype, 2 * log2, n)
    want = log2 if case.loss == "non_saturating" else -log2
    assert_close(f"{case.loss} generator loss at zero logits", g_loss, want, dtype, log2, n)


@given(data=st.data())
def test_dcgan_steps_leave_the_other_network_alone(backend, dtype, data):
    """Training with one network held fixed (its optimizer never steps it, as with
    requires_grad_(False)): its parameters come out exactly as they went in, so the other
    network's step does not move them."""
    current_record().declared = {**GC.TRAINING_CLASSES, "frozen": ("generator",
                                                                   "discriminator")}
    case = GC.draw_training(data, backend, dtype)
    frozen = stratum(data, "frozen", ("generator", "discriminator"))
    g_opt, d_opt = ((None, case.d_optimizer) if frozen == "generator" else
                    (case.g_optimizer, None))
    with unsupported_example():
        gp, _, dp, _, _, _ = call_train_gan(
            backend, case.model, case.gparams, case.gstate, case.dparams, case.dstate, g_opt,
            d_opt, case.batches, case.bn, case.loss, dtype)
    got, start = (gp, case.gparams) if frozen == "generator" else (dp, case.dparams)
    names = case.generator_names() if frozen == "generator" else case.discriminator_names()
    for name, a, e in zip(names, got, start, strict=True):
        assert_within(f"{name} after {len(case.batches)} steps held fixed", a, e, 0.0)


@given(data=st.data())
def test_dcgan_non_saturating_where_minimax_vanishes(backend, dtype, data):
    """A discriminator that rejects the fakes (its last dense bias far below 0, logits about
    -20 to -50, where e^logit times the network's factors stays a normal float32: flushing
    subnormals is not what this certifies): the non-saturating generator loss and gradient,
    about -1/N at each logit, are the oracle's, the gradient finite and nonzero; the minimax
    gradient, about -e^logit / N, is the oracle's (vanishing). The minimax loss's value
    there, BCE(x, 0) at x << 0, is bce_with_logits' tail, which its own properties certify."""
    current_record().declared = GC.CLASSES
    case = GC.draw(data, backend, dtype, loss=False)
    bias = data.draw(st.sampled_from((20.0, 30.0, 50.0)), label="-(last dense bias)")
    case.dparams[-1] = np.full_like(case.dparams[-1], -bias)
    GC.avoid_kinks(case.model, case.gparams, case.gstate, case.dparams, case.dstate, case.z,
                   (), case.bn, dtype)
    ns = _generator(backend, case, dtype, "non_saturating")
    assert all(np.all(np.isfinite(g)) for g in ns), "a non-finite non-saturating gradient"
    assert any(np.any(g != 0) for g in ns), "the non-saturating gradient is 0"
    _generator(backend, case, dtype, "minimax", gradients_only=True)
