"""Sweeps: expansion, includes, and executors that survive SIGKILL, Ctrl-C and run on Dask alike."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import pytest

from lrcontrol.bench import sweep_runner
from lrcontrol.bench.executor import Executor, train_one
from lrcontrol.bench.store import Store
from lrcontrol.bench.sweep import load_sweep
from lrcontrol.errors import LRControlError

SWEEP = """
name = "t"
size = "smoke"
seeds = 2
lrs = [0.02, 0.05]
tasks = ["sphere-50-noisy"]
methods = ["sgd + constant()", "adam + warmup(0.2) + cosine()"]
"""
RUNS = 8


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def recorded(store_path: Path) -> int:
    with Store(store_path) as db:
        return db.count()


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("sweep") / "t.toml", SWEEP)


@pytest.fixture(scope="module")
def reference(comparable, sweep_file, tmp_path_factory) -> dict[str, dict]:
    """The uninterrupted sweep on two local workers."""
    store = tmp_path_factory.mktemp("ref") / "ref.db"
    runs = load_sweep(sweep_file).runs()
    with Store(store) as db:
        outcome = sweep_runner.run_local(runs, db, workers=2)
    assert (outcome.total, outcome.recorded, outcome.skipped) == (RUNS, RUNS, 0)
    return comparable(store)


def test_a_sweep_expands_to_tasks_times_methods_times_lrs_times_seeds(sweep_file):
    runs = load_sweep(sweep_file).runs()
    assert len(runs) == RUNS == len({r.key for r in runs})
    assert {r.spec for r in runs} == {
        "sgd(lr=0.02) + constant()",
        "sgd(lr=0.05) + constant()",
        "adam(lr=0.02) + warmup(steps=0.2) + cosine()",
        "adam(lr=0.05) + warmup(steps=0.2) + cosine()",
    }
    assert {r.seed for r in runs} == {0, 1} and {r.budget for r in runs} == {50}


def test_includes_add_runs_and_overlaps_are_run_once(tmp_path, sweep_file):
    write(tmp_path / "t.toml", SWEEP)
    outer = write(
        tmp_path / "outer.toml",
        'include = ["t.toml"]\nsize = "smoke"\nseeds = [1, 2]\nlrs = [0.05]\n'
        'tasks = ["sphere-50-noisy", { name = "rosenbrock-10", budget = 20 }]\nmethods = ["sgd + constant()"]\n',
    )
    runs = load_sweep(outer).runs()
    # 8 included + sphere (seed 2 new; seed 1 overlaps) + rosenbrock (2 seeds)
    assert len(runs) == RUNS + 1 + 2
    assert {r.budget for r in runs if r.task == "rosenbrock-10"} == {20}


def test_budget_and_size_overrides_apply_to_every_task(sweep_file):
    runs = load_sweep(sweep_file, budget=7).runs()
    assert {r.budget for r in runs} == {7}


def test_rerunning_a_finished_sweep_runs_nothing(comparable, sweep_file, reference, tmp_path):
    store = tmp_path / "s.db"
    runs = load_sweep(sweep_file).runs()
    with Store(store) as db:
        first = sweep_runner.run_local(runs[:3], db, workers=1)
        again = sweep_runner.run_local(runs, db, workers=2)
    assert first.recorded == 3 and (again.skipped, again.recorded) == (3, RUNS - 3)
    assert comparable(store) == reference


@pytest.mark.parametrize("point", ["step-35", "checkpoint-write"])
def test_a_worker_killed_mid_run_or_mid_write_loses_nothing_and_changes_nothing(
    comparable, point, sweep_file, reference, tmp_path
):
    store, marker = tmp_path / "s.db", tmp_path / "marker"
    os.environ["LRCONTROL_FAULT"] = f"{point}@{marker}"
    try:
        with Store(store) as db:
            outcome = sweep_runner.run_local(
                load_sweep(sweep_file).runs(),
                db,
                workers=2,
                checkpoint_dir=str(tmp_path / "ckpt"),
                checkpoint_seconds=0,
            )
    finally:
        del os.environ["LRCONTROL_FAULT"]
    assert marker.exists()  # a worker really was SIGKILLed, and the pool was replaced
    assert outcome.recorded == RUNS
    assert comparable(store) == reference
    assert not list((tmp_path / "ckpt").glob("*.pt"))  # checkpoints go once their runs are recorded


def test_the_sweep_killed_while_writing_the_store_restarts_to_the_uninterrupted_result(
    comparable, sweep_file, reference, tmp_path
):
    store, marker = tmp_path / "s.db", tmp_path / "marker"
    # The coordinator (which writes the store) is SIGKILLed inside the transaction of a run's INSERT.
    env = dict(os.environ, LRCONTROL_FAULT=f"store-write@{marker}")
    command = [sys.executable, "-m", "lrcontrol", "sweep", str(sweep_file), "--store", str(store), "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert done.returncode == -9 and marker.exists()
    with Store(store) as db:
        assert db.integrity_ok()
        assert db.count() == 0  # the run being written is not half there
        checkpoints = Path(str(store) + ".checkpoints")  # the CLI's default; the killed run's final one is there
        assert list(checkpoints.glob("*.pt"))
        outcome = sweep_runner.run_local(load_sweep(sweep_file).runs(), db, workers=2, checkpoint_dir=str(checkpoints))
    assert outcome.recorded == RUNS
    assert comparable(store) == reference
    assert not list(checkpoints.glob("*.pt"))


def test_ctrl_c_stops_cleanly_and_the_next_call_continues(comparable, sweep_file, reference, tmp_path):
    store = tmp_path / "s.db"
    runs = load_sweep(sweep_file).runs()

    def interrupt(run, trajectory):
        raise KeyboardInterrupt

    with Store(store) as db:
        with pytest.raises(sweep_runner.Interrupted) as stop:
            sweep_runner.run_local(runs, db, workers=2, on_done=interrupt)
        assert stop.value.done == db.count() >= 1 and stop.value.total == RUNS
        assert "again" in str(stop.value)
        sweep_runner.run_local(runs, db, workers=2)
    assert comparable(store) == reference


def test_a_dask_local_cluster_gives_the_same_results_as_local_workers(comparable, sweep_file, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    store = tmp_path / "s.db"
    # One in-process worker with one thread: runs in threads of one process would share torch's global RNG.
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with Store(store) as db:
            outcome = sweep_runner.run_dask(load_sweep(sweep_file).runs(), db, cluster.scheduler_address)
    assert outcome.recorded == RUNS
    assert comparable(store) == reference


class InProcess(Executor):
    """A backend written against the interface alone: each run trained at once, in this process."""

    checkpoint_dir, checkpoint_seconds = None, 30.0

    def submit(self, run):
        future = Future()
        future.set_result(train_one(run, None, 30.0))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_a_sweep_is_a_client_of_the_executor_interface_any_backend_drives_it(
    comparable, sweep_file, reference, tmp_path
):
    done = []
    with Store(tmp_path / "s.db") as db, InProcess() as executor:
        outcome = sweep_runner.run_sweep(
            load_sweep(sweep_file).runs(), db, executor, on_done=lambda r, t: done.append(r)
        )
    assert outcome.recorded == RUNS == len(done)
    assert comparable(tmp_path / "s.db") == reference


def test_pending_runs_skip_the_store_and_interleave_the_tasks(tmp_path):
    suite = write(
        tmp_path / "two.toml",
        'size = "smoke"\nseeds = 2\nlrs = [0.05]\ntasks = ["sphere-10", "rosenbrock-10"]\nmethods = ["sgd + constant()"]\n',
    )
    runs = load_sweep(suite).runs()
    assert [r.task for r in runs] == ["sphere-10", "sphere-10", "rosenbrock-10", "rosenbrock-10"]
    with Store(tmp_path / "s.db") as db:
        assert [r.task for r in sweep_runner.pending_runs(db, runs)] == ["sphere-10", "rosenbrock-10"] * 2
        sweep_runner.run_sweep(runs[:1], db, InProcess())
        assert [r.key for r in sweep_runner.pending_runs(db, runs)] == [r.key for r in runs[1:]]


def test_an_unreachable_scheduler_is_a_clear_error(sweep_file, tmp_path):
    with Store(tmp_path / "s.db") as db:
        with pytest.raises(LRControlError, match="cannot reach the Dask scheduler"):
            sweep_runner.run_dask(load_sweep(sweep_file).runs(), db, "tcp://127.0.0.1:1", connect_timeout=1)


def test_a_dask_worker_with_several_threads_is_refused(sweep_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with Store(tmp_path / "s.db") as db:
            with pytest.raises(LRControlError, match="nthreads 1"):
                sweep_runner.run_dask(load_sweep(sweep_file).runs(), db, cluster.scheduler_address)


def test_a_worker_killed_from_outside_at_an_arbitrary_moment_changes_nothing(comparable, sweep_file, tmp_path):
    """kill -9 from outside, not at a chosen point: whatever the worker was doing, the results stand."""
    import threading
    import time

    psutil = pytest.importorskip("psutil")
    runs = load_sweep(sweep_file, budget=300).runs()
    with Store(tmp_path / "ref.db") as db:
        sweep_runner.run_local(runs, db, workers=2)
    outcome: list = []

    def sweep() -> None:
        with Store(tmp_path / "s.db") as db:
            outcome.append(
                sweep_runner.run_local(runs, db, workers=2, checkpoint_dir=str(tmp_path / "ck"), checkpoint_seconds=0)
            )

    thread = threading.Thread(target=sweep)
    thread.start()
    me, killed = psutil.Process(), None
    deadline = time.monotonic() + 60
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        # Workers are forked by the fork server, a child of this process: they are its grandchildren.
        workers = [p for p in me.children(recursive=True) if p.ppid() != me.pid]
        if workers and (tmp_path / "s.db").exists() and recorded(tmp_path / "s.db") >= 1:
            killed = workers[0].pid
            os.kill(killed, 9)
        time.sleep(0.05)
    thread.join(timeout=120)
    assert killed is not None, "the sweep finished before a worker could be killed"
    assert outcome and outcome[0].recorded == RUNS
    assert comparable(tmp_path / "s.db") == comparable(tmp_path / "ref.db")


def _failing(monkeypatch, spec_part: str) -> None:
    monkeypatch.setenv("LRCONTROL_FAIL_SPEC", spec_part)


def test_a_run_that_raises_is_reported_the_others_are_recorded_and_the_next_call_retries_it(
    comparable, sweep_file, reference, tmp_path, monkeypatch
):
    store, ckpt = tmp_path / "s.db", tmp_path / "ckpt"
    runs = load_sweep(sweep_file).runs()
    _failing(monkeypatch, "adam(lr=0.05)")
    failed_seen = []
    with Store(store) as db:
        outcome = sweep_runner.run_local(
            runs, db, workers=2, checkpoint_dir=str(ckpt), on_failed=lambda r, e: failed_seen.append(r.key)
        )
    assert outcome.recorded == RUNS - 2 and recorded(store) == RUNS - 2
    assert sorted(r.seed for r, _ in outcome.failed) == [0, 1]
    assert {r.spec for r, _ in outcome.failed} == {"adam(lr=0.05) + warmup(steps=0.2) + cosine()"}
    assert all("RuntimeError: injected failure" in error and "executor.py" in error for _, error in outcome.failed)
    assert sorted(failed_seen) == sorted(r.key for r, _ in outcome.failed)
    assert sweep_runner.describe(outcome)["failed"][0]["error"].startswith("RuntimeError")

    monkeypatch.delenv("LRCONTROL_FAIL_SPEC")  # the cause is fixed: the same call runs only the failed runs
    with Store(store) as db:
        again = sweep_runner.run_local(runs, db, workers=2, checkpoint_dir=str(ckpt))
    assert (again.skipped, again.recorded, again.failed) == (RUNS - 2, 2, [])
    assert comparable(store) == reference


def test_a_run_that_raises_on_dask_is_reported_and_the_others_are_recorded(sweep_file, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    _failing(monkeypatch, "sgd(lr=0.02)")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with Store(tmp_path / "s.db") as db:
            outcome = sweep_runner.run_dask(load_sweep(sweep_file).runs(), db, cluster.scheduler_address)
    assert outcome.recorded == RUNS - 2 and len(outcome.failed) == 2
    assert all("injected failure" in error for _, error in outcome.failed)
