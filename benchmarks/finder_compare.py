"""Our LR range test against torch-lr-finder, judged by the accuracy that training at each suggestion reaches.

    python benchmarks/finder_compare.py                 # writes the results section of docs/finder.md
    python benchmarks/finder_compare.py --quick         # one seed, two tasks: a smoke check

For each task (digits MLP, breast-cancer logistic regression, Fashion-MNIST MLP — lrcontrol.tasks at
their default sizes and budgets) and each optimizer (AdamW, SGD with momentum 0.9):

1. an LR grid (half-decade steps, 1e-4 … 3.16) trained with a constant LR for the task's budget
   gives the reference: the best mean test accuracy over the seeds, and the "good range", the grid
   LRs whose mean accuracy is at least 95% of it;
2. on each seed, `lrcontrol.find_lr` (default settings: 200 steps, and 100 steps, the same cost as
   torch-lr-finder's default) and `torch_lr_finder.LRFinder` (its defaults: 100 iterations from
   1e-7 to 10, smooth_f = 0.05, diverge_th = 5; suggestion: steepest gradient with skip_start = 10,
   skip_end = 5) each suggest an LR from the freshly initialised model;
3. a run at each suggested LR (same seed, constant LR, the task's budget) gives its test accuracy.

A run uses lrcontrol's run engine (`lrcontrol.bench.engine.run`), single-threaded; a run that
diverges scores 0. torch-lr-finder is a benchmark-only dependency (`pip install torch-lr-finder`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import lrcontrol
from lrcontrol.api import make_optimizer
from lrcontrol.bench.engine import run
from lrcontrol.spec import with_lr
from lrcontrol.tasks import get_task

TASKS = ("digits-mlp", "breast_cancer-logreg", "fmnist-mlp")
OPTIMIZERS = ("adamw()", "sgd(momentum=0.9)")
GRID = tuple(float(10.0**e) for e in np.arange(-4.0, 0.51, 0.5))
SEEDS = (0, 1)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "finder.md"
START, END = "<!-- finder_compare:start -->", "<!-- finder_compare:end -->"


def accuracy_at(task, spec: str, lr: float, seed: int) -> float:
    trajectory = run(task, str(with_lr(spec, lr)), seed)
    accuracy = trajectory.test.get("accuracy", 0.0) if not trajectory.diverged else 0.0
    return accuracy if math.isfinite(accuracy) else 0.0


def ours(task, spec: str, seed: int, steps: int) -> dict:
    instance = task.build(seed)
    model = instance.model
    optimizer, _ = lrcontrol.build(model.parameters(), spec)
    started = time.perf_counter()
    result = lrcontrol.find_lr(
        model,
        optimizer,
        lambda batch: instance.loss(model, batch),
        lambda: instance.train_batches(torch.Generator().manual_seed(seed)),
        steps=steps,
    )
    return {
        "suggestions": result.suggestions,
        "recommended": result.recommended,
        "confident": result.confident,
        "reasons": result.reasons,
        "steps": result.steps,
        "seconds": time.perf_counter() - started,
    }


def theirs(task, spec: str, seed: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    class TaskBatches(TrainDataLoaderIter):
        """torch-lr-finder wants a DataLoader; the task's infinite batch stream needs no reset."""

        def __init__(self, iterator):
            self.data_loader, self._iterator, self.auto_reset = None, iterator, False

    instance = task.build(seed)
    # Not lrcontrol.build: a controller marks the groups with "initial_lr", which torch-lr-finder rejects.
    optimizer = make_optimizer(instance.model, lrcontrol.parse(spec).optimizer)
    finder = LRFinder(instance.model, optimizer, F.cross_entropy, device="cpu")
    started = time.perf_counter()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        finder.range_test(
            TaskBatches(instance.train_batches(torch.Generator().manual_seed(seed))),
            start_lr=1e-7,
            end_lr=10,
            num_iter=100,
        )
        fig, ax = plt.subplots()
        _, suggestion = finder.plot(ax=ax, suggest_lr=True)
        plt.close(fig)
    seconds = time.perf_counter() - started
    steps = len(finder.history["lr"])
    finder.reset()
    return {"recommended": float(suggestion), "steps": steps, "seconds": seconds}


def compare(task_name: str, spec: str, seeds: tuple[int, ...], log) -> dict:
    task = get_task(task_name, "default")
    grid = {lr: statistics.mean(accuracy_at(task, spec, lr, s) for s in seeds) for lr in GRID}
    best = max(grid.values())
    good = [lr for lr, acc in grid.items() if acc >= 0.95 * best]
    log(f"{task_name} {spec}: grid best {best:.4f}, good range {min(good):.3g} … {max(good):.3g}")
    finders: dict[str, list[dict]] = {"ours": [], "ours-100": [], "torch-lr-finder": []}
    for seed in seeds:
        finders["ours"].append(ours(task, spec, seed, 200))
        finders["ours-100"].append(ours(task, spec, seed, 100))
        finders["torch-lr-finder"].append(theirs(task, spec, seed))
    rows = []
    for name, results in finders.items():
        rules = ["recommended"] + (["steepest", "valley", "min/10"] if name == "ours" else [])
        for rule in rules:
            lrs, accs = [], []
            for seed, result in zip(seeds, results):
                lr = result["recommended"] if rule == "recommended" else result["suggestions"].get(rule)
                lrs.append(lr)
                accs.append(accuracy_at(task, spec, lr, seed) if lr else 0.0)
            rows.append(
                {
                    "finder": name,
                    "rule": rule,
                    "lrs": lrs,
                    "accuracy": statistics.mean(accs),
                    "in_good_range": sum(lr is not None and min(good) <= lr <= max(good) for lr in lrs),
                    "confident": sum(bool(r.get("confident", True)) for r in results)
                    if name != "torch-lr-finder"
                    else None,
                    "steps": statistics.mean(r["steps"] for r in results),
                    "seconds": statistics.mean(r["seconds"] for r in results),
                }
            )
            log(
                f"  {name:16s} {rule:12s} lr={', '.join(f'{x:.3g}' if x else '—' for x in lrs)} acc={rows[-1]['accuracy']:.4f}"
            )
    return {"task": task_name, "spec": spec, "grid": grid, "best": best, "good": [min(good), max(good)], "rows": rows}


def markdown(results: list[dict], seeds: tuple[int, ...], seconds: float) -> str:
    lines = [
        f"Measured by `python benchmarks/finder_compare.py` (seeds {', '.join(map(str, seeds))}; "
        f"{seconds / 60:.0f} min on one CPU thread). Accuracy: mean test accuracy over the seeds of a "
        "constant-LR run at the suggestion (each seed its own suggestion); in range: on how many seeds "
        "the suggestion lies within the grid LRs that reach ≥ 95% of the grid's best.",
        "",
    ]
    for r in results:
        lines += [
            f"**{r['task']}, {r['spec']}** — grid best {r['best']:.4f}; good range "
            f"{r['good'][0]:.3g} … {r['good'][1]:.3g}",
            "",
            "| finder | rule | suggested LR per seed | accuracy | % of grid best | in range | confident | steps |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in r["rows"]:
            lrs = ", ".join(f"{x:.3g}" if x else "—" for x in row["lrs"])
            confident = "—" if row["confident"] is None else f"{row['confident']}/{len(seeds)}"
            lines.append(
                f"| {row['finder']} | {row['rule']} | {lrs} | {row['accuracy']:.4f} | "
                f"{100 * row['accuracy'] / r['best']:.1f} | {row['in_good_range']}/{len(seeds)} | {confident} | "
                f"{row['steps']:.0f} |"
            )
        lines.append("")
    summary: dict[tuple[str, str], list[float]] = {}
    hits: dict[tuple[str, str], int] = {}
    for r in results:
        for row in r["rows"]:
            key = (row["finder"], row["rule"])
            summary.setdefault(key, []).append(row["accuracy"] / r["best"])
            hits[key] = hits.get(key, 0) + row["in_good_range"]
    total = len(results) * len(seeds)
    lines += [
        "**Over all tasks and optimizers**",
        "",
        "| finder | rule | mean % of grid best | worst % of grid best | in range |",
        "|---|---|---:|---:|---:|",
    ]
    for (finder, rule), ratios in summary.items():
        lines.append(
            f"| {finder} | {rule} | {100 * statistics.mean(ratios):.1f} | {100 * min(ratios):.1f} | "
            f"{hits[(finder, rule)]}/{total} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    doc = DOCS.read_text() if DOCS.exists() else f"# LR range test\n\n{START}\n{END}\n"
    if START not in doc or END not in doc:
        doc += f"\n{START}\n{END}\n"
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{START}\n{text}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, digits and breast cancer only; docs untouched")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = TASKS[:2] if args.quick else TASKS
    seeds = SEEDS[:1] if args.quick else SEEDS
    started = time.perf_counter()
    results = [
        compare(task, spec, seeds, lambda msg: print(msg, file=sys.stderr, flush=True))
        for task in tasks
        for spec in OPTIMIZERS
    ]
    text = markdown(results, seeds, time.perf_counter() - started)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if not args.quick:
        write_docs(text)


if __name__ == "__main__":
    main()
