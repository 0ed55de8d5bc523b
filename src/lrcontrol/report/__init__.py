"""Reports people would rather look at than read: figures and one offline HTML file, from a store.

    from lrcontrol.report import build_report, plot
    build_report("results/quick.db", "quick.html")            # every section, one self-contained file
    plot("results/quick.db", "profile", "profile.svg")        # one figure: lr, loss, sensitivity, …

The report reads the store and never the runs; its numbers are `lrcontrol.bench.metrics`' (the same as
`lrcontrol summary`). docs/report.md describes each section and figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lrcontrol.errors import LRControlError
from lrcontrol.report.data import NothingToDraw, ReportData, load, require_runs
from lrcontrol.report.output import check_output, write_atomic

#: `lrcontrol plot --kind …`: what each kind draws
KINDS = {
    "lr": "LR (and effective LR) per step, each method at its best LR, one panel per task",
    "loss": "training loss and validation metric per step, each method at its best LR, one row per task",
    "sensitivity": "final metric against the initial LR, one line per method, one panel per task",
    "profile": "performance profiles across tasks",
    "heatmap": "rank of each method on each task",
    "cost": "quality (IQM regret) against compute (full-run equivalents)",
}
IMAGE_SUFFIXES = (".svg", ".png", ".pdf")


def build_report(
    store: str | Path,
    output: str | Path,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    progress=None,
) -> ReportData:
    """Write the HTML report of a store to `output` (atomically: a stopped build leaves no half file)."""
    from lrcontrol.report.html import render

    output = check_output(output, [store], (".html", ".htm"))
    with load(store, tasks, methods) as data:
        require_runs(data)
        write_atomic(output, render(data, progress).encode("utf-8"))
    return data


def figure(data: ReportData, kind: str):
    """The matplotlib Figure of one kind (see KINDS) for loaded report data."""
    from lrcontrol.report import figures, summary_figures

    require_runs(data)
    if kind == "lr":
        return _task_grid(data, ("lr",))
    if kind == "loss":
        return _task_grid(data, ("loss", "metric"))
    if kind == "sensitivity":
        return figures.sensitivity_grid(data)
    if kind == "profile":
        return summary_figures.performance_profiles(data)
    if kind == "heatmap":
        return summary_figures.rank_heatmap(data)
    if kind == "cost":
        return summary_figures.cost_quality(data)
    raise LRControlError(f"unknown --kind {kind!r}; choose one of {', '.join(KINDS)}")


def _task_grid(data: ReportData, panels: tuple[str, ...]):
    """Per-task panels stacked into one figure, the task named in each panel's title."""
    from lrcontrol.report import figures

    return figures.task_grid(data, panels)


def plot(
    store: str | Path,
    kind: str,
    output: str | Path,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    dpi: int = 130,
) -> Path:
    """Draw one figure of a store into an SVG, PNG or PDF file (chosen by the suffix)."""
    if kind not in KINDS:
        raise LRControlError(f"unknown --kind {kind!r}; choose one of {', '.join(KINDS)}")
    output = check_output(output, [store], IMAGE_SUFFIXES)
    with load(store, tasks, methods) as data:
        fig = figure(data, kind)
    write_atomic(output, _encode(fig, output.suffix[1:], dpi))
    return output


def plot_run(trajectory: dict, output: str | Path, metric: str | None = None, higher_is_better=None, dpi: int = 130):
    """Draw one run (training loss, validation metric, LR and effective LR per step) into an image file."""
    from lrcontrol.report import figures

    output = check_output(output, [], IMAGE_SUFFIXES)
    write_atomic(output, _encode(figures.run_figure(trajectory, metric, higher_is_better), output.suffix[1:], dpi))
    return output


def _encode(fig, fmt: str, dpi: int) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


__all__ = ["KINDS", "NothingToDraw", "ReportData", "build_report", "figure", "load", "plot", "plot_run"]
