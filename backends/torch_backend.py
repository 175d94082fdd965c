"""PyTorch (torch.nn.functional, torch.optim) as a backend, on CPU or a CUDA GPU.

Every component calls torch's own implementation (F.linear, F.gelu, F.cross_entropy,
torch.optim.Adam, ...), so the suite certifies what users run. The only adaptation is of
layout and names: the oracle's dense weight is (I, O), torch's Linear weight is (O, I); the
oracle's hyperparameter names (b1, b2, ...) are mapped to torch.optim's (betas, ...).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backends.base import (
    Backend,
    KnownDivergence,
    Unsupported,
    UnsupportedComponent,
    as_tuple,
    conv_padding,
    gpu_driver,
)
from backends.compose_denoiser import TorchDenoiser
from backends.compose_gan import GANBackend
from backends.compose_lm import LanguageModelBackend
from backends.compose_vae import VAEBackend
from backends.divergences import load as load_divergences
from backends.torch_augment import TorchAugment
from backends.torch_diffusion import TorchDiffusion
from backends.torch_practice import TorchPractice
from backends.torch_recurrent import TorchRecurrent
from backends.torch_regularization import TorchRegularization
from reference import optimizers as O
from reference.optimizers import Optimizer

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


@contextlib.contextmanager
def _tf32() -> Iterator[None]:
    """TF32 on for cuBLAS matmuls and cuDNN convolutions, the settings before restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _devices() -> tuple[str, ...]:
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


class TorchBackend(Backend, TorchRecurrent, LanguageModelBackend, GANBackend, VAEBackend,
                   TorchDenoiser, TorchDiffusion, TorchRegularization,
                   TorchPractice, TorchAugment):
    """PyTorch eager with torch.optim (single-tensor path); devices 'cpu' and 'cuda'."""

    name = "torch"
    devices: tuple[str, ...] = _devices()
    dtypes = ("float16", "bfloat16", "float32", "float64")
    #: conv2d's input reaches oneDNN channels-last (torch-compile: Inductor's layout), where
    #: float32 crashes on the form float16 crashes on (_refuse_conv_segfault)
    conv_input_channels_last = False
    conventions: dict[str, dict[str, Any]] = {
        # F.cross_entropy weights each class inside the smoothed sum; 'mean' divides by
        # sum_i w[y_i].
        "cross_entropy": {"class_weighting": "per_class"},
        # torch.optim.SGD starts the momentum buffer at the raw gradient (no dampening).
        # weight_decay in SGD, Adam, RMSprop and Adagrad is L2 added to the gradient.
        "sgd": {"dampen_first_step": False, "weight_decay_mode": "l2"},
        # torch AMSGrad keeps the running max of the raw v and divides by 1 - b2^t;
        # eps is added to sqrt(v_hat).
        "adam": {"amsgrad": (None, "torch"), "eps_placement": "corrected",
                 "weight_decay_mode": "l2"},
        "adamw": {"amsgrad": (None, "torch"), "eps_placement": "corrected"},
        # torch puts eps outside the square root.
        "rmsprop": {"eps_in_sqrt": False, "weight_decay_mode": "l2"},
        "adagrad": {"eps_in_sqrt": False, "weight_decay_mode": "l2"},
        # The max-pool backward sends a window's whole gradient to its first maximum in
        # row-major order (every dtype, CPU).
        "max_pool2d": {"ties": "first"},
        # r <- (1 - m) r + m stat, with the unbiased (n / (n - 1)) batch variance, two-pass.
        "batch_norm": {"momentum_convention": "torch", "unbiased_running_var": True,
                       "variance": "two_pass"},
        # nn.GRUCell applies the reset gate to the hidden matmul's output (with b_hn):
        # n = tanh(W_in x + b_in + r (W_hn h + b_hn)).
        "gru_cell": {"reset_after": True},
    }
    #: arguments torch.optim does not have (checked against torch 2.13)
    lacks: dict[str, dict[str, tuple[Any, str]]] = {
        "adam": {"eps_root": (0.0, "torch.optim.Adam has no eps_root: no eps inside the "
                                   "square root")},
        "adamw": {"eps_root": (0.0, "torch.optim.AdamW has no eps_root: no eps inside the "
                                    "square root")},
        "rmsprop": {"initial_scale": (0.0, "torch.optim.RMSprop has no initial_scale: its "
                                           "square average starts at 0")},
    }
    #: measured, with their upstream issues, in backends/divergences/torch.toml
    known_divergences: tuple[KnownDivergence, ...] = load_divergences("torch")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        # Correctness mode: full-precision float32 matmuls and convolutions (no TF32).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        self._device = torch.device(self.device)

    def versions(self) -> dict[str, str]:
        """Versions of numpy, torch and diffusers (the schedulers), and of CUDA and cuDNN when
        torch was built with them."""
        out = {"numpy": np.__version__, "torch": torch.__version__}
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out["diffusers"] = importlib.metadata.version("diffusers")
        if torch.version.cuda:
            out["cuda"] = torch.version.cuda
            cudnn = torch.backends.cudnn.version()
            if cudnn is not None:
                out["cudnn"] = str(cudnn)
        if self.device == "cuda":
            out["gpu"] = torch.cuda.get_device_name(self._device)
            out["driver"] = gpu_driver() or "unknown"
        return out

    def fast_paths(self) -> tuple[str, Callable[[], AbstractContextManager]] | None:
        """TF32 in cuBLAS matmuls and cuDNN convolutions on a GPU; none on the CPU."""
        if self.device != "cuda":
            return None
        return "TF32 matmuls and cuDNN convolutions", _tf32

    # -- arrays ---------------------------------------------------------------------------
    def asarray(self, x: np.ndarray, dtype: str | None = None) -> torch.Tensor:
        """A tensor on this backend's device. ``dtype`` None keeps floats and booleans as
        they are and makes integers int64 (torch's index dtype)."""
        a = np.asarray(x)
        if dtype is None:
            if a.dtype.kind in "iu":
                a = a.astype(np.int64)
            return torch.tensor(a, device=self._device)
        if dtype not in _DTYPES:
            raise UnsupportedComponent(f"torch backend does not compute in {dtype}")
        # via float64 (NumPy has no bfloat16); the inputs the suite passes are already rounded
        t = torch.tensor(a.astype(np.float64), device=self._device)
        return t.to(_DTYPES[dtype])

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy array: floats (half and bfloat16 included) as float64, integers unchanged."""
        if not isinstance(x, torch.Tensor):
            a = np.asarray(x)
            return a.astype(np.float64) if a.dtype.kind == "f" else a
        t = x.detach()
        if t.is_floating_point():
            t = t.to(torch.float64)
        return t.cpu().numpy()

    def is_array(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def dtype_of(self, x: Any) -> str:
        """'float32', 'int64', ... of a tensor."""
        return str(x.dtype).removeprefix("torch.")

    def take(self, x: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` (a NumPy index array) of ``x``, gathered on x's device."""
        return x[torch.as_tensor(np.asarray(idx, dtype=np.int64), device=x.device)]

    def synchronize(self) -> None:
        """torch.cuda.synchronize() on a GPU; CPU work is synchronous."""
        if self.device == "cuda":
            torch.cuda.synchronize(self._device)

    # -- autodiff -------------------------------------------------------------------------
    def vjp(self, f: Callable[..., tuple[Any, ...]], primals: Sequence[Any],
            cotangents: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(f(*primals) detached, J^T cotangents) by torch.autograd.grad over every output of
        f at once. Float primals are cloned into fresh leaves; a primal the outputs do not
        depend on (or an integer one) gets zeros."""
        leaves = [p.detach().clone().requires_grad_(p.is_floating_point())
                  for p in primals]
        with torch.enable_grad():
            outs = tuple(f(*leaves))
            wrt = [p for p in leaves if p.requires_grad]
            pairs = [(o, torch.as_tensor(c, device=o.device).to(o.dtype).reshape(o.shape))
                     for o, c in zip(outs, cotangents, strict=True) if o.requires_grad]
            if pairs and wrt:
                found = torch.autograd.grad([o for o, _ in pairs], wrt,
                                            grad_outputs=[c for _, c in pairs], allow_unused=True)
            else:
                found = (None,) * len(wrt)
        it = iter(found)
        grads = []
        for p in leaves:
            g = next(it) if p.requires_grad else None
            grads.append(torch.zeros_like(p) if g is None else g.detach())
        return tuple(o.detach() for o in outs), tuple(grads)

    # -- dense and activations ------------------------------------------------------------
    def dense(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None
              ) -> torch.Tensor:
        """F.linear; the oracle's w (I, O) is torch's weight (O, I) transposed."""
        return F.linear(x, w.t(), b)

    def sigmoid(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    def leaky_relu(self, x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
        return F.leaky_relu(x, negative_slope)

    def elu(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return F.elu(x, alpha)

    def gelu(self, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
        """F.gelu: 'none' is the exact erf form (torch's default), 'tanh' the approximation."""
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        return F.gelu(x, approximate=approximate)

    def silu(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)

    def softplus(self, x: torch.Tensor, beta: float = 1.0, threshold: float | None = None
                 ) -> torch.Tensor:
        """F.softplus(x, beta, threshold): x itself where beta x > threshold. torch has no
        exact form, so threshold=None is unsupported."""
        if threshold is None:
            raise Unsupported("F.softplus always has a threshold (x itself where beta x > "
                              "threshold, 20 by default); the exact softplus "
                              "(threshold=None) is not available")
        return F.softplus(x, beta=beta, threshold=threshold)

    def softmax(self, x: torch.Tensor, axis: int = -1) -> torch.Tensor:
        return torch.softmax(x, dim=axis)

    def log_softmax(self, x: torch.Tensor, axis: int = -1) -> torch.Tensor:
        return torch.log_softmax(x, dim=axis)

    # -- statistics -----------------------------------------------------------------------
    def var_mean(self, x: torch.Tensor, axis: int = -1, correction: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.var_mean(x, dim=axis, correction=correction)

    # -- losses ---------------------------------------------------------------------------
    def mse_loss(self, pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
                 ) -> torch.Tensor:
        return F.mse_loss(pred, target, reduction=reduction)

    def l1_loss(self, pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
                ) -> torch.Tensor:
        return F.l1_loss(pred, target, reduction=reduction)

    def huber_loss(self, pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0,
                   reduction: str = "mean") -> torch.Tensor:
        return F.huber_loss(pred, target, reduction=reduction, delta=delta)

    def bce_with_logits(self, logits: torch.Tensor, target: torch.Tensor,
                        reduction: str = "mean") -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean",
                      label_smoothing: float = 0.0, weight: torch.Tensor | None = None,
                      class_weighting: str = "per_class") -> torch.Tensor:
        """F.cross_entropy with class weights and label smoothing ('mean' divides by
        sum_i w[y_i], as the oracle does). Its class weights are per class
        (class_weighting='per_class'); without weights both conventions agree."""
        if class_weighting != "per_class" and weight is not None:
            raise Unsupported(f"F.cross_entropy weights each class inside the smoothed sum "
                              f"(class_weighting='per_class'), not {class_weighting!r}")
        return F.cross_entropy(logits, labels, weight=weight, reduction=reduction,
                               label_smoothing=label_smoothing)

    def nll_loss(self, log_probs: torch.Tensor, labels: torch.Tensor, reduction: str = "mean",
                 weight: torch.Tensor | None = None) -> torch.Tensor:
        return F.nll_loss(log_probs, labels, weight=weight, reduction=reduction)

    # -- convolution, pooling and normalisation (NCHW) -----------------------------------
    def conv2d(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None,
               stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
               ) -> torch.Tensor:
        """F.conv2d (weight OIHW, as the oracle's). Asymmetric explicit padding is F.pad then
        padding 0, as users write it; "same" with stride > 1, which torch refuses, is
        TensorFlow's rule applied with F.pad (timm's Conv2dSame)."""
        stride = as_tuple(stride, 2, "stride")
        dilation = as_tuple(dilation, 2, "dilation")
        x, pad = _torch_padding(x, padding, 2, stride, tuple(w.shape[2:]), dilation)
        _refuse_conv_segfault(x, w, b, stride, pad, dilation, self.conv_input_channels_last)
        return F.conv2d(x, w, b, stride, pad, dilation, groups)

    def conv1d(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None,
               stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
               ) -> torch.Tensor:
        """F.conv1d: x (N, C, L), w (O, C // groups, k); padding int, (low, high) (F.pad when
        low != high), "valid" or "same" (with stride > 1 as conv2d)."""
        stride = as_tuple(stride, 1, "stride")
        dilation = as_tuple(dilation, 1, "dilation")
        x, pad = _torch_padding(x, padding, 1, stride, tuple(w.shape[2:]), dilation)
        _refuse_conv_segfault(x, w, b, stride, pad, dilation)
        return F.conv1d(x, w, b, stride, pad, dilation, groups)

    def conv_transpose2d(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None,
                         stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                         groups: int = 1, dilation: Any = 1) -> torch.Tensor:
        """F.conv_transpose2d, w (Cin, Cout // groups, kh, kw). torch refuses an
        output_padding not smaller than the stride or the dilation (Unsupported)."""
        stride = as_tuple(stride, 2, "stride")
        dilation = as_tuple(dilation, 2, "dilation")
        output_padding = as_tuple(output_padding, 2, "output_padding")
        if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation, strict=True)):
            raise Unsupported(f"F.conv_transpose2d needs output_padding < max(stride, dilation) "
                              f"per axis (got output_padding={output_padding}, stride={stride}, "
                              f"dilation={dilation})")
        return F.conv_transpose2d(x, w, b, stride, as_tuple(padding, 2, "padding"),
                                  output_padding, groups, dilation)

    def max_pool2d(self, x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   dilation: Any = 1, ceil_mode: bool = False, ties: str = "first"
                   ) -> torch.Tensor:
        """F.max_pool2d; its backward sends each window's gradient to the first maximum
        (ties="first" only). torch refuses padding > kernel_size // 2 (Unsupported)."""
        if ties != "first":
            raise Unsupported(f"F.max_pool2d sends a window's gradient to its first maximum "
                              f"(ties='first'), not {ties!r}")
        kernel, stride, padding = _pool_args("F.max_pool2d", kernel_size, stride, padding)
        return F.max_pool2d(x, kernel, stride, padding, as_tuple(dilation, 2, "dilation"),
                            ceil_mode)

    def avg_pool2d(self, x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True) -> torch.Tensor:
        """F.avg_pool2d. torch refuses padding > kernel_size // 2 (Unsupported)."""
        kernel, stride, padding = _pool_args("F.avg_pool2d", kernel_size, stride, padding)
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)

    def global_avg_pool2d(self, x: torch.Tensor) -> torch.Tensor:
        """F.adaptive_avg_pool2d(x, 1) then flatten(1): nn.AdaptiveAvgPool2d(1) as in ResNet."""
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)

    def batch_norm(self, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                   running_mean: torch.Tensor, running_var: torch.Tensor, training: bool = True,
                   momentum: float = 0.1, eps: float = 1e-5, momentum_convention: str = "torch",
                   unbiased_running_var: bool = True, variance: str = "two_pass"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F.batch_norm on clones of the running statistics (it updates them in place),
        returned with y. torch's convention: r <- (1 - m) r + m stat, the running variance
        unbiased, the batch variance two-pass; it refuses training with one value per
        channel (Unsupported)."""
        if variance != "two_pass":
            raise Unsupported(f"F.batch_norm computes a two-pass variance, not {variance!r}")
        if momentum_convention != "torch":
            raise Unsupported(f"F.batch_norm updates r <- (1 - m) r + m stat "
                              f"(momentum_convention='torch'), not {momentum_convention!r}")
        if not unbiased_running_var:
            raise Unsupported("F.batch_norm keeps the unbiased running variance "
                              "(unbiased_running_var=True)")
        if training and x.numel() // x.shape[1] == 1:
            raise Unsupported("F.batch_norm refuses training with one value per channel "
                              f"(input shape {tuple(x.shape)})")
        rm = None if running_mean is None else running_mean.detach().clone()
        rv = None if running_var is None else running_var.detach().clone()
        y = F.batch_norm(x, rm, rv, weight, bias, training, momentum, eps)
        return y, rm, rv

    # -- recurrent cells and embedding ------------------------------------------------------
    def rnn_cell(self, x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                 b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
                 nonlinearity: str = "tanh") -> torch.Tensor:
        """nn.RNNCell(nonlinearity=...) run on the oracle's weights (see _cell)."""
        return _cell(torch.nn.RNNCell, (x, h), w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity)

    def lstm_cell(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih: torch.Tensor,
                  w_hh: torch.Tensor, b_ih: torch.Tensor | None = None,
                  b_hh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """nn.LSTMCell (gates i, f, g, o, as the oracle's) returning (h', c')."""
        return _cell(torch.nn.LSTMCell, (x, (h, c)), w_ih, w_hh, b_ih, b_hh)

    def gru_cell(self, x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                 b_ih: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
                 reset_after: bool = True) -> torch.Tensor:
        """nn.GRUCell (gates r, z, n): the reset gate after the hidden matmul only."""
        if not reset_after:
            raise Unsupported("nn.GRUCell applies the reset gate after the hidden matmul, "
                              "r (W_hn h + b_hn) (reset_after=True); it has no reset_after=False")
        return _cell(torch.nn.GRUCell, (x, h), w_ih, w_hh, b_ih, b_hh)

    def embedding(self, weight: torch.Tensor, ids: torch.Tensor, padding_idx: int | None = None
                  ) -> torch.Tensor:
        """F.embedding(ids, weight, padding_idx): the padding row is returned as it is and gets
        no gradient; repeated ids accumulate theirs."""
        return F.embedding(ids, weight, padding_idx=padding_idx)

    # -- optimizers -----------------------------------------------------------------------
    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """A torch.optim optimizer (single-tensor path, foreach=False) behind the oracle's
        interface and hyperparameter names (the oracle's defaults apply). A convention torch
        does not follow raises Unsupported.

        torch.optim is stateful: the state returned by ``init`` holds the optimizer and its
        parameter tensors and ``update`` advances it in place, so each state is used once
        (as every training loop does). ``update`` copies the given params into the
        optimizer's tensors first, and returns detached clones."""
        cls, kwargs = _TORCH_OPTIM[name](**O.hyperparameters(name, **hyper))
        kwargs["foreach"] = False
        # Let torch validate the hyperparameters now (ValueError), not at init.
        cls([torch.zeros(1, requires_grad=True)], **kwargs)

        def init(params: list[torch.Tensor]) -> dict[str, Any]:
            leaves = [p.detach().clone().requires_grad_(True) for p in params]
            return {"params": leaves, "optimizer": cls(leaves, **kwargs)}

        def update(grads: list[torch.Tensor], state: dict[str, Any],
                   params: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, Any]]:
            leaves = state["params"]
            if not len(grads) == len(params) == len(leaves):
                raise ValueError(f"grads: expected {len(leaves)} arrays to match params, got "
                                 f"{len(grads)} grads and {len(params)} params")
            with torch.no_grad():
                for leaf, p, g in zip(leaves, params, grads, strict=True):
                    if g.shape != leaf.shape:
                        raise ValueError(f"grads: expected shape {tuple(leaf.shape)}, got "
                                         f"{tuple(g.shape)}")
                    if p is not leaf:
                        leaf.copy_(p)
                    leaf.grad = g.detach().to(dtype=leaf.dtype, device=leaf.device).clone()
                state["optimizer"].step()
            return [leaf.detach().clone() for leaf in leaves], state

        return Optimizer(init, update)


# -- recurrent cells ------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _cell_module(cls: type[torch.nn.Module], inputs: int, hidden: int, bias: bool,
                 **kwargs: Any) -> torch.nn.Module:
    """An nn.RNNCell / LSTMCell / GRUCell on the meta device: its own parameters are never
    used (functional_call swaps in the oracle's), so none is allocated or initialised."""
    return cls(inputs, hidden, bias=bias, device="meta", **kwargs)


def _cell(cls: type[torch.nn.Module], args: tuple, w_ih: torch.Tensor, w_hh: torch.Tensor,
          b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, **kwargs: Any) -> Any:
    """The torch cell module users run, called by torch.func.functional_call with the
    oracle's weights as its parameters: the layouts are the same (weight_ih (G H, I),
    weight_hh (G H, H), bias_ih and bias_hh (G H,), gates stacked in torch's order); torch
    has both biases or neither (bias=False)."""
    module, params = cell_parts(cls, w_ih, w_hh, b_ih, b_hh, **kwargs)
    return torch.func.functional_call(module, params, args)


def cell_parts(cls: type[torch.nn.Module], w_ih: torch.Tensor, w_hh: torch.Tensor,
               b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, **kwargs: Any
               ) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """(the meta-device cell module, its parameters: the oracle's weights); torch has both
    biases or neither (bias=False)."""
    if (b_ih is None) != (b_hh is None):
        raise Unsupported(f"{cls.__name__} has both biases (bias_ih, bias_hh) or neither "
                          "(bias=False), not one")
    params = {"weight_ih": w_ih, "weight_hh": w_hh}
    if b_ih is not None:
        params.update(bias_ih=b_ih, bias_hh=b_hh)
    return _cell_module(cls, w_ih.shape[1], w_hh.shape[1], b_ih is not None, **kwargs), params


# -- convolution and pooling arguments ------------------------------------------------------
def _torch_padding(x: torch.Tensor, padding: Any, ndim: int, stride: tuple[int, ...],
                   kernel: tuple[int, ...], dilation: tuple[int, ...]
                   ) -> tuple[torch.Tensor, str | tuple[int, ...]]:
    """(x, padding for F.conv*): symmetric padding passes through, asymmetric explicit padding
    is applied with F.pad (zeros) and becomes 0; "valid" / "same" pass as strings. torch
    refuses padding='same' with stride > 1: there the TensorFlow rule is applied with F.pad,
    as timm's Conv2dSame does (total max((ceil(n / s) - 1) s + d (k - 1) + 1 - n, 0), the odd
    pixel on the high side)."""
    pad = conv_padding(padding, ndim)
    if pad == "same" and any(s != 1 for s in stride):
        pad = []
        for n, s, k, d in zip(x.shape[2:], stride, kernel, dilation, strict=True):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pad.append((total // 2, total - total // 2))
    if isinstance(pad, str):
        return x, pad
    if all(lo == hi for lo, hi in pad):
        return x, tuple(lo for lo, _ in pad)
    # F.pad lists (low, high) from the last axis backwards
    return F.pad(x, tuple(v for lo_hi in reversed(pad) for v in lo_hi)), (0,) * ndim


def _refuse_conv_segfault(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                          stride: tuple[int, ...], pad: Any, dilation: tuple[int, ...],
                          channels_last: bool = False) -> None:
    """Raise Unsupported for the convolutions that kill the process in torch 2.13.0 on CPU
    (a segmentation fault in oneDNN): an axis of input length 1 with kernel 1, dilation > 1,
    stride > 1 and padding > 0, in float16 (F.conv1d/F.conv2d; a sweep of 3348 zero-input
    conv1d and 288 conv2d configurations crashed in 16, all of this form, none in bfloat16
    or float32: tests/repro/torch_float16_conv_segfault.py), and in float32 with a bias where
    conv2d's input is channels-last, as Inductor lays it out (seen: (stride 2, padding 1) and
    (stride 3, padding 2); contiguous float32, float64 and bfloat16 never: pytorch#195394,
    tests/repro/torch_conv2d_channels_last_segfault.py)."""
    crashes = x.dtype == torch.float16 or (
        channels_last and x.dtype == torch.float32 and b is not None and x.ndim == 4)
    if not crashes or x.device.type != "cpu" or isinstance(pad, str):
        return
    for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, pad, dilation, strict=True):
        if n == 1 and k == 1 and d > 1 and s > 1 and p > 0:
            raise Unsupported(f"torch 2.13.0 F.conv {x.dtype} on CPU segfaults with an axis of "
                              "length 1, kernel 1, dilation > 1, stride > 1 and padding > 0 "
                              + ("(channels-last input with a bias: pytorch#195394, "
                                 "tests/repro/torch_conv2d_channels_last_segfault.py)"
                                 if x.dtype == torch.float32 else
                                 "(tests/repro/torch_float16_conv_segfault.py)"))


def _pool_args(what: str, kernel_size: Any, stride: Any, padding: Any
               ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, padding) pairs; stride None is the kernel. torch refuses padding
    greater than half the kernel."""
    kernel = as_tuple(kernel_size, 2, "kernel_size")
    stride = kernel if stride is None else as_tuple(stride, 2, "stride")
    padding = as_tuple(padding, 2, "padding")
    if any(p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        raise Unsupported(f"{what} refuses padding > kernel_size // 2 (got padding {padding}, "
                          f"kernel_size {kernel})")
    return kernel, stride, padding


# -- torch.optim under the oracle's hyperparameter names -------------------------------------
def _l2_only(what: str, weight_decay: float, weight_decay_mode: str) -> None:
    # with no decay both modes are the same optimizer
    if weight_decay_mode != "l2" and weight_decay:
        raise Unsupported(f"{what} adds weight_decay to the gradient (weight_decay_mode='l2'), "
                          f"not {weight_decay_mode!r}")


def _sgd(lr, momentum, dampening, nesterov, weight_decay, dampen_first_step, weight_decay_mode):
    _l2_only("torch.optim.SGD", weight_decay, weight_decay_mode)
    # With momentum 0 or dampening 0 both conventions give b_1 = g, as torch does.
    if dampen_first_step and momentum and dampening:
        raise Unsupported("torch.optim.SGD starts the momentum buffer at the raw gradient "
                          "(dampen_first_step=False); it cannot dampen the first step")
    return torch.optim.SGD, {"lr": lr, "momentum": momentum, "dampening": dampening,
                             "nesterov": nesterov, "weight_decay": weight_decay}


def _amsgrad(amsgrad) -> bool:
    if amsgrad not in (None, "torch"):
        raise Unsupported(f"torch.optim AMSGrad keeps the running max of the raw v "
                          f"(amsgrad='torch'), not the {amsgrad!r} variant")
    return amsgrad == "torch"


def _adam(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement, weight_decay_mode):
    if eps_root != 0.0:
        raise Unsupported(f"torch.optim.Adam has no eps inside the square root "
                          f"(eps_root must be 0, got {eps_root})")
    if eps_placement != "corrected" and eps:
        raise Unsupported(f"torch.optim.Adam adds eps to sqrt(v_hat) "
                          f"(eps_placement='corrected'), not {eps_placement!r}")
    kwargs = {"lr": lr, "betas": (b1, b2), "eps": eps, "weight_decay": weight_decay,
              "amsgrad": _amsgrad(amsgrad)}
    # torch.optim.Adam's weight_decay is L2 added to the gradient; AdamW's is decoupled.
    return (torch.optim.AdamW if weight_decay_mode == "decoupled" else torch.optim.Adam), kwargs


def _adamw(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement):
    return _adam(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement, "decoupled")


def _rmsprop(lr, alpha, eps, weight_decay, momentum, centered, eps_in_sqrt, initial_scale,
             weight_decay_mode):
    _l2_only("torch.optim.RMSprop", weight_decay, weight_decay_mode)
    if eps_in_sqrt:
        raise Unsupported("torch.optim.RMSprop adds eps outside the square root "
                          "(eps_in_sqrt=False)")
    if initial_scale != 0.0:
        raise Unsupported(f"torch.optim.RMSprop starts the square average at 0 "
                          f"(initial_scale must be 0, got {initial_scale})")
    return torch.optim.RMSprop, {"lr": lr, "alpha": alpha, "eps": eps,
                                 "weight_decay": weight_decay, "momentum": momentum,
                                 "centered": centered}


def _adagrad(lr, eps, initial_accumulator_value, lr_decay, weight_decay, eps_in_sqrt,
             weight_decay_mode):
    _l2_only("torch.optim.Adagrad", weight_decay, weight_decay_mode)
    if eps_in_sqrt:
        raise Unsupported("torch.optim.Adagrad adds eps outside the square root "
                          "(eps_in_sqrt=False)")
    return torch.optim.Adagrad, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                 "initial_accumulator_value": initial_accumulator_value,
                                 "eps": eps}


_TORCH_OPTIM: dict[str, Callable[..., tuple[type[torch.optim.Optimizer], dict[str, Any]]]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw, "rmsprop": _rmsprop, "adagrad": _adagrad,
}
