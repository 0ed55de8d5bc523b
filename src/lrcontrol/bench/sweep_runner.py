"""Run a sweep's runs on an executor and record them: the sweep is one client of the one-run executor.

The coordinator (this process) skips runs already in the store, submits the rest to an executor
(`LocalExecutor`: single-thread worker processes; `DaskExecutor`: a Dask cluster), and records each
finished run in the store as it comes back — one transaction per run, so a crash anywhere loses at
most the runs in flight. Workers checkpoint each run to `checkpoint_dir/<key>.pt`, so a run whose
worker was killed continues from its last checkpoint, both when the executor replaces a dead worker on
the spot and when the whole sweep is started again. A checkpoint is deleted once its run is recorded.

Ctrl-C: pending runs are cancelled, the workers are stopped, and `Interrupted` reports how many runs
finished; running the same sweep again continues where it stopped.

A run that raises (a bug in an optimizer package, memory, a data file that changed under the sweep)
does not stop the sweep: it is reported in `Outcome.failed` with its error, is not recorded, and keeps
its checkpoint, so running the same sweep again retries only the failed runs (from where they were).
A diverged run is not a failure: divergence is an outcome, recorded like any other. Only an executor
that cannot run anything any more (`ExecutorBroken`: workers that keep dying) stops the sweep.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrcontrol.bench.engine import Trajectory
from lrcontrol.bench.executor import FIRST_COMPLETED, Executor, ExecutorBroken, checkpoint_path, describe_error, wait
from lrcontrol.bench.run_spec import RunSpec
from lrcontrol.bench.store import Store


class Interrupted(Exception):
    """Ctrl-C: the sweep stopped cleanly after recording `done` runs."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} runs; run the same command again to continue")
        self.done, self.total = done, total


@dataclass
class Outcome:
    total: int  # runs in the sweep
    skipped: int  # already in the store
    recorded: int  # recorded by this call
    diverged: int
    failed: list[tuple[RunSpec, str]] = field(default_factory=list)  # raised in the worker: (run, error)


class _Recorder:
    """Writes finished runs to the store, collects failed ones, and tells the progress callbacks."""

    def __init__(
        self,
        store: Store,
        checkpoint_dir: str | None,
        keep_checkpoints: bool,
        on_done: Callable[[RunSpec, Trajectory], None],
        on_failed: Callable[[RunSpec, str], None],
    ) -> None:
        self.store, self.checkpoint_dir, self.keep = store, checkpoint_dir, keep_checkpoints
        self.on_done, self.on_failed = on_done, on_failed
        self.recorded = self.diverged = 0
        self.failed: dict[str, tuple[RunSpec, str]] = {}
        if checkpoint_dir is not None and not keep_checkpoints and Path(checkpoint_dir).is_dir():
            # A crash between recording a run and deleting its checkpoint leaves the file behind.
            finished = store.finished_keys()
            for path in Path(checkpoint_dir).glob("*.pt"):
                if path.stem in finished:
                    path.unlink(missing_ok=True)

    def record(self, run: RunSpec, trajectory: Trajectory) -> None:
        self.store.add(run.record(trajectory))
        self.recorded += 1
        self.diverged += int(trajectory.diverged)
        if not self.keep and (path := checkpoint_path(self.checkpoint_dir, run)) is not None:
            path.unlink(missing_ok=True)
        self.failed.pop(run.key, None)
        self.on_done(run, trajectory)

    def result_of(self, run: RunSpec, future: Any) -> None:
        """Record the run of a finished future, or note its failure; a broken executor is raised."""
        try:
            trajectory = future.result()
        except (ExecutorBroken, KeyboardInterrupt):
            raise
        except Exception as exc:
            error = describe_error(exc)
            self.failed[run.key] = (run, error)
            self.on_failed(run, error)
            return
        self.record(run, trajectory)

    def outcome(self, total: int, skipped: int) -> Outcome:
        return Outcome(total, skipped, self.recorded, self.diverged, list(self.failed.values()))


def pending_runs(store: Store, runs: Iterable[RunSpec]) -> list[RunSpec]:
    """The runs not yet in the store, interleaved across tasks: cheap and costly tasks then share the
    progress bar from the start, so its ETA is honest early on."""
    done = store.finished_keys()
    by_task: dict[tuple[str, str], list[RunSpec]] = {}
    for r in runs:
        if r.key not in done:
            by_task.setdefault((r.task, r.size), []).append(r)
    queues = list(by_task.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def run_sweep(
    runs: list[RunSpec],
    store: Store,
    executor: Executor,
    keep_checkpoints: bool = False,
    on_done: Callable[[RunSpec, Trajectory], None] = lambda r, t: None,
    on_failed: Callable[[RunSpec, str], None] = lambda r, e: None,
    on_elsewhere: Callable[[RunSpec], None] = lambda r: None,
) -> Outcome:
    """Train every run not yet in `store` on `executor` and record each as it finishes (see above).

    Runs are claimed with a lease in the store before they are submitted, as many as the executor has
    workers (`executor.slots()`), so other sweeps on the same store take the rest: each run is trained
    once however many sweeps share the store (`lrcontrol.bench.leases`). Runs another sweep records
    meanwhile are reported to `on_elsewhere` and count as already done. The executor stays open (its
    owner shuts it down), except on Ctrl-C, which stops it."""
    from lrcontrol.bench.leases import LEASE_SECONDS, Leases

    todo = pending_runs(store, runs)
    recorder = _Recorder(store, executor.checkpoint_dir, keep_checkpoints, on_done, on_failed)
    leases = Leases(store)
    queue = {r.key: r for r in todo}  # not claimed by this call yet, in order
    running: dict[Any, RunSpec] = {}
    elsewhere = 0
    try:
        while queue or running:
            free = executor.slots() - len(running)
            if free > 0 and queue:
                claimed, recorded, _ = leases.claim(list(queue), free)
                for key in recorded:  # another sweep recorded it
                    elsewhere += 1
                    on_elsewhere(queue.pop(key))
                for key in claimed:
                    run = queue.pop(key)
                    running[executor.submit(run)] = run
            if not running:
                # what is left is held by other sweeps: wait until they record it or their leases expire
                time.sleep(IDLE_POLL_SECONDS)
                continue
            finished, _ = wait(running, timeout=LEASE_SECONDS / 4, return_when=FIRST_COMPLETED)
            for future in finished:
                run = running.pop(future)
                recorder.result_of(run, future)  # recording the run ends its lease
                if run.key in recorder.failed:
                    leases.release(run.key)
            leases.renew()
    except KeyboardInterrupt:
        executor.shutdown(wait=False, cancel_futures=True)
        raise Interrupted(len(runs) - len(pending_runs(store, runs)), len(runs)) from None
    finally:
        try:
            leases.release_all()
        except sqlite3.Error:  # the store went away under us; the leases expire on their own
            pass
    return recorder.outcome(len(runs), len(runs) - len(todo) + elsewhere)


#: how often a sweep whose remaining runs other sweeps hold looks again
IDLE_POLL_SECONDS = 0.5


def run_local(
    runs: list[RunSpec],
    store: Store,
    workers: int,
    checkpoint_dir: str | None = None,
    checkpoint_seconds: float = 30.0,
    keep_checkpoints: bool = False,
    on_done: Callable[[RunSpec, Trajectory], None] = lambda r, t: None,
    on_failed: Callable[[RunSpec, str], None] = lambda r, e: None,
) -> Outcome:
    """`run_sweep` on a `LocalExecutor` of `workers` single-thread processes."""
    from lrcontrol.bench.local_executor import LocalExecutor

    with LocalExecutor(workers, checkpoint_dir, checkpoint_seconds) as executor:
        return run_sweep(runs, store, executor, keep_checkpoints, on_done, on_failed)


def run_dask(
    runs: list[RunSpec],
    store: Store,
    address: str,
    checkpoint_dir: str | None = None,
    checkpoint_seconds: float = 30.0,
    keep_checkpoints: bool = False,
    on_done: Callable[[RunSpec, Trajectory], None] = lambda r, t: None,
    connect_timeout: float = 10.0,
    on_failed: Callable[[RunSpec, str], None] = lambda r, e: None,
) -> Outcome:
    """`run_sweep` on a `DaskExecutor` connected to the scheduler at `address` (e.g. tcp://10.0.0.5:8786)."""
    from lrcontrol.bench.dask_executor import DaskExecutor

    with DaskExecutor(address, checkpoint_dir, checkpoint_seconds, connect_timeout) as executor:
        return run_sweep(runs, store, executor, keep_checkpoints, on_done, on_failed)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def describe(outcome: Outcome) -> dict[str, Any]:
    return {
        "runs": outcome.total,
        "already_done": outcome.skipped,
        "recorded": outcome.recorded,
        "diverged": outcome.diverged,
        "failed": [
            {"task": r.task, "size": r.size, "spec": r.spec, "seed": r.seed, "key": r.key, "error": e}
            for r, e in outcome.failed
        ],
    }
