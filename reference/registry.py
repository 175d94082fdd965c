"""Every oracle component's record (reference.component.Component) by name.

Every other list of components in the suite (the backend interface, the property cases, the
tolerance policy's magnitudes, the consistency tests) is derived from ``RECORDS``.
``register`` adds a component from outside the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reference import activations as A
from reference import augment as Au
from reference import batchnorm as B
from reference import conv as C
from reference import dense as D
from reference import embedding as E
from reference import losses as L
from reference import moments as Mo
from reference import pooling as P
from reference import recurrent as Rn
from reference.component import Component

__all__ = ["RECORDS", "Component", "forward", "get", "register", "vjp"]


def _pair(module, name: str, inputs: tuple[str, ...], family: str, **fields: Any) -> Component:
    return Component(name, getattr(module, name), getattr(module, name + "_vjp"), inputs, family,
                     **fields)


_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus",
                "softmax", "log_softmax")
_REGRESSION = ("mse_loss", "l1_loss", "huber_loss", "bce_with_logits")
_CONV = ("conv2d", "conv1d", "conv_transpose2d")
_CELL_WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")

RECORDS: dict[str, Component] = {rec.name: rec for rec in [
    _pair(D, "dense", ("x", "w", "b"), "dense", optional=("b",)),
    *(_pair(A, n, ("x",), "activation",
            conventions={"approximate": A.GELU_APPROXIMATIONS} if n == "gelu" else {})
      for n in _ACTIVATIONS),
    *(_pair(L, n, ("logits" if n == "bce_with_logits" else "pred",), "loss", data=("target",),
            positional_data=("target",)) for n in _REGRESSION),
    _pair(L, "cross_entropy", ("logits",), "loss", data=("labels", "weight"),
          positional_data=("labels",), conventions={"class_weighting": L.CLASS_WEIGHTINGS}),
    _pair(L, "nll_loss", ("log_probs",), "loss", data=("labels", "weight"),
          positional_data=("labels",)),
    *(_pair(C, n, ("x", "w", "b"), "cnn", optional=("b",)) for n in _CONV),
    _pair(P, "max_pool2d", ("x",), "cnn", conventions={"ties": P.TIES}),
    *(_pair(P, n, ("x",), "cnn") for n in ("avg_pool2d", "global_avg_pool2d", "flatten")),
    _pair(B, "batch_norm", ("x", "weight", "bias"), "cnn",
          outputs=("y", "running_mean", "running_var"), differentiable_outputs=("y",),
          optional=("weight", "bias"), data=("running_mean", "running_var"),
          conventions={"momentum_convention": B.MOMENTUM_CONVENTIONS,
                       "unbiased_running_var": (True, False), "variance": B.VARIANCES}),
    _pair(Mo, "var_mean", ("x",), "statistics", outputs=("var", "mean"),
          conventions={"correction": Mo.CORRECTIONS}),
    # recurrent cells: the oracle's layout is PyTorch's (reference/recurrent.py); the
    # nonlinearity is configuration, the GRU's reset-gate placement a convention
    _pair(Rn, "rnn_cell", ("x", "h", *_CELL_WEIGHTS), "recurrent", outputs=("h",),
          optional=("b_ih", "b_hh")),
    _pair(Rn, "lstm_cell", ("x", "h", "c", *_CELL_WEIGHTS), "recurrent",
          outputs=("h", "c"), optional=("b_ih", "b_hh")),
    _pair(Rn, "gru_cell", ("x", "h", *_CELL_WEIGHTS), "recurrent", outputs=("h",),
          optional=("b_ih", "b_hh"), conventions={"reset_after": Rn.RESET_AFTER}),
    _pair(E, "embedding", ("weight",), "embedding", data=("ids",), positional_data=("ids",)),
    # data augmentation: deterministic and differentiable in the image x (angles, boxes,
    # sizes and amounts are configuration); the border and tie rule of a rotation and the
    # form of a brightness change are conventions (reference/augment.py)
    _pair(Au, "hflip", ("x",), "augment"),
    _pair(Au, "rotate", ("x",), "augment", conventions={"sampling": Au.ROTATE_SAMPLING}),
    _pair(Au, "brightness", ("x",), "augment", conventions={"mode": Au.BRIGHTNESS_MODES}),
    _pair(Au, "resized_crop", ("x",), "augment"),
]}
"""Component name -> record."""


def register(rec: Component) -> Component:
    """Add a component (an extension outside the tree); a name may be registered once."""
    if rec.name in RECORDS:
        raise ValueError(f"component {rec.name!r} is already registered")
    RECORDS[rec.name] = rec
    return rec


def get(name: str) -> Component:
    """The record of component ``name``."""
    try:
        return RECORDS[name]
    except KeyError:
        raise ValueError(f"no component {name!r}; registered: {', '.join(sorted(RECORDS))}"
                         ) from None


def forward(name: str, primals: Sequence[np.ndarray], **kwargs: Any) -> Any:
    """The oracle's output of component ``name`` (a tuple for several outputs)."""
    return get(name).forward(*primals, **kwargs)


def vjp(name: str, primals: Sequence[np.ndarray], cotangents: Any, **kwargs: Any) -> tuple:
    """The oracle's gradient of every primal of component ``name``: one cotangent per output
    (None: not differentiated; a bare array for a single output)."""
    return get(name).call_vjp(primals, cotangents, kwargs)
