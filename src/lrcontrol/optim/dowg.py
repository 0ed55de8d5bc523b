"""DoWG: Distance over Weighted Gradients (Khaled, Mishchenko & Jin, NeurIPS 2023, arXiv 2305.16284).

Algorithm 1 of the paper, per param group (all its tensors treated as one vector), with the LR as a
multiplier of the step so that controllers can move it:

    r̄_t = max(‖x_t − x_0‖, r̄_{t−1}),          r̄_{−1} = r_ε = reps_rel·(1 + ‖x_0‖)
    v_t  = v_{t−1} + r̄_t²·‖g_t‖²,              v_{−1} = 0
    η_t  = lr · r̄_t² / √v_t
    x_{t+1} = x_t − η_t·g_t

DoWG weights each squared gradient norm by the current distance estimate, so once r̄ stops growing
the step size decays like that of normalised gradient descent; it adapts to smooth and non-smooth
problems alike without a tuned LR. r_ε follows DoG's heuristic (the paper leaves r_ε to the user;
DoG's authors' default reps_rel = 1e-6). Since η_t·‖g_t‖ ≤ r̄_t, no step jumps further than the
distance travelled so far, and no epsilon is needed in the denominator: √v_t = 0 only while every
gradient so far was zero, and then there is nothing to step.

Written here because no maintained package ships it (pytorch_optimizer 4.1 does not; the `dowg`
package on PyPI is a single 2023 release whose author doubts its correctness). State, read by
`effective_lr` and saved by `state_dict`: per group "rbar" and "v" (python floats, exact on resume),
per parameter "x0".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lrcontrol.optim.effective import EFFECTIVE_LR
from lrcontrol.optim.free import lr_param, weight_decay_param
from lrcontrol.params import Param
from lrcontrol.registration import register_optimizer


def _global_norm(tensors: list[torch.Tensor]) -> float:
    """‖(t_1, …, t_n)‖ of tensors seen as one vector, as a python float (one device sync)."""
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors))))


class DoWG(torch.optim.Optimizer):
    """Distance over Weighted Gradients; see the module docstring for the update rule."""

    def __init__(self, params: Any, lr: float = 1.0, reps_rel: float = 1e-6, weight_decay: float = 0.0) -> None:
        if not lr > 0.0:
            raise ValueError(f"DoWG: lr must be positive, got {lr}")
        if not reps_rel > 0.0:
            raise ValueError(f"DoWG: reps_rel must be positive, got {reps_rel}")
        if not weight_decay >= 0.0:
            raise ValueError(f"DoWG: weight_decay must be non-negative, got {weight_decay}")
        super().__init__(params, dict(lr=lr, reps_rel=reps_rel, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if "rbar" not in group:
                # x_0 and r_ε come from the whole group at its first step, as in DoG
                for p in group["params"]:
                    self.state[p]["x0"] = p.detach().clone()
                group["rbar"] = group["reps_rel"] * (1.0 + _global_norm(list(group["params"])))
                group["v"] = 0.0
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            distance = _global_norm(torch._foreach_sub(params, [self.state[p]["x0"] for p in params]))
            rbar = max(group["rbar"], distance)
            v = group["v"] + rbar**2 * _global_norm(grads) ** 2
            group["rbar"], group["v"] = rbar, v
            if v == 0.0:
                continue  # every gradient so far was zero: nothing to step
            torch._foreach_add_(params, grads, alpha=-group["lr"] * rbar**2 / math.sqrt(v))
        return loss


def _dowg_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """η = lr·r̄²/√v with the statistics so far; nan before the first step (it depends on ‖g_0‖)."""
    group = optimizer.param_groups[index]
    if not group.get("v"):
        return math.nan
    return float(group["lr"]) * group["rbar"] ** 2 / math.sqrt(group["v"])


EFFECTIVE_LR[DoWG] = _dowg_lr


@register_optimizer(
    "dowg",
    (
        lr_param(1.0, "multiplier of the DoWG step size (the paper's method: 1.0)"),
        Param(
            "reps_rel",
            1e-6,
            "initial distance estimate r_ε = reps_rel·(1 + ‖x_0‖) (DoG's heuristic)",
            low=0.0,
            low_open=True,
        ),
        weight_decay_param(),
    ),
    "DoWG: step size from the distance travelled over distance-weighted gradient norms (Khaled et al. 2023).",
    example="dowg(reps_rel=1e-6)",
    examples=("dowg()", "dowg(reps_rel=1e-4)"),
)
def dowg(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return DoWG(params, **kw)
