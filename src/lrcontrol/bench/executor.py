"""The executor: give it one run, get back a future of its `Trajectory`.

    from lrcontrol.bench import LocalExecutor, RunSpec, as_completed

    with LocalExecutor(workers=2, checkpoint_dir="runs/") as executor:
        futures = {executor.submit(RunSpec.create("sphere-10", "sgd(lr=0.1) + cosine()", seed, size="smoke")): seed
                   for seed in range(4)}
        for future in as_completed(futures):
            trajectory = future.result()      # raises what the run raised

The futures are `concurrent.futures.Future`s whatever the backend, so `as_completed`, `wait` and
`Future.add_done_callback` work the same on every backend. A tuner submits one trial, learns from its
result and submits the next; a sweep (`lrcontrol.bench.sweep_runner`) submits all its runs at once.

Two backends, one file each: `LocalExecutor` (single-thread worker processes forked from a warm fork
server, `lrcontrol.bench.local_executor`) and `DaskExecutor` (a Dask cluster,
`lrcontrol.bench.dask_executor`). Both keep the guarantees a benchmark needs:

- one thread per run (runs sharing a process would share torch's global RNG: results would depend on
  timing), and a fresh process state per worker, never this process's;
- a run is trained by `train_one`, which checkpoints it to `checkpoint_dir/<key>.pt` (atomic rename) and
  resumes from that file, so a worker killed with SIGKILL costs only the steps since the last
  checkpoint: the local executor replaces its dead workers and resubmits their runs; Dask retries them;
- a run that raises resolves its future with that exception; the other runs go on.

Recording results, deleting checkpoints and progress are the client's business (the sweep runner does
them); an executor only trains.
"""

from __future__ import annotations

import os
import re
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrcontrol.errors import LRControlError

if TYPE_CHECKING:
    from lrcontrol.bench.engine import Trajectory
    from lrcontrol.bench.run_spec import RunSpec

__all__ = [
    "FIRST_COMPLETED",
    "Executor",
    "ExecutorBroken",
    "as_completed",
    "checkpoint_path",
    "describe_error",
    "train_one",
    "wait",
]


class ExecutorBroken(LRControlError):
    """The executor cannot run anything any more (its workers keep dying); a client should stop."""


class Executor(ABC):
    """Runs one `RunSpec` at a time, each on its own single-thread worker; see the module docstring.

    checkpoint_dir: where workers checkpoint runs (None: no checkpoints, a killed run starts over).
    checkpoint_seconds: how often a run is checkpointed (at evaluations; 0: at every evaluation).
    """

    checkpoint_dir: str | None
    checkpoint_seconds: float

    @abstractmethod
    def submit(self, run: RunSpec) -> Future[Trajectory]:
        """Queue one run; its future resolves to the run's `Trajectory` or to the exception it raised.

        `future.cancel()` withdraws a run that has not started yet."""

    def slots(self) -> int:
        """How many runs it trains at once (a sweep keeps this many submitted, and leaves the rest to
        other sweeps on the same store)."""
        return 1

    @abstractmethod
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Release the workers. wait: let queued and running runs finish first. cancel_futures: cancel
        queued runs and stop running ones at once (their checkpoints stay; Ctrl-C does this)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Leaving on an exception (Ctrl-C included) stops the runs still going; otherwise they finish.
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)


def checkpoint_path(checkpoint_dir: str | None, run: RunSpec) -> Path | None:
    """Where the workers checkpoint `run` (None without a checkpoint directory)."""
    return None if checkpoint_dir is None else Path(checkpoint_dir) / f"{run.key}.pt"


def train_one(run: RunSpec, checkpoint_dir: str | None, checkpoint_seconds: float) -> Trajectory:
    """A worker's job: one run, resuming from its checkpoint if a previous attempt left one."""
    import torch

    from lrcontrol.bench.engine import run as run_engine
    from lrcontrol.tasks import get_task

    torch.set_num_threads(1)
    injected = os.environ.get("LRCONTROL_FAIL_SPEC")  # test hook: runs whose spec contains it raise
    if injected and injected in run.spec:
        raise RuntimeError(f"injected failure (LRCONTROL_FAIL_SPEC={injected!r})")
    trained_log = os.environ.get("LRCONTROL_TRAIN_LOG")  # test hook: one line per run a worker starts
    if trained_log:
        with open(trained_log, "a") as log:
            log.write(run.key + "\n")
    checkpoint = checkpoint_path(checkpoint_dir, run)
    if run.resume_from and checkpoint is not None and not checkpoint.exists():
        _copy_checkpoint(Path(checkpoint_dir) / f"{run.resume_from}.pt", checkpoint)
    task = get_task(run.task, run.size)
    return run_engine(
        task,
        run.spec,
        run.seed,
        run.budget,
        horizon=run.horizon,
        checkpoint=checkpoint,
        checkpoint_seconds=checkpoint_seconds,
    )


def _copy_checkpoint(source: Path, target: Path) -> None:
    """Start a run from a shorter run's checkpoint (atomically: a half copy never looks like a checkpoint).
    Without the source the run starts from step 0 and ends the same, only later."""
    import shutil

    if source.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def describe_error(exc: BaseException) -> str:
    """One line for a run's exception: its type, message, and the innermost frame that raised it.

    A process pool re-raises a worker's exception here with the worker's traceback only as text (its
    `__cause__`); Dask re-raises it with the remote frames attached. Both name the worker's frame."""
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


def new_future(on_cancel: Callable[[], Any] = lambda: None) -> Future:
    """A future for one run. `Future.cancel()` alone does not wake `wait`/`as_completed` (an executor is
    expected to confirm the cancellation), so this future confirms it at once and calls `on_cancel`
    (which withdraws the run from the backend)."""

    def cancelled(future: Future) -> None:
        if future.cancelled():
            future.set_running_or_notify_cancel()  # CANCELLED → CANCELLED_AND_NOTIFIED: waiters wake
            on_cancel()

    future: Future = Future()
    future.add_done_callback(cancelled)
    return future


def settle(outer: Future, inner: Any) -> None:
    """Copy a finished backend future's outcome into the executor's own future (once; a cancelled
    outer future stays cancelled)."""
    if outer.done():
        return
    if inner.cancelled():
        outer.cancel()
        return
    try:
        result = inner.result()
    except BaseException as exc:  # noqa: BLE001 - the run's exception, whatever it is, belongs to its future
        _resolve(outer, exc, error=True)
        return
    _resolve(outer, result, error=False)


def _resolve(outer: Future, value: Any, error: bool) -> None:
    from concurrent.futures import InvalidStateError

    try:
        outer.set_exception(value) if error else outer.set_result(value)
    except InvalidStateError:  # cancelled (or settled) meanwhile by shutdown(cancel_futures=True)
        pass
