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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from reference import cnn
from reference.optimizers import Optimizer
from reference.registry import OUTPUTS

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
        raise UnsupportedComponent(f"{self.name} has no generic vjp")

    def component_vjp(self, name: str, primals: Sequence[Any], cotangent: Any, **kwargs: Any
                      ) -> tuple[Any, tuple[Any, ...]]:
        """The VJP of component ``name`` with respect to ``primals``; ``kwargs`` are held fixed.

        For a component with several outputs (reference.registry.OUTPUTS) only the first
        output is differentiated (and
        returned): batch_norm's y, not its running statistics. A primal that is None (an
        absent bias or affine weight) is passed through as None, held fixed, and gets None
        as its gradient, as the oracle's VJPs give."""
        fn = getattr(self, name)
        present = [i for i, p in enumerate(primals) if p is not None]
        first = name in OUTPUTS

        def f(*arrays):
            full = list(primals)
            for i, a in zip(present, arrays, strict=True):
                full[i] = a
            out = fn(*full, **kwargs)
            return out[0] if first else out

        out, found = self.vjp(f, [primals[i] for i in present], cotangent)
        it = iter(found)
        return out, tuple(None if p is None else next(it) for p in primals)

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
        raise UnsupportedComponent(f"{self.name} does not implement {what}")

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

    # -- convolution, pooling and normalisation (NCHW) -----------------------------------
    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        """Cross-correlation y[n, o] = sum_c x_pad[n, g(o) c] * w[o, c] (+ b[o]): x (N, C, H, W),
        w (O, C // groups, kh, kw) (torch's OIHW), b (O,) or None -> (N, O, H', W').
        stride and dilation: int or pair; padding: int, pair (ph, pw), explicit
        ((top, bottom), (left, right)), "valid" or "same" (TensorFlow's rule: total =
        max((ceil(H / s) - 1) s + d (k - 1) + 1 - H, 0), low = total // 2)."""
        self._missing("conv2d")

    def conv1d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        """conv2d in one spatial dimension: x (N, C, L), w (O, C // groups, k) -> (N, O, L');
        padding: int, (low, high), "valid" or "same"."""
        self._missing("conv1d")

    def conv_transpose2d(self, x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1):
        """The transpose (input gradient) of conv2d, as torch defines it: x (N, Cin, H, W),
        w (Cin, Cout // groups, kh, kw), b (Cout,) or None -> (N, Cout, H', W') with
        H' = (H - 1) s - 2 p + d (kh - 1) + output_padding + 1. padding: int or pair."""
        self._missing("conv_transpose2d")

    def max_pool2d(self, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                   ties="first"):
        """Max over each (dilated) window of x (N, C, H, W), padded with -inf; stride None is
        kernel_size. ties: "first" sends a window's gradient to its first maximum in
        row-major order, "split" shares it equally among the maxima."""
        self._missing("max_pool2d")

    def avg_pool2d(self, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True):
        """Mean over each window of x (N, C, H, W), zero-padded; count_include_pad=False
        divides by the number of input (unpadded) elements in the window instead."""
        self._missing("avg_pool2d")

    def global_avg_pool2d(self, x):
        """Mean over H and W: (N, C, H, W) -> (N, C)."""
        self._missing("global_avg_pool2d")

    def flatten(self, x):
        """(N, ...) -> (N, prod(...)) in row-major order."""
        self._missing("flatten")

    def batch_norm(self, x, weight, bias, running_mean, running_var, training=True,
                   momentum=0.1, eps=1e-5, momentum_convention="torch",
                   unbiased_running_var=True, variance="two_pass"):
        """(y, new_running_mean, new_running_var) for x (N, C) or (N, C, H, W), per channel.

        training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and
        biased variance over every axis but 1, computed two-pass (mean((x - mean)^2)) or
        "fast" (E[x^2] - E[x]^2); the running statistics move towards the batch
        ones, r <- (1 - m) r + m stat ("torch") or r <- m r + (1 - m) stat ("flax"), the
        variance statistic unbiased (n / (n - 1)) or not. Eval: the running statistics
        normalise and come back unchanged. weight / bias None: no affine transform."""
        self._missing("batch_norm")

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

    # -- convolutional networks, composed over the interface ------------------------------
    def cnn_forward(self, arch: cnn.Architecture, params: Sequence[Any], state: Sequence[Any], x,
                    training: bool = False, bn: dict[str, Any] | None = None) -> tuple[Any, list]:
        """reference.cnn.apply over this backend's components: (logits, new running stats)."""
        return cnn.apply(arch, self, params, state, x, training, bn)

    def cnn_loss_and_grads(self, arch: cnn.Architecture, params: Sequence[Any],
                           state: Sequence[Any], x, labels, bn: dict[str, Any] | None = None
                           ) -> tuple[Any, list[Any], list[Any]]:
        """(mean cross-entropy, gradient of every parameter, new state) in training mode."""
        def f(p):
            logits, new_state = self.cnn_forward(arch, p, state, x, True, bn)
            return self.cross_entropy(logits, labels), new_state
        return self.value_and_grad_aux(f, params)

    def train_cnn(self, arch: cnn.Architecture, params: Sequence[Any], state: Sequence[Any], x,
                  labels, optimizer: Optimizer, batches: Sequence[np.ndarray],
                  bn: dict[str, Any] | None = None) -> tuple[list[Any], list[list[Any]], list[float]]:
        """reference.cnn.train: (final params, state after every step, loss history)."""
        p, s = list(params), list(state)
        opt_state = optimizer.init(p)
        states, history = [], []
        for idx in batches:
            value, grads, s = self.cnn_loss_and_grads(arch, p, s, self.take(x, idx),
                                                      self.take(labels, idx), bn)
            history.append(float(self.to_numpy(value)))
            states.append(list(s))
            p, opt_state = optimizer.update(grads, opt_state, p)
        return p, states, history

    def take(self, x, idx: np.ndarray):
        """Rows ``idx`` of a native array."""
        return x[idx]

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks call this inside the timed region)."""
