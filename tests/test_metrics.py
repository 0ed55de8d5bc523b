"""Benchmark metrics (lrcontrol.bench.metrics): every number here is computed by hand in the comments."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from lrcontrol.bench.metrics import (
    Selection,
    analysis_view,
    average_ranks,
    best_value,
    bootstrap_iqm,
    curve_auc,
    final_value,
    interquartile_mean,
    lr_grid,
    median_iqr,
    normalised_regret,
    performance_profile,
    profile_area,
    profile_ratios,
    quantile,
    run_cost,
    run_metrics,
    seed_statistics,
    steps_to_target,
    summarize,
    task_scores,
    vbs_sbs,
)
from lrcontrol.cli.display import summary_table
from lrcontrol.errors import LRControlError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def rec(task, method, lr, seed, final, higher_is_better=False, diverged=False, **fields):
    return {
        "task": task,
        "method": method,
        "lr": lr,
        "seed": seed,
        "metric": "accuracy" if higher_is_better else "loss",
        "higher_is_better": higher_is_better,
        "final_metric": final,
        "diverged": diverged,
        "budget": 100,
        "steps": 100,
        **fields,
    }


def two_tasks():
    """Task L (a loss) and task H (an accuracy), methods A, B and C at one LR, three seeds each.

    L: A 1, 2, 3 (median 2); B 4, 5, 6 (median 5); C diverges on every seed (after 50 steps).
       best run 1, worst finite run 6 → regret A (2 − 1)/5 = 0.2, B (5 − 1)/5 = 0.8, C 1.
    H: A .75, .7, .8 (median .75); B .5 ×3 (median .5); C .875, .125, .25 (median .25).
       best run .875, worst .125 → regret A .125/.75 = 1/6, B .375/.75 = 1/2, C .625/.75 = 5/6.
    """
    records = []
    for seed, (a, b) in enumerate([(1.0, 4.0), (2.0, 5.0), (3.0, 6.0)]):
        records.append(rec("L", "A", 0.1, seed, a))
        records.append(rec("L", "B", 0.1, seed, b))
        records.append(rec("L", "C", 0.1, seed, None, diverged=True, steps=50))
    for seed, (a, b, c) in enumerate([(0.75, 0.5, 0.875), (0.7, 0.5, 0.125), (0.8, 0.5, 0.25)]):
        records.append(rec("H", "A", 0.1, seed, a, higher_is_better=True))
        records.append(rec("H", "B", 0.1, seed, b, higher_is_better=True))
        records.append(rec("H", "C", 0.1, seed, c, higher_is_better=True))
    return records


# ---------------------------------------------------------------------------------------------- per run

CURVE = [(0, 2.0), (10, 1.0), (30, 0.5), (20, 0.8)]  # given out of order on purpose


def test_final_and_best_follow_the_steps_not_the_list_order():
    assert final_value(CURVE) == 0.5
    assert best_value(CURVE, higher_is_better=False) == 0.5
    assert best_value(CURVE, higher_is_better=True) == 2.0


def test_auc_is_the_trapezoid_time_average_and_holds_the_last_value_to_the_horizon():
    # trapezoids 10·1.5 + 10·0.9 + 10·0.65 = 30.5 over 30 steps
    assert curve_auc(CURVE) == pytest.approx(30.5 / 30)
    # held at 0.5 for 20 more steps: (30.5 + 10) / 50
    assert curve_auc(CURVE, horizon=50) == pytest.approx(40.5 / 50)
    assert curve_auc([(5, 3.0)]) == 3.0


def test_steps_to_target_is_the_first_evaluation_reaching_it_and_inf_if_never():
    assert steps_to_target(CURVE, 0.9, higher_is_better=False) == 20
    assert steps_to_target(CURVE, 0.1, higher_is_better=False) == math.inf
    assert steps_to_target(CURVE, 1.5, higher_is_better=True) == 0


def test_non_finite_values_make_final_and_auc_nan_but_keep_the_best_finite_value():
    curve = [(0, 1.0), (10, math.nan), (20, None)]
    assert math.isnan(final_value(curve))
    assert best_value(curve, higher_is_better=True) == 1.0
    assert math.isnan(curve_auc(curve))
    assert steps_to_target(curve, 2.0, higher_is_better=True) == math.inf


def test_an_empty_curve_has_no_values_and_never_reaches_a_target():
    metrics = run_metrics([], higher_is_better=False, target=1.0)
    assert all(math.isnan(metrics[k]) for k in ("final", "best", "auc", "initial"))
    assert metrics["steps_to_target"] == math.inf


def test_run_metrics_gives_initial_and_seconds_to_target():
    metrics = run_metrics(CURVE, higher_is_better=False, target=0.9, seconds=[0.0, 1.5, 4.5, 3.0])
    assert metrics["initial"] == 2.0
    assert metrics["steps_to_target"] == 20
    assert metrics["seconds_to_target"] == 3.0  # the wall time given with step 20
    assert math.isnan(run_metrics([(5, 1.0)], higher_is_better=False)["initial"])  # step 0 not evaluated


@pytest.mark.parametrize(
    "call",
    [
        lambda: final_value([(0, 1.0), (0, 2.0)]),
        lambda: final_value([(0,)]),
        lambda: final_value([("a", 1.0)]),
        lambda: curve_auc(CURVE, horizon=10),
        lambda: run_metrics(CURVE, False, target=1.0, seconds=[1.0]),
    ],
)
def test_malformed_curves_are_refused_with_a_clear_error(call):
    with pytest.raises(LRControlError):
        call()


def test_cost_counts_extra_steps_in_full_run_equivalents():
    assert run_cost({"budget": 100, "steps": 50, "extra_steps": 25}) == 0.75
    assert run_cost({"budget": 100, "steps": 100, "extra_steps": None}) == 1.0
    assert math.isnan(run_cost({"steps": 100}))


def test_a_record_with_a_trajectory_gets_its_curve_metrics_and_keeps_its_own():
    row = rec("L", "A", 0.1, 0, 0.5, target=0.6, initial=None, best_metric=0.5)
    row["trajectory"] = {"eval_steps": [0, 50, 100], "val": [{"loss": 2.0}, {"loss": 1.0}, {"loss": 0.5}]}
    out = analysis_view(row)
    assert out["final_metric"] == 0.5 and out["best_metric"] == 0.5 and out["initial"] == 2.0
    assert out["steps_to_target"] == 100
    assert out["auc"] == pytest.approx((50 * 1.5 + 50 * 0.75) / 100)
    assert analysis_view({**row, "auc": 0.25})["auc"] == 0.25  # a value the record gives is kept
    assert "steps_to_target" not in analysis_view({**row, "target": None})


def test_one_selection_serves_every_metric_and_must_match_the_score():
    selection = Selection.from_records(two_tasks())
    assert normalised_regret(selection) == normalised_regret(two_tasks())
    assert task_scores(selection) == task_scores(two_tasks())
    assert lr_grid(selection) == lr_grid(two_tasks()) and seed_statistics(selection) == seed_statistics(two_tasks())
    assert summarize(selection, n_bootstrap=50) == summarize(two_tasks(), n_bootstrap=50)
    assert profile_ratios(selection) == profile_ratios(two_tasks())
    with pytest.raises(LRControlError, match="ranks by 'final', not 'best'"):
        normalised_regret(selection, score="best")


def test_summarize_validates_and_selects_the_records_once(monkeypatch):
    calls = []
    select = Selection.from_records.__func__
    monkeypatch.setattr(Selection, "from_records", classmethod(lambda cls, *a: calls.append(a) or select(cls, *a)))
    summarize(two_tasks(), n_bootstrap=20)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------- statistics


def test_quantiles_are_exact_with_infinite_values():
    assert quantile([1.0, 2.0, math.inf], 0.5) == 2.0
    assert quantile([1.0, math.inf, math.inf], 0.75) == math.inf  # numpy would give NaN
    assert quantile([1.0, math.nan, 3.0], 0.5) == 2.0  # NaN dropped
    assert median_iqr([1.0, 2.0, 3.0, 4.0]) == {"median": 2.5, "q1": 1.75, "q3": 3.25, "iqr": 1.5}
    assert median_iqr([math.inf, math.inf])["iqr"] == 0.0


def test_interquartile_mean_cuts_a_quarter_from_each_end():
    assert interquartile_mean([1.0, 1.0, 0.4, 0.0, 0.1, 0.2, 0.3, 1.0]) == pytest.approx((0.2 + 0.3 + 0.4 + 1.0) / 4)
    assert interquartile_mean([3.0, 1.0, 2.0]) == 2.0  # n < 4: nothing to cut


def test_bootstrap_is_deterministic_for_a_seed_and_differs_across_seeds():
    groups = [[0.1, 0.5, 0.2, 0.9, 0.3], [0.0, 0.4, 0.7]]
    first = bootstrap_iqm(groups, n_bootstrap=500, seed=3)
    assert first == bootstrap_iqm(groups, n_bootstrap=500, seed=3)
    assert first[1:] != bootstrap_iqm(groups, n_bootstrap=500, seed=4)[1:]
    iqm, low, high = first
    assert iqm == interquartile_mean([0.1, 0.5, 0.2, 0.9, 0.3, 0.0, 0.4, 0.7])
    assert low < iqm < high


def test_bootstrap_is_stratified_by_task():
    # Every replicate keeps four 0s and four 1s, so the IQM is always 0.5; a pooled bootstrap would vary.
    assert bootstrap_iqm([[0.0] * 4, [1.0] * 4], n_bootstrap=200, seed=0) == (0.5, 0.5, 0.5)


# ---------------------------------------------------------------------------------------------- per task


def test_seed_statistics_count_a_diverged_seed_at_the_worst_end():
    records = [rec("L", "A", 0.1, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    records.append(rec("L", "A", 0.1, 3, None, diverged=True))
    (row,) = seed_statistics(records)
    # [1, 2, 3, ∞]: median 2.5, q1 at position 0.75 → 1.75, q3 at position 2.25 → ∞
    assert (row["median"], row["q1"], row["q3"], row["iqr"]) == (2.5, 1.75, math.inf, math.inf)
    assert (row["n_runs"], row["n_failed"]) == (4, 1)
    accuracy = [rec("H", "A", 0.1, 0, 0.9, True), rec("H", "A", 0.1, 1, 0.5, True, diverged=True)]
    assert seed_statistics(accuracy)[0]["median"] == -math.inf  # worst end of an accuracy


def grid_records():
    """A: lr .01 → 1.0, 1.2, 1.1 (median 1.1); lr .1 → .5, .52, .51 (.51); lr 1 → .53, .50, .52 (.52).
    B: lr .1 → .6 ×3. The task's best median is .51."""
    out = []
    for lr, values in [(0.01, [1.0, 1.2, 1.1]), (0.1, [0.5, 0.52, 0.51]), (1.0, [0.53, 0.50, 0.52])]:
        out += [rec("T", "A", lr, s, v) for s, v in enumerate(values)]
    out += [rec("T", "B", 0.1, s, 0.6) for s in range(3)]
    return out


def test_lr_grid_picks_the_best_median_and_counts_the_robust_grid_points():
    rows = {r["method"]: r for r in lr_grid(grid_records(), within_percent=5.0)}
    # within 5 %: median ≤ .51 · 1.05 = .5355 → A's .1 and 1; B's .6 is not
    assert rows["A"]["best_lr"] == 0.1 and rows["A"]["best_median"] == 0.51
    assert (rows["A"]["robustness_width"], rows["A"]["grid_size"], rows["A"]["robust_lrs"]) == (2, 3, [0.1, 1.0])
    assert rows["B"]["robustness_width"] == 0
    # within 20 %: ≤ .612 → B's .6 counts
    assert {r["method"]: r["robustness_width"] for r in lr_grid(grid_records(), within_percent=20)} == {"A": 2, "B": 1}


def test_robustness_width_for_an_accuracy_is_relative_to_the_best_accuracy():
    records = [rec("H", "A", lr, 0, v, True) for lr, v in [(0.01, 0.8), (0.1, 0.9), (1.0, 0.86)]]
    # within 5 % of .9: accuracy ≥ .855 → lr .1 and 1
    (row,) = lr_grid(records, within_percent=5)
    assert row["robust_lrs"] == [0.1, 1.0] and row["best_lr"] == 0.1


def test_lr_ties_prefer_fewer_failed_runs_then_the_smaller_lr():
    records = [rec("T", "A", 0.1, s, v, diverged=v is None) for s, v in enumerate([1.0, 1.0, None])]
    records += [rec("T", "A", 0.01, s, 1.0) for s in range(3)]
    records += [rec("T", "A", 0.001, s, 1.0) for s in range(3)]
    # all three medians are 1.0; .1 has a failure; .001 < .01
    assert lr_grid(records)[0]["best_lr"] == 0.001


def test_a_method_without_lr_is_a_grid_of_one_point():
    records = [rec("T", "prodigy()", None, s, 0.5) for s in range(3)] + [rec("T", "sgd()", 0.1, 0, 0.6)]
    rows = {r["method"]: r for r in lr_grid(records)}
    assert rows["prodigy()"]["best_lr"] is None and rows["prodigy()"]["grid_size"] == 1


# ---------------------------------------------------------------------------------------------- across tasks


def test_normalised_regret_by_hand_for_both_directions():
    regret = normalised_regret(two_tasks())
    assert regret["L"] == pytest.approx({"A": 0.2, "B": 0.8, "C": 1.0})
    assert regret["H"] == pytest.approx({"A": 1 / 6, "B": 0.5, "C": 5 / 6})
    assert task_scores(two_tasks())["H"] == {"A": 0.75, "B": 0.5, "C": 0.25}
    assert task_scores(two_tasks())["L"]["C"] == math.inf


def test_regret_is_anchored_at_the_untrained_model_when_records_carry_it():
    records = [{**r, "initial": 11.0} for r in two_tasks() if r["task"] == "L"]
    # scale from the best run 1 to the initial value 11
    assert normalised_regret(records)["L"] == pytest.approx({"A": 0.1, "B": 0.4, "C": 1.0})
    # B's median 5 is worse than the untrained model's 4: clipped to 1, as bad as diverging
    clipped = normalised_regret([{**r, "initial": 4.0} for r in records])["L"]
    assert clipped == pytest.approx({"A": 1 / 3, "B": 1.0, "C": 1.0})
    # an anchor no run improved on is no scale: back to the worst finite run (6)
    assert normalised_regret([{**r, "initial": 0.5} for r in records])["L"] == pytest.approx(
        {"A": 0.2, "B": 0.8, "C": 1.0}
    )


def test_average_ranks_share_ties_and_skip_tasks_a_method_did_not_run():
    table = {"t1": {"a": 0.0, "b": 0.0, "c": 1.0}, "t2": {"a": 0.5, "c": 0.1}}
    # t1: a, b tie for ranks 1–2 → 1.5 each, c 3; t2: c 1, a 2
    assert average_ranks(table) == {"a": 1.75, "b": 1.5, "c": 2.0}


def test_profile_ratios_use_the_loss_and_the_error_rate():
    ratios = profile_ratios(two_tasks())
    # L: 2/2, 5/2, ∞; H: error rates .25, .5, .75 over .25
    assert ratios["L"] == {"A": 1.0, "B": 2.5, "C": math.inf}
    assert ratios["H"] == {"A": 1.0, "B": 2.0, "C": 3.0}


def test_performance_profile_and_its_area_by_hand():
    ratios = {"L": {"A": 1.0, "B": 2.5, "C": math.inf}, "H": {"A": 1.0, "B": 2.0, "C": 3.0}, "X": {"A": 1.0}}
    profile = performance_profile(ratios, [1.0, 2.0, 3.0, 4.0])
    assert list(profile["B"]) == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3])  # absent from X: counted as failed
    assert list(profile["C"]) == pytest.approx([0, 0, 1 / 3, 1 / 3])
    area = profile_area(ratios, tau_max=4.0)
    # per task (4 − max(1, r)) / 3: A 1, 1, 1; B .5, 2/3, 0; C 0, 1/3, 0
    assert area == pytest.approx({"A": 1.0, "B": (0.5 + 2 / 3) / 3, "C": (1 / 3) / 3})


def test_gap_floor_treats_gaps_below_it_as_equal():
    records = [rec("T", "a", 0.1, 0, 1.0, True), rec("T", "b", 0.1, 0, 0.96, True)]
    # error rates 0 and .04: floored at 1e-12 the ratio is .04 / 1e-12; floored at .01 it is .04 / .01
    assert profile_ratios(records)["T"]["b"] == pytest.approx(0.04 / 1e-12)
    assert profile_ratios(records, gap_floor=0.01)["T"]["b"] == pytest.approx(4.0)


def test_profile_on_steps_to_target_is_the_algoperf_ratio():
    records = [rec("T", "A", 0.1, s, 0.5, steps_to_target=v) for s, v in enumerate([100, 200, None])]
    records += [rec("T", "B", 0.1, s, 0.6, steps_to_target=400) for s in range(3)]
    # A: median of 100, 200, ∞ = 200; B 400 → ratio 2
    assert profile_ratios(records, measure="steps_to_target")["T"] == {"A": 1.0, "B": 2.0}


def test_vbs_and_sbs_by_hand():
    regrets = {"t1": {"a": 0.0, "b": 0.5, "c": 0.0}, "t2": {"a": 0.6, "b": 0.2}, "t3": {"a": 0.1, "b": 0.1}}
    out = vbs_sbs(regrets)
    assert out["vbs"]["per_task"] == {"t1": ["a", "c"], "t2": ["b"], "t3": ["a", "b"]}
    assert out["vbs"]["mean_regret"] == pytest.approx(0.1)  # (0 + .2 + .1) / 3
    # c did not run everywhere; a: .7/3 < b: .8/3
    assert out["sbs"] == {"method": "a", "mean_regret": pytest.approx(0.7 / 3)}
    assert out["sbs_vbs_gap"] == pytest.approx(0.7 / 3 - 0.1)


# ---------------------------------------------------------------------------------------------- summary


def test_summary_by_hand_on_two_tasks():
    summary = summarize(two_tasks(), n_bootstrap=200)
    rows = {r["method"]: r for r in summary["per_method"]}
    assert summary["methods"] == ["A", "B", "C"]  # sorted by mean regret
    assert rows["A"]["mean_regret"] == pytest.approx((0.2 + 1 / 6) / 2)
    assert rows["B"]["mean_regret"] == pytest.approx((0.8 + 0.5) / 2)
    assert rows["C"]["mean_regret"] == pytest.approx((1 + 5 / 6) / 2)
    assert [rows[m]["average_rank"] for m in "ABC"] == [1.0, 2.0, 3.0]
    assert rows["B"]["profile_area"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert rows["C"]["diverged_share"] == 0.5 and rows["A"]["diverged_share"] == 0.0
    assert rows["C"]["cost_per_run"] == 0.75  # three runs of 50 steps and three of 100, budget 100
    assert rows["C"]["grid_cost"] == 0.75  # one LR, so one seed's grid is one run
    # A's per-run regrets: L (r − 1)/5 for 1, 2, 3 → 0, .2, .4; H (.875 − a)/.75 → 1/6, 1/4, 1/12
    assert rows["A"]["iqm_regret"] == pytest.approx(interquartile_mean([0, 0.2, 0.4, 1 / 6, 1 / 4, 1 / 12]))
    assert rows["A"]["iqm_ci_low"] <= rows["A"]["iqm_regret"] <= rows["A"]["iqm_ci_high"]
    assert summary["sbs"]["method"] == "A" and summary["sbs_vbs_gap"] == 0.0
    task_l = next(t for t in summary["per_task"] if t["task"] == "L")
    assert task_l["best_methods"] == ["A"] and task_l["best_value"] == 2.0
    assert task_l["methods"]["A"]["final"] == {"median": 2.0, "q1": 1.5, "q3": 2.5, "iqr": 1.0}
    assert task_l["methods"]["C"]["median"] is None  # ∞ is not JSON: None


def test_summary_counts_the_cost_of_the_whole_grid_and_the_robustness_width():
    records = [{**r, "extra_steps": 50} if (r["method"], r["lr"]) == ("A", 0.01) else r for r in grid_records()]
    rows = {r["method"]: r for r in summarize(records, n_bootstrap=50)["per_method"]}
    # A: three runs at 1.5 (50 extra steps) and six at 1.0 → per run 10.5 / 9; one seed of the grid 10.5 / 3
    assert rows["A"]["cost_per_run"] == pytest.approx(10.5 / 9) and rows["A"]["grid_cost"] == pytest.approx(3.5)
    assert rows["B"]["grid_cost"] == 1.0
    assert (rows["A"]["robustness_width"], rows["B"]["robustness_width"]) == (2.0, 0.0)


def test_summary_is_strict_json_and_deterministic():
    first = summarize(two_tasks(), n_bootstrap=300, seed=7)
    text = json.dumps(first, allow_nan=False)
    assert text == json.dumps(summarize(list(reversed(two_tasks())), n_bootstrap=300, seed=7), allow_nan=False)


def test_a_methods_interval_does_not_depend_on_which_other_methods_ran():
    # D lies inside each task's range, so the regret scales do not move; A's resampling must not either.
    extra = [rec("L", "D", 0.1, s, 2.5) for s in range(3)] + [rec("H", "D", 0.1, s, 0.6, True) for s in range(3)]
    without = {r["method"]: r for r in summarize(two_tasks(), n_bootstrap=200)["per_method"]}["A"]
    with_d = {r["method"]: r for r in summarize(two_tasks() + extra, n_bootstrap=200)["per_method"]}["A"]
    assert (with_d["iqm_ci_low"], with_d["iqm_ci_high"]) == (without["iqm_ci_low"], without["iqm_ci_high"])


def test_all_diverged_gives_worst_everywhere_and_stays_json():
    records = [rec("T", m, 0.1, s, None, diverged=True) for m in ("a", "b") for s in range(2)]
    summary = summarize(records, n_bootstrap=50)
    rows = {r["method"]: r for r in summary["per_method"]}
    assert rows["a"]["mean_regret"] == 1.0 and rows["a"]["average_rank"] == 1.5
    assert rows["a"]["profile_area"] == 0.0 and rows["a"]["diverged_share"] == 1.0
    assert summary["vbs"]["per_task"] == {"T": ["a", "b"]} and summary["sbs"]["method"] == "a"
    assert summary["sbs_vbs_gap"] == 0.0
    json.dumps(summary, allow_nan=False)


def test_a_nan_final_counts_as_failed_even_if_not_flagged_diverged():
    records = [rec("T", "a", 0.1, 0, math.nan), rec("T", "b", 0.1, 0, 1.0), rec("T", "b", 0.1, 1, 2.0)]
    assert normalised_regret(records)["T"] == {"a": 1.0, "b": 0.5}


def test_ties_between_methods_share_rank_and_vbs():
    records = [rec("T", m, 0.1, 0, 1.0) for m in ("a", "b")]
    summary = summarize(records, n_bootstrap=20)
    assert [r["average_rank"] for r in summary["per_method"]] == [1.5, 1.5]
    assert summary["per_task"][0]["best_methods"] == ["a", "b"]
    assert [r["mean_regret"] for r in summary["per_method"]] == [0.0, 0.0]  # all runs equal


def test_the_longest_budget_of_a_configuration_counts():
    short = rec("T", "a", 0.1, 0, 5.0, budget=50, steps=50)
    long = rec("T", "a", 0.1, 0, 1.0, budget=200, steps=200)
    assert task_scores([long, short]) == task_scores([short, long]) == {"T": {"a": 1.0}}


def test_a_dataframe_gives_the_same_summary_as_dicts():
    pandas = pytest.importorskip("pandas")
    records = two_tasks() + [rec("L", "free", None, s, 2.5) for s in range(3)]
    frame = pandas.DataFrame(records)  # lr None becomes NaN, ints become numpy ints
    assert summarize(frame, n_bootstrap=100) == summarize(records, n_bootstrap=100)


def test_numpy_seeds_sort_as_numbers_like_python_ints():
    records = [rec("T", "a", 0.1, s, 1 + s / 10) for s in (2, 10, 11)] + [rec("T", "b", 0.1, 0, 3.0)]
    as_numpy = [{**r, "seed": np.int64(r["seed"])} for r in records]  # as read from a numpy/arrow column
    assert summarize(as_numpy, n_bootstrap=100) == summarize(records, n_bootstrap=100)


def test_summary_table_renders_one_row_per_method_with_the_sbs():
    summary = summarize(two_tasks(), n_bootstrap=100)
    console = Console(width=250, record=True)
    console.print(summary_table(summary))
    text = console.export_text()
    assert [line.split("│")[1].strip() for line in text.splitlines() if re.match(r"│ [ABC] ", line)] == ["A", "B", "C"]
    assert "SBS A" in text


@pytest.mark.parametrize(
    ("records", "kwargs", "message"),
    [
        ([], {}, "no run records"),
        ([{"task": "T"}], {}, "lacks field"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"score": "auc"}, "lacks field(s) auc"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"score": "loss"}, "unknown score"),
        ([rec("T", "a", 0.1, 0, 1.0), rec("T", "a", 0.1, 0, 2.0)], {}, "same budget"),
        ([rec("T", "a", 0.1, 0, 1.0), rec("T", "b", 0.1, 0, 0.9, True)], {}, "different metrics"),
        ([rec("T", "a", 0.1, 0, 1.0, higher_is_better="yes")], {}, "higher_is_better"),
        ([rec("T", "a", 0.1, 0, "low")], {}, "'final_metric' must be a number"),
        ([rec("T", "a", 0.1, 0, 1.5, True)], {}, "optimum"),
        (["not a record"], {}, "mapping"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"within_percent": -1}, "within_percent"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"tau_max": 1.0}, "tau_max"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"profile_measure": "time"}, "profile measure"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"profile_measure": "steps_to_target"}, "steps_to_target"),
        ([rec("T", "a", 0.1, 0, 1.0)], {"gap_floor": 0.0}, "gap_floor"),
    ],
)
def test_bad_records_and_options_fail_with_a_message_that_names_them(records, kwargs, message):
    with pytest.raises(LRControlError, match=re.escape(message)):
        summarize(records, n_bootstrap=10, **kwargs)


def test_the_worked_examples_in_the_docs_run():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/metrics.md has no python examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # the examples assert their own numbers
