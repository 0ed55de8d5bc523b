"""The LR range test as a prior (πBO) against the same tuner without it.

    python benchmarks/tune_prior.py                      # vowel-mlp, wine-mlp, letter-logreg; smac-bo; 20 trials; seeds 0 1 2
    python benchmarks/tune_prior.py --tasks iris-mlp --size smoke --trials 8 --seeds 0 --json

For each task and seed the same tune (strategy, space, trials, seed) runs twice: without a prior and
with `prior="lr-finder"` (`lrcontrol.find_lr`'s suggestion as a log-normal prior on the LR, which
SMAC3's `PriorAcquisitionFunction` weights the acquisition with). For each it reports

- the incumbent's final validation metric (and test, when the task has one);
- the best full-budget trial among the first k (`--k`, default 5): quality after k trials;
- the trial at which the incumbent first reached the full budget, and the cost spent up to then;
- the total cost in full-run equivalents: every trial's steps plus the range test's probe steps, over
  the full budget (`TuneResult.cost`; the probe is 0 without the prior).

smac-bo (the default) trains every trial at the full budget, so "found at trial" and "best of the first
k" are comparable across the arms; with smac-mf and few trials no configuration may reach the full budget
before the tune's end (the incumbent is then continued to it, as an extra trial).

One process, one thread (`torch.set_num_threads(1)`), trials inline, a fresh temporary store per tune.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

SPACE = "adamw(lr=loguniform(1e-5, 1e-1), weight_decay=loguniform(1e-6, 1e-1)) + cosine"


def tune_once(args: argparse.Namespace, task: str, seed: int, prior: str | None, store: Path) -> dict:
    from lrcontrol.tasks import get_task
    from lrcontrol.tune import tune

    started = time.perf_counter()
    result = tune(
        task,
        args.space,
        strategy=args.strategy,
        trials=args.trials,
        seed=seed,
        size=args.size,
        budget=args.budget,
        prior=prior,
        store=store,
    )
    seconds = time.perf_counter() - started
    the_task = get_task(task, args.size)
    metric = the_task.metric
    sign = -1.0 if the_task.higher_is_better else 1.0
    # the best full-budget trial among the first k (the objective is the metric, negated if higher is better)
    early = [
        t["objective"] for t in result.trials[: args.k] if t["budget"] == result.horizon and t["objective"] is not None
    ]
    final = (result.trajectory.get("val") or [{}])[-1]
    # the trial at which the incumbent first reached the full budget (1-based), and the cost up to it
    found, spent = len(result.trials), result.cost_steps
    running = result.probe_steps
    for index, trial in enumerate(result.trials, 1):
        running += trial["cost_steps"]
        if trial["spec"] == result.incumbent and trial["budget"] == result.horizon:
            found, spent = index, running
            break
    return {
        "task": task,
        "seed": seed,
        "prior": prior or "none",
        "prior_lr": result.prior_lr,
        "incumbent": result.incumbent,
        "metric": metric,
        "val": final.get(metric),
        "test": (result.trajectory.get("test") or {}).get(metric),
        "best_at_k": sign * min(early) if early else None,
        "found_at_trial": found,
        "cost_to_find": spent / result.horizon,
        "probe_steps": result.probe_steps,
        "cost": result.cost,
        "seconds": seconds,
    }


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["vowel-mlp", "wine-mlp", "letter-logreg"])
    parser.add_argument("--size", default="default")
    parser.add_argument("--budget", type=int, default=None, help="full budget in steps (default: the task's)")
    parser.add_argument("--space", default=SPACE)
    parser.add_argument("--strategy", default="smac-bo", choices=["smac-mf", "smac-bo"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--k", type=int, default=5, help="report the best full-budget trial among the first k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    rows: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for seed in args.seeds:
                for prior in (None, "lr-finder"):
                    store = Path(tmp) / f"{task}-{seed}-{prior}.db"
                    try:
                        rows.append(tune_once(args, task, seed, prior, store))
                    except Exception as exc:  # a failed tune is a result too: report it, go on
                        failed.append(f"{task} seed {seed} prior {prior or 'none'}: {type(exc).__name__}: {exc}")
    wall = time.perf_counter() - started
    report = {
        "space": args.space,
        "strategy": args.strategy,
        "trials": args.trials,
        "size": args.size,
        "seeds": args.seeds,
        "machine": f"{platform.processor() or platform.machine()}, torch threads 1",
        "wall_seconds": wall,
        "rows": rows,
        "failed": failed,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.strategy} · {args.trials} trials · size {args.size} · seeds {' '.join(map(str, args.seeds))}")
    print(f"space: {args.space}")
    header = (
        f"{'task':<14} {'seed':>4} {'prior':<9} {'prior lr':>8} {'val':>6} {'test':>6} {f'@{args.k}':>6} {'found@':>6} "
    )
    print(header + f"{'cost→found':>10} {'cost':>6} {'probe':>5}  incumbent")
    for row in rows:
        print(
            f"{row['task']:<14} {row['seed']:>4} {row['prior']:<9} {fmt(row['prior_lr'], '.1e'):>8} "
            f"{fmt(row['val']):>6} {fmt(row['test']):>6} {fmt(row['best_at_k']):>6} {row['found_at_trial']:>6} "
            f"{row['cost_to_find']:>10.2f} {row['cost']:>6.2f} {row['probe_steps']:>5}  {row['incumbent']}"
        )
    print("means over tasks and seeds:")
    for prior in ("none", "lr-finder"):
        mine = [row for row in rows if row["prior"] == prior]
        vals = [row["val"] for row in mine if row["val"] is not None]
        early = [row["best_at_k"] for row in mine if row["best_at_k"] is not None]
        print(
            f"  {prior:<9}: val {fmt(statistics.mean(vals) if vals else None)}, "
            f"best of first {args.k} {fmt(statistics.mean(early) if early else None)}, "
            f"found at trial {statistics.mean(row['found_at_trial'] for row in mine):.1f}, "
            f"cost to find {statistics.mean(row['cost_to_find'] for row in mine):.2f}, "
            f"cost {statistics.mean(row['cost'] for row in mine):.2f} full runs"
        )
    for line in failed:
        print(f"FAILED {line}")
    print(f"wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
