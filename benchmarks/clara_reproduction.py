"""The CLARA paper's learning-rate robustness protocol (Atamna et al. 2025, §5), re-run with lrcontrol.

For each task, initial LR η0 ∈ {1e-6, 1e-5, …, 1} and seed: SGD and Adam at constant η0; SGD+CLARA and
Adam+CLARA, plain and unit step, for every damping d of the paper's grid {1e-5, …, 1e-1} and for
d="auto"; D-Adaptation Adam started from d0 = η0 at every η0, as the authors' benchmark code runs it
(their baseline), and both D-Adaptation optimizers at their own defaults (lr = 1, one cell per task and
seed). CLARA runs `clara_published` (the authors' reference, no
runaway guard) with the variant and d set explicitly. Tasks: logistic regression on scikit-learn's
breast_cancer, iris, wine and digits (standardised, fixed stratified 75/25 split) and a 784-256-128-10
ReLU MLP on Fashion-MNIST (the paper also used MNIST and CIFAR-10; this MLP stands in for its deep
models). Metric: final test accuracy.

    python benchmarks/clara_reproduction.py --out runs.jsonl          # the default budget
    python benchmarks/clara_reproduction.py --out runs.jsonl --report # tables from a finished or partial file

One process, one torch thread. Every finished run is appended to --out as one JSON line; a rerun with
the same --out and the same budget skips the runs already there (resume); a rerun with another budget
is refused before anything is trained, so one file never mixes budgets. Not a test: it prints markdown
tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from clara_auto_d import MLP_TASKS, _load  # noqa: E402  (the same data preparation as the d="auto" study)

LRS = tuple(10.0**k for k in range(-6, 1))
DAMPINGS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, "auto")
TASKS = ("breast_cancer", "iris", "wine", "digits", "fashion_mlp")
OPTIMIZERS = ("sgd", "adam")
VARIANTS = ("plain", "unit")
DADAPT_D0 = "dadapt_adam@d0"  # D-Adaptation Adam with d0 = η0 (the η0 column holds d0)


@dataclass(frozen=True)
class Budget:
    epochs: int = 100  # the paper's
    batch: int = 128  # the authors' benchmark code's, for every image and tabular data set
    seeds: int = 3
    fashion_train: int = 6_000  # images of Fashion-MNIST's training set used (fixed subset)
    fashion_epochs: int = 10
    fashion_batch: int = 128
    fashion_seeds: int = 1
    # where CLARA reads its step direction: "optimizer" (what lrcontrol does) or "displacement"
    # θ_before − θ_after (what it did before control/direction.py), an ablation of the float32 rounding
    direction: str = "optimizer"


def method_specs(optimizer: str, lr: float) -> list[tuple[str, str]]:
    """(method name, spec) for one optimizer and η0: the optimizer alone, then CLARA per variant and d."""
    out = [(optimizer, f"{optimizer}(lr={lr:g})")]
    for variant, d in itertools.product(VARIANTS, DAMPINGS):
        d_arg = "'auto'" if d == "auto" else f"{d:g}"
        out.append(
            (
                f"{optimizer}+clara-{variant}@{d}",
                f"{optimizer}(lr={lr:g}) + clara_published(variant='{variant}', d={d_arg})",
            )
        )
    return out


def cells(budget: Budget) -> list[dict]:
    """Every run of the protocol, as the keys that identify it."""
    out = []
    for task in TASKS:
        seeds = budget.fashion_seeds if task in MLP_TASKS else budget.seeds
        for seed in range(seeds):
            for opt, lr in itertools.product(OPTIMIZERS, LRS):
                for method, spec in method_specs(opt, lr):
                    out.append({"task": task, "seed": seed, "lr": lr, "method": method, "spec": spec})
            # D-Adaptation as the authors run it: Adam flavour, its initial distance estimate d0 = η0
            for lr in LRS:
                out.append(
                    {"task": task, "seed": seed, "lr": lr, "method": DADAPT_D0, "spec": f"dadapt_adam(d0={lr:g})"}
                )
            for opt in ("dadapt_sgd", "dadapt_adam"):
                out.append({"task": task, "seed": seed, "lr": 1.0, "method": opt, "spec": f"{opt}(lr=1)"})
    return out


def train(cell: dict, budget: Budget) -> dict:
    import torch

    import lrcontrol

    task, seed = cell["task"], cell["seed"]
    xtr, ytr, xte, yte, classes = _load(task, budget.fashion_train)
    mlp = task in MLP_TASKS
    epochs = budget.fashion_epochs if mlp else budget.epochs
    batch = budget.fashion_batch if mlp else budget.batch
    torch.manual_seed(seed)
    if mlp:
        widths = MLP_TASKS[task]
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(widths) - 2 else [])
        model = torch.nn.Sequential(*layers)
    else:
        model = torch.nn.Linear(xtr.shape[1], classes)
    per_epoch = math.ceil(len(xtr) / batch)
    if budget.direction == "displacement":
        # The ablation: make every optimizer unknown to the direction reader, so that CLARA falls back
        # to the displacement, as before control/direction.py (patched for this build only).
        from unittest import mock

        from lrcontrol.control.direction import DirectionReader

        with mock.patch.object(DirectionReader, "of", classmethod(lambda cls, *args: None)):
            opt, ctl = lrcontrol.build(model.parameters(), cell["spec"], total_steps=epochs * per_epoch)
    else:
        opt, ctl = lrcontrol.build(model.parameters(), cell["spec"], total_steps=epochs * per_epoch)
    gen = torch.Generator().manual_seed(1000 + seed)
    start, nonfinite = time.perf_counter(), False
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctl.step(loss)
            nonfinite = nonfinite or not bool(torch.isfinite(loss))
    with torch.no_grad():
        logits = model(xte)
        finite = bool(torch.isfinite(logits).all())
        acc = float((logits.argmax(1) == yte).float().mean()) if finite else 1.0 / classes
    return {
        **cell,
        "acc": 100.0 * acc,
        "final_lr": ctl.lrs[0],
        "nonfinite": nonfinite or not finite,
        "seconds": time.perf_counter() - start,
    }


# -- report -------------------------------------------------------------------------------------------
def _family(method: str) -> str:
    """The method without its d: 'sgd+clara-unit' for 'sgd+clara-unit@0.01'."""
    return method.split("@")[0]


def _fmt(values: list[float], seeds: int = 0) -> str:
    """mean ± std (ddof 1) over seeds; † when the cell has fewer seeds than its task (an interrupted run)."""
    if not values:
        return "–"
    mark = "†" if len(values) < seeds else ""
    if len(values) == 1:
        return f"{values[0]:.1f}{mark}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}{mark}"


def report(records: list[dict]) -> str:
    """Per task: accuracy per η0 (mean ± std over seeds) of each method, CLARA with the best d per cell
    (chosen by mean test accuracy, as the paper's tables do: an oracle) beside d="auto"; then summaries."""
    acc: dict[tuple, list[float]] = {}
    for r in records:
        acc.setdefault((r["task"], r["method"], r["lr"]), []).append(r["acc"])
    lines: list[str] = []
    columns = []  # (title, method family, kind, optimizer table it belongs to)
    for opt in OPTIMIZERS:
        columns.append((opt, opt, None, opt))
        for variant in VARIANTS:
            columns.append((f"{opt}+CLARA {variant}, best d", f"{opt}+clara-{variant}", "best", opt))
            columns.append((f"{opt}+CLARA {variant}, auto", f"{opt}+clara-{variant}", "auto", opt))
    columns.append(("D-Adapt. Adam, d0 = η0", DADAPT_D0, None, "adam"))
    tasks = [t for t in TASKS if any(k[0] == t for k in acc)]
    per_lr: dict[tuple[str, float], dict[str, float]] = {}  # (column, η0) → {task: mean accuracy}
    best_d_seen: dict[str, list[str]] = {}
    for task in tasks:
        seeds = max(len(v) for k, v in acc.items() if k[0] == task)
        for opt in OPTIMIZERS:
            cols = [c for c in columns if c[3] == opt]
            lines.append(f"\n**{task}, {opt}** — final test accuracy (%), mean ± std over seeds; best d in brackets\n")
            lines.append("| η0 | " + " | ".join(c[0] for c in cols) + " |")
            lines.append("|---|" + "---:|" * len(cols))
            for lr in LRS:
                row = []
                for title, family, kind, _ in cols:
                    if kind is None:
                        vals = acc.get((task, family, lr), [])
                        cell = _fmt(vals, seeds)
                    elif kind == "auto":
                        vals = acc.get((task, f"{family}@auto", lr), [])
                        cell = _fmt(vals, seeds)
                    else:
                        fixed = {
                            d: acc[(task, f"{family}@{d}", lr)]
                            for d in DAMPINGS[:-1]
                            if (task, f"{family}@{d}", lr) in acc
                        }
                        if fixed:
                            d = max(fixed, key=lambda k: np.mean(fixed[k]))
                            vals = fixed[d]
                            best_d_seen.setdefault(f"{task} {family}", []).append(f"{d:g}")
                            cell = f"{_fmt(vals, seeds)} ({d:g})"
                        else:
                            vals, cell = [], "–"
                    if vals:
                        per_lr.setdefault((title, lr), {})[task] = float(np.mean(vals))
                    row.append(cell)
                lines.append(f"| {lr:g} | " + " | ".join(row) + " |")
        dadapt = [f"{name}: {_fmt(acc.get((task, name, 1.0), []), seeds)}" for name in ("dadapt_sgd", "dadapt_adam")]
        lines.append(f"\nD-Adaptation at its defaults (lr = 1, d0 = 1e-6): {'; '.join(dadapt)}")
    # Averaged over the tasks that have every column at every η0 (of those the file has at all: a subset
    # run with --methods/--lrs is summarised on its own cells), so that a partial file never compares
    # columns over different tasks; the heading names the tasks averaged and those left out.
    shown = [c for c in columns if any((c[0], lr) in per_lr for lr in LRS)]
    shown_lrs = [lr for lr in LRS if any((c[0], lr) in per_lr for c in columns)]
    common = [t for t in tasks if all(t in per_lr.get((c[0], lr), {}) for c in shown for lr in shown_lrs)]
    left_out = [t for t in tasks if t not in common]
    lines.append(
        "\n**Robustness to η0** — test accuracy averaged over the tasks, per η0 ("
        + (", ".join(common) or "no task complete yet")
        + (f"; left out, incomplete: {', '.join(left_out)}" if left_out else "")
        + ")\n"
    )
    lines.append("| η0 | " + " | ".join(c[0] for c in shown) + " |")
    lines.append("|---|" + "---:|" * len(shown))
    mean = {(c[0], lr): float(np.mean([per_lr[(c[0], lr)][t] for t in common])) for c in shown for lr in shown_lrs}
    if common:
        for lr in shown_lrs:
            lines.append(f"| {lr:g} | " + " | ".join(f"{mean[(c[0], lr)]:.1f}" for c in shown) + " |")
        worst = [min(mean[(c[0], lr)] for lr in shown_lrs) for c in shown]
        lines.append("| worst η0 | " + " | ".join(f"**{w:.1f}**" for w in worst) + " |")
    if any("†" in line for line in lines):
        lines.append("\n† fewer seeds than the rest of its task (a run stopped before all seeds finished)")
    lines.append("\n**Best fixed d per η0** (by mean test accuracy), per task and CLARA variant\n")
    lines.append("| task, method | best d for η0 = 1e-6 … 1 |")
    lines.append("|---|---|")
    for key, ds in best_d_seen.items():
        lines.append(f"| {key} | {' '.join(ds)} |")
    return "\n".join(lines)


def _read(out: Path) -> tuple[dict | None, list[dict]]:
    """(the budget in --out's header line or None, the run records) of a JSON-lines file."""
    header, records = None, []
    for line in out.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if "budget" in r:
                header = header or r["budget"]
            elif "method" in r:
                records.append(r)
    return header, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON-lines file of the runs (appended; resumes)")
    parser.add_argument("--report", action="store_true", help="only print the tables of --out")
    parser.add_argument("--seeds", type=int, default=Budget.seeds, help="seeds of the logistic regressions")
    parser.add_argument("--epochs", type=int, default=Budget.epochs)
    parser.add_argument("--batch", type=int, default=Budget.batch, help="batch size of the logistic regressions")
    parser.add_argument("--fashion-epochs", type=int, default=Budget.fashion_epochs)
    parser.add_argument("--fashion-train", type=int, default=Budget.fashion_train)
    parser.add_argument("--fashion-seeds", type=int, default=Budget.fashion_seeds)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument(
        "--direction",
        choices=("optimizer", "displacement"),
        default=Budget.direction,
        help="where CLARA reads its step direction (displacement: the float32 ablation; use its own --out)",
    )
    parser.add_argument("--methods", default="", help="only methods starting with one of these, e.g. adam+clara")
    parser.add_argument("--lrs", default="", help="only these η0, e.g. 1e-6,1e-5")
    args = parser.parse_args(argv)
    out = Path(args.out)
    unknown = [t for t in args.tasks.split(",") if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    for name in ("seeds", "epochs", "batch", "fashion_epochs", "fashion_train", "fashion_seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--lrs {args.lrs!r} is not a comma-separated list of numbers such as 1e-6,1e-5")
    if any(not any(math.isclose(lr, grid) for grid in LRS) for lr in lrs):
        parser.error(f"--lrs must be taken from the grid {', '.join(f'{x:g}' for x in LRS)}")
    methods = [m for m in args.methods.split(",") if m.strip()]
    if args.report:
        if not out.exists():
            parser.error(f"{out} does not exist; run without --report first")
        print(report(_read(out)[1]))
        return 0
    budget = Budget(
        seeds=args.seeds,
        epochs=args.epochs,
        batch=args.batch,
        fashion_epochs=args.fashion_epochs,
        fashion_train=args.fashion_train,
        fashion_seeds=args.fashion_seeds,
        direction=args.direction,
    )
    header, records = _read(out) if out.exists() else (None, [])
    # The seed counts only say how many runs to do; every other field changes what a run computes.
    same = {k: v for k, v in asdict(budget).items() if k not in ("seeds", "fashion_seeds")}
    defaults = asdict(Budget())  # a field absent from an older header had its default then
    if header is not None and {k: header.get(k, defaults[k]) for k in same} != same:
        parser.error(f"{out} holds runs of another budget ({header}); pass the same options or another --out")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    done = {(r["task"], r["seed"], r["lr"], r["method"]) for r in records}
    todo = [c for c in cells(budget) if c["task"] in args.tasks.split(",")]
    if methods:
        todo = [c for c in todo if c["method"].startswith(tuple(methods))]
    if lrs:
        todo = [c for c in todo if any(math.isclose(c["lr"], lr) for lr in lrs)]
    todo = [c for c in todo if (c["task"], c["seed"], c["lr"], c["method"]) not in done]
    start = time.perf_counter()
    with out.open("a") as fh:
        if header is None:
            fh.write(json.dumps({"budget": asdict(budget), "torch_threads": 1}) + "\n")
        for i, cell in enumerate(todo, 1):
            fh.write(json.dumps(train(cell, budget)) + "\n")
            fh.flush()
            spent = time.perf_counter() - start
            # a plain counter rather than a bar: the long runs go to a log file, one line per run
            print(
                f"{i}/{len(todo)} runs, {spent:.0f} s, about {spent / i * (len(todo) - i):.0f} s left "
                f"({cell['task']} seed {cell['seed']})",
                file=sys.stderr,
                flush=True,
            )
    print(report(_read(out)[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
