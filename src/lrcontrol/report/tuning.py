"""The report's tuning section: each tune's incumbent against the compute it had spent (`lrcontrol tune`).

A tune writes its trials to the store's `trials` table (sweep = "tune:<key>") and the tuned method's
result to `runs` under that key, so a trace is: the tune's trials in the order they finished, the
compute so far in full-run equivalents, and the best final validation metric among the full-budget
trials so far. A trial that continues a lower-budget trial of the same configuration costs only its new
steps, as the tuner counts it (docs/tuning.md). The section is absent when the store has no trials.
"""

from __future__ import annotations

import math
from typing import Any

from lrcontrol.report.data import ReportData


def traces(data: ReportData) -> dict[str, list[dict[str, Any]]]:
    """task → [{method, seed, cost: [...], incumbent: [...]}] for the tunes whose tuned method is shown."""
    if data.db is None or not data.db.query("SELECT name FROM sqlite_master WHERE type='table' AND name='trials'"):
        return {}
    tuned = {(r["task"], r["key"]): r for r in data.records}  # a tuned method's row carries its tune's key
    rows = data.db.query(
        "SELECT task, sweep, spec, budget, horizon, steps, diverged, final_metric, higher_is_better "
        "FROM trials WHERE sweep LIKE 'tune:%' ORDER BY finished_at, key"
    )
    by_tune: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["task"], row["sweep"][len("tune:") :])
        if key in tuned:
            by_tune.setdefault(key, []).append(row)
    out: dict[str, list[dict[str, Any]]] = {}
    for (task, key), trials in by_tune.items():
        result = tuned[(task, key)]
        reached: dict[str, int] = {}  # spec → steps its longest earlier trial reached (a promotion continues it)
        spent, best, cost, incumbent, values, full_budget = 0.0, math.nan, [], [], [], []
        sign = 1.0 if trials[0]["higher_is_better"] else -1.0
        for trial in trials:
            new_steps = max(0, trial["steps"] - reached.get(trial["spec"], 0))
            reached[trial["spec"]] = max(reached.get(trial["spec"], 0), trial["steps"])
            spent += new_steps / trial["horizon"]
            value = trial["final_metric"]
            full = trial["budget"] >= trial["horizon"]
            if full and not trial["diverged"] and value is not None and math.isfinite(value):
                if math.isnan(best) or sign * value > sign * best:
                    best = value
            cost.append(spent)
            incumbent.append(best)
            values.append(value if value is not None and not trial["diverged"] else math.nan)
            full_budget.append(full)
        out.setdefault(task, []).append(
            {
                "method": result["method"],
                "seed": result["seed"],
                "cost": cost,
                "incumbent": incumbent,
                "value": values,  # each trial's own final metric (lower budgets too)
                "full": full_budget,
            }
        )
    return out


def figure(data: ReportData, by_task: dict[str, list[dict[str, Any]]]) -> Any:
    from lrcontrol.report import figures

    @figures.styled
    def draw() -> Any:
        tasks = [t for t in data.tasks if t in by_task]
        ncols = min(3, len(tasks))
        nrows = math.ceil(len(tasks) / ncols)
        fig = figures.new_figure(max(7.0, 4.4 * ncols), 3.3 * nrows + 0.8)  # room for a tuned method's long name
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, task in zip(axes, tasks):
            info = data.task_info(task)
            for trace in by_task[task]:
                colour = data.colours[trace["method"]]
                ax.step(trace["cost"], trace["incumbent"], where="post", color=colour, lw=2, marker="o", ms=4)
                for cost, value, full in zip(trace["cost"], trace["value"], trace["full"]):
                    # every trial as a dot: hollow at a lower budget (not comparable with the incumbent)
                    ax.plot([cost], [value], "o", ms=5, color=colour, mfc=colour if full else "none", alpha=0.6)
            ax.set_xlabel("compute spent: full-run equivalents")
            ax.set_ylabel(f"final {info['metric']} {'↑' if info['higher_is_better'] else '↓'}")
            ax.set_title(figures.task_label(task), loc="left")
        for ax in axes[len(tasks) :]:
            ax.set_visible(False)
        methods = sorted({t["method"] for rows in by_task.values() for t in rows})
        figures.method_legend(fig, data, methods, ncol=1)
        return fig

    return draw()
