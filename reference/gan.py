"""A DCGAN: generator, discriminator, their losses with hand-written gradients and the
alternating training step of PyTorch's DCGAN example (pytorch/examples dcgan/main.py),
expressed functionally over the oracle's components. Randomness is an input: the latent codes
z are given, so every framework computes on the same numbers.

Shapes: z (N, latent); images NCHW (N, channels, size, size), in [-1, 1] by convention (the
generator's tanh range; not enforced); discriminator logits (N, 1). With base = size / 2^S
(S stages) and widths F_G = gen_features, F_D = disc_features (reference.network's layers):

    generator:      dense(latent -> F_G 2^(S-1) base^2) -> reshape (F_G 2^(S-1), base, base)
                    -> bn -> relu -> [conv_transpose(4, 2, 1, no bias) to F_G 2^(S-1-i)
                    -> bn -> relu for i = 1 .. S-1] -> conv_transpose(4, 2, 1) to channels -> tanh
    discriminator:  conv(4, 2, 1) to F_D -> leaky_relu(0.2) -> [conv(4, 2, 1, no bias) to
                    F_D 2^i -> bn -> leaky_relu(0.2) for i = 1 .. S-1] -> flatten -> dense(1)

The example's first ConvTranspose2d(nz, F, 4, 1, 0) on noise (N, nz, 1, 1) is the dense
layer here with its weight reshaped to (nz, F 16), and its last Conv2d(F, 1, 4, 1, 0) on the
4x4 map the flatten and dense(1) with its weight reshaped to (F 16, 1). The example has no
biases; here every layer not followed by a batch norm has one (a bias before a batch norm
would be cancelled by it).

Losses, softplus(x) = log(1 + e^x) evaluated stably, D(x) = sigmoid(logit):

    discriminator_loss = mean softplus(-real) + mean softplus(fake)
                       = BCEWithLogits(real, 1) + BCEWithLogits(fake, 0)   (2 log 2 at 0)
    generator_loss     'non_saturating': mean softplus(-fake) = BCEWithLogits(fake, 1)
                       'minimax':       -mean softplus(fake) = mean log(1 - D(G(z)))

The example's Sigmoid + BCELoss is the same loss wherever its sigmoid does not round to 0 or 1
(BCELoss then clamps the log at -100). ``train_step`` is one iteration of the example,
which trains D on real and on G(z).detach() (accumulating both gradients), steps D's
optimizer, then trains G through the updated D on the same G(z), steps G's optimizer. Every
forward runs in training mode (batch statistics) and updates the batch norms' running
statistics it passes through, in this order per step:

    G's: once, by G(z) (the generator's loss differentiates that same forward);
    D's: three times, by D(real), then D(fake) (both with D's parameters before the step),
         then D(fake) with the updated parameters (the generator's loss).

(The example computes G(z) between D(real) and D(fake); G's and D's statistics are
independent, so the order between them does not matter.) ``bn`` holds the batch-norm
conventions (reference.network). params and state are flat lists in layer order
(Architecture.param_names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from reference import activations as A
from reference import network
from reference._validate import as_float, positive
from reference.optimizers import Optimizer

GENERATOR_LOSSES = ("non_saturating", "minimax")

Params = list[np.ndarray]


@dataclass(frozen=True)
class DCGAN:
    """latent size, image channels and size (a power of two, at least 2^stages), feature
    widths of the generator's last and the discriminator's first stage (doubled per stage
    towards the base map), ``stages`` up- (generator) and down-sampling (discriminator)
    stride-2 convolutions, the discriminator's leaky ReLU slope. The defaults are a 32x32
    RGB DCGAN on a 4x4 base with the example's nz = 100 and ngf = ndf = 64 (its 64x64 images
    are size=64, stages=4)."""

    latent: int = 100
    channels: int = 3
    size: int = 32
    gen_features: int = 64
    disc_features: int = 64
    stages: int = 3
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name in ("latent", "channels", "size", "gen_features", "disc_features", "stages"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.size & (self.size - 1) or self.size < 2**self.stages:
            raise ValueError(f"size: expected a power of two >= 2^stages = {2**self.stages} (the "
                             f"base map is size / 2^stages), got {self.size}")
        positive("negative_slope", self.negative_slope, allow_zero=True)

    @property
    def base(self) -> int:
        """The side of the generator's first and the discriminator's last feature map."""
        return self.size >> self.stages

    def generator(self) -> network.Architecture:
        """z (N, latent) -> images (N, channels, size, size); no loss."""
        L = network.Layer
        f, b = self.gen_features << (self.stages - 1), self.base
        layers = [L("dense", f * b * b), L("reshape", shape=(f, b, b)), L("bn"), L("relu")]
        for i in range(1, self.stages):
            layers += [L("conv_transpose", f >> i, 4, 2, 1, bias=False), L("bn"), L("relu")]
        layers += [L("conv_transpose", self.channels, 4, 2, 1), L("tanh")]
        return network.Architecture("dcgan_generator", (self.latent,), tuple(layers), loss=None)

    def discriminator(self) -> network.Architecture:
        """images (N, channels, size, size) -> logits (N, 1); no loss."""
        L = network.Layer
        leaky = L("leaky_relu", negative_slope=self.negative_slope)
        layers = [L("conv", self.disc_features, 4, 2, 1), leaky]
        for i in range(1, self.stages):
            layers += [L("conv", self.disc_features << i, 4, 2, 1, bias=False), L("bn"), leaky]
        layers += [L("flatten"), L("dense", 1)]
        return network.Architecture("dcgan_discriminator", (self.channels, self.size, self.size),
                                    tuple(layers), loss=None)


def init_params(model: DCGAN, seed: int = 0) -> tuple[Params, Params, Params, Params]:
    """(generator params, generator state, discriminator params, discriminator state) from the
    architectures' ``init`` with two seeds drawn from ``seed``: He-normal weights, zero biases,
    batch norms at weight 1, bias 0, running mean 0 and variance 1. Not DCGAN's N(0, 0.02)
    weights and N(1, 0.02) batch-norm scales: initialisation is not what the oracle certifies."""
    gseed, dseed = np.random.SeedSequence(seed).generate_state(2)
    gparams, gstate = model.generator().init(int(gseed))
    dparams, dstate = model.discriminator().init(int(dseed))
    return gparams, gstate, dparams, dstate


# --------------------------------------------------------------------------- input checks

def _logits(name: str, x) -> np.ndarray:
    a = as_float(name, x, 2)
    if a.shape[0] < 1 or a.shape[1] != 1:
        raise ValueError(f"{name}: expected discriminator logits of shape (N, 1), got {a.shape}")
    return a


def _scalar(g) -> float:
    a = as_float("g", g)
    if a.shape != ():
        raise ValueError(f"g: expected the scalar cotangent of the loss, got shape {a.shape}")
    return float(a)


def _kind(name: str, kind: str) -> str:
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"{name}: expected one of {GENERATOR_LOSSES}, got {kind!r}")
    return kind


def _images(model: DCGAN, name: str, x) -> np.ndarray:
    a = as_float(name, x, 4)
    want = (model.channels, model.size, model.size)
    if a.shape[0] < 1 or a.shape[1:] != want:
        raise ValueError(f"{name}: expected NCHW images of shape (N, {', '.join(map(str, want))}), "
                         f"got {a.shape}")
    return a


def _latent(model: DCGAN, z, n: int | None = None) -> np.ndarray:
    a = as_float("z", z, 2)
    if a.shape[0] < 1 or a.shape[1] != model.latent:
        raise ValueError(f"z: expected latent codes of shape (N, {model.latent}), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"z: expected {n} rows to match real, got shape {a.shape}")
    return a


# --------------------------------------------------------------------------- losses

def discriminator_loss(real_logits: np.ndarray, fake_logits: np.ndarray) -> float:
    """mean softplus(-real) + mean softplus(fake): BCE with labels 1 for real and 0 for fake."""
    r, f = _logits("real_logits", real_logits), _logits("fake_logits", fake_logits)
    return float(np.mean(A.softplus(-r)) + np.mean(A.softplus(f)))


def discriminator_loss_vjp(real_logits: np.ndarray, fake_logits: np.ndarray, g: float
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(d real_logits, d fake_logits) = (-g sigmoid(-real) / N_real, g sigmoid(fake) / N_fake)."""
    r, f = _logits("real_logits", real_logits), _logits("fake_logits", fake_logits)
    g = _scalar(g)
    (d_neg_real,) = A.softplus_vjp(-r, np.full(r.shape, g / r.shape[0]))
    (d_fake,) = A.softplus_vjp(f, np.full(f.shape, g / f.shape[0]))
    return -d_neg_real, d_fake


def generator_loss(fake_logits: np.ndarray, kind: str = "non_saturating") -> float:
    """'non_saturating': mean softplus(-fake) (fake labelled real); 'minimax':
    -mean softplus(fake) = mean log(1 - D(G(z)))."""
    f = _logits("fake_logits", fake_logits)
    if _kind("kind", kind) == "non_saturating":
        return float(np.mean(A.softplus(-f)))
    return float(-np.mean(A.softplus(f)))


def generator_loss_vjp(fake_logits: np.ndarray, g: float, kind: str = "non_saturating"
                       ) -> tuple[np.ndarray]:
    """(d fake_logits,): -g sigmoid(-fake) / N ('non_saturating', about -g / N where D rejects
    the fakes) or -g sigmoid(fake) / N ('minimax', vanishing there)."""
    f = _logits("fake_logits", fake_logits)
    sign = -1.0 if _kind("kind", kind) == "non_saturating" else 1.0
    (d,) = A.softplus_vjp(sign * f, np.full(f.shape, _scalar(g) / f.shape[0]))
    return (-d,)


# --------------------------------------------------------------------------- gradients

def discriminator_loss_and_grads(model: DCGAN, dparams: Sequence[np.ndarray],
                                 dstate: Sequence[np.ndarray], real: np.ndarray, fake: np.ndarray,
                                 bn: dict[str, Any] | None = None) -> tuple[float, Params, Params]:
    """(discriminator_loss, its gradient for every discriminator parameter, new state): D in
    training mode on ``real``, then on ``fake`` (a constant: the generator is not
    differentiated), each pass updating the running statistics in that order; the gradient
    is the sum of the two passes' (the example's two backward calls)."""
    real, fake = _images(model, "real", real), _images(model, "fake", fake)
    disc = model.discriminator()
    real_logits, state, real_tape = network.forward_tape(disc, dparams, dstate, real, bn)
    fake_logits, state, fake_tape = network.forward_tape(disc, dparams, state, fake, bn)
    g_real, g_fake = discriminator_loss_vjp(real_logits, fake_logits, 1.0)
    _, grads_real = network.backprop(real_tape, g_real, bn)
    _, grads_fake = network.backprop(fake_tape, g_fake, bn)
    grads = [a + b for a, b in zip(grads_real, grads_fake, strict=True)]
    return discriminator_loss(real_logits, fake_logits), grads, state


def _through_discriminator(model: DCGAN, gen_tape: list, fake: np.ndarray,
                           dparams: Sequence[np.ndarray], dstate: Sequence[np.ndarray],
                           bn: dict[str, Any] | None, loss: str) -> tuple[float, Params, Params]:
    """(generator loss, generator grads, new D state) for the fake of the generator's tape."""
    logits, new_dstate, disc_tape = network.forward_tape(model.discriminator(), dparams, dstate,
                                                         fake, bn)
    (g_logits,) = generator_loss_vjp(logits, 1.0, loss)
    g_fake, _ = network.backprop(disc_tape, g_logits, bn)
    _, grads = network.backprop(gen_tape, g_fake, bn)
    return generator_loss(logits, loss), grads, new_dstate


def generator_loss_and_grads(model: DCGAN, gparams: Sequence[np.ndarray],
                             gstate: Sequence[np.ndarray], dparams: Sequence[np.ndarray],
                             dstate: Sequence[np.ndarray], z: np.ndarray,
                             bn: dict[str, Any] | None = None, loss: str = "non_saturating"
                             ) -> tuple[float, Params, Params, Params]:
    """(generator_loss of D(G(z)), its gradient for every generator parameter, new G state,
    new D state): G and D in training mode, the loss's gradient back through D into its input
    and on into G. D's parameters are not differentiated; its running statistics are updated."""
    z = _latent(model, z)
    _kind("loss", loss)
    fake, new_gstate, gen_tape = network.forward_tape(model.generator(), gparams, gstate, z, bn)
    value, grads, new_dstate = _through_discriminator(model, gen_tape, fake, dparams, dstate, bn,
                                                      loss)
    return value, grads, new_gstate, new_dstate


# --------------------------------------------------------------------------- training

class Step(NamedTuple):
    """train_step's result: the new params, states and optimizer states, and
    (discriminator loss, generator loss), each before its update."""

    gparams: Params
    gstate: Params
    dparams: Params
    dstate: Params
    g_opt_state: Any
    d_opt_state: Any
    losses: tuple[float, float]


class Trained(NamedTuple):
    """train's result: the final params and states, and each step's losses."""

    gparams: Params
    gstate: Params
    dparams: Params
    dstate: Params
    d_losses: list[float]
    g_losses: list[float]


def train_step(model: DCGAN, gparams: Sequence[np.ndarray], gstate: Sequence[np.ndarray],
               dparams: Sequence[np.ndarray], dstate: Sequence[np.ndarray], g_opt: Optimizer,
               g_opt_state: Any, d_opt: Optimizer, d_opt_state: Any, real: np.ndarray,
               z: np.ndarray, bn: dict[str, Any] | None = None, loss: str = "non_saturating"
               ) -> Step:
    """One iteration of the example: fake = G(z) (once, training mode); the discriminator step
    (discriminator_loss_and_grads on real and fake, then d_opt); the generator step through
    the updated D (generator_loss_and_grads's values, on the same forward of G), then g_opt.
    The generator's state is that one forward's; the discriminator's has three updates (see
    the module doc)."""
    real = _images(model, "real", real)
    z = _latent(model, z, real.shape[0])
    _kind("loss", loss)
    fake, new_gstate, gen_tape = network.forward_tape(model.generator(), gparams, gstate, z, bn)
    d_loss, d_grads, dstate = discriminator_loss_and_grads(model, dparams, dstate, real, fake, bn)
    dparams, d_opt_state = d_opt.update(d_grads, d_opt_state, dparams)
    g_loss, g_grads, dstate = _through_discriminator(model, gen_tape, fake, dparams, dstate, bn,
                                                     loss)
    gparams, g_opt_state = g_opt.update(g_grads, g_opt_state, gparams)
    return Step(gparams, new_gstate, dparams, dstate, g_opt_state, d_opt_state, (d_loss, g_loss))


def train(model: DCGAN, gparams: Sequence[np.ndarray], gstate: Sequence[np.ndarray],
          dparams: Sequence[np.ndarray], dstate: Sequence[np.ndarray], g_opt: Optimizer,
          d_opt: Optimizer, batches: Sequence[tuple[np.ndarray, np.ndarray]],
          bn: dict[str, Any] | None = None, loss: str = "non_saturating") -> Trained:
    """One train_step per (real, z) batch in order, the optimizers' states initialised here
    (the example's torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999)) is
    make_optimizer('adam', lr=2e-4, b1=0.5)). Returns the final params and states and the
    losses of every step."""
    _kind("loss", loss)
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence) or not batches:
        raise ValueError("batches: expected a non-empty list of (real, z) pairs")
    g_opt_state, d_opt_state = g_opt.init(gparams), d_opt.init(dparams)
    d_losses, g_losses = [], []
    for j, batch in enumerate(batches):
        if isinstance(batch, np.ndarray) or not isinstance(batch, Sequence) or len(batch) != 2:
            raise ValueError(f"batches[{j}]: expected a (real, z) pair")
        gparams, gstate, dparams, dstate, g_opt_state, d_opt_state, (d_loss, g_loss) = train_step(
            model, gparams, gstate, dparams, dstate, g_opt, g_opt_state, d_opt, d_opt_state,
            batch[0], batch[1], bn, loss)
        d_losses.append(d_loss)
        g_losses.append(g_loss)
    return Trained(gparams, gstate, dparams, dstate, d_losses, g_losses)
