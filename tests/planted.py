"""Planted-bug backends: the oracle's adapter with one component broken the way real bugs
break it. Each must make the property suite fail in ``component``
(tests/test_planted_bugs.py). They subclass the numpy backend, so they run anywhere, fast."""

from __future__ import annotations

import numpy as np
from scipy import special

from backends.numpy_backend import NumpyBackend
from reference import activations as A
from reference import dense as D
from reference import losses as L
from reference import moments as Mo
from reference import network
from reference.optimizers import Optimizer


class Planted(NumpyBackend):
    """Base: ``component`` is what the bug breaks (the suite must fail there)."""

    component = ""

    def optimizer(self, name, **hyper):
        broken = getattr(self, f"broken_{name}", None)
        return broken(**hyper) if broken else self.correct_optimizer(name, **hyper)

    def correct_optimizer(self, name, **hyper):
        """The oracle's optimizer: a broken_<name> defers to it for the cases it does not
        break (optimizer would call broken_<name> back, endlessly)."""
        return NumpyBackend.optimizer(self, name, **hyper)


def _moments(b1, b2, correct: bool, amsgrad_of_v_hat: bool = False):
    """A hand-rolled Adam update that a bug report would show (no decay, no eps_root)."""
    def init(params):
        z = [np.zeros_like(p) for p in params]
        return {"t": 0, "m": z, "v": list(z), "vmax": list(z)}

    def update_factory(lr, eps, eps_root, amsgrad):
        def update(grads, state, params):
            t = state["t"] + 1
            out = {"t": t, "m": [], "v": [], "vmax": []}
            new = []
            for g, p, m, v, vm in zip(grads, params, state["m"], state["v"], state["vmax"],
                                      strict=True):
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                c1, c2 = (1 - b1**t, 1 - b2**t) if correct else (1.0, 1.0)
                v_hat = v / c2
                if amsgrad:
                    vm = np.maximum(vm, v_hat if amsgrad_of_v_hat else v)
                    v_hat = vm if amsgrad_of_v_hat else vm / c2
                new.append(p - lr * (m / c1) / (np.sqrt(v_hat + eps_root) + eps))
                out["m"].append(m)
                out["v"].append(v)
                out["vmax"].append(vm)
            return new, out
        return update
    return init, update_factory


class AdamNoBiasCorrection(Planted):
    """Adam without bias correction: the first steps are (1 - b1) / sqrt(1 - b2) too short."""

    name, component = "planted-adam-no-bias-correction", "adam"

    def broken_adam(self, lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.0,
                    amsgrad=None):
        if weight_decay:
            return self.correct_optimizer("adam", lr=lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                                          weight_decay=weight_decay, amsgrad=amsgrad)
        init, factory = _moments(b1, b2, correct=False)
        return Optimizer(init, factory(lr, eps, eps_root, amsgrad))


class AmsgradWrongMoment(Planted):
    """AMSGrad asked for PyTorch's variant keeps the max of the bias-corrected v instead."""

    name, component = "planted-amsgrad-wrong-moment", "adam"

    def broken_adam(self, lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.0,
                    amsgrad=None):
        if amsgrad != "torch" or weight_decay:
            return self.correct_optimizer("adam", lr=lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                                          weight_decay=weight_decay, amsgrad=amsgrad)
        init, factory = _moments(b1, b2, correct=True, amsgrad_of_v_hat=True)
        return Optimizer(init, factory(lr, eps, eps_root, amsgrad))


def _sgd(lr, momentum, dampening, nesterov, weight_decay, zero_buffer, wd_sign):
    def init(params):
        return {"t": 0, "buf": [np.zeros_like(p) for p in params]}

    def update(grads, state, params):
        t = state["t"] + 1
        new, bufs = [], []
        for g, p, b in zip(grads, params, state["buf"], strict=True):
            g = g + wd_sign * weight_decay * p
            if momentum:
                b = g if (t == 1 and not zero_buffer) else momentum * b + (1 - dampening) * g
                g = g + momentum * b if nesterov else b
            new.append(p - lr * g)
            bufs.append(b)
        return new, {"t": t, "buf": bufs}

    return Optimizer(init, update)


class SgdMomentumBufferFromZero(Planted):
    """The momentum buffer starts at zero, so dampening hits step 1 even in PyTorch mode."""

    name, component = "planted-sgd-buffer-from-zero", "sgd"

    def broken_sgd(self, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                   dampen_first_step=False):
        return _sgd(lr, momentum, dampening, nesterov, weight_decay, True, 1.0)


class WeightDecayWrongSign(Planted):
    """SGD weight decay added with the wrong sign: g - wd p."""

    name, component = "planted-weight-decay-sign", "sgd"

    def broken_sgd(self, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                   dampen_first_step=False):
        return _sgd(lr, momentum, dampening, nesterov, weight_decay, dampen_first_step, -1.0)


class RmspropEpsAlwaysInSqrt(Planted):
    """RMSProp ignores eps_in_sqrt=False and puts eps under the root."""

    name, component = "planted-rmsprop-eps-placement", "rmsprop"

    def broken_rmsprop(self, **hyper):
        hyper["eps_in_sqrt"] = True
        return self.correct_optimizer("rmsprop", **hyper)


class AdagradNoAccumulation(Planted):
    """Adagrad divides by the current |g| instead of the root of the accumulated squares."""

    name, component = "planted-adagrad-no-accumulation", "adagrad"

    def broken_adagrad(self, lr, eps=1e-10, initial_accumulator_value=0.0, lr_decay=0.0,
                       weight_decay=0.0, eps_in_sqrt=False):
        def init(params):
            return {"t": 0}

        def update(grads, state, params):
            t = state["t"] + 1
            clr = lr / (1 + (t - 1) * lr_decay)
            new = []
            for g, p in zip(grads, params, strict=True):
                g = g + weight_decay * p
                s = initial_accumulator_value + g * g
                d = np.sqrt(s + eps) if eps_in_sqrt else np.sqrt(s) + eps
                new.append(p - clr * g / d)
            return new, {"t": t}

        return Optimizer(init, update)


class SoftmaxNoMaxShift(Planted):
    """softmax as exp(x) / sum exp(x): overflows to NaN for large logits."""

    name, component = "planted-softmax-no-max-shift", "softmax"

    def softmax(self, x, axis=-1):
        with np.errstate(all="ignore"):
            e = np.exp(x)
            return e / e.sum(axis=axis, keepdims=True)


class LogSoftmaxVjpMissingSum(Planted):
    """log_softmax backward as g - softmax(x), dropping the sum of g."""

    name, component = "planted-log-softmax-vjp", "log_softmax"
    vjps = {**NumpyBackend.vjps,
            "log_softmax": lambda x, g, axis=-1: (g - A.softmax(x, axis),)}


class GeluErfForm(Planted):
    """Exact GELU as 0.5 x (1 + erf(x / sqrt 2)): the negative tail cancels to 0."""

    name, component = "planted-gelu-erf-tail", "gelu"

    def gelu(self, x, approximate="none"):
        if approximate == "tanh":
            return A.gelu(x, "tanh")
        return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


class LeakyReluSlopeInBackward(Planted):
    """leaky_relu backward uses the default slope 0.01 whatever slope was asked for."""

    name, component = "planted-leaky-relu-slope", "leaky_relu"
    vjps = {**NumpyBackend.vjps,
            "leaky_relu": lambda x, g, negative_slope=0.01: A.leaky_relu_vjp(x, g, 0.01)}


class SigmoidViaTanh(Planted):
    """sigmoid as 0.5 (1 + tanh(x / 2)) (XLA's old logistic expansion): the negative tail
    cancels to 0."""

    name, component = "planted-sigmoid-via-tanh", "sigmoid"

    def sigmoid(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


class SigmoidVjpFromInput(Planted):
    """sigmoid backward written for the saved output, g y (1 - y), fed the input x instead."""

    name, component = "planted-sigmoid-vjp-from-input", "sigmoid"
    vjps = {**NumpyBackend.vjps, "sigmoid": lambda x, g: (g * x * (1.0 - x),)}


class TanhVjpFromInput(Planted):
    """tanh backward written for the saved output, g (1 - y^2), fed the input x instead."""

    name, component = "planted-tanh-vjp-from-input", "tanh"
    vjps = {**NumpyBackend.vjps, "tanh": lambda x, g: (g * (1.0 - x * x),)}


class ReluStraightThroughBackward(Planted):
    """relu backward passes g unmasked (a custom Function returning grad_output as is, as a
    straight-through estimator does)."""

    name, component = "planted-relu-straight-through", "relu"
    vjps = {**NumpyBackend.vjps, "relu": lambda x, g: (np.array(g, dtype=np.float64),)}


class EluVjpAlphaDroppedFromOutput(Planted):
    """elu backward from the output as g (y + 1) for x <= 0: alpha dropped (right only for
    alpha = 1)."""

    name, component = "planted-elu-vjp-alpha", "elu"

    def _elu_vjp(x, g, alpha=1.0):
        y = A.elu(x, alpha)
        return (np.where(x > 0, g, g * (y + 1.0)),)

    vjps = {**NumpyBackend.vjps, "elu": _elu_vjp}


class SiluVjpGateDetached(Planted):
    """silu backward as g sigmoid(x): the gate treated as a constant (x * sigmoid(x).detach())."""

    name, component = "planted-silu-vjp-gate-detached", "silu"
    vjps = {**NumpyBackend.vjps, "silu": lambda x, g: (g * special.expit(x),)}


class SoftplusBetaIgnored(Planted):
    """softplus ignores beta (a port to jax.nn.softplus, which has none)."""

    name, component = "planted-softplus-beta-ignored", "softplus"

    def softplus(self, x, beta=1.0, threshold=None):
        return A.softplus(x, 1.0, threshold)


class SoftplusLogOnePlusExp(Planted):
    """softplus as log(1 + exp(beta x)) / beta, without log1p: the negative tail rounds to 0."""

    name, component = "planted-softplus-log-one-plus", "softplus"

    def softplus(self, x, beta=1.0, threshold=None):
        y = np.log(1.0 + np.exp(beta * np.asarray(x, dtype=np.float64))) / beta
        return y if threshold is None else np.where(beta * x > threshold, x, y)


class HuberTransitionOffByDelta(Planted):
    """Huber's linear branch as delta (|d| - delta), missing the half: off by delta^2 / 2."""

    name, component = "planted-huber-transition", "huber_loss"

    def huber_loss(self, pred, target, delta=1.0, reduction="mean"):
        a = np.abs(pred - target)
        v = np.where(a <= delta, 0.5 * a * a, delta * (a - delta))
        return {"mean": v.mean, "sum": v.sum}.get(reduction, lambda: v)()

class MseMeanOverBatch(Planted):
    """mse 'mean' divides the sum by the batch size N (pred.shape[0]), not the element count."""

    name, component = "planted-mse-mean-over-batch", "mse_loss"

    def mse_loss(self, pred, target, reduction="mean"):
        if reduction != "mean":
            return L.mse_loss(pred, target, reduction)
        return L.mse_loss(pred, target, "sum") / np.shape(pred)[0]

    def _mse_vjp(pred, target, g, reduction="mean"):
        if reduction != "mean":
            return L.mse_loss_vjp(pred, target, g, reduction)
        return L.mse_loss_vjp(pred, target, np.asarray(g) / np.shape(pred)[0], "sum")

    vjps = {**NumpyBackend.vjps, "mse_loss": _mse_vjp}


class MseVjpMissingTwo(Planted):
    """mse backward as g (pred - target), the factor 2 dropped (the 1/2 (p - t)^2 convention)."""

    name, component = "planted-mse-vjp-missing-two", "mse_loss"

    def _mse_vjp(pred, target, g, reduction="mean"):
        (d,) = L.mse_loss_vjp(pred, target, g, reduction)
        return (0.5 * d,)

    vjps = {**NumpyBackend.vjps, "mse_loss": _mse_vjp}


class L1SumVjpAsMean(Planted):
    """l1 backward divides by the element count whatever the reduction ('sum' treated as
    'mean')."""

    name, component = "planted-l1-sum-vjp-as-mean", "l1_loss"

    def _l1_vjp(pred, target, g, reduction="mean"):
        return L.l1_loss_vjp(pred, target, g, "mean" if reduction == "sum" else reduction)

    vjps = {**NumpyBackend.vjps, "l1_loss": _l1_vjp}


class BceClampedLog(Planted):
    """BCE with logits computed as BCE on sigmoid outputs with log clamped at -100."""

    name, component = "planted-bce-clamped-log", "bce_with_logits"

    def bce_with_logits(self, logits, target, reduction="mean"):
        s = special.expit(logits)
        with np.errstate(divide="ignore"):
            v = -(target * np.maximum(np.log(s), -100) + (1 - target) * np.maximum(np.log1p(-s), -100))
        return {"mean": v.mean, "sum": v.sum}.get(reduction, lambda: v)()


class LabelSmoothingOverKMinus1(Planted):
    """Label smoothing spread as e / (K - 1) over the wrong classes only."""

    name, component = "planted-label-smoothing-k-minus-1", "cross_entropy"

    def cross_entropy(self, logits, labels, reduction="mean", label_smoothing=0.0, weight=None):
        n, k = logits.shape
        w = np.ones(k) if weight is None else weight
        q = np.tile((label_smoothing / (k - 1)) * w, (n, 1))
        q[np.arange(n), labels] = (1 - label_smoothing) * w[labels]
        per = -(q * A.log_softmax(logits, axis=1)).sum(axis=1)
        if reduction == "none":
            return per
        return per.sum() if reduction == "sum" else per.sum() / w[labels].sum()


class WeightedMeanOverN(Planted):
    """Weighted NLL 'mean' divides by N instead of the sum of the label weights."""

    name, component = "planted-weighted-mean-over-n", "nll_loss"

    def nll_loss(self, log_probs, labels, reduction="mean", weight=None):
        v = L.nll_loss(log_probs, labels, "none", weight)
        return v.mean() if reduction == "mean" else L.nll_loss(log_probs, labels, reduction, weight)


class DenseBiasGradFirstRow(Planted):
    """dense backward takes the bias gradient from the first row, not the sum over the batch."""

    name, component = "planted-dense-bias-grad", "dense"

    def _dense_vjp(x, w, b, g):
        dx, dw, _ = D.dense_vjp(x, w, b, g)
        return dx, dw, np.asarray(g)[0].copy()

    vjps = {**NumpyBackend.vjps, "dense": _dense_vjp}


class MlpBackpropSkipsActivation(Planted):
    """MLP backpropagation passes the gradient through hidden activations unchanged."""

    name, component = "planted-mlp-backprop", "mlp"

    def network_loss_and_grads(self, arch, params, state, x, target, bn=None):
        if arch.name != "mlp":
            return super().network_loss_and_grads(arch, params, state, x, target, bn)
        out, new_state, tape = network.forward_tape(arch, params, state, x, bn)
        f, f_vjp = network.LOSSES[arch.loss]
        (g,) = f_vjp(out, target, np.float64(1.0))
        identity = {kind: (lambda h, g: (g,)) for kind in network.ACTIVATIONS}
        grads = network.backward(tape, g, bn, {**network.ORACLE_VJPS, **identity})
        return float(f(out, target)), grads, new_state


class VarMeanVjpFirstOutputOnly(Planted):
    """var_mean's backward differentiates the variance only: the mean's cotangent is dropped
    (what a VJP interface with one cotangent per component does)."""

    name, component = "planted-var-mean-first-output", "var_mean"

    def _var_mean_vjp(x, gv, gm, axis=-1, correction=1):
        return Mo.var_mean_vjp(x, gv, np.zeros_like(np.asarray(gm)), axis, correction)

    vjps = {**NumpyBackend.vjps, "var_mean": _var_mean_vjp}


class VarMeanCorrectionIgnored(Planted):
    """var_mean divides by n whatever the correction (jnp.var's ddof=0 behind torch's name)."""

    name, component = "planted-var-mean-correction", "var_mean"

    def var_mean(self, x, axis=-1, correction=1):
        return Mo.var_mean(x, axis, 0)


class EluExpMinusOne(Planted):
    """elu as alpha (exp(x) - 1) for x <= 0, without expm1: just below 0 the result cancels
    and loses its relative accuracy (down to 0 for |x| below eps)."""

    name, component = "planted-elu-exp-minus-one", "elu"

    def elu(self, x, alpha=1.0):
        x = np.asarray(x, dtype=np.float64)
        return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))


class TanhViaExp(Planted):
    """tanh as (e^2x - 1) / (e^2x + 1) (a hand-written kernel's textbook form): near 0 the
    numerator cancels; the saturated tails are guarded as such kernels guard them."""

    name, component = "planted-tanh-via-exp", "tanh"

    def tanh(self, x):
        x = np.asarray(x, dtype=np.float64)
        e = np.exp(2.0 * np.clip(x, -20.0, 20.0))
        return np.where(np.abs(x) > 20.0, np.sign(x), (e - 1.0) / (e + 1.0))


class LogSoftmaxAsLogOfSoftmax(Planted):
    """log_softmax as log(softmax(x)): -inf where softmax underflows (x_i - max below about
    -745 in float64), and digits lost where it is subnormal."""

    name, component = "planted-log-softmax-as-log-of-softmax", "log_softmax"

    def log_softmax(self, x, axis=-1):
        with np.errstate(all="ignore"):
            return np.log(A.softmax(x, axis))


class SoftplusThresholdOnInput(Planted):
    """softplus returns x where x > threshold, not where beta x > threshold (beta dropped
    from the switch)."""

    name, component = "planted-softplus-threshold-on-input", "softplus"

    def softplus(self, x, beta=1.0, threshold=None):
        y = A.softplus(x, beta)
        return y if threshold is None else np.where(np.asarray(x) > threshold, x, y)


PLANTED = [AdamNoBiasCorrection, AmsgradWrongMoment, SgdMomentumBufferFromZero,
           WeightDecayWrongSign, RmspropEpsAlwaysInSqrt, AdagradNoAccumulation, SoftmaxNoMaxShift,
           LogSoftmaxVjpMissingSum, GeluErfForm, LeakyReluSlopeInBackward, SigmoidViaTanh,
           SigmoidVjpFromInput, TanhVjpFromInput, ReluStraightThroughBackward,
           EluVjpAlphaDroppedFromOutput, SiluVjpGateDetached, SoftplusBetaIgnored,
           SoftplusLogOnePlusExp, HuberTransitionOffByDelta, MseMeanOverBatch, MseVjpMissingTwo,
           L1SumVjpAsMean, BceClampedLog, LabelSmoothingOverKMinus1, WeightedMeanOverN,
           DenseBiasGradFirstRow, MlpBackpropSkipsActivation, VarMeanVjpFirstOutputOnly,
           VarMeanCorrectionIgnored, EluExpMinusOne, TanhViaExp,
           SoftplusThresholdOnInput, LogSoftmaxAsLogOfSoftmax]
"""Every planted-bug backend."""
