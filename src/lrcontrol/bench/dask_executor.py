"""The Dask executor: runs on a Dask cluster (e.g. tcp://10.0.0.5:8786); results come back here.

Each Dask worker must run one thread (`dask worker --nthreads 1`, several workers per machine): runs
sharing a process would share torch's global RNG. The executor checks this when it connects. The
workers need lrcontrol installed, and `checkpoint_dir` (if any) must be a directory they can all reach
(a shared file system); on a remote cluster without one pass checkpoint_dir=None.

Dask already retries a task whose worker died (`retries`), and the retry resumes from the run's
checkpoint; Dask's own futures are wrapped in `concurrent.futures.Future`s so that a client waits on
every backend the same way.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any

from lrcontrol.bench.executor import Executor, new_future, settle, train_one
from lrcontrol.errors import LRControlError

if TYPE_CHECKING:
    from lrcontrol.bench.engine import Trajectory
    from lrcontrol.bench.run_spec import RunSpec

#: how many times Dask reruns a run whose worker died
DASK_RETRIES = 2


class DaskExecutor(Executor):
    """Runs on the Dask cluster at `address`; see the module docstring."""

    def __init__(
        self,
        address: str,
        checkpoint_dir: str | None = None,
        checkpoint_seconds: float = 30.0,
        connect_timeout: float = 10.0,
        retries: int = DASK_RETRIES,
    ) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise LRControlError("the Dask executor needs distributed: pip install 'lrcontrol[bench]'") from None
        if not isinstance(address, str) or "://" not in address and ":" not in address:
            raise LRControlError(f"bad scheduler address {address!r}; expected e.g. tcp://127.0.0.1:8786")
        self.address, self.checkpoint_dir, self.checkpoint_seconds = address, checkpoint_dir, checkpoint_seconds
        self.retries = retries
        try:
            self._client = Client(address, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError) as exc:
            raise LRControlError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        threaded = [a for a, w in self._client.scheduler_info()["workers"].items() if w.get("nthreads", 1) != 1]
        if threaded:
            self._client.close()
            # Runs in threads of one process would share torch's global RNG: results would depend on timing.
            raise LRControlError(
                f"Dask workers {', '.join(threaded)} run several threads; start them with one each "
                "(dask worker --nthreads 1, or LocalCluster(threads_per_worker=1))"
            )
        # Dask releases a task whose future nobody holds: keep each until its result has been copied out.
        self._running: dict[int, tuple[Any, Future]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def slots(self) -> int:
        """The cluster's workers now (one thread each); workers that join later are used as they come."""
        return max(1, len(self._client.nthreads()))

    def submit(self, run: RunSpec) -> Future[Trajectory]:
        outer = new_future(on_cancel=lambda: self._withdraw(outer))
        with self._lock:
            if self._closed:
                raise LRControlError("this executor is shut down; create a new one to run more")
            inner = self._client.submit(
                train_one,
                run,
                self.checkpoint_dir,
                self.checkpoint_seconds,
                key=f"lrcontrol-{run.key}",
                retries=self.retries,
            )
            self._running[id(outer)] = (inner, outer)
        inner.add_done_callback(lambda f: self._settle(outer, f))
        return outer

    def _withdraw(self, outer: Future) -> None:
        with self._lock:
            running = self._running.pop(id(outer), None)
        if running is not None:
            self._client.cancel([running[0]])

    def _settle(self, outer: Future, inner: Any) -> None:
        # Dask calls this in a thread of its own, where waiting for the result is allowed.
        settle(outer, inner)
        with self._lock:
            self._running.pop(id(outer), None)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running.values())
        if cancel_futures:
            self._client.cancel([inner for inner, _ in running])
            for _, outer in running:
                outer.cancel()
        elif wait:
            from distributed import wait as dask_wait

            dask_wait([inner for inner, _ in running])
            futures_wait([outer for _, outer in running])  # their results copied out before the client goes
        self._client.close()
