"""The record of one oracle component (in the spirit of PyTorch's OpInfo).

A record says what every other part of the suite needs to know about a component: its
forward and VJP, the names of its outputs, which inputs are differentiable, which are data
(targets, labels, class weights, running statistics) and which are configuration, and the
values the oracle accepts for each convention where frameworks differ.

The VJP convention, for the oracle and the backends alike: primals (the differentiable
inputs, in order), one cotangent per output (None for an output that is not differentiated),
and back one gradient per primal. Oracle VJP functions are written
``f_vjp(*inputs, *positional_data, *cotangents, **keywords)``: the differentiable inputs
(None for an absent optional one), the data the forward also takes positionally (a loss's
target), one cotangent per differentiable output, then data and configuration by keyword.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Component:
    """One component: ``forward(*inputs, **kwargs)`` and its hand-written VJP.

    inputs: differentiable inputs in the forward's positional order; ``optional`` ones may be
    None or left out (a bias). outputs: output names (one name: the forward returns an array;
    several: a tuple). differentiable_outputs: the outputs the oracle's VJP takes cotangents
    for (default all). data: non-differentiable array inputs; ``positional_data`` are those
    the oracle VJP takes positionally after the inputs. conventions: argument -> the values
    the oracle accepts, where frameworks legitimately differ. Every other keyword of the
    forward is configuration.
    """

    name: str
    forward: Callable[..., Any]
    vjp_fn: Callable[..., Any]
    inputs: tuple[str, ...]
    family: str
    outputs: tuple[str, ...] = ("y",)
    differentiable_outputs: tuple[str, ...] | None = None
    optional: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    positional_data: tuple[str, ...] = ()
    conventions: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = inspect.signature(self.forward).parameters
        for what, names in (("inputs", self.inputs), ("data", self.data),
                            ("conventions", tuple(self.conventions))):
            missing = [n for n in names if n not in params]
            if missing:
                raise ValueError(f"{self.name}: {what} {missing} are not parameters of "
                                 f"{self.forward.__name__}{inspect.signature(self.forward)}")
        for what, names, within in (("optional", self.optional, self.inputs),
                                    ("positional_data", self.positional_data, self.data),
                                    ("differentiable_outputs", self.differentiable_outputs or (),
                                     self.outputs)):
            if not set(names) <= set(within):
                raise ValueError(f"{self.name}: {what} {names} must be among {within}")

    @property
    def multi_output(self) -> bool:
        return len(self.outputs) > 1

    @property
    def differentiated(self) -> tuple[str, ...]:
        """The outputs the VJP takes cotangents for."""
        return self.differentiable_outputs or self.outputs

    @property
    def configuration(self) -> tuple[str, ...]:
        """The forward's keywords that are neither inputs nor data."""
        return tuple(n for n in inspect.signature(self.forward).parameters
                     if n not in self.inputs and n not in self.data)

    def defaults(self) -> dict[str, Any]:
        """The forward's default value of every keyword that has one."""
        return {n: p.default for n, p in inspect.signature(self.forward).parameters.items()
                if p.default is not inspect.Parameter.empty}

    def cotangents(self, cotangents: Any) -> tuple[Any, ...]:
        """One cotangent per output; a bare array is the cotangent of a single output."""
        if isinstance(cotangents, np.ndarray) or not isinstance(cotangents, Sequence):
            cotangents = (cotangents,)
        cots = tuple(cotangents)
        if len(cots) != len(self.outputs):
            raise ValueError(f"{self.name}: expected {len(self.outputs)} cotangents, one per "
                             f"output {self.outputs}, got {len(cots)}")
        return cots

    def call_vjp(self, primals: Sequence[Any], cotangents: Any, kwargs: Mapping[str, Any],
                 vjp_fn: Callable[..., Any] | None = None) -> tuple[Any, ...]:
        """One gradient per primal from an oracle-style VJP (``vjp_fn``, default the oracle's),
        in the VJP convention. Trailing optional inputs may be left out of ``primals`` (given
        by keyword, or absent); a None primal gets None."""
        kwargs = dict(kwargs)
        cots = self.cotangents(cotangents)
        for out, c in zip(self.outputs, cots, strict=True):
            if c is not None and out not in self.differentiated:
                raise ValueError(f"{self.name}: the oracle does not differentiate output {out!r}; "
                                 "pass None as its cotangent")
        if len(primals) > len(self.inputs):
            raise ValueError(f"{self.name}: expected at most {len(self.inputs)} primals "
                             f"{self.inputs}, got {len(primals)}")
        rest = self.inputs[len(primals):]
        if not set(rest) <= set(self.optional):
            raise ValueError(f"{self.name}: missing primals {rest}")
        full = [*primals, *(kwargs.pop(n, None) for n in rest)]
        data = [kwargs.pop(n) for n in self.positional_data]
        used = [c if c is not None else _zeros_like_output(self, out, full, data, kwargs)
                for out, c in zip(self.outputs, cots, strict=True) if out in self.differentiated]
        grads = tuple((vjp_fn or self.vjp_fn)(*full, *data, *used, **kwargs))
        return grads[: len(primals)]


def _zeros_like_output(rec: Component, out: str, full, data, kwargs) -> np.ndarray:
    """A zero cotangent for a differentiable output the caller leaves out (None)."""
    value = rec.forward(*full, *data, **kwargs)
    if rec.multi_output:
        value = value[rec.outputs.index(out)]
    return np.zeros_like(np.asarray(value, dtype=np.float64))
