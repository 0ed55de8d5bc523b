"""`lrcontrol run` and `sweep`: the benchmark from the command line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from lrcontrol.cli.bench_checks import (
    _check_fault_hook,
    _check_new_store_path,
    _check_positive,
    _check_scheduler,
    _check_seed,
)
from lrcontrol.cli.common import (
    app,
    check_new_file,
    check_text,
    console,
    err_console,
    fail,
    handles_errors,
    markup,
    print_json,
)
from lrcontrol.limits import MAX_BUDGET, MAX_HORIZON, cpus, max_threads, max_workers


@app.command("run")
@handles_errors
def run_cmd(
    task: str = typer.Argument(..., help="task name (see `lrcontrol tasks`)"),
    spec: str = typer.Argument(..., help="method spec, starting with an optimizer"),
    seed: int = typer.Option(0, "--seed", help="random seed (model initialisation and batch order)"),
    budget: int = typer.Option(None, "--budget", help="training steps (default: the task's own budget)"),
    horizon: int = typer.Option(None, "--horizon", help="steps the schedules plan for (default: the budget)"),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="resume from / save to this file"),
    store: Path = typer.Option(None, "--store", help="also record the run in this store (skipped if already there)"),
    threads: int = typer.Option(1, "--threads", help="torch threads"),
    as_json: bool = typer.Option(False, "--json", help="print the whole trajectory as JSON"),
    plot: Path = typer.Option(None, "--plot", help="also draw loss, metric and LR per step into this .png/.svg/.pdf"),
) -> None:
    """Train one task with one method and print its final metrics.

    Example:

        lrcontrol run sphere-10 "sgd(lr=0.1) + cosine()" --size smoke --seed 0 --budget 50 --plot run.png
    """
    import torch

    from lrcontrol.bench.engine import load_checkpoint, run
    from lrcontrol.bench.store import Store, run_key
    from lrcontrol.control.batch import resolve_batch_size
    from lrcontrol.spec import parse
    from lrcontrol.tasks import get_task

    _check_positive(budget, "--budget", MAX_BUDGET, " steps; is it a typo?")
    _check_positive(threads, "--threads", max_threads(), f" ({cpus()} CPUs here)")
    _check_seed(seed)
    if horizon is not None and horizon > MAX_HORIZON:
        fail(f"--horizon {horizon} is over the limit of 2**53 steps")
    _check_fault_hook()
    if checkpoint is not None:
        if checkpoint.is_dir():
            fail(f"--checkpoint {checkpoint} is a directory; give a file path, e.g. runs/sphere.pt")
        check_new_file(checkpoint, "--checkpoint")
        load_checkpoint(checkpoint)  # a corrupt or foreign file fails now (it is read without running code)
    if store is not None:
        _check_new_store_path(store)
    parsed = parse(spec)
    if parsed.optimizer is None and parsed.whole is None:
        fail(f"the spec {spec!r} names no optimizer; start it with one, e.g. 'sgd(lr=0.1) + {spec}'")
    if parsed.whole is not None:
        from lrcontrol.select.auto import load

        load()  # a missing or broken selector fails now, before anything is written
    the_task = get_task(task, size)
    the_task.meta_features()  # loads the data: a missing data set fails here, before anything is written
    parsed = resolve_batch_size(parsed, the_task.batch_size)  # batch_scale() records the batch it scaled to
    budget = budget or the_task.budget
    if horizon is not None and horizon < budget:
        fail(f"--horizon {horizon} is shorter than the budget {budget}")
    if plot is not None:
        from lrcontrol.report.output import check_output

        inputs = [p for p in (store, checkpoint) if p is not None]
        check_output(plot, inputs, (".png", ".svg", ".pdf"))  # before training: a bad path fails at once
    if store is not None and store.exists():
        key = run_key(the_task.key, str(parsed), seed, budget, horizon or budget)
        with Store(store, readonly=True) as db:  # looked up without writing: the store is made after the run
            existing = db.records("key = ?", [key])
        if existing:
            _print_run(existing[0]["trajectory"], as_json, note=f"already in {store}")
            _plot_run(existing[0]["trajectory"], plot, the_task, as_json)
            return
    torch.set_num_threads(threads)
    trajectory = run(
        the_task, str(parsed), seed, budget, horizon=horizon, checkpoint=checkpoint, bad_checkpoint="raise"
    )
    if store is not None:
        store.parent.mkdir(parents=True, exist_ok=True)  # like sweep: results/x.db needs no mkdir first
        with Store(store) as db:
            db.record(the_task, trajectory)
    _print_run(trajectory.to_dict(), as_json)
    _plot_run(trajectory.to_dict(), plot, the_task, as_json)


def _plot_run(trajectory: dict[str, Any], path: Path | None, task: Any, as_json: bool) -> None:
    if path is None:
        return
    from lrcontrol.report import plot_run

    plot_run(trajectory, path, task.metric, task.higher_is_better)
    if not as_json:
        console.print(f"plot → {path}")


def _print_run(trajectory: dict[str, Any], as_json: bool, note: str = "") -> None:
    if as_json:
        print_json(trajectory)
        return
    table = Table(
        title=f"{trajectory['task']} · {trajectory['spec']} · seed {trajectory['seed']}"
        + (f" ({note})" if note else "")
    )
    table.add_column("")
    table.add_column("value", justify="right")
    status = (
        f"diverged at step {trajectory['diverged_step']} ({trajectory['diverged_reason']})"
        if trajectory["diverged"]
        else "finished"
    )
    table.add_row("status", status)
    table.add_row("steps", f"{trajectory['steps']} of {trajectory['budget']}")
    if trajectory.get("extra_steps"):
        observables = trajectory.get("observables") or {}
        probe = observables.get("auto.probe_steps")
        what = "LR finder" if probe is None else "probe" if trajectory["extra_steps"] == probe else "probe, LR finder"
        table.add_row("extra steps", f"{trajectory['extra_steps']} ({what})")
    table.add_row("wall time", f"{trajectory['wall_time']:.2f} s")
    # what the controller did: the last LR per param group, the step size an LR-free optimizer actually
    # used where that differs, and the controller's own observables (CLARA's path ratio, restores, …)
    if trajectory.get("lrs"):
        table.add_row("final lr", _numbers(trajectory["lrs"][-1]))
    effective = trajectory.get("effective_lrs") or []
    if effective and effective[-1] != (trajectory.get("lrs") or [None])[-1]:
        table.add_row("final effective lr", _numbers(effective[-1]))
    for name, value in (trajectory.get("observables") or {}).items():
        label = name.split(".", 1)[1] if name.split(".", 1)[0].isdigit() else name  # "1.clara.ratio" → "clara.ratio"
        table.add_row(label, _numbers(value))
    for name, value in (trajectory["val"][-1] if trajectory["val"] else {}).items():
        table.add_row(f"val {name}", f"{value:.6g}")
    for name, value in trajectory["test"].items():
        table.add_row(f"test {name}", f"{value:.6g}")
    console.print(table)


def _numbers(value: Any) -> str:
    """A float as 6 significant digits, a list as its numbers; anything else as it prints."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_numbers(v) for v in value)
    return str(value)


@app.command("sweep")
@handles_errors
def sweep_cmd(
    file: Path = typer.Argument(..., help="sweep file (TOML), e.g. suites/quick.toml"),
    store: Path = typer.Option(None, "--store", help="result store (default: results/<sweep name>.db)"),
    workers: int = typer.Option(None, "--workers", help="single-thread worker processes (default: the cores)"),
    scheduler: str = typer.Option(None, "--scheduler", help="run on the Dask cluster at this address instead"),
    size: str = typer.Option(None, "--size", help="override the size of every task: smoke or default"),
    budget: int = typer.Option(None, "--budget", help="override the budget of every task"),
    checkpoint_seconds: float = typer.Option(30.0, "--checkpoint-seconds", help="checkpoint runs this often"),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="keep each run's final checkpoint"),
    no_checkpoints: bool = typer.Option(
        False,
        "--no-checkpoints",
        help="do not checkpoint runs (for Dask workers without a shared file system; a killed run starts over)",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and count the runs, run nothing"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Run every (task, method, lr, seed) of a sweep file that is not already in the store.

    Everything is checked before anything runs; re-running continues where a stopped sweep left off.

    Examples:

        lrcontrol sweep suites/smoke.toml --store results/smoke.db --workers 2

        lrcontrol sweep suites/quick.toml --scheduler tcp://127.0.0.1:8786

        lrcontrol sweep suites/quick.toml --scheduler tcp://10.0.0.5:8786 --no-checkpoints
    """
    from lrcontrol.bench import sweep_runner
    from lrcontrol.bench.store import Store
    from lrcontrol.bench.sweep import load_sweep

    _check_positive(workers, "--workers", max_workers(), f" ({cpus()} CPUs here; each worker is a process)")
    if scheduler is not None and workers is not None:
        fail("--workers and --scheduler exclude each other: the Dask cluster has its own workers")
    if no_checkpoints and keep_checkpoints:
        fail("--no-checkpoints and --keep-checkpoints exclude each other; choose one")
    if not (math.isfinite(checkpoint_seconds) and checkpoint_seconds >= 0):
        fail(f"--checkpoint-seconds must be ≥ 0, got {checkpoint_seconds}")
    if scheduler is not None:
        _check_scheduler(scheduler)
    _check_fault_hook()
    check_text(str(file), "sweep file")
    if store is not None:
        _check_new_store_path(store)
    sweep = load_sweep(file, size=size, budget=budget)
    runs = sweep.runs()
    tunes = sweep.tunes()
    if store is None:
        store = Path("results") / f"{sweep.name}.db"  # load_sweep keeps names to one plain file name
        _check_new_store_path(store)
    if dry_run:
        done = 0
        if store.exists():
            with Store(store, readonly=True) as db:
                done = len(runs) - len(sweep_runner.pending_runs(db, runs))
        result = {"sweep": sweep.name, "runs": len(runs), "already_done": done, "store": str(store)}
        if tunes:
            result["tunes"] = len(tunes)
        print_json(result) if as_json else console.print(
            f"{sweep.name}: {len(runs)} runs, {done} already in {store}" + (f"; {len(tunes)} tunes" if tunes else "")
        )
        return

    store.parent.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = None if no_checkpoints else str(store.with_name(store.name + ".checkpoints"))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Store(store) as db:
        todo = len(sweep_runner.pending_runs(db, runs))
        progress = Progress(
            TextColumn("[bold]{task.description}[/]"),  # the name is escaped below: never read as markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[diverged]} diverged"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            disable=as_json,
        )
        bar = progress.add_task(escape(sweep.name), total=todo, diverged=0, failed="")
        diverged = failed = 0

        def on_done(run: Any, trajectory: Any) -> None:
            nonlocal diverged
            diverged += int(trajectory.diverged)
            progress.update(bar, advance=1, diverged=diverged)

        def on_failed(run: Any, error: str) -> None:
            nonlocal failed
            failed += 1
            progress.update(bar, advance=1, failed=f"[red]{failed} failed[/]")
            if failed == 1:  # the first one at once: a broken setup shows itself without waiting for the end
                progress.console.print(
                    markup("[red]run failed:[/] {} {} seed {}: {}", run.task, run.spec, run.seed, error)
                )

        try:
            with progress, _executor(scheduler, workers, checkpoint_dir, checkpoint_seconds) as executor:
                outcome = sweep_runner.run_sweep(
                    runs,
                    db,
                    executor,
                    keep_checkpoints,
                    on_done,
                    on_failed,
                    on_elsewhere=lambda run: progress.update(bar, advance=1),  # recorded by another sweep
                )
        except sweep_runner.Interrupted as stop:
            err_console.print(markup("[yellow]stopped:[/] {}", stop))
            raise typer.Exit(130) from None
    tuned = _run_tunes(tunes, store, workers, scheduler, checkpoint_dir, checkpoint_seconds, as_json) if tunes else []
    result = {"sweep": sweep.name, "store": str(store), **sweep_runner.describe(outcome)}
    if tunes:
        result["tunes"] = tuned
    if as_json:
        print_json(result)
    else:
        console.print(
            f"{sweep.name}: {outcome.recorded} runs recorded, {outcome.skipped} already done, "
            f"{outcome.diverged} diverged → {store}"
        )
        if outcome.failed:
            _print_failures(outcome.failed)
    if outcome.failed:
        raise typer.Exit(1)


def _executor(scheduler: str | None, workers: int | None, checkpoint_dir: str | None, checkpoint_seconds: float) -> Any:
    """The Dask executor when a scheduler is given, else the local one (default: one worker per core)."""
    if scheduler is not None:
        from lrcontrol.bench.dask_executor import DaskExecutor

        return DaskExecutor(scheduler, checkpoint_dir, checkpoint_seconds)
    from lrcontrol.bench.local_executor import LocalExecutor
    from lrcontrol.bench.sweep_runner import default_workers

    return LocalExecutor(workers or default_workers(), checkpoint_dir, checkpoint_seconds)


def _run_tunes(
    tunes: list[Any],
    store: Path,
    workers: int | None,
    scheduler: str | None,
    checkpoint_dir: str | None,
    checkpoint_seconds: float,
    quiet: bool,
) -> list[dict[str, Any]]:
    """The sweep's tuned methods, one tune after the other, each tune's trials on the sweep's executor.
    A tune's result depends on its seed and settings only, not on the executor or the worker count."""
    from lrcontrol.tune.tuner import tune

    out = []
    with _executor(scheduler, workers, checkpoint_dir, checkpoint_seconds) as executor:
        for index, job in enumerate(tunes):
            s = job.settings
            result = tune(
                job.task, s.space, strategy=s.strategy, trials=s.trials, seed=job.seed, size=job.size,
                budget=job.budget, min_budget=s.min_budget, eta=s.eta, objective=s.objective, prior=s.prior,
                batch=s.batch, continuation=s.continuation, store=store, executor=executor, sweep=job.sweep,
            )  # fmt: skip
            out.append(
                {
                    "task": job.task,
                    "seed": job.seed,
                    "method": result.method,
                    "incumbent": result.incumbent,
                    "cost": result.cost,
                }
            )
            if not quiet:
                err_console.print(
                    f"tune {index + 1}/{len(tunes)}: {job.task} seed {job.seed} {s.strategy} → {result.incumbent} "
                    f"(cost {result.cost:.2f} full runs)"
                )
    return out


#: failed runs listed one by one after a sweep; the rest are counted
SHOW_FAILURES = 10


def _print_failures(failed: list[tuple[Any, str]]) -> None:
    err_console.print(markup("[red]{} run(s) failed[/]: an exception in the run, not a divergence.", len(failed)))
    err_console.print("Failed runs are not in the store and keep their checkpoints.")
    err_console.print("Fix the cause, then run the same command again: only these run.")
    for run, error in failed[:SHOW_FAILURES]:
        err_console.print(f"  {run.task} ({run.size}) {run.spec} seed {run.seed}: {error}")
    if len(failed) > SHOW_FAILURES:
        err_console.print(f"  … and {len(failed) - SHOW_FAILURES} more (--json lists them all)")
