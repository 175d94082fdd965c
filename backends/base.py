"""The Backend interface every adapter implements.

Components take and return *native* arrays (whatever ``asarray`` makes) and carry the
oracle's names and signatures (see reference/). A component a backend lacks raises
``Unsupported``; the suite reports it as unsupported, never as a failure. Conventions where
frameworks differ are declared in ``conventions`` so the properties hold each backend to the
convention it claims, and reports can say which one that is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.optimizers import Optimizer

DTYPES = ("float16", "bfloat16", "float32", "float64")


class Unsupported(Exception):
    """The backend does not implement this component, dtype or convention."""


class BackendUnavailable(Exception):
    """The backend cannot be constructed here (framework not installed, no such device)."""


@dataclass(frozen=True)
class KnownDivergence:
    """A real, documented difference between a backend and the oracle.

    Matches property tests whose function name is ``test`` and whose component is
    ``component``; ``dtypes`` narrows it (None: every dtype). The suite marks matching tests
    as expected failures and reports them by name, and reports one that starts passing.
    """

    test: str
    component: str
    reason: str
    upstream: str | None = None
    dtypes: tuple[str, ...] | None = None

    def matches(self, test: str, component: str, dtype: str | None) -> bool:
        return (self.test == test and self.component == component
                and (self.dtypes is None or dtype is None or dtype in self.dtypes))


class Backend:
    """Base class: a framework on a device. Subclasses override what they support."""

    name: str = "abstract"
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32", "float64")
    #: component -> {argument: value it is fixed to, or a tuple of the values it supports}.
    conventions: dict[str, dict[str, Any]] = {}
    known_divergences: tuple[KnownDivergence, ...] = ()

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

    # -- autodiff -------------------------------------------------------------------------
    def vjp(self, f: Callable[..., Any], primals: Sequence[Any], cotangent: Any
            ) -> tuple[Any, tuple[Any, ...]]:
        """(f(*primals), J^T cotangent for each primal), for a native function ``f``."""
        raise Unsupported(f"{self.name} has no generic vjp")

    def component_vjp(self, name: str, primals: Sequence[Any], cotangent: Any, **kwargs: Any
                      ) -> tuple[Any, tuple[Any, ...]]:
        """The VJP of component ``name`` with respect to ``primals``; ``kwargs`` are held fixed."""
        fn = getattr(self, name)
        return self.vjp(lambda *p: fn(*p, **kwargs), primals, cotangent)

    def value_and_grad(self, f: Callable[[list[Any]], Any], params: Sequence[Any]
                       ) -> tuple[Any, list[Any]]:
        """(f(params), d f / d params) for a scalar native function of a list of arrays."""
        one = self.asarray(np.array(1.0), self.dtype_of(params[0]))
        value, grads = self.vjp(lambda *p: f(list(p)), params, one)
        return value, list(grads)

    def dtype_of(self, x: Any) -> str:
        """The dtype name of a native array ('float32', ...)."""
        raise NotImplementedError

    # -- dense and activations ------------------------------------------------------------
    def _missing(self, what: str):
        raise Unsupported(f"{self.name} does not implement {what}")

    def dense(self, x, w, b=None):
        self._missing("dense")

    def sigmoid(self, x):
        self._missing("sigmoid")

    def tanh(self, x):
        self._missing("tanh")

    def relu(self, x):
        self._missing("relu")

    def leaky_relu(self, x, negative_slope=0.01):
        self._missing("leaky_relu")

    def elu(self, x, alpha=1.0):
        self._missing("elu")

    def gelu(self, x, approximate="none"):
        self._missing("gelu")

    def silu(self, x):
        self._missing("silu")

    def softplus(self, x, beta=1.0, threshold=None):
        self._missing("softplus")

    def softmax(self, x, axis=-1):
        self._missing("softmax")

    def log_softmax(self, x, axis=-1):
        self._missing("log_softmax")

    # -- losses ---------------------------------------------------------------------------
    def mse_loss(self, pred, target, reduction="mean"):
        self._missing("mse_loss")

    def l1_loss(self, pred, target, reduction="mean"):
        self._missing("l1_loss")

    def huber_loss(self, pred, target, delta=1.0, reduction="mean"):
        self._missing("huber_loss")

    def bce_with_logits(self, logits, target, reduction="mean"):
        self._missing("bce_with_logits")

    def cross_entropy(self, logits, labels, reduction="mean", label_smoothing=0.0, weight=None):
        self._missing("cross_entropy")

    def nll_loss(self, log_probs, labels, reduction="mean", weight=None):
        self._missing("nll_loss")

    # -- optimizers -----------------------------------------------------------------------
    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """An Optimizer(init, update) over lists of native arrays, with the oracle's
        hyperparameter names (reference.optimizers)."""
        self._missing(f"optimizer {name!r}")

    # -- architectures, composed over the interface ---------------------------------------
    def activation(self, name: str, x):
        """Hidden activation by MLP name ('gelu_tanh' is the tanh GELU)."""
        if name == "gelu_tanh":
            return self.gelu(x, approximate="tanh")
        return getattr(self, name)(x)

    def mlp_forward(self, params: Sequence[Any], x, activation: str = "tanh"):
        """reference.mlp.mlp_forward over this backend's dense and activation."""
        n = len(params) // 2
        h = x
        for i in range(n):
            h = self.dense(h, params[2 * i], params[2 * i + 1])
            if i < n - 1:
                h = self.activation(activation, h)
        return h

    def mlp_loss(self, params: Sequence[Any], x, target, activation: str = "tanh",
                 loss: str = "mse"):
        out = self.mlp_forward(params, x, activation)
        if loss == "mse":
            return self.mse_loss(out, target)
        if loss == "cross_entropy":
            return self.cross_entropy(out, target)
        raise ValueError(f"loss: expected 'mse' or 'cross_entropy', got {loss!r}")

    def mlp_loss_and_grads(self, params: Sequence[Any], x, target, activation: str = "tanh",
                           loss: str = "mse") -> tuple[Any, list[Any]]:
        return self.value_and_grad(lambda p: self.mlp_loss(p, x, target, activation, loss),
                                   params)

    def train_mlp(self, params: Sequence[Any], x, target, optimizer: Optimizer,
                  batches: Sequence[np.ndarray], activation: str = "tanh", loss: str = "mse"
                  ) -> tuple[list[Any], list[float]]:
        """reference.mlp.train_mlp: one step per batch of row indices, in order."""
        p = list(params)
        state = optimizer.init(p)
        history = []
        for idx in batches:
            xi = self.take(x, idx)
            ti = self.take(target, idx)
            value, grads = self.mlp_loss_and_grads(p, xi, ti, activation, loss)
            history.append(float(self.to_numpy(value)))
            p, state = optimizer.update(grads, state, p)
        return p, history

    def take(self, x, idx: np.ndarray):
        """Rows ``idx`` of a native array."""
        return x[idx]

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks call this inside the timed region)."""
