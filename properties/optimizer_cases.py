"""Hyperparameter strategies of each optimizer (the oracle's names; see reference/optimizers)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from properties.coverage import Classes, stratum

MAX_STEPS = 12
DECAY = ("none", "decay")
#: AMSGrad class -> the amsgrad argument
_AMSGRAD = {"off": None, "torch": "torch", "optax": "optax"}
#: configuration classes of each optimizer (properties/coverage.py): the form of its update
#: and weight decay off or on
CLASSES: dict[str, Classes] = {
    "sgd": {"momentum_form": ("none", "heavy_ball", "dampened", "nesterov"),
            "weight_decay": DECAY},
    "adam": {"amsgrad": tuple(_AMSGRAD), "weight_decay": DECAY},
    "adamw": {"amsgrad": tuple(_AMSGRAD), "weight_decay": DECAY},
    "rmsprop": {"centered_momentum": ("plain", "centered", "momentum", "centered_momentum"),
                "weight_decay": DECAY},
    "adagrad": {"lr_decay": DECAY, "weight_decay": DECAY},
}


def _lr(lo=1e-3, hi=0.5):
    return st.sampled_from((1e-3, 0.01, 0.1)) | st.floats(lo, hi)


def _decay(data, values=(1e-2,)) -> float:
    """A weight decay of the drawn DECAY class."""
    if stratum(data, "weight_decay", DECAY) == "none":
        return 0.0
    return data.draw(st.sampled_from(values), label="weight_decay")


def _sgd(data):
    form = stratum(data, "momentum_form", CLASSES["sgd"]["momentum_form"])
    momentum = 0.0 if form == "none" else data.draw(
        st.sampled_from((0.5, 0.9)) | st.floats(0.1, 0.99), label="momentum")
    return {"lr": data.draw(_lr(), label="lr"), "momentum": momentum,
            "nesterov": form == "nesterov",
            "dampening": data.draw(st.sampled_from((0.1, 0.5)), label="dampening")
            if form == "dampened" else 0.0,
            "weight_decay": _decay(data, (1e-2, 0.1)),
            "dampen_first_step": data.draw(st.booleans(), label="dampen_first_step")}


def _adam(data, decoupled=False):
    return {"lr": data.draw(_lr(1e-4, 0.3), label="lr"),
            "b1": data.draw(st.sampled_from((0.9, 0.5, 0.0)) | st.floats(0.0, 0.99), label="b1"),
            "b2": data.draw(st.sampled_from((0.999, 0.99, 0.9)) | st.floats(0.5, 0.9999), label="b2"),
            "eps": data.draw(st.sampled_from((1e-8, 1e-3)), label="eps"),
            "eps_root": data.draw(st.sampled_from((0.0, 1e-8)), label="eps_root"),
            "weight_decay": _decay(data, (1e-2, 0.1) if decoupled else (1e-2,)),
            "amsgrad": _AMSGRAD[stratum(data, "amsgrad", tuple(_AMSGRAD))]}


def _rmsprop(data):
    form = stratum(data, "centered_momentum", CLASSES["rmsprop"]["centered_momentum"])
    return {"lr": data.draw(_lr(1e-4, 0.1), label="lr"),
            "alpha": data.draw(st.sampled_from((0.99, 0.9)) | st.floats(0.5, 0.999), label="alpha"),
            "eps": data.draw(st.sampled_from((1e-8, 1e-3)), label="eps"),
            "weight_decay": _decay(data),
            "momentum": 0.9 if form.endswith("momentum") else 0.0,
            "centered": form.startswith("centered"),
            "eps_in_sqrt": data.draw(st.booleans(), label="eps_in_sqrt"),
            "initial_scale": data.draw(st.sampled_from((0.0, 0.1)), label="initial_scale")}


def _adagrad(data):
    return {"lr": data.draw(_lr(1e-3, 0.5), label="lr"),
            "eps": data.draw(st.sampled_from((1e-10, 1e-7)), label="eps"),
            "initial_accumulator_value": data.draw(st.sampled_from((0.0, 0.1)),
                                                   label="initial_accumulator_value"),
            "lr_decay": 0.01 if stratum(data, "lr_decay", DECAY) == "decay" else 0.0,
            "weight_decay": _decay(data),
            "eps_in_sqrt": data.draw(st.booleans(), label="eps_in_sqrt")}


HYPERS = {"sgd": _sgd, "adam": _adam, "adamw": lambda d: _adam(d, decoupled=True),
          "rmsprop": _rmsprop, "adagrad": _adagrad}


def classify(name: str, hyper: dict[str, Any]) -> dict[str, str]:
    """The CLASSES of an optimizer's final hyperparameters (the backend's conventions
    applied)."""
    out = {"weight_decay": "decay" if hyper.get("weight_decay") else "none"}
    if name == "sgd":
        out["momentum_form"] = ("nesterov" if hyper.get("nesterov") else
                                "none" if not hyper.get("momentum") else
                                "dampened" if hyper.get("dampening") else "heavy_ball")
    elif name in ("adam", "adamw"):
        out["amsgrad"] = hyper.get("amsgrad") or "off"
    elif name == "rmsprop":
        centered, momentum = hyper.get("centered"), bool(hyper.get("momentum"))
        out["centered_momentum"] = ("centered_momentum" if centered and momentum else
                                    "centered" if centered else
                                    "momentum" if momentum else "plain")
    elif name == "adagrad":
        out["lr_decay"] = "decay" if hyper.get("lr_decay") else "none"
    return out
