"""The in-tree adapters with the DCGAN mixins (backends/compose_gan.py, backends/jax_gan.py),
for running properties/test_gan.py before the mixins are among the adapters' bases:
``--backend tests.gan_backends:TorchGAN`` and so on."""

from __future__ import annotations

from backends.compose_gan import ChainedGAN, GANBackend
from backends.numpy_backend import NumpyBackend


class NumpyGAN(NumpyBackend, ChainedGAN):
    """The oracle's components, the DCGAN's gradients chained over their VJPs."""

    name = "numpy"


def _torch():
    from backends.torch_backend import TorchBackend

    class TorchGAN(TorchBackend, GANBackend):
        """F.conv2d, F.conv_transpose2d, F.batch_norm, F.binary_cross_entropy_with_logits,
        torch.autograd through all of it, torch.optim."""

        name = "torch"
    return TorchGAN


def _jax():
    from backends.jax_backend import JaxBackend
    from backends.jax_gan import JaxCompiledGAN

    class JaxGAN(JaxBackend, JaxCompiledGAN):
        """jax.lax convolutions, flax's batch norm, optax; each step's loss and gradients
        under one jax.jit."""

        name = "jax"
    return JaxGAN


def __getattr__(name: str):
    """TorchGAN and JaxGAN import their framework only when asked for."""
    if name == "TorchGAN":
        return _torch()
    if name == "JaxGAN":
        return _jax()
    raise AttributeError(name)
