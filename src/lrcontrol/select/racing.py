"""Racing: start every member, continue only the leaders, by successive halving — work is never thrown away.

Successive halving (Jamieson & Talwalkar, AISTATS 2016; Karnin et al., ICML 2013) over the portfolio: all
n members train to the first rung r_0 of the budget; the best 1/η (by the validation metric there)
continue from their checkpoints to r_1 = η·r_0; …; the last one trains to the full budget and is the
race's outcome. A continued run is bit for bit the uninterrupted one (the engine's checkpoints restore
model, optimizer, controller and RNG, and every short run already plans for the full horizon), so the
race costs only the steps it trains:

    cost = Σ_k n_k · (r_k − r_{k−1}),    r_{−1} = 0, r_K = 1, n_K = 1      (full-run equivalents)

`plan` picks rungs with cost ≤ `max_cost` (2 runs by default: the winner's run plus at most one run's
worth of exploration). `simulate` replays a race on the meta-dataset's stored validation curves
(`eval_frac`/`eval_values`) — exact, for the reason above; `race` runs one live through the one-run
executor with `RunSpec(budget=rung, horizon=budget, resume_from=<the member's previous rung>)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrcontrol.errors import LRControlError

#: the default cap on a race's compute, in full runs
MAX_COST = 2.0


@dataclass(frozen=True)
class Rung:
    alive: int  # members training to this rung
    frac: float  # the fraction of the budget they reach


def plan(n_members: int, eta: int = 3, max_cost: float = MAX_COST, grid: Sequence[float] | None = None) -> list[Rung]:
    """Successive-halving rungs for `n_members` with ratio `eta` and cost ≤ `max_cost` full runs.

    Rungs follow r_k = η^(k−K) (the last at the full budget); when that costs more than `max_cost`, the
    rungs before the last shrink by one common factor until it fits. grid: the fractions of the budget
    where the runs are evaluated (a rung can only be judged there): rungs are moved to the last grid
    point at or before them; if the grid is too coarse for η to fit the cost, a larger η (fewer, sharper
    cuts) is tried; if nothing fits, the cheapest plan is returned."""
    if n_members < 1:
        raise LRControlError("a race needs at least one member")
    if eta < 2:
        raise LRControlError(f"eta must be ≥ 2, got {eta}")
    if max_cost < 1:
        raise LRControlError(f"max_cost must be ≥ 1 (the winner's full run), got {max_cost}")
    if n_members == 1:
        return [Rung(1, 1.0)]
    points = None if grid is None else tuple(np.unique(np.asarray(grid, dtype=float)).tolist())
    return list(_plan(n_members, eta, float(max_cost), points))


@functools.lru_cache(maxsize=4096)
def _plan(n_members: int, eta: int, max_cost: float, grid: tuple[float, ...] | None) -> tuple[Rung, ...]:
    """`plan` for hashable arguments (races on one grid repeat the same plan: computed once)."""
    points = None if grid is None else np.asarray(grid)
    cheapest: tuple[float, list[Rung]] | None = None
    for e in range(eta, max(eta, n_members) + 1):
        rounds = math.ceil(math.log(n_members) / math.log(e) - 1e-9)
        alive = [max(1, math.ceil(n_members / e**k)) for k in range(rounds)] + [1]
        fracs = [float(e ** (k - rounds)) for k in range(rounds)]
        exploring = sum(a * (f - p) for a, f, p in zip(alive, fracs, [0.0] + fracs[:-1])) - fracs[-1]
        scale = 1.0 if 1.0 + exploring <= max_cost else (max_cost - 1.0) / exploring
        for _ in range(60):  # shrink further only while snapping to the grid pushes the cost over
            rungs = [Rung(a, f * scale if points is None else _snap(points, f * scale)) for a, f in zip(alive, fracs)]
            rungs.append(Rung(1, 1.0))
            spent = cost_of(rungs)
            if cheapest is None or spent < cheapest[0] - 1e-12:
                cheapest = (spent, rungs)
            if spent <= max_cost + 1e-9:
                return tuple(rungs)
            scale *= 0.85
    assert cheapest is not None
    return tuple(cheapest[1])


def affordable(n_members: int, eta: int = 3, max_cost: float = MAX_COST, grid: Sequence[float] | None = None) -> int:
    """The most members a race can start with and stay within `max_cost` on this evaluation grid (≥ 1)."""
    for n in range(n_members, 1, -1):
        if cost_of(plan(n, eta, max_cost, grid)) <= max_cost + 1e-9:
            return n
    return 1


def entrants(
    preference: Sequence[str],
    extras: Mapping[str, float] | None = None,
    eta: int = 3,
    max_cost: float = MAX_COST,
    grid: Sequence[float] | None = None,
) -> list[str]:
    """Who starts the race: members in order of preference, each taken if the race still fits
    `max_cost` with it — the planned rungs plus every entrant's extra cost (e.g. an LR range test's
    steps, paid once at the start, in full-run equivalents) — and skipped otherwise."""
    extras = extras or {}
    chosen: list[str] = []
    for member in preference:
        trial = chosen + [member]
        spent = cost_of(plan(len(trial), eta, max_cost, grid)) + sum(extras.get(m, 0.0) for m in trial)
        if spent <= max_cost + 1e-9 or not chosen:  # the first always enters: a race of one is its run
            chosen = trial
    return chosen


def cost_of(rungs: Sequence[Rung]) -> float:
    """The planned compute of a race: Σ n_k (r_k − r_{k−1}) full runs (continued, never restarted)."""
    return sum(r.alive * (r.frac - p) for r, p in zip(rungs, [0.0] + [q.frac for q in rungs[:-1]]))


@dataclass
class RaceResult:
    """A race's outcome: the winner and its final (oriented, lower = better) score, and what it cost."""

    winner: str
    loss: float  # the winner's final metric, oriented so that lower is better (+inf: it failed)
    cost: float  # full-run equivalents trained, extra steps (e.g. an LR range test) included
    diverged: bool
    rungs: list[dict[str, Any]] = field(default_factory=list)  # per rung: frac and each member's score
    trajectory: Any = None  # live races: the winner's full Trajectory


def _eliminate(scores: Mapping[str, float], order: Sequence[str], keep: int) -> list[str]:
    """The `keep` members of least score, ties to the earlier in `order` (deterministic)."""
    ranked = sorted(order, key=lambda m: (scores[m], order.index(m)))
    return ranked[:keep]


def _snap(grid: np.ndarray, frac: float) -> float:
    """The rung on the evaluation grid: the last evaluation at or before `frac` (the first if none). A
    grid without an evaluation after step 0 (every run diverged before its first one) has nowhere to cut
    but the end, where the final metric judges."""
    positive = grid[grid > 0]
    if not positive.size:
        return 1.0
    below = positive[positive <= frac + 1e-9]
    return float(below.max() if below.size else positive.min())


@dataclass(frozen=True)
class Curve:
    """One member's stored run as a race sees it (scores oriented: lower is better)."""

    frac: np.ndarray  # evaluation points, fractions of the budget
    values: np.ndarray  # the oriented validation metric there
    diverged: bool
    length: float  # how far it trained (a diverged run stopped early)
    extra: float  # cost paid once at entry (e.g. its LR range test), full-run equivalents
    final: float  # the oriented final metric (+inf: it failed)

    def score_at(self, frac: float) -> float:
        """What a rung at `frac` judges it by: +inf once diverged, the final metric at the full budget,
        else the validation metric at that evaluation (+inf if there is none)."""
        if self.diverged and self.length <= frac + 1e-12:
            return math.inf
        if frac >= 1.0:
            return self.final
        at = np.flatnonzero(np.abs(self.frac - frac) < 1e-9)
        value = self.values[at[-1]] if at.size else math.inf
        return float(value) if math.isfinite(value) else math.inf


def curves_of(runs: Any) -> dict[str, Curve]:
    """member → Curve from the meta-dataset's rows of one instance and seed (`member`, `eval_frac`,
    `eval_values`, `final_metric`, `higher_is_better`, `diverged`, `cost`)."""
    rows = {str(r["member"]): r for r in runs.to_dict("records")} if hasattr(runs, "to_dict") else dict(runs)
    out = {}
    for member, r in rows.items():
        sign = -1.0 if bool(r["higher_is_better"]) else 1.0
        diverged = bool(r["diverged"]) or not np.isfinite(float(r["final_metric"]))
        cost = float(r["cost"])
        # a finished run's extra steps are what it cost beyond its budget; a diverged run stopped at `cost`
        out[member] = Curve(
            frac=np.asarray(r["eval_frac"], dtype=float),
            values=sign * np.asarray(r["eval_values"], dtype=float),
            diverged=diverged,
            length=min(1.0, cost) if diverged else 1.0,
            extra=0.0 if diverged else max(0.0, cost - 1.0),
            final=sign * float(r["final_metric"]) if not diverged else math.inf,
        )
    return out


#: a race's judge: (curves, the members alive, the rung's fraction of the budget) → member → score (lower
#: continues); the default judges by the validation metric there (`Curve.score_at`)
Judge = Callable[[Mapping[str, Curve], Sequence[str], float], Mapping[str, float]]


def validation_judge(curves: Mapping[str, Curve], alive: Sequence[str], frac: float) -> dict[str, float]:
    """The judge a live race has: each member's validation metric at the rung (+inf once diverged)."""
    return {m: curves[m].score_at(frac) for m in alive}


def oracle_judge(curves: Mapping[str, Curve], alive: Sequence[str], frac: float) -> dict[str, float]:
    """A judge no live race has: each member's final score, read from its stored run at any rung — the
    ceiling of every judge (what the race would reach if early scores ranked members as the end does)."""
    return {m: curves[m].final for m in alive}


def simulate(
    runs: Any,
    members: Sequence[str] | None = None,
    eta: int = 3,
    max_cost: float = MAX_COST,
    judge: Judge | None = None,
) -> RaceResult:
    """Replay a race on one instance and seed from the meta-dataset's rows `runs` (one per member, with
    `member`, `eval_frac`, `eval_values`, `final_metric`, `higher_is_better`, `diverged`, `cost`), or
    from their `curves_of`.

    members: the racers in order of preference (default: every row's member, in row order): ties go to
    the earlier, and when the evaluation grid is too coarse (or the members' extra steps too many) for
    all of them to fit `max_cost`, the race starts with those `entrants` picks.

    judge: who continues at a rung before the full budget (default `validation_judge`, what a live race
    sees); another judge measures what better judgement would gain, e.g. one that reads the final
    scores (an oracle: the ceiling of any judge) or a model of partial curves
    (benchmarks/racing_judges.py). The last rung is always the final metric."""
    given = isinstance(runs, Mapping) and all(isinstance(c, Curve) for c in runs.values())
    curves = dict(runs) if given else curves_of(runs)
    members = list(curves) if members is None else list(members)
    missing = [m for m in members if m not in curves]
    if missing:
        raise LRControlError(f"no run of member {missing[0]} to race")
    grid = max((curves[m].frac for m in members), key=len)
    members = entrants(members, {m: curves[m].extra for m in members}, eta, max_cost, grid)
    alive, reached, total, log = list(members), dict.fromkeys(members, 0.0), 0.0, []
    rungs = plan(len(members), eta, max_cost, grid)
    for i, rung in enumerate(rungs):
        for m in alive:
            curve = curves[m]
            entry = curve.extra if reached[m] == 0.0 else 0.0
            total += entry + max(0.0, min(rung.frac, curve.length) - min(reached[m], curve.length))
            reached[m] = rung.frac
        early = judge is not None and rung.frac < 1.0
        scores = dict(judge(curves, alive, rung.frac)) if early else validation_judge(curves, alive, rung.frac)
        if not set(alive) <= set(scores):
            raise LRControlError(
                f"the judge scored {sorted(scores)} but the rung has {sorted(alive)}; score every member alive"
            )
        log.append({"frac": rung.frac, "scores": scores})
        keep = rungs[i + 1].alive if i + 1 < len(rungs) else 1
        alive = _eliminate(scores, alive, keep)
    winner = alive[0]
    return RaceResult(winner, curves[winner].final, total, curves[winner].diverged, log)


def race(
    task: str,
    members: Mapping[str, str],
    executor: Any,
    *,
    seed: int = 0,
    budget: int | None = None,
    size: str = "default",
    eta: int = 3,
    max_cost: float = MAX_COST,
    extras: Mapping[str, float] | None = None,
    on_rung: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> RaceResult:
    """Race the portfolio `members` (name → spec, in order of preference, as in `simulate`) live on `task`
    through an executor with a checkpoint directory: each rung continues a member's previous run from its
    checkpoint. extras: each member's extra cost beyond its steps (full-run equivalents, e.g. its LR range
    test), known from earlier runs; who enters is decided with it like in `simulate`. on_rung(done, total,
    rung) is called after each rung with its log entry (`frac`, `scores`, `continue`: who goes on)."""
    from lrcontrol.bench.run_spec import RunSpec
    from lrcontrol.tasks import get_task

    if getattr(executor, "checkpoint_dir", None) is None:
        raise LRControlError("racing continues runs from their checkpoints: give the executor a checkpoint_dir")
    the_task = get_task(task, size)
    budget = the_task.budget if budget is None else budget
    sign = -1.0 if the_task.higher_is_better else 1.0
    grid = np.array(sorted({*range(the_task.eval_every, budget + 1, the_task.eval_every), budget}), dtype=float)
    names = entrants(list(members), extras, eta, max_cost, grid / budget)
    rungs = plan(len(names), eta, max_cost, grid / budget)
    alive, previous, trained, extra, log = names, {}, dict.fromkeys(names, 0), {}, []
    trajectories: dict[str, Any] = {}
    for i, rung in enumerate(rungs):
        steps = int(round(rung.frac * budget))
        runs = {}
        for m in alive:
            runs[m] = RunSpec.create(
                task, members[m], seed, steps, size=size, horizon=budget, resume_from=previous.get(m)
            )
        futures = {m: executor.submit(run) for m, run in runs.items()}
        scores = {}
        for m, future in futures.items():
            trajectory = future.result()
            trajectories[m] = trajectory
            trained[m] = trajectory.steps  # a diverged run stops: it trained only to there
            extra[m] = trajectory.extra_steps
            previous[m] = runs[m].key
            value = trajectory.val[-1].get(the_task.metric, math.nan) if trajectory.val else math.nan
            finite = not trajectory.diverged and math.isfinite(value)
            scores[m] = sign * value if finite else math.inf
        keep = rungs[i + 1].alive if i + 1 < len(rungs) else 1
        alive = _eliminate(scores, alive, keep)
        log.append({"frac": steps / budget, "scores": scores})
        if on_rung is not None:
            on_rung(i + 1, len(rungs), {**log[-1], "continue": list(alive) if i + 1 < len(rungs) else []})
    winner = alive[0]
    cost = sum(trained[m] + extra[m] for m in trained) / budget
    final = trajectories[winner]
    return RaceResult(winner, log[-1]["scores"][winner], cost, bool(final.diverged), log, final)
