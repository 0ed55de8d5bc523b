"""The result store: keys, one-transaction records, crash safety, SQL, Parquet and CSV export."""

from __future__ import annotations

import csv
import multiprocessing
import os
import sqlite3

import pytest
import torch

from lrcontrol.bench.engine import Trajectory, run
from lrcontrol.bench.record import COLUMNS, RunRecord
from lrcontrol.bench.store import Store, method_of, run_key
from lrcontrol.errors import LRControlError
from lrcontrol.tasks import get_task

TASK = "sphere-10"


@pytest.fixture(scope="module")
def finished() -> Trajectory:
    torch.set_num_threads(1)
    return run(get_task(TASK, "smoke"), "sgd(lr=0.05) + cosine()", seed=0, budget=20)


def test_the_run_key_names_task_version_spec_seed_budget_and_horizon():
    base = run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 100)
    assert base == run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 100, 100)
    others = [
        run_key("sphere-10@2/smoke", "sgd(lr=0.1)", 0, 100),
        run_key("sphere-10@1/default", "sgd(lr=0.1)", 0, 100),
        run_key("sphere-10@1/smoke", "sgd(lr=0.2)", 0, 100),
        run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 1, 100),
        run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 200),
        run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 100, 200),
    ]
    assert len({base, *others}) == 7


def test_the_method_is_the_spec_without_its_lr():
    assert method_of("adamw(lr=0.001, weight_decay=0.1) + cosine()") == ("adamw(weight_decay=0.1) + cosine()", 0.001)


def test_a_run_is_recorded_once_with_its_results(tmp_path, finished):
    task = get_task(TASK, "smoke")
    with Store(tmp_path / "r.db") as db:
        assert db.record(task, finished) is True
        assert db.record(task, finished) is False  # the same run again is a no-op
        (row,) = db.records()
    assert row["task"] == "sphere-10@1/smoke" and row["method"] == "sgd() + cosine()" and row["lr"] == 0.05
    assert row["steps"] == 20 and row["diverged"] is False and row["metric"] == task.metric
    assert row["final_metric"] == finished.val[-1][task.metric]
    assert row["trajectory"]["train_loss"] == finished.train_loss


def test_an_unfinished_run_is_never_recorded(tmp_path, finished):
    half = Trajectory.from_dict({**finished.to_dict(), "steps": 10})
    with Store(tmp_path / "r.db") as db:
        with pytest.raises(LRControlError, match="only finished runs"):
            db.record(get_task(TASK, "smoke"), half)
        assert db.count() == 0


def _record_and_die(path, trajectory, marker) -> None:
    os.environ["LRCONTROL_FAULT"] = f"store-write@{marker}"
    with Store(path) as db:
        db.record(get_task(TASK, "smoke"), trajectory)


def test_a_kill_inside_the_write_leaves_a_clean_store_without_the_run(tmp_path, finished):
    path = tmp_path / "r.db"
    other = Trajectory.from_dict({**finished.to_dict(), "seed": 7})
    with Store(path) as db:
        db.record(get_task(TASK, "smoke"), other)
    child = multiprocessing.get_context("fork").Process(target=_record_and_die, args=(path, finished, tmp_path / "m"))
    child.start()
    child.join()
    assert child.exitcode == -9  # SIGKILL between the INSERT and the COMMIT
    with Store(path) as db:
        assert db.integrity_ok()
        assert [r["seed"] for r in db.records()] == [7]
        assert db.record(get_task(TASK, "smoke"), finished) is True


def test_the_store_is_queryable_with_sql(tmp_path, finished):
    with Store(tmp_path / "r.db") as db:
        db.record(get_task(TASK, "smoke"), finished)
        rows = db.query("SELECT method, lr, json_extract(trajectory, '$.steps') AS steps FROM runs")
        assert rows == [{"method": "sgd() + cosine()", "lr": 0.05, "steps": 20}]
        with pytest.raises(LRControlError, match="SQL error"):
            db.query("SELECT nope FROM runs")
    with sqlite3.connect(tmp_path / "r.db") as plain:  # any SQLite client reads it
        assert plain.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_export_to_parquet_and_csv_round_trips(tmp_path, finished):
    pq = pytest.importorskip("pyarrow.parquet")
    with Store(tmp_path / "r.db") as db:
        db.record(get_task(TASK, "smoke"), finished)
        assert db.export(tmp_path / "r.parquet", "parquet") == 1
        assert db.export(tmp_path / "r.csv", "csv") == 1
        with pytest.raises(LRControlError, match="parquet or csv"):
            db.export(tmp_path / "r.xls", "xls")
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert table[0]["spec"] == "sgd(lr=0.05) + cosine()" and table[0]["steps"] == 20
    with open(tmp_path / "r.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["method"] == "sgd() + cosine()" and rows[0]["seed"] == "0"


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LRControlError, match="not an lrcontrol store"):
        Store(junk)
    with pytest.raises(LRControlError, match="no store at"):
        Store(tmp_path / "missing.db", create=False)


def test_the_store_keeps_run_records_whose_fields_are_its_columns(tmp_path, finished):
    task = get_task(TASK, "smoke")
    record = RunRecord.from_run(task, finished, sweep="s")
    assert list(record.to_dict()) == list(COLUMNS) and record.key == run_key(task.key, finished.spec, 0, 20)
    curve = [v[task.metric] for v in finished.val]
    assert record.best_metric == min(curve) and record.final_metric == curve[-1]  # scored once, here
    with Store(tmp_path / "r.db") as db:
        assert db.add(record) is True
        (back,) = db.records()
        (light,) = db.records(trajectories=False)
    assert isinstance(back, RunRecord)
    assert {**back.to_dict(), "finished_at": 0} == {**record.to_dict(), "finished_at": 0}
    assert back.trajectory_object().train_loss == finished.train_loss
    # the mapping the metrics read: every column, and the curve's initial value and area
    assert back["initial"] == curve[0] and "auc" in back and back["final_metric"] == record.final_metric
    assert light.trajectory is None and "initial" not in light
