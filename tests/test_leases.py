"""Concurrent sweeps on one store: runs are claimed with leases, so each is trained once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lrcontrol.bench import sweep_runner
from lrcontrol.bench.leases import Leases, owner_is_gone
from lrcontrol.bench.store import Store
from lrcontrol.bench.sweep import load_sweep

SWEEP = """
name = "t"
size = "smoke"
seeds = 2
lrs = [0.02, 0.05]
budget = 200
tasks = ["sphere-50-noisy"]
methods = ["sgd + constant()", "adam + warmup(0.2) + cosine()"]
"""
RUNS = 8


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "t.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def reference(comparable, sweep_file, tmp_path_factory) -> dict[str, dict]:
    """One sweep alone on two workers."""
    store = tmp_path_factory.mktemp("ref") / "ref.db"
    with Store(store) as db:
        outcome = sweep_runner.run_local(load_sweep(sweep_file).runs(), db, workers=2)
    assert outcome.recorded == RUNS
    return comparable(store)


def test_two_sweeps_at_once_train_each_run_once_and_match_a_single_sweep(comparable, sweep_file, reference, tmp_path):
    store, log = tmp_path / "s.db", tmp_path / "trained.log"
    env = dict(os.environ, LRCONTROL_TRAIN_LOG=str(log))
    command = [sys.executable, "-m", "lrcontrol", "sweep", str(sweep_file), "--store", str(store), "--workers", "1"]
    first = subprocess.Popen([*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    results = [json.loads(out) for out, _ in outputs]
    trained = Counter(log.read_text().split())
    assert set(trained) == set(reference) and set(trained.values()) == {1}  # every run trained exactly once
    assert sum(r["recorded"] for r in results) == RUNS  # and recorded by the sweep that trained it
    assert all(r["recorded"] + r["already_done"] == RUNS for r in results)  # each saw the whole sweep done
    assert comparable(store) == reference
    with Store(store, readonly=True) as db:
        assert db.query("SELECT count(*) AS n FROM leases") == [{"n": 0}]  # every lease released on exit


def test_two_dask_clients_on_one_store_share_the_runs(comparable, sweep_file, reference, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    log = tmp_path / "trained.log"
    monkeypatch.setenv("LRCONTROL_TRAIN_LOG", str(log))  # in-process workers see this process's environment
    runs = load_sweep(sweep_file).runs()
    outcomes: list = []
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:

        def client() -> None:
            with Store(tmp_path / "s.db") as db:  # one connection per client, as two machines would have
                outcomes.append(sweep_runner.run_dask(runs, db, cluster.scheduler_address))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    assert len(outcomes) == 2 and sum(o.recorded for o in outcomes) == RUNS
    assert set(Counter(log.read_text().split()).values()) == {1}
    assert comparable(tmp_path / "s.db") == reference


def test_leases_of_a_dead_sweep_on_this_host_are_taken_over_at_once(comparable, sweep_file, reference, tmp_path):
    runs = load_sweep(sweep_file).runs()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer exists
    with Store(tmp_path / "s.db") as db:
        with db.transaction():
            for r in runs:  # a sweep killed with all its runs claimed, leases valid for an hour
                db.connection.execute(
                    "INSERT INTO leases VALUES (?, ?, ?)",
                    (r.key, f"{socket.gethostname()}/{dead.pid}/x", time.time() + 3600),
                )
        started = time.monotonic()
        outcome = sweep_runner.run_local(runs, db, workers=2)
        assert time.monotonic() - started < 300  # not an hour
        assert db.query("SELECT count(*) AS n FROM leases") == [{"n": 0}]
    assert outcome.recorded == RUNS
    assert comparable(tmp_path / "s.db") == reference


def test_a_live_sweeps_lease_is_respected_and_an_expired_one_taken_over(sweep_file, tmp_path):
    runs = load_sweep(sweep_file).runs()
    with Store(tmp_path / "s.db") as db:
        other = Leases(db)
        other.owner = "another-host/1/x"  # alive as far as this host can tell
        claimed, _, _ = other.claim([r.key for r in runs], 2)
        mine = Leases(db)
        got, recorded, held = mine.claim([r.key for r in runs], RUNS)
        assert set(claimed) == held and set(got) == {r.key for r in runs} - held and not recorded
        mine.release_all()
        db.connection.execute("UPDATE leases SET expires = 0")  # the other host stopped renewing
        got, _, held = mine.claim([r.key for r in runs], RUNS)
        assert len(got) == RUNS and not held
    assert not owner_is_gone("another-host/1/x")
    assert not owner_is_gone(f"{socket.gethostname()}/{os.getpid()}/x")
