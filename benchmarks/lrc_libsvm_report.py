"""The tables of docs/reproductions/lrc-libsvm.md from a store written by `lrcontrol sweep suites/lrc-libsvm.toml`.

    python benchmarks/lrc_libsvm_report.py results/lrc-libsvm.db > tables.md

Per setting (the study's sigmoid head on LIBSVM-scaled inputs; logistic regression on standardised
inputs) and data set: each method's final accuracy on the training split (the study's metric), its gap
to the best method in accuracy points, then the average gap, the number of wins (gap 0) and the cost
in full-run equivalents ((steps + extra steps) / budget: 1 for a run, the trials for a tuner).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

LABELS = [
    (r"^tune:.*lr=uniform\(0", "SMAC const, lr ∈ [0, 1]"),
    (r"^tune:.*sgdr", "SMAC CAWR"),
    (r"^tune:.*lr=loguniform", "SMAC const, log lr"),
    (r"^adamw.*\+ sgdr", "CAWR default"),
    (r"^adamw", "AdamW 1e-3"),
    (r"^dadapt_adam", "D-Adaptation"),
    (r"^prodigy", "Prodigy"),
    (r"^dowg", "DoWG"),
    (r"^cocob", "COCOB"),
]


def label(method: str) -> str:
    for pattern, name in LABELS:
        if re.search(pattern, method):
            return name
    return method


def main() -> None:
    from lrcontrol.bench.store import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    args = parser.parse_args()
    with Store(args.store, create=False) as db:
        records = db.records()
    table: dict[str, dict[str, dict[str, tuple[float, float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        setting = (
            "study: sigmoid head, LIBSVM scaling" if 'head="sigmoid"' in r["task_name"] else "logreg, standardised"
        )
        dataset = r["task_name"].split("-", 1)[0]
        train = r["trajectory"].get("train", {}).get("accuracy")
        accuracy = float("nan") if r["diverged"] or train is None else 100.0 * train
        cost = (r["steps"] + r["extra_steps"]) / r["budget"]
        table[setting][dataset][label(r["method"])] = (accuracy, cost)
    order = [name for _, name in LABELS]
    for setting, datasets in table.items():
        names = sorted(datasets)
        methods = [m for m in order if any(m in datasets[d] for d in names)]
        print(f"\n### {setting}\n")
        print("| method | " + " | ".join(names) + " | avg gap | wins | cost |")
        print("|---" * (len(names) + 4) + "|")
        best = {d: max(v[0] for v in datasets[d].values() if v[0] == v[0]) for d in names}
        for method in methods:
            cells, gaps, wins, costs = [], [], 0, []
            for d in names:
                accuracy, cost = datasets[d].get(method, (float("nan"), float("nan")))
                gap = best[d] - accuracy if accuracy == accuracy else float("inf")
                gaps.append(gap)
                wins += gap < 1e-9
                costs.append(cost)
                cells.append(f"{accuracy:.1f} ({gap:+.1f})" if accuracy == accuracy else "diverged")
            avg = sum(gaps) / len(gaps)
            print(f"| {method} | " + " | ".join(cells) + f" | {avg:.2f} | {wins} | {sum(costs) / len(costs):.2f} |")


if __name__ == "__main__":
    main()
