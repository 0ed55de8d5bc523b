"""The benchmark: the run engine (one run), the result store, sweeps and their executors, metrics.

    from lrcontrol.bench import run, Store, load_sweep
    from lrcontrol.tasks import get_task
    trajectory = run(get_task("sphere-10", "smoke"), "sgd(lr=0.1) + cosine()", seed=0)

See docs/benchmark.md.
"""

from lrcontrol.bench.engine import Trajectory, run
from lrcontrol.bench.store import Store, run_key
from lrcontrol.bench.sweep import RunSpec, Sweep, expand, load_sweep

__all__ = ["RunSpec", "Store", "Sweep", "Trajectory", "expand", "load_sweep", "run", "run_key"]
