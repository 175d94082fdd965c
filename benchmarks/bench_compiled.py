"""asv benchmarks: the training step of every architecture the other bench_* modules train,
under the compiled backends, float64, one thread pinned to one core (benchmarks/training.py's
settings and per-process runner cache).

Backends: 'torch-compile' (backends/torch_compile.py: every component, the architectures'
loss and the optimizer steps under torch.compile, Inductor) and 'jax-jit'
(backends/jax_jit.py: everything JaxBackend runs eagerly jitted too, the optimizer update
included). Architectures, with the runners (and sizes, optimizers, steps per timed call) of
the modules that train them eagerly:

- ``mlp``, ``lenet``, ``resnet``: training.TrainRunner (bench_mlp with SGD momentum,
  bench_cnn): the backend's ``network_loss_and_grads`` and its optimizer's ``update``.
- ``char_lm``: bench_rnn's LM with Adam, through the backend's own ``lm_loss_and_grads``,
  ``clip_by_global_norm`` and optimizer (bench_rnn._BackendLM).
- ``gan``, ``vae``, ``denoiser``: bench_generative's runners (the backend's ``train_gan``,
  ``train_vae``, ``train_denoiser``), with each optimizer's state carried from one call to
  the next (``_carried``): those methods initialise their optimizers per call, and
  torch-compile compiles an optimizer's step per torch.optim instance, so without it every
  timed call would compile the step again (3 graphs per optimizer).

What each compiles, as counted by backends.compile_events: torch-compile the network's loss
as one graph (its backward compiled by AOTAutograd), each component of the LM and of the
generative models as its own graph (the LSTM layer stays eager: Dynamo does not trace
nn.LSTM), and each optimizer's step; jax-jit the network's loss and gradients, the LM's, each
generative loss and gradients, the clipping and the optimizer update, one jitted function
each. After the build (one warm-up call) a second call is warmed up too: for most of them
the second call still compiled one graph more (its inputs are the first call's outputs);
after it every architecture's calls compiled nothing here (tests/test_benchmarks.py checks
the timed call of the MLP).

- ``time_step``: the module's steps per timed call (mlp 20, lenet / resnet / char_lm 5,
  gan / vae / denoiser 3), device synchronised (torch: ``synchronize``; JAX:
  ``jax.block_until_ready`` on the runner's arrays).
- ``peakmem_step``: peak RSS after training steps.
- ``track_compile_seconds``: the seconds of every compilation that building and warming up
  the runner cost (the sum of backends.compile_events; torch-compile: the wall time of each
  region that compiled, the compiled code's first run included; jax-jit: lowering and XLA
  compilation), cold: torch-compile builds in an empty temporary Inductor cache directory
  (FX graph, AOTAutograd and kernel caches empty, in-memory caches cleared), jax-jit with its
  persistent compilation cache off (TOUCHSTONE_JAX_CACHE=off, read when
  backends/jax_backend.py is imported: in an asv process, by this setup). Every setup builds
  cold, so each benchmark process compiles everything.

Run as a script for the steady step and compile time of each architecture, compiled and
eager (the torch runner; jax's, itself jitted), without asv:
``python -m benchmarks.bench_compiled [mlp|lenet|resnet|char_lm|gan|vae|denoiser ...]``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from backends import compile_events
from benchmarks import bench_cnn, bench_generative, bench_mlp, bench_rnn
from benchmarks.training import DEVICES, REPEAT, cached_runner, median_seconds
from reference.optimizers import Optimizer

BACKENDS = ("torch-compile", "jax-jit")
EAGER = {"torch-compile": "torch", "jax-jit": "jax"}  # the script's comparison
#: architecture -> (runner of (backend, device), steps per timed call)
ARCHITECTURES: dict[str, tuple[Callable[[str, str], Any], int]] = {
    "mlp": (lambda b, d: bench_mlp._runner(b, "sgd", d), bench_mlp.STEPS),
    "lenet": (lambda b, d: bench_cnn._runner("train", b, "lenet", d), bench_cnn.STEPS),
    "resnet": (lambda b, d: bench_cnn._runner("train", b, "resnet", d), bench_cnn.STEPS),
    "char_lm": (lambda b, d: bench_rnn._runner("lm", b, d, bench_rnn.RATIO_OPTIMIZER),
                bench_rnn.STEPS),
    **{work: (lambda b, d, w=work: _generative(w, b, d), bench_generative.STEPS)
       for work in bench_generative.WORKS},
}
ROUNDS = 7  # the script: median of ROUNDS timed calls

_COMPILES: dict[tuple[str, str, str], tuple[float, int]] = {}


def _carried(opt: Optimizer) -> Optimizer:
    """``opt`` whose ``init`` returns the state its last ``update`` returned (the first
    ``init``'s before any update): the state is carried across train_* calls."""
    held: list[Any] = []

    def init(params: list) -> Any:
        if not held:
            held.append(opt.init(params))
        return held[0]

    def update(grads: list, state: Any, params: list) -> tuple[list, Any]:
        params, held[0] = opt.update(grads, state, params)
        return params, held[0]

    return Optimizer(init, update)


def _generative(work: str, backend: str, device: str) -> Any:
    """bench_generative's runner of ``work``; for a compiled backend its own instance, the
    optimizers carried across calls."""
    if backend not in BACKENDS:
        return bench_generative._runner(work, backend, device)

    def build(bk):
        runner = bench_generative._BUILD[work](bk)
        for name in ("opt", "g_opt", "d_opt"):
            if hasattr(runner, name):
                setattr(runner, name, _carried(getattr(runner, name)))
        return runner

    return cached_runner(("compiled", work, backend, device), backend, device, build, 1)


def synchronize(runner: Any) -> None:
    """Wait for the runner's device work: its ``run`` synchronises a torch device; JAX
    dispatches asynchronously, so block on every array a JAX backend's runner holds."""
    bk = getattr(runner, "bk", None)
    if bk is not None and bk.name.startswith("jax"):
        import jax

        jax.block_until_ready(vars(runner))


@contextlib.contextmanager
def _cold(backend: str) -> Iterator[None]:
    """No compilation read back from a disk cache: torch-compile in an empty temporary
    Inductor cache directory (FX graph, AOTAutograd and kernel caches; Inductor's in-memory
    caches cleared on entry and exit), removed afterwards; JAX with its persistent
    compilation cache off (read when backends/jax_backend.py is first imported; if it was
    imported earlier with the cache on, the cache stays on)."""
    if backend == "torch-compile":
        from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

        with tempfile.TemporaryDirectory(prefix="inductor-cold-") as path, \
                temporary_cache_dir(path):
            yield
        return
    os.environ["TOUCHSTONE_JAX_CACHE"] = "off"
    yield


def runner(backend: str, architecture: str, device: str) -> Any:
    """The warmed-up runner; built the first time in this process cold, with its
    compilations (seconds, count) kept for ``compile_stats``. A backend unavailable here
    raises NotImplementedError (skipped)."""
    build, steps = ARCHITECTURES[architecture]
    key = (backend, architecture, device)
    if key in _COMPILES:
        return build(backend, device)
    totals = [0.0, 0]

    def note(seconds: float, count: int) -> None:
        totals[0] += seconds
        totals[1] += count

    stop = compile_events.listen(note)
    try:
        with _cold(backend):
            r = build(backend, device)
            r.run(steps)  # a second call: its compilations are the warm-up's too
            synchronize(r)
    finally:
        stop()
    _COMPILES[key] = (totals[0], totals[1])
    return r


def compile_stats(backend: str, architecture: str, device: str) -> tuple[float, int]:
    """(seconds, count) of the compilations that building and warming up the runner cost."""
    runner(backend, architecture, device)
    return _COMPILES[(backend, architecture, device)]


class CompiledTrainStep:
    """A training step of each architecture under each compiled backend, float64: steady
    state (compiled in setup), device synchronised."""

    params = (list(BACKENDS), list(ARCHITECTURES), list(DEVICES))
    param_names = ("backend", "architecture", "device")
    repeat = REPEAT
    rounds = 1  # one process per benchmark and parameters (asv's default 2): each compiles all
    warmup_time = 0.2
    timeout = 600

    def setup(self, backend: str, architecture: str, device: str) -> None:
        self.runner = runner(backend, architecture, device)
        self.steps = ARCHITECTURES[architecture][1]

    def time_step(self, backend: str, architecture: str, device: str) -> None:
        """The module's steps per call (mlp 20, lenet, resnet, char_lm 5, generative 3),
        synchronised; divide by them for one step."""
        self.runner.run(self.steps)
        synchronize(self.runner)

    def peakmem_step(self, backend: str, architecture: str, device: str) -> None:
        self.runner.run(self.steps)
        synchronize(self.runner)

    def track_compile_seconds(self, backend: str, architecture: str, device: str) -> float:
        """Seconds of compilation (cold caches) that building and warming up the runner cost."""
        return compile_stats(backend, architecture, device)[0]

    track_compile_seconds.unit = "seconds"


class _Synchronised:
    """A runner whose ``run`` waits for its device work (for median_seconds)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run(self, steps: int) -> None:
        self.inner.run(steps)
        synchronize(self.inner)


def main(argv: list[str]) -> None:
    """Print, for each architecture named (all by default), the compiled backends' steady
    step (median of ROUNDS calls) next to their eager adapter's, and their cold compile
    seconds and count, on the CPU."""
    for arch in argv or list(ARCHITECTURES):
        steps = ARCHITECTURES[arch][1]
        for backend in BACKENDS:
            try:
                compiled = median_seconds(_Synchronised(runner(backend, arch, "cpu")), steps,
                                          ROUNDS)
            except NotImplementedError as exc:
                print(f"{arch} {backend}: skipped ({exc})")
                continue
            seconds, count = compile_stats(backend, arch, "cpu")
            eager = median_seconds(_Synchronised(ARCHITECTURES[arch][0](EAGER[backend], "cpu")),
                                   steps, ROUNDS)
            print(f"{arch} {backend}: {compiled * 1e3:.2f} ms per step, {EAGER[backend]} "
                  f"{eager * 1e3:.2f} ms; compile {seconds:.1f} s, {count} compilations",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
