"""Across tasks: task scores, normalised regret, average ranks, performance profiles and their area, and
the virtual and single best solvers. Each function takes a `Selection` (or records, to build one).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrcontrol.bench.record import number
from lrcontrol.bench.selection import GridPoint, ScoredRun, Selection, as_selection
from lrcontrol.bench.statistics import quantile
from lrcontrol.errors import LRControlError

PROFILE_MEASURES = ("gap", "steps_to_target")

#: task → method → value
TaskTable = dict[str, dict[str, float]]


def task_scores(records: Any, score: str | None = None) -> TaskTable:
    """task → method → median score over seeds at the method's best LR, on the metric's scale (±∞ if failed)."""
    selection = as_selection(records, score)
    return {task: {m: p.median_value for m, p in selection.best(task).items()} for task in selection.grids}


def median_losses(selection: Selection) -> TaskTable:
    """task → method → the oriented median (smaller is better) at the method's best LR: what ranks compare."""
    return {task: {m: p.median_loss for m, p in selection.best(task).items()} for task in selection.grids}


def normalised_regret(records: Any, score: str | None = None) -> TaskTable:
    """task → method → normalised regret in [0, 1] of the median score at the method's best LR.

    On the oriented scale, r = (ℓ − ℓ_best) / (ℓ_worst − ℓ_best) clipped to [0, 1], where ℓ_best is the
    best run on the task (any method, LR, seed) and ℓ_worst the median `initial` value (the untrained
    model) when records carry it, else the worst finite run. Failed: r = 1. All runs equal: r = 0.
    """
    selection = as_selection(records, score)
    return {
        task: {m: selection.regret(task, p.median_loss) for m, p in selection.best(task).items()}
        for task in selection.grids
    }


def ranks(methods: Mapping[str, float]) -> dict[str, float]:
    """Each method's rank on one task (1 = best; ties share the mean of the ranks they span)."""
    values = np.array(list(methods.values()), dtype=float)
    below = (values[None, :] < values[:, None]).sum(axis=1)
    equal = (values[None, :] == values[:, None]).sum(axis=1)
    return {name: float(b + (e + 1) / 2) for name, b, e in zip(methods, below, equal)}


def average_ranks(table: TaskTable) -> dict[str, float]:
    """Mean over tasks of each method's rank (1 = best, smaller values are better, ties share the mean
    of the ranks they span), over the tasks where the method has runs."""
    collected: dict[str, list[float]] = defaultdict(list)
    for methods in table.values():
        for name, rank in ranks(methods).items():
            collected[name].append(rank)
    return {m: float(np.mean(r)) for m, r in sorted(collected.items())}


def profile_ratios(records: Any, score: str | None = None, measure: str = "gap", gap_floor: float = 1e-12) -> TaskTable:
    """task → method → ratio to the task's best method (1 = best, ∞ = failed), the x-axis of the profile.

    measure="gap": the distance to the metric's optimum at the best LR's median, g = v − v_opt (lower is
    better) or v_opt − v (higher is better); v_opt is the records' `optimum`, else 0 for lower-is-better
    metrics (a loss: the ratio is v / v*) and 1 for higher-is-better ones (an accuracy: the ratio of
    error rates (1 − a) / (1 − a*)). Ratio = max(g, floor) / max(g*, floor).
    measure="steps_to_target": AlgoPerf's ratio of median steps to reach the task's target (∞ if never).
    """
    if measure not in PROFILE_MEASURES:
        raise LRControlError(f"unknown profile measure {measure!r}; choose one of {', '.join(PROFILE_MEASURES)}")
    if not gap_floor > 0:
        raise LRControlError(f"gap_floor must be > 0 (it keeps ratios finite at the optimum); got {gap_floor}")
    selection = as_selection(records, score)
    table: TaskTable = {}
    for task in selection.grids:
        methods = selection.best(task)
        if measure == "gap":
            sizes = {m: max(_gap(p, task), gap_floor) for m, p in methods.items()}
        else:
            sizes = {m: max(quantile((_steps_to_target(r) for r in p.runs), 0.5), 1.0) for m, p in methods.items()}
        best = min(sizes.values())
        table[task] = {m: (s / best if math.isfinite(best) else math.inf) for m, s in sizes.items()}
    return table


def _gap(point: GridPoint, task: str) -> float:
    run = point.runs[0]
    optimum = number(run.record.get("optimum"), "optimum")
    if math.isnan(optimum):
        optimum = 1.0 if run.higher_is_better else 0.0
    oriented_optimum = -optimum if run.higher_is_better else optimum
    gap = point.median_loss - oriented_optimum
    if gap < 0:
        raise LRControlError(
            f"task {task!r} has a score beyond the metric's optimum {optimum:g}; put the metric's best "
            "possible value in the records' `optimum` field"
        )
    return gap


def _steps_to_target(run: ScoredRun) -> float:
    if "steps_to_target" not in run.record:
        raise LRControlError("measure='steps_to_target' needs the field steps_to_target (or a target and trajectory)")
    steps = number(run.record["steps_to_target"], "steps_to_target")
    return math.inf if run.failed or math.isnan(steps) else steps


def performance_profile(ratios: TaskTable, taus: Sequence[float]) -> dict[str, np.ndarray]:
    """ρ_m(τ) = share of all tasks on which method m's ratio is ≤ τ (a task it did not run counts as failed)."""
    methods = sorted({m for row in ratios.values() for m in row})
    taus_array = np.asarray(taus, dtype=float)
    profile = {}
    for method in methods:
        r = np.array([row.get(method, math.inf) for row in ratios.values()], dtype=float)
        profile[method] = (r[None, :] <= taus_array[:, None]).mean(axis=1)
    return profile


def profile_area(ratios: TaskTable, tau_max: float = 4.0) -> dict[str, float]:
    """AlgoPerf's score: (1 / (τ_max − 1)) ∫_1^{τ_max} ρ(τ) dτ, in [0, 1]; exact, since ρ is a step
    function: each task adds max(0, τ_max − max(1, r)) / ((τ_max − 1) · n_tasks)."""
    if not tau_max > 1:
        raise LRControlError(f"tau_max must be > 1; got {tau_max}")
    methods = sorted({m for row in ratios.values() for m in row})
    area = {}
    for method in methods:
        r = np.array([row.get(method, math.inf) for row in ratios.values()], dtype=float)
        area[method] = float(np.mean(np.clip(tau_max - np.maximum(r, 1.0), 0.0, None)) / (tau_max - 1))
    return area


def vbs_sbs(regrets: TaskTable) -> dict[str, Any]:
    """Virtual best solver (per task the method of least regret) and single best solver (the method of
    least mean regret among those run on every task), and the gap mean(SBS) − mean(VBS) a selector can close."""
    tasks = sorted(regrets)
    vbs = {t: sorted(m for m, r in regrets[t].items() if r == min(regrets[t].values())) for t in tasks}
    vbs_mean = float(np.mean([min(regrets[t].values()) for t in tasks]))
    everywhere = sorted(set.intersection(*(set(regrets[t]) for t in tasks)))
    means = {m: float(np.mean([regrets[t][m] for t in tasks])) for m in everywhere}
    sbs = min(everywhere, key=lambda m: (means[m], m)) if everywhere else None
    return {
        "vbs": {"mean_regret": vbs_mean, "per_task": vbs},
        "sbs": {"method": sbs, "mean_regret": means.get(sbs, math.nan)},
        "sbs_vbs_gap": means[sbs] - vbs_mean if sbs is not None else math.nan,
    }
