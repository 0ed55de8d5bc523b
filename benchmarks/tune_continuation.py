"""Continuation vs restarts: the same Hyperband schedule, promoted trials continued or retrained.

    python benchmarks/tune_continuation.py                       # letter-mlp, smac-mf, 50 trials
    python benchmarks/tune_continuation.py --task iris-logreg --size smoke --trials 12 --json

Both tunes use the same seed, space and strategy. Continuation is exact (a promoted trial's result
equals the uninterrupted run), so SMAC3 is told the same values and asks the same trials in the same
order: the schedule is the same, only what a promotion trains differs — b₂ − b₁ steps from the b₁
checkpoint, or b₂ from scratch. The script checks that the two trial sequences and incumbents agree,
and prints for each mode the steps trained, the wall time, and the incumbent's quality, then

- the theoretical ratio: Σ(b − b_from) / Σ b over the schedule's trials (what continuation must cost);
- the measured ratios: trained steps, and wall seconds (which also pay model builds, evaluations and
  checkpoint reads and writes).

One process, one thread (`torch.set_num_threads(1)`), trials inline; each measurement uses a fresh
store. A small tune first warms the process up (imports, torch's first optimizer), then the two modes
alternate (`--repeats` times each) and the fastest wall time of each is kept, so neither mode pays the
warm-up or a busy moment of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def tune_once(args: argparse.Namespace, store: Path, continuation: bool) -> dict:
    from lrcontrol.tune import tune

    started = time.perf_counter()
    result = tune(
        args.task,
        args.space,
        strategy=args.strategy,
        trials=args.trials,
        seed=args.seed,
        size=args.size,
        continuation=continuation,
        store=store,
    )
    seconds = time.perf_counter() - started
    final = (result.trajectory.get("val") or [{}])[-1]
    return {
        "mode": "continuation" if continuation else "restarts",
        "trials": [(t["spec"], t["budget"]) for t in result.trials],
        "schedule_steps": sum(t["budget"] for t in result.trials),
        "trained_steps": result.trained_steps,
        "cost_steps": result.cost_steps,
        "cost_full_runs": result.cost,
        "seconds": seconds,
        "incumbent": result.incumbent,
        "incumbent_val": final,
        "incumbent_test": result.trajectory.get("test", {}),
    }


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="letter-mlp")
    parser.add_argument("--size", default="default")
    parser.add_argument("--space", default="adamw(lr=loguniform(1e-4, 1e-1)) + cosine(min_scale=uniform(0, 0.5))")
    parser.add_argument("--strategy", default="smac-mf", choices=["smac-mf", "hyperband", "sh"])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2, help="measurements per mode (the fastest is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        warm = argparse.Namespace(**{**vars(args), "trials": 3})
        tune_once(warm, Path(tmp) / "warm.db", True)
        measured: dict[bool, list[dict]] = {True: [], False: []}
        for repeat in range(args.repeats):
            for continuation in (False, True) if repeat % 2 == 0 else (True, False):
                measured[continuation].append(tune_once(args, Path(tmp) / f"{continuation}-{repeat}.db", continuation))
        continued = min(measured[True], key=lambda row: row["seconds"])
        restarted = min(measured[False], key=lambda row: row["seconds"])
    if continued["trials"] != restarted["trials"] or continued["incumbent"] != restarted["incumbent"]:
        raise SystemExit("the two modes followed different schedules: continuation was not exact")
    report = {
        "task": args.task,
        "size": args.size,
        "space": args.space,
        "strategy": args.strategy,
        "trials": args.trials,
        "seed": args.seed,
        "machine": f"{platform.processor() or platform.machine()}, torch threads 1",
        "continuation": {k: v for k, v in continued.items() if k != "trials"},
        "restarts": {k: v for k, v in restarted.items() if k != "trials"},
        "theoretical_ratio": continued["cost_steps"] / restarted["cost_steps"],
        "measured_step_ratio": continued["trained_steps"] / restarted["trained_steps"],
        "measured_time_ratio": continued["seconds"] / restarted["seconds"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.task} ({args.size}) · {args.strategy} · {args.trials} trials · seed {args.seed}")
    print(f"space: {args.space}")
    for mode in ("continuation", "restarts"):
        row = report[mode]
        print(
            f"  {mode:>12}: trained {row['trained_steps']:>7} steps ({row['cost_full_runs']:.2f} full runs), "
            f"{row['seconds']:7.1f} s; incumbent {row['incumbent']}: val {row['incumbent_val']}"
        )
    print(f"  theoretical ratio (Σ new steps / Σ budgets): {report['theoretical_ratio']:.3f}")
    print(
        f"  measured ratio, steps: {report['measured_step_ratio']:.3f}; wall time: {report['measured_time_ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
