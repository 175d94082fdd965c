"""JAX (jax.nn, jax.numpy), optax and flax.linen as a backend, on CPU or a GPU.

Every component calls JAX's, optax's or flax's own implementation (jax.nn.gelu,
optax.huber_loss, optax.adam, flax.linen.LSTMCell, ...), so the suite certifies what users
run; only what none of them has (the reduction of a per-element loss, NLL as a gather) is
written here with jax.numpy.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from backends import compose
from backends.base import (
    Backend,
    KnownDivergence,
    Unsupported,
    UnsupportedComponent,
    as_tuple,
    conv_padding,
    gpu_driver,
)
from backends.base import frozen as _frozen
from backends.divergences import load as load_divergences
from backends.jax_augment import JaxAugment
from backends.jax_compiled import COMPILED as _COMPILED
from backends.jax_diffusion import JaxDiffusion
from backends.jax_gan import JaxCompiledGAN
from backends.jax_lm import JaxLanguageModel
from backends.jax_practice import JaxPractice
from backends.jax_recurrent import JaxRecurrent
from backends.jax_regularization import JaxRegularization
from backends.jax_vae import JaxDenoiser, JaxVAE
from backends.xla_guard import CONVOLUTIONS, check_vjp_convolutions, conv
from reference import optimizers as O
from reference import registry
from reference.optimizers import Optimizer

# float64 arrays exist in JAX only with x64 enabled; it is a process-wide switch, so it is
# flipped once, when the adapter is imported (before any array is made here).
jax.config.update("jax_enable_x64", True)
# Correctness mode: full float32 matmuls on GPU (no TF32 / bf16 passes). On CPU a no-op.
jax.config.update("jax_default_matmul_precision", "highest")


_CACHE_BYTES = 1 << 30


def _persistent_cache() -> str | None:
    """Turn on JAX's persistent compilation cache, so a later run (a certification with the
    same derandomised examples, above all) reads executables back from disk instead of
    compiling them again: every executable, however quick to compile (most here take
    0.05-0.5 s), in $TOUCHSTONE_JAX_CACHE or else $XDG_CACHE_HOME/touchstone/jax
    (~/.cache/touchstone/jax), held to 1 GiB by ``_prune`` as the process starts.
    TOUCHSTONE_JAX_CACHE=off leaves it off; a cache directory already configured
    (JAX_COMPILATION_CACHE_DIR) is left as it is. The cache key is the compiled program,
    its options and the jax/jaxlib versions, so a hit is the executable XLA would compile.

    JAX's own bound (jax_compilation_cache_max_size) is left unset: with it, every write
    globs the directory and reads each entry's access time under one file lock
    (jax/_src/lru_cache.py, LRUCache._evict_if_needed), so a write costs O(entries) and the
    xdist workers queue on the lock: a first jax certification (5,400 executables) took
    1201 s with it and 497 s without it."""
    setting = os.environ.get("TOUCHSTONE_JAX_CACHE", "").strip()
    if setting.lower() in ("0", "off", "no", "false", "none"):
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = setting or os.path.join(os.environ.get("XDG_CACHE_HOME")
                                   or os.path.join(os.path.expanduser("~"), ".cache"),
                                   "touchstone", "jax")
    _prune(path, _CACHE_BYTES)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def _prune(path: str, limit: int) -> None:
    """Delete the least recently used executables (by their files' last access or change;
    relatime file systems update an access time about once a day) in the cache directory
    ``path`` until it holds at most ``limit`` bytes; one scan. Files another process removes
    meanwhile are skipped."""
    entries = []
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.name.endswith("-cache"):
                    try:
                        st = e.stat()
                    except FileNotFoundError:
                        continue
                    entries.append((max(st.st_atime, st.st_mtime), st.st_size, e.path))
    except FileNotFoundError:
        return
    total = sum(size for _, size, _ in entries)
    for _, size, file in sorted(entries):
        if total <= limit:
            break
        for stale in (file, file[:-len("-cache")] + "-atime"):  # JAX's LRU marker, if any
            with suppress(FileNotFoundError):
                os.remove(stale)
        total -= size


_persistent_cache()

_DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16, "float32": jnp.float32,
           "float64": jnp.float64}
_REDUCTIONS = ("mean", "sum", "none")


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:  # no GPU platform in this jaxlib, or no GPU
        return False


def _reduce(v: jax.Array, reduction: str) -> jax.Array:
    """'mean' / 'sum' over every element, or 'none'."""
    if reduction == "none":
        return v
    if reduction == "sum":
        return jnp.sum(v)
    if reduction == "mean":
        return jnp.mean(v)
    raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def _no_class_weights(component: str, weight: Any) -> None:
    if weight is not None:
        raise Unsupported(f"{component}: optax has no class weights")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _traced(value: Any) -> bool:
    """Whether a component argument is traced under jax.jit: arrays, and Python floats (as
    weakly typed scalars, the way jax.nn's own jitted functions take slopes and alphas)."""
    return isinstance(value, jax.Array | np.ndarray) or type(value) is float


def _split(given: dict[str, Any], static: Sequence[str]) -> tuple[tuple, dict[str, Any]]:
    """(the configuration: every argument not traced, and those named ``static``, frozen, as
    a key; the traced arguments)."""
    dynamic = {k: v for k, v in given.items() if k not in static and _traced(v)}
    config = tuple((k, _frozen(v)) for k, v in given.items() if k not in dynamic)
    return config, dynamic




def _elementwise(method: Callable) -> Callable:
    """An elementwise component of one array (an activation), run eagerly, as before, on
    that array flattened and zero-padded to a power-of-two length (_bucket) and cut back:
    every element is computed as in its own shape, and a few padded lengths serve every
    shape instead of one compilation per shape. Inside a trace it runs as it is. Its VJP
    is padded the same way (JaxBackend.component_vjp)."""
    @functools.wraps(method)
    def inner(self, x, *args, **kwargs):
        if isinstance(x, jax.core.Tracer):
            return method(self, x, *args, **kwargs)
        (padded,), shapes = self._pad([x])
        return self._unpad([method(self, padded, *args, **kwargs)], shapes)[0]
    inner.elementwise = True  # type: ignore[attr-defined]
    return inner


def _jit(*static: str) -> Callable:
    """Run a component under jax.jit, as flax models run, compiled once per configuration
    and input shapes: arrays and float arguments are traced (floats as weakly typed scalars,
    as jax.nn's jitted functions take them), the others, and floats named in ``static``
    (those the method branches on), are the configuration."""
    def wrap(method: Callable) -> Callable:
        signature = inspect.signature(method)
        name = method.__name__

        @functools.wraps(method)
        def inner(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            del given["self"]
            config, dynamic = _split(given, static)
            fn = _COMPILED.get((id(self), name, config, tuple(dynamic)),
                               lambda: functools.partial(method, self, **dict(config)))
            return fn(**dynamic)
        inner.static = static  # type: ignore[attr-defined]
        return inner
    return wrap


class JaxBackend(Backend, JaxRecurrent, JaxLanguageModel, JaxCompiledGAN, JaxVAE, JaxDenoiser,
                 JaxDiffusion, JaxRegularization, JaxPractice, JaxAugment):
    """JAX (the CNN components under jax.jit, as flax runs them) with optax optimizers;
    devices 'cpu' and, with a GPU jaxlib, 'cuda'."""

    name = "jax"
    devices: tuple[str, ...] = ("cpu", "cuda") if _has_gpu() else ("cpu",)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    conventions: dict[str, dict[str, Any]] = {
        # jax.nn.softplus is the exact log(1 + e^x): no threshold (its beta is in lacks).
        "softplus": {"threshold": None},
        # without class weights (lacks) both class_weighting conventions agree.
        "cross_entropy": {"class_weighting": "per_class"},
        # optax.sgd's (trace's) buffer starts at the raw gradient. Weight decay is L2
        # (add_decayed_weights before the optimizer), as users chain it.
        "sgd": {"dampen_first_step": False, "weight_decay_mode": "l2"},
        # optax.amsgrad keeps the running max of the bias-corrected v_hat; eps is added to
        # sqrt(v_hat).
        "adam": {"amsgrad": (None, "optax"), "eps_placement": "corrected",
                 "weight_decay_mode": "l2"},
        "adamw": {"amsgrad": (None, "optax"), "eps_placement": "corrected"},
        # optax.rmsprop: eps_in_sqrt is an argument (default True); centred and momentum agree.
        "rmsprop": {"eps_in_sqrt": (False, True), "weight_decay_mode": "l2"},
        # optax.adagrad (scale_by_rss): rsqrt(s + eps).
        "adagrad": {"eps_in_sqrt": True, "weight_decay_mode": "l2"},
        # The VJP of reduce_window max (select_and_scatter_add) sends a window's gradient to
        # its first maximum, and JAX has no VJP of a max reduce_window with window_dilation
        # (NotImplementedError), so dilated max pooling is not drawn (its forward works).
        "max_pool2d": {"ties": "first", "dilation": 1},
        # flax.linen.BatchNorm: r <- m r + (1 - m) stat with the biased batch variance,
        # computed fast (use_fast_variance=True, the default) or two-pass (False).
        "batch_norm": {"momentum_convention": "flax", "unbiased_running_var": False,
                       "variance": ("fast", "two_pass")},
        # flax.linen.GRUCell applies the reset gate to the hidden matmul's output, which has
        # the bias b_hn: n = tanh(W_in x + b_in + r (W_hn h + b_hn)).
        "gru_cell": {"reset_after": True},
    }
    #: arguments these JAX functions do not have (checked against jax 0.10 and optax 0.2.8)
    lacks: dict[str, dict[str, tuple[Any, str]]] = {
        "softplus": {"beta": (1.0, "jax.nn.softplus(x) has no beta argument")},
        "cross_entropy": {"weight": (None, "optax.softmax_cross_entropy(_with_integer_labels) "
                                           "takes no class weights")},
        "nll_loss": {"weight": (None, "optax has no NLL loss; the adapter's "
                                      "-take_along_axis takes no class weights")},
        "sgd": {"dampening": (0.0, "optax.sgd has no dampening")},
        "adagrad": {"lr_decay": (0.0, "optax.adagrad has no lr_decay")},
        "max_pool2d": {"ceil_mode": (False, "lax.reduce_window, flax's pooling, has no "
                                            "ceil_mode")},
        "avg_pool2d": {"ceil_mode": (False, "lax.reduce_window, flax's pooling, has no "
                                            "ceil_mode")},
        "embedding": {"padding_idx": (None, "flax.linen.Embed (jnp.take) has no padding_idx: "
                                            "every row it looks up gets its gradient")},
    }
    #: measured, with their upstream issues, in backends/divergences/jax.toml
    known_divergences: tuple[KnownDivergence, ...] = load_divergences("jax")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._device = jax.devices("gpu" if self.device == "cuda" else "cpu")[0]

    @property
    def id(self) -> str:
        """'jax-cpu' or 'jax-gpu' (JAX calls the platform 'gpu')."""
        return f"{self.name}-{'gpu' if self.device == 'cuda' else self.device}"

    def versions(self) -> dict[str, str]:
        """Versions of numpy, jax, jaxlib, optax and flax; on a GPU, its model and driver."""
        out = {"numpy": np.__version__, "jax": jax.__version__, "jaxlib": _version("jaxlib"),
               "optax": optax.__version__, "flax": _version("flax")}
        if self.device == "cuda":
            out["gpu"] = self._device.device_kind
            out["driver"] = gpu_driver() or "unknown"
        return out

    def fast_paths(self) -> tuple[str, Callable[[], AbstractContextManager]] | None:
        """TF32 matmuls and convolutions on a GPU (jax_default_matmul_precision
        'tensorfloat32' in place of 'highest'; jax.jit traces again under it); none on the
        CPU, where XLA computes float32 in full."""
        if self.device != "cuda":
            return None
        return ("TF32 matmuls and convolutions (matmul precision 'tensorfloat32')",
                lambda: jax.default_matmul_precision("tensorfloat32"))

    # -- arrays ---------------------------------------------------------------------------
    def asarray(self, x: np.ndarray, dtype: str | None = None) -> jax.Array:
        """A jax array on this backend's device; ``dtype`` None keeps the NumPy dtype."""
        _COMPILED.bound()  # arrays come in outside any trace: a point to free executables
        x = np.asarray(x)
        if dtype is not None:
            if dtype not in _DTYPES:
                raise UnsupportedComponent(f"jax backend does not compute in {dtype}")
            x = x.astype(_DTYPES[dtype])
        return jax.device_put(x, self._device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy array: floats (bfloat16 included) as float64, integers unchanged."""
        a = np.asarray(x)
        return a.astype(np.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a

    def dtype_of(self, x: Any) -> str:
        return str(jnp.asarray(x).dtype)

    def take(self, x: jax.Array, idx: np.ndarray) -> jax.Array:
        """Rows ``idx`` (a NumPy index array) of ``x``: gathered on the host (an exact copy of
        rows, and no compilation per batch shape) unless ``x`` is traced."""
        if isinstance(x, jax.core.Tracer):
            return x[jax.device_put(np.asarray(idx), self._device)]
        return jax.device_put(np.asarray(x)[np.asarray(idx)], self._device)

    def synchronize(self) -> None:
        """A no-op: JAX has no device-wide barrier, only ``block_until_ready`` on given
        arrays. The paths that return results block on them instead (train_network)."""

    # -- autodiff -------------------------------------------------------------------------
    def vjp(self, f: Callable[..., tuple[Any, ...]], primals: Sequence[Any],
            cotangents: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(f(*primals), J^T cotangents) by jax.vjp over f's tuple of outputs; each cotangent
        takes its output's dtype."""
        outs, pullback = jax.vjp(lambda *p: tuple(f(*p)), *primals)
        cots = tuple(jnp.asarray(c, dtype=o.dtype) for c, o in zip(cotangents, outs, strict=True))
        return outs, tuple(pullback(cots))

    def value_and_grad_aux(self, f: Callable[[list[Any]], tuple[Any, Any]], params: Sequence[Any]
                           ) -> tuple[Any, list[Any], Any]:
        """jax.value_and_grad(has_aux=True): the aux (running statistics) leaves the trace as
        values."""
        (value, aux), grads = jax.value_and_grad(f, has_aux=True)(list(params))
        return value, list(grads), aux

    def component_vjp(self, name: str, primals: Sequence[Any], cotangents: Sequence[Any],
                      **kwargs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The base VJP's contract (one cotangent per output, None for one not differentiated;
        None primals held fixed with None gradients), as one jitted function of the primals,
        cotangents and traced arguments per configuration: the forward, jax.vjp and the
        pullback compile together once per configuration and shapes, instead of every
        primitive of the linearised and transposed function on its own. A transpose rule JAX
        declares missing (NotImplementedError, e.g. the max-pool VJP with window dilation) is
        Unsupported, and so is a convolution VJP that would abort the process in XLA (see
        backends.xla_guard)."""
        if name in CONVOLUTIONS:
            check_vjp_convolutions(getattr(self, name), name, primals, kwargs)
        if getattr(getattr(type(self), name, None), "elementwise", False) \
                and not _any_traced([*primals, *cotangents]):
            (x,), shapes = self._pad(primals)
            (c,), _ = self._pad(cotangents)
            (out,), (grad,) = super().component_vjp(name, [x], [c], **kwargs)
            return tuple(self._unpad([out], shapes)), tuple(self._unpad([grad], shapes))
        rec = registry.get(name)
        cots = rec.cotangents(cotangents)
        wanted = tuple(i for i, c in enumerate(cots) if c is not None)
        present = tuple(i for i, p in enumerate(primals) if p is not None)
        config, dynamic = _split(kwargs, getattr(getattr(type(self), name, None), "static", ()))
        n = len(primals)

        def make() -> Callable:
            fn = getattr(self, name)

            def run(arrays, cots_, dyn):
                def f(*a):
                    full: list[Any] = [None] * n
                    for i, v in zip(present, a, strict=True):
                        full[i] = v
                    out = fn(*full, **dict(config), **dyn)
                    outs = tuple(out) if rec.multi_output else (out,)
                    return tuple(outs[i] for i in wanted)

                outs, pullback = jax.vjp(f, *arrays)
                cs = tuple(jnp.asarray(c, dtype=o.dtype) for c, o in zip(cots_, outs, strict=True))
                return outs, pullback(cs)
            return run

        run = _COMPILED.get((id(self), "vjp", name, config, tuple(dynamic), n, present, wanted),
                            make)
        try:
            outs, found = run(tuple(primals[i] for i in present), tuple(cots[i] for i in wanted),
                              dynamic)
        except NotImplementedError as exc:
            raise Unsupported(f"jax has no VJP for {name} here: {exc}") from exc
        it = iter(found)
        return tuple(outs), tuple(None if p is None else next(it) for p in primals)

    # -- dense and activations ------------------------------------------------------------
    @_jit()
    def dense(self, x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
        """x @ w + b with w (I, O), the oracle's (and flax's) layout."""
        y = jnp.matmul(x, w)
        return y if b is None else y + b

    @_elementwise
    def sigmoid(self, x: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(x)

    @_elementwise
    def tanh(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(x)

    @_elementwise
    def relu(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x)

    @_elementwise
    def leaky_relu(self, x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
        return jax.nn.leaky_relu(x, negative_slope)

    @_elementwise
    def elu(self, x: jax.Array, alpha: float = 1.0) -> jax.Array:
        return jax.nn.elu(x, alpha)

    @_elementwise
    def gelu(self, x: jax.Array, approximate: str = "none") -> jax.Array:
        """jax.nn.gelu; the oracle's 'none' is approximate=False, 'tanh' approximate=True
        (JAX's default)."""
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
        return jax.nn.gelu(x, approximate=approximate == "tanh")

    @_elementwise
    def silu(self, x: jax.Array) -> jax.Array:
        return jax.nn.silu(x)

    @_elementwise
    def softplus(self, x: jax.Array, beta: float = 1.0, threshold: float | None = None
                 ) -> jax.Array:
        """jax.nn.softplus: exact (no threshold) and without a beta argument."""
        if threshold is not None:
            raise Unsupported(f"jax.nn.softplus has no threshold (got {threshold})")
        if beta != 1.0:
            raise Unsupported(f"jax.nn.softplus has no beta (got {beta})")
        return jax.nn.softplus(x)

    @_jit()
    def softmax(self, x: jax.Array, axis: int = -1) -> jax.Array:
        return jax.nn.softmax(x, axis=axis)

    @_jit()
    def log_softmax(self, x: jax.Array, axis: int = -1) -> jax.Array:
        return jax.nn.log_softmax(x, axis=axis)

    # -- statistics -----------------------------------------------------------------------
    @_jit()
    def var_mean(self, x: jax.Array, axis: int = -1, correction: int = 1
                 ) -> tuple[jax.Array, jax.Array]:
        """(jnp.var(ddof=correction), jnp.mean) along ``axis``."""
        return jnp.var(x, axis=axis, ddof=correction), jnp.mean(x, axis=axis)

    # -- losses ---------------------------------------------------------------------------
    @_jit()
    def mse_loss(self, pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
        """optax.squared_error (optax.l2_loss is half of it), reduced."""
        return _reduce(optax.squared_error(pred, target), reduction)

    @_jit()
    def l1_loss(self, pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
        """|pred - target| with jnp (optax has no L1 loss), reduced."""
        return _reduce(jnp.abs(pred - target), reduction)

    @_jit()
    def huber_loss(self, pred: jax.Array, target: jax.Array, delta: float = 1.0,
                   reduction: str = "mean") -> jax.Array:
        return _reduce(optax.huber_loss(pred, target, delta=delta), reduction)

    @_jit()
    def bce_with_logits(self, logits: jax.Array, target: jax.Array, reduction: str = "mean"
                        ) -> jax.Array:
        return _reduce(optax.sigmoid_binary_cross_entropy(logits, target), reduction)

    @_jit("label_smoothing")
    def cross_entropy(self, logits: jax.Array, labels: jax.Array, reduction: str = "mean",
                      label_smoothing: float = 0.0, weight: jax.Array | None = None,
                      class_weighting: str = "per_class") -> jax.Array:
        """optax.softmax_cross_entropy_with_integer_labels, or with label smoothing
        optax.softmax_cross_entropy on optax.smooth_labels(one_hot); no class weights, so
        either class_weighting gives the same loss."""
        _no_class_weights("cross_entropy", weight)
        if label_smoothing == 0.0:
            per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        else:
            onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
            per_example = optax.softmax_cross_entropy(
                logits, optax.smooth_labels(onehot, label_smoothing))
        return _reduce(per_example, reduction)

    @_jit()
    def nll_loss(self, log_probs: jax.Array, labels: jax.Array, reduction: str = "mean",
                 weight: jax.Array | None = None) -> jax.Array:
        """-log_probs[i, y_i] by jnp.take_along_axis (optax has no NLL); no class weights."""
        _no_class_weights("nll_loss", weight)
        per_example = -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
        return _reduce(per_example, reduction)

    # -- convolution, pooling and normalisation (NCHW at the interface) ------------------
    @_jit("stride", "padding", "dilation", "groups")
    def conv2d(self, x: jax.Array, w: jax.Array, b: jax.Array | None = None, stride: Any = 1,
               padding: Any = 0, dilation: Any = 1, groups: int = 1) -> jax.Array:
        """lax.conv_general_dilated as flax.linen.Conv calls it: x NCHW -> NHWC, w OIHW ->
        HWIO, dimension_numbers ('NHWC', 'HWIO', 'NHWC'), feature_group_count=groups,
        rhs_dilation=dilation; padding as (low, high) pairs, or 'SAME' / 'VALID' handed to
        lax (so JAX's own "same" rule is the one tested)."""
        y = conv(
            jnp.transpose(x, (0, 2, 3, 1)), jnp.transpose(w, (2, 3, 1, 0)),
            window_strides=as_tuple(stride, 2, "stride"), padding=_lax_padding(padding, 2),
            rhs_dilation=as_tuple(dilation, 2, "dilation"),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)
        if b is not None:
            y = y + b
        return jnp.transpose(y, (0, 3, 1, 2))

    @_jit("stride", "padding", "dilation", "groups")
    def conv1d(self, x: jax.Array, w: jax.Array, b: jax.Array | None = None, stride: Any = 1,
               padding: Any = 0, dilation: Any = 1, groups: int = 1) -> jax.Array:
        """conv2d's lax call in one spatial dimension: x NCL -> NWC, w OIW -> WIO,
        dimension_numbers ('NWC', 'WIO', 'NWC')."""
        y = conv(
            jnp.transpose(x, (0, 2, 1)), jnp.transpose(w, (2, 1, 0)),
            window_strides=as_tuple(stride, 1, "stride"), padding=_lax_padding(padding, 1),
            rhs_dilation=as_tuple(dilation, 1, "dilation"),
            dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=groups)
        if b is not None:
            y = y + b
        return jnp.transpose(y, (0, 2, 1))

    @_jit("stride", "padding", "output_padding", "groups", "dilation")
    def conv_transpose2d(self, x: jax.Array, w: jax.Array, b: jax.Array | None = None,
                         stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                         groups: int = 1, dilation: Any = 1) -> jax.Array:
        """torch's transposed convolution as lax.conv_transpose(transpose_kernel=True) builds
        it, with groups: lax.conv_general_dilated with lhs_dilation=stride, rhs_dilation=
        dilation, the kernel flipped spatially with in/out swapped per group (torch's
        (Cin, Cout // G, kh, kw) -> HWIO (kh, kw, Cin // G, Cout)), feature_group_count=G and
        padding (d (k - 1) - p, d (k - 1) - p + output_padding) per axis (NHWC inside)."""
        stride = as_tuple(stride, 2, "stride")
        dilation = as_tuple(dilation, 2, "dilation")
        pad = as_tuple(padding, 2, "padding")
        out_pad = as_tuple(output_padding, 2, "output_padding")
        cin, cout_g, kh, kw = w.shape
        if cin % groups:
            raise ValueError(f"w: {cin} input channels do not split into {groups} groups")
        k = jnp.reshape(w, (groups, cin // groups, cout_g, kh, kw))
        k = jnp.transpose(k, (3, 4, 1, 0, 2)).reshape(kh, kw, cin // groups, groups * cout_g)
        k = jnp.flip(k, (0, 1))
        lax_pad = [(d * (n - 1) - p, d * (n - 1) - p + op)
                   for n, p, op, d in zip((kh, kw), pad, out_pad, dilation, strict=True)]
        y = conv(
            jnp.transpose(x, (0, 2, 3, 1)), k, window_strides=(1, 1), padding=lax_pad,
            lhs_dilation=stride, rhs_dilation=dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)
        if b is not None:
            y = y + b
        return jnp.transpose(y, (0, 3, 1, 2))

    @_jit("kernel_size", "stride", "padding", "dilation", "ceil_mode", "ties")
    def max_pool2d(self, x: jax.Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   dilation: Any = 1, ceil_mode: bool = False, ties: str = "first") -> jax.Array:
        """flax.linen.max_pool's lax.reduce_window(x, -inf, lax.max) (NHWC inside), with
        explicit padding pairs and window_dilation. No ceil_mode; its VJP sends a window's
        gradient to the first maximum (ties="first"), and JAX has none with window dilation
        (NotImplementedError: Unsupported, see component_vjp)."""
        if ceil_mode:
            raise Unsupported("flax/lax pooling has no ceil_mode (ceil_mode=False)")
        if ties != "first":
            raise Unsupported(f"the VJP of lax.reduce_window max sends a window's gradient to "
                              f"its first maximum (ties='first'), not {ties!r}")
        window, strides, pads = _window(kernel_size, stride, padding)
        dil = (1, *as_tuple(dilation, 2, "dilation"), 1)
        y = lax.reduce_window(jnp.transpose(x, (0, 2, 3, 1)), -jnp.inf, lax.max, window,
                              strides, pads, window_dilation=dil)
        return jnp.transpose(y, (0, 3, 1, 2))

    @_jit("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    def avg_pool2d(self, x: jax.Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True) -> jax.Array:
        """flax.linen.avg_pool: lax.reduce_window(x, 0, lax.add) (NHWC inside) divided by the
        window size (count_include_pad=True) or by the same reduce_window of ones over
        (1, H, W, 1) (False). No ceil_mode."""
        if ceil_mode:
            raise Unsupported("flax/lax pooling has no ceil_mode (ceil_mode=False)")
        window, strides, pads = _window(kernel_size, stride, padding)
        xt = jnp.transpose(x, (0, 2, 3, 1))
        y = lax.reduce_window(xt, 0.0, lax.add, window, strides, pads)
        if count_include_pad:
            y = y / np.prod(window)
        else:
            ones = jnp.ones((1, *xt.shape[1:3], 1), dtype=xt.dtype)
            y = y / lax.reduce_window(ones, 0.0, lax.add, window, strides, pads)
        return jnp.transpose(y, (0, 3, 1, 2))

    @_jit()
    def global_avg_pool2d(self, x: jax.Array) -> jax.Array:
        """jnp.mean over H and W (what flax models write: jnp.mean(x, axis=(1, 2)) on NHWC)."""
        return jnp.mean(x, axis=(2, 3))

    @_jit()
    def flatten(self, x: jax.Array) -> jax.Array:
        return jnp.reshape(x, (x.shape[0], -1))

    @_jit("training", "momentum_convention", "unbiased_running_var", "variance")
    def batch_norm(self, x: jax.Array, weight: jax.Array | None, bias: jax.Array | None,
                   running_mean: jax.Array, running_var: jax.Array, training: bool = True,
                   momentum: float = 0.1, eps: float = 1e-5, momentum_convention: str = "torch",
                   unbiased_running_var: bool = True, variance: str = "two_pass"
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """flax.linen.BatchNorm's algorithm without flax, channel axis 1. Statistics in at
        least float32 (force_float32_reductions): mean = E[x] over every axis but 1, var =
        max(0, E[x^2] - mean^2) (variance="fast": use_fast_variance=True, flax's default) or
        E[(x - mean)^2] ("two_pass": use_fast_variance=False); y = (x - mean) *
        (rsqrt(var + eps) * weight) + bias, in x's dtype; r <- m r + (1 - m) stat with the
        biased variance. Eval: the running statistics normalise and come back unchanged. The
        defaults are the oracle's; flax's own (momentum_convention="flax",
        unbiased_running_var=False, variance="fast") are declared in ``conventions``.

        The fast variance cancels catastrophically for inputs whose mean is large against
        their spread (flax#1491): a known divergence of flax's default."""
        if momentum_convention != "flax":
            raise Unsupported(f"flax BatchNorm updates r <- m r + (1 - m) stat "
                              f"(momentum_convention='flax'), not {momentum_convention!r}")
        if unbiased_running_var:
            raise Unsupported("flax BatchNorm keeps the biased running variance "
                              "(unbiased_running_var=False)")
        if variance not in ("fast", "two_pass"):
            raise Unsupported(f"flax BatchNorm has no variance {variance!r}")
        stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
        axes = tuple(i for i in range(x.ndim) if i != 1)
        if training:
            xs = jnp.asarray(x, stat_dtype)
            mean = jnp.mean(xs, axes)
            if variance == "fast":
                var = jnp.maximum(0.0, jnp.mean(lax.square(xs), axes) - lax.square(mean))
            else:
                var = jnp.mean(lax.square(xs - jnp.expand_dims(mean, axes)), axes)
            new_mean = (momentum * jnp.asarray(running_mean, stat_dtype)
                        + (1 - momentum) * mean).astype(running_mean.dtype)
            new_var = (momentum * jnp.asarray(running_var, stat_dtype)
                       + (1 - momentum) * var).astype(running_var.dtype)
        else:
            mean = jnp.asarray(running_mean, stat_dtype)
            var = jnp.asarray(running_var, stat_dtype)
            new_mean, new_var = running_mean, running_var
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        y = x - jnp.reshape(mean, shape)
        mul = lax.rsqrt(jnp.reshape(var, shape) + eps)
        if weight is not None:
            mul = mul * jnp.reshape(weight, shape)
        y = y * mul
        if bias is not None:
            y = y + jnp.reshape(bias, shape)
        return jnp.asarray(y, x.dtype), new_mean, new_var

    # -- recurrent cells and embedding: flax.linen's modules -------------------------------
    # The oracle's layout is PyTorch's: w_ih (G H, I) and w_hh (G H, H) with the gates
    # stacked (LSTM i, f, g, o; GRU r, z, n), and two biases b_ih, b_hh (G H,). flax.linen
    # keeps one Dense per gate and side, named by side and gate ('ii', 'hf', 'in', 'hn',
    # ...), each kernel (in, out), so a gate's kernel is its block of w_ih or w_hh
    # transposed; its gates have the same order and formulas (flax/linen/recurrent.py,
    # checked against flax 0.12). Its biases: SimpleCell has one, on the input Dense 'i';
    # LSTMCell one per gate on the hidden side ('hi', 'hf', 'hg', 'ho'); GRUCell one per
    # gate on the input side ('ir', 'iz', 'in') and b_hn on 'hn', inside the reset gate.
    # Wherever two of the oracle's biases are summed into one pre-activation, flax's bias
    # is their sum (b_ih + b_hh, computed in the call's dtype inside the trace, so both get
    # its gradient); GRU's b_hn is flax's 'hn' bias. An absent bias is a zero one.
    @_jit()
    def rnn_cell(self, x: jax.Array, h: jax.Array, w_ih: jax.Array, w_hh: jax.Array,
                 b_ih: jax.Array | None = None, b_hh: jax.Array | None = None,
                 nonlinearity: str = "tanh") -> jax.Array:
        """flax.linen.SimpleCell(activation_fn=jnp.tanh (its default) or jax.nn.relu)."""
        nn = _linen()
        act = {"tanh": jnp.tanh, "relu": jax.nn.relu}.get(nonlinearity)
        if act is None:
            raise Unsupported(f"no SimpleCell activation for nonlinearity {nonlinearity!r}")
        params = {"i": _dense(w_ih, _bias_sum(b_ih, b_hh, w_hh)), "h": _dense(w_hh)}
        new, _ = nn.SimpleCell(features=w_hh.shape[1], activation_fn=act).apply(
            {"params": params}, h, x)
        return new

    @_jit()
    def lstm_cell(self, x: jax.Array, h: jax.Array, c: jax.Array, w_ih: jax.Array,
                  w_hh: jax.Array, b_ih: jax.Array | None = None, b_hh: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array]:
        """flax.linen.LSTMCell: carry (c, h) -> ((c', h'), h'), returned as (h', c')."""
        nn = _linen()
        hid = w_hh.shape[1]
        b = _bias_sum(b_ih, b_hh, w_hh)
        params = {}
        for k, gate in enumerate("ifgo"):
            block = slice(k * hid, (k + 1) * hid)
            params["i" + gate] = _dense(w_ih[block])
            params["h" + gate] = _dense(w_hh[block], b[block])
        (c_new, h_new), _ = nn.LSTMCell(features=hid).apply({"params": params}, (c, h), x)
        return h_new, c_new

    @_jit()
    def gru_cell(self, x: jax.Array, h: jax.Array, w_ih: jax.Array, w_hh: jax.Array,
                 b_ih: jax.Array | None = None, b_hh: jax.Array | None = None,
                 reset_after: bool = True) -> jax.Array:
        """flax.linen.GRUCell: the reset gate after the hidden matmul (reset_after=True) only."""
        if not reset_after:
            raise Unsupported("flax.linen.GRUCell applies the reset gate after the hidden "
                              "matmul, r (W_hn h + b_hn) (reset_after=True); it has no "
                              "reset_after=False")
        nn = _linen()
        hid = w_hh.shape[1]
        zero = jnp.zeros(w_hh.shape[0], dtype=w_hh.dtype)
        b_i = zero if b_ih is None else b_ih
        b_h = zero if b_hh is None else b_hh
        r, z, n = (slice(k * hid, (k + 1) * hid) for k in range(3))
        params = {"ir": _dense(w_ih[r], b_i[r] + b_h[r]), "iz": _dense(w_ih[z], b_i[z] + b_h[z]),
                  "in": _dense(w_ih[n], b_i[n]), "hr": _dense(w_hh[r]), "hz": _dense(w_hh[z]),
                  "hn": _dense(w_hh[n], b_h[n])}
        new, _ = nn.GRUCell(features=hid).apply({"params": params}, h, x)
        return new

    @_jit()
    def embedding(self, weight: jax.Array, ids: jax.Array, padding_idx: int | None = None
                  ) -> jax.Array:
        """flax.linen.Embed (jnp.take along the rows; its VJP a scatter-add). No padding_idx
        (a lacked argument)."""
        if padding_idx is not None:
            raise Unsupported(f"flax.linen.Embed has no padding_idx (got {padding_idx})")
        nn = _linen()
        return nn.Embed(num_embeddings=weight.shape[0], features=weight.shape[1]).apply(
            {"params": {"embedding": weight}}, ids)

    # -- optimizers -----------------------------------------------------------------------
    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """An optax optimizer behind the oracle's interface and hyperparameter names (the
        oracle's defaults apply). A value optax cannot express raises Unsupported.

        On concrete arrays optax runs eagerly, as before, but on the parameters, gradients and
        the state's parameter-shaped buffers packed into one vector per dtype, zero-padded to
        a power-of-two length (_Packing), and cut back to their shapes after each call: these
        optimizers are elementwise, so every element is computed as in its own array, one
        dispatch per primitive serves every parameter, and a few padded lengths serve every
        network instead of every primitive of the update compiling again for each new shape.
        The state keeps the parameters' shapes, so a caller may also run update inside its
        own jax.jit (traced arrays run as they are)."""
        tx = _OPTAX[name](**O.hyperparameters(name, **hyper))

        def init(params: list[jax.Array]) -> Any:
            if _any_traced(params):
                return tx.init(list(params))
            packing = _Packing(params, self._device)
            return _param_lists(tx.init(packing.pack(params)), len(packing.dtypes),
                                packing.unpack)

        def update(grads: list[jax.Array], state: Any, params: list[jax.Array]
                   ) -> tuple[list[jax.Array], Any]:
            if _any_traced([*grads, *params]):  # inside the caller's jit: as it is
                updates, state = tx.update(list(grads), state, list(params))
                return list(optax.apply_updates(list(params), updates)), state
            packing = _Packing(params, self._device)
            packed = packing.pack(params)
            state = _param_lists(state, len(params), packing.pack)
            updates, state = tx.update(packing.pack(grads), state, packed)
            new = packing.unpack(optax.apply_updates(packed, updates))
            return new, _param_lists(state, len(packing.dtypes), packing.unpack)

        return Optimizer(init, update)

    def _pad(self, arrays: Sequence[jax.Array]) -> tuple[list[jax.Array], list[tuple]]:
        """Each array flattened and zero-padded to _bucket(size) on the host (no compilation
        per shape), with the shapes to undo it."""
        out, shapes = [], []
        for a in arrays:
            h = np.asarray(a)
            flat = np.zeros(_bucket(h.size), dtype=h.dtype)
            flat[:h.size] = h.ravel()
            out.append(jax.device_put(flat, self._device))
            shapes.append(h.shape)
        return out, shapes

    def _unpad(self, arrays: Sequence[jax.Array], shapes: Sequence[tuple]) -> list[jax.Array]:
        return [jax.device_put(np.asarray(a)[:int(np.prod(s))].reshape(s), self._device)
                for a, s in zip(arrays, shapes, strict=True)]

    # -- architectures --------------------------------------------------------------------
    def network_forward(self, arch: Any, params: Sequence[Any], state: Sequence[Any], x: Any,
                        training: bool = False, bn: dict[str, Any] | None = None
                        ) -> tuple[Any, list]:
        """The base composition as one jitted function per architecture, mode and batch-norm
        conventions (as a flax model's apply runs under jax.jit)."""
        def make() -> Callable:
            return lambda p, s, xs: compose.forward(self, arch, p, s, xs, training, bn)
        fn = _COMPILED.get((id(self), "network_forward", arch, training, _frozen(bn)), make)
        return fn(list(params), list(state), x)

    def network_loss_and_grads(self, arch: Any, params: Sequence[Any], state: Sequence[Any],
                               x: Any, target: Any, bn: dict[str, Any] | None = None
                               ) -> tuple[Any, list[Any], list[Any]]:
        """The base composition (jax.value_and_grad through network_forward) as one jitted
        function per architecture and batch-norm conventions."""
        def make() -> Callable:
            return lambda p, s, xs, t: compose.loss_and_grads(self, arch, p, s, xs, t, bn)
        fn = _COMPILED.get((id(self), "network_loss_and_grads", arch, _frozen(bn)), make)
        return fn(list(params), list(state), x, target)

    def train_network(self, arch: Any, params: Sequence[Any], state: Sequence[Any],
                      x: jax.Array, target: jax.Array, optimizer: Optimizer,
                      batches: Sequence[np.ndarray], bn: dict[str, Any] | None = None
                      ) -> tuple[list[Any], list[list[Any]], list[float]]:
        """The base composition, then a block on the final parameters (JAX dispatches
        asynchronously and synchronize() cannot wait for work it is not handed)."""
        final, states, history = super().train_network(arch, params, state, x, target,
                                                       optimizer, batches, bn)
        return jax.block_until_ready(final), states, history


# -- flax.linen -----------------------------------------------------------------------------
def _linen() -> Any:
    """flax.linen, imported when a recurrent cell or the embedding is first called: without
    flax (the jax extra installs it) those components are unsupported, the rest runs."""
    try:
        import flax.linen as nn
    except ImportError as exc:
        raise UnsupportedComponent(f"flax is not installed ({exc}): pip install flax") from exc
    return nn


def _dense(w: jax.Array, b: jax.Array | None = None) -> dict[str, jax.Array]:
    """A flax Dense's parameters from a (out, in) block of the oracle's weights."""
    return {"kernel": w.T} if b is None else {"kernel": w.T, "bias": b}


def _bias_sum(b_ih: jax.Array | None, b_hh: jax.Array | None, w_hh: jax.Array) -> jax.Array:
    """b_ih + b_hh, the one bias flax keeps where both sit outside any gate (absent: 0)."""
    if b_ih is None and b_hh is None:
        return jnp.zeros(w_hh.shape[0], dtype=w_hh.dtype)
    if b_ih is None or b_hh is None:
        return b_ih if b_hh is None else b_hh
    return b_ih + b_hh


# -- convolution and pooling arguments -----------------------------------------------------
def _lax_padding(padding: Any, ndim: int) -> str | list[tuple[int, int]]:
    """'SAME' / 'VALID' for lax, or explicit (low, high) pairs per spatial axis."""
    pad = conv_padding(padding, ndim)
    return pad.upper() if isinstance(pad, str) else list(pad)


def _window(kernel_size: Any, stride: Any, padding: Any
            ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
    """reduce_window's NHWC window, strides (stride None is the kernel) and padding pairs."""
    kernel = as_tuple(kernel_size, 2, "kernel_size")
    strides = kernel if stride is None else as_tuple(stride, 2, "stride")
    ph, pw = as_tuple(padding, 2, "padding")
    return (1, *kernel, 1), (1, *strides, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0))


# -- optax optimizers under the oracle's hyperparameter names ------------------------------
def _param_lists(state: Any, n: int, fn: Callable[[list], list]) -> Any:
    """The optax state with ``fn`` applied to each of its parameter-shaped buffers: the lists
    of ``n`` arrays that mirror the parameter list (mu, nu, trace, ...)."""
    def is_params(x: Any) -> bool:
        return isinstance(x, list) and len(x) == n and all(
            isinstance(a, jax.Array) for a in x)
    return jax.tree.map(lambda x: fn(x) if is_params(x) else x, state, is_leaf=is_params)


class _Packing:
    """Arrays flattened and concatenated on the host into one vector per dtype (in order of
    first appearance), zero-padded to _bucket(total length); unpack cuts them back."""

    def __init__(self, arrays: Sequence[Any], device: Any) -> None:
        hosts = [np.asarray(a) for a in arrays]
        self.dtypes = list(dict.fromkeys(h.dtype for h in hosts))
        self.shapes = [h.shape for h in hosts]
        self.groups = [self.dtypes.index(h.dtype) for h in hosts]
        self.device = device

    def pack(self, arrays: Sequence[Any]) -> list[jax.Array]:
        hosts = [np.asarray(a).ravel() for a in arrays]
        out = []
        for g, dtype in enumerate(self.dtypes):
            parts = [h for h, k in zip(hosts, self.groups, strict=True) if k == g]
            total = sum(h.size for h in parts)
            flat = np.zeros(_bucket(total), dtype=dtype)
            flat[:total] = np.concatenate(parts)
            out.append(jax.device_put(flat, self.device))
        return out

    def unpack(self, packed: Sequence[Any]) -> list[jax.Array]:
        hosts, offsets, out = [np.asarray(p) for p in packed], [0] * len(packed), []
        for shape, g in zip(self.shapes, self.groups, strict=True):
            size = int(np.prod(shape))
            out.append(jax.device_put(hosts[g][offsets[g]:offsets[g] + size].reshape(shape),
                                      self.device))
            offsets[g] += size
        return out


def _any_traced(arrays: Sequence[Any]) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _bucket(size: int) -> int:
    """The padded length of ``size`` elements: a power of two, at least 16."""
    return max(16, 1 << (max(size, 1) - 1).bit_length())


def _with_l2(weight_decay: float, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """L2 regularisation as optax writes it: add_decayed_weights before the optimizer."""
    if weight_decay == 0.0:
        return tx
    return optax.chain(optax.add_decayed_weights(weight_decay), tx)


def _l2_only(what: str, weight_decay: float, weight_decay_mode: str) -> None:
    # with no decay both modes are the same optimizer
    if weight_decay_mode != "l2" and weight_decay:
        raise Unsupported(f"this adapter chains optax.add_decayed_weights before {what} "
                          f"(weight_decay_mode='l2'), not {weight_decay_mode!r}")


def _sgd(lr, momentum, dampening, nesterov, weight_decay, dampen_first_step, weight_decay_mode):
    _l2_only("optax.sgd", weight_decay, weight_decay_mode)
    if dampening != 0.0:
        raise Unsupported(f"optax.sgd has no dampening (got dampening={dampening})")
    # With dampening 0 both dampen_first_step conventions give b_1 = g, as optax's trace does.
    del dampen_first_step
    return _with_l2(weight_decay, optax.sgd(lr, momentum=momentum or None, nesterov=nesterov))


def _adam_core(lr, b1, b2, eps, eps_root, amsgrad, eps_placement="corrected"):
    if eps_placement != "corrected" and eps:
        raise Unsupported(f"optax.adam adds eps to sqrt(v_hat) (eps_placement='corrected'), "
                          f"not {eps_placement!r}")
    if amsgrad is None:
        return optax.adam(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
    if amsgrad == "optax":
        return optax.amsgrad(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
    raise Unsupported(f"optax has no AMSGrad variant {amsgrad!r} (its amsgrad keeps the "
                      "running max of the bias-corrected v_hat: amsgrad='optax')")


def _adamw(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement):
    _adam_core(lr, b1, b2, eps, eps_root, amsgrad, eps_placement)  # Unsupported values raise
    if amsgrad is None:
        return optax.adamw(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                           weight_decay=weight_decay)
    # optax has no adamw(amsgrad=...): the chain optax.adamw is made of, with
    # scale_by_amsgrad in place of scale_by_adam.
    return optax.chain(optax.scale_by_amsgrad(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
                       optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(lr))


def _adam(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement, weight_decay_mode):
    if weight_decay_mode == "decoupled":  # optax.adamw's form
        return _adamw(lr, b1, b2, eps, eps_root, weight_decay, amsgrad, eps_placement)
    return _with_l2(weight_decay, _adam_core(lr, b1, b2, eps, eps_root, amsgrad, eps_placement))


def _rmsprop(lr, alpha, eps, weight_decay, momentum, centered, eps_in_sqrt, initial_scale,
             weight_decay_mode):
    _l2_only("optax.rmsprop", weight_decay, weight_decay_mode)
    # optax scales by -lr before its momentum trace: t <- mu t - lr g / d, which is -lr times
    # the oracle's (PyTorch's) b <- mu b + g / d for a constant lr.
    return _with_l2(weight_decay, optax.rmsprop(
        lr, decay=alpha, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt,
        centered=centered, momentum=momentum or None))


def _adagrad(lr, eps, initial_accumulator_value, lr_decay, weight_decay, eps_in_sqrt,
             weight_decay_mode):
    _l2_only("optax.adagrad", weight_decay, weight_decay_mode)
    if not eps_in_sqrt:
        raise Unsupported("optax.adagrad puts eps inside the square root (eps_in_sqrt=True)")
    if lr_decay != 0.0:
        raise Unsupported(f"optax.adagrad has no lr_decay (got {lr_decay})")
    return _with_l2(weight_decay, optax.adagrad(
        lr, initial_accumulator_value=initial_accumulator_value, eps=eps))


_OPTAX: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw, "rmsprop": _rmsprop, "adagrad": _adagrad,
}
