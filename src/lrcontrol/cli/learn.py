"""`lrcontrol learn …`: meta-train the learned LR policy and evaluate it on held-out families (docs/learned.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from lrcontrol.cli.common import app, check_new_file, console, err_console, fail, handles_errors, print_json

learn_app = typer.Typer(
    name="learn",
    help="The learned LR policy learned(): meta-train its weights (CMA-ES over runs), evaluate it on held-out families.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(learn_app, name="learn")

#: the grid the anchors are computed on without a meta-dataset (the meta-dataset's grid baseline)
REFERENCE = "adamw(lr={lr}) + warmup() + cosine()"


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in _split(text)]
    except ValueError:
        fail(f"{option} must be numbers separated by commas, got {text!r}")
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        fail(f"{option} must be positive numbers separated by commas, got {text!r}")
    return values


#: the meta-dataset's columns that training and evaluation read
RUN_COLUMNS = (
    "instance", "family", "member", "spec", "seed", "diverged", "final_metric", "initial_metric",
    "higher_is_better", "cost", "wall_time",
)  # fmt: skip


def _read_parquet(path: Path, option: str, needed: tuple[str, ...]) -> Any:
    """A Parquet file's rows with the columns this command reads (one line of bad input otherwise)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - whatever makes the file unreadable is one line of bad input
        fail(f"{option} {path} is not a readable Parquet file ({type(exc).__name__})")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        fail(f"{option} {path} lacks the column(s) {', '.join(missing)}; rebuild it (lrcontrol select build)")
    return frame


def _read_runs(path: Path) -> Any:
    return _read_parquet(path, "--runs", RUN_COLUMNS)


def _progress(total: int, as_json: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    )
    return progress, progress.add_task("meta-training runs", total=total, info="")


@learn_app.command("train")
@handles_errors
def train_cmd(
    runs: Path = typer.Option(None, "--runs", help="the meta-dataset (runs.parquet): training pool and regret anchors"),
    tasks: str = typer.Option(None, "--tasks", help="training instances (comma-separated) instead of --runs' pool"),
    hold_out: str = typer.Option("image,language", "--hold-out", help="families never used in training"),
    instances: int = typer.Option(None, "--instances", help="draw this many training instances from the pool"),
    max_seconds: float = typer.Option(None, "--max-seconds", help="pool: only instances whose runs took ≤ this"),
    seed: int = typer.Option(0, "--seed", help="seed of CMA-ES, the instance draw and the pairs"),
    generations: int = typer.Option(12, "--generations", help="CMA-ES generations"),
    popsize: int = typer.Option(8, "--popsize", help="candidates per generation"),
    pairs: int = typer.Option(6, "--pairs", help="(instance, initial LR) runs per candidate and generation"),
    sigma0: float = typer.Option(1.0, "--sigma0", help="CMA-ES's initial step size"),
    lrs: str = typer.Option("1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1", "--lrs", help="initial LRs training draws from"),
    reference_lrs: str = typer.Option(
        "1e-4,1e-3,1e-2,1e-1,1", "--reference-lrs", help="without --runs: the warmup+cosine grid the anchors come from"
    ),
    size: str = typer.Option("default", "--size", help="task size: smoke or default"),
    workers: int = typer.Option(2, "--workers", help="single-thread worker processes"),
    checkpoint: Path = typer.Option(Path("results/learn.json"), "--checkpoint", help="search state (JSON; resume)"),
    out: Path = typer.Option(Path("results/policy.json"), "--out", help="the trained policy file"),
    lr_level: bool = typer.Option(
        False, "--lr-level", help="train a policy that also reads the LR's level against 1e-3 (9 weights)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Meta-train the policy's weights by CMA-ES on the mean normalised regret of real runs.

    A killed training started again with the same command resumes from --checkpoint; the same seed gives the
    same weights. Example (seconds):

        lrcontrol learn train --tasks sphere-10,iris-logreg --size smoke --generations 2 --popsize 4 --pairs 2 \\
            --reference-lrs 1e-3,1e-2 --checkpoint /tmp/l.json --out /tmp/policy.json
    """
    import torch

    from lrcontrol.select import learn

    if (runs is None) == (tasks is None):
        fail("give the training instances: --runs metadata/runs.parquet or --tasks a,b,…")
    if runs is not None and not runs.is_file():
        fail(f"--runs {runs}: no such file; build the meta-dataset (lrcontrol select build) or give --tasks")
    if workers < 1:
        fail(f"--workers must be ≥ 1, got {workers}")
    if seed < 0:
        fail(f"--seed must be ≥ 0, got {seed}")
    if not (math.isfinite(sigma0) and sigma0 > 0):
        fail(f"--sigma0 must be > 0, got {sigma0}")
    check_new_file(out, "--out")
    check_new_file(checkpoint, "--checkpoint")
    held_out = _split(hold_out)
    lr_pool = _floats(lrs, "--lrs")
    frame = None
    if runs is not None:
        frame = _read_runs(runs)
        pool = learn.training_pool(frame, held_out, instances, seed, max_seconds)
    else:
        pool = _split(tasks)
    settings = learn.Settings(
        instances=pool,
        held_out_families=held_out,
        seed=seed,
        generations=generations,
        popsize=popsize,
        pairs=pairs,
        sigma0=sigma0,
        lrs=lr_pool,
        default_lr=learn.DEFAULT_LR if learn.DEFAULT_LR in lr_pool else lr_pool[0],
        size=size,
    )
    if lr_level:
        from lrcontrol.control.learned import ALL_FEATURES

        settings.start = [0.0] * (len(ALL_FEATURES) + 1)
    settings.check()
    torch.set_num_threads(1)
    from lrcontrol.bench.local_executor import LocalExecutor

    total = generations * popsize * pairs
    progress, bar = _progress(total, as_json)
    reference_cost = None
    with progress, LocalExecutor(workers) as executor:
        if frame is None:
            import pandas as pd

            progress.update(bar, info="anchors: reference runs")
            specs = [REFERENCE.format(lr=lr) for lr in _floats(reference_lrs, "--reference-lrs")]
            rows, reference_cost = learn.reference_rows(pool, specs, executor, size)
            frame = pd.DataFrame(rows)
        anchors = learn.Anchors.from_runs(frame, pool)
        policy = learn.train(
            settings,
            anchors,
            executor,
            checkpoint,
            on_run=lambda: progress.update(bar, advance=1),
            on_generation=lambda g, best: progress.update(bar, info=f"generation {g + 1}: best {best:.3f}"),
        )
    if reference_cost is not None:
        policy["trained"]["reference_compute"] = reference_cost
    if runs is not None:
        import hashlib

        digest = hashlib.sha256(runs.read_bytes()).hexdigest()
        policy["trained"]["meta_dataset"] = {"file": runs.name, "sha256": digest, "rows": len(frame)}
    policy["trained"]["command"] = "lrcontrol learn train " + " ".join(sys.argv[3:] if len(sys.argv) > 2 else [])
    learn.write_policy(policy, out)
    compute = policy["trained"]["compute"]
    summary = {
        "out": str(out),
        "weights": policy["weights"],
        "instances": len(pool),
        "runs": compute["runs"],
        "full_run_equivalents": round(compute["full_run_equivalents"], 1),
        "wall_seconds": round(compute.get("wall_seconds", 0.0), 1),
        "history": policy["trained"]["history"],
    }
    if as_json:
        print_json(summary)
        return
    console.print(f"policy written to {out}: weights {json.dumps([round(w, 4) for w in policy['weights']])}")
    console.print(
        f"{len(pool)} training instances; {compute['runs']} runs, {compute['full_run_equivalents']:.1f} full-run "
        f"equivalents, {compute.get('wall_seconds', 0.0):.0f} s wall; mean regret by generation: "
        + ", ".join(f"{h['mean']:.3f}" for h in policy["trained"]["history"])
    )


@learn_app.command("evaluate")
@handles_errors
def evaluate_cmd(
    runs: Path = typer.Option(Path("metadata/runs.parquet"), "--runs", help="the meta-dataset (runs.parquet)"),
    features: Path = typer.Option(None, "--features", help="features.parquet: adds the shipped selector's choice"),
    policy: str = typer.Option("default", "--policy", help="a shipped policy's name or a policy JSON file"),
    hold_out: str = typer.Option("image,language", "--hold-out", help="the families the policy never saw"),
    instances: int = typer.Option(None, "--instances", help="draw this many held-out instances (default: all)"),
    seed: int = typer.Option(0, "--seed", help="seed of the instance draw"),
    lrs: str = typer.Option("1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1", "--lrs", help="the initial-LR grid"),
    store: Path = typer.Option(Path("results/learned-eval.db"), "--store", help="the policy's runs (resume)"),
    workers: int = typer.Option(2, "--workers", help="single-thread worker processes"),
    out: Path = typer.Option(Path("results/learned-eval.json"), "--out", help="every number, as JSON"),
    figure: Path = typer.Option(None, "--figure", help="PNG of the LR the policy chose against the loss"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Evaluate the policy on held-out families against the meta-dataset's rows (docs/learned.md).

    Example:

        lrcontrol learn evaluate --runs metadata/runs.parquet --instances 12 --figure docs/learned-lr.png
    """
    import torch

    from lrcontrol.control.learned import load_policy
    from lrcontrol.select import learned_eval

    if not runs.is_file():
        fail(f"--runs {runs}: no such file; build the meta-dataset first (lrcontrol select build)")
    if features is not None and not features.is_file():
        fail(f"--features {features}: no such file")
    if workers < 1:
        fail(f"--workers must be ≥ 1, got {workers}")
    check_new_file(out, "--out")
    check_new_file(store, "--store")
    if figure is not None:
        check_new_file(figure, "--figure")
    trained = load_policy(policy).get("trained") or {}
    frame = _read_runs(runs)
    held_out = _split(hold_out)
    seen = set((trained.get("settings") or {}).get("instances", []))
    chosen = learned_eval.held_out_instances(frame, held_out, instances, seed)
    if seen & set(chosen):
        fail(f"instance {sorted(seen & set(chosen))[0]} was a training instance of policy {policy!r}; hold out others")
    if not chosen:
        fail(f"the meta-dataset has no instance of the families {hold_out!r}")
    grid = _floats(lrs, "--lrs")
    todo = learned_eval.evaluation_runs(chosen, policy, grid)
    torch.set_num_threads(1)
    progress, bar = _progress(len(todo), as_json)
    progress.update(bar, description="policy runs on held-out instances")
    with progress:
        learned_eval.run_missing(todo, store, workers, on_done=lambda: progress.update(bar, advance=1))
    evaluation = learned_eval.collect(
        frame,
        store,
        chosen,
        policy,
        grid,
        features=_read_parquet(features, "--features", ("instance",)) if features is not None else None,
    )
    result = learned_eval.to_dict(evaluation, policy, held_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    if figure is not None:
        learned_eval.figure(evaluation, figure)
    if as_json:
        print_json(result)
        return
    console.print(learned_eval.markdown(result))
