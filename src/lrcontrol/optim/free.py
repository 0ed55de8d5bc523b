"""Hyperparameter-free optimizers from their authors' packages, by name, with their step size visible.

Each optimizer here estimates its own step size; the `lr` it takes is a multiplier of that estimate
(keep it at 1.0, or let a controller move it: `prodigy() + cosine()` is what the Prodigy authors
recommend). `lrcontrol.optim.effective_lr(optimizer, group)` — and so `controller.effective_lrs()` —
reports the step size the optimizer really applies to a group, read from the package's own state:

- D-Adaptation Adam / AdaGrad (Defazio & Mishchenko, ICML 2023; package `dadaptation`): the estimate
  d of the distance to the solution, η = d·lr (× Adam's bias correction when it is on). State:
  `param_groups[i]["d"]`, `["k"]` (steps taken).
- D-Adaptation SGD: the dual-averaging step is normalised by the first gradient's norm,
  η = d·lr / ‖g_0‖ (`["g0_norm"]`, set by the first step).
- Prodigy (Mishchenko & Defazio, ICML 2024; `prodigyopt`): η = d·lr (× bias correction), with d grown
  faster than D-Adaptation's (`["d"]`, `["k"]`).
- Schedule-Free SGD / AdamW (Defazio et al., NeurIPS 2024; `schedulefree`): no estimate of its own;
  η = lr × the package's built-in linear warmup min(1, (k+1)/warmup_steps) for the next step k.
  These need `optimizer.train()` before training steps and `optimizer.eval()` before evaluation; see
  `lrcontrol.optim.modes`. `build()` leaves them in train mode.
- DoG / LDoG (Ivgi, Hinder & Carmon, ICML 2023; `dog-optimizer`): η = lr·r̄/√G with
  r̄ = max_{i≤t} ‖x_i − x_0‖ (at least r_ε = reps_rel·(1 + ‖x_0‖)) and G = Σ_{i≤t} ‖g_i‖² + eps,
  per group (`["rbar"]`, `["G"]`); LDoG keeps one ratio per parameter tensor and reports their median.

Before an optimizer's first step, an estimate that depends on the first gradient (D-Adaptation SGD,
DoG, LDoG) does not exist yet and is reported as nan.

D-Adaptation and Prodigy estimate one d for the whole model, so their packages refuse param groups
with different LRs; lrcontrol turns that into an LRControlError that says so before the step.

This module holds D-Adaptation and Prodigy and what all LR-free optimizers share (declared parameters,
the package check, the guards); Schedule-Free is in `optim.schedule_free`, DoG/LDoG in `optim.dog_optim`,
and DoWG and COCOB-Backprop, which no maintained package ships, in `optim.dowg` and `optim.cocob`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Any

import torch

from lrcontrol.errors import LRControlError
from lrcontrol.limits import MAX_LR, MIN_LR
from lrcontrol.optim.effective import EFFECTIVE_LR
from lrcontrol.optim.torch_optim import BETAS
from lrcontrol.params import Param
from lrcontrol.registration import register_optimizer

try:  # the LR-free packages are the optional extra `lrcontrol[free]`
    import dadaptation
except ImportError:  # pragma: no cover - exercised only without the extra
    dadaptation = None
try:
    import prodigyopt
except ImportError:  # pragma: no cover
    prodigyopt = None


# -- declared parameters shared by several optimizers ------------------------------------------------


def lr_param(default: float = 1.0, doc: str = "") -> Param:
    """The `lr` of an LR-free optimizer: a multiplier of its own estimate (keep 1.0 unless unstable)."""
    return Param(
        "lr",
        default,
        doc or "multiplier of the optimizer's own step-size estimate (the authors' convention: 1.0)",
        low=0.0,
        low_open=True,
        high=MAX_LR,
        tiny=MIN_LR,
        show=True,
    )


def weight_decay_param(doc: str = "L2 penalty added to the gradient") -> Param:
    return Param("weight_decay", 0.0, doc, low=0.0)


_D0 = Param(
    "d0", 1e-6, "initial estimate of the distance to the solution (rarely needs changing)", low=0.0, low_open=True
)
_GROWTH = Param(
    "growth_rate",
    None,
    "largest factor by which d may grow per step (None: unbounded; 1.02 acts like a warmup)",
    low=1.0,
    nullable=True,
)
_BIAS = Param("use_bias_correction", False, "apply Adam's bias correction to the step", type="bool")
FOREACH = Param(
    "foreach",
    None,
    "use torch's multi-tensor implementation (None: the package's choice)",
    type="bool",
    nullable=True,
)


def require_package(package: Any, name: str, spec_name: str) -> Any:
    if package is None:
        raise LRControlError(
            f"{spec_name}() needs the package {name!r}, which is not installed; "
            "install it with `pip install 'lrcontrol[free]'`"
        )
    return package


def _growth(value: float | None) -> float:
    return math.inf if value is None else float(value)


_log = logging.getLogger(__name__)


def _quietly(cls: type[torch.optim.Optimizer], params: Any, kw: dict[str, Any]) -> torch.optim.Optimizer:
    """Construct without the packages' print() ("Using decoupled weight decay"), which would land in the
    middle of a CLI's --json output; the canonical spec already says what was configured."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        optimizer = cls(params, **kw)
    if captured.getvalue().strip():
        _log.debug("%s: %s", cls.__name__, captured.getvalue().strip())
    return optimizer


# -- step-hook guard: a clear LRControlError instead of the packages' RuntimeError ------------------
# A module-level function (not a lambda), so that an optimizer carrying the hook still pickles.


def _require_shared_lr(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """D-Adaptation and Prodigy estimate one d for all groups and refuse groups with different LRs."""
    lrs = {float(g["lr"]) for g in optimizer.param_groups} - {0.0}
    if len(lrs) > 1:
        raise LRControlError(
            f"{type(optimizer).__name__} estimates one step size d for the whole model, so every param "
            f"group needs the same lr (or 0 to freeze it), got {sorted(lrs)}; give the groups the same "
            "base lr and use controllers whose multiplier is the same for every group"
        )


# -- D-Adaptation -----------------------------------------------------------------------------------


def _adam_bias_correction(group: dict[str, Any]) -> float:
    """Adam's bias correction √(1 − β2^(k+1)) / (1 − β1^(k+1)) for the next step, 1 when it is off."""
    if not group.get("use_bias_correction", False):
        return 1.0
    beta1, beta2 = group["betas"]
    k = group["k"]
    return math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))


def _d_times_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """η = d·lr·(bias correction): D-Adaptation Adam/AdaGrad and Prodigy. d is shared by all groups."""
    group = optimizer.param_groups[index]
    return float(optimizer.param_groups[0]["d"]) * float(group["lr"]) * _adam_bias_correction(group)


def _dadapt_sgd_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """η = d·lr/‖g_0‖: D-Adaptation SGD normalises its dual-averaging step by the first gradient."""
    group = optimizer.param_groups[index]
    g0_norm = optimizer.param_groups[0].get("g0_norm")
    if not g0_norm:
        return math.nan
    return float(optimizer.param_groups[0]["d"]) * float(group["lr"]) / float(g0_norm)


@register_optimizer(
    "dadapt_adam",
    (
        lr_param(),
        BETAS,
        Param("eps", 1e-8, "term added to the denominator for stability", low=0.0, low_open=True),
        weight_decay_param("weight decay (L2 penalty; decoupled as in AdamW when decouple=True)"),
        Param("decouple", False, "AdamW-style decoupled weight decay", type="bool"),
        _BIAS,
        _D0,
        _GROWTH,
    ),
    "D-Adaptation Adam: Adam with the step size d·lr estimated online (Defazio & Mishchenko 2023).",
    example="dadapt_adam(lr=1.0)",
    examples=("dadapt_adam()", "dadapt_adam(decouple=True, weight_decay=0.01)"),
    one_lr=True,
)
def dadapt_adam(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(dadaptation, "dadaptation", "dadapt_adam")
    kw["betas"] = tuple(kw["betas"])
    kw["growth_rate"] = _growth(kw["growth_rate"])
    optimizer = _quietly(pkg.DAdaptAdam, params, kw)
    optimizer.register_step_pre_hook(_require_shared_lr)
    return optimizer


@register_optimizer(
    "dadapt_sgd",
    (
        lr_param(),
        Param("momentum", 0.0, "momentum factor", low=0.0, high=1.0, high_open=True),
        weight_decay_param(),
        _D0,
        _GROWTH,
    ),
    "D-Adaptation SGD: dual averaging with the step size d·lr/‖g0‖ estimated online (Defazio & Mishchenko 2023).",
    example="dadapt_sgd(momentum=0.9)",
    examples=("dadapt_sgd(lr=0.3)", "dadapt_sgd(lr=0.3, momentum=0.9)"),
    one_lr=True,
)
def dadapt_sgd(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(dadaptation, "dadaptation", "dadapt_sgd")
    kw["growth_rate"] = _growth(kw["growth_rate"])
    optimizer = pkg.DAdaptSGD(params, **kw)
    optimizer.register_step_pre_hook(_require_shared_lr)
    return optimizer


@register_optimizer(
    "dadapt_adagrad",
    (
        lr_param(),
        Param("momentum", 0.0, "momentum factor", low=0.0, high=1.0, high_open=True),
        weight_decay_param(),
        Param("eps", 1e-6, "term added to the denominator for stability", low=0.0, low_open=True),
        _D0,
        _GROWTH,
    ),
    "D-Adaptation AdaGrad: AdaGrad with the step size d·lr estimated online (Defazio & Mishchenko 2023).",
    example="dadapt_adagrad()",
    examples=("dadapt_adagrad()", "dadapt_adagrad(momentum=0.5)"),
    one_lr=True,
)
def dadapt_adagrad(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(dadaptation, "dadaptation", "dadapt_adagrad")
    kw["growth_rate"] = _growth(kw["growth_rate"])
    optimizer = pkg.DAdaptAdaGrad(params, **kw)
    optimizer.register_step_pre_hook(_require_shared_lr)
    return optimizer


# -- Prodigy ----------------------------------------------------------------------------------------


@register_optimizer(
    "prodigy",
    (
        lr_param(),
        BETAS,
        Param(
            "beta3",
            None,
            "decay of the running averages behind the d estimate (None: √β2)",
            low=0.0,
            high=1.0,
            high_open=True,
            nullable=True,
        ),
        Param("eps", 1e-8, "term added to the denominator for stability", low=0.0, low_open=True),
        weight_decay_param("weight decay (decoupled as in AdamW when decouple=True)"),
        Param("decouple", True, "AdamW-style decoupled weight decay", type="bool"),
        _BIAS,
        Param(
            "safeguard_warmup", False, "leave lr out of the d estimate's denominator (helps with warmup)", type="bool"
        ),
        _D0,
        Param(
            "d_coef", 1.0, "multiplier of the d estimate (the preferred knob if one must tune)", low=0.0, low_open=True
        ),
        _GROWTH,
        Param(
            "slice_p",
            1,
            "estimate d from every slice_p-th entry only (saves memory; 11 is reasonable)",
            type="int",
            low=1,
        ),
    ),
    "Prodigy: Adam with a faster-growing D-Adaptation estimate of the step size d·lr (Mishchenko & Defazio 2024).",
    example="prodigy(d_coef=1.0)",
    examples=("prodigy()", "prodigy(safeguard_warmup=True, use_bias_correction=True)"),
    one_lr=True,
)
def prodigy(params: Any, **kw: Any) -> torch.optim.Optimizer:
    pkg = require_package(prodigyopt, "prodigyopt", "prodigy")
    kw["betas"] = tuple(kw["betas"])
    kw["growth_rate"] = _growth(kw["growth_rate"])
    optimizer = _quietly(pkg.Prodigy, params, kw)
    optimizer.register_step_pre_hook(_require_shared_lr)
    return optimizer


# -- effective step sizes ---------------------------------------------------------------------------

if dadaptation is not None:
    EFFECTIVE_LR[dadaptation.DAdaptAdam] = _d_times_lr
    EFFECTIVE_LR[dadaptation.DAdaptAdaGrad] = _d_times_lr
    EFFECTIVE_LR[dadaptation.DAdaptSGD] = _dadapt_sgd_lr
if prodigyopt is not None:
    EFFECTIVE_LR[prodigyopt.Prodigy] = _d_times_lr
