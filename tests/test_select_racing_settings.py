"""Racing's settings (issue 12): member orders, tuning on training instances only, and the held-out
evaluation's race using them. Races are replayed on hand-made validation curves whose outcome is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from racing_curves import late_bloomer_runs, specialist_runs
from synthetic_meta import meta_dataset

from lrcontrol.errors import LRControlError
from lrcontrol.select.evaluation import RACE, RACE_UNTUNED, evaluate_instances, folds, instance_groups
from lrcontrol.select.racing import oracle_judge, simulate, validation_judge
from lrcontrol.select.racing_settings import GRID, UNTUNED, RaceBook, RaceSettings, preferences, tune
from lrcontrol.select.regret import regret_table


def test_a_late_bloomer_survives_only_a_late_first_cut_and_tuning_finds_it():
    runs = late_bloomer_runs()
    book = RaceBook(runs, regret_table(runs))
    members = [f"m{j}" for j in range(1, 6)] + ["late"]
    # every member, η = 3: the first cut at 1/9 of the budget drops the late bloomer
    assert simulate(book.curves["inst0"][0], members, eta=3).winner != "late"
    settings, orders = tune(book, [f"inst{k}" for k in range(8)])
    assert (settings.eta, settings.entrants) == (2, 4) and orders[settings.order][0] == "late"
    for k in range(8, 12):  # held out: the tuned race finds it, the untuned one does not
        tuned = book.outcome(f"inst{k}", settings.members(orders), settings.eta)
        untuned = book.outcome(f"inst{k}", UNTUNED.members(orders), UNTUNED.eta)
        assert tuned["member"] == "late" and tuned["regret"] == 0.0 and tuned["cost"] <= 2.0
        assert untuned["member"] != "late" and untuned["regret"] > 0.1


def test_tuning_keeps_every_member_when_each_is_the_best_somewhere():
    runs = specialist_runs()
    book = RaceBook(runs, regret_table(runs))
    train = [f"inst{k}" for k in range(12)]
    settings, orders = tune(book, train)
    assert settings.entrants is None or settings.entrants >= 6
    assert all(book.outcome(i, settings.members(orders), settings.eta)["regret"] == 0.0 for i in train)


def test_tuning_picks_the_setting_of_least_training_regret_and_never_reads_held_out_instances():
    runs, _ = meta_dataset()
    table = regret_table(runs)
    groups = instance_groups(runs)
    _, train, test = folds(groups, "family")[0]
    book = RaceBook(runs, table)
    settings, orders = tune(book, train)
    means = [np.mean([book.outcome(i, s.members(orders), s.eta)["regret"] for i in train]) for s in GRID]
    assert GRID.index(settings) == int(np.argmin(means))
    # scramble the held-out instances' curves and finals: the settings and orders stay the same
    scrambled = runs.copy()
    held = scrambled["instance"].isin(test) & ~scrambled["member"].str.contains(":")
    scrambled.loc[held, "final_metric"] = scrambled.loc[held, "final_metric"].to_numpy()[::-1]
    scrambled.loc[held, "eval_values"] = pd.Series(
        list(scrambled.loc[held, "eval_values"])[::-1], index=scrambled.index[held]
    )
    again = RaceBook(scrambled, regret_table(scrambled))
    assert tune(again, train) == (settings, orders)


def test_orders_by_mean_regret_complementarity_and_cost():
    # a and b are each the best on half the instances; b-twin is a hair better than b there but costs 1.5
    # runs; a-twin is a little worse than a everywhere
    regrets = pd.DataFrame(
        {"a": [0.0, 0.0, 0.5, 0.5], "a-twin": [0.01, 0.01, 0.51, 0.51], "b": [0.5, 0.5, 0.001, 0.001],
         "b-twin": [0.5, 0.5, 0.0, 0.0]}
    )  # fmt: skip
    cost = pd.DataFrame(1.0, index=regrets.index, columns=regrets.columns).assign(**{"b-twin": 1.5})
    orders = preferences(regrets, cost)
    assert orders["mean regret"] == ["a", "b-twin", "b", "a-twin"]
    # complementary: after a, the member that lowers the virtual best most; twins add nothing after that
    assert orders["complementary"] == ["a", "b-twin", "a-twin", "b"]
    # cost-aware: b-twin's 0.5 extra runs cost 0.025 regret, more than the 0.001 it gains over b
    assert orders["complementary, cost-aware"] == ["a", "b", "a-twin", "b-twin"]
    assert preferences(regrets)["complementary, cost-aware"] == orders["complementary"]  # no cost: no charge


def test_the_held_out_race_uses_settings_tuned_on_the_training_folds():
    runs, features = meta_dataset()
    per_instance, _ = evaluate_instances(runs, features, "family", selectors={})
    racing = per_instance[per_instance["entry"] == RACE]
    assert racing["settings"].notna().all() and (racing["cost"] <= 2.0 + 1e-9).all()
    assert set(per_instance.loc[per_instance["entry"] == RACE_UNTUNED, "settings"]) == {UNTUNED.label()}
    labels = {s.label() for s in GRID}
    assert set(racing["settings"]) <= labels


def test_settings_are_plain_data_and_bad_input_is_refused():
    assert RaceSettings("complementary", 5, 2).to_dict() == {"order": "complementary", "entrants": 5, "eta": 2}
    assert RaceSettings("mean regret", 3, 2).members({"mean regret": ["x", "y", "z", "w"]}) == ["x", "y", "z"]
    runs = specialist_runs()
    with pytest.raises(LRControlError, match="without training instances"):
        tune(RaceBook(runs, regret_table(runs)), [])
    with pytest.raises(LRControlError, match="without training instances"):
        preferences(pd.DataFrame())


def test_the_oracle_judge_keeps_the_late_bloomer_that_the_validation_judge_drops():
    runs = late_bloomer_runs()
    book = RaceBook(runs, regret_table(runs))
    members = [f"m{j}" for j in range(1, 6)] + ["late"]
    curves = book.curves["inst0"][0]
    plain, oracle = simulate(curves, members, eta=3), simulate(curves, members, eta=3, judge=oracle_judge)
    assert plain.winner != "late" and oracle.winner == "late"
    assert oracle.cost == pytest.approx(plain.cost)  # the same rungs: only who continues differs
    assert simulate(curves, members, eta=3, judge=validation_judge).winner == plain.winner
    # the book keeps the judges' races apart (its memo is per judge)
    assert book.outcome("inst0", members, 3)["regret"] > 0.1
    assert book.outcome("inst0", members, 3, judge=oracle_judge)["regret"] == 0.0


def test_a_judge_that_leaves_a_member_unscored_is_refused():
    runs = late_bloomer_runs()
    curves = RaceBook(runs, regret_table(runs)).curves["inst0"][0]
    with pytest.raises(LRControlError, match="score every member alive"):
        simulate(curves, ["m1", "m2", "late"], judge=lambda c, alive, frac: {"m1": 0.0})
