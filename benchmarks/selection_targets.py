"""Issue 12's targets, measured on the meta-dataset with held-out families (or data sets).

    python benchmarks/selection_targets.py                                   # metadata/*.parquet, by family
    python benchmarks/selection_targets.py --split dataset --json

Against the virtual best of the portfolio, over the held-out instances of every fold pooled:

- the auto-style selector (the kind, parameters, features and members `select/data/selector.json` ships,
  refitted on each fold's training instances; or `--selector`) at ≤ 1.1 full runs of compute, probes included: gap closed ≥ 50 %, catastrophic rate ≤ half the single best's;
- racing (successive halving, continuing the leaders) at ≤ 2 runs: gap closed ≥ 80 %;
- both: less mean regret than MF-HPO at its cost (compared on the instances MF-HPO was tuned on).

Every selector is printed beside the target entry, so that a target met by one selector and missed by
the shipped one shows. Prints measured value, threshold, ratio (measured / threshold; ≥ 1 meets a
"≥" target, ≤ 1 a "≤" one) and hit or miss; nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ENTRY_OF_KIND = {"knn": "k-nearest (k=5)", "pairwise": "pairwise forest", "regression": "regret regression"}
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "lrcontrol" / "select" / "data" / "selector.json"


def shipped_candidate():
    """(entry name, Candidate) for the selector the package ships — its kind, parameters, features and the
    members it chooses among, refitted per fold on the training instances only — or None without a
    selector file."""
    from lrcontrol.select.evaluation import Candidate
    from lrcontrol.select.selectors import SELECTORS

    if not SHIPPED.is_file():
        return None
    data = json.loads(SHIPPED.read_text())
    kind, fitted = data["kind"], data["selector"]
    cls = SELECTORS[kind]
    params = {k: fitted[k] for k in cls._param_names() if k in fitted}
    label = ", ".join(f"{k}={v}" for k, v in params.items())
    members = tuple(fitted["members"])
    if len(members) < len(data["members"]):
        label += f"; {len(members)} of {len(data['members'])} members"
    return f"auto: shipped {kind} ({label})", Candidate(lambda: cls(**params), tuple(data["features"]), members=members)


def gap_interval(per_instance, entry: str, level: float = 0.9, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A paired bootstrap interval of `entry`'s gap closed: the held-out instances resampled with
    replacement, the SBS's, the entry's and the VBS's mean regret recomputed on each resample (the
    instances are the unit of noise: a few hundred of them cannot resolve small differences)."""
    import numpy as np

    from lrcontrol.select.evaluation import SBS, VBS

    regret = per_instance.pivot_table(index="instance", columns="entry", values="regret", aggfunc="first")
    cols = regret[[SBS, entry, VBS]].dropna().to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    sample = cols[rng.integers(0, len(cols), size=(draws, len(cols)))].mean(axis=1)  # draws × 3
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = (sample[:, 0] - sample[:, 1]) / (sample[:, 0] - sample[:, 2])
    low, high = np.nanpercentile(gaps, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def targets(per_instance, summary, auto_entry: str) -> list[dict]:
    from lrcontrol.select.evaluation import RACE, SBS

    rows = summary.set_index("entry")
    out = []

    def target(name: str, measured: float, threshold: float, at_least: bool, note: str = "") -> None:
        ok = measured >= threshold if at_least else measured <= threshold
        if threshold == 0:
            ratio = math.nan
        else:
            ratio = measured / threshold
        out.append(
            {
                "target": name,
                "measured": measured,
                "threshold": threshold,
                "direction": "≥" if at_least else "≤",
                "ratio": ratio,
                "hit": bool(ok) and not math.isnan(measured),
                "note": note,
            }
        )

    auto = rows.loc[auto_entry]
    target(f"{auto_entry}: compute (runs, probes incl.)", auto["compute"], 1.1, at_least=False)
    low, high = gap_interval(per_instance, auto_entry)
    interval = f"90 % bootstrap interval {100 * low:.0f}–{100 * high:.0f} %"
    target(f"{auto_entry}: gap closed", auto["gap_closed"], 0.5, at_least=True, note=interval)
    sbs_catastrophic = rows.loc[SBS, "catastrophic_rate"]
    target(
        f"{auto_entry}: catastrophic rate",
        auto["catastrophic_rate"],
        0.5 * sbs_catastrophic,
        at_least=False,
        note=f"half the SBS's {100 * sbs_catastrophic:.1f} %",
    )
    if RACE in rows.index:
        target("racing: compute (runs)", rows.loc[RACE, "compute"], 2.0, at_least=False)
        low, high = gap_interval(per_instance, RACE)
        interval = f"90 % bootstrap interval {100 * low:.0f}–{100 * high:.0f} %"
        target("racing: gap closed", rows.loc[RACE, "gap_closed"], 0.8, at_least=True, note=interval)
    mfhpo = [e for e in rows.index if e.startswith("mfhpo:")]
    for baseline in mfhpo:
        on = per_instance.loc[per_instance["entry"] == baseline, "instance"]
        base = float(per_instance.loc[per_instance["entry"] == baseline, "regret"].mean())
        cost = float(rows.loc[baseline, "compute"])
        for entry in (auto_entry, RACE):
            if entry not in rows.index:
                continue
            mine = per_instance[(per_instance["entry"] == entry) & per_instance["instance"].isin(on)]
            target(
                f"{entry}: mean regret vs {baseline}",
                float(mine["regret"].mean()),
                base,
                at_least=False,
                note=f"{len(on)} instances; {baseline} spends {cost:.1f} runs",
            )
    if not mfhpo:
        out.append({"target": "mean regret vs MF-HPO", "note": "no mfhpo: rows in the meta-dataset", "hit": False})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="metadata/runs.parquet")
    parser.add_argument("--features", default="metadata/features.parquet")
    parser.add_argument("--split", default="family", choices=["family", "dataset"])
    parser.add_argument("--selector", choices=sorted(ENTRY_OF_KIND), help="the auto-style selector (default: shipped)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from lrcontrol.select.evaluation import default_selectors, evaluate_instances, summarize
    from lrcontrol.select.metadata import read_features, read_runs

    selectors = default_selectors()
    shipped = None if args.selector else shipped_candidate()
    if shipped is not None:
        auto_entry = shipped[0]
        selectors[auto_entry] = shipped[1]
    else:
        auto_entry = ENTRY_OF_KIND[args.selector or "knn"]
    runs, features = read_runs(args.runs), read_features(args.features)
    per_instance, table = evaluate_instances(runs, features, args.split, selectors=selectors)
    summary = summarize(per_instance)
    result = targets(per_instance, summary, auto_entry)
    selectors = summary[summary["kind"].isin(["sbs", "vbs", "selector", "racing", "baseline"])]
    if args.json:
        print(json.dumps({"split": args.split, "auto": auto_entry, "targets": result,
                          "entries": selectors.to_dict("records")}, indent=2, default=str))  # fmt: skip
        return
    print(
        f"held out by {args.split}: {len(table.instances)} instances, {len(table.members)} members; auto = {auto_entry}"
    )
    print(f"{'entry':40} {'mean regret':>11} {'worst 10%':>9} {'gap closed':>10} {'catastr.':>8} {'runs':>6}")
    for r in selectors.to_dict("records"):
        gap = "—" if math.isnan(r["gap_closed"]) else f"{100 * r['gap_closed']:.0f} %"
        print(
            f"{r['entry']:40} {r['mean_regret']:11.3f} {r['worst_decile']:9.3f} {gap:>10} "
            f"{100 * r['catastrophic_rate']:7.1f}% {r['compute']:6.2f}"
        )
    print()
    print(f"{'target':70} {'measured':>9} {'':1} {'threshold':>9} {'ratio':>6}  result")
    for t in result:
        if "measured" not in t:
            print(f"{t['target']:70} {'':>9}   {'':>9} {'':>6}  MISS ({t['note']})")
            continue
        ratio = "—" if math.isnan(t["ratio"]) else f"{t['ratio']:.2f}"
        note = f"  ({t['note']})" if t["note"] else ""
        print(
            f"{t['target']:70} {t['measured']:9.3f} {t['direction']} {t['threshold']:9.3f} {ratio:>6}  "
            f"{'hit' if t['hit'] else 'MISS'}{note}"
        )


if __name__ == "__main__":
    main()
