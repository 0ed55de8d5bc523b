"""The bounds every number a user gives must respect, in one place.

Each bound sits where a library under lrcontrol would otherwise fail, or where a value can only be a
typo, so that validation says so in one line instead of torch, SQLite or the memory failing later:

- seeds: torch seeds take 64 bits, but the store keeps them in an SQLite INTEGER (signed 64 bits);
- steps (budgets, horizons, `find-lr --steps`): a budget above ten million steps is a typo on this
  benchmark, and an integer horizon must stay exact as a float (schedules compute with it);
- learning rates: torch converts an LR to the parameters' dtype (float32 here); far above 1e30 or
  below 1e-30 the step overflows or is lost, so such a grid point cannot be a real experiment;
- dimensions, threads, workers, grid sizes: anything above allocates memory or processes without
  limit (a typo must not take the machine down).
"""

from __future__ import annotations

import os

#: largest seed: the store's INTEGER column is signed 64-bit
MAX_SEED = 2**63 - 1
#: most training steps of one run (budgets and `run --budget`)
MAX_BUDGET = 10_000_000
#: longest planned horizon (`--horizon`, integer step counts in a spec): exact in a float64
MAX_HORIZON = 2**53
#: most steps of an LR range test
MAX_FINDER_STEPS = 100_000
#: the LR range lrcontrol accepts anywhere (spec, sweep grid, finder)
MIN_LR = 1e-30
MAX_LR = 1e30
#: most dimensions of a synthetic function (10 million float32 parameters: 40 MB)
MAX_DIMS = 10_000_000
#: most seeds, LR grid points and runs of one sweep
MAX_SEEDS = 10_000
MAX_GRID = 1_000
MAX_RUNS = 200_000
#: largest sweep file (a TOML file bigger than this is not a sweep)
MAX_SWEEP_FILE_BYTES = 1_000_000


def cpus() -> int:
    """The CPUs this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """Most torch threads: more than the CPUs only slows training down (and 100000 crashes OpenMP)."""
    return max(cpus(), 64)


def max_workers() -> int:
    """Most local worker processes: each is a whole Python process with torch loaded."""
    return max(4 * cpus(), 64)
