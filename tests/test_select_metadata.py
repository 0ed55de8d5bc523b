"""The meta-dataset: built through the one-run executor into a store (resumable), exported to Parquet
without per-step trajectories, read back with its schema checked; the portfolio; bad input."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from lrcontrol.cli import app
from lrcontrol.errors import LRControlError
from lrcontrol.select import baselines
from lrcontrol.select.instances import instance
from lrcontrol.select.metadata import SCHEMA, TRACE_POINTS, build, collect, export, read_features, read_runs
from lrcontrol.select.portfolio import MEMBERS, PORTFOLIO, check_portfolio, member_spec

TINY = [instance("sphere-2(steps=30, evals=3)"), instance("iris-logreg(steps=90, evals=3)")]
TWO = {"adamw": PORTFOLIO["adamw"], "prodigy": PORTFOLIO["prodigy"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("meta")
    store = folder / "meta.db"
    done: list = []
    summary = build(TINY, store, 1, TWO, phases=("members", "grid"), on_done=done.append)
    assert summary["members"]["recorded"] == 4 and summary["grid"]["recorded"] == 10  # 1e-3 is not a member here
    again = build(TINY, store, 1, TWO, phases=("members", "grid"))  # resumable: nothing runs twice
    assert again["members"]["already_done"] == 4 and again["members"]["recorded"] == 0
    assert again["grid"]["recorded"] == 0
    return store, folder


def test_the_portfolio_is_canonical_with_a_reason_per_member():
    check_portfolio()
    assert len(MEMBERS) == len(PORTFOLIO) >= 10
    assert all(m.reason for m in MEMBERS)
    assert member_spec("prodigy") == "prodigy(lr=1.0)"
    with pytest.raises(LRControlError, match="unknown portfolio member 'prodigi'.*did you mean 'prodigy'"):
        member_spec("prodigi")


def test_export_and_read_round_trip_with_the_schema(built, tmp_path):
    store, _ = built
    rows = collect(store, TINY, TWO)
    members = pd.DataFrame(rows).groupby("instance").member.apply(sorted).to_dict()
    assert members == {i.task: ["adamw", baselines.GRID_NAME, "prodigy"] for i in TINY}
    path = tmp_path / "runs.parquet"
    assert export(rows, path) == 6
    frame = read_runs(path)
    assert list(frame.columns) == list(SCHEMA)
    sphere = frame[(frame.instance == TINY[0].task) & (frame.member == "adamw")].iloc[0]
    assert sphere.family == "synthetic" and sphere.dataset == "sphere" and sphere.metric == "regret"
    assert sphere.budget == 30 and sphere.cost == pytest.approx(1.0) and not sphere.higher_is_better
    assert list(sphere.eval_frac) == [0.0, 1 / 3, 2 / 3, 1.0]
    assert sphere.eval_values[-1] == pytest.approx(sphere.final_metric)
    assert sphere.eval_values[0] == pytest.approx(sphere.initial_metric)
    assert 0 < len(sphere.trace_lr) == len(sphere.trace_loss) == len(sphere.trace_frac) <= TRACE_POINTS
    assert sphere.trace_frac[-1] == pytest.approx(1.0) and sphere.trace_lr[0] == pytest.approx(1e-3)
    grid = frame[frame.member == baselines.GRID_NAME]
    assert list(grid.cost) == pytest.approx([5.0, 5.0])  # the whole grid's runs
    assert set(grid.spec) <= set(baselines.grid_specs())
    for _, row in grid.iterrows():
        mine = frame[(frame.instance == row.instance) & (frame.member != baselines.GRID_NAME)]
        assert all(math.isfinite(v) for v in mine.final_metric)


def test_the_grid_picks_the_best_validation_run(built):
    from lrcontrol.bench.store import Store

    store, _ = built
    with Store(store, create=False) as db:
        records = db.records("task_name = ?", [TINY[1].task])
    grid = [r for r in records if r.spec in baselines.grid_specs()]
    pick = baselines.pick_grid(grid)
    assert pick is not None and pick.record.final_metric == max(r.final_metric for r in grid if not r.diverged)
    assert baselines.pick_grid(grid[:-1]) is None  # an unfinished grid is no baseline yet


def test_reading_bad_files_fails_clearly(tmp_path):
    with pytest.raises(LRControlError, match="no runs file"):
        read_runs(tmp_path / "missing.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(LRControlError, match="cannot be read as Parquet"):
        read_runs(broken)
    partial = tmp_path / "partial.parquet"
    pd.DataFrame({"instance": ["a"], "member": ["adamw"]}).to_parquet(partial)
    with pytest.raises(LRControlError, match="lacks the columns family"):
        read_runs(partial)
    with pytest.raises(LRControlError, match="lacks the columns family"):
        read_features(partial)
    with pytest.raises(LRControlError, match="no finished runs"):
        export([], tmp_path / "empty.parquet")
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({c: pd.Series([], dtype=object) for c in SCHEMA}).to_parquet(empty)
    with pytest.raises(LRControlError, match="holds no runs"):
        read_runs(empty)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instances", "0"], "--instances must be ≥ 1"),
        (["--workers", "0"], "--workers must be ≥ 1"),
        (["--seed", "-1"], "--seed must be ≥ 0"),
        (["--phases", "members,tuning"], "unknown tuning"),
        (["--export-only"], "no store at"),
    ],
)
def test_select_build_bad_input_exits_2_before_creating_anything(tmp_path, args, message):
    store, out = tmp_path / "sub" / "meta.db", tmp_path / "out"
    result = CliRunner().invoke(app, ["select", "build", "--store", str(store), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_select_build_refuses_a_file_as_out_folder(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    result = CliRunner().invoke(app, ["select", "build", "--store", str(tmp_path / "m.db"), "--out", str(out)])
    assert result.exit_code == 2 and "is a file" in result.output
    assert not (tmp_path / "m.db").exists()


def test_select_build_exports_what_the_store_holds(built, tmp_path, monkeypatch):
    import lrcontrol.select.instances as instances_module

    store, _ = built
    monkeypatch.setattr(instances_module, "generate", lambda n, seed: TINY)
    monkeypatch.setattr("lrcontrol.select.portfolio.PORTFOLIO", TWO)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["select", "build", "--export-only", "--store", str(store), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(read_runs(out / "runs.parquet")) == 6


def test_the_mfhpo_baseline_is_a_tune_whose_cost_counts_every_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "MFHPO_TRIALS", 6)
    store = tmp_path / "meta.db"
    summary = build(TINY[:1], store, 1, TWO, mfhpo_instances=TINY[:1], phases=("mfhpo",))
    assert summary["mfhpo"]["recorded"] == 1
    (row,) = [r for r in collect(store, TINY[:1], TWO) if r["member"] == baselines.MFHPO_NAME]
    assert row["budget"] == 30 and row["cost"] > 1.0  # the trials' steps, in full runs
    assert row["wall_time"] > 0 and row["spec"].startswith("adamw(lr=")
    assert build(TINY[:1], store, 1, TWO, mfhpo_instances=TINY[:1], phases=("mfhpo",))["mfhpo"]["recorded"] == 1


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_the_shipped_meta_dataset_matches_the_generator_and_the_portfolio():
    from lrcontrol.select.instances import generate

    runs = read_runs(REPO / "metadata" / "runs.parquet")
    from lrcontrol.tasks import get_task

    # generate(200, seed=0), then the instances of generate(200, seed=1) not already in it, appended, but
    # for the two whose 2-step budget affords no MF-HPO baseline (SMAC-MF's smallest fidelity × η = 3 steps)
    first_draw = [i.task for i in generate(200, seed=0)]
    second_draw = [i.task for i in generate(200, seed=1) if i.task not in set(first_draw)]
    too_short = [t for t in second_draw if get_task(t).budget < 3]
    assert len(second_draw) == 182 and len(too_short) == 2
    assert list(runs.instance.drop_duplicates()) == first_draw + [t for t in second_draw if t not in too_short]
    assert set(runs.member) == set(PORTFOLIO) | {baselines.GRID_NAME, baselines.MFHPO_NAME}
    members = runs[runs.member.isin(list(PORTFOLIO))]
    for seed in (0, 1):  # every member on every instance, on both seeds
        on = members[members.seed == seed]
        assert len(on) == len(PORTFOLIO) * runs.instance.nunique()
        assert (on.groupby("instance").member.nunique() == len(PORTFOLIO)).all()
    for name, spec in PORTFOLIO.items():
        assert set(runs[runs.member == name].spec) == {spec}
    for baseline in (baselines.GRID_NAME, baselines.MFHPO_NAME):  # one seed-0 row per instance
        rows = runs[runs.member == baseline]
        assert set(rows.seed) == {0} and (rows.groupby("instance").size() == 1).all()
        assert rows.instance.nunique() == runs.instance.nunique()
    assert runs.trace_lr.map(len).max() <= TRACE_POINTS


def test_the_docs_example_runs(monkeypatch, capsys):
    import re

    text = (REPO / "docs" / "selection-metadata.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(REPO)
    exec(compile(code, "selection-metadata.md", "exec"), {})
    assert "rastrigin" in capsys.readouterr().out


def _export_command(built, tmp_path, monkeypatch, draw):
    """`select build --export-only` of the built store into tmp_path/out, over the instances `draw(n, seed)`
    gives and the two members: (the output folder, the command's arguments)."""
    import lrcontrol.select.instances as instances_module

    store, _ = built
    monkeypatch.setattr(instances_module, "generate", draw)
    monkeypatch.setattr("lrcontrol.select.portfolio.PORTFOLIO", TWO)
    out = tmp_path / "out"
    return out, ["select", "build", "--export-only", "--store", str(store), "--out", str(out), "--json"]


def test_a_member_added_later_is_appended_without_touching_the_rows_already_shipped(built, tmp_path, monkeypatch):
    out, base = _export_command(built, tmp_path, monkeypatch, lambda n, seed: TINY)
    first = CliRunner().invoke(app, [*base, "--members", "adamw"])
    assert first.exit_code == 0, first.output
    shipped = read_runs(out / "runs.parquet")
    assert set(shipped.member) == {"adamw"} and len(shipped) == 2
    added = CliRunner().invoke(app, [*base, "--members", "prodigy", "--append"])
    assert added.exit_code == 0, added.output
    assert '"added": 2' in added.output
    now = read_runs(out / "runs.parquet")
    assert len(now) == 4 and now.iloc[:2].reset_index(drop=True).equals(shipped)
    assert set(now.iloc[2:].member) == {"prodigy"}
    again = CliRunner().invoke(app, [*base, "--members", "prodigy", "--append"])
    assert '"added": 0' in again.output and read_runs(out / "runs.parquet").equals(now)


def test_append_and_members_refuse_bad_input_before_writing(built, tmp_path):
    store, _ = built
    out = tmp_path / "out"
    base = ["select", "build", "--export-only", "--store", str(store), "--out", str(out)]
    missing = CliRunner().invoke(app, [*base, "--append"])
    assert missing.exit_code == 2 and "no " in missing.output and "to append to" in missing.output
    unknown = CliRunner().invoke(app, [*base, "--members", "prodigi"])
    assert unknown.exit_code == 2 and "did you mean 'prodigy'" in unknown.output
    assert not out.exists()


def test_another_generator_seed_appends_only_the_instances_not_yet_shipped(built, tmp_path, monkeypatch):
    # seed 0 draws the first instance, seed 1 both (the "Revisiting" ones repeat across seeds the same way)
    out, base = _export_command(built, tmp_path, monkeypatch, lambda n, seed: TINY[: seed + 1])
    first = CliRunner().invoke(app, [*base, "--seed", "0"])
    assert first.exit_code == 0, first.output
    shipped = read_runs(out / "runs.parquet")
    assert set(shipped.instance) == {TINY[0].task} and len(shipped) == 3  # two members and the grid
    added = CliRunner().invoke(app, [*base, "--seed", "1", "--append", "--new-instances"])
    assert added.exit_code == 0, added.output
    assert '"already_present": 1' in added.output and '"instances": 1' in added.output
    assert '"added": 3' in added.output
    now = read_runs(out / "runs.parquet")
    assert len(now) == 6 and now.iloc[:3].reset_index(drop=True).equals(shipped)
    assert set(now.iloc[3:].instance) == {TINY[1].task}
    nothing_new = CliRunner().invoke(app, [*base, "--seed", "0", "--append", "--new-instances"])
    assert nothing_new.exit_code == 2 and "already holds all 1 drawn instances" in nothing_new.output
    assert read_runs(out / "runs.parquet").equals(now)


def test_new_instances_needs_append(built, tmp_path):
    store, _ = built
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["select", "build", "--export-only", "--store", str(store), "--out", str(out), "--new-instances"]
    )
    assert result.exit_code == 2 and "give --append too" in result.output
    assert not out.exists()
