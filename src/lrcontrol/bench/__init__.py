"""The benchmark: the run engine (one run), the run record, the result store, the one-run executors,
sweeps, metrics.

    from lrcontrol.bench import run, Store, load_sweep
    from lrcontrol.tasks import get_task
    trajectory = run(get_task("sphere-10", "smoke"), "sgd(lr=0.1) + cosine()", seed=0)

    from lrcontrol.bench import LocalExecutor, RunSpec, as_completed
    with LocalExecutor(workers=2) as executor:
        future = executor.submit(RunSpec.create("sphere-10", "sgd(lr=0.1)", seed=0, size="smoke"))
        trajectory = future.result()

See docs/benchmark.md.
"""

from lrcontrol.bench.dask_executor import DaskExecutor
from lrcontrol.bench.engine import Trajectory, run
from lrcontrol.bench.executor import Executor, ExecutorBroken, as_completed, wait
from lrcontrol.bench.local_executor import LocalExecutor
from lrcontrol.bench.record import RunRecord
from lrcontrol.bench.run_spec import RunSpec
from lrcontrol.bench.store import Store, run_key
from lrcontrol.bench.sweep import Sweep, expand, load_sweep

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorBroken",
    "LocalExecutor",
    "RunRecord",
    "RunSpec",
    "Store",
    "Sweep",
    "Trajectory",
    "as_completed",
    "expand",
    "load_sweep",
    "run",
    "run_key",
    "wait",
]
