"""Cases of the character-level language model (reference/language_model.py): a model, its
parameters, an initial state and either one batch or a token stream cut into consecutive
TBPTT batches with an optimizer and clipping.

Each draws, as configuration classes (properties/coverage.py):
- ``cell`` (lstm, gru; the GRU's reset_after is the backend's convention) and ``layers``
  (one, stacked: 2);
- ``sizes``: (V, E, H, T, N), one per regime (SMALL three examples in four, REALISTIC: a
  27-character alphabet), so the examples repeat shapes: JAX compiles the model once per
  configuration and shapes (about 2.5 s of CPU each), at most 8 per dtype for both
  properties; shapes are the sequence layers' and components' properties' business;
- ``state``: the initial state 'zeros' (None) or 'drawn';
- training: ``optimizer`` (sgd with or without momentum, adam) and ``clipping`` of the
  global gradient norm: 'none', 'inactive' (max_norm above every step's norm: the clip must
  change nothing) or 'active' (max_norm a fraction of the first step's norm: clipped).

Parameters are PyTorch's initialisation (reference.language_model.init_params) from a drawn
seed, rounded to the dtype; tokens are drawn element by element (seeded above 128), so a
counterexample shrinks to a short stream. Training streams hold N (steps T + 1) tokens, so
batchify and tbptt_batches give ``steps`` full windows of T: one shape per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backends.base import Backend
from properties.coverage import SIZES, stratum
from properties.lm_terms import train_trace
from properties.scoped import note_arguments
from properties.strategies import SEEDED_ABOVE, conventions, seeded_array
from properties.tolerance import round_to
from reference import clipping as Cl
from reference import language_model as LM
from reference.optimizers import make_optimizer

CELLS = LM.CELLS
LAYERS = {"one": 1, "stacked": 2}
STATE = ("zeros", "drawn")
OPTIMIZERS = ("sgd", "adam")
CLIPPING = ("none", "inactive", "active")
#: (V, E, H, T, N) per size regime
SMALL = ((4, 3, 2, 3, 2),)
REALISTIC = ((27, 16, 32, 12, 8),)
MAX_STEPS = 4
#: the configuration classes of the loss-and-gradients property, and of training
CLASSES: dict[str, tuple[str, ...]] = {"cell": CELLS, "layers": tuple(LAYERS),
                                       "sizes": SIZES, "state": STATE}
TRAINING_CLASSES: dict[str, tuple[str, ...]] = {**CLASSES, "optimizer": OPTIMIZERS,
                                                "clipping": CLIPPING}
PARAM_NAMES_TAIL = ("dense.w", "dense.b")


@dataclass
class LMCase:
    """A model, its parameters, the initial state (None: zeros) and ``terms``, the longest
    sum behind one result: a gate's pre-activation max(E, H) + H + 2, a gradient of x or h
    through G H rows, a weight gradient over T N positions, the cross-entropy over V."""

    model: LM.CharLM
    params: list[np.ndarray]
    state: tuple[np.ndarray, ...] | None
    terms: int
    args: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> list[np.ndarray]:
        """The float inputs: every parameter, the initial state if given."""
        return [*self.params, *(self.state or ())]

    def rebuild(self, arrays) -> tuple[list[np.ndarray], tuple[np.ndarray, ...] | None]:
        n = len(self.params)
        return list(arrays[:n]), None if self.state is None else tuple(arrays[n:])

    def param_names(self) -> list[str]:
        return ["embedding", *(f"layer{k}.{w}" for k in range(self.model.layers)
                               for w in ("w_ih", "w_hh", "b_ih", "b_hh")), *PARAM_NAMES_TAIL]

    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.model.cell == "lstm" else ("h",)


@dataclass
class BatchCase(LMCase):
    """One batch: inputs and targets (T, N)."""

    inputs: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.int64))
    targets: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.int64))


@dataclass
class TrainingCase(LMCase):
    """Consecutive TBPTT batches, the optimizer, its hyperparameters and the clipping."""

    batches: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    optimizer: str = "sgd"
    hyper: dict[str, Any] = field(default_factory=dict)
    max_norm: float | None = None
    clip_eps: str = "torch"


def _tokens(data, shape: tuple[int, ...], vocab: int, label: str) -> np.ndarray:
    if int(np.prod(shape)) > SEEDED_ABOVE:
        seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
        return np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int64)
    return data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, vocab - 1)),
                     label=label)


def _model(data, backend: Backend, dtype: str) -> tuple[LMCase, int, int]:
    """(the case's model, parameters, initial state and terms; T; N)."""
    cell = stratum(data, "cell", CELLS)
    layers = LAYERS[stratum(data, "layers", tuple(LAYERS))]
    small = stratum(data, "sizes", SIZES, st.sampled_from(SIZES[:1] * 3 + SIZES[1:])) == "small"
    v, e, h, t, n = data.draw(st.sampled_from(SMALL if small else REALISTIC),
                              label="V, E, H, T, N")
    reset_after = True
    if cell == "gru":
        reset_after = conventions(data, backend, "gru", {"reset_after": True})["reset_after"]
    model = LM.CharLM(v, e, h, layers, cell, reset_after)
    seed = data.draw(st.integers(0, 2**32 - 1), label="init_seed")
    params = [round_to(p, dtype) for p in LM.init_params(model, seed)]
    state = None
    if stratum(data, "state", STATE) == "drawn":
        state = tuple(seeded_array(data.draw, model.state_shape(n), dtype, 0.5)
                      for _ in range(2 if cell == "lstm" else 1))
    terms = max(max(e, h) + h + 2, model.gates * h, t * n, v)
    args = {"cell": cell, "layers": layers, "V": v, "E": e, "H": h, "T": t, "N": n,
            "reset_after": reset_after, "state": "zeros" if state is None else "drawn"}
    return LMCase(model, params, state, terms, args), t, n


def draw_batch(data, backend: Backend, dtype: str) -> BatchCase:
    """A model and one batch (inputs, targets)."""
    base, t, n = _model(data, backend, dtype)
    v = base.model.vocab
    case = BatchCase(**vars(base), inputs=_tokens(data, (t, n), v, "inputs"),
                     targets=_tokens(data, (t, n), v, "targets"))
    note_arguments(case.args)
    return case


def _hyper(data, optimizer: str) -> dict[str, Any]:
    if optimizer == "sgd":
        return {"lr": data.draw(st.sampled_from((0.1, 1.0)) | st.floats(0.01, 2.0), label="lr"),
                "momentum": data.draw(st.sampled_from((0.0, 0.9)), label="momentum")}
    return {"lr": data.draw(st.sampled_from((1e-3, 1e-2)) | st.floats(1e-4, 0.05), label="lr")}


def draw_training(data, backend: Backend, dtype: str) -> TrainingCase:
    """A model, a stream cut into 1 to MAX_STEPS consecutive batches, the optimizer and the
    clipping (max_norm placed against the oracle's unclipped gradient norms)."""
    base, t, n = _model(data, backend, dtype)
    v = base.model.vocab
    steps = data.draw(st.integers(1, MAX_STEPS), label="steps")
    stream = _tokens(data, (n * (steps * t + 1),), v, "stream")
    batches = LM.tbptt_batches(LM.batchify(stream, n), t)
    optimizer = stratum(data, "optimizer", OPTIMIZERS)
    hyper = _hyper(data, optimizer)
    clipping = stratum(data, "clipping", CLIPPING)
    clip_eps = conventions(data, backend, "clip_by_global_norm", {"eps": "torch"})["eps"]
    max_norm = None
    if clipping != "none":
        norms = _norms(base, batches, optimizer, hyper)
        if clipping == "active":
            max_norm = data.draw(st.floats(0.05, 0.8), label="max_norm / first norm") * norms[0]
        else:
            max_norm = data.draw(st.floats(1.5, 10.0), label="max_norm / largest norm") \
                * max(norms)
    case = TrainingCase(**vars(base), batches=batches, optimizer=optimizer, hyper=hyper,
                        max_norm=max_norm, clip_eps=clip_eps)
    case.args.update({"steps": steps, "optimizer": optimizer, **hyper, "clipping": clipping,
                      "max_norm": max_norm, "clip_eps": clip_eps})
    note_arguments(case.args)
    return case


def _norms(case: LMCase, batches, optimizer: str, hyper: dict[str, Any]) -> list[float]:
    """The global norm of every step's gradient in the oracle's unclipped training."""
    norms: list[float] = []

    def record(name, **kw):
        opt = make_optimizer(name, **kw)

        def update(grads, state, params):
            norms.append(Cl.global_norm(grads))
            return opt.update(grads, state, params)
        return type(opt)(opt.init, update)

    train_trace(case.model, case.params, batches, record(optimizer, **hyper), case.state)
    return norms
