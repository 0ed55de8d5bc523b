"""A base LR chosen by an LR range test, as one factor of a method: `adamw() + lr_from_finder() + cosine()`.

The factor runs `lrcontrol.find_lr` (Smith 2017; docs/finder.md) on the run's own model, loss and
batches and makes the suggestion the base LR of the run:

    base_lr(group i) ← suggestion · base_lr(i) / base_lr(0)

so the first param group gets the suggestion and every other group keeps its ratio to it. The
factor's own multiplier is 1; the schedules and rules stacked with it act on the new base LR.

When: right before the first optimizer step (through the optimizer's step pre-hook), not at attach.
That is the first moment at which a resumed run has already loaded its state — the chosen LR is in
this factor's state_dict and the new base LRs in the controller's — so a resumed run never sweeps
again. The sweep puts back everything it touches (parameters, buffers, gradients, optimizer state,
RNG), so the step that follows is the step the run would have taken with that base LR.
One consequence: until that first `optimizer.step()`, `controller.lrs` shows the spec's LR; the LR
the first step really used is in the optimizer's param groups right after `optimizer.step()`.

Cost: the sweep's steps are reported in `extra_steps`, so the run's cost (steps + extra_steps)
counts them.

Resources (`build(..., resources=...)`; the run engine passes them): "model" (nn.Module),
"loss_fn" (batch -> scalar loss tensor) and "train_batches" (a callable returning a fresh iterator
of training batches).

If the sweep gives no suggestion (for instance every loss was non-finite) the base LR is kept and
`observables()["found"]` is False; a low-confidence suggestion is used, and its reasons are
observable too.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context, Factor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

NEEDED = ("model", "loss_fn", "train_batches")


@register_factor
class LRFromFinder(Factor):
    """Set the base LR from an LR range test run right before the first step (its steps count as cost)."""

    name = "lr_from_finder"
    kind = "finder"
    params = (
        Param(
            "rule",
            "recommended",
            "which suggestion becomes the base LR",
            type="str",
            choices=("recommended", "steepest", "valley", "min/10"),
        ),
        Param("lr_min", 1e-7, "smallest LR of the sweep", low=0.0, low_open=True),
        Param("lr_max", 10.0, "largest LR of the sweep", low=0.0, low_open=True),
        Param("steps", 200, "steps of the sweep (the cost)", type="int", low=10),
        Param("smoothing", 0.98, "β of the bias-corrected EMA of the loss", low=0.0, high=1.0, high_open=True),
        Param("diverge", 4.0, "stop once the smoothed loss exceeds this multiple of its best", low=1.0, low_open=True),
    )
    example = "lr_from_finder(lr_min=1e-4, lr_max=1.0, steps=30)"
    examples = (
        "lr_from_finder(lr_min=1e-4, lr_max=1.0, steps=30)",
        "lr_from_finder(rule='steepest', steps=20)",
    )
    uses_step_hooks: ClassVar[bool] = True

    def check_config(self) -> None:
        if self.config["lr_min"] >= self.config["lr_max"]:
            raise LRControlError(
                f"lr_from_finder(lr_min={self.config['lr_min']:g}, lr_max={self.config['lr_max']:g}): "
                "lr_min must be below lr_max"
            )

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        missing = [key for key in NEEDED if ctx.resources.get(key) is None]
        if missing:
            raise LRControlError(
                "lr_from_finder() needs the model, loss and batches: use it through the run engine or pass "
                "resources={'model': model, 'loss_fn': lambda batch: loss, 'train_batches': lambda: iterator} "
                f"to lrcontrol.build/control (missing: {', '.join(missing)})"
            )
        self.done = False
        self.chosen_lr: float | None = None
        self.extra_steps = 0
        self.confident = False
        self.reasons: list[str] = []
        self.suggestions: dict[str, float] = {}

    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.done:
            return
        # Mark first: the sweep's own optimizer steps must not start another sweep.
        self.done = True
        from lrcontrol.lr_range_test import find_lr

        ctx = self.ctx
        assert ctx is not None
        base_lrs = ctx.base_lrs
        result = find_lr(
            ctx.resources["model"],
            optimizer,
            ctx.resources["loss_fn"],
            ctx.resources["train_batches"],
            lr_min=self.config["lr_min"],
            lr_max=self.config["lr_max"],
            steps=self.config["steps"],
            smoothing=self.config["smoothing"],
            diverge=self.config["diverge"],
            group_scales=[b / base_lrs[0] for b in base_lrs],
        )
        self.extra_steps = result.steps
        self.confident = result.confident
        self.reasons = list(result.reasons)
        self.suggestions = dict(result.suggestions)
        rule = self.config["rule"]
        lr = result.recommended if rule == "recommended" else result.suggestions.get(rule)
        if lr is None or not (math.isfinite(lr) and lr > 0):
            self.reasons.append(f"no {rule} suggestion; the base LR was kept")
            return
        self.chosen_lr = float(lr)
        # In place: the controller and the context share this list, and the controller saves it.
        base_lrs[:] = [self.chosen_lr * (b / base_lrs[0]) for b in base_lrs]
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["initial_lr"] = base
        if ctx.controller is not None:
            # Set this very step's LRs from the new base (we are inside optimizer.step's pre-hook).
            ctx.controller._apply()
        else:
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base

    def observables(self) -> dict[str, Any]:
        return {
            "found": self.chosen_lr is not None,
            "lr": self.chosen_lr,
            "confident": self.confident,
            "extra_steps": self.extra_steps,
        }
