"""The oracle: float64 NumPy forward and hand-written backward of every component.

Each component ``f`` sits beside its VJP ``f_vjp(*primals, g, **conventions)``, which returns
the gradients of the differentiable primals. This package imports NumPy and SciPy only.
"""

from reference import activations, dense, losses, network, optimizers

__all__ = ["activations", "dense", "losses", "network", "optimizers"]
