"""The VAE properties' cases (properties/test_vae.py): the drawn model, parameters, inputs
and noise, its kinks, and the rounding magnitudes of its losses and gradients for the
tolerance policy.

Shapes come from a short menu (MENU: two MLP and two conv VAEs, each with its batch size),
so a JAX backend compiles one function per entry, reconstruction and dtype; the values, the
reconstruction, beta, the noise and the training run are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

from properties.architectures import MAGNITUDE_VJPS, KinkProbe
from properties.coverage import stratum
from properties.scoped import note_arguments
from properties.specs import vjp_terms
from properties.strategies import seeded_array
from properties.tolerance import EPS, round_to
from reference import network
from reference import vae as V

#: (input_shape, hidden, latent, batch rows): MLP and conv VAEs, 4x4 images
MENU = {"mlp": ((6,), (5,), 2, 3), "mlp2": ((4,), (6, 3), 3, 3),
        "conv": ((1, 4, 4), (2,), 2, 2), "conv2": ((2, 4, 4), (2, 3), 2, 2)}
CLASSES = {"architecture": tuple(MENU), "reconstruction": V.RECONSTRUCTIONS}
OPTIMIZERS = ("sgd", "adam")
MAX_STEPS = 3


@dataclass
class VAECase:
    """A drawn VAE problem; ``terms``: the length of its longest reduction."""

    model: V.VAE
    params: list[np.ndarray]
    x: np.ndarray
    eps: np.ndarray
    terms: int

    def arrays(self) -> list[np.ndarray]:
        """What the condition term perturbs: params, x, eps."""
        return [*self.params, self.x, self.eps]

    def rebuild(self, arrays) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        n = len(self.params)
        return list(arrays[:n]), arrays[n], arrays[n + 1]

    def param_names(self) -> list[str]:
        enc, dec = self.model.encoder(), self.model.decoder()
        return ([f"encoder.{n}" for n in enc.param_names()]
                + [f"decoder.{n}" for n in dec.param_names()])


def draw_inputs(data, kind: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """x: in [0, 0.999] for the Bernoulli reconstruction (the condition term's relative
    perturbations keep it in [0, 1]), standard normal for the Gaussian."""
    if kind == "gaussian":
        return seeded_array(data.draw, shape, dtype)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    return round_to(0.999 * np.random.default_rng(seed).uniform(size=shape), dtype)


def draw_case(data, dtype: str, beta: float | None = None) -> VAECase:
    """A model from MENU with a drawn reconstruction and beta (unless given), He-normal
    parameters from a drawn seed, inputs and noise."""
    arch = stratum(data, "architecture", CLASSES["architecture"])
    kind = stratum(data, "reconstruction", CLASSES["reconstruction"])
    if beta is None:
        beta = data.draw(st.sampled_from((0.0, 1.0)) | st.floats(0.0, 4.0), label="beta")
    shape, hidden, latent, n = MENU[arch]
    model = V.VAE(shape, hidden, latent, kind, beta)
    params = [round_to(p, dtype) for p in
              V.init_params(model, data.draw(st.integers(0, 2**32 - 1), label="init_seed"))]
    x = draw_inputs(data, kind, (n, *shape), dtype)
    eps = seeded_array(data.draw, (n, latent), dtype)
    note_arguments({"architecture": arch, "reconstruction": kind, "beta": beta, "N": n})
    fan_in = max(int(np.prod(s[1:])) if len(s) == 4 else s[0]
                 for s in model.param_shapes() if len(s) > 1)
    return VAECase(model, params, x, eps, fan_in + int(np.prod(x.shape)))


def with_beta(case: VAECase, beta: float) -> VAECase:
    """The case with the model's beta replaced."""
    return replace(case, model=replace(case.model, beta=beta))


def avoid_kinks(model: V.VAE, params, x, eps, dtype: str) -> None:
    """Reject the example where a ReLU input of the encoder or the decoder lies within a
    thousand ulps of 0 (properties.architectures.avoid_kinks' rule)."""
    probe = KinkProbe(1e3 * EPS[dtype])
    k = len(model.encoder().shapes()[0])
    h, _ = network.apply(model.encoder(), probe, params[:k], [], x, True)
    mu, logvar = h[:, :model.latent], h[:, model.latent:]
    network.apply(model.decoder(), probe, params[k:], [], V.reparameterize(mu, logvar, eps), True)


def vae_terms(model: V.VAE, params, x, eps) -> tuple[float, float, float, list[np.ndarray]]:
    """(M of the loss, of the reconstruction, of the KL, of every parameter gradient): the
    oracle's backward chained in magnitude (properties.architectures.network_terms' rule).
    The reconstruction sums nonnegative terms (M = its value); the KL's textbook form
    -1/2 (1 + logvar - mu^2 - exp(logvar)) sums terms of 1/2 (1 + |logvar| + mu^2 +
    exp(logvar)), its gradient for logvar -1/2 (1 - exp(logvar)) terms of 1/2 (1 +
    exp(logvar)); z = mu + exp(logvar / 2) eps passes M to mu and M |eps| exp(logvar / 2) / 2
    to logvar."""
    p = list(params)
    k = len(model.encoder().shapes()[0])
    n, lat, beta = x.shape[0], model.latent, model.beta
    h, _, enc_tape = network.forward_tape(model.encoder(), p[:k], [], x)
    mu, lv = h[:, :lat], h[:, lat:]
    out, _, dec_tape = network.forward_tape(model.decoder(), p[k:], [],
                                            V.reparameterize(mu, lv, eps))
    rec_m = V.reconstruction_loss(out, x, model.reconstruction)
    kl_m = float(0.5 * (1 + np.abs(lv) + mu * mu + np.exp(lv)).sum() / n)
    if model.reconstruction == "bernoulli":
        (g,) = vjp_terms("bce_with_logits", (out,), {"target": x, "reduction": "sum"},
                         np.float64(1.0 / n))
    else:
        g = (np.abs(out) + np.abs(x)) / n
    g_z, dec_m = network.backprop(dec_tape, g, vjps=MAGNITUDE_VJPS)
    std = np.exp(lv / 2)
    g_h = np.concatenate([g_z + beta * np.abs(mu) / n,
                          g_z * np.abs(eps) * std / 2 + beta * 0.5 * (1 + np.exp(lv)) / n], axis=1)
    _, enc_m = network.backprop(enc_tape, g_h, vjps=MAGNITUDE_VJPS)
    return rec_m + beta * kl_m, rec_m, kl_m, enc_m + dec_m


def draw_hyper(data, optimizer: str) -> dict:
    """SGD with or without momentum, or Adam, at learning rates that keep 3 steps of these
    models finite (the losses sum over pixels: their gradients reach 10-100)."""
    if optimizer == "sgd":
        return {"lr": data.draw(st.sampled_from((1e-3, 1e-2)) | st.floats(1e-4, 0.02), label="lr"),
                "momentum": data.draw(st.sampled_from((0.0, 0.9)), label="momentum")}
    return {"lr": data.draw(st.sampled_from((1e-3, 1e-2)) | st.floats(1e-4, 0.05), label="lr")}
