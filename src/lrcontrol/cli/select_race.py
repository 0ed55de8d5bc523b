"""`lrcontrol select race TASK`: race the portfolio live on a task — start a few members, continue the
leaders from their checkpoints, train the last one to the end (docs/selection.md, "Racing")."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import typer

from lrcontrol.cli.common import check_text, console, fail, handles_errors, markup, print_json
from lrcontrol.cli.select import select_app


@select_app.command("race")
@handles_errors
def race_cmd(
    task: str = typer.Argument(..., help="task name, with arguments if any: 'letter-logreg(batch=64)'"),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    seed: int = typer.Option(0, "--seed", help="the seed every member's run is built and trained with"),
    budget: int = typer.Option(None, "--budget", help="the winner's run length in steps (default: the task's)"),
    max_cost: float = typer.Option(2.0, "--max-cost", help="the race's compute cap in full runs (≥ 1)"),
    members: str = typer.Option(
        "", "--members", help="portfolio members in order of preference, comma-separated (default: the shipped race's)"
    ),
    eta: int = typer.Option(None, "--eta", help="keep 1/η at each cut (default: the shipped race's)"),
    checkpoints: Path = typer.Option(
        Path("results/race"), "--checkpoints", help="folder for the runs' checkpoints; run again to continue"
    ),
    workers: int = typer.Option(2, "--workers", help="single-thread worker processes"),
    as_json: bool = typer.Option(False, "--json", help="the race as JSON"),
) -> None:
    """Race the portfolio on a task: every entrant trains to the first rung, the best 1/η continue from
    their checkpoints, the last one trains to the end — the winner's run is the result, and no step is
    trained twice.

    By default the race the meta-dataset chose on all 380 instances (`racing_settings.SHIPPED`): cocob,
    adam-clara-0.01, prodigy and adamw-learned, η = 2, within 2 runs. Held out by family, racing with its
    settings tuned on the other families reached 0.113 mean regret, MF-HPO 0.123 at 6 runs (docs/selection.md). A stopped race run again with the
    same options continues from its checkpoints.

    Examples:

        lrcontrol select race iris-logreg --size smoke
        lrcontrol select race "letter-logreg(batch=64, epochs=100)" --max-cost 3
        lrcontrol select race sphere-10 --size smoke --members cocob,prodigy,adamw --eta 3 --json
    """
    if seed < 0:
        fail(f"--seed must be ≥ 0, got {seed}")
    if budget is not None and budget < 1:
        fail(f"--budget must be ≥ 1, got {budget}")
    if not math.isfinite(max_cost) or max_cost < 1:
        fail(f"--max-cost must be ≥ 1 (the winner's full run), got {max_cost}")
    if eta is not None and eta < 2:
        fail(f"--eta must be ≥ 2 (keep half or fewer at each cut), got {eta}")
    if workers < 1:
        fail(f"--workers must be ≥ 1, got {workers}")
    check_text(str(checkpoints), "--checkpoints")
    if checkpoints.exists() and not checkpoints.is_dir():
        fail(f"--checkpoints {checkpoints} exists and is not a folder; choose another path")

    from lrcontrol.bench import LocalExecutor
    from lrcontrol.select.racing import race
    from lrcontrol.select.racing_settings import SHIPPED, SHIPPED_ENTRANTS
    from lrcontrol.select.shipped import read
    from lrcontrol.tasks import get_task

    portfolio = read().members  # name → spec, as the shipped selector knows them
    names = [m.strip() for m in members.split(",") if m.strip()] if members.strip() else list(SHIPPED_ENTRANTS)
    unknown = [m for m in names if m not in portfolio]
    if unknown:
        fail(f"--members: {unknown[0]} is not a portfolio member; choose among {', '.join(portfolio)}")
    if len(set(names)) < len(names):
        fail("--members names a member twice; list each once")
    the_task = get_task(task, size)  # an unknown task or bad argument fails here, before any file
    the_task.meta_features()  # loads the data: a missing data set fails here
    eta = SHIPPED.eta if eta is None else eta
    checkpoints.mkdir(parents=True, exist_ok=True)
    racers = {m: portfolio[m] for m in names}
    sign = -1.0 if the_task.higher_is_better else 1.0

    def show(status, done: int, total: int, rung: dict) -> None:  # noqa: ANN001
        scores = ", ".join(f"{m} {sign * v:.4g}" for m, v in rung["scores"].items())
        going = f" → {', '.join(rung['continue'])} continue" if rung["continue"] else ""
        console.print(markup("  {} of the budget: {}{}", f"{rung['frac']:.0%}", scores, going), highlight=False)
        status.update(f"rung {done + 1} of {total}: training {', '.join(rung['continue'])}")

    if not as_json:
        console.print(
            markup(
                "[bold]Race[/] on {} (seed {}): {} — η = {}, ≤ {} runs",
                the_task.key,
                seed,
                ", ".join(names),
                eta,
                f"{max_cost:g}",
            ),
            highlight=False,
        )
    quiet = contextlib.nullcontext() if as_json else console.status(f"rung 1: training {', '.join(names)}")
    with quiet as status, LocalExecutor(workers=workers, checkpoint_dir=str(checkpoints)) as executor:
        result = race(
            task,
            racers,
            executor,
            seed=seed,
            budget=budget,
            size=size,
            eta=eta,
            max_cost=max_cost,
            on_rung=None if as_json else lambda done, total, rung: show(status, done, total, rung),
        )
    final = None if result.diverged or not math.isfinite(result.loss) else sign * result.loss
    summary = {
        "task": the_task.key,
        "size": size,
        "seed": seed,
        "members": names,
        "eta": eta,
        "max_cost": max_cost,
        "winner": result.winner,
        "spec": racers[result.winner],
        "metric": the_task.metric,
        "final": final,
        "diverged": result.diverged,
        "cost": result.cost,
        "rungs": [{"frac": r["frac"], "scores": {m: sign * v for m, v in r["scores"].items()}} for r in result.rungs],
    }
    if as_json:
        print_json(summary)
        return
    outcome = "diverged" if final is None else f"{the_task.metric} {final:.4g}"
    console.print(
        markup(
            "[bold]Winner[/]: {} = {} ({}), {} runs of compute",
            result.winner,
            racers[result.winner],
            outcome,
            f"{result.cost:.2f}",
        ),
        highlight=False,
    )
