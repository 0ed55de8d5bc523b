"""Selection (issue 12): normalised regret, the selectors and their plain-JSON form, leak-free held-out
splits, complementarity, racing (simulated against live). Trained on the tiny synthetic meta-dataset of
`synthetic_meta` whose best member per region of feature space is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from synthetic_meta import MEMBERS, best_member, meta_dataset

from lrcontrol.errors import LRControlError
from lrcontrol.select.evaluation import SBS, VBS, complementarity, evaluate, folds, instance_groups
from lrcontrol.select.forest import Forest, export_forest
from lrcontrol.select.regret import regret_table, worst_decile
from lrcontrol.select.selectors import (
    KNearest,
    PairwiseClassifier,
    RegretRegression,
    SingleBest,
    selector_from_dict,
)


@pytest.fixture(scope="module")
def synthetic():
    runs, features = meta_dataset()
    return runs, features, regret_table(runs)


def row(instance, member, final, *, seed=0, initial=1.0, higher=False, diverged=False, cost=1.0):
    return {
        "instance": instance, "family": "f", "dataset": instance, "member": member, "seed": seed,
        "diverged": diverged, "final_metric": math.nan if diverged else final, "initial_metric": initial,
        "higher_is_better": higher, "cost": cost,
    }  # fmt: skip


def test_regret_is_normalised_between_the_best_row_and_the_untrained_model():
    runs = pd.DataFrame(
        [
            # accuracy (higher is better): initial 0.1, best 0.9 (the grid baseline), a at 0.5 → 0.5
            row("acc", "a", 0.5, initial=0.1, higher=True),
            row("acc", "b", 0.8, initial=0.1, higher=True, seed=0),
            row("acc", "b", 0.7, initial=0.1, higher=True, seed=1),
            row("acc", "b", 0.0, initial=0.1, higher=True, seed=2, diverged=True),
            row("acc", "grid:a", 0.9, initial=0.1, higher=True, cost=9.0),
            # loss where nothing learned: every finite score has regret 0, a failure 1
            row("flat", "a", 2.0, initial=1.0),
            row("flat", "b", 0.0, initial=1.0, diverged=True),
        ]
    )
    table = regret_table(runs)
    assert table.members == ["a", "b"] and table.baselines == ["grid:a"]
    assert table.regret.loc["acc", "a"] == pytest.approx(0.5)
    # b: median of 0.8, 0.7 and a failure (+inf as a loss) is 0.7 → (0.9 − 0.7) / 0.8
    assert table.regret.loc["acc", "b"] == pytest.approx(0.25)
    assert table.regret.loc["acc", "grid:a"] == 0.0 and table.cost.loc["acc", "grid:a"] == 9.0
    assert table.diverged.loc["acc", "b"] == pytest.approx(1 / 3)
    # catastrophic runs of b: the diverged one only (0.8 → 0.125, 0.7 → 0.25)
    assert table.catastrophic.loc["acc", "b"] == pytest.approx(1 / 3)
    assert table.catastrophic.loc["acc", "a"] == 1.0  # regret 0.5 exactly is catastrophic
    assert table.regret.loc["flat", "a"] == 0.0 and table.regret.loc["flat", "b"] == 1.0
    assert table.vbs().to_dict() == {"acc": "b", "flat": "a"}
    assert worst_decile([0.0] * 18 + [0.5, 1.0]) == pytest.approx(0.75)


def test_bad_meta_datasets_are_refused_with_the_fix():
    with pytest.raises(LRControlError, match="no runs"):
        regret_table(pd.DataFrame([row("x", "a", 0.5)]).iloc[:0])
    with pytest.raises(LRControlError, match="unknown member"):
        regret_table(pd.DataFrame([row("x", "a", 0.5)]), members=["zeta"])
    with pytest.raises(LRControlError, match="member b has no run on instance y"):
        regret_table(pd.DataFrame([row("x", "a", 0.5), row("x", "b", 0.4), row("y", "a", 0.3)]))


def held_out_points():
    """Feature rows well inside each region, with the noise feature missing in some."""
    rows = []
    for f1, f2 in [(0.2, 0.2), (0.3, 0.15), (0.8, 0.2), (0.8, 0.8), (0.25, 0.75), (0.3, 0.7)]:
        rows.append({"f1": f1, "f2": f2, "noise": math.nan if f1 < 0.25 else 0.3})
    return rows


@pytest.mark.parametrize(
    "make",
    [lambda: KNearest(k=3), lambda: PairwiseClassifier(trees=16, max_depth=5), lambda: RegretRegression(trees=16)],
    ids=["knn", "pairwise", "regression"],
)
def test_each_selector_picks_the_known_best_member(synthetic, make):
    _, features, table = synthetic
    selector = make().fit(features, table.member_regret())
    for point in held_out_points():
        assert selector.choose(point) == best_member(point["f1"], point["f2"]), point
    # a row with every feature missing still gets a member (imputed with the training medians)
    assert selector.choose({}) in MEMBERS


def test_single_best_picks_the_member_of_least_mean_training_regret(synthetic):
    _, features, table = synthetic
    means = table.member_regret().mean()
    selector = SingleBest().fit(features, table.member_regret())
    assert selector.choose({"f1": 0.1, "f2": 0.1}) == means.idxmin() == "beta"


@pytest.mark.parametrize("kind", [SingleBest, KNearest, PairwiseClassifier, RegretRegression])
def test_a_selector_from_its_plain_json_dict_chooses_exactly_like_the_fitted_one(synthetic, kind):
    _, features, table = synthetic
    fitted = kind().fit(features, table.member_regret())
    text = json.dumps(fitted.to_dict(), allow_nan=False)  # plain JSON: no NaN, no objects
    loaded = selector_from_dict(json.loads(text))
    rng = np.random.default_rng(1)
    probes = pd.DataFrame({"f1": rng.uniform(0, 1, 300), "f2": rng.uniform(0, 1, 300), "noise": rng.normal(size=300)})
    probes.loc[::7, "noise"] = math.nan
    assert loaded.choose_many(probes) == fitted.choose_many(probes)
    for point in held_out_points():
        assert loaded.choose(point) == fitted.choose(point)
    assert np.array_equal(
        loaded.scores(loaded.inputs.matrix(probes.to_numpy())), fitted.scores(fitted.inputs.matrix(probes.to_numpy()))
    )


def test_exported_forests_predict_exactly_like_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)) * [1.0, 1e-3, 1e3, 1.0]
    y = x[:, 0] + np.sin(x[:, 2] / 300) + 0.1 * rng.normal(size=200)
    regressor = RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0).fit(x, y)
    classifier = RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0).fit(
        x, y > 0, sample_weight=np.abs(y)
    )
    test = rng.normal(size=(500, 4)) * [1.0, 1e-3, 1e3, 1.0]
    assert np.allclose(
        Forest(json.loads(json.dumps(export_forest(regressor)))).predict(test),
        regressor.predict(test),
        rtol=0,
        atol=1e-12,
    )
    proba = classifier.predict_proba(test)[:, list(classifier.classes_).index(True)]
    assert np.allclose(Forest(export_forest(classifier, positive=True)).predict(test), proba, rtol=0, atol=1e-12)


@pytest.mark.parametrize("split", ["family", "dataset"])
def test_held_out_splits_share_no_data_set(synthetic, split):
    runs, _, _ = synthetic
    groups = instance_groups(runs)
    seen = []
    for held_out, train, test in folds(groups, split):
        assert set(groups.loc[test, "dataset"]).isdisjoint(groups.loc[train, "dataset"])
        assert set(train).isdisjoint(test) and set(train) | set(test) == set(groups.index)
        if split == "family":
            assert set(groups.loc[test, "family"]) == {held_out}
            assert held_out not in set(groups.loc[train, "family"])
        seen += test
    assert sorted(seen) == sorted(groups.index)  # every instance is held out exactly once


def test_held_out_evaluation_reports_every_entry_and_selectors_close_the_gap(synthetic):
    runs, features, _ = synthetic
    summary = evaluate(runs, features, "family").set_index("entry")
    assert summary.loc[VBS, "mean_regret"] == 0.0 and summary.loc[VBS, "gap_closed"] == 1.0
    assert summary.loc[SBS, "gap_closed"] == 0.0
    assert set(MEMBERS) | {"grid:alpha", "mfhpo:alpha"} <= set(summary.index)
    assert summary.loc["grid:alpha", "compute"] == 9.0 and summary.loc["mfhpo:alpha", "compute"] == 5.0
    selectors = summary[summary["kind"] == "selector"]
    assert (selectors["compute"] == 1.05).all()  # one run plus the probes
    assert selectors.loc["regret regression", "gap_closed"] > 0.9
    assert selectors.loc["k-nearest (k=5)", "gap_closed"] > 0.9
    racing = summary[summary["kind"] == "racing"].iloc[0]
    assert racing["compute"] <= 2.0 and racing["gap_closed"] > 0.9
    # gamma diverges on a quarter of the instances: its rates say so, the selectors avoid it
    assert summary.loc["gamma", "divergence_rate"] > 0.2
    assert (selectors["divergence_rate"] == 0.0).all()


def test_evaluation_refuses_instances_without_features(synthetic):
    runs, features, _ = synthetic
    with pytest.raises(LRControlError, match="no features for instance"):
        evaluate(runs, features.iloc[1:], "family")


def test_complementarity_ranks_members_by_how_much_they_lower_the_virtual_best(synthetic):
    runs, _, table = synthetic
    # a redundant member: alpha, a little worse everywhere — adding it never lowers the VBS
    twin = runs[runs["member"] == "alpha"].assign(member="alpha-twin", final_metric=lambda d: d["final_metric"] + 0.01)
    result = complementarity(regret_table(pd.concat([runs, twin]))).set_index("member")
    assert list(result.index[:3]) == ["beta", "alpha", "gamma"]
    assert result.loc["alpha-twin", "gain"] == pytest.approx(0.0) and result.loc["alpha-twin", "rank"] == 4
    assert result.loc["gamma", "vbs_regret"] == pytest.approx(0.0)
    regrets = table.member_regret()
    assert result.loc["beta", "best"] == int((regrets.idxmin(axis=1) == "beta").sum())
