"""`lrcontrol select train` (the selector file `auto()` reads) and `lrcontrol select explain TASK`."""

from __future__ import annotations

from pathlib import Path

import typer

from lrcontrol.cli.common import check_output, console, fail, handles_errors, print_json
from lrcontrol.cli.select import select_app

KINDS = ("knn", "pairwise", "regression", "single-best")


@select_app.command("train")
@handles_errors
def train_cmd(
    out: Path = typer.Option(..., "--out", help="the selector file to write (JSON)"),
    runs: Path = typer.Option(Path("metadata/runs.parquet"), "--runs", help="the meta-dataset's runs"),
    features: Path = typer.Option(Path("metadata/features.parquet"), "--features", help="its features"),
    kind: str = typer.Option("knn", "--kind", help=f"selector: {', '.join(KINDS)}"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable summary"),
) -> None:
    """Train a selector on the meta-dataset and write it as a selector file (plain JSON) for `auto()`.

    Every input is checked before the file is written; an existing file is replaced only with --force.
    The package's own selector (src/lrcontrol/select/data/selector.json) is built this way.

    Example:

        lrcontrol select train --runs metadata/runs.parquet --features metadata/features.parquet --kind knn --out selector.json
    """
    if kind not in KINDS:
        fail(f"--kind {kind!r} is not a selector; choose one of {', '.join(KINDS)}")
    for path, option in ((runs, "--runs"), (features, "--features")):
        if not path.is_file():
            fail(f"{option} {path} is not a file; build the meta-dataset with `lrcontrol select build` first")
    check_output(out, "--out", inputs=(runs, features), force=force)

    from lrcontrol.select.shipped import write
    from lrcontrol.select.train import train_selector

    content = train_selector(runs, features, kind)
    written = write(out, content, force=True)  # --force was checked above, before the training
    summary = {
        "file": str(out),
        "kind": written.kind,
        "identity": written.identity,
        "members": len(written.members),
        "features": len(written.features),
        **{k: written.provenance[k] for k in ("instances", "families", "runs")},
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{out}: a {written.kind} selector over {len(written.members)} members and {len(written.features)} "
        f"features, trained on {summary['instances']} instances of {', '.join(summary['families'])} "
        f"({summary['runs']} runs); identity {written.identity}"
    )


@select_app.command("explain")
@handles_errors
def explain_cmd(
    task: str = typer.Argument(..., help="task name, with arguments if any: 'letter-logreg(batch=64)'"),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    seed: int = typer.Option(0, "--seed", help="the seed the task is built and probed with"),
    budget: int = typer.Option(None, "--budget", help="the run's length in steps (default: the task's)"),
    selector: Path = typer.Option(None, "--selector", help="a selector file (default: the shipped one)"),
    threads: int = typer.Option(1, "--threads", help="torch threads"),
    as_json: bool = typer.Option(False, "--json", help="the choice as JSON"),
) -> None:
    """Probe a task and explain the member `auto()` would train on it, and why.

    Example:

        lrcontrol select explain iris-logreg --size smoke
    """
    if seed < 0:
        fail(f"--seed must be ≥ 0, got {seed}")
    if budget is not None and budget < 1:
        fail(f"--budget must be ≥ 1, got {budget}")
    if threads < 1:
        fail(f"--threads must be ≥ 1, got {threads}")
    import torch

    from lrcontrol.select.auto import choose_for_task, load
    from lrcontrol.tasks import get_task

    loaded = load(selector)  # a missing or broken selector fails before the probes run
    the_task = get_task(task, size)
    the_task.meta_features()  # loads the data: a missing data set fails here
    torch.set_num_threads(threads)
    choice = choose_for_task(the_task, seed, budget or the_task.budget, loaded)
    if as_json:
        print_json(choice.to_dict())
        return
    console.print(f"{the_task.key} (seed {seed}, {choice.total_steps} steps)")
    console.print(choice.explain())
