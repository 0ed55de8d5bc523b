"""Fine-tuning with a uniform LR, discriminative rates and the layer-wise trust ratio, at the same cost.

    python benchmarks/finetune_compare.py            # prints the table, writes the section of docs/practice.md
    python benchmarks/finetune_compare.py --quick    # smoke size, one seed: a check that it runs

Task: `fmnist-finetune` (an MLP pretrained on Fashion-MNIST classes 0–4, fine-tuned on 1 000 images of
classes 5–9; lrcontrol.tasks.finetune) at its default size and budget (300 steps of 32 images).
Every method is Adam with a cosine decay, and differs only in how the LR is spread over the layers:

- uniform: one LR for every layer;
- discriminative ×0.1: the pretrained backbone at a tenth of the head's LR (`patterns`);
- discriminative decay 0.3: geometric decay from the head to the input (`decay`);
- trust (LAMB): each weight tensor steps lr·‖θ‖ (`trust()`), so its LR is a relative step size and
  its grid is a decade higher (the same number of points).

Same cost: each method gets the same number of runs (6 LRs × 3 seeds) of the same number of steps
(the trust ratio's extra work is two norms per tensor; wall times are printed). The LR is chosen per
method by the mean final validation accuracy over the seeds; the table reports the test accuracy at
that LR (mean ± standard deviation over the seeds). Results are kept in results/finetune_compare.json
so that a stopped run continues where it left off; one thread, one process.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from rich.progress import Progress

from lrcontrol.bench.engine import run
from lrcontrol.spec import with_lr
from lrcontrol.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "practice.md"
START, END = "<!-- finetune_compare:start -->", "<!-- finetune_compare:end -->"
GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
METHODS = {
    "uniform": ("adam + cosine()", GRID),
    "discriminative ×0.1": ('adam + discriminative(patterns={"backbone.*": 0.1}) + cosine()', GRID),
    "discriminative decay 0.3": ("adam + discriminative(decay=0.3) + cosine()", GRID),
    "trust (LAMB)": ("adam + trust() + cosine()", tuple(10 * lr for lr in GRID)),
}
SEEDS = (0, 1, 2)


def one_run(task, spec: str, seed: int) -> dict:
    trajectory = run(task, spec, seed)
    ok = not trajectory.diverged
    return {
        "val": trajectory.val[-1]["accuracy"] if ok else 0.0,
        "test": trajectory.test.get("accuracy", 0.0) if ok else 0.0,
        "diverged": trajectory.diverged,
        "seconds": trajectory.wall_time,
        "steps": trajectory.steps + trajectory.extra_steps,
        "final_lrs": trajectory.lrs[-1] if trajectory.lrs else [],
    }


def summarise(results: dict[str, dict], seeds: tuple[int, ...]) -> list[dict]:
    rows = []
    for method, (spec, grid) in METHODS.items():
        per_lr = {}
        for lr in grid:
            runs = [results[f"{method}|{lr!r}|{seed}"] for seed in seeds]
            per_lr[lr] = runs
        best_lr = max(grid, key=lambda lr: statistics.mean(r["val"] for r in per_lr[lr]))
        tests = [r["test"] for r in per_lr[best_lr]]
        rows.append(
            {
                "method": method,
                "spec": str(with_lr(spec, best_lr)),
                "lr": best_lr,
                "val": statistics.mean(r["val"] for r in per_lr[best_lr]),
                "test": statistics.mean(tests),
                "test_sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                "grid": {lr: statistics.mean(r["test"] for r in per_lr[lr]) for lr in grid},
                "diverged": sum(r["diverged"] for runs in per_lr.values() for r in runs),
                "seconds": statistics.mean(r["seconds"] for runs in per_lr.values() for r in runs),
                "steps": statistics.mean(r["steps"] for runs in per_lr.values() for r in runs),
                "runs": sum(len(runs) for runs in per_lr.values()),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| method | chosen LR | val acc | test acc (mean ± sd) | test acc per grid LR | runs × steps | s/run | diverged |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        grid = ", ".join(f"{lr:g}: {acc:.3f}" for lr, acc in r["grid"].items())
        lines.append(
            f"| {r['method']} | {r['lr']:g} | {r['val']:.4f} | {r['test']:.4f} ± {r['test_sd']:.4f} | {grid} | "
            f"{r['runs']} × {r['steps']:.0f} | {r['seconds']:.1f} | {r['diverged']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke size and one seed (does not touch the docs)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "finetune_compare.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size, seeds = ("smoke", (0,)) if args.quick else ("default", SEEDS)
    out = args.out.with_name(args.out.stem + "-quick.json") if args.quick else args.out
    task = get_task("fmnist-finetune", size)
    results: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    todo = [(method, spec, lr, seed) for method, (spec, grid) in METHODS.items() for lr in grid for seed in seeds]
    started = time.perf_counter()
    with Progress() as progress:
        bar = progress.add_task("fine-tuning runs", total=len(todo))
        for method, spec, lr, seed in todo:
            key = f"{method}|{lr!r}|{seed}"
            if key not in results:
                results[key] = one_run(task, str(with_lr(spec, lr)), seed)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(results, indent=1))
                tmp.replace(out)
            progress.advance(bar)
    rows = summarise(results, seeds)
    text = table(rows)
    print(text)
    if args.quick:
        return
    minutes = (time.perf_counter() - started) / 60
    section = (
        f"{START}\nMeasured by `python benchmarks/finetune_compare.py` (task `fmnist-finetune`, default size: "
        f"{task.budget} steps of {task.batch_size} images; Adam + cosine; {len(GRID)} LRs × {len(seeds)} seeds "
        f"per method, LR chosen by mean final validation accuracy; one CPU thread"
        + (f", {minutes:.0f} min this time" if minutes >= 1 else "")
        + ").\n\n"
        + text
        + f"\n{END}"
    )
    docs = DOCS.read_text()
    if START in docs and END in docs:
        head, rest = docs.split(START, 1)
        DOCS.write_text(head + section + rest.split(END, 1)[1])
    assert all(math.isfinite(r["test"]) for r in rows)


if __name__ == "__main__":
    main()
