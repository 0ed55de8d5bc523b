"""Running a tune's trials on the one-run executor (`lrcontrol.bench.executor`).

A trial is a `RunSpec` with `horizon` = the full budget and, when it is a promotion, `resume_from` =
the key of the same configuration's lower-budget run: the worker copies that checkpoint and the engine
continues it bit for bit, so the result equals an uninterrupted run planned for the full budget (a
cosine knows where it ends from its first step) and the promotion costs only its new steps. Without a
checkpoint directory there is nothing to continue from, and promotions are retrained.

Executors: `LocalExecutor` (single-thread worker processes) and `DaskExecutor` from `lrcontrol.bench`,
and `InlineExecutor` here, which trains in the calling process — the default for a tune without
workers: a tune's trials mostly run one after another (the tuner learns from each result), and a
worker process would only add its start-up.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from lrcontrol.bench.executor import Executor, train_one


class InlineExecutor(Executor):
    """Trains each submitted run at once, in this process; the future is already resolved."""

    def __init__(self, checkpoint_dir: str | None = None, checkpoint_seconds: float = 30.0) -> None:
        self.checkpoint_dir, self.checkpoint_seconds = checkpoint_dir, checkpoint_seconds

    def submit(self, run: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(train_one(run, self.checkpoint_dir, self.checkpoint_seconds))
        except Exception as exc:  # the run's exception belongs to its future, as on a worker
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def make_executor(
    workers: int | None, scheduler: str | None, checkpoint_dir: str | None, checkpoint_seconds: float
) -> Executor:
    """The Dask cluster's workers given a scheduler, local worker processes for workers > 1, else inline."""
    if scheduler is not None:
        from lrcontrol.bench.dask_executor import DaskExecutor

        return DaskExecutor(scheduler, checkpoint_dir, checkpoint_seconds)
    if workers is not None and workers > 1:
        from lrcontrol.bench.local_executor import LocalExecutor

        return LocalExecutor(workers, checkpoint_dir, checkpoint_seconds)
    return InlineExecutor(checkpoint_dir, checkpoint_seconds)
