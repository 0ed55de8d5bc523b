"""The local executor: runs on N single-thread worker processes forked from a warm fork server.

Why a fork server under `concurrent.futures.ProcessPoolExecutor` rather than the pool alone: a worker
forked from the coordinator would inherit its threads and torch state; spawning each worker fresh costs
seconds of imports. The fork server imports torch and lrcontrol once (`PRELOAD`) and forks clean,
warm, single-threaded workers from itself.

What the pool does not do and this file adds by hand: surviving a dead worker. When a worker dies (kill
-9, out of memory) the pool marks itself broken and fails every queued and running future with
`BrokenProcessPool`. Those runs are not failures of their own: a recovery thread waits for the broken
pool to wind down, starts a new one and resubmits them, and they continue from their checkpoints.
After `MAX_POOL_RESTARTS` replacements every run still waiting fails with `ExecutorBroken`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from lrcontrol.bench.executor import Executor, ExecutorBroken, new_future, settle, train_one
from lrcontrol.errors import LRControlError

if TYPE_CHECKING:
    from lrcontrol.bench.engine import Trajectory
    from lrcontrol.bench.run_spec import RunSpec

#: how many times the local executor replaces dead workers before giving up
MAX_POOL_RESTARTS = 3

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


class LocalExecutor(Executor):
    """`workers` single-thread processes on this machine; see the module docstring.

    The LRCONTROL_* environment variables are read at each pool start (the executor's creation, and
    after a dead worker), so set them before creating the executor.
    """

    def __init__(
        self,
        workers: int,
        checkpoint_dir: str | None = None,
        checkpoint_seconds: float = 30.0,
        max_restarts: int = MAX_POOL_RESTARTS,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise LRControlError(f"workers must be a whole number ≥ 1, got {workers!r}")
        self.workers, self.checkpoint_dir, self.checkpoint_seconds = workers, checkpoint_dir, checkpoint_seconds
        self.max_restarts, self.restarts = max_restarts, 0
        self._context = worker_context()
        self._lifeline, self._keep_alive = self._context.Pipe(duplex=False)
        # RLock: a backend future that is already finished runs its callback inside submit, under the lock
        self._lock = threading.RLock()
        self._generation = 0  # which pool a backend future belongs to: only the current one is restarted
        self._orphans: list[tuple[RunSpec, Future]] = []  # runs of a broken pool, waiting for the next one
        self._recovery: threading.Thread | None = None
        self._broken: ExecutorBroken | None = None
        self._inner: dict[int, Future] = {}  # each run's future in the current pool, by its own future's id
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(lrcontrol_environment(), self._lifeline),
        )

    def slots(self) -> int:
        return self.workers

    def submit(self, run: RunSpec) -> Future[Trajectory]:
        # cancelling a run that has not started withdraws it from the pool
        outer = new_future(on_cancel=lambda: self._withdraw(outer))
        with self._lock:
            if self._closed:
                raise LRControlError("this executor is shut down; create a new one to run more")
            if self._broken is not None:
                outer.set_exception(self._broken)
            elif self._recovery is not None:
                self._orphans.append((run, outer))  # the recovery thread submits it to the new pool
            else:
                self._submit_to_pool(run, outer)
        return outer

    def _submit_to_pool(self, run: RunSpec, outer: Future) -> None:
        generation = self._generation
        try:
            inner = self._pool.submit(train_one, run, self.checkpoint_dir, self.checkpoint_seconds)
        except BrokenProcessPool:  # broken a moment ago; its callbacks have not reached us yet
            self._orphan(run, outer, generation)
            return
        self._inner[id(outer)] = inner
        inner.add_done_callback(lambda f: self._settle(run, outer, generation, f))

    def _withdraw(self, outer: Future) -> None:
        with self._lock:
            inner = self._inner.pop(id(outer), None)
        if inner is not None:
            inner.cancel()

    def _settle(self, run: RunSpec, outer: Future, generation: int, inner: Future) -> None:
        # Called by the pool's management thread (or in submit, if the run finished at once).
        if not inner.cancelled() and isinstance(inner.exception(), BrokenProcessPool):
            self._orphan(run, outer, generation)
            return
        with self._lock:
            self._inner.pop(id(outer), None)
        settle(outer, inner)

    def _orphan(self, run: RunSpec, outer: Future, generation: int) -> None:
        with self._lock:
            if self._closed:
                outer.cancel()
                return
            self._orphans.append((run, outer))
            if self._recovery is None and generation == self._generation:
                self._recovery = threading.Thread(target=self._recover, name="lrcontrol-pool-recovery", daemon=True)
                self._recovery.start()

    def _recover(self) -> None:
        """Wait for the broken pool to wind down (its callbacks have then all run), then start a new one
        and resubmit every run it left; after too many restarts, fail them all."""
        broken_pool = self._pool
        broken_pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            orphans, self._orphans = self._orphans, []
            self._recovery = None
            if self._closed:
                for _, outer in orphans:
                    outer.cancel()
                return
            self.restarts += 1
            if self.restarts > self.max_restarts:
                self._broken = ExecutorBroken(
                    f"worker processes died {self.restarts} times; check memory, then run again to continue "
                    "(finished runs are kept, killed runs resume from their checkpoints)"
                )
                for _, outer in orphans:
                    if not outer.done():
                        outer.set_exception(self._broken)
                return
            self._generation += 1
            self._pool = self._new_pool()
            for run, outer in orphans:
                if not outer.cancelled():
                    self._submit_to_pool(run, outer)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            recovery, pool = self._recovery, self._pool
        if cancel_futures:
            _stop(pool)
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if recovery is not None:
            recovery.join()
        with self._lock:
            for _, outer in self._orphans:
                outer.cancel()
            self._orphans = []
        # Closing our end of the lifeline tells any worker still alive to exit.
        self._keep_alive.close()
        self._lifeline.close()


def _stop(pool: ProcessPoolExecutor) -> None:
    # The public API cannot stop a running job; terminate its processes (their runs are checkpointed).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
