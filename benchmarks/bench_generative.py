"""asv benchmarks: the generative family's training steps, float64, one thread pinned to one
core (benchmarks/training.py's settings and per-process runner cache).

- ``GANTrainStep``: STEPS alternating DCGAN steps (reference/gan.py: the discriminator step on
  real and fake, then the generator step through the updated discriminator), 3x32x32 images,
  latent 32, three stages of 16 base features, batch 32, Adam (lr 2e-4, b1 0.5) for both.
- ``VAETrainStep``: STEPS steps of an MLP VAE (reference/vae.py), 784 -> 256 -> latent 16,
  Bernoulli reconstruction, batch 64, Adam (lr 1e-3).
- ``DenoiserTrainStep``: STEPS steps of the diffusion denoiser (reference/diffusion.py): an MLP
  over [x_t (64), timestep embedding (32)], hidden 128-128, epsilon prediction, the linear
  schedule over 1000 steps, batch 64, Adam (lr 1e-3).
- ``OracleOverTorch``: oracle time / torch float64 eager time on each, timed alternately in
  one process (target: at most 2).

Every backend runs its generative mixin (the oracle: its hand-chained backward; torch: eager
autograd and torch.optim; jax: each step's loss and gradients jitted, compiled in setup, the
optax update between them), from the same parameters and inputs. Randomness is an input:
latent codes, reparameterisation noise, diffusion noise and timesteps are drawn once here.

Run as a script for a quick ratio measurement without asv:
``python -m benchmarks.bench_generative [gan|vae|denoiser ...]``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.training import BACKENDS, DEVICES, DTYPE, REPEAT, cached_runner, ratio_main
from benchmarks.training import OracleOverTorch as OracleOverTorchTemplate
from reference import diffusion as Df
from reference import gan as G
from reference import registry
from reference import vae as V

STEPS = 3
GAN = G.DCGAN(latent=32, channels=3, size=32, gen_features=16, disc_features=16, stages=3)
VAE = V.VAE(input_shape=(784,), hidden=(256,), latent=16)
DENOISER = Df.Denoiser(dim=64, embed=32, hidden=(128, 128))
GAN_BATCH, BATCH = 32, 64


def _natives(bk, arrays) -> list:
    return [bk.asarray(a, DTYPE) for a in arrays]


class _GAN:
    def __init__(self, bk) -> None:
        self.bk = bk
        rng = np.random.default_rng(3)
        gp, gs, dp, ds = G.init_params(GAN, 0)
        self.nets = [_natives(bk, a) for a in (gp, gs, dp, ds)]
        real = np.tanh(rng.standard_normal((GAN_BATCH, GAN.channels, GAN.size, GAN.size)))
        self.batch = (bk.asarray(real, DTYPE),
                      bk.asarray(rng.standard_normal((GAN_BATCH, GAN.latent)), DTYPE))
        fixed = {k: v for k, v in bk.conventions.get("batch_norm", {}).items()
                 if not isinstance(v, tuple)}
        self.bn = {k: v for k, v in registry.get("batch_norm").defaults().items()
                   if k != "training"} | fixed
        self.g_opt = bk.optimizer("adam", lr=2e-4, b1=0.5)
        self.d_opt = bk.optimizer("adam", lr=2e-4, b1=0.5)

    def run(self, steps: int) -> None:
        out = self.bk.train_gan(GAN, *self.nets, self.g_opt, self.d_opt, [self.batch] * steps,
                                self.bn)
        self.bk.synchronize()
        self.nets = list(out[:4])


class _VAE:
    def __init__(self, bk) -> None:
        self.bk = bk
        rng = np.random.default_rng(4)
        self.params = _natives(bk, V.init_params(VAE, 0))
        self.batch = (bk.asarray(rng.uniform(0, 1, (BATCH, 784)), DTYPE),
                      bk.asarray(rng.standard_normal((BATCH, VAE.latent)), DTYPE))
        self.opt = bk.optimizer("adam", lr=1e-3)

    def run(self, steps: int) -> None:
        self.params, _ = self.bk.train_vae(VAE, self.params, [self.batch] * steps, self.opt)
        self.bk.synchronize()


class _Denoiser:
    def __init__(self, bk) -> None:
        self.bk = bk
        rng = np.random.default_rng(5)
        self.params = _natives(bk, Df.init_params(DENOISER, 0))
        ac = Df.alphas_cumprod(Df.betas("linear", 1000))
        self.ac = bk.asarray(ac, DTYPE)
        self.batch = (bk.asarray(rng.standard_normal((BATCH, DENOISER.dim)), DTYPE),
                      bk.asarray(rng.standard_normal((BATCH, DENOISER.dim)), DTYPE),
                      bk.asarray(rng.integers(0, 1000, BATCH)))
        self.opt = bk.optimizer("adam", lr=1e-3)

    def run(self, steps: int) -> None:
        self.params, _ = self.bk.train_denoiser(DENOISER, self.params, [self.batch] * steps,
                                                self.ac, self.opt)
        self.bk.synchronize()


_BUILD = {"gan": _GAN, "vae": _VAE, "denoiser": _Denoiser}
WORKS = tuple(_BUILD)


def _runner(work: str, backend: str, device: str):
    """The warmed-up runner of ``work`` (JAX: compiled by the warm-up)."""
    return cached_runner(("generative", work, backend, device), backend, device, _BUILD[work], 1)


class _TrainStep:
    params = (list(BACKENDS), list(DEVICES))
    param_names = ("backend", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300
    work = ""

    def setup(self, backend: str, device: str) -> None:
        self.runner = _runner(self.work, backend, device)

    def time_step(self, backend: str, device: str) -> None:
        """STEPS training steps, synchronised; divide by STEPS for one step."""
        self.runner.run(STEPS)

    def peakmem_step(self, backend: str, device: str) -> None:
        self.runner.run(STEPS)


class GANTrainStep(_TrainStep):
    """STEPS (3) alternating DCGAN steps, 3x32x32, latent 32, batch 32, Adam b1 0.5."""

    work = "gan"


class VAETrainStep(_TrainStep):
    """STEPS (3) steps of an MLP VAE, 784-256-16, Bernoulli, batch 64, Adam."""

    work = "vae"


class DenoiserTrainStep(_TrainStep):
    """STEPS (3) steps of the MLP denoiser, 64 + 32 -> 128 -> 128 -> 64, batch 64, Adam."""

    work = "denoiser"


class OracleOverTorch(OracleOverTorchTemplate):
    """Time of the oracle / time of torch float64 eager on each work, timed alternately in
    one process (training.OracleOverTorch: median of 7 timings each, median ratio of 3
    pairs). Target <= 2."""

    params = (list(WORKS),)
    n = STEPS

    def setup(self, work: str) -> None:
        self.oracle = _runner(work, "numpy", "cpu")
        self.torch = _runner(work, "torch", "cpu")


if __name__ == "__main__":
    import sys

    ratio_main(OracleOverTorch, sys.argv[1:])
