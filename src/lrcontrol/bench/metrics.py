"""Benchmark metrics (METHODS.md §8): per run, per task over seeds and LR grids, and across tasks.

Everything here is a pure function of plain data — a validation curve, or a list of run records — so the
run engine, `lrcontrol summary`, the tuner and the selector compute the same numbers. docs/metrics.md
defines each metric with a worked example.

A run record is a mapping (or a pandas DataFrame row) with the fields

    task, method (the canonical spec without its LR: the method family), lr (None for LR-free methods),
    seed, metric (the task's primary validation metric), higher_is_better, final, diverged

and optionally best, auc, steps_to_target (None or inf: never), budget, steps, extra_steps, wall_time,
initial (the metric before training: the anchor of the regret scale), optimum (the metric's best
possible value: the anchor of the profile's ratio scale) and target. A row of `Store.records()`
(final_metric, best_metric and the trajectory) is read too: `enrich_record` fills what is missing.

Conventions, the same everywhere:

- A run *fails* if it diverged or its score is missing or not finite. A failed run is worse than every
  run that did not fail, whichever direction the metric has.
- Scores are oriented into a loss ℓ = value (lower is better) or ℓ = −value (higher is better), with
  ℓ = +∞ for a failed run, so every comparison below reads "smaller is better".
- Per (task, method) the method runs at the grid point with the best median ℓ over seeds (ties: fewer
  failed runs, then the smaller LR): it is judged tuned on its grid, and the grid's cost is reported.
- Several budgets of one configuration (multi-fidelity runs): the longest run counts.
"""

from __future__ import annotations

import math
import numbers
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.table import Table

from lrcontrol.errors import LRControlError

SCORES = ("final", "best", "auc")
PROFILE_MEASURES = ("gap", "steps_to_target")
REQUIRED_FIELDS = ("task", "method", "seed", "metric", "higher_is_better", "final", "diverged")
#: store column names → record field names
_ALIASES = {"final_metric": "final", "best_metric": "best"}

#: task → method → value
TaskTable = dict[str, dict[str, float]]


# --------------------------------------------------------------------------------------------------
# Per run: a validation curve [(step, value), …]
# --------------------------------------------------------------------------------------------------


def _curve_arrays(curve: Iterable[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    points = list(curve)
    try:
        steps = np.array([float(p[0]) for p in points], dtype=float)
        values = np.array([math.nan if p[1] is None else float(p[1]) for p in points], dtype=float)
    except (TypeError, ValueError, IndexError):
        raise LRControlError(
            "a validation curve is a list of (step, value) pairs, e.g. [(0, 2.3), (100, 0.9)]"
        ) from None
    if not np.all(np.isfinite(steps)):
        raise LRControlError("a validation curve has a non-finite step; steps are step counts, e.g. 0, 100, 200")
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    repeated = steps[1:][np.diff(steps) == 0]
    if repeated.size:
        raise LRControlError(f"a validation curve has two values at step {repeated[0]:g}; keep one per step")
    return steps, values


def final_value(curve: Iterable[Sequence[float | None]]) -> float:
    """The value at the last evaluation (NaN for an empty curve)."""
    _, values = _curve_arrays(curve)
    return float(values[-1]) if values.size else math.nan


def best_value(curve: Iterable[Sequence[float | None]], higher_is_better: bool) -> float:
    """The best finite value of the curve (NaN if there is none)."""
    _, values = _curve_arrays(curve)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.nan
    return float(finite.max() if higher_is_better else finite.min())


def curve_auc(curve: Iterable[Sequence[float | None]], horizon: float | None = None) -> float:
    """Area under the curve per step: (1 / (T − s₀)) ∫_{s₀}^{T} v(s) ds, the curve's time average.

    Trapezoids between evaluations; the last value is held up to the horizon T (default: the last
    evaluated step). A single point is its own average. NaN if any value is not finite (a failed run).
    """
    steps, values = _curve_arrays(curve)
    if not values.size or not np.all(np.isfinite(values)):
        return math.nan
    if horizon is not None:
        if horizon < steps[-1]:
            raise LRControlError(f"horizon {horizon:g} is before the curve's last step {steps[-1]:g}; pass the budget")
        if horizon > steps[-1]:
            steps, values = np.append(steps, float(horizon)), np.append(values, values[-1])
    span = steps[-1] - steps[0]
    if span == 0:
        return float(values[-1])
    return float(np.sum(np.diff(steps) * (values[1:] + values[:-1]) / 2) / span)


def steps_to_target(curve: Iterable[Sequence[float | None]], target: float, higher_is_better: bool) -> float:
    """The first evaluated step whose value reaches the target (≥ or ≤ by direction); ∞ if never.

    Pass (seconds, value) pairs instead to get the seconds to target."""
    steps, values = _curve_arrays(curve)
    with np.errstate(invalid="ignore"):
        reached = values >= target if higher_is_better else values <= target  # NaN never reaches
    if not reached.any():
        return math.inf
    step = float(steps[int(np.argmax(reached))])
    return int(step) if step.is_integer() else step


def run_metrics(
    curve: Iterable[Sequence[float | None]],
    higher_is_better: bool,
    target: float | None = None,
    horizon: float | None = None,
    seconds: Sequence[float] | None = None,
) -> dict[str, float]:
    """final, best, auc, initial (the value at step 0, NaN if not evaluated) and, given a target,
    steps_to_target — and seconds_to_target when `seconds` (wall time at each evaluation) is given."""
    points = list(curve)
    steps, values = _curve_arrays(points)
    out = {
        "final": final_value(points),
        "best": best_value(points, higher_is_better),
        "auc": curve_auc(points, horizon),
        "initial": float(values[0]) if values.size and steps[0] == 0 else math.nan,
    }
    if target is not None:
        out["steps_to_target"] = steps_to_target(points, target, higher_is_better)
        if seconds is not None:
            if len(seconds) != len(points):
                raise LRControlError(f"{len(seconds)} wall times for {len(points)} evaluations; give one per point")
            timed = [(t, p[1]) for t, p in zip(seconds, points)]
            out["seconds_to_target"] = steps_to_target(timed, target, higher_is_better)
    return out


def run_cost(record: Mapping[str, Any]) -> float:
    """Compute in full-run equivalents: (steps + extra_steps) / budget (NaN if budget or steps are unknown).

    extra_steps counts what the method spent besides training (an LR range test, tuning trials)."""
    budget, steps = _number(record.get("budget"), "budget"), _number(record.get("steps"), "steps")
    extra = _number(record.get("extra_steps"), "extra_steps")
    if not budget > 0 or math.isnan(steps):
        return math.nan
    return (steps + (0.0 if math.isnan(extra) else extra)) / budget


def enrich_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a record with the store's names mapped (final_metric → final, best_metric → best) and
    auc, steps_to_target (given a target) and initial computed from its trajectory when they are absent."""
    out = dict(record)
    for old, new in _ALIASES.items():
        if new not in out and old in out:
            out[new] = out[old]
    trajectory = out.get("trajectory")
    if isinstance(trajectory, Mapping) and "metric" in out and trajectory.get("eval_steps") is not None:
        metric = out["metric"]
        curve = [(s, v.get(metric)) for s, v in zip(trajectory["eval_steps"], trajectory.get("val", []))]
        target = _number(out.get("target"), "target")
        computed = run_metrics(curve, bool(out.get("higher_is_better")), None if math.isnan(target) else target)
        for name, value in computed.items():
            if out.get(name) is None:
                out[name] = value
    return out


# --------------------------------------------------------------------------------------------------
# Robust statistics
# --------------------------------------------------------------------------------------------------


def quantile(values: Iterable[float], q: float) -> float:
    """The q-quantile with linear interpolation (numpy's default), exact with ±∞ entries (numpy gives
    NaN for ∞ − ∞); NaN entries are dropped. NaN for no values."""
    data = np.sort(np.asarray(list(values), dtype=float))
    data = data[~np.isnan(data)]
    if not data.size:
        return math.nan
    position = (data.size - 1) * q
    low, high = math.floor(position), math.ceil(position)
    if data[low] == data[high] or math.isinf(data[low]):  # −∞ pulls any mixture down to −∞
        return float(data[low])
    if math.isinf(data[high]):
        return math.inf
    return float(data[low] + (position - low) * (data[high] - data[low]))


def median_iqr(values: Iterable[float]) -> dict[str, float]:
    """Median, first and third quartiles and the interquartile range q3 − q1."""
    data = list(values)
    q1, median, q3 = quantile(data, 0.25), quantile(data, 0.5), quantile(data, 0.75)
    iqr = q3 - q1 if q1 != q3 else 0.0
    return {"median": median, "q1": q1, "q3": q3, "iqr": iqr}


def interquartile_mean(values: Iterable[float]) -> float:
    """IQM: the mean of the middle half, cutting ⌊n/4⌋ values from each end (scipy's trim_mean(x, 0.25);
    Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice")."""
    data = np.sort(np.asarray(list(values), dtype=float))
    if not data.size:
        return math.nan
    cut = data.size // 4
    return float(data[cut : data.size - cut].mean())


def bootstrap_iqm(
    groups: Sequence[Sequence[float]], n_bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """IQM over all values and its percentile bootstrap confidence interval, (iqm, low, high).

    Stratified bootstrap (rliable): each group — one task's seeds — is resampled with replacement on
    its own, so every replicate keeps every task. Deterministic for a seed.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return math.nan, math.nan, math.nan
    if not 0 < confidence < 1 or n_bootstrap < 1:
        raise LRControlError(f"confidence must be in (0, 1) and n_bootstrap ≥ 1; got {confidence}, {n_bootstrap}")
    rng = np.random.default_rng(seed)
    replicates = np.concatenate([a[rng.integers(0, a.size, size=(n_bootstrap, a.size))] for a in arrays], axis=1)
    replicates.sort(axis=1)
    cut = replicates.shape[1] // 4
    iqms = replicates[:, cut : replicates.shape[1] - cut].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(iqms, [alpha / 2, 1 - alpha / 2])
    return interquartile_mean(np.concatenate(arrays)), float(low), float(high)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    task: str
    method: str
    lr: float | None
    seed: Any
    higher_is_better: bool
    value: float  # the score on the metric's own scale, NaN when missing
    failed: bool
    record: dict[str, Any]

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


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LRControlError(f"field {name!r} must be a number or None; got {value!r}") from None


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
        return bool(value)
    raise LRControlError(f"field {name!r} must be true/false (or 1/0); got {value!r}")


def _as_dicts(records: Any) -> list[dict[str, Any]]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # a pandas DataFrame
        records = records.to_dict("records")
    rows = []
    for record in records:
        if not isinstance(record, Mapping):
            raise LRControlError(f"a run record is a mapping of fields; got {type(record).__name__}")
        rows.append(enrich_record(record))
    return rows


def _load_runs(records: Any, score: str = "final") -> list[_Run]:
    """Validate records and keep, per (task, method, lr, seed), the run with the largest budget."""
    if score not in SCORES:
        raise LRControlError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    rows = _as_dicts(records)
    if not rows:
        raise LRControlError("no run records to summarize; run a sweep first, e.g. lrcontrol sweep suites/smoke.toml")
    direction: dict[str, tuple[str, bool]] = {}
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        missing = [f for f in (*REQUIRED_FIELDS, score) if f not in row]
        if missing:
            raise LRControlError(
                f"run record lacks field(s) {', '.join(missing)}; a record needs {', '.join(REQUIRED_FIELDS)}"
            )
        task, hib = str(row["task"]), _flag(row["higher_is_better"], "higher_is_better")
        if direction.setdefault(task, (row["metric"], hib)) != (row["metric"], hib):
            raise LRControlError(
                f"task {task!r} has runs scored on different metrics or directions {direction[task]} and "
                f"{(row['metric'], hib)}; give each task one primary metric"
            )
        lr = _number(row.get("lr"), "lr")
        key = (task, str(row["method"]), None if math.isnan(lr) else lr, row["seed"])
        budget = _number(row.get("budget"), "budget")
        if key in chosen:
            other = _number(chosen[key].get("budget"), "budget")
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
    for (task, method, lr, seed), row in sorted(chosen.items(), key=lambda kv: tuple(map(_sort_key, kv[0]))):
        value = _number(row[score], score)
        failed = _flag(row["diverged"], "diverged") or not math.isfinite(value)
        runs.append(_Run(task, method, lr, seed, direction[task][1], value, failed, row))
    return runs


def _group(runs: Iterable[_Run], *fields: str) -> dict[tuple, list[_Run]]:
    groups: dict[tuple, list[_Run]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, f) for f in fields)].append(run)
    return dict(sorted(groups.items(), key=lambda kv: tuple(_sort_key(k) for k in kv[0])))


def _sort_key(value: Any) -> tuple:
    """None first, then numbers (numpy's too) in order, then anything else by its text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, numbers.Real):
        return (1, float(value), "")
    return (2, 0.0, str(value))


# --------------------------------------------------------------------------------------------------
# Per task: seeds and LR grids
# --------------------------------------------------------------------------------------------------


def seed_statistics(records: Any, value: str = "final") -> list[dict[str, Any]]:
    """Per (task, method, lr): median, quartiles and IQR over seeds of a value (final, best or auc),
    a failed run counted at the worst end (±∞), with the number of runs and of failed runs."""
    out = []
    for (task, method, lr), runs in _group(_load_runs(records, value), "task", "method", "lr").items():
        stats = median_iqr(r.shown for r in runs)
        out.append({"task": task, "method": method, "lr": lr, **stats, "n_runs": len(runs), "n_failed": _failed(runs)})
    return out


def _failed(runs: Sequence[_Run]) -> int:
    return sum(r.failed for r in runs)


@dataclass
class _GridPoint:
    lr: float | None
    runs: list[_Run]
    median_loss: float


def _grid(runs: list[_Run]) -> list[_GridPoint]:
    """One method's grid points on one task, best first (median loss, then fewer failures, then LR)."""
    points = [_GridPoint(lr, rs, quantile((r.loss for r in rs), 0.5)) for (lr,), rs in _group(runs, "lr").items()]
    return sorted(points, key=lambda p: (p.median_loss, _failed(p.runs), _sort_key(p.lr)))


@dataclass
class _Selection:
    """Each method's grid per task (best point first), each task's best median and regret scale."""

    grids: dict[str, dict[str, list[_GridPoint]]]
    task_best: dict[str, float]
    scales: dict[str, tuple[float, float]]
    runs: list[_Run]

    def best(self, task: str) -> dict[str, _GridPoint]:
        return {m: points[0] for m, points in self.grids[task].items()}

    def robust_lrs(self, task: str, method: str, within_percent: float) -> list[float | None]:
        best = self.task_best[task]
        good = [p.lr for p in self.grids[task][method] if _within(p.median_loss, best, within_percent)]
        return sorted(good, key=_sort_key)


def _within(loss: float, best: float, within_percent: float) -> bool:
    return math.isfinite(best) and loss <= best + within_percent / 100 * abs(best)


def _select(runs: list[_Run]) -> _Selection:
    grids: dict[str, dict[str, list[_GridPoint]]] = {}
    task_best, scales = {}, {}
    for (task,), task_runs in _group(runs, "task").items():
        grids[task] = {method: _grid(rs) for (method,), rs in _group(task_runs, "method").items()}
        task_best[task] = min(g[0].median_loss for g in grids[task].values())
        scales[task] = _regret_scale(task_runs)
    return _Selection(grids, task_best, scales, runs)


def _check_percent(within_percent: float) -> None:
    if not within_percent >= 0:
        raise LRControlError(f"within_percent must be ≥ 0; got {within_percent}")


def lr_grid(records: Any, score: str = "final", within_percent: float = 5.0) -> list[dict[str, Any]]:
    """Per (task, method): the best LR (by median over seeds) and the robustness width, the number of
    grid points whose median reaches within `within_percent` % of the task's best median over every
    method and LR: ℓ ≤ ℓ* + x/100 · |ℓ*| on the oriented scale, i.e. v ≤ v*(1 + x/100) for a positive
    loss and v ≥ v*(1 − x/100) for a positive accuracy."""
    _check_percent(within_percent)
    selection = _select(_load_runs(records, score))
    out = []
    for task, grids in selection.grids.items():
        for method, points in grids.items():
            robust = selection.robust_lrs(task, method, within_percent)
            out.append(
                {
                    "task": task,
                    "method": method,
                    "best_lr": points[0].lr,
                    "best_median": _unorient(points[0]),
                    "robustness_width": len(robust),
                    "grid_size": len(points),
                    "robust_lrs": robust,
                }
            )
    return out


def _unorient(point: _GridPoint) -> float:
    return -point.median_loss if point.runs[0].higher_is_better else point.median_loss


# --------------------------------------------------------------------------------------------------
# Across tasks
# --------------------------------------------------------------------------------------------------


def _regret_scale(task_runs: Sequence[_Run]) -> tuple[float, float]:
    """(best, worst) oriented losses that map to regret 0 and 1 on one task."""
    finite = [r.loss for r in task_runs if not r.failed]
    if not finite:
        return math.inf, math.inf
    best = min(finite)
    initial = [_number(r.record.get("initial"), "initial") for r in task_runs]
    initial = [(-v if task_runs[0].higher_is_better else v) for v in initial if math.isfinite(v)]
    worst = quantile(initial, 0.5) if initial else math.nan
    if not worst > best:  # no anchor, or nothing improved on it: fall back to the worst finite run
        worst = max(finite)
    return best, worst


def _regret(loss: float, scale: tuple[float, float]) -> float:
    best, worst = scale
    if math.isinf(loss):
        return 1.0
    if worst <= best:
        return 0.0
    return min(max((loss - best) / (worst - best), 0.0), 1.0)


def task_scores(records: Any, score: str = "final") -> TaskTable:
    """task → method → median score over seeds at the method's best LR, on the metric's scale (±∞ if failed)."""
    selection = _select(_load_runs(records, score))
    return {task: {m: _unorient(p) for m, p in selection.best(task).items()} for task in selection.grids}


def normalised_regret(records: Any, score: str = "final") -> TaskTable:
    """task → method → normalised regret in [0, 1] of the median score at the method's best LR.

    On the oriented scale, r = (ℓ − ℓ_best) / (ℓ_worst − ℓ_best) clipped to [0, 1], where ℓ_best is the
    best run on the task (any method, LR, seed) and ℓ_worst the median `initial` value (the untrained
    model) when records carry it, else the worst finite run. Failed: r = 1. All runs equal: r = 0.
    """
    selection = _select(_load_runs(records, score))
    return _regret_table(selection)


def _regret_table(selection: _Selection) -> TaskTable:
    return {
        task: {m: _regret(p.median_loss, selection.scales[task]) for m, p in selection.best(task).items()}
        for task in selection.grids
    }


def _ranks(methods: Mapping[str, float]) -> dict[str, float]:
    values = np.array(list(methods.values()), dtype=float)
    below = (values[None, :] < values[:, None]).sum(axis=1)
    equal = (values[None, :] == values[:, None]).sum(axis=1)
    return {name: float(b + (e + 1) / 2) for name, b, e in zip(methods, below, equal)}


def average_ranks(table: TaskTable) -> dict[str, float]:
    """Mean over tasks of each method's rank (1 = best, smaller values are better, ties share the mean
    of the ranks they span), over the tasks where the method has runs."""
    ranks: dict[str, list[float]] = defaultdict(list)
    for methods in table.values():
        for name, rank in _ranks(methods).items():
            ranks[name].append(rank)
    return {m: float(np.mean(r)) for m, r in sorted(ranks.items())}


def profile_ratios(records: Any, score: str = "final", measure: str = "gap", gap_floor: float = 1e-12) -> TaskTable:
    """task → method → ratio to the task's best method (1 = best, ∞ = failed), the x-axis of the profile.

    measure="gap": the distance to the metric's optimum at the best LR's median, g = v − v_opt (lower is
    better) or v_opt − v (higher is better); v_opt is the records' `optimum`, else 0 for lower-is-better
    metrics (a loss: the ratio is v / v*) and 1 for higher-is-better ones (an accuracy: the ratio of
    error rates (1 − a) / (1 − a*)). Ratio = max(g, floor) / max(g*, floor).
    measure="steps_to_target": AlgoPerf's ratio of median steps to reach the task's target (∞ if never).
    """
    if measure not in PROFILE_MEASURES:
        raise LRControlError(f"unknown profile measure {measure!r}; choose one of {', '.join(PROFILE_MEASURES)}")
    return _ratio_table(_select(_load_runs(records, score)), measure, gap_floor)


def _gap(point: _GridPoint, task: str) -> float:
    run = point.runs[0]
    optimum = _number(run.record.get("optimum"), "optimum")
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


def _ratio_table(selection: _Selection, measure: str, gap_floor: float) -> TaskTable:
    if not gap_floor > 0:
        raise LRControlError(f"gap_floor must be > 0 (it keeps ratios finite at the optimum); got {gap_floor}")
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


def _steps_to_target(run: _Run) -> float:
    if "steps_to_target" not in run.record:
        raise LRControlError("measure='steps_to_target' needs the field steps_to_target (or a target and trajectory)")
    steps = _number(run.record["steps_to_target"], "steps_to_target")
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


# --------------------------------------------------------------------------------------------------
# The summary behind `lrcontrol summary`
# --------------------------------------------------------------------------------------------------


def _field_stats(runs: Sequence[_Run], field: str) -> dict[str, float] | None:
    """Median and IQR of a record field over seeds, a failed run at the worst end; None if absent."""
    if any(field not in r.record for r in runs):
        return None
    values = []
    for r in runs:
        value = _number(r.record[field], field)
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
    """Every §8 metric for a set of run records, as JSON-able data (undefined or infinite numbers are None).

    per_method (sorted by mean regret): n_tasks, n_runs, mean_regret, iqm_regret with its stratified
    bootstrap interval (over each task's seeds at the method's best LR), average_rank, profile_area
    (AlgoPerf score up to tau_max), diverged_share (of all the method's runs, grid included),
    robustness_width (mean over tasks), cost_per_run and grid_cost (full-run equivalents: one run,
    and one seed of the whole LR grid), wall_time_per_run.
    per_task: the VBS methods and value, and per method its best LR, median/IQR of the score (and of
    final and best), regret, rank, profile ratio and robustness width. vbs, sbs, sbs_vbs_gap: `vbs_sbs`.
    """
    _check_percent(within_percent)
    if profile_measure not in PROFILE_MEASURES:
        raise LRControlError(
            f"unknown profile measure {profile_measure!r}; choose one of {', '.join(PROFILE_MEASURES)}"
        )
    runs = _load_runs(records, score)
    selection = _select(runs)
    regrets = _regret_table(selection)
    losses = {task: {m: p.median_loss for m, p in selection.best(task).items()} for task in selection.grids}
    ratios = _ratio_table(selection, profile_measure, gap_floor)
    areas = profile_area(ratios, tau_max)
    ranks = average_ranks(losses)
    selectors = vbs_sbs(regrets)

    per_task = []
    for task, grids in selection.grids.items():
        best = selection.best(task)
        task_ranks = _ranks(losses[task])
        methods = {}
        for method, point in best.items():
            robust = selection.robust_lrs(task, method, within_percent)
            methods[method] = {
                "best_lr": point.lr,
                **median_iqr(r.shown for r in point.runs),
                "final": _field_stats(point.runs, "final"),
                "best": _field_stats(point.runs, "best"),
                "n_seeds": len(point.runs),
                "n_failed": _failed(point.runs),
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
                "best_value": _unorient(best[leaders[0]]),
                "methods": methods,
            }
        )

    per_method = []
    for (method,), method_runs in _group(runs, "method").items():
        tasks = [t for t in selection.grids if method in selection.grids[t]]
        groups = [[_regret(r.loss, selection.scales[t]) for r in selection.grids[t][method][0].runs] for t in tasks]
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
                "average_rank": ranks[method],
                "profile_area": areas[method],
                "diverged_share": _mean(float(_flag(r.record["diverged"], "diverged")) for r in method_runs),
                "robustness_width": _mean(len(selection.robust_lrs(t, method, within_percent)) for t in tasks),
                "cost_per_run": _mean(costs),
                "grid_cost": _mean(grid_costs),
                "wall_time_per_run": _mean(_number(r.record.get("wall_time"), "wall_time") for r in method_runs),
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


def summary_table(summary: Mapping[str, Any]) -> Table:
    """The summary's per-method table as a `rich.table.Table` (the single best solver in bold)."""

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    sbs = summary["sbs"]["method"]
    table = Table(
        title=f"lrcontrol summary: {len(summary['tasks'])} tasks, {summary['n_runs']} runs, score = {summary['score']}",
        caption=(
            f"regret: 0 = the best run on the task, 1 = the untrained model (else the worst run) or diverged; IQM [{summary['confidence']:.0%} CI]; "
            f"profile area over τ ∈ [1, {summary['tau_max']:g}]; width = LRs within {summary['within_percent']:g} % "
            f"of the task's best; cost in full runs. SBS {sbs or '–'} "
            f"(mean regret {number(summary['sbs']['mean_regret'])}), VBS {number(summary['vbs']['mean_regret'])}, "
            f"gap {number(summary['sbs_vbs_gap'])}"
        ),
    )
    for name, justify in (
        ("method", "left"),
        ("tasks", "right"),
        ("mean regret ↓", "right"),
        ("IQM regret ↓", "right"),
        ("avg rank ↓", "right"),
        ("profile ↑", "right"),
        ("diverged", "right"),
        ("width ↑", "right"),
        ("cost/run", "right"),
        ("grid cost", "right"),
    ):
        table.add_column(name, justify=justify, style="bold cyan" if name == "method" else None)
    for row in summary["per_method"]:
        iqm = f"{number(row['iqm_regret'])} [{number(row['iqm_ci_low'])}, {number(row['iqm_ci_high'])}]"
        diverged = "–" if row["diverged_share"] is None else f"{row['diverged_share']:.0%}"
        table.add_row(
            row["method"],
            str(row["n_tasks"]),
            number(row["mean_regret"]),
            iqm,
            number(row["average_rank"], 2),
            number(row["profile_area"]),
            diverged,
            number(row["robustness_width"], 1),
            number(row["cost_per_run"], 2),
            number(row["grid_cost"], 2),
            style="bold" if row["method"] == sbs else None,
        )
    return table
