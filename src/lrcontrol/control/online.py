"""Shared machinery of the online controllers (METHODS.md §4): the step actually taken, one global
η multiplier with bounds, skipping of non-finite steps, and a runaway safeguard.

An online controller watches the optimizer's own steps. `OnlineFactor` captures them through the
optimizer's step hooks, for any `torch.optim.Optimizer`:

    on_pre_step:   θ_before ← θ                         (torch._foreach_copy_, buffers reused)
    on_post_step:  step = θ_before − θ  (in place, = −Δθ = η·s),  ‖step_k‖ per tensor k   (one host sync)
    on_step(loss): adapt(step, ‖step‖, loss)  unless the step or the loss is non-finite  → η multiplier

The direction of the step actually taken is s_k = −Δθ_k / η_group (METHODS.md §4); its normalised
form ŝ_k = −Δθ_k/‖Δθ_k‖ does not depend on η at all. Adaptation is deferred from the post-step hook
to `controller.step(loss)` so that a non-finite loss can veto it.

Subclasses implement `adapt(step, norms, loss)` and call `self.set_scale(value)`; they can
extend `online_state()` / `load_online_state()` and `on_restore()`.

Behaviour worth knowing
-----------------------
- **Non-finite input.** A non-finite displacement (a NaN/inf gradient always produces one for SGD
  and Adam-type optimizers) or a non-finite loss skips the adaptation; it is counted in `skipped`.
  The multiplier is never changed to a non-finite, zero or negative value: `set_scale` clamps to
  [`min_scale`, `max_scale`] and ignores non-finite proposals.
- **Runaway safeguard** (`guard=True`, the default; METHODS.md §4.1 says the plain CLARA rule keeps
  raising η past the stability limit on noise-free problems, and §4.2 restores-and-halves). Every
  `guard_every` adapted steps, if the smoothed loss is at most twice the last checkpoint's, the
  parameters and every tensor of the optimizer state are copied into a checkpoint (foreach copies
  into reused buffers), with the per-group entries an optimizer keeps in its param_groups (D-Adaptation's
  d, DoG's r̄; never the LR). An alarm is raised when the exponentially smoothed loss
  (L̄ ← (1 − r)·L̄ + r·loss, r = `guard_smoothing`) rises above the checkpoint's by more than
  (`guard_ratio` − 1)·|L̄_checkpoint|, or when the step produced non-finite parameters or the loss is
  non-finite. On alarm the checkpoint is restored, the multiplier is multiplied by `guard_decay`
  (halved by default) and the controller's own statistics are reset (`on_restore`). Restores are
  counted in `restores`. Without a loss passed to `controller.step(loss)` only the non-finite checks
  act. The guard costs one extra copy of the parameters and of the optimizer state in memory.
- **Gradient clipping** (`clip_grad_norm_` before `optimizer.step()`): the controller sees the step
  actually taken, i.e. the clipped one. A global-norm clip rescales every gradient by one factor, so
  for plain SGD the normalised directions, and hence CLARA, are unchanged; for Adam the clipped
  gradient enters the moments and the direction changes only through them. Controllers that use the
  step length itself (hypergradients) see the clipped length.
- **AMP GradScaler**: when the scaler finds inf/NaN gradients it does not call `optimizer.step()`,
  so the hooks do not fire and the following `controller.step(loss)` finds no step to adapt from.
  That step is counted in `idle_steps`, the multiplier is unchanged, and the loss still feeds the
  safeguard's smoothed loss (the parameters did not move). Likewise when `optimizer.step()` was not
  called for any other reason.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context, Factor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param

_NOT_GROUP_STATE = ("params", "lr", "initial_lr")

SAFEGUARD_PARAMS: tuple[Param, ...] = (
    Param("min_scale", 1e-10, "floor of the multiplier (a fraction of the base LR)", low=0.0, low_open=True),
    Param("max_scale", 1e10, "ceiling of the multiplier (a multiple of the base LR)", low=1.0),
    Param("guard", True, "runaway safeguard: restore the last checkpoint and cut η on a loss blow-up", type="bool"),
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


def _clone_list(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


class OnlineFactor(Factor):
    """Base of the online controllers: one global η multiplier driven by the optimizer's own steps."""

    kind: ClassVar[str] = "online"
    uses_step_hooks: ClassVar[bool] = True
    uses_loss: ClassVar[bool] = True
    params: ClassVar[tuple[Param, ...]] = SAFEGUARD_PARAMS

    def check_config(self) -> None:
        if self.config["min_scale"] > 1.0:
            raise LRControlError(
                f"{self.name}(min_scale={self.config['min_scale']:g}) must be at most 1 so the start LR is allowed"
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
        self.restores = 0
        # transient, never saved: the state between the hooks and controller.step()
        self._before: list[torch.Tensor] | None = None
        self._pending: tuple[list[torch.Tensor], list[float]] | None = None
        self._pending_bad = False
        self.step_lrs: list[float] = []
        # safeguard
        self.loss_ema: float | None = None
        self.ckpt_loss: float | None = None
        self.ckpt_params: list[torch.Tensor] | None = None
        self.ckpt_opt: list[dict[str, Any]] | None = None
        self.ckpt_groups: list[dict[str, Any]] | None = None
        self.since_ckpt = 0

    # -- the multiplier --------------------------------------------------------------------------
    def multiplier(self, t: int) -> float:
        return self.scale

    def set_scale(self, value: float) -> None:
        """Set the multiplier, clamped to [min_scale, max_scale]; a non-finite proposal is ignored."""
        if not math.isfinite(value):
            self.skipped += 1
            return
        self.scale = min(max(value, self.config["min_scale"]), self.config["max_scale"])

    # -- the optimizer's hooks -------------------------------------------------------------------
    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.config["guard"] and self.ckpt_params is None:
            self._checkpoint()
        with torch.no_grad():
            if self._before is None:
                self._before = _clone_list(self.tensors)
            else:
                torch._foreach_copy_(self._before, self.tensors)
        self.step_lrs = [float(optimizer.param_groups[g]["lr"]) for g in range(len(optimizer.param_groups))]

    def on_post_step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            # in place into the pre-step copy: step = θ_before − θ_after = η·s (no allocation per step)
            step = self._before
            torch._foreach_sub_(step, self.tensors)
            norms = torch.stack(torch._foreach_norm(step)).tolist()  # the one host sync of the capture
            if not all(math.isfinite(n) for n in norms):
                self._pending, self._pending_bad = None, True
                return
            if not any(n > 0 for n in norms):  # nothing moved (zero gradients): no information, an idle step
                self._pending, self._pending_bad = None, False
                return
            self.transform_step(step, norms)
        self._pending, self._pending_bad = (step, norms), False

    def transform_step(self, step: list[torch.Tensor], norms: list[float]) -> None:
        """Hook for variants that change the step just taken (CLARA's unit step); default: nothing.

        `step[k]` = θ_before − θ_after and `norms[k]` = ‖step[k]‖; both may be changed in place."""

    # -- the per-step call -----------------------------------------------------------------------
    def on_step(self, t: int, loss: float | None) -> None:
        pending, bad = self._pending, self._pending_bad
        self._pending, self._pending_bad = None, False
        loss_bad = loss is not None and not math.isfinite(loss)
        if bad or loss_bad:
            self.skipped += 1
            if self.config["guard"] and (bad or self.ckpt_params is not None):
                self._restore()
            return
        if pending is None:
            self.idle_steps += 1
        else:
            self.adapt(pending[0], pending[1], loss)
            self.adapted_steps += 1
        if self.config["guard"] and loss is not None:
            self._guard(loss, moved=pending is not None)

    def adapt(self, step: list[torch.Tensor], norms: list[float], loss: float | None) -> None:
        """Update the controller from one finite step: step[k] = θ_before − θ_after = η·s_k (a buffer the
        controller may overwrite; it is reused for the next step) and norms[k] = ‖step[k]‖."""
        raise NotImplementedError

    # -- runaway safeguard -----------------------------------------------------------------------
    def _guard(self, loss: float, moved: bool) -> None:
        r = self.config["guard_smoothing"]
        self.loss_ema = loss if self.loss_ema is None else (1.0 - r) * self.loss_ema + r * loss
        if self.ckpt_loss is None:
            self.ckpt_loss = self.loss_ema
        excess = self.loss_ema - self.ckpt_loss
        if excess > (self.config["guard_ratio"] - 1.0) * abs(self.ckpt_loss):
            self._restore()
            return
        if moved:
            self.since_ckpt += 1
        if self.since_ckpt >= self.config["guard_every"] and self.loss_ema <= self.ckpt_loss + abs(self.ckpt_loss):
            self._checkpoint()
            self.ckpt_loss = self.loss_ema

    def _group_entries(self) -> list[dict[str, Any]]:
        """Per-group optimizer state kept in param_groups (D-Adaptation's d, DoG's r̄, …); the LR is ours."""
        return [
            copy.deepcopy({k: v for k, v in g.items() if k not in _NOT_GROUP_STATE})
            for g in self.ctx.optimizer.param_groups
        ]

    def _optimizer_tensors(self) -> list[dict[str, Any]]:
        state = self.ctx.optimizer.state
        return [dict(state[p]) if p in state else {} for p in self.tensors]

    def _checkpoint(self) -> None:
        with torch.no_grad():
            if self.ckpt_params is None:
                self.ckpt_params = _clone_list(self.tensors)
            else:
                torch._foreach_copy_(self.ckpt_params, self.tensors)
            current = self._optimizer_tensors()
            old = self.ckpt_opt
            same = old is not None and all(
                a.keys() == b.keys()
                and all(
                    (isinstance(a[k], torch.Tensor) and isinstance(b[k], torch.Tensor) and a[k].shape == b[k].shape)
                    for k in a
                )
                for a, b in zip(old, current)
            )
            if same:
                dst = [d[k] for d in old for k in d]
                src = [s[k] for s in current for k in s]
                if dst:
                    torch._foreach_copy_(dst, src)
            else:
                self.ckpt_opt = [
                    {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
                    for s in current
                ]
        self.ckpt_groups = self._group_entries()
        self.since_ckpt = 0

    def _restore(self) -> None:
        if self.ckpt_params is None:
            self.set_scale(self.scale * self.config["guard_decay"])
            return
        with torch.no_grad():
            torch._foreach_copy_(self.tensors, self.ckpt_params)
            state = self.ctx.optimizer.state
            for p, saved in zip(self.tensors, self.ckpt_opt):
                if not saved:
                    state.pop(p, None)
                    continue
                live = state[p]
                live.clear()
                live.update({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in saved.items()})
            for group, saved_group in zip(self.ctx.optimizer.param_groups, self.ckpt_groups):
                for key in [k for k in group if k not in _NOT_GROUP_STATE and k not in saved_group]:
                    del group[key]
                group.update(copy.deepcopy(saved_group))
        self.restores += 1
        self.set_scale(self.scale * self.config["guard_decay"])
        self.loss_ema = self.ckpt_loss
        self.since_ckpt = 0
        self.on_restore()

    def on_restore(self) -> None:
        """Reset the controller's own statistics after a restore (e.g. CLARA's path)."""

    # -- observables and state ---------------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        return {"scale": self.scale, "skipped": self.skipped, "restores": self.restores}

    def online_state(self) -> dict[str, Any]:
        """Subclass state, merged into `state_dict()` (tensors must be cloned)."""
        return {}

    def load_online_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "adapted_steps": self.adapted_steps,
            "skipped": self.skipped,
            "idle_steps": self.idle_steps,
            "restores": self.restores,
            "loss_ema": self.loss_ema,
            "ckpt_loss": self.ckpt_loss,
            "since_ckpt": self.since_ckpt,
            "ckpt_params": None if self.ckpt_params is None else _clone_list(self.ckpt_params),
            "ckpt_opt": None
            if self.ckpt_opt is None
            else [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()} for s in self.ckpt_opt],
            "ckpt_groups": copy.deepcopy(self.ckpt_groups),
            "online": self.online_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.adapted_steps = int(state["adapted_steps"])
        self.skipped = int(state["skipped"])
        self.idle_steps = int(state["idle_steps"])
        self.restores = int(state["restores"])
        self.loss_ema = None if state["loss_ema"] is None else float(state["loss_ema"])
        self.ckpt_loss = None if state["ckpt_loss"] is None else float(state["ckpt_loss"])
        self.since_ckpt = int(state["since_ckpt"])
        if state["ckpt_params"] is None:
            self.ckpt_params = None
        else:
            self.ckpt_params = [
                saved.detach().clone().to(device=p.device, dtype=p.dtype)
                for saved, p in zip(state["ckpt_params"], self.tensors)
            ]
        self.ckpt_opt = (
            None
            if state["ckpt_opt"] is None
            else [
                {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()} for s in state["ckpt_opt"]
            ]
        )
        self.ckpt_groups = copy.deepcopy(state["ckpt_groups"])
        self._before, self._pending, self._pending_bad = None, None, False
        self.load_online_state(state["online"])
