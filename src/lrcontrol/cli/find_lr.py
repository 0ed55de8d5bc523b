"""`lrcontrol find-lr`: an LR range test on a task, with the suggestions and how far to trust them."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lrcontrol.cli.common import app, check_output, console, handles_errors, markup, print_json
from lrcontrol.errors import LRControlError
from lrcontrol.limits import MAX_SEED, cpus, max_threads
from lrcontrol.spec import parse


@app.command("find-lr")
@handles_errors
def find_lr_cmd(
    task: str = typer.Option(..., "--task", help="task name (see `lrcontrol tasks`), e.g. digits-mlp"),
    method: str = typer.Option(..., "--method", help="spec whose optimizer is swept, e.g. 'adamw(weight_decay=0.01)'"),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    seed: int = typer.Option(0, "--seed", help="seed of the model initialisation and the batch order"),
    lr_min: float = typer.Option(1e-7, "--lr-min", help="smallest LR of the sweep"),
    lr_max: float = typer.Option(10.0, "--lr-max", help="largest LR of the sweep"),
    steps: int = typer.Option(200, "--steps", help="steps of the sweep"),
    smoothing: float = typer.Option(0.98, "--smoothing", help="β of the bias-corrected EMA of the loss"),
    diverge: float = typer.Option(4.0, "--diverge", help="stop once the smoothed loss exceeds this × its best"),
    plot: Path = typer.Option(None, "--plot", help="write the curve with the suggestions to this PNG"),
    force: bool = typer.Option(False, "--force", help="replace the --plot file if it exists"),
    threads: int = typer.Option(1, "--threads", help="torch threads"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output (the whole curve)"),
) -> None:
    """Run an LR range test (Smith 2017) on a task and print the suggested learning rates.

    The LR grows exponentially from --lr-min to --lr-max over --steps steps; the sweep stops early
    when the loss diverges. Exit status 2 on bad input.

    Examples:

        lrcontrol find-lr --task digits-mlp --method "adamw()"

        lrcontrol find-lr --task fmnist-mlp --method "sgd(momentum=0.9)" --plot lr.png --json
    """
    import torch

    from lrcontrol.api import make_optimizer
    from lrcontrol.lr_range_test import check_settings, find_lr

    spec = parse(method)
    if plot is not None:  # checked now, not after the whole test
        check_output(plot, "--plot", force=force)
        if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise LRControlError(f"--plot {plot}: give a .png, .pdf or .svg file name")
    if spec.optimizer is None:
        raise LRControlError(f"--method {method!r} names no optimizer; start it with one, e.g. 'adamw() + {spec}'")
    check_settings(lr_min, lr_max, steps, smoothing, diverge)
    if not 1 <= threads <= max_threads():
        raise LRControlError(f"--threads must be in [1, {max_threads()}] ({cpus()} CPUs here), got {threads}")
    if not 0 <= seed <= MAX_SEED:
        raise LRControlError(f"--seed must be in [0, 2**63 - 1], got {seed}")
    torch.set_num_threads(threads)
    try:
        from lrcontrol.tasks import get_task
    except ImportError as exc:
        raise LRControlError(f"find-lr needs lrcontrol.tasks, which failed to import: {exc}") from None
    instance = get_task(task, size).build(seed)
    model = instance.model
    optimizer = make_optimizer(model, spec.optimizer)

    def loss_fn(batch):
        return instance.loss(model, batch)

    def train_batches():
        return instance.train_batches(torch.Generator().manual_seed(seed))

    settings = {"lr_min": lr_min, "lr_max": lr_max, "steps": steps, "smoothing": smoothing, "diverge": diverge}
    if as_json:
        result = find_lr(model, optimizer, loss_fn, train_batches, **settings)
    else:
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task(f"LR sweep on {task}", total=steps, info="")

            def report(step: int, lr: float, loss: float) -> None:
                progress.update(bar, completed=step + 1, info=f"lr={lr:.2e} loss={loss:.4g}")

            result = find_lr(model, optimizer, loss_fn, train_batches, progress=report, **settings)
    if plot is not None:
        result.plot(str(plot), title=f"{task} · {spec.optimizer}: LR range test ({result.steps} steps)")
    if as_json:
        data = result.to_dict()
        data.update({"task": task, "size": size, "seed": seed, "method": str(spec), "plot": plot and str(plot)})
        print_json(data)
        return
    console.print(
        markup("[bold]LR range test[/]: {} ({}, seed {}), {}", task, size, seed, spec.optimizer), highlight=False
    )
    table = Table()
    table.add_column("rule", style="bold cyan")
    table.add_column("learning rate", justify="right")
    for rule, lr in result.suggestions.items():
        table.add_row(rule, f"{lr:.3g}")
    if result.recommended is not None and math.isfinite(result.recommended):
        table.add_row(Text("recommended", style="bold"), Text(f"{result.recommended:.3g}", style="bold"))
    console.print(table)
    console.print(f"{result.steps} steps; {result.stop}.", highlight=False)
    if result.confident:
        console.print(markup("[green]confident[/]: the curve has a clear descent."))
    else:
        for reason in result.reasons:
            console.print(markup("[yellow]low confidence[/]: {}", reason), highlight=False)
    if plot is not None:
        console.print(f"plot: {plot}", highlight=False)
