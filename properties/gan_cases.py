"""Cases of the DCGAN (reference/gan.py), its kinks, the rounding magnitudes of its losses and
gradients, and the oracle's training trace with the policy's rounding probes.

A case draws, as configuration classes (properties/coverage.py):
- ``model``: one of a short menu of small DCGANs on 8x8 images, each with its batch size
  (MODELS), so the examples repeat shapes: JAX compiles each step once per model, batch-norm
  conventions and generator loss; shapes are the components' properties' business;
- ``loss``: the generator's, 'non_saturating' or 'minimax';
- training: ``optimizer``, Adam with b1 = 0.5 as DCGAN uses, or SGD with or without momentum,
  one for each network with its own learning rate, and 1 to MAX_STEPS steps.
Parameters are reference.gan.init_params from a drawn seed (He-normal), the running
statistics moved off their initial values, images tanh of standard normals (the generator's
range), latent codes standard normal; every array rounded to the dtype. The batch-norm
conventions are the backend's.

The magnitudes (the policy's M, properties/tolerance.py) chain the oracle's backward in
magnitude (properties/architectures.py's MAGNITUDE_VJPS over reference.network's tapes) from
the magnitude of the BCE's cotangent (properties/specs.py's vjp_terms of bce_with_logits);
the losses are sums of nonnegative BCE terms, their own magnitude. ``train_trace`` is
reference.gan.train from its public steps; with a noise Generator every step's gradients
move by DELTA times their magnitudes and its new parameters by DELTA (|p| + |q - p|), as
test_network_training measures an optimizer's steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from backends.base import Backend
from properties import specs
from properties.architectures import BN_CONVENTIONS, MAGNITUDE_VJPS, KinkProbe
from properties.coverage import stratum
from properties.scoped import note_arguments
from properties.strategies import conventions, seeded_array
from properties.tolerance import EPS, moved, noisy_update, round_to
from reference import gan, network
from reference import losses as Lo
from reference.optimizers import Optimizer

#: model name -> (model, batch size)
MODELS: dict[str, tuple[gan.DCGAN, int]] = {
    "one_stage": (gan.DCGAN(latent=2, channels=1, size=8, gen_features=2, disc_features=2,
                            stages=1), 3),
    "two_stage": (gan.DCGAN(latent=3, channels=2, size=8, gen_features=1, disc_features=1,
                            stages=2), 2),
}
LOSSES = gan.GENERATOR_LOSSES
OPTIMIZERS = ("adam", "sgd")
MAX_STEPS = 3
#: the configuration classes of the discriminator's, the generator's and training properties
CLASSES: dict[str, tuple[str, ...]] = {"model": tuple(MODELS)}
GENERATOR_CLASSES: dict[str, tuple[str, ...]] = {**CLASSES, "loss": LOSSES}
TRAINING_CLASSES: dict[str, tuple[str, ...]] = {**GENERATOR_CLASSES, "optimizer": OPTIMIZERS}


@dataclass
class GANCase:
    """A model, both networks' parameters and running statistics, a real and a fake batch,
    latent codes, the batch-norm conventions, the generator's loss and ``terms``, the longest
    sum behind one result (the largest fan-in plus a conv weight gradient's N S^2
    positions)."""

    model: gan.DCGAN
    gparams: list[np.ndarray]
    gstate: list[np.ndarray]
    dparams: list[np.ndarray]
    dstate: list[np.ndarray]
    real: np.ndarray
    fake: np.ndarray
    z: np.ndarray
    bn: dict[str, Any]
    loss: str
    terms: int
    args: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> list[np.ndarray]:
        """The float inputs the condition term perturbs."""
        return [*self.gparams, *self.gstate, *self.dparams, *self.dstate, self.real, self.fake,
                self.z]

    def rebuild(self, arrays) -> tuple[list, list, list, list, Any, Any, Any]:
        """(gparams, gstate, dparams, dstate, real, fake, z) from ``arrays()``-shaped arrays."""
        a = list(arrays)
        out = []
        for n in (len(self.gparams), len(self.gstate), len(self.dparams), len(self.dstate)):
            out.append(a[:n])
            a = a[n:]
        return (*out, *a)

    def generator_names(self) -> list[str]:
        return [f"generator {n}" for n in self.model.generator().param_names()]

    def discriminator_names(self) -> list[str]:
        return [f"discriminator {n}" for n in self.model.discriminator().param_names()]


@dataclass
class TrainingCase(GANCase):
    """(real, z) batches and each network's optimizer (name, hyperparameters)."""

    batches: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    g_optimizer: tuple[str, dict[str, Any]] = ("adam", {})
    d_optimizer: tuple[str, dict[str, Any]] = ("adam", {})


def _terms(model: gan.DCGAN, n: int) -> int:
    fan_in = []
    for arch in (model.generator(), model.discriminator()):
        for name, s in zip(arch.param_names(), arch.shapes()[0], strict=True):
            if name.endswith(".w"):
                fan_in.append(s[0] if len(s) == 2 else
                              s[0] * s[2] * s[3] if ".conv_transpose." in name else
                              s[1] * s[2] * s[3])
    return max(fan_in) + n * model.size**2


def _state(data, state: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    """Running statistics away from their initial values (means moved, variances > 0)."""
    return [round_to(s + (0.3 * seeded_array(data.draw, s.shape, "float64") if i % 2 == 0
                          else 0.5 * np.abs(seeded_array(data.draw, s.shape, "float64"))), dtype)
            for i, s in enumerate(state)]


def _images(data, model: gan.DCGAN, n: int, dtype: str) -> np.ndarray:
    shape = (n, model.channels, model.size, model.size)
    return round_to(np.tanh(seeded_array(data.draw, shape, "float64")), dtype)


def draw(data, backend: Backend, dtype: str, loss: bool = True) -> GANCase:
    """A model from MODELS, its parameters and states, real and fake images, latent codes,
    the backend's batch-norm conventions and (``loss``) the generator's loss."""
    name = stratum(data, "model", tuple(MODELS))
    model, n = MODELS[name]
    gp, gs, dp, ds = gan.init_params(model, data.draw(st.integers(0, 2**32 - 1),
                                                      label="init_seed"))
    kind = stratum(data, "loss", LOSSES) if loss else "non_saturating"
    bn = conventions(data, backend, "batch_norm", dict(BN_CONVENTIONS))
    case = GANCase(model, [round_to(p, dtype) for p in gp], _state(data, gs, dtype),
                   [round_to(p, dtype) for p in dp], _state(data, ds, dtype),
                   _images(data, model, n, dtype), _images(data, model, n, dtype),
                   seeded_array(data.draw, (n, model.latent), dtype), bn, kind,
                   _terms(model, n))
    case.args = {"model": name, "N": n, "loss": kind, **bn}
    note_arguments(case.args)
    return case


def _hyper(data, optimizer: str, who: str) -> dict[str, Any]:
    if optimizer == "adam":
        return {"lr": data.draw(st.sampled_from((2e-4, 1e-3)) | st.floats(1e-4, 0.01),
                                label=f"{who} lr"), "b1": 0.5, "b2": 0.999, "eps": 1e-8}
    return {"lr": data.draw(st.sampled_from((0.01, 0.1)) | st.floats(1e-3, 0.1),
                            label=f"{who} lr"),
            "momentum": data.draw(st.sampled_from((0.0, 0.9)), label=f"{who} momentum")}


def draw_training(data, backend: Backend, dtype: str) -> TrainingCase:
    """A case, 1 to MAX_STEPS (real, z) batches (the first the case's), and an optimizer
    for each network (the same kind, each its own hyperparameters, the backend's
    conventions applied)."""
    base = draw(data, backend, dtype)
    n = base.real.shape[0]
    steps = data.draw(st.integers(1, MAX_STEPS), label="steps")
    batches = [(base.real, base.z)] + [
        (_images(data, base.model, n, dtype),
         seeded_array(data.draw, (n, base.model.latent), dtype)) for _ in range(steps - 1)]
    optimizer = stratum(data, "optimizer", OPTIMIZERS)
    g_hyper, d_hyper = (conventions(data, backend, optimizer, _hyper(data, optimizer, who))
                        for who in ("G", "D"))
    case = TrainingCase(**vars(base), batches=batches, g_optimizer=(optimizer, g_hyper),
                        d_optimizer=(optimizer, d_hyper))
    case.args.update({"steps": steps, "optimizer": optimizer,
                      **{f"G {k}": v for k, v in g_hyper.items()},
                      **{f"D {k}": v for k, v in d_hyper.items()}})
    note_arguments(case.args)
    return case


# -- kinks -------------------------------------------------------------------------------------

def avoid_kinks(model: gan.DCGAN, gparams, gstate, dparams, dstate, z, images, bn,
                dtype: str) -> None:
    """Reject the example where a ReLU or leaky-ReLU input of G(z), or of D on each of
    ``images`` and on G(z), is within a thousand ulps of the dtype of its kink."""
    probe = KinkProbe(1e3 * EPS[dtype])
    fake, _ = network.apply(model.generator(), probe, gparams, gstate, z, True, bn)
    for x in (*images, fake):
        network.apply(model.discriminator(), probe, dparams, dstate, x, True, bn)


# -- rounding magnitudes (the tolerance policy's M) ------------------------------------------

def _bce(logits: np.ndarray, label: float) -> tuple[float, np.ndarray]:
    """(BCE(logits, label), the magnitude of its gradient's terms for a unit cotangent)."""
    kw = {"target": np.full(logits.shape, label), "reduction": "mean"}
    (m,) = specs.vjp_terms("bce_with_logits", (logits,), kw, np.float64(1.0))
    return float(Lo.bce_with_logits(logits, kw["target"])), m


def discriminator_terms(model: gan.DCGAN, dparams, dstate, real, fake, bn
                        ) -> tuple[float, list[np.ndarray]]:
    """(M of the discriminator's loss, M of every D gradient): each pass's backward in
    magnitude from its BCE's, summed as the gradients are."""
    disc = model.discriminator()
    r, state, r_tape = network.forward_tape(disc, dparams, dstate, real, bn)
    f, _, f_tape = network.forward_tape(disc, dparams, state, fake, bn)
    (l_real, m_real), (l_fake, m_fake) = _bce(r, 1.0), _bce(f, 0.0)
    _, mr = network.backprop(r_tape, m_real, bn, MAGNITUDE_VJPS)
    _, mf = network.backprop(f_tape, m_fake, bn, MAGNITUDE_VJPS)
    return l_real + l_fake, [a + b for a, b in zip(mr, mf, strict=True)]


def generator_terms(model: gan.DCGAN, gparams, gstate, dparams, dstate, z, bn, loss: str
                    ) -> tuple[float, list[np.ndarray]]:
    """(M of the generator's loss, M of every G gradient): the BCE's cotangent in magnitude
    back through D into its input, on into G."""
    fake, _, g_tape = network.forward_tape(model.generator(), gparams, gstate, z, bn)
    logits, _, d_tape = network.forward_tape(model.discriminator(), dparams, dstate, fake, bn)
    value, m = _bce(logits, 1.0 if loss == "non_saturating" else 0.0)
    m_fake, _ = network.backprop(d_tape, m, bn, MAGNITUDE_VJPS)
    _, grads = network.backprop(g_tape, m_fake, bn, MAGNITUDE_VJPS)
    return value, grads


# -- the oracle's training, with the rounding probes ------------------------------------------

def train_trace(case: TrainingCase, arrays, g_opt: Optimizer, d_opt: Optimizer,
                noise: np.random.Generator | None = None, dtype: str | None = None
                ) -> tuple[list[np.ndarray], list[float]]:
    """reference.gan.train from (gparams, gstate, dparams, dstate) in ``arrays`` (as
    case.arrays(), real, fake and z unused) over case.batches: (the D losses, the G losses,
    final G params, G state, D params, D state, flattened), and every loss's own magnitude.
    With ``noise`` every step's gradients and new parameters move by DELTA times their
    magnitudes; with ``dtype`` each step's kinks are avoided (the exact run)."""
    m, bn = case.model, case.bn
    gp, gs, dp, ds, *_ = case.rebuild(arrays)
    g_state, d_state = g_opt.init(gp), d_opt.init(dp)
    d_losses, g_losses, loss_m = [], [], []
    for real, z in case.batches:
        fake, new_gs, _ = network.forward_tape(m.generator(), gp, gs, z, bn)
        if dtype is not None:
            avoid_kinks(m, gp, gs, dp, ds, z, (real,), bn, dtype)
        d_loss, d_grads, new_ds = gan.discriminator_loss_and_grads(m, dp, ds, real, fake, bn)
        if noise is not None:
            d_grads = moved(noise, d_grads, discriminator_terms(m, dp, ds, real, fake, bn)[1])
        else:
            loss_m.append(discriminator_terms(m, dp, ds, real, fake, bn)[0])
        dp, d_state = noisy_update(d_opt, d_grads, d_state, dp, noise)
        ds = new_ds
        if dtype is not None:
            avoid_kinks(m, gp, gs, dp, ds, z, (), bn, dtype)
        g_loss, g_grads, _, ds2 = gan.generator_loss_and_grads(m, gp, gs, dp, ds, z, bn,
                                                               case.loss)
        terms = generator_terms(m, gp, gs, dp, ds, z, bn, case.loss)
        if noise is not None:
            g_grads = moved(noise, g_grads, terms[1])
        else:
            loss_m.append(abs(terms[0]))
        gp, g_state = noisy_update(g_opt, g_grads, g_state, gp, noise)
        gs, ds = new_gs, ds2
        d_losses.append(d_loss)
        g_losses.append(g_loss)
    return [np.asarray(d_losses), np.asarray(g_losses), *gp, *gs, *dp, *ds], loss_m
