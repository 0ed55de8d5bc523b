"""Tables the CLI draws from the metrics' plain data (rich is the CLI's business, not the metrics')."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table


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


def per_task_table(summary: Mapping[str, Any]) -> Table:
    """The summary's per-task table: the best method on each task, tuned over its LR grid."""
    table = Table(title="per task: the best method (tuned over its LR grid, median over seeds)")
    for column in ("task", "metric", "best method", "lr", "value"):
        table.add_column(column)
    for row in summary["per_task"]:
        direction = "↑" if row["higher_is_better"] else "↓"
        best = ", ".join(row["best_methods"])
        table.add_row(
            row["task"], f"{row['metric']} {direction}", best, _cell(row["best_lr"]), _cell(row["best_value"])
        )
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return "" if value is None else str(value)
