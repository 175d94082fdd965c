"""The in-tree adapters with the sequence-layer and clipping mixins (backends/recurrent.py).
The adapters now have the mixins among their bases, so these are the adapters themselves,
kept for the modules that name them (``--backend tests.sequence_backends:TorchSequences``
selects torch as ``--backend torch`` does)."""

from __future__ import annotations

from backends.numpy_backend import NumpyBackend

NumpySequences = NumpyBackend


def __getattr__(name: str):
    """TorchSequences and JaxSequences import their framework only when asked for."""
    if name == "TorchSequences":
        from backends.torch_backend import TorchBackend
        return TorchBackend
    if name == "JaxSequences":
        from backends.jax_backend import JaxBackend
        return JaxBackend
    raise AttributeError(name)
