"""A tiny synthetic meta-dataset with a known best member per region of feature space (for the selection
tests): three members, four families of three data sets each, two features that decide and one that is
noise (with missing values), three seeds, curves for racing and two tuned baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd

MEMBERS = ("alpha", "beta", "gamma")


def best_member(f1: float, f2: float) -> str:
    """The known best: alpha in the low corner, beta on the right half, gamma elsewhere."""
    if f1 >= 0.5:
        return "beta"
    return "alpha" if f2 < 0.5 else "gamma"


def meta_dataset(seed: int = 0, variants: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, features) in the shipped meta-dataset's schema."""
    rng = np.random.default_rng(seed)
    runs, features = [], []
    grid = [i / 20 for i in range(21)]
    for family in ("fa", "fb", "fc", "fd"):
        for d in range(3):
            dataset = f"{family}-data{d}"
            for v in range(variants):
                instance = f"{dataset}(v={v})"
                # keep clear of the region borders so that the known best is unambiguous
                f1 = float(rng.choice([rng.uniform(0.05, 0.4), rng.uniform(0.6, 0.95)]))
                f2 = float(rng.choice([rng.uniform(0.05, 0.4), rng.uniform(0.6, 0.95)]))
                noise = float(rng.normal()) if rng.uniform() > 0.2 else float("nan")
                features.append(
                    {
                        "instance": instance,
                        "family": family,
                        "dataset": dataset,
                        "f1": f1,
                        "f2": f2,
                        "noise": noise,
                        "probe_cost": 0.05,
                    }
                )
                best = best_member(f1, f2)
                for member in MEMBERS:
                    for s in range(3):
                        final = (0.1 if member == best else 0.4 + 0.4 * rng.uniform()) + 0.01 * rng.uniform()
                        # gamma blows up in the high corner unless it is the best there
                        diverged = member == "gamma" and best == "beta" and f2 > 0.5
                        values = [final + (1.0 - final) * (1.0 - t) ** 2 for t in grid]
                        frac = grid
                        if diverged:
                            frac, values = grid[:5], values[:5]
                        runs.append(
                            {
                                "instance": instance,
                                "family": family,
                                "dataset": dataset,
                                "member": member,
                                "spec": f"{member}()",
                                "seed": s,
                                "diverged": diverged,
                                "final_metric": float("nan") if diverged else final,
                                "initial_metric": 1.0,
                                "higher_is_better": False,
                                "metric": "loss",
                                "budget": 100,
                                "cost": 0.25 if diverged else 1.0,
                                "wall_time": 1.0,
                                "eval_frac": frac,
                                "eval_values": values,
                            }
                        )
                for baseline, cost, final in (("grid:alpha", 9.0, 0.12), ("mfhpo:alpha", 5.0, 0.15)):
                    runs.append(
                        {
                            "instance": instance,
                            "family": family,
                            "dataset": dataset,
                            "member": baseline,
                            "spec": "alpha()",
                            "seed": 0,
                            "diverged": False,
                            "final_metric": final,
                            "initial_metric": 1.0,
                            "higher_is_better": False,
                            "metric": "loss",
                            "budget": 100,
                            "cost": cost,
                            "wall_time": 1.0,
                            "eval_frac": [0.0, 1.0],
                            "eval_values": [1.0, final],
                        }
                    )
    return pd.DataFrame(runs), pd.DataFrame(features)
