"""`lrcontrol summary` and `export`: reading a finished store from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lrcontrol.cli.common import (
    app,
    check_output,
    check_text,
    console,
    fail,
    handles_errors,
    print_json,
    warn,
)
from lrcontrol.errors import LRControlError


def _open_existing(store: Path) -> Any:
    """An existing store, opened read-only: reading commands never write (nor need the right to)."""
    from lrcontrol.bench.store import Store

    check_text(str(store), "store")
    if store.is_dir():
        fail(f"{store} is a directory; give the store file, e.g. results/quick.db")
    if not store.exists():
        fail(f"no store at {store}; run a sweep first, e.g. lrcontrol sweep suites/smoke.toml --store {store}")
    from lrcontrol.bench.store import check_store_file

    check_store_file(store)
    return Store(store, readonly=True)


@app.command("summary")
@handles_errors
def summary_cmd(
    store: Path = typer.Argument(..., help="result store written by `lrcontrol sweep`"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Summarise a store: per task and method, and across tasks (docs/metrics.md).

    Example:

        lrcontrol summary results/quick.db --json
    """
    with _open_existing(store) as db:
        records = db.records()
    if not records:
        fail(f"{store} holds no finished runs yet; run a sweep into it first")
    versions = sorted({r.get("lrcontrol_version", "?") for r in records})
    if len(versions) > 1:  # a method's behaviour may differ between versions; the run keys do not say
        counts = ", ".join(f"{v}: {sum(r.get('lrcontrol_version') == v for r in records)}" for v in versions)
        warn(
            f"{store} mixes runs of lrcontrol versions ({counts}); methods changed "
            "between versions are not compared like for like. Start a new store to rerun them."
        )
    summary = _summarize(records)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


def _summarize(records: list[Any]) -> Any:
    from lrcontrol.bench.summary import summarize

    return summarize(records)


def _print_summary(summary: dict[str, Any]) -> None:
    from lrcontrol.cli.display import per_task_table, summary_table

    console.print(summary_table(summary))
    console.print(per_task_table(summary))


@app.command("export")
@handles_errors
def export_cmd(
    store: Path = typer.Argument(..., help="result store"),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv"),
    output: Path = typer.Option(
        None, "--output", "-o", help="output file (default: the store path with .parquet/.csv)"
    ),
    force: bool = typer.Option(False, "--force", help="replace the output file if it exists (never a store)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    long: bool = typer.Option(
        False, "--long", help="two tidy tables instead: <base>.steps.<fmt> (per step) and <base>.evals.<fmt>"
    ),
) -> None:
    """Export every run of a store to Parquet or CSV (one row per run; the trajectory as JSON).

    With --long: a per-step table (run key, step, group, lr, effective lr, train loss) and a
    per-evaluation table (run key, step, metric, value), for pandas and dashboards.

    Examples:

        lrcontrol export results/quick.db --format csv -o quick.csv

        lrcontrol export results/quick.db --format parquet --long -o quick.parquet
    """
    if fmt not in ("parquet", "csv"):
        fail(f"unknown --format {fmt!r}; choose parquet or csv")
    check_text(str(store), "store")
    if long:
        _export_long(store, fmt, output, as_json)
        return
    output = output or store.with_suffix(f".{fmt}")
    check_output(output, "--output", inputs=[store], force=force)
    with _open_existing(store) as db:
        try:
            count = db.export(output, fmt)
        except OSError as exc:
            raise LRControlError(f"cannot write {output}: {exc}") from None
    if as_json:
        print_json({"store": str(store), "output": str(output), "format": fmt, "runs": count})
    else:
        console.print(f"{count} runs → {output}")


def _export_long(store: Path, fmt: str, output: Path | None, as_json: bool) -> None:
    from lrcontrol.report.export import export_long, long_paths
    from lrcontrol.report.output import check_output

    paths = long_paths(store, output, fmt)
    for path in paths:
        check_output(path, [store], (f".{fmt}",))
    with _open_existing(store) as db:  # a missing, foreign or empty store fails here, before any file is created
        if not db.count():
            fail(f"{store} holds no finished runs, so there is nothing to export; run a sweep into it first")
    try:
        counts = export_long(store, *paths, fmt)
    except OSError as exc:
        raise LRControlError(f"cannot write {paths[0].parent}: {exc}") from None
    if as_json:
        print_json({"store": str(store), "steps": str(paths[0]), "evals": str(paths[1]), "format": fmt, **counts})
    else:
        console.print(
            f"{counts['runs']} runs → {counts['step_rows']} step rows in {paths[0]}, "
            f"{counts['eval_rows']} evaluation rows in {paths[1]}"
        )
