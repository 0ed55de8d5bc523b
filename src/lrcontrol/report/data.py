"""What the report draws, read from a store (never from the runs): records, the summary, curves, colours.

The scalar columns and the validation curve of every run are read with SQLite's own JSON functions
(`json_extract`), so that a store of ten thousand runs is not decoded trajectory by trajectory; the whole
trajectory (training loss and LR per step) is decoded only for the runs that are drawn: each method's
seeds at its best LR on each task.

Every number in the report comes from `lrcontrol.bench.metrics` — the same functions as `lrcontrol
summary` — so the HTML and the text summary cannot disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrcontrol.bench import metrics
from lrcontrol.bench.store import COLUMNS, Store, method_of
from lrcontrol.errors import LRControlError

#: the scalar columns read for every run (the trajectory only for the runs that are drawn)
SCALARS = [c for c in COLUMNS if c != "trajectory"]


class NothingToDraw(LRControlError):
    """The store (after the filters) holds nothing a figure could show."""


@dataclass
class Band:
    """A curve over seeds: the median and the interquartile band at each step."""

    steps: np.ndarray
    median: np.ndarray
    q1: np.ndarray
    q3: np.ndarray


@dataclass
class ReportData:
    store: Path
    records: list[dict[str, Any]]  # one per run; `trajectory` holds only eval_steps and val
    summary: dict[str, Any] | None  # `metrics.summarize`; None when there are no runs
    methods: list[str]  # in the summary's order (best mean regret first)
    colours: dict[str, str]  # method → colour, the same in every figure
    tasks: list[str]
    filtered: bool = False  # --tasks or --methods given
    db: Store | None = None  # open while figures are drawn (one connection for all trajectory reads)
    _curves: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> ReportData:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def n_runs(self) -> int:
        return len(self.records)

    @property
    def all_diverged(self) -> bool:
        return bool(self.records) and all(r["diverged"] for r in self.records)

    def task_summary(self, task: str) -> dict[str, Any]:
        return next(row for row in self.summary["per_task"] if row["task"] == task)

    def task_info(self, task: str) -> dict[str, Any]:
        first = next(r for r in self.records if r["task"] == task)
        return {"metric": first["metric"], "higher_is_better": first["higher_is_better"], "family": first["family"]}

    def curves(self, task: str, method: str) -> dict[str, Any]:
        """Median and IQR over seeds at the method's best LR: train loss, the primary validation metric,
        the LR and the effective LR (param group 0) per step; plus the best LR and the seeds' count."""
        key = (task, method)
        if key not in self._curves:
            self._curves[key] = _best_lr_curves(self, task, method)
        return self._curves[key]


def _palette(n: int) -> list[str]:
    # tab10 is the palette people read best; beyond ten methods tab20 keeps them apart
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [_hex(cmap(i % cmap.N)) for i in range(n)]


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """A colour per method by its sorted position among all methods of the store, so that a method keeps
    its colour in every figure, in filtered reports and in `lrcontrol plot`."""
    ordered = sorted(set(methods))
    return dict(zip(ordered, _palette(len(ordered))))


def _canonical_method(text: str) -> str:
    from lrcontrol.spec import parse

    return method_of(str(parse(text)))[0]


def _filter(values: Sequence[str] | None, known: dict[str, str], what: str, example: str) -> set[str] | None:
    """The known keys that the user's names select; one line naming the unknown ones otherwise."""
    if not values:
        return None
    chosen, unknown = set(), []
    for value in values:
        matches = {k for k, alias in known.items() if value in (k, alias)}
        if not matches:
            unknown.append(value)
        chosen |= matches
    if unknown:
        names = ", ".join(sorted(set(known.values()) | set(known))[:12])
        raise LRControlError(f"no {what} {', '.join(map(repr, unknown))} in the store; it has {names} (e.g. {example})")
    return chosen


def _read_records(db: Store) -> list[dict[str, Any]]:
    columns = ", ".join(SCALARS)
    rows = db.query(
        f"SELECT {columns}, json_extract(trajectory, '$.eval_steps') AS eval_steps, "
        "json_extract(trajectory, '$.val') AS val FROM runs ORDER BY key"
    )
    for row in rows:
        row["diverged"] = bool(row["diverged"])
        row["higher_is_better"] = bool(row["higher_is_better"])
        # what metrics.enrich_record reads to compute `initial` (the regret's anchor), auc and steps to target
        row["trajectory"] = {"eval_steps": json.loads(row.pop("eval_steps")), "val": json.loads(row.pop("val"))}
    return rows


def load(store: str | Path, tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> ReportData:
    """Read a store for the report, keeping the given tasks (names or keys) and methods (specs)."""
    path = Path(store)
    if path.is_dir():
        raise LRControlError(f"{path} is a directory; give the store file, e.g. results/quick.db")
    if path.exists() and path.stat().st_size and path.read_bytes()[:16] != b"SQLite format 3\x00":
        raise LRControlError(f"{path} is not an lrcontrol store (not an SQLite file)")
    db = Store(path, create=False)
    try:
        records = _read_records(db)
    except BaseException:
        db.close()
        raise
    all_methods = sorted({r["method"] for r in records})
    colours = method_colours(all_methods)
    task_names = {r["task"]: r["task_name"] for r in records}
    keep_tasks = _filter(tasks, task_names, "task", next(iter(task_names.values()), "sphere-10"))
    method_aliases = {m: m for m in all_methods}
    if methods:
        try:
            wanted = [_canonical_method(m) for m in methods]
        except LRControlError:
            wanted = list(methods)  # not a spec at all: reported as unknown below
        keep_methods = _filter(wanted, method_aliases, "method", next(iter(all_methods), "'adam + constant()'"))
    else:
        keep_methods = None
    records = [
        r
        for r in records
        if (keep_tasks is None or r["task"] in keep_tasks) and (keep_methods is None or r["method"] in keep_methods)
    ]
    try:
        summary = metrics.summarize(records) if records else None
    except BaseException:
        db.close()
        raise
    return ReportData(
        db=db,
        filtered=bool(tasks or methods),
        store=path,
        records=records,
        summary=summary,
        methods=list(summary["methods"]) if summary else [],
        colours=colours,
        tasks=list(summary["tasks"]) if summary else [],
    )


def require_runs(data: ReportData) -> None:
    """Fail with one line when there is nothing at all to draw."""
    if not data.records:
        if data.filtered:
            raise NothingToDraw(f"no run in {data.store} matches --tasks and --methods together; widen the filters")
        raise NothingToDraw(
            f"{data.store} holds no finished runs; run a sweep into it first, "
            f"e.g. lrcontrol sweep suites/smoke.toml --store {data.store}"
        )


# --------------------------------------------------------------------------------------------------
# Curves over seeds
# --------------------------------------------------------------------------------------------------


def band(series: Sequence[tuple[Sequence[float], Sequence[float]]]) -> Band | None:
    """Median and quartiles over seeds on the union of their steps; a seed that stopped early (diverged)
    counts only where it has values. None if no seed has a finite value."""
    steps = np.unique(np.concatenate([np.asarray(s, dtype=float) for s, _ in series])) if series else np.array([])
    if not steps.size:
        return None
    grid = np.full((len(series), steps.size), np.nan)
    for row, (s, v) in enumerate(series):
        values = np.asarray([math.nan if x is None else x for x in v], dtype=float)
        values[~np.isfinite(values)] = np.nan
        grid[row, np.searchsorted(steps, np.asarray(s, dtype=float))] = values
    seen = np.isfinite(grid).any(axis=0)
    if not seen.any():
        return None
    steps, grid = steps[seen], grid[:, seen]
    q1, median, q3 = quartiles(grid)
    return Band(steps, median, q1, q3)


def quartiles(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First quartile, median and third quartile of each column, ignoring NaN (numpy's linear method).

    np.nanquantile does this column by column in Python, 60× slower on a report's curves; sorting once
    (NaN sorts last) and indexing by each column's count of values is the same arithmetic, vectorised."""
    if not np.isnan(grid).any():
        q1, median, q3 = np.quantile(grid, [0.25, 0.5, 0.75], axis=0)
        return q1, median, q3
    ordered = np.sort(grid, axis=0)
    count = np.isfinite(grid).sum(axis=0)
    columns = np.arange(grid.shape[1])
    out = []
    for q in (0.25, 0.5, 0.75):
        position = (count - 1) * q
        low, high = np.floor(position).astype(int), np.ceil(position).astype(int)
        below, above = ordered[low, columns], ordered[high, columns]
        out.append(below + (position - low) * (above - below))
    return out[0], out[1], out[2]


#: the training loss is smoothed over this share of a run's recorded steps before the median is taken
SMOOTHING = 0.05


def smooth(values: Sequence[float], share: float = SMOOTHING) -> np.ndarray:
    """An exponential moving average over about `share` of the points (TensorBoard's smoothing): a
    minibatch loss is too noisy to read on a log axis, and the median over three seeds does not calm it."""
    data = [math.nan if v is None else float(v) for v in values]
    span = max(1.0, share * len(data))
    if span <= 1 or not data:
        return np.asarray(data, dtype=float)
    alpha = 2.0 / (span + 1.0)
    # y_t = α x_t + (1 − α) y_{t−1}, started at y_0 = x_0; a plain loop over ≤ 1024 points is cheaper
    # than importing scipy.signal for lfilter
    out, level = [], data[0]
    for value in data:
        level = alpha * value + (1.0 - alpha) * level
        out.append(level)
    return np.asarray(out)


def _best_lr_curves(data: ReportData, task: str, method: str) -> dict[str, Any]:
    row = data.task_summary(task)["methods"][method]
    lr = row["best_lr"]
    if data.db is None:
        data.db = Store(data.store, create=False)
    lr_clause = "lr IS NULL" if lr is None else "lr = ?"
    runs = data.db.records(f"task = ? AND method = ? AND {lr_clause}", [task, method] + ([] if lr is None else [lr]))
    longest = max(r["budget"] for r in runs)
    runs = [r for r in runs if r["budget"] == longest]  # the metrics count the longest run of a configuration
    metric = runs[0]["metric"]
    trajectories = [r["trajectory"] for r in runs]
    return {
        "lr": lr,
        "n_seeds": len(runs),
        "n_diverged": sum(r["diverged"] for r in runs),
        "diverged_steps": [r["diverged_step"] for r in runs if r["diverged"]],
        "train_loss": band([(t["train_steps"], smooth(t["train_loss"])) for t in trajectories]),
        "val": band([(t["eval_steps"], [v.get(metric) for v in t["val"]]) for t in trajectories]),
        "lr_curve": band([(t["train_steps"], [g[0] for g in t["lrs"]]) for t in trajectories if t["lrs"]]),
        "effective_lr": band(
            [(t["train_steps"], [g[0] for g in t["effective_lrs"]]) for t in trajectories if t["effective_lrs"]]
        ),
    }


def sensitivity(data: ReportData, task: str) -> dict[str, list[dict[str, Any]]]:
    """method → [{lr, median, q1, q3, n_runs, n_failed}] of the final metric over seeds, by LR."""
    rows = metrics.seed_statistics([r for r in data.records if r["task"] == task])
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["method"], []).append(row)
    for points in out.values():
        points.sort(key=lambda p: -math.inf if p["lr"] is None else p["lr"])
    return out
