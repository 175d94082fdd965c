"""The in-tree adapters with the VAE and denoiser mixins (backends/compose_vae.py,
backends/compose_denoiser.py, backends/jax_vae.py), for running properties/test_vae.py and
properties/test_denoiser.py before the mixins are among the adapters' bases:
``--backend tests.vae_backends:TorchVAE`` and so on."""

from __future__ import annotations

from backends.base import KnownDivergence
from backends.compose_denoiser import ChainedDenoiser
from backends.compose_vae import ChainedVAE
from backends.numpy_backend import NumpyBackend

#: diffusers' get_timestep_embedding computes in float32 whatever the model's dtype
#: (embeddings.py lines 58 and 63), so a float64 run's input carries float32 rounding.
FLOAT32_EMBEDDING = tuple(
    KnownDivergence(test, "denoiser", "diffusers' get_timestep_embedding computes the timestep "
                    "embedding in float32 (torch.arange(dtype=torch.float32), "
                    "timesteps.float()), so a float64 model's input carries float32 rounding",
                    upstream="diffusers 0.42.1 src/diffusers/models/embeddings.py 58-63",
                    dtypes=("float64",))
    for test in ("test_denoiser_loss_and_grads", "test_denoiser_training"))


class NumpyVAE(NumpyBackend, ChainedVAE, ChainedDenoiser):
    """The oracle's components, the VAE's and the denoiser's gradients chained over their
    VJPs."""

    name = "numpy"


def _torch():
    from backends.compose_denoiser import TorchDenoiser
    from backends.compose_vae import VAEBackend
    from backends.torch_backend import TorchBackend

    class TorchVAE(TorchBackend, VAEBackend, TorchDenoiser):
        """F.linear, F.conv2d, F.conv_transpose2d, F.relu, F.silu, the losses, diffusers'
        timestep embedding, torch.autograd through all of it, torch.optim."""

        name = "torch"
        known_divergences = TorchBackend.known_divergences + FLOAT32_EMBEDDING
    return TorchVAE


def _jax():
    from backends.jax_backend import JaxBackend
    from backends.jax_vae import JaxDenoiser, JaxVAE

    class JaxVAEBackend(JaxBackend, JaxVAE, JaxDenoiser):
        """The adapter's flax/lax components and optax losses, jax.value_and_grad under one
        jax.jit per model and shapes, optax."""

        name = "jax"
    return JaxVAEBackend


def __getattr__(name: str):
    """TorchVAE and JaxVAE import their framework only when asked for."""
    if name == "TorchVAE":
        return _torch()
    if name == "JaxVAE":
        return _jax()
    raise AttributeError(name)
