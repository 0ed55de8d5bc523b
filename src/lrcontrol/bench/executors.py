"""Execute a sweep's runs: on N single-thread worker processes, or on a Dask cluster.

Both executors follow one protocol. The coordinator (this process) skips runs already in the store,
hands the rest to workers, and records each finished run in the store as it comes back — one
transaction per run, so a crash anywhere loses at most the runs in flight. Workers only train: they
checkpoint each run to `checkpoint_dir/<key>.pt` (atomic rename), so a run whose worker was killed
continues from its last checkpoint, both when the local executor replaces a dead worker on the spot
and when the whole sweep is started again. A checkpoint is deleted once its run is recorded.

Ctrl-C: pending runs are cancelled, the workers are stopped, and `Interrupted` reports how many runs
finished; running the same sweep again continues where it stopped.

A run that raises (a bug in an optimizer package, memory, a data file that changed under the sweep)
does not stop the sweep: it is reported in `Outcome.failed` with its error, is not recorded, and keeps
its checkpoint, so running the same sweep again retries only the failed runs (from where they were).
A diverged run is not a failure: divergence is an outcome, recorded like any other.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrcontrol.bench.engine import Trajectory
from lrcontrol.bench.store import Store
from lrcontrol.bench.sweep import RunSpec
from lrcontrol.errors import LRControlError

#: how many times the local executor replaces dead workers before giving up
MAX_POOL_RESTARTS = 3


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


#: imported once by the fork server, so each worker starts warm (torch's first optimizer imports torch._dynamo)
PRELOAD = [
    "torch",
    "torch._dynamo",
    "lrcontrol.bench.engine",
    "lrcontrol.tasks",
    "lrcontrol.control",
    "lrcontrol.optim",
]


def worker_context() -> multiprocessing.context.BaseContext:
    """Fork server where there is one (workers fork from a warm, single-threaded server), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def lrcontrol_environment() -> dict[str, str]:
    """LRCONTROL_* variables (data and cache paths, test hooks), which a fork server would not pass on."""
    return {k: v for k, v in os.environ.items() if k.startswith("LRCONTROL_")}


def init_worker(environment: dict[str, str], lifeline: Any) -> None:
    """One thread per worker, the coordinator's LRCONTROL_* settings, and Ctrl-C for the coordinator only.

    `lifeline` is the read end of a pipe only the coordinator writes to: it reads EOF when the
    coordinator dies, even by SIGKILL, and the worker then exits instead of waiting forever for work
    (a worker holds its own queue's write end, so it would never see EOF there).
    """
    import threading

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # exactly the coordinator's LRCONTROL_* settings: the fork server was started with the environment
    # of its time, and a variable unset since then must not live on in the workers
    for name in [k for k in os.environ if k.startswith("LRCONTROL_") and k not in environment]:
        del os.environ[name]
    os.environ.update(environment)
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_coordinator, args=(lifeline,), daemon=True).start()


def _exit_with_coordinator(lifeline: Any) -> None:
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(1)


def train_one(run: RunSpec, checkpoint_dir: str | None, checkpoint_seconds: float) -> Trajectory:
    """The worker's job: one run, resuming from its checkpoint if a previous attempt left one."""
    import torch

    from lrcontrol.bench.engine import run as run_engine
    from lrcontrol.tasks import get_task

    torch.set_num_threads(1)
    injected = os.environ.get("LRCONTROL_FAIL_SPEC")  # test hook: runs whose spec contains it raise
    if injected and injected in run.spec:
        raise RuntimeError(f"injected failure (LRCONTROL_FAIL_SPEC={injected!r})")
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{run.key}.pt"
    task = get_task(run.task, run.size)
    return run_engine(
        task, run.spec, run.seed, run.budget, checkpoint=checkpoint, checkpoint_seconds=checkpoint_seconds
    )


def describe_error(exc: BaseException) -> str:
    """One line for a run's exception: its type, message, and the innermost frame that raised it.

    A process pool re-raises a worker's exception here with the worker's traceback only as text (its
    `__cause__`); Dask re-raises it with the remote frames attached. Both name the worker's frame."""
    import re
    import traceback

    where = ""
    cause = exc.__cause__
    frames = re.findall(r'File "([^"]+)", line (\d+)', str(cause)) if type(cause).__name__ == "_RemoteTraceback" else []
    if frames:
        where = f" (at {Path(frames[-1][0]).name}:{frames[-1][1]})"
    elif exc.__traceback__ is not None:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" (at {Path(last.filename).name}:{last.lineno})"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


class _Recorder:
    """Writes finished runs to the store, collects failed ones, and tells the progress callback."""

    def __init__(
        self,
        store: Store,
        checkpoint_dir: str | None,
        keep_checkpoints: bool,
        on_done: Callable,
        on_failed: Callable[[RunSpec, str], None],
    ) -> None:
        from lrcontrol.tasks import get_task

        self.store, self.checkpoint_dir, self.keep = store, checkpoint_dir, keep_checkpoints
        self.on_done, self.on_failed = on_done, on_failed
        self.get_task = get_task
        self.recorded = self.diverged = 0
        self.failed: dict[str, tuple[RunSpec, str]] = {}
        if checkpoint_dir is not None and not keep_checkpoints and Path(checkpoint_dir).is_dir():
            # A crash between recording a run and deleting its checkpoint leaves the file behind.
            finished = store.finished_keys()
            for path in Path(checkpoint_dir).glob("*.pt"):
                if path.stem in finished:
                    path.unlink(missing_ok=True)

    def __call__(self, run: RunSpec, trajectory: Trajectory) -> None:
        self.store.record(self.get_task(run.task, run.size), trajectory, sweep=run.sweep)
        self.recorded += 1
        self.diverged += int(trajectory.diverged)
        if self.checkpoint_dir is not None and not self.keep:
            (Path(self.checkpoint_dir) / f"{run.key}.pt").unlink(missing_ok=True)
        self.failed.pop(run.key, None)
        self.on_done(run, trajectory)

    def result_of(self, run: RunSpec, future: Any) -> None:
        """Record the run of a finished future, or note its failure; a dead worker pool is raised."""
        try:
            trajectory = future.result()
        except (BrokenProcessPool, KeyboardInterrupt):
            raise
        except Exception as exc:
            error = describe_error(exc)
            self.failed[run.key] = (run, error)
            self.on_failed(run, error)
            return
        self(run, trajectory)

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
    """Run on `workers` single-thread processes (forked from a fork server: no state shared with this one)."""
    todo = pending_runs(store, runs)
    skipped = len(runs) - len(todo)
    recorder = _Recorder(store, checkpoint_dir, keep_checkpoints, on_done, on_failed)
    restarts = 0
    context = worker_context()
    lifeline, keep_alive = context.Pipe(duplex=False)
    try:
        while todo:
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=init_worker,
                initargs=(lrcontrol_environment(), lifeline),
            )
            try:
                futures: dict[Future, RunSpec] = {
                    pool.submit(train_one, r, checkpoint_dir, checkpoint_seconds): r for r in todo
                }
                remaining = set(futures)
                while remaining:
                    finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for future in finished:
                        recorder.result_of(futures[future], future)
                todo = []
            except BrokenProcessPool:
                # A worker died (killed, out of memory): replace the pool; runs in flight resume from checkpoints.
                restarts += 1
                if restarts > MAX_POOL_RESTARTS:
                    raise LRControlError(
                        f"worker processes died {restarts} times; the store keeps {recorder.recorded} runs from this "
                        "call — check memory, then run the sweep again to continue"
                    ) from None
                todo = [r for r in pending_runs(store, runs) if r.key not in recorder.failed]
            except KeyboardInterrupt:
                _stop(pool)
                raise Interrupted(len(runs) - len(pending_runs(store, runs)), len(runs)) from None
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        keep_alive.close()
        lifeline.close()
    return recorder.outcome(len(runs), skipped)


def _stop(pool: ProcessPoolExecutor) -> None:
    # The public API cannot stop a running job; terminate its processes (their runs are checkpointed).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


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
    """Run on the Dask cluster at `address` (e.g. tcp://10.0.0.5:8786); results come back here.

    Each Dask worker must run one thread (`dask worker --nthreads 1`, several workers per machine): runs
    sharing a process would share torch's global RNG. The workers need lrcontrol installed, and `checkpoint_dir` (if any) must be a directory they
    can all reach (a shared file system); on a remote cluster without one pass checkpoint_dir=None.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise LRControlError("the Dask executor needs distributed: pip install 'lrcontrol[bench]'") from None
    if not isinstance(address, str) or "://" not in address and ":" not in address:
        raise LRControlError(f"bad scheduler address {address!r}; expected e.g. tcp://127.0.0.1:8786")
    todo = pending_runs(store, runs)
    skipped = len(runs) - len(todo)
    recorder = _Recorder(store, checkpoint_dir, keep_checkpoints, on_done, on_failed)
    try:
        client = Client(address, timeout=f"{connect_timeout}s")
    except (OSError, TimeoutError) as exc:
        raise LRControlError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    futures = []
    try:
        threaded = [a for a, w in client.scheduler_info()["workers"].items() if w.get("nthreads", 1) != 1]
        if threaded:
            # Runs in threads of one process would share torch's global RNG: results would depend on timing.
            raise LRControlError(
                f"Dask workers {', '.join(threaded)} run several threads; start them with one each "
                "(dask worker --nthreads 1, or LocalCluster(threads_per_worker=1))"
            )
        futures = [
            client.submit(train_one, r, checkpoint_dir, checkpoint_seconds, key=f"lrcontrol-{r.key}", retries=2)
            for r in todo
        ]
        by_key = {f.key: r for f, r in zip(futures, todo)}
        for future in as_completed(futures):
            recorder.result_of(by_key[future.key], future)
    except KeyboardInterrupt:
        client.cancel(futures)
        raise Interrupted(len(runs) - len(pending_runs(store, runs)), len(runs)) from None
    finally:
        client.close()
    return recorder.outcome(len(runs), skipped)


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
