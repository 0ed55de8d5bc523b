"""Layer-wise trust ratio (LARS / LAMB): each tensor's step is set to a fixed fraction of its norm.

LARS (You, Gitman & Ginsburg 2017, "Large batch training of convolutional networks",
arXiv:1708.03888) gives every layer l a local LR  η·‖θ_l‖ / ‖∇_l L + β θ_l‖; LAMB (You et al. 2019,
"Large batch optimization for deep learning: training BERT in 76 minutes", arXiv:1904.00962)
applies the same ratio to Adam's update u_l:  θ_l ← θ_l − lr · φ(‖θ_l‖)/‖u_l‖ · u_l.  Both make the
step's norm proportional to the weights' norm, so layers whose gradients are out of scale with their
weights (the input layer of a deep net, a fresh head on a pretrained backbone) move at the same
relative speed.

Here, for any optimizer, u_l is the update the optimizer itself would take per unit of LR:

    u_l = (θ_l,after − θ_l,before) / lr          (read around `optimizer.step()`)
    r_l = clip(coef · ‖θ_l,before‖ / ‖u_l‖,  ratio_floor, ratio_ceiling)     (1 if either norm is 0)
    θ_l ← θ_l,before + r_l · lr · u_l

With SGD u_l is the (momentum-averaged, weight-decayed) gradient, which is LARS; with Adam(W) it is
Adam's direction, which is LAMB — the same "scale the update by the trust ratio" transform as
optax's `scale_by_trust_ratio`, placed after any optimizer. The rescaling is exact for optimizers
whose step is linear in the LR with state that does not depend on it (SGD, Adam/AdamW, RMSprop,
Adagrad…). LR-free optimizers (D-Adaptation, Prodigy, COCOB…) keep their own estimates, which do not
see the ratio. Schedule-Free optimizers' parameters are an interpolation of two sequences, and
rescaling one step of it would break the relation: with them the ratio (per group) only sets the
LR of the next step, one step late, and the step taken is left as it is.

Per tensor, not per param group. A factor's multiplier is one number per param group, but LARS and
LAMB need one ratio per tensor. Splitting groups per tensor at build time would work only with
`build()` (not with `control()` on an existing optimizer), would multiply the groups every other
factor and log deals with, and would change the optimizer's state layout. Instead the ratio is
applied to each tensor's step right after the optimizer took it (the step hooks), which works on
any optimizer however its groups were made. The group's multiplier — the LR the logs show — is the
group's own trust ratio (over all its scaled tensors together, ‖θ_g‖/‖u_g‖) from the last step, a
one-step-lagged estimate; each tensor's step is then corrected from it to its exact ratio.
`per="group"` uses that group ratio for every tensor (then the logged LR is exactly the one used);
`skip_1d=True` (the default, as in LARS/LAMB practice) leaves biases and norm scales at ratio 1.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context, Factor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor


def _ratio(coef: float, weight_norm: float, update_norm: float, lr: float, low: float, high: float) -> float | None:
    """coef·‖θ‖/‖u‖ clipped, with ‖u‖ = ‖Δθ‖/lr; 1 when a norm is zero; None when not finite."""
    if not (math.isfinite(weight_norm) and math.isfinite(update_norm)):
        return None
    if weight_norm == 0.0 or update_norm == 0.0:
        return 1.0
    ratio = coef * weight_norm * lr / update_norm
    if not math.isfinite(ratio):
        return None
    return min(max(ratio, low), high)


@register_factor
class TrustRatio(Factor):
    """Layer-wise trust ratio (LARS / LAMB): each tensor steps coef·‖θ‖/‖update‖ times the LR."""

    name = "trust"
    kind = "online"
    params = (
        Param(
            "coef",
            1.0,
            "trust coefficient η: a tensor's step is lr·coef·‖θ‖ (LAMB 1; LARS 0.001)",
            low=0.0,
            low_open=True,
        ),
        Param("ratio_floor", 1e-4, "lowest trust ratio (a clamp)", low=0.0, low_open=True),
        Param("ratio_ceiling", 10.0, "highest trust ratio (a clamp)", low=0.0, low_open=True),
        Param(
            "per",
            "tensor",
            "one ratio per tensor (LARS/LAMB) or per param group",
            type="str",
            choices=("tensor", "group"),
        ),
        Param("skip_1d", True, "biases and norm scales (1-D tensors) keep ratio 1", type="bool"),
    )
    #: lrcontrol 0.4: clamps are floors and ceilings (hf_wsd's min_ratio is an end value)
    renamed = {"min_ratio": "ratio_floor", "max_ratio": "ratio_ceiling"}
    example = "trust(coef=0.5)"
    examples = ("trust(coef=0.02, per='group', skip_1d=False)",)
    uses_step_hooks = True
    #: after gradient transforms (clipping) in the pre-step hooks, and first in the post-step hooks,
    #: so that online rules measure the step actually taken
    hook_order: ClassVar[int] = -1
    #: `rescale` follows from the optimizer at attach; `_before` lives within one optimizer step
    transient = ("rescale", "_before")

    def check_config(self) -> None:
        if self.config["ratio_floor"] > self.config["ratio_ceiling"]:
            raise LRControlError(
                f"trust(ratio_floor={self.config['ratio_floor']!r}, ratio_ceiling={self.config['ratio_ceiling']!r}): "
                "ratio_floor must not exceed ratio_ceiling"
            )

    def attach(self, ctx: Context) -> None:
        from lrcontrol.optim.modes import has_modes

        super().attach(ctx)
        # Schedule-Free parameters interpolate two sequences: rescaling one step of them after the fact
        # would break the relation, so there the group ratio only sets the next step's LR (one step late).
        self.rescale = not has_modes(ctx.optimizer)
        self.group_ratios = [1.0] * ctx.num_groups
        self.tensor_ratios: list[list[float]] = [[1.0] * len(g["params"]) for g in ctx.optimizer.param_groups]
        self._before: list[list[torch.Tensor]] | None = None

    def multiplier(self, t: int) -> list[float]:
        return list(self.group_ratios)

    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            self._before = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]

    def on_post_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._before is None:
            return
        coef, low, high = self.config["coef"], self.config["ratio_floor"], self.config["ratio_ceiling"]
        with torch.no_grad():
            for i, (group, before) in enumerate(zip(optimizer.param_groups, self._before)):
                params = list(group["params"])
                lr = float(group["lr"])
                applied = self.group_ratios[i]  # the ratio already inside `lr`
                deltas = torch._foreach_sub([p.detach() for p in params], before)
                weight_norms = [float(n) for n in torch._foreach_norm(before)] if before else []
                delta_norms = [float(n) for n in torch._foreach_norm(deltas)] if deltas else []
                scaled = [
                    j
                    for j, p in enumerate(params)
                    if p.grad is not None and not (self.config["skip_1d"] and p.ndim <= 1)
                ]
                group_ratio = _ratio(
                    coef,
                    math.sqrt(sum(weight_norms[j] ** 2 for j in scaled)),
                    math.sqrt(sum(delta_norms[j] ** 2 for j in scaled)),
                    lr,
                    low,
                    high,
                )
                if group_ratio is None:  # a non-finite step: leave it as the optimizer took it
                    continue
                if not self.rescale:
                    self.group_ratios[i] = group_ratio if scaled else 1.0
                    continue
                ratios = [1.0] * len(params)
                for j in scaled:
                    if self.config["per"] == "group":
                        ratios[j] = group_ratio
                    else:
                        r = _ratio(coef, weight_norms[j], delta_norms[j], lr, low, high)
                        ratios[j] = group_ratio if r is None else r
                torch._foreach_mul_(deltas, [r / applied for r in ratios])
                torch._foreach_add_(deltas, before)
                torch._foreach_copy_([p for p in params], deltas)
                new_ratio = group_ratio if scaled else 1.0
                # The LR this step really used (what the run engine records): the group's own ratio.
                group["lr"] = lr / applied * new_ratio
                self.group_ratios[i] = new_ratio
                self.tensor_ratios[i] = ratios
        self._before = None

    def observables(self) -> dict[str, Any]:
        return {"group_ratios": list(self.group_ratios), "tensor_ratios": [list(r) for r in self.tensor_ratios]}
