"""Smith et al. (2018)'s comparison: decay the LR, or grow the batch instead, for the same examples seen.

    python benchmarks/batch_vs_decay.py          # prints the table, writes the section of docs/practice.md

Task `fmnist-mlp` (default size: batches of 128), SGD with momentum 0.9 at lr = 0.1, 800 batches in all:

- decay: 800 steps, the LR × 0.2 after 400 and after 600 steps;
- batch: the same two "decays" made into batch growth (`increase_batch(max_factor=25)`): 400 steps of 1
  batch, 40 steps of 5, 8 steps of 25 — the same 800 batches in 448 parameter updates;
- hybrid: the batch grows 5× at the first decay and the LR decays at the second
  (`increase_batch(max_factor=5)`): 400 + 40 + 40 steps.

Three seeds each, one thread; the table gives the final test accuracy (mean ± sd), the parameter
updates and the examples seen.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from lrcontrol.bench.engine import run
from lrcontrol.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "practice.md"
START, END = "<!-- batch_vs_decay:start -->", "<!-- batch_vs_decay:end -->"
OPT = "sgd(lr=0.1, momentum=0.9)"
METHODS = {
    "decay the LR": (f"{OPT} + multistep(milestones=[400, 600], gamma=0.2)", 800),
    "grow the batch": (f"{OPT} + multistep(milestones=[400, 440], gamma=0.2) + increase_batch(max_factor=25)", 448),
    "hybrid (batch ×5, then LR)": (
        f"{OPT} + multistep(milestones=[400, 440], gamma=0.2) + increase_batch(max_factor=5)",
        480,
    ),
}
SEEDS = (0, 1, 2)


def main() -> None:
    torch.set_num_threads(1)
    task = get_task("fmnist-mlp", "default")
    started = time.perf_counter()
    lines = [
        "| method | spec | updates | examples | test acc (mean ± sd) | final LR |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method, (spec, budget) in METHODS.items():
        runs = [run(task, spec, seed, budget) for seed in SEEDS]
        accs = [r.test.get("accuracy", 0.0) if not r.diverged else 0.0 for r in runs]
        examples = (runs[0].steps + runs[0].extra_steps) * task.batch_size
        lines.append(
            f"| {method} | `{spec}` | {runs[0].steps} | {examples:,} | "
            f"{statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f} | {runs[0].lrs[-1][0]:g} |"
        )
        print(lines[-1], flush=True)
    minutes = (time.perf_counter() - started) / 60
    section = (
        f"{START}\nMeasured by `python benchmarks/batch_vs_decay.py` (task `fmnist-mlp`, batches of "
        f"{task.batch_size}; seeds {', '.join(map(str, SEEDS))}; one CPU thread, {minutes:.0f} min on the "
        "shared development machine).\n\n" + "\n".join(lines) + f"\n{END}"
    )
    docs = DOCS.read_text()
    if START in docs and END in docs:
        head, rest = docs.split(START, 1)
        DOCS.write_text(head + section + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
