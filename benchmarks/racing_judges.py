"""How much racing would gain from a better judge, and why the judges that can be built do not get it.

    python benchmarks/racing_judges.py                        # held out by family; figure docs/racing-ranks.png
    python benchmarks/racing_judges.py --learned              # also the learned pairwise judge (~8 min)
    python benchmarks/racing_judges.py --split dataset --json

Issue 12 asks racing (successive halving over the portfolio, ≤ 2 runs) to close ≥ 80 % of the single
best → virtual best gap held out by family. A race can miss for two reasons: the members it starts do not
include the best one, or its judge — the validation metric at a rung — drops the member that would have
finished best. This script separates them on the meta-dataset's stored curves (`simulate` with a `judge`):

- **rank agreement**: per family and fraction of the budget, Kendall's τ between the members' validation
  scores there and their final scores, and how often the member leading there finishes in the top two —
  what any judge of early scores has to work with;
- **ceilings**, held out like `lrcontrol select evaluate`: the race with the settings tuned on the
  training folds, judged by validation (what ships), by the final scores (`oracle_judge`: the ceiling of
  any judge for those entrants) and, with `--learned`, by a pairwise model of partial curves trained on
  the training folds; and every member that fits (η = 3) judged by the oracle — the ceiling of racing
  within 2 runs.

Nothing is timed; the numbers are mean normalised regret and gap closed (docs/selection.md).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: the budget fractions the rank agreement is pooled over (a rung falls in one of them)
BINS = (0.0, 0.1, 0.2, 0.35, 0.55, 0.8, 1.0)
#: the race that ships: settings tuned on the training folds, judged by the validation metric
SHIPPED_ENTRY = "racing as shipped (tuned entrants, validation judge)"


def rank_agreement(book, groups: pd.DataFrame) -> pd.DataFrame:
    """One row per (instance, seed, evaluation before the end): family, frac, Kendall's τ between every
    member's validation score there and its final score (finite pairs only, ≥ 4 members), and whether the
    member leading there finishes in the top two."""
    from scipy.stats import kendalltau

    rows = []
    for instance, seeds in book.curves.items():
        for curves in seeds.values():
            members = list(curves)
            final = np.array([curves[m].final for m in members])
            grid = max((curves[m].frac for m in members), key=len)
            for frac in grid[(grid > 0) & (grid < 1)]:
                now = np.array([curves[m].score_at(float(frac)) for m in members])
                ok = np.isfinite(now) & np.isfinite(final)
                if ok.sum() < 4:
                    continue
                leader = int(np.argmin(np.where(ok, now, np.inf)))
                rows.append(
                    {
                        "family": groups.loc[instance, "family"],
                        "frac": float(frac),
                        "tau": float(kendalltau(now[ok], final[ok]).statistic),
                        "leader_top2": bool((final[ok] < final[leader]).sum() < 2),
                    }
                )
    out = pd.DataFrame(rows)
    out["bin"] = pd.cut(out["frac"], BINS)
    return out


class PairwiseJudge:
    """A judge learned from partial curves: for two members alive at a rung, a gradient-boosted
    classifier (scikit-learn) of "the first finishes better", from features that mean the same on every
    task — the fraction of the budget, the two scores and their last improvements relative to the span
    from the untrained score to the better of them, and which two members they are — trained on every
    pair of `racers` at every evaluation up to 60 % of the budget on the training instances, each pair
    weighted by how much its final scores differ (in regret). A member's score at a rung is minus the sum
    of its win probabilities against the others alive."""

    def __init__(self, members: Sequence[str]) -> None:
        self.members = list(members)
        self.model = None

    def _row(self, curves: Mapping, a: str, b: str, frac: float, anchor: float) -> np.ndarray | None:
        va, vb = curves[a].score_at(frac), curves[b].score_at(frac)
        if not (math.isfinite(va) and math.isfinite(vb)):
            return None
        span = anchor - min(va, vb)
        span = span if math.isfinite(span) and span > 1e-12 else abs(anchor) + 1e-12
        gains = []
        for m, v in ((a, va), (b, vb)):
            before = curves[m].frac[curves[m].frac < frac - 1e-9]
            previous = curves[m].score_at(float(before.max())) if before.size else math.nan
            gains.append((previous - v) / span if math.isfinite(previous) else 0.0)
        which = np.zeros(len(self.members))
        which[self.members.index(a)] += 1.0
        which[self.members.index(b)] -= 1.0
        head = [frac, math.log(frac), (va - vb) / span, (anchor - va) / span, (anchor - vb) / span]
        return np.concatenate([head, gains, [gains[0] - gains[1]], which])

    @staticmethod
    def _anchor(curves: Mapping) -> float:
        """The untrained model's score: the median over the members of their evaluation at step 0."""
        starts = [c.values[0] for c in curves.values() if c.frac.size and c.frac[0] == 0 and math.isfinite(c.values[0])]
        return float(np.median(starts)) if starts else math.nan

    def fit(self, book, train: Sequence[str], seed: int = 0) -> PairwiseJudge:
        from sklearn.ensemble import HistGradientBoostingClassifier

        x, y, w = [], [], []
        for instance in train:
            span = float(book.table.anchor[instance] - book.table.best[instance])
            span = span if span > 1e-12 else 1.0
            for curves in book.curves[instance].values():
                anchor = self._anchor(curves)
                racers = [m for m in self.members if m in curves]
                grid = max((curves[m].frac for m in racers), key=len)
                for frac in grid[(grid > 0) & (grid <= 0.6)]:
                    for i, a in enumerate(racers):
                        for b in racers[i + 1 :]:
                            fa, fb = curves[a].final, curves[b].final
                            ab, ba = (
                                self._row(curves, a, b, float(frac), anchor),
                                self._row(curves, b, a, float(frac), anchor),
                            )
                            if fa == fb or ab is None:
                                continue
                            both = math.isfinite(fa) and math.isfinite(fb)
                            weight = min(1.0, abs(fa - fb) / span) if both else 1.0
                            x += [ab, ba]
                            y += [int(fa < fb), int(fb < fa)]
                            w += [weight, weight]
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=4, random_state=seed)
        self.model = model.fit(np.array(x), np.array(y), sample_weight=np.array(w))
        return self

    def __call__(self, curves: Mapping, alive: Sequence[str], frac: float) -> dict[str, float]:
        anchor = self._anchor(curves)
        scores = dict.fromkeys(alive, math.inf)
        live = [m for m in alive if math.isfinite(curves[m].score_at(frac))]
        pairs = [(a, b) for a in live for b in live if a != b]
        rows = [self._row(curves, a, b, frac, anchor) for a, b in pairs]
        if pairs:
            wins = self.model.predict_proba(np.array(rows))[:, 1]
            for m in live:
                scores[m] = -float(sum(p for (a, _), p in zip(pairs, wins) if a == m))
        return scores


def ceilings(runs: pd.DataFrame, split: str = "family", learned: bool = False, progress=None) -> pd.DataFrame:
    """One row per (entry, held-out instance): regret, cost, and the fold's single best and virtual best
    regrets (for the gap closed)."""
    from lrcontrol.select.evaluation import folds, instance_groups
    from lrcontrol.select.racing import oracle_judge
    from lrcontrol.select.racing_settings import UNTUNED, RaceBook, preferences, tune
    from lrcontrol.select.regret import regret_table

    table = regret_table(runs)
    book = RaceBook(runs, table)
    regrets = table.member_regret()
    rows = []
    splits = folds(instance_groups(runs).loc[table.instances], split)
    for done, (fold, train, test) in enumerate(splits, start=1):
        settings, orders = tune(book, train)
        racers = settings.members(orders)
        every = UNTUNED.members(preferences(regrets.loc[train]))
        sbs = str(regrets.loc[train].mean().idxmin())
        entries = {
            SHIPPED_ENTRY: (racers, settings.eta, None),
            "tuned entrants, oracle judge": (racers, settings.eta, oracle_judge),
            "every member that fits (η=3), validation judge": (every, UNTUNED.eta, None),
            "every member that fits (η=3), oracle judge": (every, UNTUNED.eta, oracle_judge),
        }
        if learned:
            judge = PairwiseJudge(racers).fit(book, train)
            entries["tuned entrants, learned pairwise judge"] = (racers, settings.eta, judge)
        for instance in test:
            for entry, (members, eta, judge) in entries.items():
                outcome = book.outcome(instance, members, eta, judge=judge)
                rows.append(
                    {
                        "entry": entry,
                        "fold": fold,
                        "instance": instance,
                        "regret": outcome["regret"],
                        "cost": outcome["cost"],
                        "sbs": float(regrets.loc[instance, sbs]),
                        "vbs": float(regrets.loc[instance].min()),
                    }
                )
        if progress is not None:
            progress(done, len(splits), fold)
    return pd.DataFrame(rows)


def budget_curve(
    runs: pd.DataFrame, split: str = "family", budgets: Sequence[float] = (1.25, 1.5, 2.0, 3.0, 4.0)
) -> pd.DataFrame:
    """Racing held out with its compute cap `max_cost` raised or lowered (settings tuned per fold under
    that cap, validation judge): one row per (cap, held-out instance), as `ceilings`, plus the
    catastrophic rate — what each extra run buys."""
    from lrcontrol.select.evaluation import folds, instance_groups
    from lrcontrol.select.racing_settings import RaceBook, tune
    from lrcontrol.select.regret import regret_table

    table = regret_table(runs)
    book = RaceBook(runs, table)
    regrets = table.member_regret()
    rows = []
    for fold, train, test in folds(instance_groups(runs).loc[table.instances], split):
        sbs = str(regrets.loc[train].mean().idxmin())
        for cap in budgets:
            settings, orders = tune(book, train, max_cost=cap)
            for instance in test:
                outcome = book.outcome(instance, settings.members(orders), settings.eta, cap)
                rows.append(
                    {
                        "entry": f"racing ≤ {cap:g} runs",
                        "fold": fold,
                        "instance": instance,
                        "regret": outcome["regret"],
                        "cost": outcome["cost"],
                        "catastrophic": outcome["catastrophic"],
                        "sbs": float(regrets.loc[instance, sbs]),
                        "vbs": float(regrets.loc[instance].min()),
                    }
                )
    return pd.DataFrame(rows)


def summary(per_instance: pd.DataFrame) -> pd.DataFrame:
    """Per entry: mean regret, gap closed (ASlib: (SBS − entry) / (SBS − VBS)), mean compute."""
    from lrcontrol.select.regret import gap_closed

    out = per_instance.groupby("entry", sort=False).agg(
        regret=("regret", "mean"), sbs=("sbs", "mean"), vbs=("vbs", "mean"), cost=("cost", "mean")
    )
    out["gap_closed"] = [gap_closed(r.sbs, r.regret, r.vbs) for r in out.itertuples()]
    return out[["regret", "gap_closed", "cost", "sbs", "vbs"]]


def figure(agreement: pd.DataFrame, path: Path) -> None:
    """Kendall's τ (early vs final ranks) and the leader's chance to finish in the top two, by fraction
    of the budget, one line per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = {b: (b.left + b.right) / 2 for b in agreement["bin"].cat.categories}
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), constrained_layout=True)
    for ax, column, label in (
        (axes[0], "tau", "Kendall's τ, scores there vs final"),
        (axes[1], "leader_top2", "leader there finishes in the top two"),
    ):
        for family, rows in agreement.groupby("family", sort=True):
            mean = rows.groupby("bin", observed=True)[column].mean()
            ax.plot([centre[b] for b in mean.index], mean.to_numpy(), marker="o", label=family)
        ax.set_xlabel("fraction of the budget (a rung)")
        ax.set_ylabel(label)
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    axes[1].yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].legend(title="family", fontsize=8)
    fig.suptitle("How well a race's early validation scores rank the members as they finish (13 members)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "metadata" / "runs.parquet")
    parser.add_argument("--split", choices=("family", "dataset"), default="family")
    parser.add_argument(
        "--learned", action="store_true", help="also the learned pairwise judge (slow: a model per fold)"
    )
    parser.add_argument(
        "--figure", default=str(ROOT / "docs" / "racing-ranks.png"), help="where to draw it; '' for no figure"
    )
    parser.add_argument("--budgets", default="", help="also racing at these compute caps, e.g. 1.25,1.5,2,3,4 (runs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--budgets takes numbers separated by commas, e.g. 1.5,2,3; got {args.budgets!r}")
    if any(b < 1 for b in budgets):
        parser.error("every --budgets value must be ≥ 1 (the winner's full run)")
    if not args.runs.is_file():
        parser.error(f"no meta-dataset at {args.runs}; build it with lrcontrol select build or pass --runs")

    from lrcontrol.select.evaluation import instance_groups
    from lrcontrol.select.racing_settings import RaceBook
    from lrcontrol.select.regret import regret_table

    runs = pd.read_parquet(args.runs)
    table = regret_table(runs)
    agreement = rank_agreement(RaceBook(runs, table), instance_groups(runs).loc[table.instances])
    by_bin = agreement.pivot_table(
        index="family", columns="bin", values=["tau", "leader_top2"], aggfunc="mean", observed=True
    )
    pooled = agreement.groupby("bin", observed=True)[["tau", "leader_top2"]].mean()
    if args.figure:
        figure(agreement, Path(args.figure))
    per_instance = ceilings(
        runs,
        args.split,
        args.learned,
        lambda d, n, f: print(f"fold {d}/{n} ({f})", flush=True) if not args.json else None,
    )
    table_out = summary(per_instance)
    if budgets:
        curve = budget_curve(runs, args.split, budgets)
        table_out = pd.concat(
            [table_out, summary(curve).join(curve.groupby("entry", sort=False)["catastrophic"].mean())]
        )
    if args.json:
        print(
            json.dumps(
                {
                    "split": args.split,
                    "agreement": {str(b): {k: float(v) for k, v in row.items()} for b, row in pooled.iterrows()},
                    "entries": {
                        e: {k: float(v) for k, v in row.items() if pd.notna(v)} for e, row in table_out.iterrows()
                    },
                },
                indent=2,
            )
        )
        return 0
    print(f"\nRank agreement (pooled over {len(agreement)} rungs-to-be, every family):")
    print(pooled.round(2).to_string())
    print("\nBy family, Kendall's τ:")
    print(by_bin["tau"].round(2).to_string())
    print("\nBy family, leader finishes in the top two:")
    print(by_bin["leader_top2"].round(2).to_string())
    print(
        f"\nHeld out by {args.split} (regret: mean normalised regret; gap closed: of the single best → virtual best gap):"
    )
    shown = table_out.copy()
    shown["gap_closed"] = [f"{100 * g:.0f} %" if pd.notna(g) else "—" for g in shown["gap_closed"]]
    print(shown.round(3).to_string(na_rep="—"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
