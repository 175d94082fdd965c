"""Hyperparameter strategies of each optimizer (the oracle's names; see reference/optimizers)."""

from __future__ import annotations

from hypothesis import strategies as st

MAX_STEPS = 12


def _lr(lo=1e-3, hi=0.5):
    return st.sampled_from((1e-3, 0.01, 0.1)) | st.floats(lo, hi)


def _sgd(data):
    nesterov = data.draw(st.booleans(), label="nesterov")
    momentum = data.draw(st.sampled_from((0.0, 0.5, 0.9)) | st.floats(0.0, 0.99), label="momentum")
    if nesterov:
        momentum = max(momentum, 0.1)
    return {"lr": data.draw(_lr(), label="lr"), "momentum": momentum, "nesterov": nesterov,
            "dampening": 0.0 if nesterov else data.draw(st.sampled_from((0.0, 0.1, 0.5)),
                                                        label="dampening"),
            "weight_decay": data.draw(st.sampled_from((0.0, 1e-2, 0.1)), label="weight_decay"),
            "dampen_first_step": data.draw(st.booleans(), label="dampen_first_step")}


def _adam(data, decoupled=False):
    return {"lr": data.draw(_lr(1e-4, 0.3), label="lr"),
            "b1": data.draw(st.sampled_from((0.9, 0.5, 0.0)) | st.floats(0.0, 0.99), label="b1"),
            "b2": data.draw(st.sampled_from((0.999, 0.99, 0.9)) | st.floats(0.5, 0.9999), label="b2"),
            "eps": data.draw(st.sampled_from((1e-8, 1e-3)), label="eps"),
            "eps_root": data.draw(st.sampled_from((0.0, 1e-8)), label="eps_root"),
            "weight_decay": data.draw(st.sampled_from((0.0, 1e-2, 0.1) if decoupled else (0.0, 1e-2)),
                                      label="weight_decay"),
            "amsgrad": data.draw(st.sampled_from((None, "torch", "optax")), label="amsgrad")}


def _rmsprop(data):
    return {"lr": data.draw(_lr(1e-4, 0.1), label="lr"),
            "alpha": data.draw(st.sampled_from((0.99, 0.9)) | st.floats(0.5, 0.999), label="alpha"),
            "eps": data.draw(st.sampled_from((1e-8, 1e-3)), label="eps"),
            "weight_decay": data.draw(st.sampled_from((0.0, 1e-2)), label="weight_decay"),
            "momentum": data.draw(st.sampled_from((0.0, 0.9)), label="momentum"),
            "centered": data.draw(st.booleans(), label="centered"),
            "eps_in_sqrt": data.draw(st.booleans(), label="eps_in_sqrt"),
            "initial_scale": data.draw(st.sampled_from((0.0, 0.1)), label="initial_scale")}


def _adagrad(data):
    return {"lr": data.draw(_lr(1e-3, 0.5), label="lr"),
            "eps": data.draw(st.sampled_from((1e-10, 1e-7)), label="eps"),
            "initial_accumulator_value": data.draw(st.sampled_from((0.0, 0.1)),
                                                   label="initial_accumulator_value"),
            "lr_decay": data.draw(st.sampled_from((0.0, 0.01)), label="lr_decay"),
            "weight_decay": data.draw(st.sampled_from((0.0, 1e-2)), label="weight_decay"),
            "eps_in_sqrt": data.draw(st.booleans(), label="eps_in_sqrt")}


HYPERS = {"sgd": _sgd, "adam": _adam, "adamw": lambda d: _adam(d, decoupled=True),
          "rmsprop": _rmsprop, "adagrad": _adagrad}
