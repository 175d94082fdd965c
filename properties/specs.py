"""The properties' side of each component record: how its inputs are drawn and judged.

``SPECS`` has one ``Spec`` per component of reference.registry.RECORDS: the case (how inputs
are drawn, properties/cases.py and cnn_cases.py), whether it has a tail range, and the
magnitude functions of the tolerance policy (properties/magnitudes.py). The property tests
are parametrised by these names; ``register`` adds the spec of a component registered from
outside the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from backends.base import as_tuple
from properties import augment_cases as AK
from properties import cases as K
from properties import cnn_cases as CK
from properties import magnitudes as M
from properties import rnn_cases as RK
from properties.coverage import SIZES, Classes
from properties.inputs import Case, Inputs
from properties.tolerance import EPS, TINY
from reference import registry
from reference.augment import BRIGHTNESS_MODES, ROTATE_INTERPOLATIONS, ROTATE_SAMPLING
from reference.batchnorm import MOMENTUM_CONVENTIONS, VARIANCES

ForwardTerms = Callable[[tuple[np.ndarray, ...], dict[str, Any]], Any]
VjpTerms = Callable[[tuple[np.ndarray, ...], dict[str, Any], np.ndarray], list[np.ndarray]]
ForwardFloor = Callable[[tuple[np.ndarray, ...], dict[str, Any], float], Any]
VjpFloor = Callable[[tuple[np.ndarray, ...], dict[str, Any], np.ndarray, float], list[np.ndarray]]
Classify = Callable[[Inputs], dict[str, str]]


@dataclass(frozen=True)
class Spec:
    """case: draw(data, dtype, tail) -> Inputs. tail: the case also draws a saturated or
    underflowing range (checked in relative terms). forward_terms / vjp_terms: the magnitude
    M of the terms the oracle's formula combines (None: none beyond the result), see
    properties/magnitudes.py; vjp_terms takes the cotangent of the differentiated output, or,
    for a component with several differentiated outputs (lstm_cell's h and c), a tuple of
    one cotangent per differentiated output (None for one not live). forward_floor /
    vjp_floor: the same functions with the dtype's smallest normal TINY as a last argument,
    giving the absolute error the formula makes of intermediates that are subnormal and
    flushed to zero (as XLA's CPU code does), taken into M as that error / EPS.
    classes / tail_classes: the configuration classes the regular / tail draws cover
    (properties/coverage.py); classify: the classes of final inputs where the backend's
    conventions can change them."""

    case: Case
    tail: bool = False
    forward_terms: ForwardTerms | None = None
    vjp_terms: VjpTerms | None = None
    forward_floor: ForwardFloor | None = None
    vjp_floor: VjpFloor | None = None
    classes: Classes = field(default_factory=lambda: {"sizes": SIZES})
    tail_classes: Classes = field(default_factory=lambda: {"sizes": SIZES})
    classify: Classify | None = None


def _activation(name: str, vjp: VjpTerms | None = None, classify: Classify | None = None,
                **draws: Any) -> Spec:
    """An activation's spec; a draw given as {class: strategy} is a configuration class."""
    classes = {"sizes": SIZES, **{k: tuple(d) for k, d in draws.items() if isinstance(d, dict)}}
    tails = {"tail": tuple(K.range_name(r) for r in K.TAILS[name])} if name in K.TAILS else {}
    return Spec(K.activation_case(name, **draws), tail=name in K.TAILS, vjp_terms=vjp,
                classes=classes, tail_classes={"sizes": SIZES, **tails}, classify=classify)


def _threshold(inp: Inputs) -> dict[str, str]:
    t = inp.kwargs.get("threshold")
    return {"threshold": "exact" if t is None else "default" if t == 20.0 else "small"}


def _weights(inp: Inputs) -> dict[str, str]:
    """cross_entropy's WEIGHT_SMOOTHING class or nll_loss's WEIGHTS class (a backend may lack
    class weights)."""
    weighted = inp.kwargs.get("weight") is not None
    if "label_smoothing" not in inp.kwargs:
        return {"weight": "class_weights" if weighted else "unweighted"}
    smoothed = bool(inp.kwargs["label_smoothing"])
    return {"weight_smoothing": ("both" if smoothed else "class_weights") if weighted else
            ("label_smoothing" if smoothed else "neither")}


def _pooling(inp: Inputs) -> dict[str, str]:
    """A pooling's CEIL class and, for an average, its PAD_COUNT class."""
    out = {"ceil": CK.pool_classes(inp.primals[0], **inp.kwargs)}
    if "count_include_pad" in inp.kwargs:
        padded = any(as_tuple(inp.kwargs["padding"], 2, "padding"))
        out["pad_count"] = "unpadded" if not padded else \
            "include_pad" if inp.kwargs["count_include_pad"] else "exclude_pad"
    return out


def _batch_norm(inp: Inputs) -> dict[str, str]:
    return {k: inp.kwargs[k] for k in ("momentum_convention", "variance")}


_LOSS = {"sizes": SIZES, "reduction": K.REDUCTIONS}
_CONV = {"sizes": SIZES, "groups_dilation": CK.GROUPS_DILATION}
_CELL = {"sizes": SIZES, "scale": tuple(RK.SCALES), "state": RK.STATES}


SPECS: dict[str, Spec] = {
    "dense": Spec(K.dense, forward_terms=M.dense_forward, vjp_terms=M.dense_vjp),
    "sigmoid": _activation("sigmoid", M.sigmoid_vjp),
    "tanh": _activation("tanh", M.tanh_vjp),
    "relu": _activation("relu"),
    "leaky_relu": _activation("leaky_relu", negative_slope=st.floats(0.001, 0.5)),
    "elu": _activation("elu", alpha=st.floats(0.1, 2.0)),
    "gelu": _activation("gelu", M.gelu_vjp, approximate={a: st.just(a) for a in ("none", "tanh")}),
    "silu": _activation("silu", M.silu_vjp),
    # threshold: None is the exact function; a float returns x where beta x > threshold (20
    # meets the tails, 0.5 to 10 the regular range)
    "softplus": _activation("softplus", classify=_threshold, beta=st.floats(0.5, 3.0),
                            threshold={"exact": st.none(), "default": st.just(20.0),
                                       "small": st.floats(0.5, 10.0)}),
    "softmax": Spec(K.softmax, tail=True, vjp_terms=M.softmax_vjp),
    "log_softmax": Spec(K.softmax, tail=True, forward_terms=M.log_softmax_forward,
                        vjp_terms=M.log_softmax_vjp),
    "mse_loss": Spec(K.regression("mse_loss"), classes=_LOSS),
    "l1_loss": Spec(K.regression("l1_loss"), classes=_LOSS),
    "huber_loss": Spec(K.regression("huber_loss"), tail=True, classes=_LOSS, tail_classes=_LOSS),
    "bce_with_logits": Spec(K.bce, tail=True, vjp_terms=M.bce_with_logits_vjp, classes=_LOSS,
                            tail_classes={"sizes": SIZES, "tail": tuple(
                                K.range_name(r) for r in K.BCE_TAILS)}),
    "cross_entropy": Spec(K.cross_entropy, forward_terms=M.cross_entropy_forward,
                          vjp_terms=M.cross_entropy_vjp, classify=_weights,
                          classes={**_LOSS, "weight_smoothing": K.WEIGHT_SMOOTHING}),
    "nll_loss": Spec(K.nll, classify=_weights, classes={**_LOSS, "weight": K.WEIGHTS}),
    **{n: Spec(CK.conv(d), forward_terms=M.abs_forward(n), vjp_terms=M.bilinear_vjp(n),
               classes={**_CONV, "padding": CK.PADDINGS[d]})
       for n, d in (("conv2d", 2), ("conv1d", 1))},
    "conv_transpose2d": Spec(CK.conv_transpose2d, forward_terms=M.abs_forward("conv_transpose2d"),
                             vjp_terms=M.bilinear_vjp("conv_transpose2d"), classes=_CONV),
    "max_pool2d": Spec(CK.max_pool2d, vjp_terms=M.summing_vjp("max_pool2d"), classify=_pooling,
                       classes={"sizes": SIZES, "ceil": CK.CEIL}),
    "avg_pool2d": Spec(CK.avg_pool2d, forward_terms=M.abs_forward("avg_pool2d"),
                       vjp_terms=M.summing_vjp("avg_pool2d"), classify=_pooling,
                       classes={"sizes": SIZES, "ceil": CK.CEIL, "pad_count": CK.PAD_COUNT}),
    "global_avg_pool2d": Spec(CK.global_avg_pool2d,
                              forward_terms=M.abs_forward("global_avg_pool2d"),
                              vjp_terms=M.summing_vjp("global_avg_pool2d")),
    "flatten": Spec(CK.flatten),
    "batch_norm": Spec(CK.batch_norm, forward_terms=M.batch_norm_forward,
                       vjp_terms=M.batch_norm_vjp, forward_floor=M.batch_norm_forward_floor,
                       vjp_floor=M.batch_norm_vjp_floor, classify=_batch_norm,
                       classes={"sizes": SIZES, "mode": CK.BN_MODES,
                                "momentum_convention": MOMENTUM_CONVENTIONS,
                                "variance": VARIANCES}),
    "var_mean": Spec(K.var_mean),
    "rnn_cell": Spec(RK.cell("rnn"), forward_terms=M.rnn_cell_forward, vjp_terms=M.rnn_cell_vjp,
                     classes={**_CELL, "nonlinearity": RK.NONLINEARITIES}),
    "lstm_cell": Spec(RK.cell("lstm"), forward_terms=M.lstm_cell_forward,
                      vjp_terms=M.lstm_cell_vjp, classes=_CELL),
    "gru_cell": Spec(RK.cell("gru"), forward_terms=M.gru_cell_forward, vjp_terms=M.gru_cell_vjp,
                     classify=RK.classify_cell,
                     classes={**_CELL, "reset_after": RK.RESET_AFTER}),
    "embedding": Spec(RK.embedding, vjp_terms=M.summing_vjp("embedding"),
                      classify=RK.classify_embedding,
                      classes={"sizes": SIZES, "ids": RK.IDS, "padding_idx": RK.PADDING}),
    # data augmentation (properties/augment_cases.py): resamplings are linear with nonnegative
    # weights computed from coordinates (their magnitudes, properties/magnitudes.py)
    "hflip": Spec(AK.hflip),
    "rotate": Spec(AK.rotate, forward_terms=M.rotate_forward, vjp_terms=M.rotate_vjp,
                   classify=AK.classify_rotate,
                   classes={"sizes": SIZES, "interpolation": ROTATE_INTERPOLATIONS,
                            "sampling": ROTATE_SAMPLING, "angle": AK.ANGLES}),
    "brightness": Spec(AK.brightness, forward_terms=M.brightness_forward,
                       classify=AK.classify_brightness,
                       classes={"sizes": SIZES, "mode": BRIGHTNESS_MODES, "amount": AK.AMOUNTS}),
    "resized_crop": Spec(AK.resized_crop, forward_terms=M.resized_crop_forward,
                         vjp_terms=M.resized_crop_vjp,
                         classes={"sizes": SIZES, "resampling": AK.RESAMPLING,
                                  "resize": AK.RESIZES}),
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


def _plus_floor(m: Any, floor: Any, dtype: str | None) -> Any:
    """M plus the flush error ``floor`` / EPS of ``dtype`` (lists element by element; None:
    nothing)."""
    if floor is None:
        return m
    if not isinstance(floor, list):
        return floor / EPS[dtype] + (0.0 if m is None else m)
    ms = [None] * len(floor) if m is None else m
    return [f / EPS[dtype] + (0.0 if mi is None else mi) for mi, f in zip(ms, floor, strict=True)]


def forward_terms(name: str, primals: tuple[np.ndarray, ...], kwargs: dict[str, Any],
                  dtype: str | None = None) -> Any:
    """M for the forward output of component ``name`` (a list for several outputs; None: no
    terms beyond the result), with its flush error in ``dtype`` where given."""
    spec = SPECS[name]
    m = None if spec.forward_terms is None else spec.forward_terms(primals, kwargs)
    floor = None if spec.forward_floor is None or dtype is None else \
        spec.forward_floor(primals, kwargs, TINY[dtype])
    return _plus_floor(m, floor, dtype)


def vjp_terms(name: str, primals: tuple[np.ndarray, ...], kwargs: dict[str, Any],
              cotangents: Any, dtype: str | None = None) -> list[np.ndarray] | None:
    """M for each gradient of component ``name`` given one cotangent per output (None: none),
    with its flush error in ``dtype`` where given. Its magnitude function receives the live
    cotangent, or, where the record differentiates several outputs, every differentiated
    output's cotangent (None for one not live)."""
    spec = SPECS[name]
    rec = registry.get(name)
    cots = rec.cotangents(cotangents)
    live = [c for c in cots if c is not None]
    if not live:
        return None
    if len(rec.differentiated) > 1:
        given = tuple(c for out, c in zip(rec.outputs, cots, strict=True)
                      if out in rec.differentiated)
    elif len(live) == 1:
        given = live[0]
    else:
        return None
    m = None if spec.vjp_terms is None else spec.vjp_terms(primals, kwargs, given)
    floor = None if spec.vjp_floor is None or dtype is None else \
        spec.vjp_floor(primals, kwargs, given, TINY[dtype])
    return _plus_floor(m, floor, dtype)
