"""Schedule-Free SGD and AdamW (Defazio et al., NeurIPS 2024) from the authors' package `schedulefree`.

Instead of a decay schedule, Schedule-Free averages its iterates: an SGD/Adam sequence z_t, an average
x_t, and the point y_t = (1 − β)·z_t + β·x_t where gradients are taken. It has no step-size estimate of
its own: `effective_lr` reports lr × the package's linear warmup min(1, (k+1)/warmup_steps) for the
next step k (state `param_groups[i]["lr"]`, `["k"]`, `["warmup_steps"]`).

The one thing not to forget: the model holds y in train mode and x in eval mode. Training steps need
`optimizer.train()`, evaluation needs `optimizer.eval()`; see `lrcontrol.optim.modes`. `build()`
returns these optimizers in train mode, and a step in eval mode raises an LRControlError that says so.
"""

from __future__ import annotations

from typing import Any

import torch

from lrcontrol.errors import SpecError
from lrcontrol.optim.effective import EFFECTIVE_LR
from lrcontrol.optim.free import BETAS, FOREACH, lr_param, require_package, weight_decay_param
from lrcontrol.optim.modes import check_train_ready
from lrcontrol.params import Param
from lrcontrol.registration import register_optimizer

try:  # the optional extra `lrcontrol[free]`
    import schedulefree
except ImportError:  # pragma: no cover
    schedulefree = None

_WARMUP = Param("warmup_steps", 0, "steps of the package's built-in linear LR warmup", type="int", low=0)
_R = Param("r", 0.0, "power of the polynomial weighting of the average", low=0.0)
_WEIGHT_LR_POWER = Param(
    "weight_lr_power", 2.0, "weight of each iterate in the average is lr_max**weight_lr_power", low=0.0
)


# module-level (not a lambda) so that an optimizer carrying the hook still pickles
def _require_train_mode(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    check_train_ready(optimizer)


def _schedule_free_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """η = lr·min(1, (k+1)/warmup_steps): the LR the next step applies, with the package's warmup."""
    group = optimizer.param_groups[index]
    k, warmup = int(group["k"]), int(group["warmup_steps"])
    schedule = (k + 1) / warmup if k < warmup else 1.0
    return float(group["lr"]) * schedule


def _schedule_free(cls: type[torch.optim.Optimizer], params: Any, kw: dict[str, Any]) -> torch.optim.Optimizer:
    if kw.get("foreach") is None:
        kw.pop("foreach", None)  # the package picks foreach when torch has it
    optimizer = cls(params, **kw)
    optimizer.register_step_pre_hook(_require_train_mode)
    # The packages start in eval mode; a step there raises. lrcontrol hands out a trainable optimizer.
    optimizer.train()
    return optimizer


@register_optimizer(
    "sf_sgd",
    (
        lr_param(1.0, "learning rate (the package's default: 1.0)"),
        Param(
            "momentum",
            0.9,
            "interpolation between the average x and the SGD iterate z",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
        ),
        weight_decay_param(),
        _WARMUP,
        _R,
        _WEIGHT_LR_POWER,
        FOREACH,
    ),
    "Schedule-Free SGD: iterate averaging instead of a decay schedule; needs train()/eval() (Defazio et al. 2024).",
    example="sf_sgd(lr=1.0, warmup_steps=20)",
    examples=("sf_sgd(lr=0.5)", "sf_sgd(lr=0.5, warmup_steps=5)"),
)
def sf_sgd(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(schedulefree, "schedulefree", "sf_sgd")
    return _schedule_free(pkg.SGDScheduleFree, params, kw)


@register_optimizer(
    "sf_adamw",
    (
        lr_param(0.0025, "learning rate (the package's default: 0.0025)"),
        BETAS,
        Param("eps", 1e-8, "term added to the denominator for stability", low=0.0, low_open=True),
        weight_decay_param("weight decay, applied at the interpolated point y"),
        _WARMUP,
        _R,
        _WEIGHT_LR_POWER,
        FOREACH,
    ),
    "Schedule-Free AdamW: iterate averaging instead of a decay schedule; needs train()/eval() (Defazio et al. 2024).",
    example="sf_adamw(lr=0.0025, warmup_steps=20)",
    examples=("sf_adamw()", "sf_adamw(warmup_steps=5, weight_decay=0.01)"),
)
def sf_adamw(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(schedulefree, "schedulefree", "sf_adamw")
    kw["betas"] = tuple(kw["betas"])
    if kw["betas"][0] <= 0.0:
        # eval() moves the weights by lerp(weight=1 − 1/β1): β1 = 0 divides by zero
        raise SpecError(f"sf_adamw(betas=…): betas[0] must be in (0, 1) for Schedule-Free, got {kw['betas'][0]!r}")
    return _schedule_free(pkg.AdamWScheduleFree, params, kw)


if schedulefree is not None:
    EFFECTIVE_LR[schedulefree.SGDScheduleFree] = _schedule_free_lr
    EFFECTIVE_LR[schedulefree.AdamWScheduleFree] = _schedule_free_lr
