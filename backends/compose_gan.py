"""The DCGAN (reference/gan.py) composed over a backend's own components: the default behind
``GANBackend``'s methods.

    generator      z (N, latent) -> images (N, C, S, S)   reference.network.apply over bk
    discriminator  images -> logits (N, 1)                 (dense, conv_transpose2d, conv2d,
                                                           batch_norm, relu, leaky_relu, tanh)
    D loss         bk.bce_with_logits(D(real), 1) + bk.bce_with_logits(D(fake), 0)
    G loss         bk.bce_with_logits(D(G(z)), 1)          'non_saturating'
                   -bk.bce_with_logits(D(G(z)), 0)         'minimax' (= mean log(1 - D(G(z))))

The labels are arrays of ones and zeros as users write them (torch.full_like(logits, 1)).
Both networks run in training mode and update their batch norms' running statistics (D's
on real, then on fake). Gradients come from the backend's autodiff (``value_and_grad_aux``):
the discriminator's of its parameters only, the fake ``detached`` from the generator that
made it; the generator's of its parameters through D, whose parameters are held fixed. A
backend without a generic autodiff (the NumPy oracle) chains its components' VJPs
(``ChainedGAN``). ``train`` is one iteration of pytorch/examples' dcgan per (real, z) batch:
fake = G(z); D step on (real, fake detached); G step through the updated D. Parameters and
states are reference.gan's flat lists in layer order.

``call_gan_discriminator_loss_and_grads``, ``call_gan_generator_loss_and_grads`` and
``call_train_gan`` are the calls the properties make: NumPy in and out, failures named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from backends.compose_lm import detached
from backends.harness import BackendError, guard, to_native
from backends.recurrent import checked_array
from reference import network
from reference.gan import DCGAN, GENERATOR_LOSSES
from reference.optimizers import Optimizer

Batch = tuple[Any, Any]
#: the optimizer of a network held fixed (its parameters are not stepped)
FIXED = Optimizer(lambda params: None, lambda grads, state, params: (list(params), state))


def _labels(bk: Any, logits: Any, value: float) -> Any:
    """An array of ``value`` shaped and typed as ``logits`` (the BCE target)."""
    return bk.asarray(np.full(tuple(logits.shape), value), bk.dtype_of(logits))


def _kind(loss: str) -> str:
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"loss: expected one of {GENERATOR_LOSSES}, got {loss!r}")
    return loss


def discriminator_loss(bk: Any, model: DCGAN, dparams: Sequence[Any], dstate: Sequence[Any],
                       real: Any, fake: Any, bn: dict[str, Any] | None = None
                       ) -> tuple[Any, list[Any]]:
    """(BCE(D(real), 1) + BCE(D(fake), 0), D's state after both passes)."""
    disc = model.discriminator()
    r, state = network.apply(disc, bk, dparams, dstate, real, True, bn)
    f, state = network.apply(disc, bk, dparams, state, fake, True, bn)
    value = bk.bce_with_logits(r, _labels(bk, r, 1.0)) + bk.bce_with_logits(f, _labels(bk, f, 0.0))
    return value, state


def generator_loss(bk: Any, model: DCGAN, gparams: Sequence[Any], gstate: Sequence[Any],
                   dparams: Sequence[Any], dstate: Sequence[Any], z: Any,
                   bn: dict[str, Any] | None = None, loss: str = "non_saturating"
                   ) -> tuple[Any, tuple[list[Any], list[Any]]]:
    """(the generator's loss of D(G(z)), (G's new state, D's new state))."""
    fake, gstate = network.apply(model.generator(), bk, gparams, gstate, z, True, bn)
    logits, dstate = network.apply(model.discriminator(), bk, dparams, dstate, fake, True, bn)
    if _kind(loss) == "non_saturating":
        value = bk.bce_with_logits(logits, _labels(bk, logits, 1.0))
    else:
        value = -bk.bce_with_logits(logits, _labels(bk, logits, 0.0))
    return value, (gstate, dstate)


def discriminator_loss_and_grads(bk: Any, model: DCGAN, dparams: Sequence[Any],
                                 dstate: Sequence[Any], real: Any, fake: Any,
                                 bn: dict[str, Any] | None = None
                                 ) -> tuple[Any, list[Any], list[Any]]:
    """(D loss, its gradient for every D parameter, D's new state) by the backend's autodiff;
    the fake is detached (``fake.detach()``): the generator is not differentiated."""
    fake = detached(fake)
    value, grads, state = bk.value_and_grad_aux(
        lambda p: discriminator_loss(bk, model, p, dstate, real, fake, bn), list(dparams))
    return value, list(grads), [detached(s) for s in state]


def generator_loss_and_grads(bk: Any, model: DCGAN, gparams: Sequence[Any],
                             gstate: Sequence[Any], dparams: Sequence[Any],
                             dstate: Sequence[Any], z: Any, bn: dict[str, Any] | None = None,
                             loss: str = "non_saturating"
                             ) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """(G loss, its gradient for every G parameter through D, G's new state, D's new state)
    by the backend's autodiff; D's parameters are held fixed."""
    value, grads, (gs, ds) = bk.value_and_grad_aux(
        lambda p: generator_loss(bk, model, p, gstate, dparams, dstate, z, bn, loss),
        list(gparams))
    return value, list(grads), [detached(s) for s in gs], [detached(s) for s in ds]


def _bce_vjp(bk: Any, logits: Any, label: float, g: float) -> tuple[Any, Any]:
    """(BCE(logits, label), its gradient for the cotangent g) by the backend's component VJP."""
    dtype = bk.dtype_of(logits)
    (value,), (grad,) = bk.component_vjp("bce_with_logits", [logits],
                                         [bk.asarray(np.array(g), dtype)],
                                         target=_labels(bk, logits, label))
    return value, grad


def discriminator_loss_and_grads_chained(bk: Any, model: DCGAN, dparams: Sequence[Any],
                                         dstate: Sequence[Any], real: Any, fake: Any,
                                         bn: dict[str, Any] | None = None
                                         ) -> tuple[Any, list[Any], list[Any]]:
    """``discriminator_loss_and_grads`` by the chain rule over the backend's component VJPs
    (reference.network.forward_tape / backprop over its ops and network_vjps), for a backend
    without a generic autodiff: the two passes' gradients summed (the example's two
    backward calls)."""
    disc, vjps = model.discriminator(), bk.network_vjps()
    r, state, r_tape = network.forward_tape(disc, dparams, dstate, real, bn, ops=bk)
    f, state, f_tape = network.forward_tape(disc, dparams, state, fake, bn, ops=bk)
    v_real, g_real = _bce_vjp(bk, r, 1.0, 1.0)
    v_fake, g_fake = _bce_vjp(bk, f, 0.0, 1.0)
    _, grads_real = network.backprop(r_tape, g_real, bn, vjps)
    _, grads_fake = network.backprop(f_tape, g_fake, bn, vjps)
    return v_real + v_fake, [a + b for a, b in zip(grads_real, grads_fake, strict=True)], state


def generator_loss_and_grads_chained(bk: Any, model: DCGAN, gparams: Sequence[Any],
                                     gstate: Sequence[Any], dparams: Sequence[Any],
                                     dstate: Sequence[Any], z: Any,
                                     bn: dict[str, Any] | None = None,
                                     loss: str = "non_saturating"
                                     ) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """``generator_loss_and_grads`` by the chain rule over the backend's component VJPs: the
    loss's cotangent back through D into its input, on into G."""
    vjps = bk.network_vjps()
    fake, gs, g_tape = network.forward_tape(model.generator(), gparams, gstate, z, bn, ops=bk)
    logits, ds, d_tape = network.forward_tape(model.discriminator(), dparams, dstate, fake, bn,
                                              ops=bk)
    if _kind(loss) == "non_saturating":
        value, g_logits = _bce_vjp(bk, logits, 1.0, 1.0)
    else:
        value, g_logits = _bce_vjp(bk, logits, 0.0, -1.0)
        value = -value
    g_fake, _ = network.backprop(d_tape, g_logits, bn, vjps)
    _, grads = network.backprop(g_tape, g_fake, bn, vjps)
    return value, grads, gs, ds


def method(bk: Any, name: str) -> Callable[..., Any]:
    """The backend's ``name`` ('gan_discriminator_loss_and_grads',
    'gan_generator_loss_and_grads', 'train_gan'), or the composition for a backend without
    the mixin."""
    found = getattr(bk, name, None)
    return found if found is not None else partial(_DEFAULTS[name], bk)


def train(bk: Any, model: DCGAN, gparams: Sequence[Any], gstate: Sequence[Any],
          dparams: Sequence[Any], dstate: Sequence[Any], g_opt: Optimizer, d_opt: Optimizer,
          batches: Sequence[Batch], bn: dict[str, Any] | None = None,
          loss: str = "non_saturating"
          ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[float], list[float]]:
    """reference.gan.train over the backend: per (real, z) batch, fake = G(z) in training
    mode (G's new state), the D step on (real, fake) with ``d_opt``, then the G step through
    the updated D with ``g_opt``. Returns (G params, G state, D params, D state, the D loss
    and the G loss of every step, each before its update)."""
    d_step = method(bk, "gan_discriminator_loss_and_grads")
    g_step = method(bk, "gan_generator_loss_and_grads")
    gp, gs, dp, ds = list(gparams), list(gstate), list(dparams), list(dstate)
    g_state, d_state = g_opt.init(gp), d_opt.init(dp)
    d_losses, g_losses = [], []
    for real, z in batches:
        fake, new_gs = network.apply(model.generator(), bk, gp, gs, z, True, bn)
        d_loss, d_grads, ds = d_step(model, dp, ds, real, detached(fake), bn)
        dp, d_state = d_opt.update(list(d_grads), d_state, dp)
        g_loss, g_grads, _, ds = g_step(model, gp, gs, dp, ds, z, bn, loss)
        gp, g_state = g_opt.update(list(g_grads), g_state, gp)
        gs = [detached(s) for s in new_gs]
        d_losses.append(float(bk.to_numpy(d_loss)))
        g_losses.append(float(bk.to_numpy(g_loss)))
    return gp, gs, dp, ds, d_losses, g_losses


_DEFAULTS: dict[str, Callable[..., Any]] = {
    "gan_discriminator_loss_and_grads": discriminator_loss_and_grads,
    "gan_generator_loss_and_grads": generator_loss_and_grads, "train_gan": train}


class GANBackend:
    """Mixin for a Backend: the DCGAN composed from its own components, differentiated by its
    own autodiff, trained by its own optimizers."""

    def gan_discriminator_loss_and_grads(self, model: DCGAN, dparams: Sequence[Any],
                                         dstate: Sequence[Any], real: Any, fake: Any,
                                         bn: dict[str, Any] | None = None
                                         ) -> tuple[Any, list[Any], list[Any]]:
        """(D loss, gradient of every D parameter, D's new state)."""
        return discriminator_loss_and_grads(self, model, dparams, dstate, real, fake, bn)

    def gan_generator_loss_and_grads(self, model: DCGAN, gparams: Sequence[Any],
                                     gstate: Sequence[Any], dparams: Sequence[Any],
                                     dstate: Sequence[Any], z: Any,
                                     bn: dict[str, Any] | None = None,
                                     loss: str = "non_saturating"
                                     ) -> tuple[Any, list[Any], list[Any], list[Any]]:
        """(G loss, gradient of every G parameter, G's new state, D's new state)."""
        return generator_loss_and_grads(self, model, gparams, gstate, dparams, dstate, z, bn,
                                        loss)

    def train_gan(self, model: DCGAN, gparams: Sequence[Any], gstate: Sequence[Any],
                  dparams: Sequence[Any], dstate: Sequence[Any], g_opt: Optimizer,
                  d_opt: Optimizer, batches: Sequence[Batch], bn: dict[str, Any] | None = None,
                  loss: str = "non_saturating"
                  ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[float],
                             list[float]]:
        """(G params, G state, D params, D state, D losses, G losses) after the batches."""
        return train(self, model, gparams, gstate, dparams, dstate, g_opt, d_opt, batches, bn,
                     loss)


class ChainedGAN(GANBackend):
    """The mixin for a backend whose gradients are its components' VJPs (the NumPy oracle)."""

    def gan_discriminator_loss_and_grads(self, model, dparams, dstate, real, fake, bn=None):
        """(D loss, gradient of every D parameter, D's new state) by chained VJPs."""
        return discriminator_loss_and_grads_chained(self, model, dparams, dstate, real, fake,
                                                    bn)

    def gan_generator_loss_and_grads(self, model, gparams, gstate, dparams, dstate, z, bn=None,
                                     loss="non_saturating"):
        """(G loss, gradient of every G parameter, G's and D's new states) by chained VJPs."""
        return generator_loss_and_grads_chained(self, model, gparams, gstate, dparams, dstate,
                                                z, bn, loss)


# -- the calls the properties make: NumPy in and out, failures named ------------------------


def _arrays(backend: Any, what: str, got: Any, want: int, dtype: str, label: str
            ) -> list[np.ndarray]:
    if not isinstance(got, tuple | list) or len(got) != want:
        n = len(got) if isinstance(got, tuple | list) else type(got).__name__
        raise BackendError(f"{backend.id}: {what} returned {n} as {label}, expected {want} "
                           "arrays")
    return [checked_array(backend, what, a, dtype, f"{label}[{i}]") for i, a in enumerate(got)]


def _unpack(backend: Any, what: str, out: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    if not isinstance(out, tuple | list) or len(out) != len(names):
        raise BackendError(f"{backend.id}: {what} returned {type(out).__name__}, expected "
                           f"({', '.join(names)})")
    return tuple(out)


def call_gan_discriminator_loss_and_grads(
        backend: Any, model: DCGAN, dparams: Sequence[np.ndarray], dstate: Sequence[np.ndarray],
        real: np.ndarray, fake: np.ndarray, bn: dict[str, Any], dtype: str
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(D loss, D gradients, D's new state) of the backend's
    gan_discriminator_loss_and_grads, NumPy in and out."""
    what = "gan_discriminator_loss_and_grads"
    out = guard(backend, what, method(backend, what), model, to_native(backend, dparams, dtype),
                to_native(backend, dstate, dtype), to_native(backend, real, dtype),
                to_native(backend, fake, dtype), bn)
    value, grads, state = _unpack(backend, what, out, ("loss", "grads", "state"))
    return (checked_array(backend, what, value, dtype, "the loss"),
            _arrays(backend, what, grads, len(dparams), dtype, "grads"),
            _arrays(backend, what, state, len(dstate), dtype, "the state"))


def call_gan_generator_loss_and_grads(
        backend: Any, model: DCGAN, gparams: Sequence[np.ndarray], gstate: Sequence[np.ndarray],
        dparams: Sequence[np.ndarray], dstate: Sequence[np.ndarray], z: np.ndarray,
        bn: dict[str, Any], loss: str, dtype: str
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(G loss, G gradients, G's new state, D's new state) of the backend's
    gan_generator_loss_and_grads, NumPy in and out."""
    what = "gan_generator_loss_and_grads"
    out = guard(backend, what, method(backend, what), model, to_native(backend, gparams, dtype),
                to_native(backend, gstate, dtype), to_native(backend, dparams, dtype),
                to_native(backend, dstate, dtype), to_native(backend, z, dtype), bn, loss)
    value, grads, gs, ds = _unpack(backend, what, out, ("loss", "grads", "gstate", "dstate"))
    return (checked_array(backend, what, value, dtype, "the loss"),
            _arrays(backend, what, grads, len(gparams), dtype, "grads"),
            _arrays(backend, what, gs, len(gstate), dtype, "the generator's state"),
            _arrays(backend, what, ds, len(dstate), dtype, "the discriminator's state"))


def call_train_gan(backend: Any, model: DCGAN, gparams: Sequence[np.ndarray],
                   gstate: Sequence[np.ndarray], dparams: Sequence[np.ndarray],
                   dstate: Sequence[np.ndarray], g_optimizer: tuple[str, dict[str, Any]] | None,
                   d_optimizer: tuple[str, dict[str, Any]] | None,
                   batches: Sequence[tuple[np.ndarray, np.ndarray]], bn: dict[str, Any],
                   loss: str, dtype: str
                   ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray],
                              list[np.ndarray], np.ndarray, np.ndarray]:
    """(G params, G state, D params, D state, D losses, G losses) of the backend's train_gan
    with its optimizers (name, hyperparameters) for G and D (None: FIXED, that network held
    fixed), NumPy in and out."""
    what = "train_gan"
    g_opt, d_opt = (FIXED if spec is None else
                    guard(backend, f"optimizer {spec[0]}", backend.optimizer, spec[0], **spec[1])
                    for spec in (g_optimizer, d_optimizer))
    native_batches = [(to_native(backend, r, dtype), to_native(backend, z, dtype))
                      for r, z in batches]
    out = guard(backend, what, method(backend, what), model, to_native(backend, gparams, dtype),
                to_native(backend, gstate, dtype), to_native(backend, dparams, dtype),
                to_native(backend, dstate, dtype), g_opt, d_opt, native_batches, bn, loss)
    gp, gs, dp, ds, d_losses, g_losses = _unpack(
        backend, what, out, ("gparams", "gstate", "dparams", "dstate", "d_losses", "g_losses"))
    if len(d_losses) != len(batches) or len(g_losses) != len(batches):
        raise BackendError(f"{backend.id}: {what} returned {len(d_losses)} D and "
                           f"{len(g_losses)} G losses for {len(batches)} batches")
    return (_arrays(backend, what, gp, len(gparams), dtype, "the generator's params"),
            _arrays(backend, what, gs, len(gstate), dtype, "the generator's state"),
            _arrays(backend, what, dp, len(dparams), dtype, "the discriminator's params"),
            _arrays(backend, what, ds, len(dstate), dtype, "the discriminator's state"),
            np.asarray(d_losses, dtype=np.float64), np.asarray(g_losses, dtype=np.float64))
