"""torch's optimizers by name, with their parameters declared for validation and listing."""

from __future__ import annotations

from typing import Any

import torch

from lrcontrol.errors import SpecError
from lrcontrol.limits import MAX_LR, MIN_LR
from lrcontrol.params import Param
from lrcontrol.registration import register_optimizer

_LR = "base learning rate (every param group without its own lr gets it)"


def _lr(default: float) -> Param:
    return Param("lr", default, _LR, low=0.0, low_open=True, high=MAX_LR, tiny=MIN_LR, show=True)


_WD = Param("weight_decay", 0.0, "L2 penalty (decoupled for adamw)", low=0.0)
_EPS = Param("eps", 1e-8, "term added to the denominator for stability", low=0.0, low_open=True)
BETAS = Param(
    "betas",
    (0.9, 0.999),
    "coefficients of the moving averages of the gradient and its square",
    type="floats",
    length=2,
    low=0.0,
    high=1.0,
    high_open=True,
)
_FOREACH = Param(
    "foreach", None, "use torch's multi-tensor implementation (None: torch's choice)", type="bool", nullable=True
)


def _make(cls: type[torch.optim.Optimizer], params: Any, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return cls(params, **kwargs)


@register_optimizer(
    "sgd",
    (
        _lr(0.01),
        Param("momentum", 0.0, "momentum factor", low=0.0, high=1.0, high_open=True),
        Param("dampening", 0.0, "dampening of the momentum", low=0.0, high=1.0),
        Param("weight_decay", 0.0, "L2 penalty", low=0.0),
        Param("nesterov", False, "Nesterov momentum (needs momentum > 0 and dampening = 0)", type="bool"),
        _FOREACH,
    ),
    "Stochastic gradient descent, with optional (Nesterov) momentum (torch.optim.SGD).",
    example="sgd(lr=0.1, momentum=0.9, nesterov=True)",
    examples=("sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)"),
)
def sgd(params: Any, **kw: Any) -> torch.optim.Optimizer:
    if kw.get("nesterov") and (kw.get("momentum", 0.0) <= 0 or kw.get("dampening", 0.0) != 0):
        raise SpecError(
            "sgd(nesterov=True) needs momentum > 0 and dampening = 0, e.g. sgd(momentum=0.9, nesterov=True)"
        )
    return _make(torch.optim.SGD, params, kw)


@register_optimizer(
    "adam",
    (_lr(1e-3), BETAS, _EPS, _WD, Param("amsgrad", False, "use the AMSGrad variant", type="bool"), _FOREACH),
    "Adam (torch.optim.Adam).",
    example="adam(lr=3e-4)",
    examples=("adam(lr=0.01)", "adam(lr=0.01, amsgrad=True)"),
)
def adam(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.Adam, params, kw)


@register_optimizer(
    "adamw",
    (
        _lr(1e-3),
        BETAS,
        _EPS,
        Param("weight_decay", 0.01, "decoupled weight decay", low=0.0),
        Param("amsgrad", False, "use the AMSGrad variant", type="bool"),
        _FOREACH,
    ),
    "Adam with decoupled weight decay (torch.optim.AdamW).",
    example="adamw(lr=1e-3, weight_decay=0.01)",
    examples=("adamw(lr=0.01)", "adamw(lr=0.01, weight_decay=0.1)"),
)
def adamw(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.AdamW, params, kw)


@register_optimizer(
    "nadam",
    (
        _lr(2e-3),
        BETAS,
        _EPS,
        _WD,
        Param("momentum_decay", 4e-3, "momentum decay", low=0.0),
        Param("decoupled_weight_decay", False, "decouple the weight decay as in AdamW", type="bool"),
        _FOREACH,
    ),
    "Adam with Nesterov momentum (torch.optim.NAdam).",
    examples=("nadam(lr=0.01)", "nadam(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)"),
)
def nadam(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.NAdam, params, kw)


@register_optimizer(
    "radam",
    (
        _lr(1e-3),
        BETAS,
        _EPS,
        _WD,
        Param("decoupled_weight_decay", False, "decouple the weight decay as in AdamW", type="bool"),
        _FOREACH,
    ),
    "Rectified Adam (torch.optim.RAdam).",
    examples=("radam(lr=0.01)", "radam(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)"),
)
def radam(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.RAdam, params, kw)


@register_optimizer(
    "rmsprop",
    (
        _lr(1e-2),
        Param("alpha", 0.99, "smoothing constant of the squared-gradient average", low=0.0, high=1.0, high_open=True),
        _EPS,
        _WD,
        Param("momentum", 0.0, "momentum factor", low=0.0, high=1.0, high_open=True),
        Param("centered", False, "normalise by the estimated variance instead of the second moment", type="bool"),
        _FOREACH,
    ),
    "RMSprop (torch.optim.RMSprop).",
    examples=("rmsprop(lr=0.01)", "rmsprop(lr=0.01, momentum=0.9, centered=True)"),
)
def rmsprop(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.RMSprop, params, kw)


@register_optimizer(
    "adagrad",
    (
        _lr(1e-2),
        Param("lr_decay", 0.0, "learning-rate decay built into Adagrad", low=0.0),
        _WD,
        Param("initial_accumulator_value", 0.0, "starting value of the squared-gradient sum", low=0.0),
        Param("eps", 1e-10, "term added to the denominator for stability", low=0.0, low_open=True),
        _FOREACH,
    ),
    "Adagrad (torch.optim.Adagrad).",
    examples=("adagrad(lr=0.05)", "adagrad(lr=0.05, lr_decay=0.01)"),
)
def adagrad(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return _make(torch.optim.Adagrad, params, kw)
