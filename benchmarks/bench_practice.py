"""asv benchmarks: the training-practice family, float64, one thread pinned to one core
(benchmarks/training.py's settings and per-process runner cache).

- ``RegularizedMLPTrainStep``: STEPS training steps of bench_mlp's MLP (256-256-256-10, tanh,
  mean cross-entropy, batch 64) with dropout p = 0.5 on both hidden activations (training
  mode, inverted scaling, a fresh mask every step) and SGD (lr 0.01, momentum 0.9) with L2
  weight decay 5e-4 (g + wd w before the momentum) from the backend's ``optimizer``:
  reference/optimizers.py's sgd (weight_decay_mode 'l2'), torch.optim.SGD(weight_decay),
  optax.add_decayed_weights chained before optax.sgd. Each backend draws its own masks: the
  oracle ``np.random.default_rng(SEED).random(shape) >= p`` (backends/regularization.py's
  draw_mask rule, one generator for the run) into reference/regularization.py's dropout and
  dropout_vjp, hand-chained with the dense, tanh and cross-entropy VJPs; torch
  ``F.dropout(h, p, training=True)`` on its global generator, gradients by the backend's
  ``value_and_grad`` (autograd); jax one jitted step (value_and_grad of the backend's own
  dense, tanh and cross-entropy, ``flax.linen.Dropout``, which draws
  ``jax.random.bernoulli``, with the key split inside the step, and the optax update; the
  parameters and optimizer state donated), compiled in setup.
- ``AugmentPipeline``: one call applies hflip, rotate (30 degrees, bilinear, fill 0),
  brightness and resized_crop (rows and columns [8, 56) to 64x64, bilinear, antialias) to a
  batch of 64 images 3x64x64 in [0, 1), through the backend's augmentation methods
  (reference/augment.py, backends/torch_augment.py, backends/jax_augment.py) with the
  conventions it declares (the first where it supports several; the oracle's defaults where
  it declares none): torch and the oracle rotate by 'torchvision' sampling and brighten by
  'multiply_clamp' (amount 1.2), jax by 'pix' and 'add' (amount 0.2). Forward only:
  augmentation is a data pipeline, not differentiated. JAX runs the four methods under one
  jax.jit (compiled in setup) and blocks on the result.
- ``OracleOverTorch``: oracle time / torch float64 eager time on each, timed alternately in
  one process (target: at most 2).

Run as a script for a quick ratio measurement without asv:
``python -m benchmarks.bench_practice [mlp_dropout_wd|augment ...]``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.training import BACKENDS, DEVICES, DTYPE, REPEAT, cached_runner, ratio_main
from benchmarks.training import OracleOverTorch as OracleOverTorchTemplate
from reference import activations as A
from reference import dense as D
from reference import losses as L
from reference import network, registry
from reference import regularization as R

STEPS = 20
ARCH = network.mlp((256, 256, 256, 10), "tanh", "cross_entropy")
BATCH, P, SEED = 64, 0.5, 0
HYPER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
IMAGES = (64, 3, 64, 64)
ANGLE, BOX, SIZE = 30.0, (8, 8, 48, 48), (64, 64)
AMOUNT = {"multiply_clamp": 1.2, "add": 0.2}  # brightness amount per mode


class _RegularizedMLP:
    """The MLP's ``ARCH.init`` parameters, a seeded batch (x, labels) and the optimizer."""

    def __init__(self, bk) -> None:
        self.bk = bk
        params, _ = ARCH.init(0)
        rng = np.random.default_rng(1)
        self.x = bk.asarray(rng.standard_normal((BATCH, *ARCH.input_shape)), DTYPE)
        self.labels = bk.asarray(rng.integers(0, ARCH.classes, BATCH))
        self.params = [bk.asarray(p, DTYPE) for p in params]
        self.opt = bk.optimizer("sgd", **HYPER)
        self.opt_state = self.opt.init(self.params)


def _forward(bk, params: list, x, drop):
    """Logits of dense layers (w, b pairs of ``params``) with tanh, then ``drop(h, i)``, after
    each but the last, over the backend's components."""
    n = len(params) // 2
    for i in range(n):
        x = bk.dense(x, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            x = drop(bk.tanh(x), i)
    return x


class _OracleMLP(_RegularizedMLP):
    """The oracle: forward and hand-chained backward of reference/ (dense, tanh, dropout,
    cross-entropy), masks from one np.random.default_rng(SEED)."""

    def __init__(self, bk) -> None:
        super().__init__(bk)
        self.rng = np.random.default_rng(SEED)

    def loss_and_grads(self, p: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        """(the mean loss, the gradient of every parameter) with fresh masks, as the
        frameworks' steps compute both."""
        n = len(p) // 2
        inputs, hidden, h = [], [], self.x
        for i in range(n):
            inputs.append(h)
            h = D.dense(h, p[2 * i], p[2 * i + 1])
            if i < n - 1:
                a = A.tanh(h)
                mask = (self.rng.random(a.shape) >= P).astype(np.float64)
                hidden.append((h, a, mask))
                h = R.dropout(a, mask, P)
        value = float(L.cross_entropy(h, self.labels))
        (g,) = L.cross_entropy_vjp(h, self.labels, np.float64(1.0))
        grads: list[np.ndarray] = []
        for i in reversed(range(n)):
            if i < n - 1:
                z, a, mask = hidden[i]
                (g,) = R.dropout_vjp(a, g, mask, P)
                (g,) = A.tanh_vjp(z, g)
            g, dw, db = D.dense_vjp(inputs[i], p[2 * i], p[2 * i + 1], g)
            grads[:0] = [dw, db]
        return value, grads

    def run(self, steps: int) -> None:
        p, o = self.params, self.opt_state
        for _ in range(steps):
            _, grads = self.loss_and_grads(p)
            p, o = self.opt.update(grads, o, p)
        self.params, self.opt_state = p, o


class _TorchMLP(_RegularizedMLP):
    """torch eager: F.dropout in training mode, autograd through ``value_and_grad``."""

    def run(self, steps: int) -> None:
        import torch.nn.functional as F

        bk, p, o = self.bk, self.params, self.opt_state

        def loss(q):
            out = _forward(bk, q, self.x, lambda h, _: F.dropout(h, P, training=True))
            return network.loss(bk, ARCH.loss, out, self.labels)

        for _ in range(steps):
            _, grads = bk.value_and_grad(loss, p)
            p, o = self.opt.update(grads, o, p)
        bk.synchronize()
        self.params, self.opt_state = p, o


class _JaxMLP(_RegularizedMLP):
    """One jitted step: flax.linen.Dropout with keys split from the carried key, the optax
    update; parameters and optimizer state donated."""

    def __init__(self, bk) -> None:
        import flax.linen as nn
        import jax

        super().__init__(bk)
        # committed to the inputs' device, as the step's output key is: one compilation
        self.key = jax.device_put(jax.random.key(SEED), self.x.sharding)
        dropout = nn.Dropout(rate=P, deterministic=False)

        def step(params, opt_state, key, x, labels):
            key, *keys = jax.random.split(key, len(params) // 2)

            def loss(q):
                out = _forward(bk, q, x, lambda h, i: dropout.apply(
                    {}, h, rngs={"dropout": keys[i]}))
                return network.loss(bk, ARCH.loss, out, labels)

            value, grads = jax.value_and_grad(loss)(params)
            params, opt_state = self.opt.update(grads, opt_state, params)
            return params, opt_state, key, value

        self.step = jax.jit(step, donate_argnums=(0, 1))

    def run(self, steps: int) -> None:
        import jax

        p, o, k = self.params, self.opt_state, self.key
        for _ in range(steps):
            p, o, k, _ = self.step(p, o, k, self.x, self.labels)
        jax.block_until_ready((p, o))
        self.params, self.opt_state, self.key = p, o, k


def _declared(bk, component: str, arg: str):
    """The convention ``bk`` declares for ``arg`` of ``component`` (the first of several), or
    the oracle's default."""
    value = bk.conventions.get(component, {}).get(arg, registry.get(component).defaults()[arg])
    return value[0] if isinstance(value, tuple) else value


class _Augment:
    """hflip, rotate, brightness and resized_crop over a seeded batch IMAGES, the backend's
    declared conventions; JAX's pipeline under one jax.jit."""

    def __init__(self, bk) -> None:
        self.bk = bk
        self.x = bk.asarray(np.random.default_rng(6).uniform(0, 1, IMAGES), DTYPE)
        sampling, mode = _declared(bk, "rotate", "sampling"), _declared(bk, "brightness", "mode")

        def pipeline(x):
            x = bk.rotate(bk.hflip(x), ANGLE, interpolation="bilinear", sampling=sampling)
            x = bk.brightness(x, AMOUNT[mode], mode=mode)
            return bk.resized_crop(x, *BOX, SIZE, antialias=True)

        if bk.name == "jax":
            import jax

            self.pipeline = jax.jit(pipeline)
        else:
            self.pipeline = pipeline

    def run(self, calls: int) -> None:
        for _ in range(calls):
            y = self.pipeline(self.x)
        if self.bk.name == "jax":
            import jax

            jax.block_until_ready(y)
        self.bk.synchronize()


_MLP = {"numpy": _OracleMLP, "torch": _TorchMLP, "jax": _JaxMLP}
WORKS = ("mlp_dropout_wd", "augment")
CALLS = {"mlp_dropout_wd": STEPS, "augment": 1}  # steps or pipeline calls per timed call


def _runner(work: str, backend: str, device: str):
    """The warmed-up runner of ``work`` (JAX: compiled by the warm-up)."""
    def build(bk):
        return _MLP[bk.name](bk) if work == "mlp_dropout_wd" else _Augment(bk)
    return cached_runner(("practice", work, backend, device), backend, device, build, 1)


class RegularizedMLPTrainStep:
    """STEPS (20) steps of the 256-256-256-10 tanh MLP, batch 64, dropout 0.5 on the hidden
    activations, SGD momentum 0.9 with weight decay 5e-4, float64."""

    params = (list(BACKENDS), list(DEVICES))
    param_names = ("backend", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 180

    def setup(self, backend: str, device: str) -> None:
        self.runner = _runner("mlp_dropout_wd", backend, device)

    def time_step(self, backend: str, device: str) -> None:
        """STEPS training steps, synchronised; divide by STEPS for one step."""
        self.runner.run(STEPS)

    def peakmem_step(self, backend: str, device: str) -> None:
        self.runner.run(STEPS)


class AugmentPipeline:
    """hflip, rotate 30 (bilinear), brightness, resized_crop to 64x64 (antialias) of a batch
    64x3x64x64, float64, forward only, synchronised."""

    params = (list(BACKENDS), list(DEVICES))
    param_names = ("backend", "device")
    repeat = REPEAT
    warmup_time = 0.2
    timeout = 300

    def setup(self, backend: str, device: str) -> None:
        self.runner = _runner("augment", backend, device)

    def time_pipeline(self, backend: str, device: str) -> None:
        """One pass of the pipeline over the batch."""
        self.runner.run(1)

    def peakmem_pipeline(self, backend: str, device: str) -> None:
        self.runner.run(1)


class OracleOverTorch(OracleOverTorchTemplate):
    """Time of the oracle / time of torch float64 eager on each work, timed alternately in
    one process (training.OracleOverTorch: median of 7 timings each, median ratio of 3
    pairs). Target <= 2."""

    params = (list(WORKS),)

    def setup(self, work: str) -> None:
        self.work = work
        self.oracle = _runner(work, "numpy", "cpu")
        self.torch = _runner(work, "torch", "cpu")

    @property
    def n(self) -> int:
        """Steps (per pipeline call) per timing."""
        return CALLS[self.work]


if __name__ == "__main__":
    import sys

    ratio_main(OracleOverTorch, sys.argv[1:])
