"""Schedules: multipliers that are pure functions of the step t; each class's docstring has its formula.

Progress is p = t / T with T the planned number of steps (the horizon) and t = 0 … T−1, so the
first step runs at p = 0 and a decay never reaches its end value exactly (as in torch).

Edges, the same for every schedule (docs/edges.md has the table):
- Horizons are given as an int number of steps or a float fraction of the run (`warmup(0.05)`);
  a fraction, and a decay over the whole run (`cosine()`), needs `total_steps`.
- Past the horizon a schedule holds the value of its last planned step (t = T − 1), so the LR
  never drops to zero; periodic schedules (step, sgdr, cyclic, …) just go on.
- `total_steps=1`: the single step runs at p = 0, i.e. at the schedule's starting value.
- A warmup at least as long as the run is clamped to the run, so the last step reaches the base LR.
- Resuming with a different `total_steps`: decays follow the new horizon; warmups keep the length
  they were resolved to when the run started, and WSD's cooldown moves to the new end without
  touching the warmup or the stable phase.

The schedules that rise again (SGDR's restarts, cyclical LRs, one-cycle) are in `cyclical.py`.

Names: `min_scale` (a fraction of the base LR) and `min_lr` (absolute, per group) are always the
value a decay goes to — its end value, or the low point of a cycle. A clamp that binds only when a
rule would go lower is a `floor` (`exponential(floor=…)`, as in the reactive and online rules).
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

from lrcontrol.control.base import Context, Factor, group_values
from lrcontrol.params import REQUIRED, Param, resolve_horizon
from lrcontrol.registration import register_factor

MIN_SCALE = Param("min_scale", 0.0, "end value as a fraction of the base LR", low=0.0, high=1.0, high_open=True)
MIN_LR = Param(
    "min_lr",
    None,
    "absolute end LR (torch's eta_min): one value, or one per param group; replaces min_scale",
    type="floats",
    nullable=True,
    low=0.0,
)
STEPS = Param(
    "steps", 1.0, "horizon: steps (int) or fraction of the run (float); default the whole run", type="horizon"
)


class Schedule(Factor):
    """A multiplier that is a function of the step alone."""

    kind: ClassVar[str] = "schedule"
    #: name of the horizon parameter over which the schedule runs, or None for an unbounded one.
    horizon_param: ClassVar[str | None] = None
    #: a resolved horizon follows the total_steps of the controller a state is loaded into (docs/edges.md)
    transient: ClassVar[tuple[str, ...]] = ("horizon",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.horizon: int | None = None
        if self.horizon_param is not None:
            self.horizon = resolve_horizon(
                self.config[self.horizon_param], ctx.total_steps, self.name, self.horizon_param
            )

    def multiplier(self, t: int) -> float | list[float]:
        if self.horizon is not None:
            t = min(t, self.horizon - 1)
        return self.value(t)

    def value(self, t: int) -> float | list[float]:
        raise NotImplementedError

    def end_values(self) -> list[float]:
        """The end value per group as a fraction of its base LR: min_lr / base when an absolute min_lr
        is given (each group then has its own fraction), min_scale otherwise."""
        absolute = group_values(self.config.get("min_lr"), self.ctx, self.name)
        if absolute is None:
            return [self.config["min_scale"]] * self.ctx.num_groups
        return [lr / base for lr, base in zip(absolute, self.ctx.base_lrs)]

    def between(self, f: float) -> float | list[float]:
        """m + (1 − m)·f for each group's floor m (one float when all groups share it)."""
        values = [m + (1.0 - m) * f for m in self.end_values()]
        return values[0] if len(set(values)) == 1 else values


@register_factor
class Constant(Schedule):
    """Constant multiplier: the LR stays at scale × base LR."""

    name = "constant"
    examples = (
        "constant()",
        "constant(scale=0.5)",
    )
    params = (Param("scale", 1.0, "the constant multiplier", low=0.0, low_open=True),)

    def value(self, t: int) -> float:
        return self.config["scale"]


@register_factor
class Step(Schedule):
    """Step decay: multiply by gamma every `every` steps (torch StepLR)."""

    name = "step"
    params = (
        Param("every", REQUIRED, "steps between decays (int) or fraction of the run (float)", type="horizon"),
        Param("gamma", 0.1, "factor applied at each decay", low=0.0, high=1.0, low_open=True),
    )
    example = "step(every=30, gamma=0.5)"
    examples = (
        "step(every=7, gamma=0.5)",
        "step(every=0.25)",
    )
    transient = ("every",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.every = resolve_horizon(self.config["every"], ctx.total_steps, self.name, "every")

    def value(self, t: int) -> float:
        return self.config["gamma"] ** (t // self.every)


@register_factor
class MultiStep(Schedule):
    """Multi-step decay: multiply by gamma at each milestone step (torch MultiStepLR)."""

    name = "multistep"
    params = (
        Param("milestones", REQUIRED, "increasing steps at which to decay", type="ints", low=1),
        Param("gamma", 0.1, "factor applied at each milestone", low=0.0, high=1.0, low_open=True),
    )
    example = "multistep(milestones=[30, 60], gamma=0.1)"
    examples = (
        "multistep(milestones=[10, 25])",
        "multistep(milestones=[5], gamma=0.5)",
    )

    def check_config(self) -> None:
        ms = self.config["milestones"]
        if not ms or list(ms) != sorted(set(ms)):
            from lrcontrol.errors import LRControlError

            raise LRControlError(
                f"multistep(milestones={list(ms)}): milestones must be a non-empty, strictly increasing list of steps"
            )

    def value(self, t: int) -> float:
        import bisect

        return self.config["gamma"] ** bisect.bisect_right(self.config["milestones"], t)


@register_factor
class Exponential(Schedule):
    """Exponential decay: max(gamma^t, floor) (torch ExponentialLR, which has no floor).

    The floor (default 1e-8 of the base LR) keeps gamma^t from underflowing to an LR float32 loses;
    torch's ExponentialLR goes on decaying.
    """

    name = "exponential"
    examples = (
        "exponential(gamma=0.9)",
        "exponential(gamma=0.5, floor=0.01)",
    )
    params = (
        Param("gamma", 0.999, "factor applied every step", low=0.0, high=1.0, low_open=True),
        Param(
            "floor",
            1e-8,
            "lowest multiplier: gamma^t stops here (a fraction of the base LR)",
            low=0.0,
            low_open=True,
            high=1.0,
        ),
    )
    renamed = {"min_scale": "floor"}

    def value(self, t: int) -> float:
        return max(self.config["gamma"] ** t, self.config["floor"])


@register_factor
class Polynomial(Schedule):
    """Polynomial decay: m_min + (1 − m_min)(1 − p)^power (torch PolynomialLR for m_min = 0)."""

    name = "polynomial"
    examples = (
        "polynomial()",
        "polynomial(power=2, min_scale=0.1, steps=20)",
    )
    params = (Param("power", 1.0, "exponent of the decay", low=0.0, low_open=True), MIN_SCALE, STEPS)
    horizon_param = "steps"

    def value(self, t: int) -> float:
        m = self.config["min_scale"]
        return m + (1.0 - m) * (1.0 - t / self.horizon) ** self.config["power"]


@register_factor
class Linear(Schedule):
    """Linear decay from the base LR to m_min × base LR (torch LinearLR)."""

    name = "linear"
    examples = (
        "linear()",
        "linear(min_scale=0.1, steps=0.5)",
    )
    params = (MIN_SCALE, STEPS)
    horizon_param = "steps"

    def value(self, t: int) -> float:
        m = self.config["min_scale"]
        return m + (1.0 - m) * (1.0 - t / self.horizon)


@register_factor
class Cosine(Schedule):
    """Cosine annealing: m_min + (1 − m_min)(1 + cos πp)/2 (torch CosineAnnealingLR)."""

    name = "cosine"
    params = (MIN_SCALE, STEPS, MIN_LR)  # min_lr last: positional specs keep their meaning
    examples = (
        "cosine()",
        "cosine(min_scale=0.1, steps=20)",
        "cosine(min_lr=[0.001, 0.002])",
    )
    horizon_param = "steps"

    def value(self, t: int) -> float | list[float]:
        return self.between((1.0 + math.cos(math.pi * t / self.horizon)) / 2.0)


class _Warmup(Schedule):
    """Shared by the warmups: the length is resolved once and kept across resumes."""

    params = (Param("steps", 0.05, "warmup length: steps (int) or fraction of the run (float)", type="horizon"),)
    example = "warmup(10)"
    examples = (
        "warmup(10)",
        "warmup(0.5)",
    )

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.length = resolve_horizon(self.config["steps"], ctx.total_steps, self.name, "steps")
        if ctx.total_steps is not None and self.length > ctx.total_steps:
            warnings.warn(
                f"{self.name}: {self.length} warmup steps exceed the run of {ctx.total_steps}; "
                f"clamped to {ctx.total_steps} so the last step reaches the base LR",
                stacklevel=2,
            )
            self.length = ctx.total_steps


@register_factor
class Warmup(_Warmup):
    """Linear warmup: min(1, (t + 1)/w)."""

    name = "warmup"

    def value(self, t: int) -> float:
        return min(1.0, (t + 1) / self.length)


@register_factor
class ExpWarmup(_Warmup):
    """Exponential warmup: (1 − exp(−(t + 1)/w)) / (1 − e⁻¹), reaching 1 at step w."""

    name = "exp_warmup"
    examples = (
        "exp_warmup(10)",
        "exp_warmup(0.25)",
    )

    def value(self, t: int) -> float:
        return min(1.0, (1.0 - math.exp(-(t + 1) / self.length)) / (1.0 - math.exp(-1.0)))


@register_factor
class WSD(Schedule):
    """Warmup–stable–decay: linear warmup, a constant phase, and a cooldown over the last part."""

    name = "wsd"
    examples = (
        "wsd()",
        "wsd(warmup=5, decay=0.3, shape='cosine', min_scale=0.1)",
        "wsd(shape='sqrt', steps=30)",
    )
    params = (
        Param("warmup", 0, "warmup: steps (int) or fraction of the run (float); 0 for none", type="horizon", low=0),
        Param("decay", 0.2, "cooldown: steps (int) or fraction of the run (float)", type="horizon"),
        Param("shape", "linear", "cooldown shape", type="str", choices=("linear", "cosine", "sqrt")),
        MIN_SCALE,
        STEPS,
    )
    horizon_param = "steps"
    #: the warmup is kept (it already happened); the cooldown follows the new horizon
    transient = ("decay",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.warmup = resolve_horizon(self.config["warmup"], ctx.total_steps, self.name, "warmup")
        self._resolve_decay()

    def _resolve_decay(self) -> None:
        self.decay = min(self.horizon, resolve_horizon(self.config["decay"], self.ctx.total_steps, self.name, "decay"))
        self.warmup = min(self.warmup, self.horizon - self.decay)

    def value(self, t: int) -> float:
        decay_start = self.horizon - self.decay
        if t < self.warmup:
            return (t + 1) / self.warmup
        if t < decay_start:
            return 1.0
        q = (t - decay_start) / self.decay
        shape = self.config["shape"]
        if shape == "linear":
            f = 1.0 - q
        elif shape == "cosine":
            f = (1.0 + math.cos(math.pi * q)) / 2.0
        else:
            f = 1.0 - math.sqrt(q)
        m = self.config["min_scale"]
        return m + (1.0 - m) * f

    def after_load(self) -> None:
        # The warmup already happened and is saved; the cooldown follows the (possibly new) horizon.
        self._resolve_decay()


@register_factor
class InvSqrt(Schedule):
    """Inverse square root: 1/sqrt(max(t, w)/w), flat for the first w steps."""

    name = "invsqrt"
    params = (
        Param("steps", 0.05, "w: steps (int) or fraction of the run (float) before the decay starts", type="horizon"),
    )
    example = "invsqrt(10)"
    examples = (
        "invsqrt(10)",
        "invsqrt(0.25)",
    )
    transient = ("w",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.w = resolve_horizon(self.config["steps"], ctx.total_steps, self.name, "steps")

    def value(self, t: int) -> float:
        return 1.0 / math.sqrt(max(t, self.w) / self.w)
