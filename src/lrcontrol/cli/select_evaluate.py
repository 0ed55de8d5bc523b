"""`lrcontrol select evaluate`: the held-out table of the selectors, racing, the portfolio and the baselines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lrcontrol.cli.common import console, err_console, fail, handles_errors, print_json
from lrcontrol.cli.select import select_app


@select_app.command("evaluate")
@handles_errors
def evaluate_cmd(
    runs: Path = typer.Option(Path("metadata/runs.parquet"), "--runs", help="the meta-dataset's runs"),
    features: Path = typer.Option(Path("metadata/features.parquet"), "--features", help="its features table"),
    split: str = typer.Option("family", "--split", help="hold out one family or one dataset at a time"),
    members: str = typer.Option(None, "--members", help="comma-separated portfolio members (default: all)"),
    race: bool = typer.Option(True, "--race/--no-race", help="simulate racing (successive halving, ≤ 2 runs)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Evaluate the selectors without leaks: leave one family (or data set) out, pool the held-out choices.

    Per entry: mean and worst-decile normalised regret, the fraction of the single-best → virtual-best
    gap closed, divergence and catastrophic rates (diverged, or regret ≥ 0.5), and compute in full-run
    equivalents (probes included). Then the portfolio's complementarity. See docs/selection.md.

    Example:

        lrcontrol select evaluate --split dataset
    """
    from lrcontrol.select.evaluation import SPLITS, complementarity, evaluate_instances, summarize
    from lrcontrol.select.metadata import read_features, read_runs

    if split not in SPLITS:
        fail(f"--split must be family or dataset, got {split!r}")
    chosen = None
    if members is not None:
        chosen = [m.strip() for m in members.split(",") if m.strip()]
        if not chosen:
            fail("--members is empty; name at least one portfolio member, or leave it out for all")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    run_table = read_runs(runs)
    feature_table = read_features(features)
    progress = Progress(
        TextColumn("[bold]evaluate[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("held out: {task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=True,
    )
    with progress:
        bar = progress.add_task("…", total=None)

        def advance(done: int, total: int, held_out: str) -> None:
            progress.update(bar, completed=done, total=total, description=held_out)

        per_instance, table = evaluate_instances(run_table, feature_table, split, chosen, race=race, on_fold=advance)
    summary = summarize(per_instance)
    members_table = complementarity(table)
    if as_json:
        print_json(
            {
                "split": split,
                "instances": len(table.instances),
                "members": table.members,
                "summary": _records(summary),
                "complementarity": _records(members_table),
            }
        )
        return
    console.print(_summary_table(summary, split, len(table.instances)))
    console.print(_complementarity_table(members_table))


def _records(frame: Any) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def _number(value: float, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _summary_table(summary: Any, split: str, instances: int) -> Table:
    table = Table(
        title=f"held out by {split} ({instances} instances; regret: 0 = best anything reached, 1 = untrained)"
    )
    for name, justify in [
        ("entry", "left"),
        ("kind", "left"),
        ("n", "right"),
        ("mean regret", "right"),
        ("worst 10 %", "right"),
        ("gap closed", "right"),
        ("diverged", "right"),
        ("catastrophic", "right"),
        ("compute (runs)", "right"),
    ]:
        table.add_column(name, justify=justify)
    for row in summary.to_dict("records"):
        table.add_row(
            row["entry"],
            row["kind"],
            str(row["instances"]),
            _number(row["mean_regret"]),
            _number(row["worst_decile"]),
            "—" if math.isnan(row["gap_closed"]) else f"{100 * row['gap_closed']:.0f} %",
            f"{100 * row['divergence_rate']:.1f} %",
            f"{100 * row['catastrophic_rate']:.1f} %",
            _number(row["compute"], 2),
        )
    return table


def _complementarity_table(frame: Any) -> Table:
    table = Table(title="complementarity: members added greedily by how much each lowers the virtual best's regret")
    for name in ("rank", "member", "VBS regret", "gain", "own mean regret", "best on", "near-best on"):
        table.add_column(name, justify="left" if name == "member" else "right")
    for row in frame.to_dict("records"):
        table.add_row(
            str(row["rank"]),
            row["member"],
            _number(row["vbs_regret"]),
            _number(row["gain"]),
            _number(row["mean_regret"]),
            str(row["best"]),
            str(row["near_best"]),
        )
    return table
