"""`lrcontrol select …`: algorithm selection for LR control (docs/selection.md).

This module creates the `select` sub-app and its `build` command (the meta-dataset); other commands
register on `select_app` from their own modules (`cli/select_*.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lrcontrol.cli.common import app, check_text, console, fail, handles_errors, print_json

select_app = typer.Typer(
    name="select",
    help="Algorithm selection: build the meta-dataset, train and evaluate selectors, explain a choice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(select_app, name="select")

#: the meta-dataset this repository ships, and the command that regenerates it (metadata/README.md)
DEFAULT_INSTANCES = 200
DEFAULT_MFHPO = 30
DEFAULT_EXTRA_SEED = 40


def _check_out(out: Path) -> None:
    check_text(str(out), "--out")
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder (runs.parquet is written inside it)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"--out {out}: {parent} is a file, not a folder; choose another path")
            break
    target = out / "runs.parquet"
    if target.exists() and not target.is_file():
        fail(f"{target} exists and is not a regular file; choose another --out")


@select_app.command("build")
@handles_errors
def build_cmd(
    instances: int = typer.Option(DEFAULT_INSTANCES, "--instances", help="instances drawn by the generator"),
    seed: int = typer.Option(0, "--seed", help="the generator's seed"),
    seeds: int = typer.Option(1, "--seeds", help="run seeds of every member on every instance (0, 1, …)"),
    extra_seed: int = typer.Option(
        DEFAULT_EXTRA_SEED, "--extra-seed", help="instances that also get one more seed of every member"
    ),
    mfhpo: int = typer.Option(DEFAULT_MFHPO, "--mfhpo", help="instances the MF-HPO baseline is tuned on"),
    phases: str = typer.Option(
        "members,grid,mfhpo,seeds", "--phases", help="which runs, in this order: members, grid, mfhpo, seeds"
    ),
    store: Path = typer.Option(Path("results/meta.db"), "--store", help="result store (finished runs are kept)"),
    workers: int = typer.Option(2, "--workers", help="single-thread worker processes"),
    out: Path = typer.Option(Path("metadata"), "--out", help="folder for runs.parquet"),
    export_only: bool = typer.Option(False, "--export-only", help="train nothing: export what the store holds"),
    members: str = typer.Option(
        "", "--members", help="comma-separated portfolio members to run and export (default: all of them)"
    ),
    append: bool = typer.Option(
        False,
        "--append",
        help="keep every row of the existing runs.parquet as it is; add the store's rows it lacks",
    ),
    new_instances: bool = typer.Option(
        False,
        "--new-instances",
        help="with --append: run and add only the drawn instances runs.parquet lacks (another --seed "
        "enlarges the meta-dataset; instances it already holds, e.g. the 'Revisiting' ones, are skipped)",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable summary"),
) -> None:
    """Build the meta-dataset: every portfolio member on every generated instance, the grid-tuned and
    MF-HPO baselines, into a store (resumable: run the same command again to continue), then export
    runs.parquet without per-step trajectories.

    Example (the shipped metadata/runs.parquet):

        lrcontrol select build --instances 200 --seed 0 --store results/meta.db --workers 2 --out metadata

    A member added to the portfolio later joins the shipped file without re-running the others:
    `--members NAME --phases members,seeds --append` (metadata/README.md). More instances join it
    with another generator seed: `--seed 1 --append --new-instances` runs only the drawn instances the
    file lacks.
    """
    from lrcontrol.cli.bench_checks import _check_new_store_path

    for value, name in ((instances, "--instances"), (workers, "--workers"), (seeds, "--seeds")):
        if value < 1:
            fail(f"{name} must be ≥ 1, got {value}")
    for value, name in ((seed, "--seed"), (extra_seed, "--extra-seed"), (mfhpo, "--mfhpo")):
        if value < 0:
            fail(f"{name} must be ≥ 0, got {value}")
    from lrcontrol.select.metadata import PHASES

    chosen = [p.strip() for p in phases.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PHASES]
    if unknown or not chosen:
        fail(f"--phases: unknown {', '.join(unknown) or 'nothing given'}; choose from {', '.join(PHASES)}")
    _check_new_store_path(store)
    if export_only and not store.is_file():
        fail(f"--export-only: no store at {store}; build it first (without --export-only)")
    _check_out(out)

    from lrcontrol.select.baselines import mfhpo_subset
    from lrcontrol.select.instances import generate
    from lrcontrol.select.metadata import append_rows, collect, export
    from lrcontrol.select.portfolio import PORTFOLIO, check_portfolio, member_spec

    check_portfolio()
    names = [m.strip() for m in members.split(",") if m.strip()] or list(PORTFOLIO)
    chosen_members = {name: member_spec(name) for name in names}  # an unknown name fails here, naming the members
    if append and not (out / "runs.parquet").is_file():
        fail(f"--append: no {out / 'runs.parquet'} to append to; build it without --append first")
    if new_instances and not append:
        fail("--new-instances adds instances to an existing runs.parquet: give --append too")
    drawn = generate(instances, seed)
    summary: dict = {"instances": len(drawn), "members": len(chosen_members)}
    if new_instances:
        from lrcontrol.select.metadata import read_runs

        present = set(read_runs(out / "runs.parquet")["instance"])
        drawn = [i for i in drawn if i.task not in present]
        summary.update(instances=len(drawn), already_present=summary["instances"] - len(drawn))
        if not drawn:
            fail(
                f"--new-instances: {out / 'runs.parquet'} already holds all {summary['already_present']} drawn instances; draw with another --seed or more --instances"
            )
    if not export_only:
        summary["phases"] = _run(drawn, store, workers, seeds, extra_seed, mfhpo, chosen, mfhpo_subset, chosen_members)
    rows = collect(store, drawn, chosen_members)
    if members.strip():  # only the named members' rows (the store may hold baselines too)
        rows = [r for r in rows if r["member"] in chosen_members]
    if not rows:
        fail(f"the store {store} holds no finished run of these instances; build without --export-only first")
    out.mkdir(parents=True, exist_ok=True)
    if append:
        summary["added"], summary["rows"] = append_rows(rows, out / "runs.parquet")
    else:
        summary["rows"] = export(rows, out / "runs.parquet")
    summary["file"] = str(out / "runs.parquet")
    if as_json:
        print_json(summary)
    else:
        console.print(json.dumps(summary, indent=2))


def _run(drawn, store, workers, seeds, extra_seed, mfhpo, phases, mfhpo_subset, members) -> dict:  # noqa: ANN001
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from lrcontrol.select.metadata import build

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    bars: dict[str, int] = {}
    current = {"phase": ""}

    def on_phase(phase: str, todo: int, total: int) -> None:
        current["phase"] = phase
        bars[phase] = progress.add_task(f"{phase} ({total - todo} of {total} already done)", total=todo)

    def on_done(run: object) -> None:
        progress.advance(bars[current["phase"]])

    def on_failed(run: object, error: str) -> None:
        progress.console.print(f"failed: {getattr(run, 'task', run)} {getattr(run, 'spec', '')}: {error}")
        progress.advance(bars[current["phase"]])

    extra = mfhpo_subset(drawn, extra_seed) if extra_seed else []
    with progress:
        return build(
            drawn,
            store,
            workers,
            members,
            seeds=list(range(seeds)),
            extra_seed_instances=extra,
            mfhpo_instances=mfhpo_subset(drawn, mfhpo) if mfhpo else [],
            phases=phases,
            on_phase=on_phase,
            on_done=on_done,
            on_failed=on_failed,
        )
