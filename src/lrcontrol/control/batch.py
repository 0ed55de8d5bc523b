"""Batch size and the LR: scaling rules, and growing the batch instead of decaying the LR.

batch_scale — the LR found at a reference batch size, moved to the batch size actually used:

    linear:  m = B / B_ref      (Goyal et al. 2017, "Accurate, large minibatch SGD", arXiv:1706.02677)
    sqrt:    m = √(B / B_ref)   (Krizhevsky 2014, arXiv:1404.5997; Hoffer et al. 2017, for Adam-like steps)

B is `batch=…` if given, else the batch size of the task or loop it runs in (`resources["batch_size"]`,
or the task's). The run engine and the sweeps write the resolved B into the spec before anything
is keyed by it (`resolve_batch_size`), so a stored result names the batch size its LR was scaled to.

increase_batch — Smith, Kindermans, Ying & Le 2018 ("Don't decay the learning rate, increase the
batch size", ICLR): where the other schedules of the spec decay the LR, grow the batch instead.
With m(t) the product of the spec's schedules (pure functions of t) and M(t) = max_{s≤t} m(s) its
running peak (so a warmup does not count as a decay),

    k(t) = clamp(round(M(t) / m(t)), 1, max_factor)      the batch multiplier
    this factor's LR multiplier = k(t)                   so  lr = base · m(t) · k(t) ≈ base · M(t)

The run engine reads k(t) and accumulates k(t) batches of the task's size per step (the mean
gradient of k batches equals the gradient of one k-times larger batch); the extra batches are
counted as extra steps (cost). Once k reaches max_factor, the LR decays as the schedule says — the
"hybrid" of the paper. In a hand-written loop, read `batch_multiplier(controller)` before each step.
"""

from __future__ import annotations

import math
from typing import Any

from lrcontrol.control.base import Context, Factor
from lrcontrol.control.controller import LRController
from lrcontrol.control.schedules import Schedule
from lrcontrol.errors import LRControlError
from lrcontrol.params import REQUIRED, Param
from lrcontrol.registration import register_factor


@register_factor
class BatchScale(Factor):
    """Scale the LR with the batch size from a reference one (linear or square-root rule)."""

    name = "batch_scale"
    kind = "schedule"
    params = (
        Param("ref", REQUIRED, "the reference batch size the base LR was chosen for", type="int", low=1),
        Param("rule", "linear", "linear: B/ref; sqrt: √(B/ref)", type="str", choices=("linear", "sqrt")),
        Param("batch", None, "the batch size used; default: the task's or loop's", type="int", low=1, nullable=True),
    )
    example = "batch_scale(ref=32, batch=128, rule='sqrt')"
    examples = ("batch_scale(ref=64, batch=32)",)
    transient = ("scale",)  # resolved at attach from the config and the resources

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        batch = self.config["batch"]
        if batch is None:
            batch = ctx.resources.get("batch_size")
        if batch is None and "task" in ctx.resources:
            batch = ctx.resources["task"].batch_size
        if batch is None:
            raise LRControlError(
                f"batch_scale(ref={self.config['ref']}) needs the batch size: write batch_scale(ref=…, batch=…) "
                "or pass resources={'batch_size': …} to build()/control()"
            )
        ratio = int(batch) / self.config["ref"]
        self.scale = ratio if self.config["rule"] == "linear" else math.sqrt(ratio)

    def multiplier(self, t: int) -> float:
        return self.scale


def resolve_batch_size(spec: Any, batch_size: int) -> Any:
    """`spec` (a Spec) with batch=batch_size written into every batch_scale term that leaves it open."""
    from lrcontrol.spec import Spec, make_term

    terms = []
    for term in spec.terms:
        if term.name == BatchScale.name and "batch" not in term.kwargs():
            term = make_term(term.entry, {**term.kwargs(), "batch": int(batch_size)})
        terms.append(term)
    return Spec(tuple(terms))


@register_factor
class IncreaseBatch(Factor):
    """Grow the batch where the spec's schedules decay the LR (Smith et al. 2018); the engine accumulates."""

    name = "increase_batch"
    kind = "schedule"
    params = (Param("max_factor", 16, "largest batch multiplier; past it the LR decays", type="int", low=1, high=1024),)
    example = "increase_batch(max_factor=4)"
    # with a decaying schedule before it, so that the batch really grows in the conformance runs
    examples = ("increase_batch()", "step(every=5, gamma=0.5) + increase_batch(max_factor=4)")
    transient = ("_peaks",)  # a cache of a pure function of t

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self._peaks: list[float] = []  # running max of the schedules' product, M(0), M(1), …

    def _schedules(self) -> list[Schedule]:
        assert self.ctx is not None and self.ctx.controller is not None
        return [f for f in self.ctx.controller.factors if isinstance(f, Schedule)]

    def _decay(self, t: int) -> float:
        m = 1.0
        for f in self._schedules():
            m *= f.multiplier(t)
        return m

    def batch_multiplier(self, t: int) -> int:
        """k(t): how many batches step t accumulates (a pure function of t)."""
        while len(self._peaks) <= t:
            s = len(self._peaks)
            self._peaks.append(max(self._decay(s), self._peaks[-1] if self._peaks else 0.0))
        k = round(self._peaks[t] / self._decay(t))
        return int(min(max(k, 1), self.config["max_factor"]))

    def multiplier(self, t: int) -> float:
        return float(self.batch_multiplier(t))

    @property  # type: ignore[override]
    def extra_steps(self) -> int:
        """The batches beyond one per step, so far: their compute is part of the run's cost."""
        if self.ctx is None or self.ctx.controller is None:
            return 0
        return sum(self.batch_multiplier(s) - 1 for s in range(self.ctx.controller.t))


def batch_multiplier(controller: LRController, t: int | None = None) -> int:
    """How many batches the step `t` (default: the next one) accumulates; 1 without increase_batch."""
    t = controller.t if t is None else t
    k = 1
    for f in controller.factors:
        if isinstance(f, IncreaseBatch):
            k *= f.batch_multiplier(t)
    return k


def batches_consumed(controller: LRController, steps: int) -> int:
    """How many batches the first `steps` steps drew (to replay the stream when resuming)."""
    if not any(isinstance(f, IncreaseBatch) for f in controller.factors):
        return steps
    return sum(batch_multiplier(controller, s) for s in range(steps))
