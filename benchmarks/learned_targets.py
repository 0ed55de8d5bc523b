"""The learned policy's targets (issue 13), from one run of `lrcontrol learn evaluate`.

    lrcontrol learn evaluate --runs metadata/runs.parquet --out results/learned-eval.json
    python benchmarks/learned_targets.py results/learned-eval.json [--json]

On the held-out families, with no per-task tuning (learned() at AdamW's default LR 1e-3):

1. mean normalised regret within 0.02 of the best grid-tuned fixed schedule (`grid:adamw-cosine`, which
   costs its 5-run grid);
2. better (lower mean regret) than every untuned default: every portfolio member of the meta-dataset;
3. ≥ 6 of the 7 initial LRs 1e-6 … 1 reach ≥ 95 % of the task's best (regret ≤ 0.05), on average over
   the held-out instances (the per-instance minimum and the count on the mean regret are printed too).

Each line says MET or MISSED with the numbers; the exit status is 0 either way (a report, not a test).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GRID = "grid:adamw-cosine"


def targets(result: dict) -> list[dict]:
    rows = {r["method"]: r for r in result["summary"]}
    learned = rows[f"learned@{result['default_lr']:g}"]
    out = []
    grid = rows.get(GRID)
    if grid is not None:
        gap = learned["mean_regret"] - grid["mean_regret"]
        out.append(
            {
                "target": "within 0.02 of the grid-tuned fixed schedule",
                "value": gap,
                "detail": f"learned {learned['mean_regret']:.3f} − {GRID} {grid['mean_regret']:.3f} = {gap:+.3f} "
                f"(the grid costs {grid['cost']:.1f} runs, learned 1)",
                "met": gap <= 0.02,
            }
        )
    defaults = [r for m, r in rows.items() if not m.startswith(("learned@", "grid:", "mfhpo:", "selector"))]
    best_default = min(defaults, key=lambda r: r["mean_regret"])
    beaten = [r["method"] for r in defaults if learned["mean_regret"] < r["mean_regret"]]
    out.append(
        {
            "target": "better than every untuned default",
            "value": learned["mean_regret"] - best_default["mean_regret"],
            "detail": f"learned {learned['mean_regret']:.3f} beats {len(beaten)} of {len(defaults)} members; the best "
            f"default is {best_default['method']} at {best_default['mean_regret']:.3f}",
            "met": len(beaten) == len(defaults),
        }
    )
    robust = result["robustness"]
    out.append(
        {
            "target": "≥ 6 of 7 initial LRs reach ≥ 95 % of the task's best",
            "value": robust["mean_count"],
            "detail": f"mean {robust['mean_count']:.2f} of 7 per instance (min {robust['min_count']}); "
            f"{robust['aggregate_count']} of 7 on the mean regret over instances",
            "met": robust["mean_count"] >= 6,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", nargs="?", default="results/learned-eval.json", help="lrcontrol learn evaluate --out")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    path = Path(args.result)
    if not path.is_file():
        sys.exit(f"error: {path}: no such file; run lrcontrol learn evaluate --out {path} first")
    result = json.loads(path.read_text())
    rows = targets(result)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"held-out families {', '.join(result['held_out_families'])}: {len(result['instances'])} instances")
    for row in rows:
        print(f"{'MET   ' if row['met'] else 'MISSED'} {row['target']}: {row['detail']}")


if __name__ == "__main__":
    main()
