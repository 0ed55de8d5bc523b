"""Normalised regret on the meta-dataset: the one definition every selector, report and policy uses.

Per instance, scores are oriented so that lower is better (ℓ = v, or −v for a metric where higher is
better). Per (instance, member) the score is the median ℓ over seeds, a failed run (diverged, or no final
metric) counting as +∞. With ℓ_best the best of those medians over every row of the instance (portfolio
members and tuned baselines alike) and the anchor ℓ_0 the untrained model's metric (`initial_metric`,
median over the instance's runs):

    regret = clip((ℓ − ℓ_best) / (ℓ_0 − ℓ_best), 0, 1)        failed → 1
    if ℓ_0 ≤ ℓ_best (nothing was learned): regret 0 for every finite ℓ

Regret 0 is the best anything reached; regret 1 is no better than not training. A run is *catastrophic*
when it diverged or its own (per-seed) regret is ≥ 0.5. The virtual best solver (VBS) takes, per
instance, the portfolio member of least regret; the single best solver (SBS) is the member of least mean
regret on the training instances; a selector's *gap closed* is the ASlib measure
(regret_SBS − regret_selector) / (regret_SBS − regret_VBS), means over the test instances
(Lindauer et al., "The algorithm selection competitions 2015 and 2017", AIJ 2019).

    table = regret_table(runs)            # runs: the meta-dataset's DataFrame (select.metadata.read_runs)
    table.regret.loc["letter-logreg(...)", "adamw"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lrcontrol.errors import LRControlError

#: member names that start with these are tuned baselines (their cost is the whole search), not members
BASELINE_PREFIXES = ("grid:", "mfhpo:")
#: a run with regret at least this (or diverged) is catastrophic
CATASTROPHIC_REGRET = 0.5
#: the columns the regret needs from the meta-dataset
REQUIRED_COLUMNS = ("instance", "member", "seed", "diverged", "final_metric", "initial_metric", "higher_is_better")


def is_baseline(member: str) -> bool:
    """A tuned baseline's row (`grid:…`, `mfhpo:…`) rather than a portfolio member's."""
    return member.startswith(BASELINE_PREFIXES)


def oriented(values: pd.Series | np.ndarray, higher_is_better: pd.Series | np.ndarray) -> np.ndarray:
    """Scores with lower = better: v, or −v where higher is better."""
    values = np.asarray(values, dtype=float)
    return np.where(np.asarray(higher_is_better, dtype=bool), -values, values)


def normalised(loss: np.ndarray, best: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The regret of oriented scores `loss` given the instance's best and anchor (broadcasts)."""
    loss, best, anchor = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (loss, best, anchor)))
    span = anchor - best
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(span > 0, (loss - best) / np.where(span > 0, span, 1.0), 0.0)
    return np.where(np.isfinite(loss), np.clip(raw, 0.0, 1.0), 1.0)


@dataclass(frozen=True)
class RegretTable:
    """The meta-dataset's outcomes, instance × member (members and baselines as columns).

    regret: normalised regret of the member's median run. diverged: fraction of its seeds that diverged.
    catastrophic: fraction of its seeds that diverged or had regret ≥ 0.5. cost: full-run equivalents
    (1 for a member; a baseline's whole search). best / anchor: the instance's ℓ_best and ℓ_0 (oriented),
    for scoring other outcomes (racing) on the same scale."""

    regret: pd.DataFrame
    diverged: pd.DataFrame
    catastrophic: pd.DataFrame
    cost: pd.DataFrame
    best: pd.Series
    anchor: pd.Series
    members: list[str]
    baselines: list[str]

    @property
    def instances(self) -> list[str]:
        return list(self.regret.index)

    def member_regret(self) -> pd.DataFrame:
        """Regret of the portfolio members only (what a selector learns from)."""
        return self.regret[self.members]

    def vbs(self) -> pd.Series:
        """Per instance, the portfolio member of least regret (first in portfolio order on ties)."""
        return self.member_regret().idxmin(axis=1)

    def regret_of(self, instance: str, loss: float) -> float:
        """The regret of an oriented score `loss` on `instance` (e.g. a race's outcome)."""
        return float(normalised(np.array([loss]), self.best[instance], self.anchor[instance])[0])


def check_runs(runs: pd.DataFrame) -> None:
    """An empty meta-dataset, or one missing columns the regret needs, is an input error."""
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise LRControlError(f"the meta-dataset lacks the column(s) {', '.join(missing)}; rebuild it")
    if runs.empty:
        raise LRControlError("the meta-dataset has no runs; build it first (lrcontrol select build)")
    if not (~runs["member"].map(is_baseline)).any():
        raise LRControlError("the meta-dataset has no portfolio member's runs, only baselines; build it first")


def regret_table(runs: pd.DataFrame, members: Sequence[str] | None = None) -> RegretTable:
    """The regret of every (instance, member) of the meta-dataset `runs` (one row per finished run).

    members: the portfolio members to keep, in this order (default: every non-baseline member in the
    order they first appear). Every baseline is kept. An instance where a kept member has no run is an
    error: a selector could choose it and no outcome would exist."""
    check_runs(runs)
    present = list(dict.fromkeys(m for m in runs["member"] if not is_baseline(m)))
    if members is None:
        members = present
    else:
        unknown = [m for m in members if m not in present]
        if unknown:
            raise LRControlError(f"unknown member(s) {', '.join(unknown)}: the meta-dataset has {', '.join(present)}")
        members = list(members)
    baselines = list(dict.fromkeys(m for m in runs["member"] if is_baseline(m)))
    runs = runs[runs["member"].isin(members + baselines)].copy()
    failed = runs["diverged"].astype(bool) | runs["final_metric"].isna()
    loss = oriented(runs["final_metric"], runs["higher_is_better"])
    runs["loss"] = np.where(failed, np.inf, loss)
    runs["failed"] = failed
    runs["anchor"] = oriented(runs["initial_metric"], runs["higher_is_better"])

    grouped = runs.groupby(["instance", "member"], sort=False)
    median = grouped["loss"].median().unstack("member")
    instances = list(dict.fromkeys(runs["instance"]))
    median = median.reindex(index=instances, columns=members + baselines)
    absent = median[members].isna()
    if absent.to_numpy().any():
        instance, member = next((i, m) for i in instances for m in members if absent.loc[i, m])
        raise LRControlError(f"member {member} has no run on instance {instance}; complete the meta-dataset")
    best = median.min(axis=1, skipna=True)
    anchor = runs.groupby("instance", sort=False)["anchor"].median().reindex(instances)
    if anchor.isna().any():
        raise LRControlError(f"instance {anchor[anchor.isna()].index[0]} has no initial_metric; rebuild it")

    regret = pd.DataFrame(
        normalised(median.to_numpy(), best.to_numpy()[:, None], anchor.to_numpy()[:, None]),
        index=median.index,
        columns=median.columns,
    ).where(median.notna())
    # per-seed regret on the same scale decides which runs were catastrophic
    runs["run_regret"] = normalised(
        runs["loss"].to_numpy(), best.loc[runs["instance"]].to_numpy(), anchor.loc[runs["instance"]].to_numpy()
    )
    runs["catastrophic"] = runs["diverged"].astype(bool) | (runs["run_regret"] >= CATASTROPHIC_REGRET)
    regrouped = runs.groupby(["instance", "member"], sort=False)

    def frame(series: pd.Series) -> pd.DataFrame:
        return series.unstack("member").reindex(index=instances, columns=members + baselines)

    cost = frame(regrouped["cost"].mean()) if "cost" in runs.columns else None
    if cost is None:
        cost = pd.DataFrame(1.0, index=regret.index, columns=regret.columns)
    cost[members] = cost[members].fillna(1.0)
    return RegretTable(
        regret=regret,
        diverged=frame(regrouped["diverged"].mean().astype(float)),
        catastrophic=frame(regrouped["catastrophic"].mean().astype(float)),
        cost=cost,
        best=best,
        anchor=anchor,
        members=members,
        baselines=baselines,
    )


def worst_decile(values: Sequence[float] | np.ndarray) -> float:
    """The mean of the worst tenth of `values` (at least one value): the tail a user fears, averaged so
    that one instance does not decide it alone."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    if ordered.size == 0:
        return float("nan")
    return float(ordered[: max(1, int(np.ceil(ordered.size / 10)))].mean())


def gap_closed(sbs: float, selector: float, vbs: float) -> float:
    """The fraction of the SBS→VBS gap a selector closes (mean regrets over the same instances); NaN when
    the single best already is the virtual best (no gap to close)."""
    gap = sbs - vbs
    return float((sbs - selector) / gap) if gap > 1e-12 else float("nan")
