"""Tuned baselines of the meta-dataset: what a selector's one run is compared with.

- `grid:adamw-cosine`: AdamW with 5 % warmup and cosine decay, its LR tuned on a grid of five decades
  (1e-4 … 1); the run of best validation metric is the baseline's result, and its cost is the whole
  grid's (five runs; the 1e-3 point is the `adamw-cosine` member's run, shared).
- `mfhpo:smac-mf`: multi-fidelity HPO (`lrcontrol.tune`, SMAC3's Hyperband intensifier) over the same
  schedule's LR (log-uniform on [1e-5, 3]), with the number of trials that spends about five full-run
  equivalents; its cost as the tuner counted it (every trial's steps / the budget).

Both pick on the validation metric, the same metric the members are scored on, so a baseline is an
optimistic bound on what tuning would give on held-out data (as in HPO benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GRID_LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
GRID_TEMPLATE = "adamw(lr={lr}) + warmup() + cosine()"
GRID_NAME = "grid:adamw-cosine"
MFHPO_NAME = "mfhpo:smac-mf"
MFHPO_SPACE = "adamw(lr=loguniform(1e-05, 3.0)) + warmup() + cosine()"
MFHPO_STRATEGY = "smac-mf"
#: trials of SMAC3's Hyperband (η = 3, four fidelities, continuation): 50 spent 4.6 full runs on
#: letter-mlp (docs/tuning.md), the ≈ 5 full-run equivalents this baseline is meant to cost
MFHPO_TRIALS = 50


def grid_specs() -> list[str]:
    """The grid's canonical specs, lowest LR first."""
    from lrcontrol.spec import parse

    return [str(parse(GRID_TEMPLATE.format(lr=lr))) for lr in GRID_LRS]


@dataclass(frozen=True)
class Pick:
    """A tuned baseline's result on one (instance, seed): the chosen run and the cost of the search."""

    record: Any  # the chosen RunRecord
    cost: float  # full-run equivalents of the whole search
    wall_time: float


def oriented(record: Any) -> float:
    """The record's final validation metric oriented so that lower is better (+inf if diverged/missing)."""
    value = record.final_metric
    if record.diverged or value is None or not math.isfinite(value):
        return math.inf
    return -value if record.higher_is_better else value


def pick_grid(records: Sequence[Any]) -> Pick | None:
    """The grid's best run (first of the lowest LR on ties) among `records` of one (instance, seed);
    None unless every grid point is there."""
    from lrcontrol.bench.record import run_cost

    by_spec = {r.spec: r for r in records}
    specs = grid_specs()
    if not all(s in by_spec for s in specs):
        return None
    runs = [by_spec[s] for s in specs]
    best = min(runs, key=oriented)
    return Pick(best, sum(run_cost(r) for r in runs), sum(r.wall_time for r in runs))


def is_mfhpo(record: Any) -> bool:
    """Whether a stored run is the incumbent row of the MF-HPO baseline's tune."""
    return record.method.startswith(f"tune:{MFHPO_STRATEGY}(") and record.method.endswith(MFHPO_SPACE)


def mfhpo_subset(instances: Iterable[Any], count: int) -> list[Any]:
    """The instances the MF-HPO baseline runs on: `count` of them, spread evenly over the list (which
    the generator orders by family), so every family is represented."""
    items = list(instances)
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
