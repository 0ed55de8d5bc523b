"""Racing (issue 12): successive-halving plans within 2 runs, the simulation on stored curves, and a live
race through the one-run executor that continues the leaders from their checkpoints — same winner,
same score, same cost as the simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_meta import meta_dataset

from lrcontrol.bench import LocalExecutor, run
from lrcontrol.select.racing import affordable, cost_of, entrants, plan, race, simulate
from lrcontrol.tasks import get_task


@pytest.mark.parametrize("n", [2, 3, 4, 6, 9, 12, 16])
@pytest.mark.parametrize("step", [None, 0.05, 0.1])
def test_plans_halve_to_one_member_at_the_full_budget_within_two_runs(n, step):
    grid = None if step is None else np.arange(0, 1 + 1e-9, step)
    rungs = plan(n, grid=grid)
    assert rungs[0].alive == n and rungs[-1].alive == 1 and rungs[-1].frac == 1.0
    assert all(a.alive >= b.alive and a.frac <= b.frac for a, b in zip(rungs, rungs[1:]))
    if grid is not None:
        assert all(np.isclose(grid, r.frac).any() for r in rungs)
    if n <= affordable(n, grid=grid):
        assert cost_of(rungs) <= 2.0 + 1e-9


def test_a_coarse_grid_races_the_longest_affordable_prefix_of_members():
    grid = np.arange(0, 1 + 1e-9, 0.25)
    n = affordable(12, grid=grid)
    assert 1 < n < 12 and cost_of(plan(n, grid=grid)) <= 2.0 + 1e-9
    assert cost_of(plan(n + 1, grid=grid)) > 2.0
    assert entrants([f"m{i}" for i in range(12)], grid=grid) == [f"m{i}" for i in range(n)]


def test_members_whose_extra_steps_do_not_fit_are_skipped_in_order_of_preference():
    names = ["a", "finder", "b", "c", "d"]
    grid = np.arange(0, 1 + 1e-9, 0.05)
    assert entrants(names, {}, grid=grid) == names
    # an LR range test costing 0.9 runs leaves no room for it in a race of two or more
    chosen = entrants(names, {"finder": 0.9}, grid=grid)
    assert chosen[0] == "a" and "finder" not in chosen and chosen == ["a", "b", "c", "d"]
    assert cost_of(plan(len(chosen), grid=grid)) <= 2.0
    assert entrants(["finder", "a"], {"finder": 3.0}) == ["finder"]  # the first always runs


def test_simulated_race_finds_the_best_member_and_skips_the_diverging_one():
    runs, _ = meta_dataset()
    instance = runs[(runs["member"].isin(["alpha", "beta", "gamma"])) & (runs["seed"] == 0)]
    for _, rows in instance.groupby("instance"):
        result = simulate(rows, ["gamma", "alpha", "beta"])
        best = rows.loc[rows["final_metric"].idxmin(), "member"]
        assert result.winner == best and result.cost <= 2.0
        assert result.loss == pytest.approx(rows["final_metric"].min())


def test_a_race_where_every_run_diverged_before_its_first_evaluation_is_judged_at_the_end():
    """Every member diverged within a few steps (beale-noisy2 in the meta-dataset): the stored curves hold
    only step 0, so no rung can cut early; the race runs two to the end and, all failed, keeps the first."""
    rows = pd.DataFrame(
        {
            "member": ["a", "b", "c"],
            "diverged": [True] * 3,
            "final_metric": [math.nan] * 3,
            "higher_is_better": [False] * 3,
            "cost": [0.013, 0.013, 0.027],
            "eval_frac": [[0.0]] * 3,
            "eval_values": [[871.1]] * 3,
        }
    )
    result = simulate(rows, ["b", "a", "c"])
    assert result.winner == "b" and result.diverged and result.loss == math.inf
    assert [r["frac"] for r in result.rungs] == [1.0, 1.0] and result.cost <= 2.0


def as_meta_row(member: str, spec: str, trajectory, task) -> dict:
    """A meta-dataset row of a full run, as the meta-dataset records it."""
    metric = task.metric
    values = [v.get(metric, math.nan) for v in trajectory.val]
    return {
        "member": member,
        "spec": spec,
        "diverged": trajectory.diverged,
        "final_metric": math.nan if trajectory.diverged else values[-1],
        "higher_is_better": task.higher_is_better,
        "cost": (trajectory.steps + trajectory.extra_steps) / trajectory.budget,
        "eval_frac": [s / trajectory.budget for s in trajectory.eval_steps],
        "eval_values": values,
    }


def test_a_live_race_continues_the_leaders_and_matches_the_simulation(tmp_path):
    """sphere-10 (smoke) over 200 steps, evaluated every 10: four members, one of which diverges."""
    members = {
        "sgd-slow": "sgd(lr=0.002)",
        "sgd-cosine": "sgd(lr=0.05) + cosine()",
        "adam": "adam(lr=0.05)",
        "sgd-huge": "sgd(lr=30)",
    }
    task, budget = get_task("sphere-10", "smoke"), 200
    full = pd.DataFrame([as_meta_row(m, s, run(task, s, 0, budget), task) for m, s in members.items()])
    assert full.loc[full["member"] == "sgd-huge", "diverged"].item()
    simulated = simulate(full, list(members))
    with LocalExecutor(workers=1, checkpoint_dir=str(tmp_path)) as executor:
        live = race("sphere-10", members, executor, seed=0, budget=budget, size="smoke")
    assert live.winner == simulated.winner
    assert live.loss == simulated.loss  # bit for bit: the continued run is the uninterrupted one
    assert live.cost == pytest.approx(simulated.cost) and live.cost <= 2.0
    assert [r["frac"] for r in live.rungs] == pytest.approx([r["frac"] for r in simulated.rungs])
    for live_rung, sim_rung in zip(live.rungs, simulated.rungs):
        assert live_rung["scores"] == sim_rung["scores"]
    assert len(live.rungs) == 3 and live.trajectory.steps == budget
