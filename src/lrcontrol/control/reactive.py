"""Reactive rules: multipliers that react to observed losses; docs/edges.md for their edge cases.

Both rules evaluate a monitored value at *evaluations*:

- `monitor="val_loss"` (any name): an evaluation is a `controller.report(val_loss=…)` call that
  carries that metric;
- `monitor="loss"`: the mean training loss passed to `controller.step(loss)` since the last
  evaluation, taken every `every` steps (and at each `report()` call).

A non-finite monitored value (or a non-finite training loss inside the window) counts as the worst
possible value: never an improvement. Both rules compose with schedules and with each other, e.g.
`cosine() + plateau(patience=3)` — the combination torch's ReduceLROnPlateau cannot join.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from lrcontrol.control.base import Factor, group_values
from lrcontrol.control.snapshot import Snapshot
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

_MONITOR = Param(
    "monitor", "val_loss", "metric to watch: a name passed to report(), or 'loss' for the training loss", type="str"
)
_MODE = Param("mode", "min", "whether lower or higher is better", type="str", choices=("min", "max"))
_EVERY = Param(
    "every",
    0,
    "with monitor='loss': evaluate the mean training loss every this many steps (0: only at report())",
    type="int",
    low=0,
)


class _Reactive(Factor):
    """Shared evaluation logic: windows of training loss, or reported metrics."""

    kind: ClassVar[str] = "reactive"
    uses_loss: ClassVar[bool] = True

    def check_config(self) -> None:
        if self.config["every"] and self.config["monitor"] != "loss":
            raise LRControlError(
                f"{self.name}(every={self.config['every']}) evaluates the training loss; "
                f'add monitor="loss" or drop every to react to report({self.config["monitor"]}=…)'
            )

    def attach(self, ctx: Any) -> None:
        super().attach(ctx)
        self.scale = 1.0
        self.window_sum = 0.0
        self.window_count = 0
        self.window_bad = False
        self.evaluations = 0

    def multiplier(self, t: int) -> float:
        return self.scale

    def on_step(self, t: int, loss: float | None) -> None:
        if self.config["monitor"] != "loss" or loss is None:
            return
        if math.isfinite(loss):
            self.window_sum += loss
            self.window_count += 1
        else:
            self.window_bad = True
        every = self.config["every"]
        if every and (t + 1) % every == 0:
            self._close_window()

    def on_evaluation(self, metrics: dict[str, float]) -> None:
        monitor = self.config["monitor"]
        if monitor in metrics:
            self._evaluate(self._signed(metrics[monitor]))
        elif monitor == "loss":
            self._close_window()

    def _close_window(self) -> None:
        if self.window_bad:
            value = math.inf
        elif self.window_count:
            value = self.window_sum / self.window_count
        else:
            return
        self.window_sum, self.window_count, self.window_bad = 0.0, 0, False
        self._evaluate(self._signed(value))

    def _signed(self, value: float) -> float:
        """Map the metric so that lower is better and anything non-finite is +inf."""
        if not math.isfinite(value):
            return math.inf
        return value if self.config["mode"] == "min" else -value

    def _evaluate(self, value: float) -> None:
        raise NotImplementedError

    def observables(self) -> dict[str, Any]:
        return {"scale": self.scale}


@register_factor
class Plateau(_Reactive):
    """Reduce on plateau: multiply by gamma after `patience` evaluations without improvement."""

    name = "plateau"
    params = (
        Param("patience", 10, "evaluations without improvement before a cut", type="int", low=0),
        Param("gamma", 0.1, "factor applied at each cut", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("threshold", 1e-4, "least change that counts as an improvement", low=0.0),
        Param(
            "threshold_mode",
            "rel",
            "threshold relative to the best value, or absolute",
            type="str",
            choices=("rel", "abs"),
        ),
        Param("cooldown", 0, "evaluations to wait after a cut before counting again", type="int", low=0),
        Param(
            "floor",
            1e-6,
            "lowest multiplier a cut may reach (a fraction of the base LR)",
            low=0.0,
            high=1.0,
            low_open=True,
        ),
        _MONITOR,
        _MODE,
        _EVERY,
        Param(
            "eps", 0.0, "a cut that would change a group's LR by this much or less is skipped (torch: 1e-8)", low=0.0
        ),
        Param(
            "floor_lr",
            None,
            "lowest absolute LR a cut may reach (torch's min_lr): one value, or one per param group",
            type="floats",
            nullable=True,
            low=0.0,
        ),
    )
    renamed = {"min_scale": "floor", "min_lr": "floor_lr"}
    example = "plateau(patience=1)"
    examples = (
        "plateau(patience=0, eps=1e-3, floor_lr=[0.004, 0.01])",
        "plateau(patience=1)",
        "plateau(patience=0, mode='max', monitor='val_acc', cooldown=2)",
        "plateau(patience=1, monitor='loss', every=3, threshold_mode='abs')",
    )

    def attach(self, ctx: Any) -> None:
        super().attach(ctx)
        self.best = math.inf
        self.bad = 0
        self.cooldown_left = 0
        self.cuts = 0
        # With floor_lr or eps each group is cut on its own, as torch does (per-group floors and skips).
        self.group_scales: list[float] | None = None
        if self.config["floor_lr"] is not None or self.config["eps"] > 0:
            self.group_scales = [1.0] * ctx.num_groups

    def multiplier(self, t: int) -> float | list[float]:
        return self.scale if self.group_scales is None else list(self.group_scales)

    def _cut(self) -> None:
        gamma = self.config["gamma"]
        self.scale = max(self.scale * gamma, self.config["floor"])
        if self.group_scales is None:
            return
        floors = group_values(self.config["floor_lr"], self.ctx, self.name) or [0.0] * self.ctx.num_groups
        scales = []
        for s, base, floor in zip(self.group_scales, self.ctx.base_lrs, floors):
            old = s * base
            new = max(old * gamma, floor, self.config["floor"] * base)
            scales.append(new / base if old - new > self.config["eps"] else s)
        self.group_scales = scales

    def _improved(self, value: float) -> bool:
        if self.best == math.inf:
            return value < math.inf
        th = self.config["threshold"]
        if self.config["threshold_mode"] == "rel":
            # "Better by a fraction th of the best value's size", on values mapped to lower-is-better.
            # torch's ReduceLROnPlateau compares with best·(1 − th) (min) / best·(1 + th) (max): the same
            # for positive values, but for a negative best it asks for less than "no change" (rel mode
            # counts a worse value as an improvement). lrcontrol keeps the sign-correct rule
            # (docs/edges.md; tests/test_peer_schedules.py shows the difference).
            return value < self.best - abs(self.best) * th
        return value < self.best - th

    def _evaluate(self, value: float) -> None:
        self.evaluations += 1
        if self._improved(value):
            self.best = value
            self.bad = 0
        else:
            self.bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad = 0
        if self.bad > self.config["patience"]:
            self._cut()
            self.cooldown_left = self.config["cooldown"]
            self.bad = 0
            self.cuts += 1

    def upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state = super().upgrade_state(state)
        state.setdefault("group_scales", None)  # saved before per-group cuts (floor_lr, eps) existed
        return state

    def observables(self) -> dict[str, Any]:
        return {"scale": self.scale, "cuts": self.cuts}


@register_factor
class BoldDriver(_Reactive):
    """Bold driver (Vogl et al. 1988; Battiti 1989): raise the LR while the loss falls, cut it when it rises.

    At each evaluation the (optionally exponentially smoothed) monitored value is compared with the
    reference: lower → multiply by `up`; higher than reference × (1 + tolerance) or non-finite →
    multiply by `down`, and with `rollback=True` restore the parameters and optimizer state saved at
    the last accepted evaluation (the reference then stays). The multiplier stays within
    [floor, ceiling].
    """

    name = "bold_driver"
    params = (
        Param("up", 1.05, "factor when the loss went down", low=1.0),
        Param("down", 0.5, "factor when the loss went up", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("rollback", False, "on a worse evaluation, restore parameters and optimizer state", type="bool"),
        Param(
            "smoothing",
            0.0,
            "EMA coefficient applied to the monitored value before comparing",
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        Param("tolerance", 0.0, "relative increase tolerated before a cut", low=0.0),
        Param("floor", 1e-6, "lowest multiplier (a fraction of the base LR)", low=0.0, high=1.0, low_open=True),
        Param("ceiling", 100.0, "highest multiplier (a multiple of the base LR)", low=1.0),
        _MONITOR,
        _MODE,
        _EVERY,
    )
    renamed = {"min_scale": "floor", "max_scale": "ceiling"}
    example = "bold_driver(rollback=True)"
    examples = (
        "bold_driver(rollback=True)",
        "bold_driver(monitor='loss', every=2, smoothing=0.5)",
        "bold_driver(mode='max', monitor='val_acc', tolerance=0.01, rollback=True)",
    )

    def attach(self, ctx: Any) -> None:
        super().attach(ctx)
        self.reference: float | None = None
        self.smoothed: float | None = None
        # parameters and optimizer state at the last accepted evaluation (with rollback=True)
        self.snapshot = Snapshot(ctx.optimizer) if self.config["rollback"] else None
        self.ups = self.downs = self.rollbacks = 0

    def _evaluate(self, value: float) -> None:
        self.evaluations += 1
        s = self.config["smoothing"]
        if self.smoothed is None or not math.isfinite(self.smoothed) or not math.isfinite(value):
            self.smoothed = value
        else:
            self.smoothed = s * self.smoothed + (1.0 - s) * value
        current = self.smoothed
        if self.reference is None:
            if math.isfinite(current):
                self.reference = current
                self._save()
            return
        if current < self.reference:
            self.scale = min(self.scale * self.config["up"], self.config["ceiling"])
            self.ups += 1
            self.reference = current
            self._save()
        elif not math.isfinite(current) or current > self.reference + abs(self.reference) * self.config["tolerance"]:
            self.scale = max(self.scale * self.config["down"], self.config["floor"])
            self.downs += 1
            if self.snapshot is not None and self.snapshot.taken:
                self.snapshot.restore()
                self.rollbacks += 1
                self.smoothed = self.reference
            else:
                self.reference = current if math.isfinite(current) else self.reference

    def _save(self) -> None:
        if self.snapshot is not None:
            self.snapshot.take()

    def upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """lrcontrol ≤ 0.2 kept the snapshot as {"params", "optimizer": optimizer.state_dict()}."""
        old = state.get("snapshot")
        if isinstance(old, dict) and "optimizer" in old:
            saved = old["optimizer"]
            # torch numbers the parameters 0, 1, … in param-group order: the snapshot's own order
            state["snapshot"] = {
                "values": old["params"],
                "state": [saved["state"].get(i, {}) for i in range(len(old["params"]))],
                "groups": [
                    {k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")}
                    for g in saved["param_groups"]
                ],
            }
        return state

    def observables(self) -> dict[str, Any]:
        return {"scale": self.scale, "rollbacks": self.rollbacks}
