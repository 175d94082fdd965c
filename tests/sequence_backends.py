"""The in-tree adapters with the sequence-layer and clipping mixins (backends/recurrent.py),
for running properties/test_recurrent.py before the mixins are among the adapters' bases:
``--backend tests.sequence_backends:TorchSequences`` and so on."""

from __future__ import annotations

from backends.numpy_backend import NumpyBackend
from backends.recurrent import NumpyRecurrent


class NumpySequences(NumpyBackend, NumpyRecurrent):
    """NumpyBackend with the oracle's sequence layers and clipping."""

    name = "numpy"


def _torch():
    from backends.torch_backend import TorchBackend
    from backends.torch_recurrent import TorchRecurrent

    class TorchSequences(TorchBackend, TorchRecurrent):
        """TorchBackend with nn.RNN / LSTM / GRU and clip_grad_*_."""

        name = "torch"
    return TorchSequences


def _jax():
    from backends.jax_backend import JaxBackend
    from backends.jax_recurrent import JaxRecurrent

    class JaxSequences(JaxBackend, JaxRecurrent):
        """JaxBackend with flax.linen.RNN and optax clipping."""

        name = "jax"
    return JaxSequences


def __getattr__(name: str):
    """TorchSequences and JaxSequences import their framework only when asked for."""
    if name == "TorchSequences":
        return _torch()
    if name == "JaxSequences":
        return _jax()
    raise AttributeError(name)
