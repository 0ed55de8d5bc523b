"""A run as plain data: what an executor's `submit` takes, what a sweep expands to, what a tuner builds.

trial = RunSpec.create("sphere-10", "sgd(lr=0.1) + cosine()", seed=0, budget=200, size="smoke")
trajectory = executor.submit(trial).result()
record = trial.record(trajectory)          # the RunRecord the store keeps and the metrics read
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lrcontrol.errors import LRControlError

if TYPE_CHECKING:
    from lrcontrol.bench.record import RunRecord

#: the longest budget a run may ask for; anything above is a typo, not a benchmark
MAX_BUDGET = 10_000_000


def is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_budget(value: Any, where: str) -> int:
    """A budget as given, or an error naming `where` and the fix."""
    if not is_whole_number(value) or value < 1:
        raise LRControlError(f"{where}: budget must be a positive whole number of steps, got {value!r}")
    if value > MAX_BUDGET:
        raise LRControlError(f"{where}: budget {value} is over the limit of {MAX_BUDGET} steps; is it a typo?")
    return value


@dataclass(frozen=True)
class RunSpec:
    """One run: everything a worker needs, as plain picklable data (what an executor's `submit` takes).

    Build one with `RunSpec.create`, which checks the task and the spec and computes the key."""

    task: str
    size: str
    spec: str  # canonical, LR included
    seed: int
    budget: int
    key: str
    sweep: str = ""
    horizon: int | None = None  # the steps the controller plans for (None: the budget)
    # the key of a shorter run of the same task, spec, seed and horizon whose checkpoint this run starts
    # from (a multi-fidelity tuner extends it); the result is the same either way, only cheaper
    resume_from: str | None = None

    @classmethod
    def create(
        cls,
        task: str,
        spec: str,
        seed: int,
        budget: int | None = None,
        *,
        size: str = "default",
        horizon: int | None = None,
        sweep: str = "",
        resume_from: str | None = None,
    ) -> RunSpec:
        """The run of `spec` on the task named `task` (at `size`) from `seed`, for `budget` steps (default:
        the task's). The spec is canonicalised; the key is the store's `run_key`."""
        from lrcontrol.bench.record import run_key
        from lrcontrol.spec import parse
        from lrcontrol.tasks import get_task

        if not is_whole_number(seed) or seed < 0:
            raise LRControlError(f"seed must be a whole number ≥ 0, got {seed!r}")
        the_task = get_task(task, size)
        canonical = str(parse(spec))
        budget = the_task.budget if budget is None else check_budget(budget, f"run {task} {canonical}")
        if horizon is not None and (not is_whole_number(horizon) or horizon < budget):
            raise LRControlError(f"horizon must be a whole number of steps ≥ the budget ({budget}), got {horizon!r}")
        key = run_key(the_task.key, canonical, seed, budget, horizon)
        return cls(the_task.name, size, canonical, seed, budget, key, sweep, horizon, resume_from)

    def record(self, trajectory: Any) -> RunRecord:
        """The run record of this run's finished `Trajectory` (what an executor's future holds), scored once."""
        from lrcontrol.bench.record import RunRecord
        from lrcontrol.tasks import get_task

        return RunRecord.from_run(get_task(self.task, self.size), trajectory, sweep=self.sweep)
