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
    settings tuned on the other families reached 0.113 mean regret, MF-HPO 0.123 at 6 runs
    (docs/selection.md). A member with an LR range test (the finder members) counts its sweep's steps
    in the cap: one whose sweep does not fit is not started. A stopped race run again with the same
    options continues from its checkpoints.

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
    racers = {m: portfolio[m] for m in names}
    extras = {m: finder_steps(spec) / (budget or the_task.budget) for m, spec in racers.items()}
    checkpoints.mkdir(parents=True, exist_ok=True)
    sign = -1.0 if the_task.higher_is_better else 1.0

    def metric(score: float) -> float | None:
        """The task's metric from an oriented score; None for a run that diverged (or has no score)."""
        return sign * score if math.isfinite(score) else None

    def shown(score: float) -> str:
        value = metric(score)
        return "diverged" if value is None else f"{value:.4g}"

    def show(status, done: int, total: int, rung: dict) -> None:  # noqa: ANN001
        scores = ", ".join(f"{m} {shown(v)}" for m, v in rung["scores"].items())
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
            extras=extras,
            on_rung=None if as_json else lambda done, total, rung: show(status, done, total, rung),
        )
    final = None if result.diverged else metric(result.loss)
    entered = list(result.rungs[0]["scores"]) if result.rungs else [result.winner]
    left_out = [m for m in names if m not in entered]
    summary = {
        "task": the_task.key,
        "size": size,
        "seed": seed,
        "members": names,
        "entrants": entered,
        "eta": eta,
        "max_cost": max_cost,
        "winner": result.winner,
        "spec": racers[result.winner],
        "metric": the_task.metric,
        "final": final,
        "diverged": result.diverged,
        "cost": result.cost,
        "rungs": [{"frac": r["frac"], "scores": {m: metric(v) for m, v in r["scores"].items()}} for r in result.rungs],
    }
    if as_json:
        print_json(summary)
        return
    if left_out:
        console.print(
            f"  not started: {', '.join(left_out)} (its LR range test would not fit within {max_cost:g} runs)"
        )
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


def finder_steps(spec: str) -> int:
    """The steps of a spec's LR range test(s) (`lr_from_finder`), paid once before its first step: the
    race's estimate of its extra cost (a sweep that diverges stops earlier and costs less)."""
    from lrcontrol.control.lr_from_finder import LRFromFinder
    from lrcontrol.spec import parse

    default = next(p.default for p in LRFromFinder.params if p.name == "steps")
    return sum(int(dict(t.args).get("steps", default)) for t in parse(spec).factors if t.name == LRFromFinder.name)
