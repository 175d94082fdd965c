"""The in-tree adapters with the diffusion-scheduler mixins (backends/diffusion.py,
torch_diffusion.py, jax_diffusion.py), for running properties/test_diffusion.py before the
mixins are among the adapters' bases: ``--backend tests.diffusion_backends:TorchDiffusers``
and so on."""

from __future__ import annotations

from backends.diffusion import NumpyDiffusion
from backends.numpy_backend import NumpyBackend


class NumpySchedulers(NumpyBackend, NumpyDiffusion):
    """reference/diffusion.py's schedulers."""

    name = "numpy"


def _torch():
    from backends.torch_backend import TorchBackend
    from backends.torch_diffusion import TorchDiffusion

    class TorchDiffusers(TorchBackend, TorchDiffusion):
        """diffusers' DDPMScheduler and DDIMScheduler."""

        name = "torch"
    return TorchDiffusers


def _jax():
    from backends.jax_backend import JaxBackend
    from backends.jax_diffusion import JaxDiffusion

    class JaxSchedulers(JaxBackend, JaxDiffusion):
        """diffusers' DDPM and DDIM algorithms in jax.numpy, jitted."""

        name = "jax"
    return JaxSchedulers


def __getattr__(name: str):
    """TorchDiffusers and JaxSchedulers import their framework only when asked for."""
    if name == "TorchDiffusers":
        return _torch()
    if name == "JaxSchedulers":
        return _jax()
    raise AttributeError(name)
