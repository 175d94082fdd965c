"""The properties' side of each component record: how its inputs are drawn and judged.

``SPECS`` has one ``Spec`` per component of reference.registry.RECORDS: the case (how inputs
are drawn, properties/cases.py and cnn_cases.py), whether it has a tail range, and the
magnitude functions of the tolerance policy (properties/magnitudes.py). The property tests
are parametrised by these names; ``register`` adds the spec of a component registered from
outside the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from properties import cases as K
from properties import cnn_cases as CK
from properties import magnitudes as M
from properties.inputs import Case
from reference import registry

ForwardTerms = Callable[[tuple[np.ndarray, ...], dict[str, Any]], Any]
VjpTerms = Callable[[tuple[np.ndarray, ...], dict[str, Any], np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class Spec:
    """case: draw(data, dtype, tail) -> Inputs. tail: the case also draws a saturated or
    underflowing range (checked in relative terms). forward_terms / vjp_terms: the magnitude
    M of the terms the oracle's formula combines (None: none beyond the result), see
    properties/magnitudes.py; vjp_terms takes the cotangent of the differentiated output."""

    case: Case
    tail: bool = False
    forward_terms: ForwardTerms | None = None
    vjp_terms: VjpTerms | None = None


def _activation(name: str, vjp: VjpTerms | None = None, **draws: Any) -> Spec:
    return Spec(K.activation_case(name, **draws), tail=name in K.TAILS, vjp_terms=vjp)


SPECS: dict[str, Spec] = {
    "dense": Spec(K.dense, forward_terms=M.dense_forward, vjp_terms=M.dense_vjp),
    "sigmoid": _activation("sigmoid", M.sigmoid_vjp),
    "tanh": _activation("tanh", M.tanh_vjp),
    "relu": _activation("relu"),
    "leaky_relu": _activation("leaky_relu", negative_slope=st.floats(0.001, 0.5)),
    "elu": _activation("elu", alpha=st.floats(0.1, 2.0)),
    "gelu": _activation("gelu", M.gelu_vjp, approximate=st.sampled_from(("none", "tanh"))),
    "silu": _activation("silu", M.silu_vjp),
    # threshold: None is the exact function; a float returns x where beta x > threshold (20
    # meets the tails, 0.5 to 10 the regular range)
    "softplus": _activation("softplus", beta=st.floats(0.5, 3.0),
                            threshold=st.one_of(st.none(), st.just(20.0), st.floats(0.5, 10.0))),
    "softmax": Spec(K.softmax, tail=True, vjp_terms=M.softmax_vjp),
    "log_softmax": Spec(K.softmax, tail=True, forward_terms=M.log_softmax_forward,
                        vjp_terms=M.log_softmax_vjp),
    "mse_loss": Spec(K.regression("mse_loss")),
    "l1_loss": Spec(K.regression("l1_loss")),
    "huber_loss": Spec(K.regression("huber_loss"), tail=True),
    "bce_with_logits": Spec(K.bce, tail=True, vjp_terms=M.bce_with_logits_vjp),
    "cross_entropy": Spec(K.cross_entropy, forward_terms=M.cross_entropy_forward,
                          vjp_terms=M.cross_entropy_vjp),
    "nll_loss": Spec(K.nll),
    **{n: Spec(CK.conv(2) if n == "conv2d" else CK.conv(1) if n == "conv1d" else
               CK.conv_transpose2d, forward_terms=M.abs_forward(n), vjp_terms=M.bilinear_vjp(n))
       for n in ("conv2d", "conv1d", "conv_transpose2d")},
    "max_pool2d": Spec(CK.max_pool2d, vjp_terms=M.summing_vjp("max_pool2d")),
    **{n: Spec(getattr(CK, n), forward_terms=M.abs_forward(n), vjp_terms=M.summing_vjp(n))
       for n in ("avg_pool2d", "global_avg_pool2d")},
    "flatten": Spec(CK.flatten),
    "batch_norm": Spec(CK.batch_norm, forward_terms=M.batch_norm_forward,
                       vjp_terms=M.batch_norm_vjp),
    "var_mean": Spec(K.var_mean),
}
"""Component name -> how the properties draw and judge it."""


def register(name: str, spec: Spec) -> Spec:
    """Add the spec of a component registered from outside the tree (reference.registry)."""
    if name in SPECS:
        raise ValueError(f"component {name!r} already has a spec")
    SPECS[name] = spec
    return spec


def tail_components() -> list[str]:
    """Components with a tail property."""
    return sorted(n for n, s in SPECS.items() if s.tail)


def forward_terms(name: str, primals: tuple[np.ndarray, ...], kwargs: dict[str, Any]) -> Any:
    """M for the forward output of component ``name`` (a list for several outputs; None: no
    terms beyond the result)."""
    fn = SPECS[name].forward_terms
    return None if fn is None else fn(primals, kwargs)


def vjp_terms(name: str, primals: tuple[np.ndarray, ...], kwargs: dict[str, Any],
              cotangents: Any) -> list[np.ndarray] | None:
    """M for each gradient of component ``name`` given one cotangent per output (None: none;
    so too for several differentiated outputs, which no magnitude function covers yet)."""
    fn = SPECS[name].vjp_terms
    live = [c for c in registry.get(name).cotangents(cotangents) if c is not None]
    return None if fn is None or len(live) != 1 else fn(primals, kwargs, live[0])
