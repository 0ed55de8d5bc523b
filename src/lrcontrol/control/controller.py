"""The controller: a stack of factors (control/base.py) on any torch optimizer.

    lr_t(group) = base_lr(group) · m_1(t) · m_2(t) · … · m_k(t)

An `LRController` attaches a stack of factors to any `torch.optim.Optimizer`, keeps every parameter
group's own base LR, and sets the product before each optimizer step. In a plain loop it is one call
per step, after `optimizer.step()`:

    optimizer, controller = lrcontrol.build(model.parameters(), "adamw(lr=1e-3) + warmup(100) + cosine()",
                                            total_steps=10_000)
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        controller.step(loss)                    # the loss is optional; reactive rules use it
        if step % 500 == 0:
            controller.report(val_loss=evaluate(model))   # evaluation metrics, for plateau & co.

Factors that need the step actually taken (online adaptation) receive it through the optimizer's
own step hooks (`on_pre_step` / `on_post_step`), so they see whatever the optimizer did — including
nothing at all when an AMP GradScaler skips a step, since then `optimizer.step()` is never called.

Counting steps. The controller counts the steps the optimizer really took, seen through its step
hook: a `step()` call after which the optimizer did not step (an AMP GradScaler skipped it, or
`step()` runs once per micro-batch under gradient accumulation) leaves t and the LR unchanged.
`count="calls"` counts every call instead, as torch's schedulers do. Before the optimizer has ever
stepped, a call on parameters without gradients counts, so a schedule can be walked without training.
It warns once, naming the fix, when step() is called more often than the optimizer steps, when t
passes total_steps, and when a reactive rule has seen no evaluation after `warn_unevaluated_after`
steps.

The controller is a `torch.optim.lr_scheduler.LRScheduler` (`step()`, `step(epoch)`, `get_lr()`,
`get_last_lr()`, `state_dict()`, `load_state_dict()`, `optimizer`, `base_lrs`, `last_epoch`), so
frameworks that check for a torch scheduler (Lightning, the Hugging Face Trainer) take it as it is.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from lrcontrol.control.accounting import LRControlWarning, StepAccounting  # noqa: F401  (re-exported)
from lrcontrol.control.base import Context, Factor, Multiplier
from lrcontrol.errors import LRControlError, LROutOfRangeError
from lrcontrol.limits import MAX_HORIZON


def _whole_steps(value: Any) -> bool:
    """A positive whole number of steps (an int, or a float like 100.0), small enough to stay exact."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        return False
    return 1 <= value <= MAX_HORIZON


#: the largest LR torch can apply to float32 parameters (it converts the LR to the parameters' dtype)
LR_CEILING = float(torch.finfo(torch.float32).max)
#: below the smallest normal float32 an LR is lost in float32 arithmetic (the update rounds away)
LR_FLOOR = float(torch.finfo(torch.float32).tiny)


def _as_group_list(value: Multiplier, num_groups: int, owner: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * num_groups
    values = [float(v) for v in value]
    if len(values) != num_groups:
        raise LRControlError(f"{owner} returned {len(values)} multipliers for {num_groups} param groups")
    return values


class LRController(StepAccounting, LRScheduler):
    """A stack of factors attached to an optimizer; create it with `lrcontrol.control(...)`.

    count: "optimizer" (default) advances t only on `step()` calls that follow a step the optimizer
    really took; "calls" advances it on every call, as torch's schedulers do.
    warn_unevaluated_after: steps after which a reactive rule that has seen no evaluation warns
    (None: never).

    It subclasses torch's `LRScheduler` for its type only: torch's constructor (which wraps
    `optimizer.step`) is not run; every method a caller uses is defined here.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        factors: Sequence[Factor],
        total_steps: int | None = None,
        spec: str = "",
        resources: dict[str, Any] | None = None,
        count: str = "optimizer",
        warn_unevaluated_after: int | None = 1000,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise LRControlError(
                f"control() needs a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                "build one first or use lrcontrol.build(params, spec)"
            )
        if total_steps is not None and not _whole_steps(total_steps):
            raise LRControlError(
                f"total_steps must be a positive integer of at most 2**53 or None, got {total_steps!r}"
            )
        self._check_count(count)
        self.count = count
        self.warn_unevaluated_after = warn_unevaluated_after
        self.optimizer = optimizer
        self.factors: list[Factor] = list(factors)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.spec = spec
        self.t = 0
        self.nonfinite_losses = 0
        self._init_accounting()
        self._pending_loss: list[float] = []
        self._step_count = 1  # torch's counter (accelerate's scheduler wrapper reads it)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", float(group["lr"]))
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        for i, lr in enumerate(self.base_lrs):
            if not (math.isfinite(lr) and lr > 0):
                raise LRControlError(f"param group {i} has lr={lr!r}; every group needs a positive, finite base LR")
        self.context = Context(optimizer, self.total_steps, self.base_lrs, dict(resources or {}), self)
        for f in self.factors:
            f.attach(self.context)
        self._uses_loss = any(f.uses_loss for f in self.factors)
        self._zero_ok = any(f.may_reach_zero for f in self.factors)
        # Gradient transforms (clipping) first, then step transforms (trust ratio), then the rest in
        # stack order: every online rule must see the gradients and the step the optimizer really used.
        self._hooked = sorted((f for f in self.factors if f.uses_step_hooks), key=lambda f: f.hook_order)
        self._handles: list[Any] = []
        if self._hooked:
            self._handles.append(optimizer.register_step_pre_hook(self._pre_hook))
        # Always: the post hook counts the steps the optimizer really took.
        self._handles.append(optimizer.register_step_post_hook(self._post_hook))
        self._last_lr: list[float] = []
        self._apply()

    # -- the optimizer's hooks -------------------------------------------------------------------
    def _pre_hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for f in self._hooked:
            f.on_pre_step(optimizer)

    def _post_hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizer_steps += 1
        for f in self._hooked:
            f.on_post_step(optimizer)

    def close(self) -> None:
        """Remove the optimizer hooks this controller installed."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for f in self.factors:
            f.on_close()

    # -- the per-step calls ----------------------------------------------------------------------
    def step(self, loss: float | torch.Tensor | None = None, epoch: int | None = None) -> None:
        """Call once after each `optimizer.step()`; sets the LR for the next step.

        `loss` (a float or tensor; optional) feeds rules that watch the training loss. An int is
        torch's `step(epoch)`: jump to step `epoch` (`step(epoch=…)` says the same), without
        counting a step.
        """
        self._step_count += 1
        if epoch is None and isinstance(loss, int) and not isinstance(loss, bool):
            loss, epoch = None, loss
        if epoch is not None:
            if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 0:
                raise LRControlError(f"step(epoch={epoch!r}): the epoch must be a non-negative int")
            self.t = int(epoch)
            self._apply()
            return
        taken = self._taken()
        if loss is None and self._pending_loss:
            loss = sum(self._pending_loss) / len(self._pending_loss)
        self._pending_loss = []
        self._check_call_rate(taken)
        if not taken and self.count == "optimizer" and not self._is_preview():
            self.skipped_steps += 1
            return
        value: float | None = None
        if loss is not None and self._uses_loss:
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            if not math.isfinite(value):
                self.nonfinite_losses += 1
        for f in self.factors:
            f.on_step(self.t, value)
        self.t += 1
        self._check_horizon()
        self._check_evaluated()
        self._apply()

    def observe_loss(self, loss: float | torch.Tensor) -> None:
        """Hand over a training loss for the next `step()` that gets none (framework callbacks use it;
        several losses before one step, e.g. micro-batches, are averaged)."""
        self._pending_loss.append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))

    def report(self, metrics: dict[str, float] | None = None, /, **kwargs: float) -> None:
        """Report evaluation metrics (e.g. `report(val_loss=0.31, val_acc=0.9)`) to reactive rules."""
        merged: dict[str, float] = {}
        for source in (metrics or {}, kwargs):
            for key, v in source.items():
                merged[key] = float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
        for f in self.factors:
            f.on_evaluation(merged)
        self._apply()

    def _apply(self) -> None:
        n = len(self.optimizer.param_groups)
        if n != len(self.base_lrs):
            raise LRControlError(
                f"the optimizer has {n} param groups but the controller was attached with "
                f"{len(self.base_lrs)}; attach the controller after adding every group"
            )
        product = [1.0] * n
        for f in self.factors:
            m = _as_group_list(f.multiplier(self.t), n, f.name)
            product = [a * b for a, b in zip(product, m)]
        lrs = []
        for group, base, m in zip(self.optimizer.param_groups, self.base_lrs, product):
            lr = base * m
            if not (math.isfinite(lr) and (LR_FLOOR <= lr <= LR_CEILING or (lr == 0 and self._zero_ok))):
                names = ", ".join(f"{f.name}={f.multiplier(self.t)!r}" for f in self.factors)
                what = f"underflowed ({lr!r})" if 0 <= lr < LR_FLOOR else f"left the range torch can apply ({lr!r})"
                raise LROutOfRangeError(
                    f"the LR {what} at step {self.t} ({names}); the base LR or the schedule's factors are too extreme"
                )
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # a tensor LR (capturable / compiled optimizers) stays a tensor
            else:
                group["lr"] = lr
            lrs.append(lr)
        self._last_lr = lrs

    # -- what can be observed --------------------------------------------------------------------
    @property
    def lrs(self) -> list[float]:
        """The LR of each param group for the next step."""
        return list(self._last_lr)

    @property
    def multipliers(self) -> list[float]:
        """The product of all factors, per param group."""
        return [lr / base for lr, base in zip(self._last_lr, self.base_lrs)]

    def factor_multipliers(self) -> list[tuple[str, list[float]]]:
        """Each factor's own multiplier per group, in stack order."""
        n = len(self.base_lrs)
        return [(f.name, _as_group_list(f.multiplier(self.t), n, f.name)) for f in self.factors]

    def effective_lrs(self) -> list[float]:
        """The step size the optimizer really applies per group (LR × an LR-free optimizer's own estimate)."""
        from lrcontrol.optim import effective_lr

        return [effective_lr(self.optimizer, i) for i in range(len(self.base_lrs))]

    @property
    def extra_steps(self) -> int:
        """Training steps the factors spent outside the run (LR range tests and the like)."""
        return sum(int(f.extra_steps) for f in self.factors)

    def observables(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, f in enumerate(self.factors):
            for key, v in f.observables().items():
                out[f"{i}.{f.name}.{key}"] = v
        return out

    # -- torch LR-scheduler surface -------------------------------------------------------------
    def get_last_lr(self) -> list[float]:
        return self.lrs

    def get_lr(self) -> list[float]:
        """The LR of each group at the current step (the same as `get_last_lr()`: nothing is chained)."""
        return self.lrs

    @property
    def last_epoch(self) -> int:
        return self.t

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self.t = int(value)

    # -- exact resume ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "spec": self.spec,
            "factor_names": [f.name for f in self.factors],
            "t": self.t,
            "total_steps": self.total_steps,
            "base_lrs": list(self.base_lrs),
            "nonfinite_losses": self.nonfinite_losses,
            "skipped_steps": self.skipped_steps,
            "factors": [f.state_dict() for f in self.factors],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state. The horizon given to this controller wins over the saved one, so a
        run can be resumed with a longer (or shorter) budget; see docs/edges.md for each schedule."""
        names = [f.name for f in self.factors]
        if state.get("factor_names") != names:
            raise LRControlError(
                f"this state was saved from the controllers {state.get('factor_names')} "
                f"(spec {state.get('spec')!r}) but this controller has {names}; build the same spec to resume"
            )
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise LRControlError(
                f"this state has {len(state['base_lrs'])} param groups but the optimizer has {len(self.base_lrs)}"
            )
        self.t = int(state["t"])
        self.base_lrs[:] = [float(x) for x in state["base_lrs"]]
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self.nonfinite_losses = int(state.get("nonfinite_losses", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        for f, fs in zip(self.factors, state["factors"]):
            f.load_state_dict(fs)
        self._apply()

    def __repr__(self) -> str:
        return f"LRController({self.spec!r}, t={self.t}, lrs={self.lrs})"
