"""benchmarks/racing_judges.py (issue 12): rank agreement of early and final scores, racing's ceilings
under an oracle judge, and the learned pairwise judge — on hand-made curves whose answer is known (a late
bloomer that is the best member everywhere but the worst until 20 % of the budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmark_scripts import load
from racing_curves import late_bloomer_runs

from lrcontrol.select.evaluation import instance_groups
from lrcontrol.select.racing_settings import RaceBook
from lrcontrol.select.regret import regret_table

judges = load("racing_judges")


def test_rank_agreement_sees_the_late_bloomer_invert_the_early_ranks():
    runs = late_bloomer_runs()
    table = regret_table(runs)
    agreement = judges.rank_agreement(RaceBook(runs, table), instance_groups(runs).loc[table.instances])
    # from 10 % to 20 % of the budget the late bloomer is the worst member (at 5 % not yet: the others
    # start from 1.0): early ranks disagree with the final ones; from 20 % on they agree exactly
    early = agreement[(agreement["frac"] >= 0.1) & (agreement["frac"] < 0.2)]
    late = agreement[agreement["frac"] >= 0.2]
    assert len(early) == 12 * 2 * 2 and (early["tau"] < 0.5).all() and np.allclose(late["tau"], 1.0)
    # early, m1 leads and finishes second (behind the late bloomer); late, the leader is the winner
    assert early["leader_top2"].all() and late["leader_top2"].all()


def test_ceilings_separate_the_judge_from_the_entrants():
    per_instance = judges.ceilings(late_bloomer_runs(), "family")
    summary = judges.summary(per_instance)
    oracle = summary.loc["every member that fits (η=3), oracle judge"]
    plain = summary.loc["every member that fits (η=3), validation judge"]
    assert oracle["regret"] == 0.0 and oracle["sbs"] == oracle["vbs"] == 0.0
    assert np.isnan(oracle["gap_closed"])  # the late bloomer is the single best: there is no gap to close
    assert plain["regret"] > 0.1 and oracle["cost"] == pytest.approx(plain["cost"])
    assert summary.loc["tuned entrants, oracle judge", "regret"] <= summary.loc[judges.SHIPPED_ENTRY, "regret"]


def test_the_learned_pairwise_judge_learns_the_late_bloomer_on_other_families():
    runs = late_bloomer_runs()
    book = RaceBook(runs, regret_table(runs))
    members = [f"m{j}" for j in range(1, 6)] + ["late"]
    judge = judges.PairwiseJudge(members).fit(book, [f"inst{k}" for k in range(12) if k % 4 != 0])
    scores = judge(book.curves["inst0"][0], members, 0.1)  # inst0 is of family fam0, never trained on
    assert min(scores, key=scores.get) == "late"
    assert judges.summary(judges.ceilings(runs, "family", learned=True)).loc[
        "tuned entrants, learned pairwise judge", "regret"
    ] == pytest.approx(0.0)


def test_the_script_prints_json_and_draws_its_figure(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs.parquet"
    late_bloomer_runs().to_parquet(runs)
    figure = tmp_path / "ranks.png"
    assert judges.main(["--runs", str(runs), "--json", "--figure", str(figure), "--budgets", "1.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "family" and judges.SHIPPED_ENTRY in out["entries"]
    assert out["entries"]["racing ≤ 1.5 runs"]["cost"] <= 1.5
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert judges.main(["--runs", str(runs), "--figure", str(figure), "--budgets", "1.5"]) == 0
    text = capsys.readouterr().out
    assert "Kendall's τ" in text and "racing ≤ 1.5 runs" in text and "—" in text  # no gap: SBS is VBS
    monkeypatch.chdir(tmp_path)
    assert judges.main(["--runs", str(runs), "--json", "--figure", ""]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranks.png", "runs.parquet"]  # no figure drawn
    with pytest.raises(SystemExit) as exit_:
        judges.main(["--runs", str(tmp_path / "missing.parquet")])
    assert exit_.value.code == 2


def test_the_budget_curve_keeps_every_race_within_its_cap():
    curve = judges.budget_curve(late_bloomer_runs(), "family", (1.25, 3.0))
    assert list(dict.fromkeys(curve["entry"])) == ["racing ≤ 1.25 runs", "racing ≤ 3 runs"]
    for cap, rows in zip((1.25, 3.0), (curve[curve["entry"] == e] for e in dict.fromkeys(curve["entry"]))):
        assert len(rows) == 12 and (rows["cost"] <= cap + 1e-9).all()
    assert set(curve["catastrophic"]) <= {0.0, 0.5, 1.0}


@pytest.mark.parametrize("budgets", ["1.5,two", "0.5"])
def test_bad_budgets_are_refused_before_anything_runs(tmp_path, budgets, capsys):
    with pytest.raises(SystemExit) as exit_:
        judges.main(["--runs", str(tmp_path / "missing.parquet"), "--budgets", budgets])
    assert exit_.value.code == 2 and "--budgets" in capsys.readouterr().err
