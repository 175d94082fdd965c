"""Configuration classes: the forms of a component's inputs where real bugs live (odd total
'same' padding, a ceil-mode window that overhangs, groups with dilation, padding left out of
an average at a border, class weights with label smoothing, realistic sizes, ...).

A spec (properties/specs.py) declares its classes, dimension -> class names. Its case draws
each dimension's class first (``stratum``: a class-stratified draw), then a configuration of
that class; the spec's ``classify`` names again, from the final inputs, the classes of the
dimensions the backend's conventions can change (what the backend actually ran). Every
example that reaches its checks counts its classes in the test's record. After the test the
plugin draws each class the run missed again, forced (``forcing``), a few examples each
(TOPUP), so every run exercises every class its backend allows; the certificate lists, per
property, the classes exercised and how often, and each class left out with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from hypothesis import strategies as st

from properties.record import current_record

Classes = Mapping[str, tuple[str, ...]]
"""dimension -> its class names"""
#: examples a run draws for each class it missed
TOPUP = 2
SIZES = ("small", "realistic")
_FORCED: ContextVar[dict[str, str] | None] = ContextVar("forced", default=None)


def stratum(data: st.DataObject, dimension: str, classes: tuple[str, ...],
            strategy: st.SearchStrategy[str] | None = None) -> str:
    """The class of ``dimension`` for this example: the forced one (``forcing``), else drawn
    from ``strategy`` (default: uniformly from ``classes``)."""
    cls = (_FORCED.get() or {}).get(dimension)
    if cls is not None:
        current_record().note_draw(f"{dimension} (forced)", cls)
    else:
        cls = data.draw(st.sampled_from(classes) if strategy is None else strategy,
                        label=dimension)
    current_record().note_class(dimension, cls)
    return cls


@contextmanager
def forcing(dimension: str, cls: str) -> Iterator[None]:
    """Within: ``stratum`` returns ``cls`` for ``dimension`` without drawing."""
    token = _FORCED.set({**(_FORCED.get() or {}), dimension: cls})
    try:
        yield
    finally:
        _FORCED.reset(token)


#: the arguments a dimension's class is made of, where not the argument of its name
ARGUMENTS = {"ceil": ("ceil_mode",), "weight_smoothing": ("weight", "label_smoothing"),
             "pad_count": ("padding", "count_include_pad"),
             "momentum_form": ("momentum", "dampening", "nesterov"),
             "centered_momentum": ("centered", "momentum")}


def fixed_by(backend: Any, component: str, dimension: str) -> list[str]:
    """The arguments of ``dimension`` the backend fixes to one value (a convention that is
    not a tuple of choices, or an argument it lacks): its other classes cannot be drawn."""
    conv = backend.conventions.get(component, {})
    lacks = backend.lacks.get(component, {})
    return [a for a in ARGUMENTS.get(dimension, (dimension,))
            if a in lacks or (a in conv and not isinstance(conv[a], tuple))]


def missing(declared: Classes, seen: Mapping[tuple[str, str], int]) -> list[tuple[str, str]]:
    """(dimension, class) pairs declared but never seen."""
    return [(d, c) for d, classes in declared.items() for c in classes if not seen.get((d, c))]
