"""Hugging Face's schedules, with Hugging Face's conventions (transformers.optimization).

Users coming from the Trainer expect its numbers, which differ from lrcontrol's `warmup(w) + cosine()`
in two ways: the warmup starts at LR 0 (m(t) = t/w, not (t + 1)/w), and the decay after it spans
T − w steps instead of the whole run. With w warmup steps, T = `steps` (the run by default) and
p = (t − w)/(T − w) for t ≥ w:

    hf_warmup(w)                    t/w, then 1                         get_constant_schedule_with_warmup
    hf_linear(w)                    max(0, 1 − p)                        get_linear_schedule_with_warmup
    hf_cosine(w, cycles, min_rate)  r + (1 − r)·½(1 + cos 2π·cycles·p)    get_cosine_schedule_with_warmup
                                                                         (min_rate: …with_min_lr…)
    hf_cosine_restarts(w, cycles)   ½(1 + cos π((cycles·p) mod 1)), 0 for p ≥ 1
    hf_polynomial(w, power, end_lr) ((L − e)(1 − p)^power + e)/L,  e/L past T  (L: the optimizer's lr)
    hf_invsqrt(w, timescale)        1/sqrt((t + s − w)/s), s = timescale (default w, or 10 000 if w = 0)
    hf_wsd(w, decay, stable, ...)   warmup, 1 for `stable` steps, a decay of `decay` steps to min_ratio

They reach LR 0 where Hugging Face's do (step 0 of a warmup, the end of a linear decay), the one
exception to lrcontrol's rule that a factor never returns 0 (`may_reach_zero`), and past T they follow
Hugging Face's formulas (0 for the linear decay; the cosine rises again) instead of holding.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from lrcontrol.control.base import Context
from lrcontrol.control.schedules import Schedule
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param, resolve_horizon
from lrcontrol.registration import register_factor

_WARMUP = Param("warmup", 0, "warmup steps (int) or fraction of the run (float); LR 0 at step 0", type="horizon", low=0)
_STEPS = Param("steps", 1.0, "T, the run the decay ends with: steps (int) or fraction of the run", type="horizon")


class _HFSchedule(Schedule):
    """Resolves the warmup w and the run T once; Hugging Face's lambdas take (t, w, T)."""

    may_reach_zero: ClassVar[bool] = True
    uses_run: ClassVar[bool] = True

    def attach(self, ctx: Context) -> None:
        Schedule.attach(self, ctx)  # no horizon_param: past T each formula goes on as Hugging Face's does
        self.w = resolve_horizon(self.config["warmup"], ctx.total_steps, self.name, "warmup")
        self.T = resolve_horizon(self.config["steps"], ctx.total_steps, self.name, "steps") if self.uses_run else 0

    def progress(self, t: int) -> float:
        return (t - self.w) / max(1, self.T - self.w)

    def value(self, t: int) -> float:
        if t < self.w:
            return t / max(1, self.w)
        return self.after_warmup(t)

    def after_warmup(self, t: int) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = int(state["w"])  # the warmup already happened; T follows the controller's total_steps


@register_factor
class HFWarmup(_HFSchedule):
    """Hugging Face's linear warmup from 0: t/w, then 1 (get_constant_schedule_with_warmup)."""

    name = "hf_warmup"
    params = (_WARMUP,)
    uses_run = False
    example = "hf_warmup(0)"
    examples = ("hf_warmup(5)",)

    def after_warmup(self, t: int) -> float:
        return 1.0


@register_factor
class HFLinear(_HFSchedule):
    """Hugging Face's warmup from 0, then a linear decay to 0 over T − w (get_linear_schedule_with_warmup)."""

    name = "hf_linear"
    params = (_WARMUP, _STEPS)
    example = "hf_linear(0, 100)"
    examples = ("hf_linear(4, 60)",)

    def after_warmup(self, t: int) -> float:
        return max(0.0, (self.T - t) / max(1, self.T - self.w))


@register_factor
class HFCosine(_HFSchedule):
    """Hugging Face's warmup from 0, then a cosine over T − w (get_cosine_schedule_with_warmup)."""

    name = "hf_cosine"
    params = (
        _WARMUP,
        _STEPS,
        Param("cycles", 0.5, "number of cosine waves over T − w (0.5: one decay)", low=0.0, low_open=True),
        Param(
            "min_rate", 0.0, "end value as a fraction of the base LR (Hugging Face's min_lr_rate)", low=0.0, high=1.0
        ),
    )
    example = "hf_cosine(0, 100)"
    examples = ("hf_cosine(0, 60, min_rate=0.1)",)

    def after_warmup(self, t: int) -> float:
        wave = 0.5 * (1.0 + math.cos(math.pi * self.config["cycles"] * 2.0 * self.progress(t)))
        r = self.config["min_rate"]
        return max(0.0, wave * (1.0 - r) + r)


@register_factor
class HFCosineRestarts(_HFSchedule):
    """Hugging Face's warmup from 0, then `cycles` hard-restarted cosines over T − w, 0 after T."""

    name = "hf_cosine_restarts"
    params = (_WARMUP, _STEPS, Param("cycles", 1, "number of restarts over T − w", type="int", low=1))
    example = "hf_cosine_restarts(0, 100, 2)"
    examples = ("hf_cosine_restarts(3, 72, 3)",)

    def after_warmup(self, t: int) -> float:
        p = self.progress(t)
        if p >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((self.config["cycles"] * p) % 1.0))))


@register_factor
class HFPolynomial(_HFSchedule):
    """Hugging Face's warmup from 0, then a polynomial decay to the absolute end_lr over T − w."""

    name = "hf_polynomial"
    params = (
        _WARMUP,
        _STEPS,
        Param("power", 1.0, "exponent of the decay", low=0.0, low_open=True),
        Param("end_lr", 1e-7, "absolute end LR (Hugging Face's lr_end)", low=0.0),
    )
    example = "hf_polynomial(0, 100, power=2.0)"
    examples = ("hf_polynomial(4, 30, end_lr=0.001)",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        # Hugging Face divides by the optimizer's default lr (one value for every group).
        self.lr_init = float(ctx.optimizer.defaults.get("lr", ctx.base_lrs[0]))
        if not self.config["end_lr"] < self.lr_init:
            raise LRControlError(
                f"hf_polynomial(end_lr={self.config['end_lr']!r}) must be below the optimizer's lr {self.lr_init!r}"
            )

    def after_warmup(self, t: int) -> float:
        end, lr_init = self.config["end_lr"], self.lr_init
        if t > self.T:
            return end / lr_init
        remaining = 1.0 - (t - self.w) / (self.T - self.w)
        return ((lr_init - end) * remaining ** self.config["power"] + end) / lr_init


@register_factor
class HFInvSqrt(_HFSchedule):
    """Hugging Face's warmup from 0, then 1/sqrt((t + s − w)/s) with timescale s (get_inverse_sqrt_schedule)."""

    name = "hf_invsqrt"
    params = (
        _WARMUP,
        Param("timescale", None, "s; default w (10 000 when w = 0)", type="int", low=1, nullable=True),
    )
    uses_run = False
    example = "hf_invsqrt(0, timescale=10)"
    examples = ("hf_invsqrt(4)",)

    def after_warmup(self, t: int) -> float:
        s = self.config["timescale"] or self.w or 10_000
        return 1.0 / math.sqrt((t + s - self.w) / s)


@register_factor
class HFWSD(_HFSchedule):
    """Hugging Face's warmup–stable–decay (get_wsd_schedule): warmup, a plateau, a decay to min_ratio."""

    name = "hf_wsd"
    params = (
        _WARMUP,
        Param("decay", 0.2, "decay steps (int) or fraction of the run (float)", type="horizon"),
        Param("stable", None, "stable steps; default the rest of the run", type="int", low=0, nullable=True),
        Param("min_ratio", 0.0, "end value as a fraction of the base LR", low=0.0, high=1.0),
        Param("warmup_shape", "linear", "warmup shape", type="str", choices=("linear", "cosine", "1-sqrt")),
        Param("decay_shape", "cosine", "decay shape", type="str", choices=("linear", "cosine", "1-sqrt")),
        Param("cycles", 0.5, "cosine decay: number of waves", low=0.0, low_open=True),
        _STEPS,
    )
    example = "hf_wsd(0, decay=30, stable=20)"
    examples = ("hf_wsd(3, decay=8, min_ratio=0.1, warmup_shape='cosine', decay_shape='1-sqrt', steps=50)",)

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.decay = resolve_horizon(self.config["decay"], ctx.total_steps, self.name, "decay")
        stable = self.config["stable"]
        self.stable = self.T - self.w - self.decay if stable is None else stable
        if self.stable < 0:
            raise LRControlError(
                f"hf_wsd: warmup {self.w} + decay {self.decay} steps exceed the run of {self.T}; shorten them"
            )

    def _shaped(self, x: float, shape: str, rising: bool) -> float:
        if shape == "linear":
            return x if rising else 1.0 - x
        if shape == "cosine":
            return (
                0.5 * (1.0 - math.cos(math.pi * x))
                if rising
                else 0.5 * (1.0 + math.cos(math.pi * self.config["cycles"] * 2.0 * x))
            )
        return 1.0 - math.sqrt(1.0 - x) if rising else 1.0 - math.sqrt(x)

    def value(self, t: int) -> float:
        r = self.config["min_ratio"]
        if t < self.w:
            f = self._shaped(t / max(1, self.w), self.config["warmup_shape"], rising=True)
            return max(0.0, f * (1.0 - r) + r)
        if t < self.w + self.stable:
            return 1.0
        if t < self.w + self.stable + self.decay:
            f = self._shaped((t - self.w - self.stable) / max(1, self.decay), self.config["decay_shape"], rising=False)
            return max(0.0, f * (1.0 - r) + r)
        return r
