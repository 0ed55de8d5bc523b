"""The summary behind `lrcontrol summary`: every metric of docs/metrics.md for a set of run records, as
JSON-able data. One `Selection` is built and every metric reads it."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lrcontrol.bench.comparison import (
    PROFILE_MEASURES,
    average_ranks,
    median_losses,
    normalised_regret,
    profile_area,
    profile_ratios,
    ranks,
    vbs_sbs,
)
from lrcontrol.bench.record import number, run_cost
from lrcontrol.bench.selection import ScoredRun, as_selection, check_percent, failed_count, flag, group
from lrcontrol.bench.statistics import bootstrap_iqm, median_iqr
from lrcontrol.errors import LRControlError


def _field_stats(runs: Sequence[ScoredRun], field: str) -> dict[str, float] | None:
    """Median and IQR of a record field over seeds, a failed run at the worst end; None if absent."""
    if any(field not in r.record for r in runs):
        return None
    values = []
    for r in runs:
        value = number(r.record[field], field)
        values.append(r.worst_value if r.failed or not math.isfinite(value) else value)
    return median_iqr(values)


def _mean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _method_seed(seed: int, method: str) -> np.random.SeedSequence:
    # A method's interval depends on the seed and its own name only, not on which methods run beside it.
    return np.random.SeedSequence([seed, zlib.crc32(method.encode())])


def summarize(
    records: Any,
    score: str = "final",
    within_percent: float = 5.0,
    tau_max: float = 4.0,
    profile_measure: str = "gap",
    gap_floor: float = 1e-12,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of docs/metrics.md for a set of run records (or a `Selection` of them), as JSON-able data (undefined or infinite numbers are None).

    per_method (sorted by mean regret): n_tasks, n_runs, mean_regret, iqm_regret with its stratified
    bootstrap interval (over each task's seeds at the method's best LR), average_rank, profile_area
    (AlgoPerf score up to tau_max), diverged_share (of all the method's runs, grid included),
    robustness_width (mean over tasks), cost_per_run and grid_cost (full-run equivalents: one run,
    and one seed of the whole LR grid), wall_time_per_run.
    per_task: the VBS methods and value, and per method its best LR, median/IQR of the score (and of
    final and best), regret, rank, profile ratio and robustness width. vbs, sbs, sbs_vbs_gap: `vbs_sbs`.
    """
    check_percent(within_percent)
    if profile_measure not in PROFILE_MEASURES:
        raise LRControlError(
            f"unknown profile measure {profile_measure!r}; choose one of {', '.join(PROFILE_MEASURES)}"
        )
    selection = as_selection(records, score)
    runs = selection.runs
    regrets = normalised_regret(selection)
    losses = median_losses(selection)
    ratios = profile_ratios(selection, measure=profile_measure, gap_floor=gap_floor)
    areas = profile_area(ratios, tau_max)
    average = average_ranks(losses)
    selectors = vbs_sbs(regrets)

    per_task = []
    for task, grids in selection.grids.items():
        best = selection.best(task)
        task_ranks = ranks(losses[task])
        methods = {}
        for method, point in best.items():
            robust = selection.robust_lrs(task, method, within_percent)
            methods[method] = {
                "best_lr": point.lr,
                **median_iqr(r.shown for r in point.runs),
                "final": _field_stats(point.runs, "final_metric"),
                "best": _field_stats(point.runs, "best_metric"),
                "n_seeds": len(point.runs),
                "n_failed": failed_count(point.runs),
                "regret": regrets[task][method],
                "rank": task_ranks[method],
                "ratio": ratios[task][method],
                "robustness_width": len(robust),
                "grid_size": len(grids[method]),
                "robust_lrs": robust,
            }
        leaders = selectors["vbs"]["per_task"][task]
        first = next(iter(best.values())).runs[0]
        per_task.append(
            {
                "task": task,
                "metric": first.record["metric"],
                "higher_is_better": first.higher_is_better,
                "best_methods": leaders,
                "best_lr": best[leaders[0]].lr,
                "best_value": best[leaders[0]].median_value,
                "methods": methods,
            }
        )

    per_method = []
    for (method,), method_runs in group(runs, "method").items():
        tasks = [t for t in selection.grids if method in selection.grids[t]]
        groups = [[selection.regret(t, r.loss) for r in selection.grids[t][method][0].runs] for t in tasks]
        iqm, low, high = bootstrap_iqm(groups, n_bootstrap, confidence, _method_seed(seed, method))
        costs = [run_cost(r.record) for r in method_runs]
        seeds_per_task = {t: len({r.seed for r in method_runs if r.task == t}) for t in tasks}
        grid_costs = [sum(c for r, c in zip(method_runs, costs) if r.task == t) / seeds_per_task[t] for t in tasks]
        per_method.append(
            {
                "method": method,
                "n_tasks": len(tasks),
                "n_runs": len(method_runs),
                "mean_regret": _mean(regrets[t][method] for t in tasks),
                "iqm_regret": iqm,
                "iqm_ci_low": low,
                "iqm_ci_high": high,
                "average_rank": average[method],
                "profile_area": areas[method],
                "diverged_share": _mean(float(flag(r.record["diverged"], "diverged")) for r in method_runs),
                "robustness_width": _mean(len(selection.robust_lrs(t, method, within_percent)) for t in tasks),
                "cost_per_run": _mean(costs),
                "grid_cost": _mean(grid_costs),
                "wall_time_per_run": _mean(number(r.record.get("wall_time"), "wall_time") for r in method_runs),
            }
        )
    per_method.sort(key=lambda row: (math.isnan(row["mean_regret"]), row["mean_regret"], row["method"]))

    return _json_safe(
        {
            "score": score,
            "within_percent": within_percent,
            "tau_max": tau_max,
            "profile_measure": profile_measure,
            "gap_floor": gap_floor,
            "n_bootstrap": n_bootstrap,
            "confidence": confidence,
            "seed": seed,
            "n_runs": len(runs),
            "tasks": list(selection.grids),
            "methods": [row["method"] for row in per_method],
            "per_method": per_method,
            "per_task": per_task,
            **selectors,
        }
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
