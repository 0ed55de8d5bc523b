"""`lrcontrol tune`: tune a search space on a task, store the incumbent's full run with its cost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lrcontrol.cli.common import app, console, err_console, fail, handles_errors, print_json


@app.command("tune")
@handles_errors
def tune_cmd(
    task: str = typer.Argument(..., help="task name, with arguments if any: 'letter-logreg(batch=64)'"),
    space: str = typer.Argument(..., help="search space: a spec whose parameters take ranges"),
    trials: int = typer.Option(50, "--trials", help="trials (configuration × budget evaluations)"),
    strategy: str = typer.Option("smac-mf", "--strategy", help="smac-mf, smac-bo, random, hyperband or sh"),
    seed: int = typer.Option(0, "--seed", help="seed of the tuner and of every run"),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    budget: int = typer.Option(None, "--budget", help="full budget in steps (default: the task's)"),
    min_budget: int = typer.Option(
        None, "--min-budget", help="lowest fidelity in steps (default: ⌊budget / 27⌋: four fidelities at η = 3)"
    ),
    eta: int = typer.Option(3, "--eta", help="Hyperband's η"),
    objective: str = typer.Option("val", "--objective", help="val (validation metric) or train_loss"),
    prior: str = typer.Option(None, "--prior", help="lr-finder: an LR prior from the LR range test (πBO)"),
    batch: int = typer.Option(1, "--batch", help="trials asked and trained at once"),
    restarts: bool = typer.Option(False, "--restarts", help="train promoted trials from scratch"),
    store: Path = typer.Option(Path("results/tune.db"), "--store", help="result store (re-used runs, resume)"),
    workers: int = typer.Option(None, "--workers", help="single-thread worker processes"),
    scheduler: str = typer.Option(None, "--scheduler", help="run the trials on this Dask cluster"),
    checkpoint_seconds: float = typer.Option(30.0, "--checkpoint-seconds", help="checkpoint trials this often"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Tune a search space on a task and record the incumbent's full run with the tuning's cost.

    Everything is checked before anything runs; a killed tune started again with the same command
    repeats no finished trial and reaches the same incumbent.

    Example:

        lrcontrol tune iris-logreg "adamw(lr=loguniform(1e-4, 1))" --trials 20 --size smoke --store results/t.db
    """
    import torch

    from lrcontrol.cli.bench_checks import _check_new_store_path
    from lrcontrol.tasks import get_task
    from lrcontrol.tune import check_settings, tune

    if trials < 1:
        fail(f"--trials must be ≥ 1, got {trials}")
    if seed < 0:
        fail(f"--seed must be ≥ 0, got {seed}")
    if budget is not None and budget < 1:
        fail(f"--budget must be ≥ 1, got {budget}")
    if workers is not None and workers < 1:
        fail(f"--workers must be ≥ 1, got {workers}")
    if workers is not None and scheduler is not None:
        fail("--workers and --scheduler exclude each other: the Dask cluster has its own workers")
    if scheduler is not None and "://" not in scheduler:
        fail(f"--scheduler {scheduler!r} is not an address; expected e.g. tcp://127.0.0.1:8786")
    if not (math.isfinite(checkpoint_seconds) and checkpoint_seconds >= 0):
        fail(f"--checkpoint-seconds must be ≥ 0, got {checkpoint_seconds}")
    check_settings(space, strategy, trials, objective, prior, min_budget, eta, batch, not restarts)
    the_task = get_task(task, size)
    if budget is not None and min_budget is not None and min_budget * eta > budget:
        fail(f"--min-budget {min_budget} × --eta {eta} exceeds --budget {budget}; lower --min-budget")
    the_task.meta_features()
    _check_new_store_path(store)
    torch.set_num_threads(1)
    shown: list[dict[str, Any]] = []

    def on_trial(info: dict[str, Any]) -> None:
        shown.append(info)
        if not as_json:
            value = "failed" if info["objective"] is None else f"{info['objective']:.4g}"
            where = "stored" if info.get("reused") else f"{info['cost_steps']} steps"
            err_console.print(
                f"[dim]trial {len(shown)}/{trials}[/] {info['spec']} @ {info['budget']}: {value} ({where})"
            )

    result = tune(
        task,
        space,
        strategy=strategy,
        trials=trials,
        seed=seed,
        size=size,
        budget=budget,
        min_budget=min_budget,
        eta=eta,
        objective=objective,
        prior=prior,
        batch=batch,
        continuation=not restarts,
        store=store,
        workers=workers,
        scheduler=scheduler,
        checkpoint_seconds=checkpoint_seconds,
        on_trial=on_trial,
    )
    if as_json:
        print_json({"store": str(store), **result.to_dict()})
        return
    table = Table(title=f"{result.task} · {result.method} · seed {result.seed}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("incumbent", result.incumbent)
    table.add_row("cost", f"{result.cost:.2f} full runs ({result.cost_steps} steps, probe {result.probe_steps})")
    table.add_row("trained now", f"{result.trained_steps} steps")
    if result.prior_lr is not None:
        table.add_row("prior lr (range test)", f"{result.prior_lr:.4g}")
    for name, value in ((result.trajectory.get("val") or [{}])[-1]).items():
        table.add_row(f"val {name}", f"{value:.6g}")
    for split in ("test", "train"):
        for name, value in (result.trajectory.get(split) or {}).items():
            table.add_row(f"{split} {name}", f"{value:.6g}")
    console.print(table)
