"""Meta-training of learned(): a tiny policy trained in seconds, the same seed gives the same weights, a killed
training resumes to the same weights, held-out families never enter training, bad input is refused."""

from __future__ import annotations

import json
from concurrent.futures import Future

import pandas as pd
import pytest
from typer.testing import CliRunner

from lrcontrol.bench.executor import Executor, train_one
from lrcontrol.cli import app
from lrcontrol.control.learned import load_policy
from lrcontrol.errors import LRControlError
from lrcontrol.select import learn

TASKS = ["sphere-10", "iris-logreg"]
REFERENCE = ["adamw(lr=0.001) + warmup() + cosine()", "adamw(lr=0.01) + warmup() + cosine()"]


class InProcess(Executor):
    """Each run trained at once in this process (the test's executor); counts what it trained."""

    checkpoint_dir, checkpoint_seconds = None, 30.0

    def __init__(self):
        self.trained = 0

    def submit(self, run):
        self.trained += 1
        future = Future()
        future.set_result(train_one(run, None, 30.0))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.fixture(scope="module")
def anchors():
    rows, cost = learn.reference_rows(TASKS, REFERENCE, InProcess(), size="smoke")
    assert cost["runs"] == 4
    return learn.Anchors.from_runs(pd.DataFrame(rows), TASKS)


def settings(seed=0, generations=2):
    return learn.Settings(
        instances=TASKS, held_out_families=["image", "language"], seed=seed, generations=generations,
        popsize=3, pairs=2, size="smoke",
    )  # fmt: skip


def test_a_tiny_policy_trains_and_the_seed_gives_the_same_weights(anchors, tmp_path):
    executor = InProcess()
    first = learn.train(settings(), anchors, executor)
    assert executor.trained == 2 * 3 * 2
    again = learn.train(settings(), anchors, InProcess())
    other = learn.train(settings(seed=1), anchors, InProcess())
    assert first["weights"] == again["weights"] and first["weights"] != other["weights"]
    assert first["trained"]["compute"]["runs"] == 12 and len(first["trained"]["history"]) == 2
    path = tmp_path / "p.json"
    learn.write_policy(first, path)
    assert load_policy(str(path))["weights"] == first["weights"]  # a valid policy file, usable as learned(policy=…)


def test_a_killed_training_resumes_to_the_same_weights_without_rerunning_scored_runs(anchors, tmp_path):
    reference = learn.train(settings(), anchors, InProcess())
    checkpoint = tmp_path / "state.json"
    learn.train(settings(generations=1), anchors, InProcess(), checkpoint)  # a shorter search, then extended

    class Stop(Exception):
        pass

    calls = 0

    def stop_after_two():
        nonlocal calls
        calls += 1
        if calls == 6 + 2:  # the replayed generation, then two runs of the second
            raise Stop

    with pytest.raises(Stop):
        learn.train(settings(), anchors, InProcess(), checkpoint, on_run=stop_after_two)
    assert len(json.loads(checkpoint.read_text())["scored"]) == 2
    executor = InProcess()
    resumed = learn.train(settings(), anchors, executor, checkpoint)
    assert executor.trained == 6 - 2 and resumed["weights"] == reference["weights"]
    with pytest.raises(LRControlError, match="other settings"):
        learn.train(settings(seed=3), anchors, InProcess(), checkpoint)


def test_held_out_families_never_enter_training(anchors):
    bad = settings()
    bad.instances = [*TASKS, "fmnist-mlp"]
    with pytest.raises(LRControlError, match="held-out family image"):
        learn.train(bad, anchors, InProcess())
    runs = pd.DataFrame(
        {"instance": ["a", "b", "c"], "family": ["tabular", "image", "synthetic"], "spec": "adamw()", "wall_time": 1.0}
    )
    assert learn.training_pool(runs, ["image"], None, 0) == ["a", "c"]


def test_a_learned_members_rows_move_neither_the_anchors_nor_the_pool(anchors):
    """The meta-dataset holds the portfolio's adamw-learned rows: a policy is not judged against its own
    runs, and the shipped policy stays reproducible on the meta-dataset that contains them."""
    rows = pd.DataFrame(learn.reference_rows(TASKS, REFERENCE, InProcess(), size="smoke")[0]).assign(family="tabular")
    better = rows.copy()
    better["member"], better["spec"] = "adamw-learned", "adamw(lr=0.001) + learned()"
    better["final_metric"] = better["final_metric"] - 10.0 * better["higher_is_better"].map({True: -1, False: 1})
    better["wall_time"] = 99.0
    both = pd.concat([rows, better], ignore_index=True)
    assert learn.policy_free(both).equals(rows)
    assert learn.Anchors.from_runs(both, TASKS) == anchors
    assert learn.training_pool(both, [], None, 0, max_seconds=50.0) == learn.training_pool(rows, [], None, 0, 50.0)
    assert len(learn.training_pool(rows, [], None, 0, max_seconds=50.0)) == len(TASKS)


def test_the_cli_refuses_bad_input_before_running_anything(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["learn", "train", "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "--runs" in result.output
    result = runner.invoke(app, ["learn", "train", "--runs", str(tmp_path / "none.parquet")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["learn", "train", "--tasks", "sphere-10", "--lrs", "1e-3,x"])
    assert result.exit_code == 2 and "--lrs" in result.output
    assert not (tmp_path / "p.json").exists()


def test_the_shipped_policy_records_the_meta_dataset_it_was_trained_on_the_first_rows_of_the_shipped_one():
    """The policy was trained on the 5 600-row meta-dataset of generate(200, seed=0); the instances of
    generate(200, seed=1) were appended to it later (metadata/README.md), every earlier row kept as it was.
    Its training instances are drawn again from those first rows by the documented command's settings."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runs = pd.read_parquet(root / "metadata" / "runs.parquet")
    trained = load_policy("default")["trained"]
    recorded = trained["meta_dataset"]
    assert recorded["rows"] == 5600 < len(runs)
    assert f"SHA-256 `{recorded['sha256']}`" in (root / "metadata" / "README.md").read_text()
    settings = trained["settings"]
    assert settings["held_out_families"] == ["image", "language"] and settings["seed"] == 0
    first = runs.iloc[: recorded["rows"]]
    assert first.instance.nunique() == 200 and not set(first.instance) & set(runs.iloc[recorded["rows"] :].instance)
    pool = learn.training_pool(first, settings["held_out_families"], 40, settings["seed"], max_seconds=0.6)
    assert pool == settings["instances"]


def test_a_policy_with_the_lr_level_feature_trains_with_nine_weights(anchors):
    from lrcontrol.control.learned import ALL_FEATURES

    level = settings(generations=1)
    level.start = [0.0] * (len(ALL_FEATURES) + 1)
    policy = learn.train(level, anchors, InProcess())
    assert policy["features"] == list(ALL_FEATURES) and len(policy["weights"]) == len(ALL_FEATURES) + 1
    bad = settings()
    bad.start = [0.0] * 5
    with pytest.raises(LRControlError, match="start must have 8 numbers, or 9"):
        bad.check()
