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

_MIN_SCALE = Param("min_scale", 0.0, "end value as a fraction of the base LR", low=0.0, high=1.0, high_open=True)
_MIN_LR = Param(
    "min_lr",
    None,
    "absolute end LR (torch's eta_min): one value, or one per param group; replaces min_scale",
    type="floats",
    nullable=True,
    low=0.0,
)
_STEPS = Param(
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
    params = (Param("power", 1.0, "exponent of the decay", low=0.0, low_open=True), _MIN_SCALE, _STEPS)
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
    params = (_MIN_SCALE, _STEPS)
    horizon_param = "steps"

    def value(self, t: int) -> float:
        m = self.config["min_scale"]
        return m + (1.0 - m) * (1.0 - t / self.horizon)


@register_factor
class Cosine(Schedule):
    """Cosine annealing: m_min + (1 − m_min)(1 + cos πp)/2 (torch CosineAnnealingLR)."""

    name = "cosine"
    params = (_MIN_SCALE, _STEPS, _MIN_LR)  # min_lr last: positional specs keep their meaning
    examples = (
        "cosine()",
        "cosine(min_scale=0.1, steps=20)",
        "cosine(min_lr=[0.001, 0.002])",
    )
    horizon_param = "steps"

    def value(self, t: int) -> float | list[float]:
        return self.between((1.0 + math.cos(math.pi * t / self.horizon)) / 2.0)


@register_factor
class SGDR(Schedule):
    """Cosine with warm restarts (SGDR, Loshchilov & Hutter 2017): cycles of period, period·mult, …"""

    name = "sgdr"
    params = (
        Param("period", REQUIRED, "length of the first cycle: steps (int) or fraction of the run", type="horizon"),
        Param("mult", 1, "each cycle is this many times longer than the one before", type="int", low=1),
        _MIN_SCALE,
        _MIN_LR,
    )
    example = "sgdr(period=50, mult=2)"
    examples = (
        "sgdr(period=10)",
        "sgdr(period=5, mult=2, min_scale=0.1)",
        "sgdr(period=7, min_lr=[1e-4])",
    )
    transient = ("period",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.period = resolve_horizon(self.config["period"], ctx.total_steps, self.name, "period")

    def value(self, t: int) -> float | list[float]:
        length, mult = self.period, self.config["mult"]
        if mult == 1:
            t = t % length
        else:
            while t >= length:  # integer walk over the cycles: exact, and O(log t)
                t -= length
                length *= mult
        return self.between((1.0 + math.cos(math.pi * t / length)) / 2.0)


@register_factor
class Cyclic(Schedule):
    """Cyclical LR (Smith 2017): triangular waves between low × base LR and the base LR."""

    name = "cyclic"
    params = (
        Param(
            "half_period", REQUIRED, "steps from the low to the high point (int) or fraction of the run", type="horizon"
        ),
        Param(
            "low",
            0.1,
            "lower bound as a fraction of the base LR (the upper bound is the base LR)",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
        ),
        Param("mode", "triangular", "wave shape", type="str", choices=("triangular", "triangular2", "exp_range")),
        Param("gamma", 1.0, "exp_range: amplitude scale per step", low=0.0, high=1.0, low_open=True),
        Param(
            "down",
            None,
            "steps from the high back to the low point (torch's step_size_down); default half_period",
            type="horizon",
            nullable=True,
        ),
        Param(
            "min_lr",
            None,
            "absolute lower bound (torch's base_lr): one value, or one per param group; replaces low",
            type="floats",
            nullable=True,
            low=0.0,
        ),
    )
    example = "cyclic(half_period=20, low=0.1)"
    transient = ("half", "down")
    examples = (
        "cyclic(half_period=3, down=5, mode='triangular2')",
        "cyclic(half_period=4, min_lr=[0.001, 0.005])",
        "cyclic(half_period=5)",
        "cyclic(half_period=4, mode='triangular2')",
        "cyclic(half_period=3, mode='exp_range', gamma=0.9)",
    )

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.half = resolve_horizon(self.config["half_period"], ctx.total_steps, self.name, "half_period")
        down = self.config["down"]
        self.down = self.half if down is None else resolve_horizon(down, ctx.total_steps, self.name, "down")

    def value(self, t: int) -> float | list[float]:
        # The same arithmetic as torch's CyclicLR (step_size_up = half_period, step_size_down = down).
        total = float(self.half + self.down)
        up_ratio = self.half / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / up_ratio if x <= up_ratio else (x - 1) / (up_ratio - 1)
        mode = self.config["mode"]
        if mode == "triangular":
            amplitude = 1.0
        elif mode == "triangular2":
            amplitude = 1.0 / (2.0 ** (cycle - 1))
        else:
            amplitude = self.config["gamma"] ** t
        absolute = group_values(self.config["min_lr"], self.ctx, self.name)
        lows = [self.config["low"]] if absolute is None else [a / b for a, b in zip(absolute, self.ctx.base_lrs)]
        values = [low + (1.0 - low) * scale * amplitude for low in lows]
        return values[0] if len(values) == 1 else values


@register_factor
class OneCycle(Schedule):
    """One-cycle (Smith & Topin 2019): rise from base/div to base, then anneal to base/(div·final_div)."""

    name = "onecycle"
    examples = (
        "onecycle()",
        "onecycle(rise=0.5, anneal='linear')",
        "onecycle(rise=0.4, three_phase=True, anneal='linear')",
    )
    params = (
        Param("rise", 0.3, "fraction of the run spent rising", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("div", 25.0, "the start LR is base / div", low=1.0),
        Param("final_div", 1e4, "the end LR is base / (div · final_div)", low=1.0),
        Param("anneal", "cos", "shape of both phases", type="str", choices=("cos", "linear")),
        _STEPS,
        Param(
            "three_phase",
            False,
            "torch's three_phase: fall back to the start LR as fast as it rose, then anneal to the end",
            type="bool",
        ),
    )
    horizon_param = "steps"

    def value(self, t: int) -> float:
        # Phase boundaries as in torch's OneCycleLR, so the two agree step for step.
        start, peak = 1.0 / self.config["div"], 1.0
        end = start / self.config["final_div"]
        rise_end = self.config["rise"] * self.horizon - 1
        last = self.horizon - 1
        if self.config["three_phase"]:
            fall_end = 2 * self.config["rise"] * self.horizon - 2
            if t <= rise_end:
                a, b, lo, hi = start, peak, 0.0, rise_end
            elif t <= fall_end:
                a, b, lo, hi = peak, start, rise_end, fall_end
            else:
                a, b, lo, hi = start, end, fall_end, last
        elif t <= rise_end:
            a, b, lo, hi = start, peak, 0.0, rise_end
        else:
            a, b, lo, hi = peak, end, rise_end, last
        pct = 1.0 if hi == lo else (t - lo) / (hi - lo)
        if self.config["anneal"] == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (b - a) * pct + a


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
        _MIN_SCALE,
        _STEPS,
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
