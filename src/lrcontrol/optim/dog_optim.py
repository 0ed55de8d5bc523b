"""DoG and layer-wise DoG (Ivgi, Hinder & Carmon, ICML 2023) from the authors' package `dog-optimizer`.

DoG is SGD with the step size "distance over gradients", per param group:

    η_t = lr · r̄_t / √G_t,   r̄_t = max(r_ε, max_{i≤t} ‖x_i − x_0‖),   G_t = Σ_{i≤t} ‖g_i‖² + eps

with r_ε = reps_rel·(1 + ‖x_0‖). LDoG computes the same per parameter tensor. `effective_lr` reports
lr·r̄/√G from the package's state (`param_groups[i]["rbar"]`, `["G"]`: the values of the step just
taken), the median over tensors for LDoG, and nan before the first step, whose size r_ε/‖g_0‖ depends
on the first gradient (or `init_eta` when given). The authors recommend iterate averaging
(`dog.PolynomialDecayAverager`) for the final model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lrcontrol.errors import LRControlError
from lrcontrol.optim.effective import EFFECTIVE_LR
from lrcontrol.optim.free import lr_param, require_package, weight_decay_param
from lrcontrol.params import Param
from lrcontrol.registration import register_optimizer

try:  # the optional extra `lrcontrol[free]`
    import dog as dog_optimizer
except ImportError:  # pragma: no cover
    dog_optimizer = None


_REPS_REL = Param(
    "reps_rel",
    1e-6,
    "initial distance r_ε = reps_rel·(1 + ‖x_0‖); the authors suggest 1e-4 for models with batch norm",
    low=0.0,
    low_open=True,
)


# module-level (not a lambda) so that an optimizer carrying the hook still pickles
def _require_gradients(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """The DoG package reads every parameter's gradient and fails on a None one with an AttributeError."""
    for i, group in enumerate(optimizer.param_groups):
        missing = sum(1 for p in group["params"] if p.grad is None)
        if missing:
            raise LRControlError(
                f"{type(optimizer).__name__} needs a gradient for every parameter, but {missing} parameter(s) "
                f"of param group {i} have none (frozen or unused); leave them out of the optimizer"
            )


def _dog_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """η = lr·r̄/√G for the group (the median over tensors for LDoG); nan before the first step."""
    group = optimizer.param_groups[index]
    if "rbar" not in group:
        init_eta = group.get("init_eta")
        return math.nan if init_eta is None else float(init_eta)
    ratio = group["rbar"] / torch.sqrt(group["G"])
    return float(group["lr"]) * float(ratio.median())


def _dog(cls: type[torch.optim.Optimizer], params: Any, kw: dict[str, Any]) -> torch.optim.Optimizer:
    optimizer = cls(params, **kw)
    optimizer.register_step_pre_hook(_require_gradients)
    return optimizer


_DOG_PARAMS = (
    lr_param(1.0, "multiplier of the DoG step size (c in the paper; the authors advise keeping 1.0)"),
    _REPS_REL,
    weight_decay_param(),
    Param("eps", 1e-8, "added to the sum of squared gradient norms for stability", low=0.0, low_open=True),
    Param(
        "init_eta",
        None,
        "the first step size, overriding reps_rel (None: from reps_rel)",
        low=0.0,
        low_open=True,
        nullable=True,
    ),
)


@register_optimizer(
    "dog",
    _DOG_PARAMS,
    "DoG: SGD with step size max distance from the start / √(sum of squared gradient norms) (Ivgi et al. 2023).",
    example="dog(reps_rel=1e-6)",
    examples=("dog()", "dog(reps_rel=1e-4, weight_decay=0.01)"),
)
def dog(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(dog_optimizer, "dog-optimizer", "dog")
    return _dog(pkg.DoG, params, kw)


@register_optimizer(
    "ldog",
    _DOG_PARAMS,
    "Layer-wise DoG: the DoG step size computed for each parameter tensor separately (Ivgi et al. 2023).",
    example="ldog(reps_rel=1e-6)",
    examples=("ldog()", "ldog(reps_rel=1e-4)"),
)
def ldog(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(dog_optimizer, "dog-optimizer", "ldog")
    return _dog(pkg.LDoG, params, kw)


if dog_optimizer is not None:
    EFFECTIVE_LR[dog_optimizer.DoG] = _dog_lr  # LDoG is a subclass: found through the MRO
