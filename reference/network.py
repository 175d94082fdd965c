"""Architectures as data (MLP, LeNet, ResNet, generative bodies), one forward over any ops, the
oracle's backward.

An Architecture is a sequence of layers and a loss; ``apply`` runs it over ``ops``, which is
either the oracle's namespace (ORACLE_OPS) or a Backend: both have conv2d, batch_norm,
max_pool2d, flatten, global_avg_pool2d, dense and the activations with the same names and
signatures, so the oracle and every backend run the same network. ``loss_and_grads`` is the
hand-chained backward (the oracle's VJPs, or a NumPy backend's own over its own ops), ``train``
the oracle's mini-batch training loop. An architecture without a loss (``loss=None``) is a
body that a model composes (a GAN's generator and discriminator, a VAE's encoder and decoder):
``forward_tape`` and ``backprop`` give its outputs and, for any cotangent of them, the gradient
of its input and of every parameter.

Layout: x (N, C, H, W) for convolutional networks, (N, F) for an MLP; conv weights OIHW;
conv_transpose weights (I, O, k, k) as torch's; dense weights (I, O); reshape keeps the batch
axis. params is a flat list in layer order (conv: w[, b]; bn: weight, bias;
dense: w, b; block: see reference.residual), state the running mean and variance of every
batch norm in layer order. ``bn`` holds the batch-norm conventions (momentum, eps,
momentum_convention, unbiased_running_var, variance). The loss, mean reduction: 'cross_entropy'
of the outputs (N, classes) against integer labels (N,), or 'mse' against targets (N, O).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from reference import activations as A
from reference import batchnorm as B
from reference import conv as C
from reference import dense as D
from reference import losses as L
from reference import pooling as P
from reference import residual as R
from reference._validate import as_float, as_labels, row_indices
from reference.optimizers import Optimizer

ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    **{n: A.ACTIVATIONS[n] for n in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu",
                                     "silu", "softplus")},
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), lambda x, g: A.gelu_vjp(x, g, "tanh")),
}
"""Hidden activations by layer kind: (forward, VJP); 'gelu_tanh' is the tanh GELU."""
LAYER_KINDS = ("conv", "conv_transpose", "bn", "max_pool", "flatten", "reshape",
               "global_avg_pool", "dense", "block", *ACTIVATIONS)
LOSSES: dict[str, tuple[Callable, Callable]] = {
    "cross_entropy": (L.cross_entropy, L.cross_entropy_vjp), "mse": (L.mse_loss, L.mse_loss_vjp)}
"""The losses an architecture may end in: (forward, VJP), mean reduction."""
LOSS_COMPONENTS = {"cross_entropy": "cross_entropy", "mse": "mse_loss"}
"""The component computing each loss of LOSSES."""

ORACLE_OPS = SimpleNamespace(conv2d=C.conv2d, conv_transpose2d=C.conv_transpose2d,
                             batch_norm=B.batch_norm, max_pool2d=P.max_pool2d,
                             flatten=P.flatten, global_avg_pool2d=P.global_avg_pool2d,
                             dense=D.dense, cross_entropy=L.cross_entropy, mse_loss=L.mse_loss,
                             **{n: A.ACTIVATIONS[n][0] for n in ACTIVATIONS if n != "gelu_tanh"})
"""The oracle's components under the names ``apply`` calls."""


def activation(ops: Any, kind: str, h, negative_slope: float = 0.01):
    """Activation ``kind`` over ``ops`` ('gelu_tanh' is ops.gelu(h, approximate='tanh');
    ``negative_slope`` is leaky_relu's)."""
    if kind == "gelu_tanh":
        return ops.gelu(h, approximate="tanh")
    if kind == "leaky_relu":
        return ops.leaky_relu(h, negative_slope=negative_slope)
    return getattr(ops, kind)(h)


def loss(ops: Any, name: str, out, target):
    """The mean loss ``name`` of the outputs over ``ops``."""
    return getattr(ops, LOSS_COMPONENTS[name])(out, target)


@dataclass(frozen=True)
class Layer:
    """One layer of a kind in LAYER_KINDS (an activation's kind is its name). ``out``: output
    channels (conv, conv_transpose, block) or features (dense); ``kernel``, ``stride``,
    ``padding``: of a conv, conv_transpose or max-pool (pool stride = kernel); ``bias``: conv
    and conv_transpose bias; ``projection``: a block's 1x1-projection shortcut; ``shape``: a
    reshape's output shape without the batch axis; ``negative_slope``: leaky_relu's."""

    kind: str
    out: int = 0
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    bias: bool = True
    projection: bool = False
    shape: tuple[int, ...] = ()
    negative_slope: float = 0.01

    def sizes(self) -> tuple[int, int]:
        """(number of params, number of state arrays)."""
        if self.kind in ("conv", "conv_transpose"):
            return (2 if self.bias else 1), 0
        if self.kind in ("bn", "dense"):
            return 2, (2 if self.kind == "bn" else 0)
        if self.kind == "block":
            return R.block_sizes(self.projection)
        return 0, 0


@dataclass(frozen=True)
class Architecture:
    """A network: input shape without the batch axis ((C, H, W) or (F,)), layers and loss
    (None: a body without one). ``classes``: the width of the output."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    loss: str | None = "cross_entropy"
    classes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        for layer in self.layers:
            if layer.kind not in LAYER_KINDS:
                raise ValueError(f"layers: unknown kind {layer.kind!r}; expected one of {LAYER_KINDS}")
        if self.loss is not None and self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {tuple(LOSSES)} or None, got {self.loss!r}")
        object.__setattr__(self, "classes", self.shapes()[2][-1])

    def shapes(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], tuple[int, ...]]:
        """(param shapes, state shapes, output shape without the batch axis)."""
        params: list[tuple[int, ...]] = []
        state: list[tuple[int, ...]] = []
        shape: tuple[int, ...] = self.input_shape
        for layer in self.layers:
            k, s, p = layer.kernel, layer.stride, layer.padding
            if layer.kind in ("conv", "block"):
                c, h, w = shape
                if layer.kind == "conv":
                    params += [(layer.out, c, k, k)] + ([(layer.out,)] if layer.bias else [])
                    shape = (layer.out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
                else:
                    o = layer.out
                    params += [(o, c, 3, 3), (o,), (o,), (o, o, 3, 3), (o,), (o,)]
                    state += [(o,)] * 4
                    if layer.projection:
                        params += [(o, c, 1, 1), (o,), (o,)]
                        state += [(o,)] * 2
                    elif (o, s) != (c, 1):
                        raise ValueError(f"layers: an identity block keeps {c} channels and stride "
                                         f"1; got out={o}, stride={s} (use projection=True)")
                    shape = (o, (h - 1) // s + 1, (w - 1) // s + 1)
            elif layer.kind == "conv_transpose":
                c, h, w = shape
                params += [(c, layer.out, k, k)] + ([(layer.out,)] if layer.bias else [])
                shape = (layer.out, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
            elif layer.kind == "reshape":
                if math.prod(layer.shape) != math.prod(shape):
                    raise ValueError(f"layers: a reshape of {shape} to {layer.shape} changes the "
                                     "number of features")
                shape = tuple(layer.shape)
            elif layer.kind == "bn":
                params += [(shape[0],), (shape[0],)]
                state += [(shape[0],), (shape[0],)]
            elif layer.kind == "max_pool":
                c, h, w = shape
                shape = (c, h // k, w // k)
            elif layer.kind == "flatten":
                shape = (math.prod(shape),)
            elif layer.kind == "global_avg_pool":
                shape = (shape[0],)
            elif layer.kind == "dense":
                params += [(shape[0], layer.out), (layer.out,)]
                shape = (layer.out,)
            if min(shape) < 1:
                raise ValueError(f"input_shape: {self.input_shape} is too small for {self.name} "
                                 f"(a layer output would have shape {shape})")
        return params, state, shape

    def param_names(self) -> list[str]:
        """A name per parameter, e.g. 'layer0.conv.w', 'layer4.block.bn2.weight'."""
        names = []
        for i, layer in enumerate(self.layers):
            own = {"conv": ["w", "b"][:layer.sizes()[0]],
                   "conv_transpose": ["w", "b"][:layer.sizes()[0]], "bn": ["weight", "bias"],
                   "dense": ["w", "b"], "block": R.PARAM_NAMES[:layer.sizes()[0]]}
            names += [f"layer{i}.{layer.kind}.{n}" for n in own.get(layer.kind, [])]
        return names

    def init(self, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(params, state): He-normal conv and dense weights (std sqrt(2 / fan_in); a
        conv_transpose's fan_in is I k k of its (I, O, k, k) weight), zero
        biases, batch-norm weight 1 and bias 0, running mean 0 and variance 1."""
        rng = np.random.default_rng(seed)
        params = []
        shapes, state_shapes, _ = self.shapes()
        for name, shape in zip(self.param_names(), shapes, strict=True):
            if len(shape) > 1:
                fan_in = (shape[0] if len(shape) == 2 else shape[0] * shape[2] * shape[3]
                          if ".conv_transpose." in name else math.prod(shape[1:]))
                params.append(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))
            else:  # a batch-norm scale starts at 1, every bias at 0
                params.append(np.ones(shape) if name.endswith(".weight") else np.zeros(shape))
        state = [np.zeros(s) if i % 2 == 0 else np.ones(s) for i, s in enumerate(state_shapes)]
        return params, state


def mlp(widths: Sequence[int], activation: str = "tanh", loss: str = "mse") -> Architecture:
    """A multilayer perceptron: dense layers widths[0] -> ... -> widths[-1], ``activation``
    after every dense layer but the last."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {tuple(ACTIVATIONS)}, got {activation!r}")
    layers: list[Layer] = []
    for i, w in enumerate(widths[1:]):
        layers += [Layer("dense", w)] + ([Layer(activation)] if i < len(widths) - 2 else [])
    return Architecture("mlp", (widths[0],), tuple(layers), loss)


def lenet(in_channels: int = 1, size: int = 28, channels: tuple[int, int] = (6, 16),
          kernel: int = 5, hidden: tuple[int, int] = (120, 84), classes: int = 10) -> Architecture:
    """LeNet-5 style: conv(k, pad k//2) relu maxpool2, conv(k) relu maxpool2, flatten,
    dense relu, dense relu, dense."""
    c1, c2 = channels
    return Architecture("lenet", (in_channels, size, size), (
        Layer("conv", c1, kernel, padding=kernel // 2), Layer("relu"), Layer("max_pool", kernel=2),
        Layer("conv", c2, kernel), Layer("relu"), Layer("max_pool", kernel=2), Layer("flatten"),
        Layer("dense", hidden[0]), Layer("relu"), Layer("dense", hidden[1]), Layer("relu"),
        Layer("dense", classes)))


def resnet(in_channels: int = 3, size: int = 32, width: int = 16, classes: int = 10) -> Architecture:
    """A small ResNet: stem conv3x3 (no bias), bn, relu; an identity block (width); a stride-2
    projection block (2 width); global average pooling; dense head."""
    return Architecture("resnet", (in_channels, size, size), (
        Layer("conv", width, 3, padding=1, bias=False), Layer("bn"), Layer("relu"),
        Layer("block", width), Layer("block", 2 * width, stride=2, projection=True),
        Layer("global_avg_pool"), Layer("dense", classes)))


def _check_counts(arch: Architecture, params: Sequence[Any], state: Sequence[Any]):
    """ValueError unless there are as many params and state arrays as ``arch`` has."""
    shapes, state_shapes, _ = arch.shapes()
    for name, arrays, want in (("params", params, shapes), ("state", state, state_shapes)):
        if len(arrays) != len(want):
            raise ValueError(f"{name}: expected {len(want)} arrays for {arch.name}, got {len(arrays)}")
    return shapes, state_shapes


def _split(arch: Architecture, params: Sequence[Any], state: Sequence[Any]):
    """Per layer (params, state) slices."""
    _check_counts(arch, params, state)
    i = j = 0
    out = []
    for layer in arch.layers:
        n, m = layer.sizes()
        out.append((list(params[i:i + n]), list(state[j:j + m])))
        i, j = i + n, j + m
    return out


def apply_layer(layer: Layer, ops: Any, p: Sequence[Any], s: Sequence[Any], h,
                training: bool, bn: dict[str, Any]) -> tuple[Any, list]:
    """(output, new state of its batch norms) of one layer over ``ops``."""
    if layer.kind == "conv":
        return ops.conv2d(h, p[0], p[1] if layer.bias else None, stride=layer.stride,
                          padding=layer.padding), []
    if layer.kind == "conv_transpose":
        return ops.conv_transpose2d(h, p[0], p[1] if layer.bias else None, stride=layer.stride,
                                    padding=layer.padding), []
    if layer.kind == "reshape":
        return h.reshape((h.shape[0], *layer.shape)), []
    if layer.kind == "bn":
        y, rm, rv = ops.batch_norm(h, p[0], p[1], s[0], s[1], training=training, **bn)
        return y, [rm, rv]
    if layer.kind in ACTIVATIONS:
        return activation(ops, layer.kind, h, layer.negative_slope), []
    if layer.kind == "max_pool":
        return ops.max_pool2d(h, layer.kernel), []
    if layer.kind == "flatten":
        return ops.flatten(h), []
    if layer.kind == "global_avg_pool":
        return ops.global_avg_pool2d(h), []
    if layer.kind == "dense":
        return ops.dense(h, p[0], p[1]), []
    return R.residual_block(ops, h, p, s, layer.stride, training, bn)


def apply(arch: Architecture, ops: Any, params: Sequence[Any], state: Sequence[Any], x,
          training: bool = False, bn: dict[str, Any] | None = None) -> tuple[Any, list]:
    """(outputs, new state): the network over ``ops`` (ORACLE_OPS or a Backend)."""
    new_state: list = []
    h = x
    for layer, (p, s) in zip(arch.layers, _split(arch, params, state), strict=True):
        h, st = apply_layer(layer, ops, p, s, h, training, bn or {})
        new_state += st
    return h, new_state


def _check(arch: Architecture, params, state, x):
    shapes, state_shapes = _check_counts(arch, params, state)
    params = [as_float(f"params[{i}]", p) for i, p in enumerate(params)]
    state = [as_float(f"state[{i}]", s) for i, s in enumerate(state)]
    for name, arrays, want in (("params", params, shapes), ("state", state, state_shapes)):
        for i, (a, s) in enumerate(zip(arrays, want, strict=True)):
            if a.shape != s:
                raise ValueError(f"{name}[{i}]: expected shape {s}, got {a.shape}")
    x = as_float("x", x, 1 + len(arch.input_shape))
    if x.shape[1:] != arch.input_shape:
        raise ValueError(f"x: expected shape (N, {', '.join(map(str, arch.input_shape))}), "
                         f"got {x.shape}")
    return params, state, x


def forward(arch: Architecture, params: Sequence[np.ndarray], state: Sequence[np.ndarray],
            x: np.ndarray, training: bool = False, bn: dict[str, Any] | None = None,
            ops: Any = ORACLE_OPS) -> tuple[np.ndarray, list[np.ndarray]]:
    """(outputs (N, classes), new state) over ``ops`` (the oracle's, or a NumPy backend's),
    the inputs checked and cast to float64."""
    params, state, x = _check(arch, params, state, x)
    return apply(arch, ops, params, state, x, training, bn)


ORACLE_VJPS: dict[str, Callable] = {
    "conv2d": C.conv2d_vjp, "conv_transpose2d": C.conv_transpose2d_vjp,
    "batch_norm": B.batch_norm_vjp, "max_pool2d": P.max_pool2d_vjp,
    "flatten": P.flatten_vjp, "global_avg_pool2d": P.global_avg_pool2d_vjp, "dense": D.dense_vjp,
    **{n: vjp for n, (_, vjp) in ACTIVATIONS.items()},
    **{LOSS_COMPONENTS[n]: vjp for n, (_, vjp) in LOSSES.items()},
}
"""The VJP the backward chains for each component and loss (the oracle's own, no autodiff)."""


def forward_tape(arch: Architecture, params: Sequence[np.ndarray], state: Sequence[np.ndarray],
                 x: np.ndarray, bn: dict[str, Any] | None = None, ops: Any = ORACLE_OPS
                 ) -> tuple[np.ndarray, list[np.ndarray], list]:
    """(outputs, new state, tape) in training mode over ``ops``; the tape holds each layer's
    input (a block's: the inputs of its every call)."""
    params, state, x = _check(arch, params, state, x)
    bn = bn or {}
    tape = []
    new_state: list[np.ndarray] = []
    h = x
    for layer, (p, s) in zip(arch.layers, _split(arch, params, state), strict=True):
        if layer.kind == "block":
            rec = R.Recorder(ops)
            out, st = R.residual_block(rec, h, p, s, layer.stride, True, bn)
            tape.append((layer, rec.tape, p, s))
        else:
            tape.append((layer, h, p, s))
            out, st = apply_layer(layer, ops, p, s, h, True, bn)
        h = out
        new_state += st
    return h, new_state, tape


def backprop(tape: list, g: np.ndarray, bn: dict[str, Any] | None = None,
             vjps: dict[str, Callable] = ORACLE_VJPS) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the gradient of the input, of every parameter) for the cotangent g of the outputs,
    chaining ``vjps`` backwards over the tape of forward_tape."""
    grads: list[np.ndarray] = []
    for layer, h_in, p, s in reversed(tape):
        g, gp = _layer_backward(layer, h_in, p, s, g, bn or {}, vjps)
        grads[:0] = gp
    return g, grads


def backward(tape: list, g: np.ndarray, bn: dict[str, Any] | None = None,
             vjps: dict[str, Callable] = ORACLE_VJPS) -> list[np.ndarray]:
    """The gradient of every parameter for the cotangent g of the outputs (backprop's)."""
    return backprop(tape, g, bn, vjps)[1]


def check_target(arch: Architecture, target, out_shape: tuple[int, ...]) -> np.ndarray:
    """Labels (N,) for cross-entropy, floats of the output's shape for mse."""
    if arch.loss is None:
        raise ValueError(f"{arch.name} has no loss: it is a body (use forward_tape and backprop)")
    if arch.loss == "cross_entropy":
        return as_labels("labels", target, out_shape[0], arch.classes)
    target = as_float("target", target, len(out_shape))
    if target.shape != out_shape:
        raise ValueError(f"target: expected shape {out_shape}, got {target.shape}")
    return target


def loss_and_grads(arch: Architecture, params: Sequence[np.ndarray], state: Sequence[np.ndarray],
                   x: np.ndarray, target: np.ndarray, bn: dict[str, Any] | None = None,
                   ops: Any = ORACLE_OPS, vjps: dict[str, Callable] = ORACLE_VJPS
                   ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """(the mean loss, its gradient for every parameter, new state), in training mode,
    by the chain rule layer by layer: the forward over ``ops``, then ``vjps`` (keyed as
    ORACLE_VJPS) chained backwards from the loss's, no autodiff."""
    out, new_state, tape = forward_tape(arch, params, state, x, bn, ops)
    target = check_target(arch, target, out.shape)
    value = float(loss(ops, arch.loss, out, target))
    (g,) = vjps[LOSS_COMPONENTS[arch.loss]](out, target, np.float64(1.0))
    return value, backward(tape, g, bn, vjps), new_state


def _layer_backward(layer: Layer, h, p, s, g, bn, vjps) -> tuple[np.ndarray, list[np.ndarray]]:
    """(d input, d params) of one layer for the cotangent g of its output."""
    if layer.kind == "conv":
        b = p[1] if layer.bias else None
        dx, dw, db = vjps["conv2d"](h, p[0], b, g, stride=layer.stride, padding=layer.padding)
        return dx, [dw] + ([db] if layer.bias else [])
    if layer.kind == "conv_transpose":
        b = p[1] if layer.bias else None
        dx, dw, db = vjps["conv_transpose2d"](h, p[0], b, g, stride=layer.stride,
                                              padding=layer.padding)
        return dx, [dw] + ([db] if layer.bias else [])
    if layer.kind == "reshape":
        return g.reshape(h.shape), []
    if layer.kind == "bn":
        dx, dw, db = vjps["batch_norm"](h, p[0], p[1], g, s[0], s[1], training=True, **bn)
        return dx, [dw, db]
    if layer.kind == "leaky_relu":
        return vjps["leaky_relu"](h, g, negative_slope=layer.negative_slope)[0], []
    if layer.kind in ACTIVATIONS:
        return vjps[layer.kind](h, g)[0], []
    if layer.kind == "max_pool":
        return vjps["max_pool2d"](h, g, layer.kernel)[0], []
    if layer.kind == "flatten":
        return vjps["flatten"](h, g)[0], []
    if layer.kind == "global_avg_pool":
        return vjps["global_avg_pool2d"](h, g)[0], []
    if layer.kind == "dense":
        dx, dw, db = vjps["dense"](h, p[0], p[1], g)
        return dx, [dw, db]
    return R.residual_block_backward(h, g, vjps)  # h is the block's tape


def train(arch: Architecture, params: Sequence[np.ndarray], state: Sequence[np.ndarray],
          x: np.ndarray, target: np.ndarray, optimizer: Optimizer, batches: Sequence[np.ndarray],
          bn: dict[str, Any] | None = None, callback: Callable | None = None
          ) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[float]]:
    """Mini-batch training: one optimizer step per index array in ``batches``. Returns the
    final params, the state after every step, and the loss of each batch before its step.
    ``callback(params, state, idx)``, if given, sees each step's inputs before the step."""
    x = as_float("x", x, 1 + len(arch.input_shape))
    target = np.asarray(target)
    if target.ndim == 0 or target.shape[0] != x.shape[0]:
        raise ValueError(f"target: expected {x.shape[0]} rows to match x {x.shape}, "
                         f"got shape {target.shape}")
    p = [as_float(f"params[{i}]", q) for i, q in enumerate(params)]
    s = [as_float(f"state[{i}]", q) for i, q in enumerate(state)]
    opt_state = optimizer.init(p)
    states, history = [], []
    for j, idx in enumerate(batches):
        idx = row_indices(f"batches[{j}]", idx, x.shape[0])
        if callback is not None:
            callback(p, s, idx)
        value, grads, s = loss_and_grads(arch, p, s, x[idx], target[idx], bn)
        history.append(value)
        states.append(s)
        p, opt_state = optimizer.update(grads, opt_state, p)
    return p, states, history
