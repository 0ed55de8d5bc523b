"""`lrcontrol select features`: the features of a list of instances as a Parquet table (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from lrcontrol.cli.common import check_output, console, fail, handles_errors
from lrcontrol.cli.select import select_app


@select_app.command("features")
@handles_errors
def features_cmd(
    names: list[str] = typer.Argument(None, help="task names with parameters: 'vowel-mlp(batch=64)'"),
    instances: Path = typer.Option(None, "--instances", help="a file with one task name per line"),
    from_runs: Path = typer.Option(None, "--from-runs", help="the instances of a meta-dataset (runs.parquet)"),
    generate: int = typer.Option(None, "--generate", help="draw this many instances from the instance space"),
    generate_seed: int = typer.Option(0, "--generate-seed", help="seed of the instance generator"),
    out: Path = typer.Option(Path("metadata/features.parquet"), "--out", help="the Parquet table to write"),
    cache: Path = typer.Option(None, "--cache", help="per-instance cache (default: <out>.cache/)"),
    seed: int = typer.Option(0, "--seed", help="seed of the model the probes start from"),
    workers: int = typer.Option(2, "--workers", help="single-thread worker processes"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file"),
) -> None:
    """Compute static and probe features for instances; one row per instance (docs/selection-features.md).

    Each finished row is cached at once, so a stopped run continues where it stopped; the table is
    written when every row is there. Give the instances as names, --instances FILE, --from-runs
    metadata/runs.parquet or --generate N.

    Example:

        lrcontrol select features --from-runs metadata/runs.parquet --out metadata/features.parquet
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lrcontrol.select.feature_table import (
        compute_table,
        read_names,
        rows_from_generator,
        rows_from_names,
        rows_from_runs,
    )

    given = [bool(names), instances is not None, from_runs is not None, generate is not None]
    if sum(given) != 1:
        fail("give the instances one way: task names, --instances FILE, --from-runs PARQUET or --generate N")
    if workers < 1:
        fail(f"--workers must be ≥ 1, got {workers}")
    if seed < 0:
        fail(f"--seed must be ≥ 0, got {seed}")
    if generate is not None and generate < 1:
        fail(f"--generate must be ≥ 1, got {generate}")
    check_output(out, "--out", force=force)
    if instances is not None:
        rows = rows_from_names(read_names(instances))
    elif from_runs is not None:
        rows = rows_from_runs(from_runs)
    elif generate is not None:
        rows = rows_from_generator(generate, generate_seed)
    else:
        rows = rows_from_names(names)
    cache = out.with_name(out.name + ".cache") if cache is None else cache
    if cache.exists() and not cache.is_dir():
        fail(f"--cache {cache} is a file; give a folder")
    columns = (
        TextColumn("features"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("", total=len(rows))
        table = compute_table(
            rows,
            out,
            cache,
            seed=seed,
            workers=workers,
            on_row=lambda row, cached: progress.update(bar, advance=1, description=row.instance[:60]),
        )
    console.print(
        f"{out}: {len(table)} instances, {len(table.columns) - 4} features; "
        f"probe cost median {table['probe_cost'].median():.3f}, max {table['probe_cost'].max():.3f} runs"
    )
