"""JAX with everything under jax.jit as a backend: JaxBackend, with what it runs eagerly jitted.

JaxBackend (backends/jax_backend.py) already runs most components, their VJPs, the
architectures' forward and gradients, the sequence layers, the language model's, GAN's, VAE's
and denoiser's losses and gradients, clipping, the schedulers, augmentations and
initialisers under jax.jit (backends.jax_compiled.COMPILED). What it runs eagerly (op by op)
runs jitted here, cached in COMPILED the same way (per configuration; jax.jit per shapes):

- the elementwise activations (sigmoid, tanh, relu, leaky_relu, elu, gelu, silu, softplus),
  eager there on host-padded power-of-two lengths, and their VJPs (the padded generic vjp
  there), here jitted per shape like every other component (beta and threshold, on which
  softplus branches, are static);
- dropout and dropout2d (flax.linen.Dropout, rate static as in a flax module, the seed
  traced: jax.random.key(seed) inside the trace gives the key of an eager key(seed)) and the
  L1 / L2 penalties, and their VJPs (``regularization_vjp``);
- the optax updates (init and update jitted per optimizer and hyperparameters, on the
  parameters' own shapes, no host packing);
- a training step of the architectures: loss, gradients and the optimizer update as one
  jitted function per architecture, batch-norm conventions and optimizer;
- the generic ``vjp`` and ``value_and_grad_aux`` when called outside a trace (a fresh
  jax.jit per call: an arbitrary function has no configuration to cache it by).

Host-side still, as any JAX program's: the Python loops of the training runs (each step a
jitted call), the row gathers of mini-batches (``take``), flax's EarlyStopping (Python
arithmetic, math.isinf: no JAX computation) and the inference timesteps (NumPy).

Every XLA compilation (lowering and compiling, from jax.monitoring) is sent to
backends.compile_events: the property plugin notes it in the running test's record, shown in
the certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from backends import compile_events, compose
from backends.jax_backend import JaxBackend, _any_traced, _frozen, _jit, _split
from backends.jax_compiled import COMPILED
from reference.optimizers import Optimizer

_LOWERING = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def _note_compile(event: str, secs: float, **kwargs: Any) -> None:  # noqa: ARG001
    """A jax.monitoring listener: one compilation per XLA backend compile, the lowering to
    StableHLO before it added to its seconds (tracing alone, as jax.eval_shape does, is not
    a compilation)."""
    if event == _BACKEND_COMPILE:
        compile_events.emit(secs)
    elif event == _LOWERING:
        compile_events.emit(secs, count=0)


jax.monitoring.register_event_duration_secs_listener(_note_compile)


def _jitted(name: str, *static: str) -> Callable:
    """JaxBackend's eager elementwise ``name`` under _jit (``static``: the floats it branches
    on), its VJP then the jitted one of JaxBackend.component_vjp."""
    fn = _jit(*static)(getattr(JaxBackend, name))
    fn.elementwise = False  # type: ignore[attr-defined]  # functools.wraps copied the marker
    return fn


class JaxJitBackend(JaxBackend):
    """JaxBackend with every component, VJP, optimizer update and training step under
    jax.jit; devices as JaxBackend's ('jax-jit-cpu', 'jax-jit-gpu')."""

    name = "jax-jit"

    sigmoid = _jitted("sigmoid")
    tanh = _jitted("tanh")
    relu = _jitted("relu")
    leaky_relu = _jitted("leaky_relu")
    elu = _jitted("elu")
    gelu = _jitted("gelu")
    silu = _jitted("silu")
    softplus = _jitted("softplus", "beta", "threshold")

    # -- autodiff -------------------------------------------------------------------------
    def vjp(self, f: Callable[..., tuple[Any, ...]], primals: Sequence[Any],
            cotangents: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """JaxBackend.vjp under a fresh jax.jit (as it is inside a trace)."""
        if _any_traced([*primals, *cotangents]):
            return super().vjp(f, primals, cotangents)
        return jax.jit(lambda p, c: JaxBackend.vjp(self, f, p, c))(list(primals),
                                                                   list(cotangents))

    def value_and_grad_aux(self, f: Callable[[list[Any]], tuple[Any, Any]], params: Sequence[Any]
                           ) -> tuple[Any, list[Any], Any]:
        """JaxBackend.value_and_grad_aux under a fresh jax.jit (as it is inside a trace)."""
        if _any_traced(params):
            return super().value_and_grad_aux(f, params)
        return jax.jit(lambda p: JaxBackend.value_and_grad_aux(self, f, p))(list(params))

    # -- regularization -------------------------------------------------------------------
    @_jit("p")
    def _dropout(self, x: jax.Array, p: float, training: bool, seed: jax.Array,
                 broadcast_dims: tuple[int, ...] = ()) -> jax.Array:
        """flax.linen.Dropout(p, broadcast_dims, deterministic=not training), key(seed)."""
        layer = nn.Dropout(rate=p, broadcast_dims=broadcast_dims, deterministic=not training)
        return layer.apply({}, x, rngs={"dropout": jax.random.key(seed)})

    def dropout(self, x, p, training, seed):
        """JaxBackend's flax Dropout, jitted per rate and mode (the seed traced)."""
        return self._dropout(x, p, training, jnp.asarray(seed))

    def dropout2d(self, x, p, training, seed):
        """JaxBackend's flax channel Dropout (broadcast_dims=(2, 3)), jitted as dropout."""
        if x.ndim != 4:
            raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
        return self._dropout(x, p, training, jnp.asarray(seed), (2, 3))

    l1_penalty = _jit()(JaxBackend.l1_penalty)
    l2_penalty = _jit()(JaxBackend.l2_penalty)

    def regularization_vjp(self, name: str, x: Any, cotangent: Any, **kwargs: Any
                           ) -> tuple[Any, Any]:
        """(name(x, **kwargs), J^T cotangent): jax.vjp and its pullback as one jitted function
        per component and configuration (dropout's rate static, its seed traced)."""
        if "seed" in kwargs:
            kwargs = {**kwargs, "seed": jnp.asarray(kwargs["seed"])}
        config, dynamic = _split(kwargs, ("p",))

        def make() -> Callable:
            fn = getattr(self, name)

            def run(x_, c_, dyn):
                (out,), (dx,) = JaxBackend.vjp(
                    self, lambda a: (fn(a, **dict(config), **dyn),), [x_], [c_])
                return out, dx
            return run

        run = COMPILED.get((id(self), "regularization_vjp", name, config, tuple(dynamic)), make)
        return run(x, cotangent, dynamic)

    # -- optimizers and training ----------------------------------------------------------
    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """JaxBackend's optax optimizer with init and update jitted per optimizer and
        hyperparameters (constants of the compiled update, as in a jitted training step),
        on the parameters' own shapes. The same (name, hyperparameters) gives the same
        functions, so a training step compiled with one serves the next."""
        eager = super().optimizer(name, **hyper)  # refuses what optax cannot express
        key = (id(self), "optimizer", name, _frozen(hyper))
        return Optimizer(COMPILED.get((*key, "init"), lambda: eager.init),
                         COMPILED.get((*key, "update"), lambda: eager.update))

    def train_network(self, arch: Any, params: Sequence[Any], state: Sequence[Any],
                      x: jax.Array, target: jax.Array, optimizer: Optimizer,
                      batches: Sequence[np.ndarray], bn: dict[str, Any] | None = None
                      ) -> tuple[list[Any], list[list[Any]], list[float]]:
        """compose.train with each step (loss, gradients, optimizer update) one jitted
        function per architecture, batch-norm conventions and optimizer."""
        def make() -> Callable:
            def step(p, s, opt_state, xb, tb):
                value, grads, s = compose.loss_and_grads(self, arch, p, s, xb, tb, bn)
                p, opt_state = optimizer.update(grads, opt_state, p)
                return value, p, s, opt_state
            return step

        step = COMPILED.get((id(self), "train_step", arch, _frozen(bn), optimizer), make)
        p, s = list(params), list(state)
        opt_state = optimizer.init(p)
        states, history = [], []
        for idx in batches:
            value, p, s, opt_state = step(p, s, opt_state, self.take(x, idx),
                                          self.take(target, idx))
            history.append(float(self.to_numpy(value)))
            states.append(list(s))
        return jax.block_until_ready(list(p)), states, history

