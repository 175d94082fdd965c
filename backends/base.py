"""The Backend interface every adapter implements.

Components take and return *native* arrays (whatever ``asarray`` makes) and carry the
oracle's names and signatures (see reference/). A component or dtype a backend lacks raises
``UnsupportedComponent``: the suite reports the property unsupported, never failed. An
argument value it cannot express raises ``Unsupported``: that example is set aside, counted in
the report, and the property goes on with other examples. Conventions where
frameworks differ are declared in ``conventions`` so the properties hold each backend to the
convention it claims, and reports can say which one that is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from backends import compose
from reference import network, registry
from reference.optimizers import Optimizer

DTYPES = ("float16", "bfloat16", "float32", "float64")


def as_tuple(value: Any, n: int, what: str) -> tuple[int, ...]:
    """An int, or a sequence of ``n`` ints (a pair for 2-d pooling and convolution), as n ints."""
    items = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) \
        else (value,) * n
    if len(items) != n or not all(isinstance(v, Integral) and not isinstance(v, bool)
                                  for v in items):
        raise ValueError(f"{what}: expected an int or {n} ints, got {value!r}")
    return tuple(int(v) for v in items)


def conv_padding(padding: Any, ndim: int) -> str | tuple[tuple[int, int], ...]:
    """The convolution padding forms as "valid", "same" or (low, high) per spatial axis.

    2-d: int, (ph, pw) or ((top, bottom), (left, right)); 1-d: int or (low, high)."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
        return padding.lower()
    if ndim == 1:
        if isinstance(padding, Sequence):
            return (as_tuple(padding, 2, "padding"),)
        (p,) = as_tuple(padding, 1, "padding")
        return ((p, p),)
    if isinstance(padding, Sequence) and padding and all(isinstance(q, Sequence)
                                                         for q in padding):
        if len(padding) != ndim:
            raise ValueError(f"padding: expected {ndim} (low, high) pairs, got {padding!r}")
        return tuple(as_tuple(q, 2, "padding") for q in padding)
    return tuple((p, p) for p in as_tuple(padding, ndim, "padding"))


class Unsupported(Exception):
    """The backend cannot compute this call: an argument value or convention it lacks."""


class UnsupportedComponent(Unsupported):
    """The backend lacks the component (or dtype) altogether: no example could run."""


class BackendUnavailable(Exception):
    """The backend cannot be constructed here (framework not installed, no such device)."""


#: one condition of a known divergence's scope: (argument, operator, value), e.g.
#: ("eps", ">=", 1e-3); operators as in SCOPE_OPERATORS.
Condition = tuple[str, str, Any]
SCOPE_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


@dataclass(frozen=True)
class KnownDivergence:
    """A real, documented difference between a backend and the oracle.

    Matches property tests whose function name is ``test`` and whose component is
    ``component``; ``dtypes`` narrows it (None: every dtype). Unscoped, the suite marks
    matching tests as expected failures and reports them by name, and reports one that
    starts passing. ``scope`` narrows it to the examples whose arguments (a component's
    keyword arguments, an optimizer's hyperparameters) satisfy every condition (argument,
    operator, value), or a predicate over those arguments; ``scope_text`` describes a
    predicate in reports. A scoped divergence is judged per example: an example in its scope
    that fails is counted as the divergence observed, the others are checked as usual.
    """

    test: str
    component: str
    reason: str
    upstream: str | None = None
    dtypes: tuple[str, ...] | None = None
    scope: tuple[Condition, ...] | Callable[[Mapping[str, Any]], bool] | None = None
    scope_text: str | None = None

    def __post_init__(self) -> None:
        if self.dtypes is not None and not isinstance(self.dtypes, tuple):
            object.__setattr__(self, "dtypes", tuple(self.dtypes))
        if self.scope is None or callable(self.scope):
            return
        conditions = tuple(tuple(c) for c in self.scope)  # lists too (from TOML)
        for c in conditions:
            if len(c) != 3 or not isinstance(c[0], str) or c[1] not in SCOPE_OPERATORS:
                raise ValueError(f"scope: expected (argument, operator, value) conditions with "
                                 f"an operator in {sorted(SCOPE_OPERATORS)}, got {c!r}")
        object.__setattr__(self, "scope", tuple(
            (a, op, tuple(v) if isinstance(v, list) else v) for a, op, v in conditions))

    def matches(self, test: str, component: str, dtype: str | None) -> bool:
        return (self.test == test and self.component == component
                and (self.dtypes is None or dtype is None or dtype in self.dtypes))

    @property
    def scoped(self) -> bool:
        return self.scope is not None

    def in_scope(self, args: Mapping[str, Any]) -> bool:
        """Whether an example with arguments ``args`` lies in the scope (every example does
        for an unscoped divergence). A condition on an argument the example lacks, or one whose
        values do not compare, does not hold."""
        if self.scope is None:
            return True
        if callable(self.scope):
            return bool(self.scope(args))
        for arg, op, value in self.scope:
            try:
                if arg not in args or not SCOPE_OPERATORS[op](args[arg], value):
                    return False
            except TypeError:
                return False
        return True

    def describe_scope(self) -> str:
        """The scope in words: 'eps >= 0.001 and amsgrad == None', or ``scope_text``."""
        if self.scope_text:
            return self.scope_text
        if self.scope is None:
            return "every example"
        if callable(self.scope):
            return getattr(self.scope, "__name__", "a predicate")
        return " and ".join(f"{a} {op} {v!r}" for a, op, v in self.scope)


class Backend:
    """Base class: a framework on a device. Subclasses override what they support.

    A component is a method with the oracle's name and signature: every record in
    reference.registry (its forward's docstring gives the math, shapes and conventions). A
    registered component a subclass does not define raises UnsupportedComponent when called.
    """

    name: str = "abstract"
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32", "float64")
    #: component -> {argument: value it is fixed to, or a tuple of the values it supports}.
    conventions: dict[str, dict[str, Any]] = {}
    #: component (or optimizer) -> {argument the framework does not have: (the value it is
    #: fixed to, why)}, e.g. {"softplus": {"beta": (1.0, "jax.nn.softplus has no beta")}}.
    #: Not a convention: the properties pass that value in place of the drawn one, and the
    #: report lists these apart from the conventions, with the drawn values they excluded.
    lacks: dict[str, dict[str, tuple[Any, str]]] = {}
    known_divergences: tuple[KnownDivergence, ...] = ()
    #: registered components the backend lacks on purpose: name -> why (the report says so).
    unsupported: dict[str, str] = {}

    def __init__(self, device: str = "cpu") -> None:
        device = {"gpu": "cuda"}.get(device, device)
        if device not in self.devices:
            raise BackendUnavailable(f"{self.name}: device {device!r} is not available "
                                     f"(available: {', '.join(self.devices)})")
        self.device = device

    @property
    def id(self) -> str:
        """'<name>-<device>', the name of the backend's report."""
        return f"{self.name}-{self.device}"

    def versions(self) -> dict[str, str]:
        """Versions of the framework packages, for reports."""
        return {"numpy": np.__version__}

    # -- arrays ---------------------------------------------------------------------------
    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        """A native array from NumPy; ``dtype`` None keeps integer arrays integer."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy array (floats as float64) from a native array."""
        raise NotImplementedError

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is one of this backend's arrays (a component must return one, not a
        list or a Python float). The default accepts anything with a shape and a dtype."""
        return hasattr(x, "shape") and hasattr(x, "dtype")

    # -- autodiff -------------------------------------------------------------------------
    def vjp(self, f: Callable[..., tuple[Any, ...]], primals: Sequence[Any],
            cotangents: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(f(*primals), sum over outputs of J_k^T cotangent_k for each primal), for a native
        function ``f`` returning a tuple of arrays, one cotangent per array."""
        raise UnsupportedComponent(f"{self.name} has no generic vjp")

    def component_vjp(self, name: str, primals: Sequence[Any], cotangents: Sequence[Any],
                      **kwargs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(the differentiated outputs, one gradient per primal) of component ``name``: one
        cotangent per output of its record (reference.registry), None for an output not
        differentiated; ``kwargs`` are held fixed. A primal that is None (an absent bias or
        affine weight) is passed through as None, held fixed, and gets None as its gradient,
        as the oracle's VJPs give. Overridden per component by an adapter whose framework has a
        hand-written backward to certify instead."""
        rec = registry.get(name)
        cots = rec.cotangents(cotangents)
        wanted = [i for i, c in enumerate(cots) if c is not None]
        fn = getattr(self, name)
        present = [i for i, p in enumerate(primals) if p is not None]

        def f(*arrays):
            full = list(primals)
            for i, a in zip(present, arrays, strict=True):
                full[i] = a
            out = fn(*full, **kwargs)
            outs = tuple(out) if rec.multi_output else (out,)
            return tuple(outs[i] for i in wanted)

        outs, found = self.vjp(f, [primals[i] for i in present], tuple(cots[i] for i in wanted))
        it = iter(found)
        return outs, tuple(None if p is None else next(it) for p in primals)

    def value_and_grad(self, f: Callable[[list[Any]], Any], params: Sequence[Any]
                       ) -> tuple[Any, list[Any]]:
        """(f(params), d f / d params) for a scalar native function of a list of arrays."""
        one = self.asarray(np.array(1.0), self.dtype_of(params[0]))
        (value,), grads = self.vjp(lambda *p: (f(list(p)),), params, (one,))
        return value, list(grads)

    def dtype_of(self, x: Any) -> str:
        """The dtype name of a native array ('float32', ...)."""
        raise NotImplementedError

    # -- components: the records of reference.registry --------------------------------------
    def _missing(self, what: str):
        raise UnsupportedComponent(f"{self.name} does not implement {what}")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """A registered component the backend lacks: a method that raises UnsupportedComponent."""
        if name in registry.RECORDS:
            def missing(*args: Any, **kwargs: Any) -> Any:
                if name in self.unsupported:
                    raise UnsupportedComponent(f"{self.name}: {name}: {self.unsupported[name]}")
                self._missing(name)
            missing.__name__ = name
            return missing
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- optimizers -----------------------------------------------------------------------
    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """An Optimizer(init, update) over lists of native arrays, with the oracle's
        hyperparameter names (reference.optimizers)."""
        self._missing(f"optimizer {name!r}")

    def value_and_grad_aux(self, f: Callable[[list[Any]], tuple[Any, Any]], params: Sequence[Any]
                           ) -> tuple[Any, list[Any], Any]:
        """(value, d value / d params, aux) for f(params) -> (scalar, aux); aux (running
        statistics) is carried out, not differentiated."""
        box: dict[str, Any] = {}

        def scalar(p):
            value, box["aux"] = f(p)
            return value

        value, grads = self.value_and_grad(scalar, params)
        return value, grads, box["aux"]

    # -- architectures (reference.network), composed in backends.compose -----------------
    def network_forward(self, arch: network.Architecture, params: Sequence[Any],
                        state: Sequence[Any], x, training: bool = False,
                        bn: dict[str, Any] | None = None) -> tuple[Any, list]:
        """(outputs, new running statistics) of the architecture over this backend's
        components. Override to certify a framework's own model instead of the composition."""
        return compose.forward(self, arch, params, state, x, training, bn)

    def network_loss_and_grads(self, arch: network.Architecture, params: Sequence[Any],
                               state: Sequence[Any], x, target, bn: dict[str, Any] | None = None
                               ) -> tuple[Any, list[Any], list[Any]]:
        """(the mean loss, gradient of every parameter, new state) in training mode."""
        return compose.loss_and_grads(self, arch, params, state, x, target, bn)

    def train_network(self, arch: network.Architecture, params: Sequence[Any],
                      state: Sequence[Any], x, target, optimizer: Optimizer,
                      batches: Sequence[np.ndarray], bn: dict[str, Any] | None = None
                      ) -> tuple[list[Any], list[list[Any]], list[float]]:
        """reference.network.train: (final params, state after every step, loss history),
        one optimizer step per array of row indices in ``batches``."""
        return compose.train(self, arch, params, state, x, target, optimizer, batches, bn)

    def take(self, x, idx: np.ndarray):
        """Rows ``idx`` of a native array."""
        return x[idx]

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks call this inside the timed region)."""

    def fast_paths(self) -> tuple[str, Callable[[], AbstractContextManager]] | None:
        """The device's fast float32 paths (TF32 matmuls and convolutions on NVIDIA GPUs) as
        (what they are, a factory of a context that turns them on), or None where it has
        none. Every property runs with them off; properties/test_fast_paths.py measures what
        turning them on costs in accuracy."""
        return None


def gpu_driver() -> str | None:
    """The NVIDIA driver's version (from /proc/driver/nvidia/version), None without one."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    words = text.split("Kernel Module", 1)[-1].split()
    return words[0] if words else None


def frozen(value: Any) -> Any:
    """A hashable copy of a configuration value (lists become tuples, dicts sorted items)."""
    if isinstance(value, dict):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def merge_declarations(cls: type, attr: str, family: Mapping[str, Mapping[str, Any]],
                       own: Mapping[str, Mapping[str, Any]]) -> None:
    """Set ``cls.<attr>`` ('conventions' or 'lacks') to the inherited declarations with a
    family mixin's (``family``: component -> argument -> value) merged in; the class's own
    (``own``: ``vars(cls)[attr]`` read before ``super().__init_subclass__``) win over them,
    and they over the inherited ones."""
    merged = {n: dict(v) for n, v in getattr(cls, attr, {}).items()}
    for n, v in family.items():
        merged[n] = {**merged.get(n, {}), **v, **own.get(n, {})}
    setattr(cls, attr, merged)


class Family:
    """Mixin base of a component family's methods on a Backend (backends/recurrent.py,
    backends/practice.py, ...).

    A family names in ``declarations`` its class attributes whose declarations join a
    Backend's, e.g. {"conventions": "practice_conventions", "lacks": "practice_lacks"}: every
    class that mixes families in gets each one's merged (merge_declarations; the families
    farthest down the MRO first), its own ``conventions``/``lacks`` winning over the
    families', and they over the inherited ones. The family's methods call ``_lacks`` until
    an adapter overrides them."""

    #: 'conventions' or 'lacks' -> the family's attribute merged into it
    declarations: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        own = {a: dict(vars(cls).get(a, {})) for a in ("conventions", "lacks")}
        super().__init_subclass__(**kwargs)
        for family in reversed(cls.__mro__[1:]):
            for attr, name in vars(family).get("declarations", {}).items():
                merge_declarations(cls, attr, getattr(cls, name), own[attr])

    def _lacks(self, name: str) -> Any:
        """UnsupportedComponent for the family method ``name``, with the reason the class
        gives in ``unsupported`` if any."""
        why = getattr(self, "unsupported", {}).get(name)
        label = getattr(self, "name", type(self).__name__)
        raise UnsupportedComponent(f"{label}: {name}: {why}" if why
                                   else f"{label} does not implement {name}")
