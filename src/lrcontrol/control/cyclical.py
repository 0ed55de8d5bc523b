"""Schedules that rise again: SGDR's warm restarts, cyclical LRs and the one-cycle policy.

They share the conventions of `schedules.py` (progress, horizons, `min_scale`/`min_lr` as the value a
cycle goes down to); the formulas follow torch's `CosineAnnealingWarmRestarts`, `CyclicLR` and
`OneCycleLR` step for step (tests/test_schedules.py, tests/test_peer_schedules.py).
"""

from __future__ import annotations

import math

from lrcontrol.control.base import Context, group_values
from lrcontrol.control.schedules import MIN_LR, MIN_SCALE, STEPS, Schedule
from lrcontrol.params import REQUIRED, Param, resolve_horizon
from lrcontrol.registration import register_factor


@register_factor
class SGDR(Schedule):
    """Cosine with warm restarts (SGDR, Loshchilov & Hutter 2017): cycles of period, period·mult, …"""

    name = "sgdr"
    params = (
        Param("period", REQUIRED, "length of the first cycle: steps (int) or fraction of the run", type="horizon"),
        Param("mult", 1, "each cycle is this many times longer than the one before", type="int", low=1),
        MIN_SCALE,
        MIN_LR,
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
        STEPS,
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
