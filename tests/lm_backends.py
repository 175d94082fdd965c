"""The in-tree adapters with the sequence-layer mixins (tests/sequence_backends.py) and the
language-model mixins (backends/compose_lm.py, backends/jax_lm.py), for running
properties/test_language_model.py before the mixins are among the adapters' bases:
``--backend tests.lm_backends:TorchLM`` and so on."""

from __future__ import annotations

from backends.compose_lm import ChainedLanguageModel, LanguageModelBackend
from tests.sequence_backends import NumpySequences


class NumpyLM(NumpySequences, ChainedLanguageModel):
    """The oracle's components, its language model's gradients chained over their VJPs."""

    name = "numpy"


def _torch():
    from tests.sequence_backends import TorchSequences

    class TorchLM(TorchSequences, LanguageModelBackend):
        """nn.Embedding's F.embedding, nn.LSTM / nn.GRU, F.linear, F.cross_entropy,
        torch.autograd through all of it, clip_grad_norm_, torch.optim."""

        name = "torch"
    return TorchLM


def _jax():
    from backends.jax_lm import JaxLanguageModel
    from tests.sequence_backends import JaxSequences

    class JaxLM(JaxSequences, JaxLanguageModel):
        """flax.linen Embed and nn.RNN, optax, the loss and gradients under one jax.jit."""

        name = "jax"
    return JaxLM


def __getattr__(name: str):
    """TorchLM and JaxLM import their framework only when asked for."""
    if name == "TorchLM":
        return _torch()
    if name == "JaxLM":
        return _jax()
    raise AttributeError(name)
