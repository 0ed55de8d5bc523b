"""Hand-made validation curves for racing tests: runs whose race outcome is known (a late bloomer that is
the best member everywhere but the worst until 20 % of the budget; specialists, each the best somewhere)."""

from __future__ import annotations

import pandas as pd

GRID_POINTS = [i / 20 for i in range(21)]


def curve_rows(instance: str, family: str, finals: dict[str, float], late: str | None = None) -> list[dict]:
    """One run per member (seeds 0 and 1): validation loss falling smoothly from 1 to its final — except
    `late`, which stays at 0.9 until 20 % of the budget and then drops to its final (a late bloomer)."""
    rows = []
    for member, final in finals.items():
        if member == late:
            values = [1.0 if t == 0 else (0.9 if t < 0.2 else final) for t in GRID_POINTS]
        else:
            values = [final + (1.0 - final) * (1.0 - t) ** 2 for t in GRID_POINTS]
        for seed in (0, 1):
            rows.append(
                {
                    "instance": instance, "family": family, "dataset": instance, "member": member,
                    "spec": f"{member}()", "seed": seed, "diverged": False, "final_metric": values[-1],
                    "initial_metric": 1.0, "higher_is_better": False, "cost": 1.0,
                    "eval_frac": GRID_POINTS, "eval_values": values,
                }
            )  # fmt: skip
    return rows


def late_bloomer_runs() -> pd.DataFrame:
    """Six members on twelve instances; `late` is the best everywhere but the worst until 20 %."""
    rows = []
    for k in range(12):
        finals = {"late": 0.1, **{f"m{j}": 0.3 + 0.03 * j + 0.001 * k for j in range(1, 6)}}
        rows += curve_rows(f"inst{k}", f"fam{k % 4}", finals, late="late")
    return pd.DataFrame(rows)


def specialist_runs() -> pd.DataFrame:
    """Six members, each the best on two of twelve instances, with faithful curves: every member must race."""
    rows = []
    for k in range(12):
        finals = {f"m{j}": 0.1 if j == k % 6 else 0.5 + 0.01 * j for j in range(6)}
        rows += curve_rows(f"inst{k}", f"fam{k % 4}", finals)
    return pd.DataFrame(rows)
