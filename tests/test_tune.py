"""Tuning: every strategy is reproducible from its seed, promoted trials continue exactly, a killed
tune resumes without repeating a trial, tuned methods carry their cost into the summary, and a
sweep entry with a tuner runs the same on Dask as on local workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrcontrol.bench.engine import run
from lrcontrol.bench.store import Store
from lrcontrol.tasks import get_task
from lrcontrol.tune import STRATEGIES, parse_space, tune
from lrcontrol.tune.strategies import MULTI_FIDELITY

TASK = "iris-logreg"
SPACE = "adam(lr=loguniform(1e-4, 1)) + cosine(min_scale=uniform(0, 0.5))"


def _tune(store: Path, strategy: str = "smac-mf", trials: int = 8, **kwargs):
    if strategy in MULTI_FIDELITY:
        kwargs.setdefault("min_budget", 3)  # fidelities 3, 10, 30 steps: few trials reach every one
    return tune(TASK, SPACE, strategy=strategy, trials=trials, seed=3, size="smoke", store=store, **kwargs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_reaches_the_same_incumbent_from_the_same_seed(strategy, tmp_path):
    first = _tune(tmp_path / "a.db", strategy)
    second = _tune(tmp_path / "b.db", strategy)
    assert first.incumbent == second.incumbent
    assert [t["spec"] for t in first.trials] == [t["spec"] for t in second.trials]
    assert first.trajectory["val"] == second.trajectory["val"]
    assert first.cost_steps == second.cost_steps > 0
    # the incumbent is the best trial at the full budget
    full = [t for t in first.trials if t["budget"] == 30 and t["objective"] is not None]
    assert min(t["objective"] for t in full) == next(t["objective"] for t in full if t["spec"] == first.incumbent)


@pytest.mark.parametrize("strategy", ["smac-bo", "smac-mf"])
def test_a_model_based_tune_goes_on_past_diverged_trials(strategy, tmp_path):
    """SMAC3's random forest cannot fit an infinite crash cost (it aborted with 'Input y contains NaN'
    once a trial diverged); failed trials get a finite cost, and the incumbent is a finished trial."""
    kwargs = {"min_budget": 3} if strategy in MULTI_FIDELITY else {}
    result = tune(
        "sphere-10",
        "sgd(lr=loguniform(1e-3, 1e4))",
        strategy=strategy,
        trials=12,
        seed=0,
        size="smoke",
        budget=30,
        store=tmp_path / "s.db",
        **kwargs,
    )
    failed = [t for t in result.trials if t["objective"] is None]
    assert failed, "the space must make some trials diverge, or this test checks nothing"
    assert len(result.trials) >= 12 - len(failed)
    assert not result.trajectory["diverged"]
    assert result.incumbent in {t["spec"] for t in result.trials if t["objective"] is not None}


def test_a_different_seed_draws_other_configurations(tmp_path):
    a = _tune(tmp_path / "a.db", "random", trials=3)
    b = tune(TASK, SPACE, strategy="random", trials=3, seed=4, size="smoke", store=tmp_path / "b.db")
    assert [t["spec"] for t in a.trials] != [t["spec"] for t in b.trials]


def test_a_promoted_trial_continues_and_equals_the_uninterrupted_run(tmp_path):
    result = _tune(tmp_path / "t.db", "smac-mf", trials=12)
    promoted = [t for t in result.trials if t["continued_from"] > 0]
    assert promoted, "the schedule promoted nothing"
    task = get_task(TASK, "smoke")
    with Store(tmp_path / "t.db") as db:
        for trial in promoted:
            assert trial["cost_steps"] == trial["budget"] - trial["continued_from"]
            stored = db.records("key = ?", [trial["key"]], table="trials")[0]["trajectory"]
            # the same configuration trained in one go, planning for the full budget (a cosine's horizon)
            fresh = run(task, trial["spec"], 3, trial["budget"], horizon=30).to_dict()
            for field in ("train_loss", "lrs", "eval_steps", "val", "test", "steps"):
                assert stored[field] == fresh[field], field
    # cost: every trial's own steps, so promotions count only their new part
    assert result.cost_steps == sum(t["cost_steps"] for t in result.trials)
    assert result.cost_steps < sum(t["budget"] for t in result.trials)


def test_restarts_spend_the_whole_budget_of_each_promotion_and_find_the_same_incumbent(tmp_path):
    continued = _tune(tmp_path / "c.db", "hyperband", trials=12)
    restarted = _tune(tmp_path / "r.db", "hyperband", trials=12, continuation=False)
    assert restarted.incumbent == continued.incumbent
    assert restarted.cost_steps == sum(t["budget"] for t in restarted.trials)
    assert continued.cost_steps < restarted.cost_steps


def test_a_stored_run_is_reused_not_repeated(tmp_path):
    first = _tune(tmp_path / "t.db", "smac-bo", trials=4)
    assert first.trained_steps == first.cost_steps == 4 * 30
    # the same tune with one more trial: the first four are told from the store, only the fifth trains
    again = _tune(tmp_path / "t.db", "smac-bo", trials=5)
    assert [t["reused"] for t in again.trials] == [True] * 4 + [False]
    assert again.trained_steps == 30 and again.cost_steps == 5 * 30


def _cli_tune(store: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lrcontrol", "tune", TASK, SPACE, "--trials", "10", "--size", "smoke"]
    command += ["--seed", "3", "--min-budget", "3", "--store", str(store), "--checkpoint-seconds", "0", "--json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_a_tune_killed_mid_trial_restarts_to_the_same_incumbent_without_repeating_a_trial(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    expected = _tune(tmp_path / "ref.db", "smac-mf", trials=10).to_dict()

    # step 20 is first reached inside a promoted trial (budgets 3, 10, 30): SIGKILL the tune there
    crash = _cli_tune(tmp_path / "t.db", {**env, "LRCONTROL_FAULT": f"step-20@{tmp_path / 'm'}"})
    assert crash.returncode == -9
    with Store(tmp_path / "t.db") as db:
        finished = len(db.records(table="trials"))
        assert db.count() == 0 and 0 < finished < len(expected["trials"])

    resumed = _cli_tune(tmp_path / "t.db", env)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["incumbent"] == expected["incumbent"]
    assert result["cost_steps"] == expected["cost_steps"]
    assert result["test"] == expected["test"]
    assert [t["spec"] for t in result["trials"]] == [t["spec"] for t in expected["trials"]]
    # the finished trials are read back, none is trained again; the killed one resumes from its step-20
    # checkpoint, so this call trains everything after it plus that trial's last steps only
    assert [t["reused"] for t in result["trials"]] == [True] * finished + [False] * (len(result["trials"]) - finished)
    killed = result["trials"][finished]
    assert killed["budget"] > 20 > killed["continued_from"]
    paid_before = sum(t["cost_steps"] for t in result["trials"][:finished]) + (20 - killed["continued_from"])
    assert result["trained_steps"] == result["cost_steps"] - paid_before
    with Store(tmp_path / "t.db") as db:
        assert len(db.records(table="trials")) == len({t["key"] for t in result["trials"]})


def test_tuned_methods_appear_in_the_summary_with_their_cost(tmp_path):
    from typer.testing import CliRunner

    from lrcontrol.cli import app

    store = tmp_path / "s.db"
    result = _tune(store, "smac-mf", trials=8)
    with Store(store) as db:
        db.record(get_task(TASK, "smoke"), run(get_task(TASK, "smoke"), "adam(lr=0.01) + cosine()", 3))
    out = CliRunner().invoke(app, ["summary", str(store), "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["method"]: r for r in json.loads(out.output)["per_method"]}
    assert rows[result.method]["cost_per_run"] == pytest.approx(result.cost)
    assert rows["adam() + cosine()"]["cost_per_run"] == 1.0
    assert result.method.startswith("tune:smac-mf(trials=8, eta=3, min_budget=3) adam(lr=loguniform(0.0001, 1))")


def test_the_lr_finder_prior_counts_its_probe_steps_and_centres_the_first_configuration(tmp_path):
    guided = _tune(tmp_path / "p.db", "smac-bo", trials=4, prior="lr-finder")
    assert guided.probe_steps > 0 and guided.prior_lr is not None
    assert guided.cost_steps == guided.probe_steps + sum(t["cost_steps"] for t in guided.trials)
    lrs = [parse_space(SPACE) and float(t["spec"].split("lr=")[1].split(")")[0]) for t in guided.trials]
    assert any(abs(lr / guided.prior_lr - 1) < 1e-6 for lr in lrs)  # the prior's centre is tried


SWEEP = """
name = "tuned"
size = "smoke"
seeds = 1
tasks = ["iris-logreg"]
methods = ["adam(lr=0.01)", { tune = "adam(lr=loguniform(1e-4, 1))", strategy = "hyperband", trials = 6 }]
"""


def _comparable(store: Path) -> list[tuple]:
    with Store(store) as db:
        return sorted((r["key"], r["method"], r["spec"], r["final_metric"], r["extra_steps"]) for r in db.records())


def test_a_sweep_entry_with_a_tuner_runs_the_same_on_dask_as_on_local_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    from typer.testing import CliRunner

    from lrcontrol.cli import app

    (tmp_path / "s.toml").write_text(SWEEP)
    local = CliRunner().invoke(
        app, ["sweep", str(tmp_path / "s.toml"), "--store", str(tmp_path / "l.db"), "--workers", "2"]
    )
    assert local.exit_code == 0, local.output
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        dask = CliRunner().invoke(
            app,
            [
                "sweep",
                str(tmp_path / "s.toml"),
                "--store",
                str(tmp_path / "d.db"),
                "--scheduler",
                cluster.scheduler_address,
            ],
        )
    assert dask.exit_code == 0, dask.output
    assert _comparable(tmp_path / "l.db") == _comparable(tmp_path / "d.db")
    methods = {row[1] for row in _comparable(tmp_path / "l.db")}
    assert any(m.startswith("tune:hyperband") for m in methods) and "adam()" in methods


def test_the_python_example_in_the_tuning_docs_runs():
    text = (Path(__file__).parent.parent / "docs" / "tuning.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/tuning.md", "exec"), namespace)
    assert namespace["result"].cost == 8.0  # random search: 8 trials at the full budget


def test_trials_asked_in_batches_give_the_same_result_on_worker_processes_as_inline(tmp_path):
    inline = _tune(tmp_path / "a.db", "hyperband", trials=6, batch=3)
    parallel = _tune(tmp_path / "b.db", "hyperband", trials=6, batch=3, workers=2)
    assert [t["spec"] for t in inline.trials] == [t["spec"] for t in parallel.trials]
    assert inline.incumbent == parallel.incumbent and inline.cost_steps == parallel.cost_steps
    assert inline.method.endswith(parallel.method[-20:]) and "batch=3" in inline.method
