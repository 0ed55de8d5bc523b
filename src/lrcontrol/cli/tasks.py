"""`lrcontrol tasks`: what the benchmark can train, with budgets, metrics and meta-features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from lrcontrol.cli.common import app, console, handles_errors, markup, print_json
from lrcontrol.errors import LRControlError
from lrcontrol.tasks.names import FAMILIES, SIZES

if TYPE_CHECKING:
    from lrcontrol.tasks.base import Task


def _size_info(task: Task) -> dict[str, Any]:
    return {"budget": task.budget, "batch_size": task.batch_size, "eval_every": task.eval_every}


def _describe(name: str, size: str, with_meta: bool) -> dict[str, Any]:
    from lrcontrol.tasks import get_task

    tasks = {s: get_task(name, s) for s in SIZES}
    task = tasks[size]
    entry: dict[str, Any] = {
        "name": task.name,
        "family": task.family,
        "version": task.version,
        "description": task.description,
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "target": task.target,
        "sizes": {s: _size_info(t) for s, t in tasks.items()},
    }
    if with_meta:
        try:
            entry["meta_features"] = task.meta_features()
        except LRControlError as exc:  # missing data is reported per task, not fatal for the listing
            entry["meta_features"] = None
            entry["data_error"] = str(exc)
    return entry


@app.command("tasks")
@handles_errors
def tasks_cmd(
    names: list[str] = typer.Argument(
        None, help="only these tasks (synthetic ones take any dimension, e.g. sphere-200)"
    ),
    family: str = typer.Option(None, "--family", "-f", help=f"only this family: {', '.join(FAMILIES)}"),
    size: str = typer.Option("default", "--size", help=f"size whose meta-features are shown: {', '.join(SIZES)}"),
    meta: bool = typer.Option(True, "--meta/--no-meta", help="compute meta-features (loads each task's data)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    arguments: bool = typer.Option(
        False, "--arguments", help="list the task arguments instead (e.g. letter-logreg(batch=64, epochs=100))"
    ),
) -> None:
    """List the benchmark tasks: family, budgets per size, primary metric, target and meta-features.

    Examples:

        lrcontrol tasks --family tabular

        lrcontrol tasks --arguments

        lrcontrol tasks sphere-50-noisy rastrigin-20 --json
    """
    if size not in SIZES:
        raise LRControlError(f"unknown task size {size!r}; choose one of {', '.join(SIZES)}")
    if arguments:
        _arguments(as_json)
        return
    from lrcontrol.tasks import get_task, list_tasks

    selected = list(names) if names else list_tasks(family)
    if names and family is not None:
        if family not in FAMILIES:
            raise LRControlError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
        selected = [n for n in selected if get_task(n).family == family]
    entries = [_describe(name, size, meta) for name in selected]
    if as_json:
        print_json(entries)
        return
    table = Table(title=f"lrcontrol tasks ({size} meta-features)" if meta else "lrcontrol tasks")
    table.add_column("task", style="bold cyan", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("budget\nsmoke/default", justify="right", no_wrap=True)
    table.add_column("batch", justify="right")
    table.add_column("metric", no_wrap=True)
    table.add_column("target", justify="right")
    if meta:  # the description gives way to the meta-features; `--json` has both
        table.add_column("params", justify="right")
        table.add_column("examples", justify="right")
        table.add_column("classes", justify="right")
    else:
        table.add_column("description")
    for e in entries:
        sizes = e["sizes"]
        row = [
            e["name"],
            e["family"],
            f"{sizes['smoke']['budget']}/{sizes['default']['budget']}",
            str(sizes[size]["batch_size"]),
            f"{e['metric']} {'↑' if e['higher_is_better'] else '↓'}",
            "" if e["target"] is None else f"{e['target']:g}",
        ]
        if not meta:
            row.append(e["description"])
        elif e["meta_features"] is None:
            row += [Text("no data", style="red"), "", ""]
        else:
            found = e["meta_features"]
            row += [f"{found['params']:,}", f"{found['examples']:,}", str(found["classes"])]
        table.add_row(*row)
    console.print(table)
    for e in entries:
        if meta and e["meta_features"] is None:
            console.print(markup("[red]{}:[/] {}", e["name"], e["data_error"]), highlight=False)


def _arguments(as_json: bool) -> None:
    """The declared task arguments (lrcontrol.tasks.params.TASK_PARAMS): name, where, values, meaning."""
    from lrcontrol.tasks.params import TASK_PARAMS

    entries = [
        {
            "argument": p.name,
            "tasks": p.where or ", ".join(p.families),
            "default": "the task's own" if p.param.default is None else p.param.default,
            "values": p.param.describe_range() or p.param.type,
            "meaning": p.param.doc,
        }
        for p in TASK_PARAMS
    ]
    if as_json:
        print_json(entries)
        return
    table = Table(title="task arguments: name(argument=value, …)")
    for column in ("argument", "tasks", "default", "values", "meaning"):
        table.add_column(column, style="bold cyan" if column == "argument" else None)
    for e in entries:
        table.add_row(*(str(e[c]) for c in ("argument", "tasks", "default", "values", "meaning")))
    console.print(table)
