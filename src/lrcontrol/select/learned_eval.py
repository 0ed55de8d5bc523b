"""The held-out evaluation of the learned LR policy (`lrcontrol learn evaluate`, docs/learned.md).

On instances of families the policy never saw in training:

- `learned()` at AdamW's default initial LR (1e-3), and at every LR of the grid 1e-6 … 1;
- the comparisons are the meta-dataset's own rows, not re-run: the best fixed schedule at its grid-tuned LR
  (`grid:adamw-cosine`: AdamW + warmup + cosine, the best of LRs 1e-4 … 1, costing the 5 runs), warmup +
  cosine at the default LR (`adamw-cosine`), CLARA with d="auto" (`adam-clara-auto`), the plateau rule
  (`adamw-plateau`), every other untuned portfolio member, and the selector's choice where a shipped
  selector exists.

Every score is the normalised regret of select/regret.py with the meta-dataset's anchors (ℓ_best: the best
over every member and tuned baseline of the instance; ℓ_0: the untrained model), so the policy's runs sit
on the same scale as the rows they are compared with; a policy run better than every stored row has regret
0. "Reaches ≥ 95 % of the task's best" means regret ≤ 0.05 (normalised score ≥ 0.95).

The policy's runs go through the one-run executor into a result store, so a stopped evaluation started
again trains only what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrcontrol.select.learn import DEFAULT_LR, LR_GRID, OPTIMIZER

#: the comparisons the issue names, by meta-dataset member, with what each stands for
COMPARED = {
    "grid:adamw-cosine": "best fixed schedule, LR tuned on a 5-point grid (costs the grid)",
    "adamw-cosine": "warmup + cosine at the default LR",
    "adam-clara-auto": 'CLARA d="auto" at the default LR',
    "adamw-plateau": "plateau rule at the default LR",
    "adamw": "constant default LR",
}
#: regret at or below this is "≥ 95 % of the task's best"
REACH = 0.05
SWEEP = "learned-eval"


def held_out_instances(runs: Any, families: Sequence[str], count: int | None, seed: int) -> list[str]:
    """The meta-dataset's instances of the held-out families (`count` of them drawn with `seed`, spread
    over the families in proportion)."""
    rows = runs[runs["family"].isin(list(families))]
    pool = sorted(set(rows["instance"]))
    if count is not None and count < len(pool):
        rng = np.random.default_rng(seed)
        pool = sorted(pool[int(i)] for i in rng.choice(len(pool), size=count, replace=False))
    return pool


def evaluation_runs(
    instances: Sequence[str], policy: str, lrs: Sequence[float] = LR_GRID, size: str = "default"
) -> list[Any]:
    """`adamw(lr=η₀) + learned(policy=…)` on every instance at every initial LR, seed 0."""
    from lrcontrol.bench.run_spec import RunSpec
    from lrcontrol.select.learn import policy_spec

    return [
        RunSpec.create(i, policy_spec([], lr, OPTIMIZER, policy=policy), 0, size=size, sweep=SWEEP)
        for i in instances
        for lr in lrs
    ]


@dataclass
class Evaluation:
    """The outcome: one row per (instance, method) with its regret; the policy's LR robustness; traces."""

    regrets: Any  # DataFrame: instance × method (learned@η for every η, and the compared members)
    diverged: Any  # DataFrame of the same shape (fraction of seeds / the run)
    cost: dict[str, float]  # method → mean full-run equivalents
    lrs: list[float]
    traces: dict[str, dict[float, dict[str, list[float]]]]  # instance → η → {frac, lr, loss}
    selector: str  # the selector's column name, or "" when none is available (and why, in `notes`)
    notes: list[str]

    def learned(self, lr: float = DEFAULT_LR) -> str:
        return f"learned@{lr:g}"

    def summary(self) -> list[dict[str, Any]]:
        """One row per method: mean and worst-decile regret, divergence rate, cost."""
        from lrcontrol.select.regret import worst_decile

        rows = []
        for method in self.regrets.columns:
            values = self.regrets[method].dropna().to_numpy()
            rows.append(
                {
                    "method": method,
                    "instances": int(values.size),
                    "mean_regret": float(values.mean()) if values.size else math.nan,
                    "worst_decile": worst_decile(values),
                    "diverged": float(self.diverged[method].mean()),
                    "cost": self.cost.get(method, 1.0),
                }
            )
        return sorted(rows, key=lambda r: r["mean_regret"])

    def robustness(self) -> dict[str, Any]:
        """Per initial LR: mean regret and share of instances reached; per instance: how many LRs reach."""
        columns = [self.learned(lr) for lr in self.lrs]
        reached = self.regrets[columns] <= REACH
        per_instance = reached.sum(axis=1)
        return {
            "per_lr": {
                lr: {"mean_regret": float(self.regrets[c].mean()), "reached": float(reached[c].mean())}
                for lr, c in zip(self.lrs, columns)
            },
            "per_instance": {i: int(n) for i, n in per_instance.items()},
            "mean_count": float(per_instance.mean()),
            "min_count": int(per_instance.min()),
            "aggregate_count": int(sum(float(self.regrets[c].mean()) <= REACH for c in columns)),
        }


def collect(
    runs: Any,
    store_path: str | Path,
    instances: Sequence[str],
    policy: str,
    lrs: Sequence[float] = LR_GRID,
    features: Any = None,
    size: str = "default",
) -> Evaluation:
    """The evaluation from the meta-dataset (`runs`) and the policy's stored runs."""
    import pandas as pd

    from lrcontrol.bench.record import run_cost
    from lrcontrol.bench.store import Store
    from lrcontrol.select.learn import policy_free
    from lrcontrol.select.regret import is_baseline, normalised, oriented, regret_table

    rows = runs[runs["instance"].isin(list(instances))]
    table = regret_table(policy_free(rows))  # the anchors: a policy is not judged against its own runs
    members = [m for m in table.regret.columns if m in COMPARED or not is_baseline(m)]
    order = [m for m in COMPARED if m in members] + [m for m in members if m not in COMPARED]
    regrets = table.regret[order].copy()
    diverged = table.diverged[order].copy()
    cost = {m: float(table.cost[m].mean()) for m in order}
    # a portfolio member that runs a learned policy (adamw-learned) is no comparison (it is the policy at
    # 1e-3 again), but the selector may choose it: its regret on the same anchors, for that column
    chosen_regret, chosen_diverged = table.regret.copy(), table.diverged.copy()
    for member, group in rows.drop(policy_free(rows).index).groupby("member", sort=False):
        failed = group["diverged"].astype(bool) | group["final_metric"].isna()
        loss = pd.Series(np.where(failed, np.inf, oriented(group["final_metric"], group["higher_is_better"])))
        median = loss.groupby(group["instance"].to_numpy()).median().reindex(table.regret.index)
        chosen_regret[member] = normalised(median.to_numpy(), table.best.to_numpy(), table.anchor.to_numpy())
        chosen_diverged[member] = group.groupby("instance")["diverged"].mean().astype(float).reindex(table.regret.index)
    planned = evaluation_runs(instances, policy, lrs, size)
    specs = {r.key: (r.task, lr) for r, lr in zip(planned, list(lrs) * len(instances))}
    traces: dict[str, dict[float, dict[str, list[float]]]] = {}
    with Store(store_path, create=False, readonly=True) as store:
        found = {r.key: r for r in store.records(f"sweep = '{SWEEP}'")}
    for key, (instance, lr) in specs.items():
        column = f"learned@{lr:g}"
        record = found.get(key)
        if record is None:
            continue
        final = math.nan if record.diverged or record.final_metric is None else record.final_metric
        loss = oriented(np.array([final]), np.array([record.higher_is_better]))
        loss = np.where(np.isfinite(loss), loss, np.inf)
        value = float(normalised(loss, table.best[instance], table.anchor[instance])[0])
        regrets.loc[instance, column] = value
        diverged.loc[instance, column] = float(record.diverged)
        cost.setdefault(column, []).append(run_cost(record))  # type: ignore[union-attr]
        trajectory = record.trajectory or {}
        budget = max(1, record.budget)
        traces.setdefault(instance, {})[lr] = {
            "frac": [s / budget for s in trajectory.get("train_steps", [])],
            "lr": [g[0] for g in trajectory.get("lrs", [])],
            "loss": list(trajectory.get("train_loss", [])),
        }
    for column in [f"learned@{lr:g}" for lr in lrs]:
        if isinstance(cost.get(column), list):
            cost[column] = float(np.mean(cost[column]))
    learned_columns = [f"learned@{lr:g}" for lr in lrs if f"learned@{lr:g}" in regrets.columns]
    first = [f"learned@{DEFAULT_LR:g}"] if f"learned@{DEFAULT_LR:g}" in learned_columns else []
    front = first + [c for c in learned_columns if c not in first]
    regrets = regrets[front + order]
    diverged = diverged[front + order]
    selector, notes = "", []
    if features is None:
        notes.append("the selector's choice is not compared: no features file was given (--features)")
    else:
        try:
            choices = selector_choices(features, instances)
        except Exception as exc:  # noqa: BLE001 - any reason the selector cannot choose is reported, not raised
            notes.append(f"the selector's choice is not compared: the shipped selector could not choose ({exc})")
        else:
            selector = "selector"
            regrets[selector] = pd.Series({i: chosen_regret.loc[i, m] for i, m in choices.items()})
            diverged[selector] = pd.Series({i: chosen_diverged.loc[i, m] for i, m in choices.items()})
            per_run = {i: table.cost.loc[i, m] if m in table.cost.columns else 1.0 for i, m in choices.items()}
            cost[selector] = float(np.mean(list(per_run.values())))
            notes.append(
                "the shipped selector was trained on every family of the meta-dataset, the held-out ones "
                "included, so its column is not a held-out result (probe cost not included)"
            )
    return Evaluation(regrets, diverged, cost, list(lrs), traces, selector, notes)


def selector_choices(features: Any, instances: Sequence[str]) -> dict[str, str]:
    """The shipped selector's member per instance (lrcontrol.select.auto), from the meta-dataset's features."""
    from lrcontrol.select.auto import select  # issue 12's shipped selector

    by_instance = features.set_index("instance")
    out = {}
    for instance in instances:
        row = {k: float(v) for k, v in by_instance.loc[instance].items() if isinstance(v, (int, float))}
        out[instance] = select(row)[0]
    return out


def run_missing(
    runs: Sequence[Any], store_path: str | Path, workers: int, on_done: Callable[[], None], executor: Any = None
) -> Any:
    """Train the policy's runs not yet in the store (resumable), on the one-run executor (a LocalExecutor
    with `workers` processes unless one is given)."""
    from contextlib import nullcontext

    from lrcontrol.bench import sweep_runner
    from lrcontrol.bench.local_executor import LocalExecutor
    from lrcontrol.bench.store import Store

    Path(store_path).parent.mkdir(parents=True, exist_ok=True)
    with Store(store_path) as store, nullcontext(executor) if executor else LocalExecutor(workers) as running:
        return sweep_runner.run_sweep(
            list(runs), store, running, on_done=lambda r, t: on_done(), on_failed=lambda r, e: on_done()
        )


def figure(evaluation: Evaluation, path: str | Path, instances: Sequence[str] | None = None) -> None:
    """For up to four held-out instances: the LR the policy chose (top) and the training loss (bottom)
    over the run, one line per initial LR; and the LR against the loss (third row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    if instances is None:  # one instance per task (the name before its arguments), so the panels differ
        by_task: dict[str, str] = {}
        for name in sorted(evaluation.traces):
            by_task.setdefault(name.split("(")[0], name)
        instances = list(by_task.values())
    chosen = list(instances)[:4]
    fig, axes = plt.subplots(3, len(chosen), figsize=(4.2 * len(chosen), 9.5), squeeze=False)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(evaluation.lrs)))
    for col, instance in enumerate(chosen):
        for lr, colour in zip(evaluation.lrs, colours):
            trace = evaluation.traces.get(instance, {}).get(lr)
            if not trace or not trace["frac"]:
                continue
            loss = np.array(trace["loss"], dtype=float)
            axes[0, col].plot(trace["frac"], trace["lr"], color=colour, label=f"η₀={lr:g}")
            axes[1, col].plot(trace["frac"], loss, color=colour)
            axes[2, col].plot(loss, trace["lr"], color=colour, marker=".", markersize=2, linewidth=0.6)
        title = instance if len(instance) <= 48 else instance[:45] + "…"
        axes[0, col].set_title(title, fontsize=8)
        axes[0, col].set_yscale("log")
        axes[1, col].set_yscale("log")
        axes[2, col].set_xscale("log")
        axes[2, col].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[2, col].set_yscale("log")
        axes[0, col].set_xlabel("progress t/T")
        axes[1, col].set_xlabel("progress t/T")
        axes[2, col].set_xlabel("training loss")
    axes[0, 0].set_ylabel("LR chosen by learned()")
    axes[1, 0].set_ylabel("training loss")
    axes[2, 0].set_ylabel("LR")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_dict(evaluation: Evaluation, policy: str, held_out: Sequence[str]) -> dict[str, Any]:
    """Every number of the evaluation as plain JSON."""

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return {
        "policy": policy,
        "held_out_families": list(held_out),
        "instances": list(evaluation.regrets.index),
        "summary": [{k: clean(v) for k, v in row.items()} for row in evaluation.summary()],
        "robustness": {
            **evaluation.robustness(),
            "per_lr": {f"{lr:g}": v for lr, v in evaluation.robustness()["per_lr"].items()},
        },
        "regrets": {
            i: {m: clean(float(v)) for m, v in row.items()} for i, row in evaluation.regrets.to_dict("index").items()
        },
        "notes": evaluation.notes,
        "reach": REACH,
        "default_lr": DEFAULT_LR,
    }


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/learned.md: methods by mean regret, then the policy over the initial-LR grid."""
    lines = [
        f"Held-out families: {', '.join(result['held_out_families'])}; {len(result['instances'])} instances.",
        "",
        "| method | mean regret | worst decile | diverged | cost (runs) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["summary"]:
        if row["method"].startswith("learned@") and row["method"] != f"learned@{result['default_lr']:g}":
            continue
        lines.append(
            f"| {row['method']} | {row['mean_regret']:.3f} | {row['worst_decile']:.3f} | "
            f"{row['diverged']:.0%} | {row['cost']:.1f} |"
        )
    robust = result["robustness"]
    lines += [
        "",
        f"learned() over the initial-LR grid (reached: regret ≤ {result['reach']:g}, i.e. ≥ 95 % of the task's best):",
        "",
        "| initial LR | mean regret | instances reached |",
        "|---:|---:|---:|",
    ]
    for lr, v in robust["per_lr"].items():
        lines.append(f"| {lr} | {v['mean_regret']:.3f} | {v['reached']:.0%} |")
    lines += [
        "",
        f"Initial LRs of 7 that reach ≥ 95 % per instance: mean {robust['mean_count']:.2f}, "
        f"min {robust['min_count']}; on the mean regret over instances: {robust['aggregate_count']} of 7.",
    ]
    lines += [f"\nNote: {note}" for note in result["notes"]]
    return "\n".join(lines)
