"""`lrcontrol report` and `lrcontrol plot`: the store as one offline HTML file, or as single figures."""

from __future__ import annotations

from pathlib import Path

import typer

from lrcontrol.cli.common import app, console, err_console, handles_errors, print_json

TASKS_HELP = "only these tasks (names or keys; repeat the option or separate with commas)"
METHODS_HELP = "only these methods (specs without the LR, e.g. 'adam + constant()'; repeat the option)"


def _names(values: list[str] | None) -> list[str] | None:
    """Repeated options and comma lists alike; a comma inside parentheses belongs to a spec."""
    if not values:
        return None
    out = []
    for value in values:
        depth, start = 0, 0
        for i, char in enumerate(value):
            depth += char == "("
            depth -= char == ")"
            if char == "," and depth == 0:
                out.append(value[start:i].strip())
                start = i + 1
        out.append(value[start:].strip())
    return [v for v in out if v]


@app.command("report")
@handles_errors
def report_cmd(
    store: Path = typer.Argument(..., help="result store written by `lrcontrol sweep`"),
    output: Path = typer.Option(None, "--output", "-o", help="HTML file (default: the store's path with .html)"),
    tasks: list[str] = typer.Option(None, "--tasks", help=TASKS_HELP),
    methods: list[str] = typer.Option(None, "--methods", help=METHODS_HELP),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Write one self-contained HTML report of a store: summary table, per-task curves, LR sensitivity,
    performance profiles, rank heatmap, regret distributions and quality against compute.

    The file opens offline (figures and script inline, no network). Example:

        lrcontrol report results/quick.db -o quick.html --tasks mnist1d-mlp,fmnist-mlp
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lrcontrol.report import build_report

    output = output or store.with_suffix(".html")
    progress = Progress(
        TextColumn("[bold]report[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=True,
    )
    with progress:
        bar = progress.add_task("reading the store", total=None)

        def advance(done: int, total: int, what: str) -> None:
            progress.update(bar, completed=done, total=total, description=what)

        data = build_report(store, output, _names(tasks), _names(methods), advance)
    result = {"store": str(store), "output": str(output), "runs": data.n_runs, "tasks": len(data.tasks)}
    if as_json:
        print_json(result)
    else:
        console.print(f"report of {data.n_runs} runs on {len(data.tasks)} task(s) → {output}")


@app.command("plot")
@handles_errors
def plot_cmd(
    store: Path = typer.Argument(..., help="result store written by `lrcontrol sweep`"),
    kind: str = typer.Option(..., "--kind", help="lr, loss, sensitivity, profile, heatmap or cost"),
    output: Path = typer.Option(..., "--output", "-o", help="image file: .svg, .png or .pdf"),
    tasks: list[str] = typer.Option(None, "--tasks", help=TASKS_HELP),
    methods: list[str] = typer.Option(None, "--methods", help=METHODS_HELP),
    dpi: int = typer.Option(130, "--dpi", help="resolution of a PNG"),
) -> None:
    """Draw one figure of a store.

    Kinds: lr (LR and effective LR per step), loss (training loss and validation metric per step), both
    for each method at its best LR; sensitivity (final metric against the LR); profile (performance
    profiles); heatmap (rank per task); cost (quality against compute). Example:

        lrcontrol plot results/quick.db --kind sensitivity -o sensitivity.svg
    """
    from lrcontrol.report import plot

    if dpi < 10:
        from lrcontrol.cli.common import fail

        fail(f"--dpi must be ≥ 10, got {dpi}")
    path = plot(store, kind, output, _names(tasks), _names(methods), dpi)
    console.print(f"{kind} → {path}")
