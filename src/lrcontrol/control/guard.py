"""The runaway guard of the online rules (clara, alera, salera, hypergradient): restore and cut η on a blow-up.

None of the papers has it: an online rule that raises η from the agreement of its steps keeps
raising it past the stability limit on noise-free problems (CLARA on a quadratic without noise, see
docs/clara.md), and a loss that explodes then takes the run with it. The guard is one unit that each
online rule *composes* (`OnlineFactor.guard`, `None` with `guard=False`); it is switched on by default
and printed in every canonical spec (`clara(guard=True)`), so `guard=False` gives the published rule.

    smoothed loss     L̄ ← (1 − r)·L̄ + r·loss                      r = guard_smoothing (0.1)
    alarm             L̄ − L̄_ckpt > (ratio − 1)·|L̄_ckpt|            ratio = guard_ratio (4)
                      or a non-finite loss, gradient or step
    on alarm          restore the checkpoint; η ← guard_decay·η (½); the rule forgets its statistics
    checkpoint        every guard_every (20) steps that moved, if L̄ ≤ 2·|L̄_ckpt|-ish (L̄ ≤ L̄_ckpt + |L̄_ckpt|)

A checkpoint is a `Snapshot` (control/snapshot.py) of the parameters, every tensor of the optimizer
state and the per-group entries an optimizer keeps in its param groups (never the LR): one extra copy
of the parameters and of the optimizer state in memory. The first one is taken before the first step.
Without a loss passed to `controller.step(loss)` only the non-finite checks act.
"""

from __future__ import annotations

from typing import Any

import torch

from lrcontrol.control.snapshot import Snapshot
from lrcontrol.control.state import load_fields, save_fields
from lrcontrol.params import Param

GUARD_PARAMS: tuple[Param, ...] = (
    Param(
        "guard",
        True,
        "runaway guard (not in the papers): restore the last checkpoint and cut η on a loss blow-up; "
        "False gives the published rule",
        type="bool",
        show=True,
    ),
    Param(
        "guard_ratio",
        4.0,
        "alarm when the smoothed loss exceeds the checkpoint's by this factor",
        low=1.0,
        low_open=True,
    ),
    Param("guard_every", 20, "adapted steps between checkpoints of healthy states", type="int", low=1),
    Param("guard_decay", 0.5, "factor applied to η at each restore", low=0.0, high=1.0, low_open=True, high_open=True),
    Param("guard_smoothing", 0.1, "EMA coefficient r of the smoothed loss", low=0.0, high=1.0, low_open=True),
)

#: set from the factor's config at attach time, not runtime state
_SETTINGS = ("ratio", "every", "smoothing")


class Guard:
    """Checkpoints of healthy states and the alarm that restores them (see the module docstring)."""

    def __init__(self, config: dict[str, Any], optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor]) -> None:
        self.ratio = float(config["guard_ratio"])
        self.every = int(config["guard_every"])
        self.smoothing = float(config["guard_smoothing"])
        self.checkpoint = Snapshot(optimizer, tensors)
        self.loss_ema: float | None = None
        self.checkpoint_loss: float | None = None
        self.since_checkpoint = 0
        self.restores = 0

    @property
    def armed(self) -> bool:
        """Whether there is a checkpoint to go back to."""
        return self.checkpoint.taken

    def before_step(self) -> None:
        """Take the first checkpoint before the first step."""
        if not self.checkpoint.taken:
            self.save()

    def save(self) -> None:
        self.checkpoint.take()
        self.since_checkpoint = 0

    def observe(self, loss: float, moved: bool) -> bool:
        """Feed one finite loss; True when it raises the alarm (the caller then calls `restore`)."""
        r = self.smoothing
        self.loss_ema = loss if self.loss_ema is None else (1.0 - r) * self.loss_ema + r * loss
        if self.checkpoint_loss is None:
            self.checkpoint_loss = self.loss_ema
        if self.loss_ema - self.checkpoint_loss > (self.ratio - 1.0) * abs(self.checkpoint_loss):
            return True
        if moved:
            self.since_checkpoint += 1
        if self.since_checkpoint >= self.every and self.loss_ema <= self.checkpoint_loss + abs(self.checkpoint_loss):
            self.save()
            self.checkpoint_loss = self.loss_ema
        return False

    def restore(self) -> bool:
        """Go back to the checkpoint; False (nothing done) when none was taken yet."""
        if not self.checkpoint.taken:
            return False
        self.checkpoint.restore()
        self.restores += 1
        self.loss_ema = self.checkpoint_loss
        self.since_checkpoint = 0
        return True

    # -- exact resume: every field but the settings (the checkpoint through its own state_dict) ----------
    def state_dict(self) -> dict[str, Any]:
        return save_fields(self, _SETTINGS)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_fields(self, state, _SETTINGS, "guard")
