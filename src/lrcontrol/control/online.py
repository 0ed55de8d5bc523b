"""Shared machinery of the online controllers: the step actually taken, one global η multiplier with
bounds, skipping of non-finite steps; the runaway guard is a separate unit they compose (`guard.py`).

An online controller watches the optimizer's own steps. `OnlineFactor` captures them through the
optimizer's step hooks, for any `torch.optim.Optimizer`:

    on_pre_step:   before_step(optimizer)   (rules that adapt from the gradient, before the step)
                   θ_before ← θ                         (torch._foreach_copy_, buffers reused)
    on_post_step:  after_step(optimizer)
                   step = θ_before − θ  (in place, = −Δθ = η·s),  ‖step_k‖ per tensor k   (one host sync)
    on_step(loss): adapt(step, ‖step‖, loss)  unless the step or the loss is non-finite  → η multiplier

The step taken with learning rate η in the direction s is Δθ = −η·s, so s_k = −Δθ_k/η_group for each
parameter tensor k; its normalised form ŝ_k = −Δθ_k/‖Δθ_k‖ does not depend on η at all. Adaptation
is deferred from the post-step hook to `controller.step(loss)` so that a non-finite loss can veto it.

A rule implements only its adaptation:

- rules that read the step taken (CLARA) implement `adapt(step, norms, loss)` and may change the
  step in `transform_step` (CLARA's unit variant);
- rules that adapt from the gradient before the step (ALeRA, hypergradient) set
  `captures_step = False` and implement `before_step(optimizer) -> bool` (False: the gradient was
  non-finite) and, if they need it, `after_step(optimizer)`;
- all call `self.set_scale(value)` for the global multiplier and may reset their statistics in
  `on_restore()` after the guard went back to a checkpoint.

Their runtime state is saved whole by `Factor.state_dict()`; what is not state is listed in `transient`.

Behaviour worth knowing
-----------------------
- **Non-finite input.** A non-finite displacement (a NaN/inf gradient always produces one for SGD
  and Adam-type optimizers) or a non-finite loss skips the adaptation; it is counted in `skipped`.
  The multiplier is never changed to a non-finite, zero or negative value: `set_scale` clamps to
  [`floor`, `ceiling`] and ignores non-finite proposals.
- **Runaway guard** (`guard=True`, the default, shown in the canonical spec; control/guard.py): on a
  loss blow-up or a non-finite loss or step, the last healthy checkpoint is restored, the multiplier
  is multiplied by `guard_decay` and the rule resets its statistics (`on_restore`). With
  `guard=False` a non-finite step or loss is only skipped.
- **Gradient clipping** (`clip_grad_norm_` before `optimizer.step()`): the controller sees the step
  actually taken, i.e. the clipped one. A global-norm clip rescales every gradient by one factor, so
  for plain SGD the normalised directions, and hence CLARA, are unchanged; for Adam the clipped
  gradient enters the moments and the direction changes only through them. Controllers that use the
  step length itself (hypergradients) see the clipped length.
- **AMP GradScaler**: when the scaler finds inf/NaN gradients it does not call `optimizer.step()`,
  so the hooks do not fire and the following `controller.step(loss)` finds no step to adapt from.
  That step is counted in `idle_steps`, the multiplier is unchanged, and the loss still feeds the
  guard's smoothed loss (the parameters did not move). Likewise when `optimizer.step()` was not
  called for any other reason.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context, Factor
from lrcontrol.control.direction import DirectionReader
from lrcontrol.control.guard import GUARD_PARAMS, Guard
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param

ONLINE_PARAMS: tuple[Param, ...] = (
    Param("floor", 1e-10, "lowest multiplier (a fraction of the base LR)", low=0.0, low_open=True),
    Param("ceiling", 1e10, "highest multiplier (a multiple of the base LR)", low=1.0),
) + GUARD_PARAMS

#: the outcome of the last optimizer step, between its hooks and controller.step(): a non-finite step
_BAD = "bad"
#: a step was taken and the rule adapted before it (nothing to pass to adapt())
_NO_CAPTURE: tuple[list[torch.Tensor], list[float]] = ([], [])


class OnlineFactor(Factor):
    """Base of the online controllers: one global η multiplier driven by the optimizer's own steps."""

    kind: ClassVar[str] = "online"
    uses_step_hooks: ClassVar[bool] = True
    uses_loss: ClassVar[bool] = True
    params: ClassVar[tuple[Param, ...]] = ONLINE_PARAMS
    #: whether the base class measures the step taken (θ_before − θ_after) and passes it to `adapt`
    captures_step: ClassVar[bool] = True
    transient: ClassVar[tuple[str, ...]] = (
        "tensors",
        "tensor_group",
        "sizes",
        "step_lrs",
        "_before",
        "_outcome",
        "reader",
        "_moved",
        "step_scales",
    )
    #: a rule that needs only the direction of the step (CLARA): for an optimizer that
    #: `DirectionReader` knows, `adapt` gets the optimizer's own direction s_k (exact in float32, and
    #: no copy of θ) instead of the displacement; `step_scales[k]` says how long the step along it was
    reads_direction: ClassVar[bool] = False
    renamed: ClassVar[dict[str, str]] = {"min_scale": "floor", "max_scale": "ceiling"}

    def check_config(self) -> None:
        if self.config["floor"] > 1.0:
            raise LRControlError(
                f"{self.name}(floor={self.config['floor']:g}) must be at most 1 so the start LR is allowed"
            )

    # -- attach ----------------------------------------------------------------------------------
    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.tensors: list[torch.Tensor] = []
        self.tensor_group: list[int] = []
        for gi, group in enumerate(ctx.optimizer.param_groups):
            for p in group["params"]:
                if p.requires_grad:
                    self.tensors.append(p)
                    self.tensor_group.append(gi)
        if not self.tensors:
            raise LRControlError(f"{self.name}() found no trainable parameters in the optimizer")
        self.sizes = [p.numel() for p in self.tensors]
        self.scale = 1.0
        self.adapted_steps = 0
        self.skipped = 0
        self.idle_steps = 0
        self.guard: Guard | None = Guard(self.config, ctx.optimizer, self.tensors) if self.config["guard"] else None
        # transient: the state between the hooks and controller.step()
        self._before: list[torch.Tensor] | None = None
        self._outcome: Any = None
        self.reader = (
            DirectionReader.of(ctx.optimizer, self.tensors, self.tensor_group) if self.reads_direction else None
        )
        self._moved: list[bool] | None = None  # this step reads the optimizer's direction: who has a gradient
        #: the step just taken along step[k] was −step_scales[k]·step[k] (1 for the displacement)
        self.step_scales: list[float] = []
        self.step_lrs: list[float] = []

    @property
    def restores(self) -> int:
        """How many times the guard went back to a checkpoint."""
        return 0 if self.guard is None else self.guard.restores

    # -- the multiplier --------------------------------------------------------------------------
    def multiplier(self, t: int) -> float:
        return self.scale

    def set_scale(self, value: float) -> None:
        """Set the multiplier, clamped to [floor, ceiling]; a non-finite proposal is ignored."""
        if not math.isfinite(value):
            self.skipped += 1
            return
        self.scale = min(max(value, self.config["floor"]), self.config["ceiling"])

    # -- the optimizer's hooks: the shared step capture ------------------------------------------
    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.guard is not None:
            self.guard.before_step()
        self._outcome = None if self.before_step(optimizer) else _BAD
        if not self.captures_step:
            return
        self.step_lrs = [float(optimizer.param_groups[g]["lr"]) for g in range(len(optimizer.param_groups))]
        # the optimizer moves the tensors with a gradient and skips the others
        self._moved = None if self.reader is None else self.reader.moved()
        if self._moved is not None:
            self.reader.begin()
            return
        with torch.no_grad():
            if self._before is None:
                self._before = [t.detach().clone() for t in self.tensors]
            else:
                torch._foreach_copy_(self._before, self.tensors)

    def on_post_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.reader is not None:
            self.reader.end()
        self.after_step(optimizer)
        if self._outcome is _BAD:
            return
        if not self.captures_step:
            self._outcome = _NO_CAPTURE
            return
        with torch.no_grad():
            if self._moved is not None:  # the optimizer's own direction s_k; the step was −scale_k·s_k
                step, self.step_scales = self.reader.read(self._moved)
            else:
                # in place into the pre-step copy: step = θ_before − θ_after = η·s (no allocation per step)
                step = self._before
                torch._foreach_sub_(step, self.tensors)
                self.step_scales = [1.0] * len(step)
            norms = torch.stack(torch._foreach_norm(step)).tolist()  # the one host sync of the capture
            if not all(map(math.isfinite, norms)):
                self._outcome = _BAD
                return
            if max(norms) <= 0:  # nothing moved (zero gradients): no information, an idle step
                self._outcome = None
                return
            self.transform_step(step, norms)
        self._outcome = (step, norms)

    def on_close(self) -> None:
        if self.reader is not None:  # a step that raised between the hooks left the recorder entered
            self.reader.end()

    def before_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """For rules that adapt before the step, from the gradient: adapt; False if it was non-finite."""
        return True

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """For rules that change or record the step just taken (before the capture measures it)."""

    def transform_step(self, step: list[torch.Tensor], norms: list[float]) -> None:
        """Hook for variants that change the step just taken (CLARA's unit step); default: nothing.

        The optimizer moved tensor k by −step_scales[k]·step[k]; `norms[k]` = ‖step[k]‖. `step` may be
        the optimizer's own tensors (gradient, momentum): change the parameters, never `step`."""

    # -- the per-step call -----------------------------------------------------------------------
    def on_step(self, t: int, loss: float | None) -> None:
        outcome, self._outcome = self._outcome, None
        loss_bad = loss is not None and not math.isfinite(loss)
        if outcome is _BAD or loss_bad:
            self.skipped += 1
            if self.guard is not None and (outcome is _BAD or self.guard.armed):
                self.rollback()
            return
        if outcome is None:
            self.idle_steps += 1
        else:
            self.adapt(outcome[0], outcome[1], loss)
            self.adapted_steps += 1
        if self.guard is not None and loss is not None and self.guard.observe(loss, moved=outcome is not None):
            self.rollback()

    def adapt(self, step: list[torch.Tensor], norms: list[float], loss: float | None) -> None:
        """Update the rule from one finite step: step[k] = θ_before − θ_after = η·s_k, or for a
        `reads_direction` rule with a known optimizer s_k itself (the optimizer's tensors: read only), and
        norms[k] = ‖step[k]‖. Rules with `captures_step = False` get empty lists and adapt in
        `before_step` instead."""

    # -- the guard's restore ---------------------------------------------------------------------
    def rollback(self) -> bool:
        """Go back to the guard's checkpoint (if any) and cut η by `guard_decay`; True if restored."""
        restored = self.guard is not None and self.guard.restore()
        self.set_scale(self.scale * self.config["guard_decay"])
        if restored:
            self.on_restore()
        return restored

    def on_restore(self) -> None:
        """Reset the rule's own statistics after a restore (e.g. CLARA's path)."""

    # -- observables and resume ------------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        return {"scale": self.scale, "skipped": self.skipped, "restores": self.restores}

    def after_load(self) -> None:
        self._outcome, self._moved = None, None

    def upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state of lrcontrol ≤ 0.2 (the guard's fields inline, the rule's own under "online")."""
        if "online" not in state:
            return state
        new = {key: state[key] for key in ("scale", "adapted_steps", "skipped", "idle_steps")}
        new["guard"] = None
        if self.guard is not None:
            checkpoint = None
            if state["ckpt_params"] is not None:
                checkpoint = {
                    "values": state["ckpt_params"],
                    "state": state["ckpt_opt"],
                    "groups": state["ckpt_groups"],
                }
            new["guard"] = {
                "loss_ema": state["loss_ema"],
                "checkpoint_loss": state["ckpt_loss"],
                "since_checkpoint": state["since_ckpt"],
                "restores": state["restores"],
                "checkpoint": checkpoint,
            }
        new.update(self.upgrade_online_state(dict(state["online"])))
        return new

    def upgrade_online_state(self, online: dict[str, Any]) -> dict[str, Any]:
        """The rule's own fields from an lrcontrol ≤ 0.2 state (default: unchanged)."""
        return online
