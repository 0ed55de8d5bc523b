"""The report's figures across tasks: performance profiles, ranks per task, normalised regret and
quality against compute (split from report/figures.py, whose conventions and helpers they share)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lrcontrol.bench import metrics
from lrcontrol.report.data import NothingToDraw, ReportData
from lrcontrol.report.figures import line_widths, method_legend, new_figure, short, styled, task_label


def _plain_ticks(axis: Any) -> None:
    """Costs of 1, 2, 3 … full runs read better as plain numbers than as 2×10⁰."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _require_finished(data: ReportData, what: str) -> None:
    if data.all_diverged:
        raise NothingToDraw(f"every run in {data.store} diverged, so there is no {what} to draw; widen the LR grid")


@styled
def performance_profiles(data: ReportData, tau_max: float = 10.0) -> Figure:
    """Dolan–Moré performance profiles: the share of tasks on which a method is within a factor τ of the
    best method (the gap to the metric's optimum at its best LR, `metrics.profile_ratios`)."""
    _require_finished(data, "performance profile")
    ratios = metrics.profile_ratios(data.records)
    finite = [r for row in ratios.values() for r in row.values() if math.isfinite(r)]
    tau_max = max(tau_max, 1.05 * max(finite, default=1.0))
    taus = np.geomspace(1.0, tau_max, 400)
    profile = metrics.performance_profile(ratios, taus)
    fig = new_figure(7.5, 4.4 + 0.22 * math.ceil(len(data.methods) / 2))
    ax = fig.subplots()
    widths = line_widths(data.methods)
    for method in data.methods:
        ax.step(taus, profile[method], where="post", color=data.colours[method], lw=widths[method] + 0.4)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ: within this factor of the best method's gap to optimum")
    ax.set_ylabel("share of tasks")
    ax.set_title(f"performance profiles over {len(ratios)} task(s) (higher and further left is better)", loc="left")
    method_legend(fig, data, data.methods)
    return fig


@styled
def rank_heatmap(data: ReportData) -> Figure:
    """Each method's rank on each task (1 = best, at its best LR, median over seeds)."""
    _require_finished(data, "rank heatmap")
    tasks, methods = data.tasks, data.methods
    ranks = np.full((len(tasks), len(methods)), np.nan)
    for i, task in enumerate(tasks):
        for j, method in enumerate(methods):
            row = data.task_summary(task)["methods"].get(method)
            if row is not None:
                ranks[i, j] = row["rank"]
    fig = new_figure(1.0 + 0.75 * len(methods) + 2.2, 1.6 + 0.36 * len(tasks) + 1.4)
    ax = fig.subplots()
    ax.grid(False)
    image = ax.imshow(ranks, cmap="viridis_r", aspect="auto", vmin=1, vmax=max(len(methods), 2))
    for i in range(len(tasks)):
        for j in range(len(methods)):
            if math.isfinite(ranks[i, j]):
                dark = ranks[i, j] > 0.55 * len(methods)
                ax.text(
                    j, i, f"{ranks[i, j]:g}", ha="center", va="center", fontsize=8, color="white" if dark else "black"
                )
    ax.set_xticks(range(len(methods)), [short(m, 34) for m in methods], rotation=35, ha="right")
    ax.set_yticks(range(len(tasks)), [task_label(t) for t in tasks])
    ax.set_title("rank per task (1 = best)", loc="left")
    fig.colorbar(image, ax=ax, label="rank", shrink=0.8)
    return fig


@styled
def regret_distributions(data: ReportData) -> Figure:
    """Normalised regret per task (dots), its IQM (diamond) and the IQM's stratified bootstrap interval."""
    _require_finished(data, "regret distribution")
    methods = data.methods
    fig = new_figure(9.0, 1.3 + 0.5 * len(methods))
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # jitter only, so dots on the same regret stay visible
    per_method = {row["method"]: row for row in data.summary["per_method"]}
    for y, method in enumerate(methods):
        regrets = [row["methods"][method]["regret"] for row in data.summary["per_task"] if method in row["methods"]]
        regrets = [1.0 if r is None else r for r in regrets]
        colour = data.colours[method]
        ax.scatter(regrets, y + rng.uniform(-0.18, 0.18, len(regrets)), s=18, color=colour, alpha=0.55, lw=0)
        row = per_method[method]
        if row["iqm_regret"] is not None:
            low, high = row["iqm_ci_low"], row["iqm_ci_high"]
            if low is not None and high is not None:
                ax.plot([low, high], [y, y], color="black", lw=2.2, solid_capstyle="butt")
            ax.plot([row["iqm_regret"]], [y], marker="D", ms=8, color=colour, mec="black", mew=1.2, ls="none")
    ax.set_yticks(range(len(methods)), [short(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("normalised regret ↓  (0: best run on the task, 1: untrained model or diverged)")
    ax.set_title(f"regret per task (dots), IQM ◆ and its {data.summary['confidence']:.0%} interval", loc="left")
    return fig


@styled
def cost_quality(data: ReportData) -> Figure:
    """Quality against compute: mean normalised regret (IQM interval as a bar) against the cost of finding
    the method's best LR, in full-run equivalents (one run for a default, the grid's size for a grid)."""
    _require_finished(data, "cost–quality figure")
    fig = new_figure(7.5, 4.6 + 0.22 * math.ceil(len(data.methods) / 2))
    ax = fig.subplots()
    seen: dict[float, int] = {}
    for row in data.summary["per_method"]:
        colour = data.colours[row["method"]]
        cost, regret = row["grid_cost"], row["iqm_regret"]
        if cost is None or regret is None:
            continue
        # methods of equal cost (every grid of one size) are dodged sideways by 4 % so none hides another
        dodge = seen.get(round(cost, 6), 0)
        seen[round(cost, 6)] = dodge + 1
        cost *= 1.04 ** ((dodge + 1) // 2 * (1 if dodge % 2 else -1))
        if row["iqm_ci_low"] is not None and row["iqm_ci_high"] is not None:
            ax.plot([cost, cost], [row["iqm_ci_low"], row["iqm_ci_high"]], color=colour, lw=2, alpha=0.6)
        ax.plot([cost], [regret], marker="o", ms=10, color=colour, mec="black", mew=0.8, ls="none")
    ax.set_xscale("log")
    _plain_ticks(ax.xaxis)
    ax.set_xlabel("compute to tune: full-run equivalents per seed (LR grid size, + LR-finder steps)")
    ax.set_ylabel("IQM normalised regret ↓")
    ax.set_title("quality against compute (lower left is better)", loc="left")
    ax.margins(x=0.25, y=0.15)
    method_legend(fig, data, data.methods)
    return fig
