"""Benchmark metrics (docs/metrics.md): per run, per task over seeds and LR grids, and across tasks.

This module gathers the public names of the pieces, so `from lrcontrol.bench import metrics` reaches all:

- `lrcontrol.bench.curves` — per run, from a validation curve: final, best, auc, steps to target;
- `lrcontrol.bench.record` — the run record the store keeps and the metrics read (`RunRecord`), its cost;
- `lrcontrol.bench.statistics` — quantiles, median and IQR, the IQM and its bootstrap interval;
- `lrcontrol.bench.selection` — `Selection`: records validated, scored and grouped into LR grids per
  task (build it once with `select(records)` and pass it to the functions below), seed statistics, LR grids;
- `lrcontrol.bench.comparison` — across tasks: regret, ranks, performance profiles, VBS and SBS;
- `lrcontrol.bench.summary` — `summarize`, everything at once (what `lrcontrol summary` prints;
  the tables themselves are drawn by `lrcontrol.cli.display`).

Every function is a pure function of plain data — a validation curve, run records (RunRecords, dicts with
the same field names, or a pandas DataFrame) or a Selection — so the run engine, `lrcontrol summary`, the
report, the tuner and the selector compute the same numbers.
"""

from lrcontrol.bench.comparison import (
    PROFILE_MEASURES,
    TaskTable,
    average_ranks,
    normalised_regret,
    performance_profile,
    profile_area,
    profile_ratios,
    task_scores,
    vbs_sbs,
)
from lrcontrol.bench.curves import best_value, curve_auc, final_value, run_metrics, steps_to_target
from lrcontrol.bench.record import RunRecord, analysis_view, curve_metrics, run_cost
from lrcontrol.bench.selection import (
    REQUIRED_FIELDS,
    SCORE_FIELDS,
    SCORES,
    GridPoint,
    ScoredRun,
    Selection,
    lr_grid,
    seed_statistics,
)
from lrcontrol.bench.statistics import bootstrap_iqm, interquartile_mean, median_iqr, quantile
from lrcontrol.bench.summary import summarize

#: build the selection of a set of records once: `metrics.select(records, score="final")`
select = Selection.from_records

__all__ = [
    "PROFILE_MEASURES",
    "REQUIRED_FIELDS",
    "SCORES",
    "SCORE_FIELDS",
    "GridPoint",
    "RunRecord",
    "ScoredRun",
    "Selection",
    "TaskTable",
    "analysis_view",
    "average_ranks",
    "best_value",
    "bootstrap_iqm",
    "curve_auc",
    "curve_metrics",
    "final_value",
    "interquartile_mean",
    "lr_grid",
    "median_iqr",
    "normalised_regret",
    "performance_profile",
    "profile_area",
    "profile_ratios",
    "quantile",
    "run_cost",
    "run_metrics",
    "seed_statistics",
    "select",
    "steps_to_target",
    "summarize",
    "task_scores",
    "vbs_sbs",
]
