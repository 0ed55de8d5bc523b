"""The report's figures, drawn with matplotlib's object API (`Figure`, no pyplot state, no GUI backend).

Conventions in every figure: a method has one colour (`ReportData.colours`), LRs and costs are on log
axes, a metric's direction is in its axis label (↑ higher is better, ↓ lower is better), and diverged
runs are marked with a red ✕ rather than dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lrcontrol.report.data import Band, ReportData, sensitivity

DIVERGED = "#111111"  # black: no method colour (tab10 has red) can be mistaken for it
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",  # text stays text in SVG: smaller files, selectable labels
}


def new_figure(width: float, height: float) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def styled(function: Any) -> Any:
    """Draw under the report's rc style (axes created inside pick it up)."""
    import functools

    import matplotlib

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def short(method: str, width: int = 38) -> str:
    """A method spec shortened for a legend: empty parentheses dropped, long specs cut with an ellipsis."""
    text = method.replace("()", "")
    return text if len(text) <= width else text[: width - 1] + "…"


def task_label(task: str) -> str:
    """A task key for people: "mnist1d-mlp@1/default" → "mnist1d-mlp", a smoke size kept as "(smoke)"."""
    name, _, rest = task.partition("@")
    size = rest.partition("/")[2]
    return name if size in ("", "default") else f"{name} ({size})"


def _direction(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _log_if_wide(ax: Any, values: Sequence[np.ndarray], axis: str = "y") -> None:
    # a loss that falls over decades reads only on a log axis; an accuracy stays linear
    finite = [v[np.isfinite(v)] for v in values if v is not None and v.size]
    data = np.concatenate(finite) if finite else np.array([])
    positive = data[data > 0]
    # a loss that reaches exactly 0 (underflow) still reads best on a log axis; the zeros are not drawn
    if positive.size and data.min() >= 0 and positive.max() / positive.min() > 30:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def line_widths(methods: Sequence[str]) -> dict[str, float]:
    """Wider lines for the methods drawn first, so that a method whose curve coincides with another's (a
    plateau rule that never fired) still shows its colour on both sides of the thinner line on top."""
    n = max(len(methods) - 1, 1)
    return {m: 1.2 + 1.6 * (len(methods) - 1 - i) / n for i, m in enumerate(methods)}


def _draw_band(
    ax: Any, band: Band | None, colour: str, lw: float = 1.6, dashed: bool = False, markers: bool = False
) -> None:
    if band is None:
        return
    marker = "o" if markers and band.steps.size <= 40 else None  # few evaluations: show where they are
    ax.plot(band.steps, band.median, color=colour, lw=lw, ls="--" if dashed else "-", marker=marker, ms=2 + lw)
    if not dashed:
        ax.fill_between(band.steps, band.q1, band.q3, color=colour, alpha=0.18, lw=0)


def method_legend(fig: Figure, data: ReportData, methods: Sequence[str], ncol: int = 2) -> None:
    handles = [Line2D([], [], color=data.colours[m], lw=2.5) for m in methods]
    fig.legend(handles, [short(m, 60) for m in methods], loc="outside lower center", ncol=ncol, frameon=False)


# --------------------------------------------------------------------------------------------------
# Per task
# --------------------------------------------------------------------------------------------------


def _task_row(axes: Sequence[Any], data: ReportData, task: str, panels: Sequence[str], title: bool) -> None:
    """Draw one task's panels (loss, metric, lr) into a row of axes."""
    info = data.task_info(task)
    methods = [m for m in data.methods if m in data.task_summary(task)["methods"]]
    drawn: dict[str, list[np.ndarray]] = {p: [] for p in panels}
    widths = line_widths(data.methods)
    for method in methods:
        curves, colour, lw = data.curves(task, method), data.colours[method], widths[method]
        for ax, panel in zip(axes, panels):
            if panel == "loss":
                _draw_band(ax, curves["train_loss"], colour, lw)
                drawn[panel] += [curves["train_loss"].median] if curves["train_loss"] else []
            elif panel == "metric":
                _draw_band(ax, curves["val"], colour, lw, markers=True)
                drawn[panel] += [curves["val"].median] if curves["val"] else []
            else:
                lr, eff = curves["lr_curve"], curves["effective_lr"]
                _draw_band(ax, lr, colour, lw)
                if eff is not None and (
                    lr is None or not np.allclose(eff.median, lr.median, rtol=1e-6, equal_nan=True)
                ):
                    _draw_band(ax, eff, colour, lw, dashed=True)
                drawn[panel] += [b.median for b in (lr, eff) if b is not None]
            for step in curves["diverged_steps"]:
                ax.axvline(step, color=colour, ls=":", lw=1)
    labels = {
        "loss": ("training loss", "training loss"),
        "metric": (f"{info['metric']} {_direction(info['higher_is_better'])}", f"validation {info['metric']}"),
        "lr": ("learning rate (dashed: effective)", "LR per step (dashed: effective LR)"),
    }
    for ax, panel in zip(axes, panels):
        ax.set_xlabel("step")
        ax.set_ylabel(labels[panel][0])
        # in a grid of tasks the panel names its task and the y label says what is drawn
        ax.set_title(task_label(task) if title else labels[panel][1], loc="left")
        if panel == "lr":
            values = [v[np.isfinite(v)] for v in drawn[panel]]
            if values and all(np.all(v > 0) for v in values):
                ax.set_yscale("log")
        else:
            _log_if_wide(ax, drawn[panel])


@styled
def task_curves(data: ReportData, task: str, panels: Sequence[str] = ("loss", "metric", "lr")) -> Figure:
    """Training loss, validation metric and LR per step for each method at its best LR (median, IQR band)."""
    methods = [m for m in data.methods if m in data.task_summary(task)["methods"]]
    fig = new_figure(4.4 * len(panels), 3.5 + 0.22 * math.ceil(len(methods) / 3))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    _task_row(axes, data, task, panels, title=False)
    method_legend(fig, data, methods, ncol=min(3, max(1, len(methods))))
    return fig


@styled
def task_grid(data: ReportData, panels: Sequence[str]) -> Figure:
    """`task_curves` for every task: one row per task (one panel per task in columns of three for a single panel)."""
    tasks = data.tasks
    if len(panels) == 1:
        ncols = min(3, len(tasks))
        nrows = math.ceil(len(tasks) / ncols)
        fig = new_figure(4.4 * ncols, 3.2 * nrows + 0.8)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, task in zip(axes, tasks):
            _task_row([ax], data, task, panels, title=True)
        for ax in axes[len(tasks) :]:
            ax.set_visible(False)
    else:
        fig = new_figure(4.6 * len(panels), 3.2 * len(tasks) + 0.8)
        rows = fig.subplots(len(tasks), len(panels), squeeze=False)
        for row, task in zip(rows, tasks):
            _task_row(row, data, task, panels, title=True)
    method_legend(fig, data, data.methods, ncol=min(3, len(data.methods)))
    return fig


def _sensitivity_axis(ax: Any, data: ReportData, task: str) -> None:
    info = data.task_info(task)
    worst_plotted: list[float] = []
    points_by_method = sensitivity(data, task)
    widths = line_widths(data.methods)
    for method in [m for m in data.methods if m in points_by_method]:
        points, colour = points_by_method[method], data.colours[method]
        lrs = np.array([math.nan if p["lr"] is None else p["lr"] for p in points])
        med = np.array(
            [p["median"] if p["median"] is not None and math.isfinite(p["median"]) else np.nan for p in points]
        )
        q1 = np.array([p["q1"] if math.isfinite(p["q1"]) else np.nan for p in points])
        q3 = np.array([p["q3"] if math.isfinite(p["q3"]) else np.nan for p in points])
        ax.plot(lrs, med, color=colour, marker="o", ms=2 + 2 * widths[method], lw=widths[method])
        ax.fill_between(lrs, q1, q3, color=colour, alpha=0.15, lw=0)
        worst_plotted += [v for v in med if math.isfinite(v)]
        for lr, p, m in zip(lrs, points, med):
            if p["n_failed"]:  # some seeds (or all: no median) diverged at this LR
                ax.plot([lr], [m], marker="x", ms=9, mew=2.2, color=DIVERGED, ls="none", zorder=5)
    _log_if_wide(ax, [np.asarray(worst_plotted)])
    # an LR where every seed diverged has no median: its ✕ sits on the worst edge of the axis
    low, high = ax.get_ylim()
    edge = low if info["higher_is_better"] else high
    if ax.get_yscale() == "log" and not info["higher_is_better"]:
        edge = high
    for points in points_by_method.values():
        for p in points:
            if p["n_failed"] == p["n_runs"] and p["lr"] is not None:
                ax.plot([p["lr"]], [edge], marker="x", ms=9, mew=2.2, color=DIVERGED, ls="none", clip_on=False)
    ax.set_ylim(low, high)
    if not worst_plotted:  # every run diverged: the y scale would be meaningless
        ax.set_yticks([])
        ax.text(0.5, 0.5, "every run diverged", transform=ax.transAxes, ha="center", va="center", color=DIVERGED)
    ax.set_xscale("log")
    ax.set_xlabel("initial learning rate")
    ax.set_ylabel(f"final {info['metric']} {_direction(info['higher_is_better'])}")
    ax.set_title(task_label(task), loc="left")


@styled
def sensitivity_grid(data: ReportData, tasks: Sequence[str] | None = None, ncols: int = 3) -> Figure:
    """DeepOBS's LR sensitivity: the final metric (median, IQR band over seeds) against the initial LR, one
    line per method, one panel per task; a red ✕ where seeds diverged (on the axis edge when all did)."""
    tasks = list(tasks or data.tasks)
    ncols = min(ncols, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = new_figure(4.3 * ncols, 3.3 * nrows + 0.5 + 0.22 * math.ceil(len(data.methods) / 2))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, task in zip(axes, tasks):
        _sensitivity_axis(ax, data, task)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=data.colours[m], lw=2.5, marker="o") for m in data.methods]
    handles.append(Line2D([], [], color=DIVERGED, marker="x", mew=2.2, ms=9, ls="none"))
    labels = [short(m, 60) for m in data.methods] + ["seeds diverged"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False)
    return fig


@styled
def run_figure(trajectory: dict[str, Any], metric: str | None = None, higher_is_better: bool | None = None) -> Figure:
    """One run: training loss, validation metric(s) and the LR (and effective LR) per step."""
    fig = new_figure(12.6, 3.8)
    ax_loss, ax_val, ax_lr = fig.subplots(1, 3)
    steps = np.asarray(trajectory["train_steps"], dtype=float)
    loss = np.asarray(trajectory["train_loss"], dtype=float)
    ax_loss.plot(steps, loss, color="#1f77b4", lw=1.4)
    _log_if_wide(ax_loss, [loss])
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
    names = [metric] if metric else sorted({k for v in trajectory["val"] for k in v})
    for i, name in enumerate(names):
        values = np.array([v.get(name, np.nan) for v in trajectory["val"]], dtype=float)
        ax_val.plot(trajectory["eval_steps"], values, marker="o", ms=3, lw=1.4, color=f"C{i}", label=name)
    label = f"validation {metric}" + (f" {_direction(higher_is_better)}" if higher_is_better is not None else "")
    ax_val.set(xlabel="step", ylabel=label if metric else "validation", title="validation")
    if len(names) > 1:
        ax_val.legend(frameon=False)
    lrs = np.array([g[0] for g in trajectory["lrs"]], dtype=float) if trajectory["lrs"] else np.array([])
    eff = np.array([g[0] for g in trajectory["effective_lrs"]], dtype=float) if trajectory["effective_lrs"] else lrs
    ax_lr.plot(steps[: lrs.size], lrs, color="#1f77b4", lw=1.6, label="lr")
    if eff.size and not np.allclose(eff, lrs, rtol=1e-6, equal_nan=True):
        ax_lr.plot(steps[: eff.size], eff, color="#ff7f0e", lw=1.6, ls="--", label="effective lr")
        ax_lr.legend(frameon=False)
    if lrs.size and np.all(lrs[np.isfinite(lrs)] > 0):
        ax_lr.set_yscale("log")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="LR per step, param group 0")
    if trajectory.get("diverged"):
        for ax in (ax_loss, ax_val, ax_lr):
            ax.axvline(trajectory["diverged_step"], color=DIVERGED, ls=":", lw=1.5)
    title = f"{trajectory['task']} · {trajectory['spec']} · seed {trajectory['seed']}"
    if trajectory.get("diverged"):
        title += f" · diverged at step {trajectory['diverged_step']}"
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return fig
