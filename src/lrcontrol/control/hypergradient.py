"""Hypergradient descent: move each group's LR down the derivative of the loss with respect to it; docs/online.md.

Baydin, Cornish, Martínez Rubio, Schmidt & Wood (2018), "Online learning rate adaptation with
hypergradient descent", ICLR. With s_{t−1} the direction of the previous step actually taken,
θ_t = θ_{t−1} − η_{t−1}·s_{t−1}, the derivative of the new loss with respect to the last LR is
∂f(θ_t)/∂η_{t−1} = −g_t·s_{t−1}. Before the step with g_t:

    additive:        η_t = η_{t−1} + β·(g_t · s_{t−1})
    multiplicative:  η_t = η_{t−1}·(1 + β·(g_t · s_{t−1})/(‖g_t‖·‖s_{t−1}‖))

and the step with g_t is taken with η_t, as in the paper. Sums run over the tensors of one parameter
group: every group has its own η.

s is the optimizer's own direction, read from its displacement: s_{t−1} = (θ_{t−1} − θ_t)/η_{t−1}.
For plain SGD that is g_{t−1} (SGD-HD); with momentum, the momentum buffer; for Adam, m̂/(sqrt(v̂) + ε)
(Adam-HD); for AdamW the decoupled weight decay is part of it, as it is part of ∂θ_t/∂η_{t−1}. Any
optimizer works. The cost is one buffer the size of the parameters and three fused passes over it
per step (copy θ_t before the step, θ_{t−1} − θ_t after it, the dot products with g_t).

In lrcontrol η is the group's whole LR, base × the other factors × this one; the additive rule adds
β·(g_t·s_{t−1}) to that LR, so alone it is Baydin's rule exactly and under a schedule it adapts around it.

Safeguards (the reference code's faults, fixed; shared with every online controller through
`control/online.py`): η stays in [floor, ceiling] × base LR, so it can neither go negative nor
drift upward without bound; one step moves η by at most a factor `max_change` (2) either way. With
the paper's small β this never binds; it stops the additive rule from slamming η onto its floor after
an overshoot (where g·s is large and negative), from where it could not climb back: at a tiny η the
displacement θ_{t−1} − θ_t falls below float32 resolution, so s reads as 0; a non-finite hypergradient (a non-finite gradient) skips the update and is
counted (`skipped`); the first step, which has no previous direction, is not adapted; the runaway
guard (`guard=True`) restores the last healthy checkpoint and halves η on a loss blow-up or a
non-finite loss or gradient, and then forgets the previous direction (the parameters jumped). Under
gradient clipping g_t is the clipped gradient the optimizer used and s the clipped step; a step
skipped by an AMP GradScaler never reaches the optimizer's hooks, so the pair (g_t, s_{t−1}) is
simply taken across it.

Typical β from the paper: 1e-3 for SGD-HD (additive), 1e-7 for Adam-HD (additive, whose g·s is a sum
over all coordinates of unit-size steps); the multiplicative β is dimensionless (a cosine), 0.01–0.05.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context
from lrcontrol.control.online import ONLINE_PARAMS, OnlineFactor
from lrcontrol.params import Param
from lrcontrol.registration import register_factor


@register_factor
class Hypergradient(OnlineFactor):
    """Hypergradient descent (Baydin et al. 2018): per-group LR by gradient descent on the LR itself."""

    name = "hypergradient"
    params: ClassVar[tuple[Param, ...]] = (
        Param("beta", 1e-3, "hypergradient learning rate β", low=0.0, low_open=True),
        Param(
            "mode",
            "additive",
            "additive: η += β·g·s; multiplicative: η ·= 1 + β·cos(g, s)",
            type="str",
            choices=("additive", "multiplicative"),
        ),
        Param(
            "max_change",
            2.0,
            "largest factor by which η may move in one step, up or down (a safeguard; see the module doc)",
            low=1.0,
            low_open=True,
        ),
    ) + ONLINE_PARAMS
    example = "hypergradient(beta=0.001)"
    examples = (
        "hypergradient(beta=0.001)",
        "hypergradient(beta=0.02, mode='multiplicative')",
        "hypergradient(beta=0.01, guard=False)",
    )
    #: the hypergradient is taken before the step, from g_t and the displacement kept here
    captures_step = False
    transient = ("_flat_displacement",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.group_scale = [1.0] * ctx.num_groups
        self.previous_lr = [0.0] * ctx.num_groups  # η_{t−1} of each group: the LR of the last step
        #: θ_{t−1} − θ_t = η_{t−1}·s_{t−1} after a step; θ_t itself between the pre- and post-step hooks
        self.displacement = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.tensors]
        self._flat_displacement = [d.view(-1) for d in self.displacement]
        self.has_direction = False
        self.hypergradient = [0.0] * ctx.num_groups

    def multiplier(self, t: int) -> list[float]:
        return [self.scale * s for s in self.group_scale]

    def before_step(self, optimizer: torch.optim.Optimizer) -> bool:
        finite = not self.has_direction or self._adapt(optimizer)
        for g, group in enumerate(optimizer.param_groups):
            self.previous_lr[g] = float(group["lr"])
        with torch.no_grad():
            torch._foreach_copy_(self.displacement, self.tensors)
        return finite

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            torch._foreach_sub_(self.displacement, self.tensors)
        self.has_direction = True

    def on_restore(self) -> None:
        # The parameters jumped back to a checkpoint: the last displacement is no step of this run.
        self.has_direction = False

    def _adapt(self, optimizer: torch.optim.Optimizer) -> bool:
        """Update each group's η from g_t·s_{t−1}; False (nothing changed) if that is non-finite."""
        ks = [k for k, p in enumerate(self.tensors) if p.grad is not None]
        if not ks:
            return True
        grads = [self.tensors[k].grad for k in ks]
        moves = [self.displacement[k] for k in ks]
        # torch has no foreach dot product: one fused kernel per tensor (never a loop over elements).
        dots = [torch.dot(g.reshape(-1), self._flat_displacement[k]) for g, k in zip(grads, ks)]
        multiplicative = self.config["mode"] == "multiplicative"
        if multiplicative:
            dots += list(torch._foreach_norm(grads)) + list(torch._foreach_norm(moves))
        values = torch.stack(dots).tolist()
        if not all(math.isfinite(v) for v in values):
            return False
        n, num_groups = len(ks), len(self.group_scale)
        dot, grad_sq, move_sq = [0.0] * num_groups, [0.0] * num_groups, [0.0] * num_groups
        for i, k in enumerate(ks):
            g = self.tensor_group[k]
            dot[g] += values[i]
            if multiplicative:
                grad_sq[g] += values[n + i] ** 2
                move_sq[g] += values[2 * n + i] ** 2
        beta, low, high = self.config["beta"], self.config["floor"], self.config["ceiling"]
        for g in sorted({self.tensor_group[k] for k in ks}):
            group = optimizer.param_groups[g]
            lr = float(group["lr"])
            if multiplicative:
                norms = math.sqrt(grad_sq[g] * move_sq[g])
                h = dot[g] / norms if norms > 0.0 else 0.0
                factor = 1.0 + beta * h
            else:
                # g_t·s_{t−1} = g_t·(θ_{t−1} − θ_t)/η_{t−1}; the rule adds β times it to the LR.
                h = dot[g] / self.previous_lr[g]
                factor = 1.0 + beta * h / lr
            self.hypergradient[g] = h
            limit = self.config["max_change"]
            factor = min(max(factor, 1.0 / limit), limit) if math.isfinite(factor) else 1.0
            proposal = self.group_scale[g] * factor
            new_scale = min(max(proposal, low), high) if math.isfinite(proposal) else self.group_scale[g]
            # This step already has its LR (the controller set it); give it η_t, as the paper does.
            group["lr"] = lr * (new_scale / self.group_scale[g])
            self.group_scale[g] = new_scale
        return True

    def observables(self) -> dict[str, Any]:
        return {
            **super().observables(),
            "group_scale": [self.scale * s for s in self.group_scale],
            "hypergradient": list(self.hypergradient),
        }

    def upgrade_online_state(self, online: dict[str, Any]) -> dict[str, Any]:
        if online["displacement"] is None:  # lrcontrol ≤ 0.2 saved it only after a first step
            online["displacement"] = [d.clone() for d in self.displacement]
        return online
