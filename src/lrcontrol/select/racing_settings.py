"""Racing's settings — who enters, in which order, and how hard each rung cuts — chosen on training
instances only.

A race (`lrcontrol.select.racing`) has three settings that decide how well it does within its 2-run
budget: the members' order of preference (who enters first, who wins ties), how many enter, and the
halving ratio η. More entrants and a larger η mean earlier, harsher cuts on early validation scores,
which rank members differently from their final scores (a schedule that decays late, an LR-free method
that warms up, look bad early); fewer entrants and η = 2 judge later and keep more members per cut.
Which trade-off wins is measured, not assumed: `tune` replays every setting of `GRID` on the training
instances' stored curves (`simulate`: exact, a continued run is the uninterrupted one) and keeps the
one of least mean regret — an inner evaluation on the training folds only, so a held-out family or
data set never decides its own race settings (successive halving: Jamieson & Talwalkar, AISTATS 2016;
portfolio order by greedy complementarity, as in the VBS-driven portfolio construction of Xu et al.,
"Hydra-MIP", 2011).

Orders (`ORDERS`):
- "mean regret": members by their mean training regret (the single best first);
- "complementary": greedy forward selection — each next member is the one that most lowers the
  training instances' virtual best (mean of the per-instance least regret among those chosen so far);
- "complementary, cost-aware": the same, charging each member `COST_WEIGHT` regret per extra run it
  costs (an LR range test's 0.5 runs), since a race pays that at entry.

    book = RaceBook(runs, regret_table(runs))
    settings = tune(book, train_instances)                   # RaceSettings(order, entrants, eta)
    result = book.race(instance, seed, settings.members(preferences(regrets.loc[train], cost)), settings.eta)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lrcontrol.errors import LRControlError
from lrcontrol.select.racing import MAX_COST, Judge, RaceResult, curves_of, simulate

ORDERS = ("mean regret", "complementary", "complementary, cost-aware")
#: the cost-aware order's charge, in regret per extra full run a member costs: a member with a 0.5-run LR
#: range test enters only where it lowers the training virtual best by more than 0.025
COST_WEIGHT = 0.05


@dataclass(frozen=True)
class RaceSettings:
    """A race's settings: the members' order, how many enter at most (None: every member that fits
    the budget), the halving ratio η."""

    order: str
    entrants: int | None
    eta: int

    def members(self, preferences: Mapping[str, list[str]]) -> list[str]:
        """The racers in order of preference, from the orders `preferences` computes."""
        ranked = preferences[self.order]
        return list(ranked if self.entrants is None else ranked[: self.entrants])

    def label(self) -> str:
        n = "all members" if self.entrants is None else f"{self.entrants} members"
        return f"{self.order}, {n}, η={self.eta}"

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "entrants": self.entrants, "eta": self.eta}


#: the settings `tune` chooses among, in order (ties go to the earlier)
GRID: tuple[RaceSettings, ...] = tuple(
    RaceSettings(order, n, eta) for order in ORDERS for eta in (2, 3) for n in (4, 5, 6, 8, None)
)
#: the settings before tuning existed: every member by mean regret, η = 3
UNTUNED = RaceSettings("mean regret", None, 3)
#: the race `lrcontrol select race` runs on a new task: `tune` on the whole shipped meta-dataset
#: (metadata/, 380 instances) chose these settings and, in their order, these entrants (a test checks
#: both against the meta-dataset, so they are rebuilt with it)
SHIPPED = RaceSettings("complementary, cost-aware", 4, 2)
SHIPPED_ENTRANTS = ("cocob", "adam-clara-0.01", "prodigy", "adamw-learned")


def preferences(regrets: pd.DataFrame, cost: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """Every order of `ORDERS` over the members (columns of `regrets`, instance × member, training
    instances only); `cost` (same shape, full-run equivalents) for the cost-aware order (default 1)."""
    if regrets.empty:
        raise LRControlError("cannot order the racers without training instances")
    names = [str(m) for m in regrets.columns]
    matrix = regrets.to_numpy(dtype=float)
    extra = np.zeros(len(names)) if cost is None else np.maximum(cost[names].to_numpy(dtype=float).mean(axis=0) - 1, 0)
    by_mean = [names[i] for i in np.argsort(matrix.mean(axis=0), kind="stable")]
    return {
        "mean regret": by_mean,
        "complementary": _greedy(matrix, names, np.zeros(len(names))),
        "complementary, cost-aware": _greedy(matrix, names, COST_WEIGHT * extra),
    }


def _greedy(matrix: np.ndarray, names: list[str], charge: np.ndarray) -> list[str]:
    """Greedy forward selection by the virtual best's mean regret (plus each member's charge); ties go
    to the earlier member."""
    chosen: list[int] = []
    current = np.full(len(matrix), np.inf)
    while len(chosen) < len(names):
        left = [j for j in range(len(names)) if j not in chosen]
        scores = [float(np.mean(np.minimum(current, matrix[:, j]))) + float(charge[j]) for j in left]
        j = left[int(np.argmin(scores))]
        chosen.append(j)
        current = np.minimum(current, matrix[:, j])
    return [names[j] for j in chosen]


class RaceBook:
    """The meta-dataset's stored curves per (instance, seed), and every race replayed on them, memoised
    (tuning replays the same race under many folds)."""

    def __init__(self, runs: pd.DataFrame, table: Any) -> None:
        self.table = table
        members = set(table.members)
        self.curves: dict[str, dict[int, dict]] = {}
        for (instance, seed), rows in runs[runs["member"].isin(members)].groupby(["instance", "seed"], sort=True):
            self.curves.setdefault(str(instance), {})[int(seed)] = curves_of(rows)
        self._memo: dict[tuple, RaceResult] = {}

    def race(
        self, instance: str, seed: int, members: Sequence[str], eta: int, max_cost: float, judge: Judge | None = None
    ) -> RaceResult:
        curves = self.curves[instance][seed]
        racers = tuple(m for m in members if m in curves)
        key = (instance, seed, racers, eta, round(max_cost, 9), judge)
        if key not in self._memo:
            self._memo[key] = simulate(curves, list(racers), eta=eta, max_cost=max_cost, judge=judge)
        return self._memo[key]

    def outcome(
        self, instance: str, members: Sequence[str], eta: int, max_cost: float = MAX_COST, judge: Judge | None = None
    ) -> dict[str, Any]:
        """The race on every stored seed of `instance`; scored like a member: the regret of the median
        outcome, the seeds' mean divergence, catastrophe and cost, the most frequent winner. judge: as in
        `simulate` (default: the validation metric, what a live race sees)."""
        results = [self.race(instance, seed, members, eta, max_cost, judge) for seed in sorted(self.curves[instance])]
        losses = [r.loss for r in results]
        catastrophic = [r.diverged or self.table.regret_of(instance, r.loss) >= 0.5 for r in results]
        winners = [r.winner for r in results]
        return {
            "member": max(dict.fromkeys(winners), key=winners.count),
            "regret": self.table.regret_of(instance, float(np.median(losses))),
            "diverged": float(np.mean([r.diverged for r in results])),
            "catastrophic": float(np.mean(catastrophic)),
            "cost": float(np.mean([r.cost for r in results])),
        }


def tune(
    book: RaceBook,
    train: Sequence[str],
    grid: Sequence[RaceSettings] = GRID,
    max_cost: float = MAX_COST,
) -> tuple[RaceSettings, dict[str, list[str]]]:
    """The settings of `grid` with the least mean regret over the `train` instances' replayed races
    (ties: the earlier), and the member orders computed on those instances."""
    if not train:
        raise LRControlError("cannot tune racing without training instances")
    regrets = book.table.member_regret().loc[list(train)]
    orders = preferences(regrets, book.table.cost.loc[list(train), book.table.members])
    best, best_regret = grid[0], math.inf
    for settings in grid:
        members = settings.members(orders)
        mean = float(np.mean([book.outcome(i, members, settings.eta, max_cost)["regret"] for i in train]))
        if mean < best_regret - 1e-12:
            best, best_regret = settings, mean
    return best, orders
