"""PyTorch under torch.compile (Inductor on CPU) as a backend: TorchBackend's calls, compiled.

Every registered component (dense, conv2d, the losses, the cells, ...) runs as
``torch.compile(fullgraph=True, dynamic=False)`` of the eager adapter's own method with its
configuration (the non-tensor arguments) bound, one compiled callable per component,
configuration and tensor arguments, cached for the process; Dynamo specialises it per shape
and dtype (a new shape recompiles, a few seconds on CPU). Its VJP (TorchBackend.vjp's
torch.autograd.grad through the compiled forward) runs AOTAutograd's compiled backward. The
architectures' loss is compiled as one graph per architecture and batch-norm conventions,
differentiated the same way, and each optimizer's ``step`` is compiled per optimizer
(without fullgraph: torch.optim breaks the graph around its update on purpose).

Nothing falls back to eager silently: ``fullgraph=True`` makes a graph break an error, and
Dynamo's recompile limits are raised far above what a run compiles, with a hit made an error
(``fail_on_recompile_limit_hit``), so a new shape recompiles instead of running eagerly.
After ``TOUCHSTONE_TORCH_MAXCOMPILES`` (200) compiled graphs the cache, Dynamo's and
Inductor's in-memory code caches are reset between calls, which bounds memory; a failed
compile clears Inductor's at once (they keep its error, and with it the lowered graph).
Each call that compiled sends its seconds and graphs to backends.compile_events (the plugin
notes them in the running test's record, shown in the certificate).

The recurrent cells are the one exception to compiling the eager method whole: it builds
its nn.*Cell on the meta device inside, and Dynamo cannot trace Parameter construction
(``Unsupported: torch.nn.Parameter() constructor``), so the module is built outside the graph
and its forward (torch.func.functional_call with the oracle's weights) compiled.

What stays eager, as TorchBackend runs it: the sequence layers (nn.RNN / LSTM / GRU, which
Dynamo does not trace: ``allow_rnn`` is off), dropout and the random crop (a seeded
torch.Generator under fork_rng), the initialisers and early stopping, and the generic
``vjp`` of an arbitrary function (no configuration to key a compilation on), whose
components are compiled all the same.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch._dynamo
from torch._dynamo.utils import counters
from torch._inductor.utils import clear_inductor_caches

from backends import compile_events, compose
from backends.base import KnownDivergence
from backends.base import frozen as _frozen
from backends.divergences import load as load_divergences
from backends.torch_augment import _functional as _torchvision
from backends.torch_backend import TorchBackend, cell_parts
from reference import network, registry
from reference.optimizers import Optimizer

_LIMIT = 1 << 16  # recompiles of one function (one per configuration and shape)
torch._dynamo.config.recompile_limit = _LIMIT
torch._dynamo.config.accumulated_recompile_limit = _LIMIT
torch._dynamo.config.fail_on_recompile_limit_hit = True
torch._dynamo.config.suppress_errors = False

# pytest 9.1 and later attach their log capture to every logger that does not propagate
# (pytest#14375), torch's structured-trace logger among them: torch then builds each compile's
# trace records and pytest keeps them for the whole test (about 30 a second while a failing
# test shrinks). Nothing reads them unless TORCH_TRACE (or TORCH_COMPILE_DEBUG) asks for one.
if not (os.environ.get("TORCH_TRACE") or os.environ.get("TORCH_COMPILE_DEBUG") == "1"):
    logging.getLogger("torch.__trace").disabled = True

MAX_COMPILES = int(os.environ.get("TOUCHSTONE_TORCH_MAXCOMPILES", "200"))
_CACHE: dict[tuple, Callable] = {}
_DEPTH = [0]  # timed regions open (only the outermost notes its compilations)
_MARK = [0]  # graphs compiled when the cache was last reset


def compilations() -> int:
    """Graphs torch.compile compiled in this process: each through AOTAutograd (its forward,
    and its backward at the first backward call), whether Inductor built it or read it back
    from its on-disk caches (the count does not depend on those caches being on)."""
    return counters["aot_autograd"]["total"]


@contextlib.contextmanager
def timed() -> Iterator[None]:
    """A region whose compilations, if any, are sent to compile_events: their count and the
    region's wall time (the compiled code's one run included)."""
    _DEPTH[0] += 1
    before, start = compilations(), time.perf_counter()
    try:
        yield
    except torch._dynamo.exc.TorchDynamoException:
        # Inductor's in-memory code caches keep a failed compile's future, and through its
        # error's traceback the whole lowering: one per failing example, for the process
        clear_inductor_caches()
        raise
    finally:
        _DEPTH[0] -= 1
        if _DEPTH[0] == 0 and compilations() > before:
            compile_events.emit(time.perf_counter() - start, compilations() - before)


def compiled(key: tuple, make: Callable[[], Callable], fullgraph: bool = True) -> Callable:
    """torch.compile(make(), fullgraph=fullgraph, dynamic=False), once per ``key``. Past
    MAX_COMPILES graphs (outside a graph being traced) the cache, Dynamo's and Inductor's
    in-memory code caches are reset first."""
    if (MAX_COMPILES > 0 and compilations() - _MARK[0] >= MAX_COMPILES
            and not torch.compiler.is_compiling()):
        _CACHE.clear()
        torch._dynamo.reset()
        clear_inductor_caches()
        _MARK[0] = compilations()
    fn = _CACHE.get(key)
    if fn is None:
        fn = _CACHE[key] = torch.compile(make(), fullgraph=fullgraph, dynamic=False)
    return fn


def _component(method: Callable, prepare: Callable[[], Any] | None = None) -> Callable:
    """The eager adapter's component ``method`` compiled per configuration: tensor arguments
    are the compiled function's inputs, every other argument (and the dtype) its key, bound
    into it. Inside another compiled function it is traced as it is. ``prepare`` runs first,
    outside the graph (torchvision's import, which Dynamo cannot trace). Where Dynamo fails,
    the eager method runs once, so that its refusal of the arguments is raised as it is (its
    result is never returned: a graph break stays an error)."""
    signature = inspect.signature(method)
    name = method.__name__

    @functools.wraps(method)
    def inner(self, *args, **kwargs):
        if torch.compiler.is_compiling():
            return method(self, *args, **kwargs)
        if prepare is not None:
            prepare()
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        del given["self"]
        tensors = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
        config = {k: v for k, v in given.items() if k not in tensors}
        dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
        key = (id(self), name, _frozen(config), tuple(tensors), dtype)
        try:
            with timed():
                return compiled(key, lambda: functools.partial(method, self, **config))(**tensors)
        except torch._dynamo.exc.TorchDynamoException:
            # a refusal of the eager method (Unsupported, ValueError) reaches Dynamo as its
            # own error: run it eagerly to raise it as it is; if it runs, Dynamo's error stands
            method(self, *args, **kwargs)
            raise
    return inner


class TorchCompileBackend(TorchBackend):
    """TorchBackend's components, their VJPs, the architectures' loss and the optimizer
    steps under torch.compile (Inductor, fullgraph, static shapes); devices as torch's."""

    name = "torch-compile"
    #: Inductor lays a CPU conv2d's input out channels-last for oneDNN
    conv_input_channels_last = True
    #: torch's, and what Inductor's code adds (backends/divergences/torch_compile.toml)
    known_divergences: tuple[KnownDivergence, ...] = (
        TorchBackend.known_divergences + load_divergences("torch_compile"))

    def versions(self) -> dict[str, str]:
        """TorchBackend's, with the compile mode."""
        return {**super().versions(),
                "compile": "torch.compile(fullgraph=True, dynamic=False), inductor"}

    # -- recurrent cells: the module built outside the graph --------------------------------
    def rnn_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
        """TorchBackend's nn.RNNCell call, compiled (see _cell)."""
        return self._cell(torch.nn.RNNCell, (x, h), w_ih, w_hh, b_ih, b_hh,
                          nonlinearity=nonlinearity)

    def lstm_cell(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        """TorchBackend's nn.LSTMCell call, compiled (see _cell), returning (h', c')."""
        return self._cell(torch.nn.LSTMCell, (x, (h, c)), w_ih, w_hh, b_ih, b_hh)

    def gru_cell(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
        """TorchBackend's nn.GRUCell call, compiled (see _cell); reset_after=False is refused
        by TorchBackend."""
        if not reset_after:
            return super().gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after)
        return self._cell(torch.nn.GRUCell, (x, h), w_ih, w_hh, b_ih, b_hh)

    def _cell(self, cls: type[torch.nn.Module], args: tuple, w_ih: torch.Tensor,
              w_hh: torch.Tensor, b_ih: torch.Tensor | None, b_hh: torch.Tensor | None,
              **kwargs: Any) -> Any:
        """torch.func.functional_call of TorchBackend's meta-device cell module with the
        oracle's weights, compiled per module and dtype. The module is built here, outside the
        graph: Dynamo cannot trace the construction of its Parameters, so TorchBackend's
        method, which builds it, cannot be compiled whole."""
        module, params = cell_parts(cls, w_ih, w_hh, b_ih, b_hh, **kwargs)
        if torch.compiler.is_compiling():
            return torch.func.functional_call(module, params, args)
        fn = compiled((id(self), "cell", module, w_ih.dtype),
                      lambda: lambda p, a: torch.func.functional_call(module, p, a))
        with timed():
            return fn(params, args)

    def component_vjp(self, name: str, primals: Sequence[Any], cotangents: Sequence[Any],
                      **kwargs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """TorchBackend's VJP through the compiled component: AOTAutograd's compiled forward
        and backward (the backward compiles at its first call, timed with the forward)."""
        with timed():
            return super().component_vjp(name, primals, cotangents, **kwargs)

    def network_loss_and_grads(self, arch: network.Architecture, params: Sequence[Any],
                               state: Sequence[Any], x: Any, target: Any,
                               bn: dict[str, Any] | None = None
                               ) -> tuple[Any, list[Any], list[Any]]:
        """The architecture's training-mode loss as one compiled graph per architecture,
        batch-norm conventions and dtype, differentiated by torch.autograd (its compiled
        backward): (loss, gradient of every parameter, new running statistics). Where Dynamo
        fails, the eager adapter runs once, so that its refusal of the arguments is raised as
        it is."""
        def make() -> Callable:
            def loss(p, s, xs, t):
                out, new_state = compose.forward(self, arch, p, s, xs, True, bn)
                return network.loss(self, arch.loss, out, t), new_state
            return loss
        fn = compiled((id(self), "network_loss", arch, _frozen(bn), x.dtype), make)
        try:
            with timed():
                return self.value_and_grad_aux(lambda p: fn(p, list(state), x, target), params)
        except torch._dynamo.exc.TorchDynamoException:
            # as in _component: the eager adapter's refusal (a layer's Unsupported
            # arguments) is raised as it is; if it runs, Dynamo's error stands
            super().network_loss_and_grads(arch, params, state, x, target, bn)
            raise

    def optimizer(self, name: str, **hyper: Any) -> Optimizer:
        """TorchBackend's torch.optim optimizer with its ``step`` compiled per optimizer
        instance, as PyTorch documents it (torch.compile(opt.step)): without fullgraph, since
        torch.optim breaks the graph on purpose before and after the update
        (torch/optim/optimizer.py ``_use_grad``, pytorch#104053); the update is one graph."""
        eager = super().optimizer(name, **hyper)

        def init(params: list[torch.Tensor]) -> dict[str, Any]:
            state = eager.init(params)
            opt = state["optimizer"]
            step = compiled((id(opt), "step"), lambda: opt.step, fullgraph=False)
            state["optimizer"] = _Stepped(opt, step)
            return state

        def update(grads: list[torch.Tensor], state: dict[str, Any],
                   params: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, Any]]:
            with timed():
                return eager.update(grads, state, params)

        return Optimizer(init, update)


class _Stepped:
    """A torch.optim optimizer whose ``step`` is its compiled step."""

    def __init__(self, opt: torch.optim.Optimizer, step: Callable[[], Any]) -> None:
        self.opt, self.step = opt, step


_PREPARE = {"hflip": _torchvision, "rotate": _torchvision, "brightness": _torchvision,
            "resized_crop": _torchvision}
for _name in registry.RECORDS:
    if _name not in vars(TorchCompileBackend) and getattr(TorchBackend, _name, None) is not None:
        setattr(TorchCompileBackend, _name, _component(getattr(TorchBackend, _name),
                                                       _PREPARE.get(_name)))
for _name in ("l1_penalty", "l2_penalty"):
    setattr(TorchCompileBackend, _name, _component(getattr(TorchBackend, _name)))
del _name
