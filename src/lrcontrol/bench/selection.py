"""The selection: run records validated, scored, and grouped into each method's LR grid per task.

    selection = Selection.from_records(store.records(), score="final")
    selection.best("sphere-10@1/smoke")        # method → its best grid point (the LR with the best median)
    metrics.normalised_regret(selection)       # every metric takes the selection, or records to build one

Every metric of `lrcontrol.bench.metrics` reads a Selection; build it once and pass it to each, rather
than handing each function the records (which builds a selection per call).

Conventions, the same everywhere (docs/metrics.md):

- A run *fails* if it diverged or its score is missing or not finite; a failed run is worse than every
  run that did not fail, whichever direction the metric has.
- Scores are oriented into a loss ℓ = value (lower is better) or ℓ = −value (higher is better), with
  ℓ = +∞ for a failed run, so every comparison reads "smaller is better".
- Per (task, method) the method runs at the grid point with the best median ℓ over seeds (ties: fewer
  failed runs, then the smaller LR): it is judged tuned on its grid.
- Several budgets of one configuration (multi-fidelity runs): the longest run counts.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrcontrol.bench.record import analysis_view, number
from lrcontrol.bench.statistics import median_iqr, quantile
from lrcontrol.errors import LRControlError

#: the scores a selection can rank by, and the record field each reads
SCORE_FIELDS = {"final": "final_metric", "best": "best_metric", "auc": "auc"}
SCORES = tuple(SCORE_FIELDS)
REQUIRED_FIELDS = ("task", "method", "seed", "metric", "higher_is_better", "final_metric", "diverged")


@dataclass(frozen=True)
class ScoredRun:
    """One run as a selection sees it: its identity, its score and whether it failed."""

    task: str
    method: str
    lr: float | None
    seed: Any
    higher_is_better: bool
    value: float  # the score on the metric's own scale, NaN when missing
    failed: bool
    record: Mapping[str, Any]

    @property
    def loss(self) -> float:
        """The oriented score: smaller is better, +∞ for a failed run."""
        if self.failed:
            return math.inf
        return -self.value if self.higher_is_better else self.value

    @property
    def worst_value(self) -> float:
        return -math.inf if self.higher_is_better else math.inf

    @property
    def shown(self) -> float:
        """The value on the metric's scale with a failed run at its worst end (±∞)."""
        return self.worst_value if self.failed else self.value


@dataclass
class GridPoint:
    """One LR of one method on one task: its runs (one per seed) and their median oriented score."""

    lr: float | None
    runs: list[ScoredRun]
    median_loss: float

    @property
    def median_value(self) -> float:
        """The median on the metric's own scale (±∞ if failed)."""
        return -self.median_loss if self.runs[0].higher_is_better else self.median_loss


@dataclass
class Selection:
    """Each method's grid per task (best point first), each task's best median and regret scale.

    grids: task → method → grid points, best first. task_best: task → the best median ℓ over every
    method and LR. scales: task → (ℓ, ℓ) mapped to regret 0 and 1. runs: every scored run, sorted.
    """

    score: str
    grids: dict[str, dict[str, list[GridPoint]]]
    task_best: dict[str, float]
    scales: dict[str, tuple[float, float]]
    runs: list[ScoredRun]

    @classmethod
    def from_records(cls, records: Any, score: str = "final") -> Selection:
        """Validate records (mappings, RunRecords or a pandas DataFrame) and select; see the module."""
        runs = _load_runs(records, score)
        grids: dict[str, dict[str, list[GridPoint]]] = {}
        task_best, scales = {}, {}
        for (task,), task_runs in group(runs, "task").items():
            grids[task] = {method: _grid(rs) for (method,), rs in group(task_runs, "method").items()}
            task_best[task] = min(g[0].median_loss for g in grids[task].values())
            scales[task] = _regret_scale(task_runs)
        return cls(score, grids, task_best, scales, runs)

    @property
    def tasks(self) -> list[str]:
        return list(self.grids)

    def best(self, task: str) -> dict[str, GridPoint]:
        """method → its best grid point on `task`."""
        return {m: points[0] for m, points in self.grids[task].items()}

    def robust_lrs(self, task: str, method: str, within_percent: float) -> list[float | None]:
        """The method's LRs whose median is within `within_percent` % of the task's best median."""
        check_percent(within_percent)
        best = self.task_best[task]
        good = [p.lr for p in self.grids[task][method] if _within(p.median_loss, best, within_percent)]
        return sorted(good, key=sort_key)

    def regret(self, task: str, loss: float) -> float:
        """Normalised regret of an oriented score on `task`: (ℓ − ℓ_best) / (ℓ_worst − ℓ_best) in [0, 1]."""
        best, worst = self.scales[task]
        if math.isinf(loss):
            return 1.0
        if worst <= best:
            return 0.0
        return min(max((loss - best) / (worst - best), 0.0), 1.0)


def as_selection(data: Any, score: str | None = None) -> Selection:
    """`data` if it is a Selection (of the same score), else a Selection of the records `data`."""
    if isinstance(data, Selection):
        if score is not None and score != data.score:
            raise LRControlError(
                f"this selection ranks by {data.score!r}, not {score!r}; select again with score={score!r}"
            )
        return data
    return Selection.from_records(data, "final" if score is None else score)


def seed_statistics(records: Any, value: str | None = None) -> list[dict[str, Any]]:
    """Per (task, method, lr): median, quartiles and IQR over seeds of a value (final, best or auc),
    a failed run counted at the worst end (±∞), with the number of runs and of failed runs."""
    selection = as_selection(records, value)
    out = []
    for task, grids in selection.grids.items():
        rows = [(method, p) for method, points in grids.items() for p in points]
        for method, point in sorted(rows, key=lambda mp: (mp[0], sort_key(mp[1].lr))):
            stats = median_iqr(r.shown for r in point.runs)
            n_failed = failed_count(point.runs)
            out.append(
                {
                    "task": task,
                    "method": method,
                    "lr": point.lr,
                    **stats,
                    "n_runs": len(point.runs),
                    "n_failed": n_failed,
                }
            )
    return out


def lr_grid(records: Any, score: str | None = None, within_percent: float = 5.0) -> list[dict[str, Any]]:
    """Per (task, method): the best LR (by median over seeds) and the robustness width, the number of
    grid points whose median reaches within `within_percent` % of the task's best median over every
    method and LR: ℓ ≤ ℓ* + x/100 · |ℓ*| on the oriented scale, i.e. v ≤ v*(1 + x/100) for a positive
    loss and v ≥ v*(1 − x/100) for a positive accuracy."""
    check_percent(within_percent)
    selection = as_selection(records, score)
    out = []
    for task, grids in selection.grids.items():
        for method, points in grids.items():
            robust = selection.robust_lrs(task, method, within_percent)
            out.append(
                {
                    "task": task,
                    "method": method,
                    "best_lr": points[0].lr,
                    "best_median": points[0].median_value,
                    "robustness_width": len(robust),
                    "grid_size": len(points),
                    "robust_lrs": robust,
                }
            )
    return out


def check_percent(within_percent: float) -> None:
    if not within_percent >= 0:
        raise LRControlError(f"within_percent must be ≥ 0; got {within_percent}")


def failed_count(runs: Sequence[ScoredRun]) -> int:
    return sum(r.failed for r in runs)


def flag(value: Any, name: str) -> bool:
    """A record's true/false field (bool, numpy bool, or 1/0), or an error naming the field."""
    if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
        return bool(value)
    raise LRControlError(f"field {name!r} must be true/false (or 1/0); got {value!r}")


def group(runs: Iterable[ScoredRun], *names: str) -> dict[tuple, list[ScoredRun]]:
    """Runs grouped by the given attributes, groups in `sort_key` order."""
    groups: dict[tuple, list[ScoredRun]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, f) for f in names)].append(run)
    return dict(sorted(groups.items(), key=lambda kv: tuple(sort_key(k) for k in kv[0])))


def sort_key(value: Any) -> tuple:
    """None first, then numbers (numpy's too) in order, then anything else by its text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, numbers.Real):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _records(records: Any) -> list[Mapping[str, Any]]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # a pandas DataFrame
        records = records.to_dict("records")
    rows = []
    for record in records:
        if not isinstance(record, Mapping):
            raise LRControlError(f"a run record is a mapping of fields; got {type(record).__name__}")
        rows.append(analysis_view(record))
    return rows


def _load_runs(records: Any, score: str) -> list[ScoredRun]:
    """Validate records and keep, per (task, method, lr, seed), the run with the largest budget."""
    if score not in SCORE_FIELDS:
        raise LRControlError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    field = SCORE_FIELDS[score]
    rows = _records(records)
    if not rows:
        raise LRControlError("no run records to summarize; run a sweep first, e.g. lrcontrol sweep suites/smoke.toml")
    direction: dict[str, tuple[str, bool]] = {}
    chosen: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        missing = [f for f in dict.fromkeys((*REQUIRED_FIELDS, field)) if f not in row]
        if missing:
            raise LRControlError(
                f"run record lacks field(s) {', '.join(missing)}; a record needs {', '.join(REQUIRED_FIELDS)}"
            )
        task, hib = str(row["task"]), flag(row["higher_is_better"], "higher_is_better")
        if direction.setdefault(task, (row["metric"], hib)) != (row["metric"], hib):
            raise LRControlError(
                f"task {task!r} has runs scored on different metrics or directions {direction[task]} and "
                f"{(row['metric'], hib)}; give each task one primary metric"
            )
        lr = number(row.get("lr"), "lr")
        key = (task, str(row["method"]), None if math.isnan(lr) else lr, row["seed"])
        budget = number(row.get("budget"), "budget")
        if key in chosen:
            other = number(chosen[key].get("budget"), "budget")
            if budget == other or (math.isnan(budget) and math.isnan(other)):
                raise LRControlError(
                    f"two runs of task {key[0]!r}, method {key[1]!r}, lr {key[2]}, seed {key[3]} at the same budget; "
                    "give each task version its own name or filter the records"
                )
            if not budget > other:
                continue
        chosen[key] = row
    runs = []
    # Sorted, so that the bootstrap (which resamples positions) does not depend on the records' order.
    for (task, method, lr, seed), row in sorted(chosen.items(), key=lambda kv: tuple(map(sort_key, kv[0]))):
        value = number(row[field], field)
        failed = flag(row["diverged"], "diverged") or not math.isfinite(value)
        runs.append(ScoredRun(task, method, lr, seed, direction[task][1], value, failed, row))
    return runs


def _grid(runs: list[ScoredRun]) -> list[GridPoint]:
    """One method's grid points on one task, best first (median loss, then fewer failures, then LR)."""
    points = [GridPoint(lr, rs, quantile((r.loss for r in rs), 0.5)) for (lr,), rs in group(runs, "lr").items()]
    return sorted(points, key=lambda p: (p.median_loss, failed_count(p.runs), sort_key(p.lr)))


def _within(loss: float, best: float, within_percent: float) -> bool:
    return math.isfinite(best) and loss <= best + within_percent / 100 * abs(best)


def _regret_scale(task_runs: Sequence[ScoredRun]) -> tuple[float, float]:
    """(best, worst) oriented losses that map to regret 0 and 1 on one task."""
    finite = [r.loss for r in task_runs if not r.failed]
    if not finite:
        return math.inf, math.inf
    best = min(finite)
    initial = [number(r.record.get("initial"), "initial") for r in task_runs]
    initial = [(-v if task_runs[0].higher_is_better else v) for v in initial if math.isfinite(v)]
    worst = quantile(initial, 0.5) if initial else math.nan
    if not worst > best:  # no anchor, or nothing improved on it: fall back to the worst finite run
        worst = max(finite)
    return best, worst
