"""The one-run executor: submit(RunSpec) → a concurrent.futures.Future of the run's Trajectory, on local
workers and on Dask alike (the sweep tests cover kill -9, Ctrl-C and failures through the sweep client)."""

from __future__ import annotations

from concurrent.futures import CancelledError, Future

import pytest

from lrcontrol.bench import DaskExecutor, ExecutorBroken, LocalExecutor, RunSpec, as_completed, run, wait
from lrcontrol.bench.store import run_key
from lrcontrol.errors import LRControlError
from lrcontrol.tasks import get_task


def comparable(trajectory) -> dict:
    out = trajectory.to_dict()
    out.pop("wall_time")
    return out


def the_run(seed: int, spec: str = "sgd(lr=0.05) + cosine()", budget: int = 30) -> RunSpec:
    return RunSpec.create("sphere-10", spec, seed, budget, size="smoke")


def test_a_run_spec_is_canonical_and_keyed_like_the_store():
    spec = RunSpec.create("sphere-10", "sgd(lr=0.05)+cosine()", 3, 30, size="smoke")
    assert spec.spec == "sgd(lr=0.05) + cosine()"
    assert spec.key == run_key(get_task("sphere-10", "smoke").key, spec.spec, 3, 30)
    longer = RunSpec.create("sphere-10", "sgd(lr=0.05) + cosine()", 3, 30, size="smoke", horizon=60)
    assert longer.key != spec.key and longer.horizon == 60
    for bad in ({"seed": -1}, {"budget": 0}, {"horizon": 10}):
        args = {"seed": 0, "budget": 30, **bad}
        with pytest.raises(LRControlError):
            RunSpec.create("sphere-10", "sgd(lr=0.05)", args["seed"], args["budget"], horizon=args.get("horizon"))


def test_local_futures_hold_the_same_trajectories_as_the_engine_called_here():
    runs = [the_run(seed) for seed in range(3)]
    with LocalExecutor(workers=2) as executor:
        futures = {executor.submit(r): r for r in runs}
        assert all(isinstance(f, Future) for f in futures)
        done = {futures[f].seed: f.result() for f in as_completed(futures)}
    task = get_task("sphere-10", "smoke")
    for r in runs:
        assert comparable(done[r.seed]) == comparable(run(task, r.spec, r.seed, r.budget))


def test_a_tuner_can_submit_one_trial_at_a_time_and_learn_from_each(tmp_path):
    """What the tuner does: submit, wait for the result, choose the next trial from it."""
    lrs, losses = [0.5], []
    with LocalExecutor(workers=1, checkpoint_dir=str(tmp_path)) as executor:
        for _ in range(3):
            trajectory = executor.submit(the_run(0, f"sgd(lr={lrs[-1]})")).result()
            losses.append(trajectory.val[-1]["loss"])
            lrs.append(lrs[-1] / 2)
        # a horizon longer than the budget: the start of a run a multi-fidelity tuner may extend later
        partial = executor.submit(
            RunSpec.create("sphere-10", "sgd(lr=0.05) + cosine()", 0, 30, size="smoke", horizon=60)
        ).result()
        # ... and extended to its horizon from its checkpoint: the same as one uninterrupted run
        start = RunSpec.create("sphere-10", "sgd(lr=0.05) + cosine()", 0, 30, size="smoke", horizon=60)
        extended = executor.submit(
            RunSpec.create("sphere-10", "sgd(lr=0.05) + cosine()", 0, 60, size="smoke", resume_from=start.key)
        ).result()
    assert len(set(losses)) == 3 and partial.horizon == 60 and partial.steps == 30
    assert len(list(tmp_path.glob("*.pt"))) == 5  # each run checkpointed under its key (the client deletes them)
    whole = run(get_task("sphere-10", "smoke"), "sgd(lr=0.05) + cosine()", 0, 60)
    assert extended.train_loss == whole.train_loss and extended.val == whole.val
    record = start.record(partial)  # what the tuner learns from: the run record, scored once
    assert record.key == start.key and record.final_metric == partial.val[-1]["loss"]


def test_a_run_that_raises_resolves_its_future_with_the_error_and_the_others_go_on(monkeypatch):
    monkeypatch.setenv("LRCONTROL_FAIL_SPEC", "lr=0.07")
    with LocalExecutor(workers=2) as executor:
        bad, good = executor.submit(the_run(0, "sgd(lr=0.07)")), executor.submit(the_run(0))
        finished, _ = wait([bad, good])
    assert len(finished) == 2 and good.result().steps == 30
    with pytest.raises(RuntimeError, match="injected failure"):
        bad.result()


def test_a_cancelled_run_never_runs_and_a_closed_executor_takes_no_more_runs():
    executor = LocalExecutor(workers=1)
    first = executor.submit(the_run(0, budget=200))
    queued = [executor.submit(the_run(seed, budget=200)) for seed in (1, 2, 3)]
    assert queued[-1].cancel()
    assert queued[-1] in wait([queued[-1]], timeout=60).done  # a cancel wakes whoever waits on the run
    assert first.result().steps == 200
    executor.shutdown()
    assert queued[-1].cancelled() and all(f.result().steps == 200 for f in queued[:-1])
    with pytest.raises(CancelledError):
        queued[-1].result()
    with pytest.raises(LRControlError, match="shut down"):
        executor.submit(the_run(0))


def test_shutdown_with_cancel_stops_the_runs_at_once(tmp_path):
    executor = LocalExecutor(workers=1, checkpoint_dir=str(tmp_path), checkpoint_seconds=0)
    futures = [executor.submit(the_run(seed, budget=5000)) for seed in range(3)]
    executor.shutdown(wait=False, cancel_futures=True)
    wait(futures, timeout=60)
    assert all(f.done() for f in futures)
    assert any(f.cancelled() for f in futures)


def test_a_dead_worker_is_replaced_and_past_the_restart_limit_every_waiting_run_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("LRCONTROL_FAULT", f"step-10@{tmp_path / 'marker'}")  # the first worker at step 10: kill -9
    with LocalExecutor(workers=1, checkpoint_dir=str(tmp_path), checkpoint_seconds=0) as executor:
        resumed = executor.submit(the_run(0)).result()
    assert (tmp_path / "marker").exists() and executor.restarts == 1
    assert comparable(resumed) == comparable(run(get_task("sphere-10", "smoke"), the_run(0).spec, 0, 30))

    (tmp_path / "marker").unlink()
    with LocalExecutor(workers=1, max_restarts=0) as executor:
        futures = [executor.submit(the_run(seed)) for seed in (0, 1)]
        for future in futures:
            with pytest.raises(ExecutorBroken, match="died 1 times"):
                future.result()
        with pytest.raises(ExecutorBroken):
            executor.submit(the_run(2)).result()


def test_workers_must_be_a_positive_count():
    with pytest.raises(LRControlError, match="workers"):
        LocalExecutor(workers=0)


def test_dask_futures_hold_the_same_trajectories_as_local_ones():
    distributed = pytest.importorskip("distributed")
    runs = [the_run(seed) for seed in range(2)]
    with LocalExecutor(workers=1) as executor:
        local = [comparable(f.result()) for f in [executor.submit(r) for r in runs]]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with DaskExecutor(cluster.scheduler_address) as executor:
            futures = [executor.submit(r) for r in runs]
            assert all(isinstance(f, Future) for f in futures)
            remote = [comparable(f.result(timeout=120)) for f in futures]
    assert remote == local
