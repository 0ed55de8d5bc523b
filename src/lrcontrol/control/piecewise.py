"""Piecewise schedules: a held factor, a linear ramp between any two factors, and a sequence of schedules.

torch users write `ConstantLR`, `LinearLR` and `SequentialLR`; these are the same LRs as factors:

- `hold(scale, steps)`: m(t) = scale for t < steps, then 1 (torch's ConstantLR(factor, total_iters)).
- `ramp(start, end, steps)`: m(t) = start + (end − start)·min(t, steps)/steps, rising or falling, and
  `end` from step `steps` on (torch's LinearLR(start_factor, end_factor, total_iters)).
- `sequential(parts, milestones)`: the schedule `parts[i]` from milestone i on, each restarted at its
  own step 0 at its milestone (torch's SequentialLR):
      m(t) = part_i(t − milestone_i),   milestone_0 = 0,   i = #{milestones ≤ t}.
  `parts` is one string of specs separated by `|`, e.g.
  `sequential(parts="hold(0.1, 3) | exponential(0.9)", milestones=[3])`; each part may itself be a
  product (`"ramp(0.1, 1, 5) + hold(0.1, 5)"`). Parts are schedules (functions of the step alone).

These factors may raise the LR (a ramp up, the end of a hold): they are multipliers like any other, and
the conformance suite checks them like any other.
"""

from __future__ import annotations

import bisect
from typing import Any

from lrcontrol.control.base import Context, Factor
from lrcontrol.control.schedules import Schedule
from lrcontrol.errors import LRControlError
from lrcontrol.params import REQUIRED, Param, resolve_horizon
from lrcontrol.registration import register_factor

_FACTOR = dict(low=0.0, low_open=True)


@register_factor
class Hold(Schedule):
    """Hold: scale × base LR for the first `steps` steps, then the base LR (torch ConstantLR)."""

    name = "hold"
    params = (
        Param("scale", REQUIRED, "the multiplier while held", **_FACTOR),
        Param("steps", REQUIRED, "steps held: int, or a fraction of the run", type="horizon"),
    )
    example = "hold(0.5, 5)"
    examples = ("hold(0.25, 0.5)",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.length = resolve_horizon(self.config["steps"], ctx.total_steps, self.name, "steps")

    def value(self, t: int) -> float:
        return self.config["scale"] if t < self.length else 1.0

    def state_dict(self) -> dict[str, Any]:
        return {"length": self.length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.length = int(state["length"])


@register_factor
class Ramp(Schedule):
    """Linear ramp from start to end over `steps` steps, then end (torch LinearLR; rising or falling)."""

    name = "ramp"
    params = (
        Param("start", REQUIRED, "the multiplier at step 0", **_FACTOR),
        Param("end", 1.0, "the multiplier from step `steps` on", **_FACTOR),
        Param("steps", REQUIRED, "length of the ramp: int, or a fraction of the run", type="horizon"),
    )
    example = "ramp(0.25, 0.6, 4)"
    examples = ("ramp(0.9, 0.3, 10)",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.length = resolve_horizon(self.config["steps"], ctx.total_steps, self.name, "steps")

    def value(self, t: int) -> float:
        start, end = self.config["start"], self.config["end"]
        return start + (end - start) * min(t, self.length) / self.length

    def state_dict(self) -> dict[str, Any]:
        return {"length": self.length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.length = int(state["length"])


@register_factor
class Sequential(Schedule):
    """Sequence of schedules switched at milestones, each restarted at its milestone (torch SequentialLR)."""

    name = "sequential"
    params = (
        Param("parts", REQUIRED, "schedules separated by '|', e.g. \"hold(0.1, 3) | exponential(0.9)\"", type="str"),
        Param("milestones", REQUIRED, "steps at which the next part starts (one fewer than parts)", type="ints", low=1),
    )
    example = "sequential(parts='ramp(0.1, 1, 5) | cosine(steps=30)', milestones=[5])"
    examples = ("sequential(parts='exponential(0.8) | step(every=4) | hold(0.5, 3)', milestones=[3, 9])",)

    def check_config(self) -> None:
        from lrcontrol.api import make_factors
        from lrcontrol.spec import parse

        texts = [p.strip() for p in self.config["parts"].split("|")]
        ms = list(self.config["milestones"])
        if len(ms) != len(texts) - 1 or ms != sorted(set(ms)):
            raise LRControlError(
                f"sequential(): {len(texts)} parts need {len(texts) - 1} strictly increasing milestones, got {ms}"
            )
        self.parts: list[list[Factor]] = []
        for text in texts:
            spec = parse(text)
            if spec.optimizer is not None:
                raise LRControlError(f"sequential(): part {text!r} names an optimizer; parts are schedules")
            factors = make_factors(spec.factors)
            for f in factors:
                if f.kind != "schedule":
                    raise LRControlError(
                        f"sequential(): part {text!r} has {f.name}(), a {f.kind} rule; parts must be schedules "
                        "(functions of the step); compose rules outside: sequential(...) + plateau()"
                    )
            self.parts.append(factors)
        self.starts = [0, *ms]

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        for part in self.parts:
            for f in part:
                f.attach(ctx)

    def value(self, t: int) -> float | list[float]:
        i = bisect.bisect_right(self.starts, t) - 1
        local = t - self.starts[i]
        product = [1.0] * self.ctx.num_groups
        for f in self.parts[i]:
            m = f.multiplier(local)
            ms = [m] * len(product) if isinstance(m, (int, float)) else list(m)
            product = [a * b for a, b in zip(product, ms)]
        return product[0] if len(set(product)) == 1 else product

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [[f.state_dict() for f in part] for part in self.parts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, saved in zip(self.parts, state["parts"]):
            for f, fs in zip(part, saved):
                f.load_state_dict(fs)
