"""Planted bugs of the DCGAN's training, each modelled on a real one (see tests/planted.py):
the oracle's adapter with its DCGAN (the NumPy composition, backends/compose_gan.py) and one
thing in the losses or the alternating step broken as GAN training scripts break it. Each
must make properties/test_gan.py fail (component 'dcgan')."""

from __future__ import annotations

import numpy as np

from backends.compose_gan import ChainedGAN
from reference import gan, network
from tests.planted import Planted


class PlantedGAN(Planted, ChainedGAN):
    """Base: train_gan as backends/compose_gan.train, with the hooks a bug overrides."""

    component = "dcgan"

    def train_gan(self, model, gparams, gstate, dparams, dstate, g_opt, d_opt, batches,
                  bn=None, loss="non_saturating"):
        gp, gs, dp, ds = list(gparams), list(gstate), list(dparams), list(dstate)
        g_state, d_state = g_opt.init(gp), d_opt.init(dp)
        d_losses, g_losses = [], []
        for real, z in batches:
            fake, new_gs, g_tape = network.forward_tape(model.generator(), gp, gs, z, bn,
                                                        ops=self)
            d_loss, d_grads, new_ds = self.gan_discriminator_loss_and_grads(model, dp, ds, real,
                                                                            fake, bn)
            leaked = self.leaked(model, dp, ds, real, fake, g_tape, bn)
            new_dp, d_state = d_opt.update(d_grads, d_state, dp)
            g_loss, g_grads, _, ds = self.gan_generator_loss_and_grads(
                model, gp, gs, self.through(dp, new_dp), new_ds, z, bn, loss)
            if leaked is not None:
                g_grads = [a + b for a, b in zip(g_grads, leaked, strict=True)]
            gp, g_state = g_opt.update(g_grads, g_state, gp)
            gs, dp = new_gs, new_dp
            d_losses.append(float(d_loss))
            g_losses.append(float(g_loss))
        return gp, gs, dp, ds, d_losses, g_losses

    def leaked(self, model, dparams, dstate, real, fake, g_tape, bn):
        """The D loss's gradient that reaches G's parameters (None: the fake is detached)."""
        return None

    def through(self, before, after):
        """The discriminator parameters the generator's step goes through: the updated ones."""
        return after


class FakeNotDetached(PlantedGAN):
    """D's loss on netD(fake) without fake.detach(), and both networks' grads zeroed only
    at the top of the loop: errD.backward() leaves the D loss's gradient in G's .grad, and
    G's step moves G along it too."""

    name = "planted-gan-fake-not-detached"

    def leaked(self, model, dparams, dstate, real, fake, g_tape, bn):
        disc = model.discriminator()
        r, state = network.apply(disc, self, dparams, dstate, real, True, bn)
        f, _, f_tape = network.forward_tape(disc, dparams, state, fake, bn, ops=self)
        _, g_logits = gan.discriminator_loss_vjp(r, f, 1.0)
        g_fake, _ = network.backprop(f_tape, g_logits, bn, self.network_vjps())
        return network.backprop(g_tape, g_fake, bn, self.network_vjps())[1]


class MinimaxForNonSaturating(PlantedGAN):
    """The generator's loss written as log(1 - D(G(z))) (the paper's minimax form,
    -criterion(output, fake_label)) where the non-saturating BCE(D(G(z)), 1) is claimed: its
    gradient vanishes where D rejects the fakes."""

    name = "planted-gan-minimax-for-non-saturating"

    def gan_generator_loss_and_grads(self, model, gparams, gstate, dparams, dstate, z, bn=None,
                                     loss="non_saturating"):
        return super().gan_generator_loss_and_grads(model, gparams, gstate, dparams, dstate, z,
                                                    bn, "minimax")


class FakeLabelledReal(PlantedGAN):
    """The discriminator's loss on the fakes with the real label (label.fill_(real_label)
    reused from the real batch): BCE(D(real), 1) + BCE(D(fake), 1)."""

    name = "planted-gan-fake-labelled-real"

    def gan_discriminator_loss_and_grads(self, model, dparams, dstate, real, fake, bn=None):
        disc, vjps = model.discriminator(), self.network_vjps()
        grads, value, state = None, 0.0, dstate
        for x in (real, fake):
            logits, state, tape = network.forward_tape(disc, dparams, state, x, bn, ops=self)
            (v,), (g,) = self.component_vjp("bce_with_logits", [logits], [np.float64(1.0)],
                                            target=np.ones(logits.shape))
            _, gs = network.backprop(tape, g, bn, vjps)
            value = value + v
            grads = gs if grads is None else [a + b for a, b in zip(grads, gs, strict=True)]
        return value, grads, state


class GeneratorThroughStaleDiscriminator(PlantedGAN):
    """The generator's step through the discriminator as it was before its update (netD's
    output on the fake kept from the D step, or a copy of netD taken before optimizerD.step())."""

    name = "planted-gan-generator-through-stale-discriminator"

    def through(self, before, after):
        return before


GAN_PLANTED = [FakeNotDetached, MinimaxForNonSaturating, FakeLabelledReal,
               GeneratorThroughStaleDiscriminator]
"""Every planted-bug backend of the DCGAN."""
