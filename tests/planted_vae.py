"""Planted bugs of the VAE and the diffusion denoiser's training, each modelled on a real one
(see tests/planted.py): the oracle's adapter with its VAE and denoiser (the NumPy
compositions, backends/compose_vae.py and compose_denoiser.py) and one thing in the model
broken as VAE and diffusion training scripts break it. Each must make properties/test_vae.py
(component 'vae') or properties/test_denoiser.py (component 'denoiser') fail."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backends.compose_denoiser import ChainedDenoiser
from backends.compose_vae import ChainedVAE
from reference import vae as V
from tests.planted import Planted


class PlantedVAE(Planted, ChainedVAE, ChainedDenoiser):
    """Base: the NumPy backend with the chained VAE and denoiser."""

    component = "vae"


class KLMeanOverLatent(PlantedVAE):
    """The KL averaged over the latent dimensions instead of summed
    (``torch.mean(-0.5 * (1 + logvar - mu**2 - logvar.exp()))``): 1/L of it, and of its
    gradients."""

    name = "planted-vae-kl-mean-over-latent"

    def vae_kl(self, mu, logvar):
        return super().vae_kl(mu, logvar) / mu.shape[1]

    def vae_kl_vjp(self, mu, logvar, g):
        d_mu, d_logvar = super().vae_kl_vjp(mu, logvar, g)
        return d_mu / mu.shape[1], d_logvar / mu.shape[1]


class KLWithoutMinusOne(PlantedVAE):
    """-1/2 sum(logvar - mu^2 - exp(logvar)) / N: the 1 dropped from 1 + logvar, so the KL
    is L / 2 too large (its gradients are unchanged) and not 0 at mu = 0, logvar = 0."""

    name = "planted-vae-kl-without-minus-one"

    def vae_kl(self, mu, logvar):
        return super().vae_kl(mu, logvar) + 0.5 * mu.shape[1]


class LogvarAsLogStd(PlantedVAE):
    """The encoder's logvar used as a log standard deviation: z = mu + exp(logvar) eps
    instead of exp(logvar / 2) eps (the KL still reads it as a log variance)."""

    name = "planted-vae-logvar-as-log-std"

    def vae_reparameterize(self, mu, logvar, eps):
        return mu + np.exp(logvar) * eps

    def vae_reparameterize_vjp(self, mu, logvar, eps, g):
        return g, g * eps * np.exp(logvar)


class KLSignFlipped(PlantedVAE):
    """1/2 sum(1 + logvar - mu^2 - exp(logvar)) / N: the KL's leading minus sign lost, so
    beta KL rewards what it should penalise."""

    name = "planted-vae-kl-sign-flipped"

    def vae_kl(self, mu, logvar):
        return -super().vae_kl(mu, logvar)

    def vae_kl_vjp(self, mu, logvar, g):
        d_mu, d_logvar = super().vae_kl_vjp(mu, logvar, g)
        return -d_mu, -d_logvar


class KLWithoutHalf(PlantedVAE):
    """-sum(1 + logvar - mu^2 - exp(logvar)) / N: the 1/2 of the Gaussian KL dropped."""

    name = "planted-vae-kl-without-half"

    def vae_kl(self, mu, logvar):
        return 2 * np.asarray(V.kl_divergence(mu, logvar))

    def vae_kl_vjp(self, mu, logvar, g):
        return V.kl_divergence_vjp(mu, logvar, 2 * g)


class LatentDetached(PlantedVAE):
    """z computed from detached mu and logvar (``mu.detach()``, a sampler outside the
    graph): the reconstruction's gradient stops at z, the encoder learns from the KL alone."""

    name = "planted-vae-latent-detached"

    def vae_reparameterize_vjp(self, mu, logvar, eps, g):
        return np.zeros_like(mu), np.zeros_like(logvar)


class VelocitySignFlipped(PlantedVAE):
    """The v-prediction target with its sign flipped, sqrt(1 - abar) x0 - sqrt(abar) noise
    (the velocity's two terms swapped in sign)."""

    name = "planted-denoiser-velocity-sign-flipped"
    component = "denoiser"

    def denoiser_velocity(self, x0, noise, sa, sb):
        return sb * x0 - sa * noise


class EmbeddingSinCosSwapped(PlantedVAE):
    """The timestep embedding's sin and cos halves swapped: [sin, cos] where the UNets'
    Timesteps module (flip_sin_to_cos=True) gives [cos, sin]."""

    name = "planted-denoiser-embedding-sin-cos-swapped"
    component = "denoiser"

    def denoiser_timestep_embedding(self, model, t, like):
        flipped = replace(model, flip_sin_to_cos=not model.flip_sin_to_cos)
        return super().denoiser_timestep_embedding(flipped, t, like)


VAE_PLANTED = [KLMeanOverLatent, KLWithoutMinusOne, LogvarAsLogStd, KLSignFlipped,
               KLWithoutHalf, LatentDetached, VelocitySignFlipped, EmbeddingSinCosSwapped]
"""Every planted-bug backend of the VAE and the denoiser."""
