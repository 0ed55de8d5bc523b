"""COCOB-Backprop: continuous coin betting (Orabona & Tommasi, NeurIPS 2017, arXiv 1705.07795).

Algorithm 2 of the paper. Each coordinate i bets a fraction of its "wealth" on the sign of the
negative gradient; no learning rate is needed. With the running statistics

    L_{t,i} = max(L_{t−1,i}, |g_{t,i}|)                  maximum observed gradient scale (L_0 = eps)
    G_{t,i} = G_{t−1,i} + |g_{t,i}|                      sum of absolute gradients
    R_{t,i} = max(R_{t−1,i} − g_{t,i}·(w_{t,i} − w_{1,i}), 0)   reward (wealth won so far)
    θ_{t,i} = θ_{t−1,i} − g_{t,i}                        sum of negative gradients

the next iterate is

    w_{t+1,i} = w_{1,i} + lr · θ_{t,i} · (L_{t,i} + R_{t,i}) / (L_{t,i}·max(G_{t,i} + L_{t,i}, α·L_{t,i}))

with α = 100 (the paper's default: about α steps of warm-up). The paper's method has lr = 1; lr is
here a multiplier of the bet so that controllers can move it (as optax.contrib.cocob does).

COCOB is dual averaging, w = w_1 − η·Σg, with a per-coordinate step size
η_{t,i} = lr·(L + R)/(L·max(G + L, α·L)). `effective_lr` reports its median over the coordinates of a
group that have seen a non-zero gradient (coordinates that never did have no meaningful rate).

Written here because no maintained package ships it (pytorch_optimizer 4.1 does not; the author's
`parameterfree` 0.0.1 does, but ignores the group's lr, so no controller could act on it). Updates use
torch's multi-tensor `_foreach_*` kernels. State per parameter: "x0" (w_1), "max_grad" (L),
"abs_grad_sum" (G), "reward" (R), "neg_grad_sum" (θ).
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


class COCOB(torch.optim.Optimizer):
    """COCOB-Backprop; see the module docstring for the update rule."""

    def __init__(
        self, params: Any, lr: float = 1.0, alpha: float = 100.0, eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"COCOB: lr must be positive, got {lr}")
        if not alpha > 0.0:
            raise ValueError(f"COCOB: alpha must be positive, got {alpha}")
        if not eps > 0.0:
            raise ValueError(f"COCOB: eps must be positive, got {eps}")
        if not weight_decay >= 0.0:
            raise ValueError(f"COCOB: weight_decay must be non-negative, got {weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

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
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("COCOB does not support sparse gradients")
            for p in params:
                state = self.state[p]
                if not state:
                    state["x0"] = p.detach().clone()
                    state["max_grad"] = torch.full_like(p, group["eps"], memory_format=torch.preserve_format)
                    state["abs_grad_sum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["reward"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["neg_grad_sum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states = [self.state[p] for p in params]
            x0, max_grad, abs_grad_sum, reward, neg_grad_sum = (
                [s[key] for s in states] for key in ("x0", "max_grad", "abs_grad_sum", "reward", "neg_grad_sum")
            )
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])

            abs_grads = torch._foreach_abs(grads)
            torch._foreach_maximum_(max_grad, abs_grads)
            torch._foreach_add_(abs_grad_sum, abs_grads)
            # reward: the bet w_t − w_1 won −g·(w_t − w_1); wealth never goes below zero
            torch._foreach_addcmul_(reward, grads, torch._foreach_sub(params, x0), value=-1)
            torch._foreach_clamp_min_(reward, 0.0)
            torch._foreach_sub_(neg_grad_sum, grads)

            rates = _rates(max_grad, abs_grad_sum, reward, group["alpha"])
            torch._foreach_mul_(rates, neg_grad_sum)
            torch._foreach_copy_(params, x0)
            torch._foreach_add_(params, rates, alpha=group["lr"])
        return loss


def _rates(
    max_grad: list[torch.Tensor], abs_grad_sum: list[torch.Tensor], reward: list[torch.Tensor], alpha: float
) -> list[torch.Tensor]:
    """Per-coordinate (L + R)/(L·max(G + L, α·L)), the step size of COCOB's dual averaging at lr = 1."""
    denominator = torch._foreach_add(abs_grad_sum, max_grad)
    torch._foreach_maximum_(denominator, torch._foreach_mul(max_grad, alpha))
    torch._foreach_mul_(denominator, max_grad)
    numerator = torch._foreach_add(reward, max_grad)
    torch._foreach_div_(numerator, denominator)
    return numerator


def _cocob_lr(optimizer: torch.optim.Optimizer, index: int) -> float:
    """lr × the median per-coordinate rate over coordinates that have seen a gradient; nan before any."""
    group = optimizer.param_groups[index]
    states = [optimizer.state[p] for p in group["params"] if optimizer.state[p]]
    if not states:
        return math.nan
    with torch.no_grad():
        rates = _rates(
            [s["max_grad"] for s in states],
            [s["abs_grad_sum"] for s in states],
            [s["reward"] for s in states],
            group["alpha"],
        )
        seen = torch.cat([r[s["abs_grad_sum"] > 0] for r, s in zip(rates, states)])
    if seen.numel() == 0:
        return math.nan
    return float(group["lr"]) * float(seen.median())


EFFECTIVE_LR[COCOB] = _cocob_lr


@register_optimizer(
    "cocob",
    (
        lr_param(1.0, "multiplier of the bet (the paper's method: 1.0)"),
        Param("alpha", 100.0, "caps the first bets; roughly the number of warm-up steps", low=0.0, low_open=True),
        Param("eps", 1e-8, "initial gradient scale L_0, avoids dividing by zero", low=0.0, low_open=True),
        weight_decay_param(),
    ),
    "COCOB-Backprop: per-coordinate coin betting, no learning rate (Orabona & Tommasi 2017).",
    example="cocob(alpha=100.0)",
    examples=("cocob()", "cocob(alpha=10.0)"),
)
def cocob(params: Any, **kw: Any) -> torch.optim.Optimizer:
    return COCOB(params, **kw)
