"""Held-out evaluation of the selectors: leave one family (or one data set) out, never leak.

Each fold holds out every instance of one task family (`split="family"`) or of one underlying data set
(`split="dataset"`: every variant of `letter` — logreg or MLP, any batch, noise or length — leaves
together). Selectors are fitted on the other instances only (their features and regrets), the single best
solver is the member of least mean regret there, and racing's settings (its members' order, how many
enter, η) are chosen by replaying races on those training instances (`lrcontrol.select.racing_settings`).
The held-out predictions of all folds are pooled and scored:

- mean regret and worst-decile regret (mean of the worst tenth of instances), `lrcontrol.select.regret`;
- gap closed: (SBS − selector) / (SBS − VBS) on mean regret over the same instances (ASlib);
- divergence rate and catastrophic rate (diverged, or regret ≥ 0.5) over the chosen runs;
- compute in full-run equivalents: the chosen member's run (its extra steps, e.g. an LR range test,
  included; a diverged run only to where it stopped) plus the instance's probe cost for a feature-based
  selector; the simulated race's steps; a tuned baseline's whole search.

    summary = evaluate(read_runs("metadata/runs.parquet"), read_features("metadata/features.parquet"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lrcontrol.errors import LRControlError
from lrcontrol.select.racing import MAX_COST
from lrcontrol.select.racing_settings import UNTUNED, RaceBook, preferences, tune
from lrcontrol.select.regret import RegretTable, gap_closed, regret_table, worst_decile
from lrcontrol.select.selectors import KNearest, PairwiseClassifier, RegretRegression, SingleBest, feature_columns

SPLITS = ("family", "dataset")
#: a member within this regret of the instance's best counts as near-best there
NEAR_BEST = 0.05
SBS = "single best (SBS)"
VBS = "virtual best (VBS)"
RACE = "racing (≤ 2 runs)"
#: racing as it was before its settings were tuned: every member by mean training regret, η = 3
RACE_UNTUNED = "racing, untuned (all members, η=3)"
#: racing whose entrants and tie order come from the k-nearest selector's predicted regrets (probes paid),
#: with the number of entrants and η tuned for RACE
RACE_KNN = "k-nearest → racing"


@dataclass(frozen=True)
class Candidate:
    """A selector to evaluate: how to make a fresh one, and the feature columns it may read (None: all).
    It pays the instance's probe cost unless every column it reads is a static feature."""

    make: Callable[[], Any]
    columns: tuple[str, ...] | None = None
    #: choose only among members that cost one run (no LR range test's extra steps): with the probes,
    #: the whole choice then stays within ≈ 1.1 runs
    one_run: bool = False
    #: choose only among these members (None: every member; with one_run, those of them that cost one run)
    members: tuple[str, ...] | None = None

    def targets(self, table: RegretTable) -> list[str]:
        """The members this candidate chooses among on the meta-dataset `table`."""
        chosen = list(table.members) if self.members is None else [m for m in table.members if m in self.members]
        if self.one_run:
            cheap = one_run_members(table)
            chosen = [m for m in chosen if m in cheap] or chosen
        return chosen


def one_run_members(table: RegretTable) -> list[str]:
    """The members whose runs never spend extra steps (the median run costs exactly its budget)."""
    return [m for m in table.members if float(table.cost[m].median()) <= 1.0 + 1e-9]


def default_selectors() -> dict[str, Candidate]:
    """The selectors evaluated by default: name → candidate."""
    from lrcontrol.select.features import STATIC_NAMES, TRANSFER_NAMES

    return {
        # the first entry of a kind is what `lrcontrol select train --kind <kind>` fits (and auto() ships)
        "k-nearest (k=5)": Candidate(lambda: KNearest(k=5)),
        "k-nearest (k=5), static features": Candidate(lambda: KNearest(k=5), tuple(STATIC_NAMES)),
        "pairwise forest": Candidate(lambda: PairwiseClassifier(trees=8, max_depth=4)),
        "pairwise forest, one-run members": Candidate(lambda: PairwiseClassifier(trees=8, max_depth=4), one_run=True),
        # without the family/kind/model one-hots, which are constant on a held-out family
        "pairwise forest, one-run members, transferable features": Candidate(
            lambda: PairwiseClassifier(trees=8, max_depth=4), tuple(TRANSFER_NAMES), one_run=True
        ),
        "regret regression": Candidate(lambda: RegretRegression(trees=16, max_depth=6)),
    }


def _static_names() -> set[str]:
    from lrcontrol.select.features import STATIC_NAMES

    return set(STATIC_NAMES)


def instance_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """instance → family, dataset (one row per instance, in first-seen order)."""
    missing = [c for c in ("family", "dataset") if c not in runs.columns]
    if missing:
        raise LRControlError(f"the meta-dataset lacks the column(s) {', '.join(missing)}; rebuild it")
    return runs.drop_duplicates("instance").set_index("instance")[["family", "dataset"]]


def folds(groups: pd.DataFrame, split: str) -> list[tuple[str, list[str], list[str]]]:
    """(held-out group, training instances, test instances) per fold of `split` ("family" or "dataset")."""
    if split not in SPLITS:
        raise LRControlError(f"unknown split {split!r}; choose family or dataset")
    out = []
    for value in dict.fromkeys(groups[split]):
        test = groups.index[groups[split] == value].tolist()
        train = groups.index[groups[split] != value].tolist()
        if train:
            out.append((str(value), train, test))
    if not out:
        raise LRControlError(f"only one {split} in the meta-dataset; leave-one-{split}-out needs at least two")
    return out


def check_features(features: pd.DataFrame, instances: Sequence[str]) -> pd.DataFrame:
    """The features table indexed by instance; an instance without a row is an input error."""
    if "instance" not in features.columns:
        raise LRControlError("the features table has no instance column; rebuild it")
    indexed = features.drop_duplicates("instance").set_index("instance")
    missing = [i for i in instances if i not in indexed.index]
    if missing:
        raise LRControlError(
            f"no features for instance {missing[0]} ({len(missing)} of {len(instances)} missing); "
            "compute the features for every instance of the meta-dataset"
        )
    return indexed


def evaluate_instances(
    runs: pd.DataFrame,
    features: pd.DataFrame,
    split: str = "family",
    members: Sequence[str] | None = None,
    selectors: Mapping[str, Candidate | Callable[[], Any]] | None = None,
    race: bool = True,
    race_cost: float = MAX_COST,
    on_fold: Callable[[int, int, str], None] | None = None,
) -> tuple[pd.DataFrame, RegretTable]:
    """One row per (entry, held-out instance): entry, kind, fold, instance, member, regret, diverged,
    catastrophic, cost; and the regret table it was scored with. on_fold(done, total, held_out) is called
    after each fold (a progress bar)."""
    table = regret_table(runs, members)
    groups = instance_groups(runs).loc[table.instances]
    indexed = check_features(features, table.instances)
    probe_cost = indexed["probe_cost"].fillna(0.0) if "probe_cost" in indexed.columns else pd.Series(0.0, indexed.index)
    selectors = default_selectors() if selectors is None else selectors
    candidates = {n: c if isinstance(c, Candidate) else Candidate(c) for n, c in selectors.items()}
    static = _static_names()
    regrets = table.member_regret()
    rows: list[dict[str, Any]] = []

    def add(entry: str, kind: str, fold: str, instance: str, member: str, extra: float = 0.0) -> None:
        # compute: the chosen run's own cost (an LR range test's steps included; a baseline's whole search)
        rows.append(
            {
                "entry": entry,
                "kind": kind,
                "fold": fold,
                "instance": instance,
                "member": member,
                "regret": float(table.regret.loc[instance, member]),
                "diverged": float(table.diverged.loc[instance, member]),
                "catastrophic": float(table.catastrophic.loc[instance, member]),
                "cost": float(table.cost.loc[instance, member]) + extra,
            }
        )

    book = RaceBook(runs, table) if race else None
    splits = folds(groups, split)
    for done, (fold, train, test) in enumerate(splits, start=1):
        sbs = SingleBest().fit(indexed.loc[train], regrets.loc[train])
        chosen, probes = {}, {}
        for name, candidate in candidates.items():
            columns = [c for c in (candidate.columns or indexed.columns) if c in indexed.columns]
            if not feature_columns(indexed[columns]):
                continue  # none of its features is in the table: nothing to evaluate
            usable = indexed[columns]
            targets = regrets.loc[train, candidate.targets(table)]
            selector = candidate.make().fit(usable.loc[train], targets)
            chosen[name] = selector.choose_many(usable.loc[test])
            probes[name] = not set(selector.inputs.columns) <= static
        if race:
            assert book is not None
            settings, orders = tune(book, train, max_cost=race_cost)
            untuned = UNTUNED.members(preferences(regrets.loc[train]))
            knn = KNearest(k=5).fit(indexed.loc[train], regrets.loc[train])
            knn_scores = knn.scores(knn.inputs.matrix(indexed.loc[test, knn.inputs.columns].to_numpy(dtype=float)))
        for position, instance in enumerate(test):
            add(SBS, "sbs", fold, instance, sbs.choose({}))
            add(VBS, "vbs", fold, instance, str(regrets.loc[instance].idxmin()))
            for name, choices in chosen.items():
                add(name, "selector", fold, instance, choices[position], float(probe_cost[instance]) * probes[name])
            for member in table.members:
                add(member, "member", fold, instance, member)
            for baseline in table.baselines:
                if pd.notna(table.regret.loc[instance, baseline]):
                    add(baseline, "baseline", fold, instance, baseline)
            if race:
                racing = {"kind": "racing", "fold": fold, "instance": instance}
                outcome = book.outcome(instance, settings.members(orders), settings.eta, race_cost)
                rows.append({"entry": RACE, **racing, **outcome, "settings": settings.label()})
                outcome = book.outcome(instance, untuned, UNTUNED.eta, race_cost)
                rows.append({"entry": RACE_UNTUNED, **racing, **outcome, "settings": UNTUNED.label()})
                # the probes come first: the race gets what is left of the budget
                ranked = [knn.members[i] for i in np.argsort(knn_scores[position], kind="stable")]
                ranked = ranked if settings.entrants is None else ranked[: settings.entrants]
                probe = float(probe_cost[instance])
                outcome = book.outcome(instance, ranked, settings.eta, race_cost - probe)
                rows.append({"entry": RACE_KNN, **racing, **outcome, "cost": outcome["cost"] + probe})
        if on_fold is not None:
            on_fold(done, len(splits), fold)
    return pd.DataFrame(rows), table


def summarize(per_instance: pd.DataFrame) -> pd.DataFrame:
    """One row per entry: kind, instances, mean_regret, worst_decile, gap_closed, divergence_rate,
    catastrophic_rate, compute (mean full-run equivalents). Gap closed compares with the SBS and VBS on
    the entry's own instances (a baseline may lack some)."""
    regret = per_instance.pivot_table(index="instance", columns="entry", values="regret", aggfunc="first")
    out = []
    for entry, rows in per_instance.groupby("entry", sort=False):
        on = rows["instance"]
        mean = float(rows["regret"].mean())
        out.append(
            {
                "entry": entry,
                "kind": rows["kind"].iloc[0],
                "instances": len(rows),
                "mean_regret": mean,
                "worst_decile": worst_decile(rows["regret"]),
                "gap_closed": gap_closed(float(regret.loc[on, SBS].mean()), mean, float(regret.loc[on, VBS].mean())),
                "divergence_rate": float(rows["diverged"].mean()),
                "catastrophic_rate": float(rows["catastrophic"].mean()),
                "compute": float(rows["cost"].mean()),
            }
        )
    order = {"vbs": 0, "sbs": 1, "selector": 2, "racing": 3, "baseline": 4, "member": 5}
    summary = pd.DataFrame(out)
    summary["_order"] = summary["kind"].map(order)
    return summary.sort_values(["_order", "mean_regret"], kind="stable").drop(columns="_order").reset_index(drop=True)


def evaluate(
    runs: pd.DataFrame,
    features: pd.DataFrame,
    split: str = "family",
    members: Sequence[str] | None = None,
    selectors: Mapping[str, Candidate | Callable[[], Any]] | None = None,
    race: bool = True,
) -> pd.DataFrame:
    """The held-out table: one row per selector, racing, SBS, VBS, portfolio member and tuned baseline."""
    per_instance, _ = evaluate_instances(runs, features, split, members, selectors, race)
    return summarize(per_instance)


def complementarity(table: RegretTable, near: float = NEAR_BEST) -> pd.DataFrame:
    """Why each member is in: greedy forward selection of the portfolio by how much each member lowers the
    VBS's mean regret, with per member its own mean regret, the instances where it is the best member
    (first on ties) and where it is near-best (regret within `near` of the best member's).

    Columns: member, rank (order of greedy selection), vbs_regret (mean VBS regret of the first `rank`
    members), gain (how much adding it lowered that), mean_regret, best, near_best."""
    regrets = table.member_regret()
    matrix = regrets.to_numpy(dtype=float)
    best_member = regrets.idxmin(axis=1)
    least = matrix.min(axis=1, keepdims=True)
    chosen: list[int] = []
    current = np.full(len(matrix), np.inf)
    previous = 1.0  # before any member: regret 1, as good as not training
    rows = []
    while len(chosen) < matrix.shape[1]:
        candidates = [j for j in range(matrix.shape[1]) if j not in chosen]
        scores = [float(np.mean(np.minimum(current, matrix[:, j]))) for j in candidates]
        j = candidates[int(np.argmin(scores))]  # first on ties: portfolio order
        current = np.minimum(current, matrix[:, j])
        name = table.members[j]
        rows.append(
            {
                "member": name,
                "rank": len(chosen) + 1,
                "vbs_regret": float(np.mean(current)),
                "gain": previous - float(np.mean(current)),
                "mean_regret": float(matrix[:, j].mean()),
                "best": int((best_member == name).sum()),
                "near_best": int((matrix[:, j] <= least[:, 0] + near).sum()),
            }
        )
        previous = float(np.mean(current))
        chosen.append(j)
    return pd.DataFrame(rows)
