"""`tune(task, space, ...)`: tuning as a method that spends several runs, and says what it spent.

Loop: ask the strategy for (configuration, budget); if that run (task, spec, seed, budget, horizon) is
already in the store — this tune's `trials` table or a sweep's `runs` — tell its result without
training; else train it through the executor, continuing from the configuration's largest lower
budget, record it in `trials` (one transaction), and tell. Every trial plans for the same horizon, the
full budget. The incumbent is the best trial at the full budget (ties: the earlier); its full run is
recorded in `runs` under the tuned method's name with `extra_steps` = the rest of the tuning's steps,
so its cost in full-run equivalents is every trial's steps (and the LR range test's probe steps) / the
full budget.

Cost is the schedule's: a promotion from b₁ to b₂ costs b₂ − b₁ steps (with continuation) or b₂
(`continuation=False`, restarts). A trial found in the store still counts — the cost says what the
method needs, not what this call happened to train (`TuneResult.trained_steps` says that).

Crash safety: SMAC3 is deterministic given its seed and the results it is told, so a restarted tune
asks the same trials in the same order; the finished ones are in the store and are told without
training, a trial that was in flight resumes from its checkpoint. Same command, same incumbent.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrcontrol.errors import LRControlError
from lrcontrol.tune.settings import (
    OBJECTIVES,
    PRIORS,
    TuneResult,
    TuneSettings,
    _is_int,
    _lr_range,
    check_settings,
    objective_of,
)
from lrcontrol.tune.space import SearchSpace
from lrcontrol.tune.strategies import MULTI_FIDELITY, SmacDriver
from lrcontrol.tune.trials import make_executor

__all__ = ["OBJECTIVES", "PRIORS", "TuneResult", "TuneSettings", "check_settings", "objective_of", "tune"]
#: LR range test settings used for the prior (its steps are part of the tuning's cost)
FINDER_STEPS = 100
#: spread of the LR prior around the range test's suggestion, in decades
PRIOR_DECADES = 1.0


def tuned_key(task_key: str, settings: TuneSettings, seed: int, horizon: int) -> str:
    from lrcontrol.bench.store import run_key

    return run_key(task_key, settings.name, seed, horizon, horizon)


def tune(
    task: str,
    space: str | SearchSpace,
    *,
    strategy: str = "smac-mf",
    trials: int = 50,
    seed: int = 0,
    size: str = "default",
    budget: int | None = None,
    min_budget: int | None = None,
    eta: int = 3,
    objective: str = "val",
    prior: str | None = None,
    batch: int = 1,
    continuation: bool = True,
    store: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    executor: Any = None,
    checkpoint_seconds: float = 30.0,
    keep_checkpoints: bool = False,
    sweep: str | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Tune `space` on `task` and return the incumbent's full run with the tuning's cost.

    lrcontrol.tune("iris-logreg", "adamw(lr=loguniform(1e-4, 1))", strategy="smac-mf", trials=20, size="smoke")

    strategy: smac-mf | smac-bo | random | hyperband | sh (see lrcontrol.tune.strategies). budget: the
    full budget (default: the task's); min_budget: the lowest fidelity of a multi-fidelity strategy
    (default: ⌊budget / 27⌋, at least 1: with η = 3, SMAC3 then races on four fidelities). objective: "val" (the task's validation metric at the end) or
    "train_loss" (the final training loss: the training split's if the task records it, else the mean
    of the last recorded mini-batch losses). prior: "lr-finder" puts a log-normal prior (1 decade) on
    the LR around the LR range test's suggestion. batch: trials asked and trained at once (the result
    depends on it, not on the number of workers). store: the result file (default: a temporary one);
    runs in it are re-used, and a killed tune restarted with the same arguments continues.
    """
    from lrcontrol.bench.store import Store
    from lrcontrol.tasks import get_task

    settings = check_settings(space, strategy, trials, objective, prior, min_budget, eta, batch, continuation)
    if not _is_int(seed) or seed < 0:
        raise LRControlError(f"seed must be a whole number ≥ 0, got {seed!r}")
    if workers is not None and scheduler is not None:
        raise LRControlError("workers and scheduler exclude each other: the Dask cluster has its own workers")
    the_task = get_task(task, size)
    the_task.meta_features()  # loads the data: a missing data set fails now, before anything is written
    horizon = the_task.budget if budget is None else budget
    if not _is_int(horizon) or horizon < 1:
        raise LRControlError(f"budget must be a whole number of steps ≥ 1, got {budget!r}")
    low = settings.min_budget if settings.min_budget is not None else max(1, horizon // 27)
    if settings.strategy in MULTI_FIDELITY and not low * settings.eta <= horizon:
        raise LRControlError(
            f"min_budget {low} × eta {settings.eta} exceeds the budget {horizon}: there is no second fidelity; "
            f"lower min_budget to at most {horizon // settings.eta}"
        )
    temporary = None
    if store is None:
        temporary = tempfile.TemporaryDirectory(prefix="lrcontrol-tune-")
        store = Path(temporary.name) / "tune.db"
    store = Path(store)
    if store.exists() and store.is_dir():
        raise LRControlError(f"store {store} is a directory; give a file path, e.g. results/tune.db")
    store.parent.mkdir(parents=True, exist_ok=True)
    db = Store(store)
    own_executor = executor is None
    try:
        key = tuned_key(the_task.key, settings, seed, horizon)
        done = db.records("key = ?", [key])
        if done:
            return _result_from_row(done[0], the_task, settings, seed, horizon)
        if own_executor:
            own_checkpoints = store.with_name(store.name + ".tune") / key
            own_checkpoints.mkdir(parents=True, exist_ok=True)
            executor = make_executor(workers, scheduler, str(own_checkpoints), checkpoint_seconds)
        run = _Tune(the_task, size, settings, seed, horizon, low, db, executor, key, on_trial)
        result = run.execute()
        trajectory = result.trajectory
        from lrcontrol.bench.engine import Trajectory
        from lrcontrol.bench.record import RunRecord

        incumbent = RunRecord.from_run(the_task, Trajectory.from_dict(trajectory), sweep)
        # the tuned method's own row: its name, its key, no LR grid point, and the rest of the tuning as extra steps
        db.add(
            dataclasses.replace(
                incumbent,
                key=key,
                method=settings.name,
                lr=None,
                extra_steps=max(0, result.cost_steps - int(trajectory["steps"])),
            )
        )
        if not keep_checkpoints and executor.checkpoint_dir is not None:
            # the trials' checkpoints served their promotions; a crash before this line keeps them for the rerun
            for trial in result.trials:
                if trial.get("key"):
                    (Path(executor.checkpoint_dir) / f"{trial['key']}.pt").unlink(missing_ok=True)
            if own_executor:
                shutil.rmtree(executor.checkpoint_dir, ignore_errors=True)
        return result
    finally:
        if own_executor and executor is not None:
            executor.shutdown()
        db.close()
        if temporary is not None:
            temporary.cleanup()


def _result_from_row(row: dict[str, Any], task: Any, settings: TuneSettings, seed: int, horizon: int) -> TuneResult:
    trajectory = row["trajectory"]
    cost_steps = int(row["steps"]) + int(row["extra_steps"])
    return TuneResult(settings.name, task.name, seed, row["spec"], trajectory, horizon, cost_steps, 0, 0)


@dataclass(frozen=True)
class _Trial:
    """One trial: its run, and the steps of the lower-budget run it continues (0: from scratch)."""

    run: Any  # lrcontrol.bench.sweep.RunSpec
    source_steps: int
    start_steps: int = 0  # where its training starts: the source, or its own checkpoint after a crash

    @property
    def key(self) -> str:
        return self.run.key

    @property
    def spec(self) -> str:
        return self.run.spec

    @property
    def budget(self) -> int:
        return self.run.budget


class _Tune:
    """One tune's loop (see the module docstring)."""

    def __init__(
        self,
        task: Any,
        size: str,
        settings: TuneSettings,
        seed: int,
        horizon: int,
        min_budget: int,
        store: Any,
        executor: Any,
        key: str,
        on_trial: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.task, self.size, self.settings, self.seed, self.horizon = task, size, settings, seed, horizon
        self.min_budget, self.store, self.executor = min_budget, store, executor
        self.key = key
        self.on_trial = on_trial or (lambda info: None)
        self.reached: dict[str, tuple[int, str]] = {}  # spec → (steps of its furthest trial, that trial's key)
        self.trials: list[dict[str, Any]] = []
        self.trained_steps = 0

    # -- the prior ---------------------------------------------------------------------------------
    def _prior(self) -> tuple[dict[str, tuple[float, float]], float | None, int]:
        if self.settings.prior is None:
            return {}, None, 0
        import torch

        import lrcontrol

        space = self.settings.space
        name = _lr_range(space)
        centre = {n: _centre_value(r) for n, _, _, r in space.hyperparameters()}
        spec = space.spec(centre)
        instance = self.task.build(self.seed)
        model = instance.model
        optimizer, _ = lrcontrol.build(model.parameters(), spec, total_steps=self.horizon)
        result = lrcontrol.find_lr(
            model,
            optimizer,
            lambda batch: instance.loss(model, batch),
            lambda: instance.train_batches(torch.Generator().manual_seed(self.seed)),
            steps=FINDER_STEPS,
        )
        low, high = dict((n, r) for n, _, _, r in space.hyperparameters())[name].values
        suggestion = result.recommended if result.recommended is not None else math.sqrt(low * high)
        suggestion = min(max(suggestion, low), high)
        return {name: (suggestion, PRIOR_DECADES)}, suggestion, int(result.steps)

    # -- the loop ----------------------------------------------------------------------------------
    def execute(self) -> TuneResult:
        prior, prior_lr, probe_steps = self._prior()
        driver = SmacDriver(
            self.settings.strategy,
            self.settings.space.configspace(seed=self.seed, prior=prior),
            self.settings.trials,
            self.seed,
            self.horizon,
            self.min_budget,
            self.settings.eta,
            bool(prior),
        )
        try:
            told = 0
            while told < self.settings.trials:
                asked = [driver.ask() for _ in range(min(self.settings.batch, self.settings.trials - told))]
                pending = [self._start(config, budget) for _, config, budget in asked]
                for (token, _, _), (trial, outcome) in zip(asked, pending):
                    driver.tell(token, self._finish(trial, outcome))
                told += len(asked)
        finally:
            driver.close()
        incumbent = self._incumbent()
        cost_steps = probe_steps + sum(t["cost_steps"] for t in self.trials)
        return TuneResult(
            self.settings.name,
            self.task.name,
            self.seed,
            incumbent["spec"],
            incumbent["trajectory"],
            self.horizon,
            cost_steps,
            probe_steps,
            self.trained_steps,
            [{k: v for k, v in t.items() if k != "trajectory"} for t in self.trials],
            prior_lr,
        )

    def _trial(self, spec: str, budget: int) -> _Trial:
        """The run of `spec` at `budget`, planned for the full horizon, continuing the configuration's
        furthest run so far when it can (continuation on, and checkpoints to continue from)."""
        from lrcontrol.bench.run_spec import RunSpec

        continued = (
            self.settings.continuation
            and self.executor.checkpoint_dir is not None
            and spec in self.reached
            and self.reached[spec][0] < budget
        )
        source_steps, source_key = self.reached[spec] if continued else (0, None)
        run = RunSpec.create(
            self.task.name,
            spec,
            self.seed,
            budget,
            size=self.size,
            horizon=self.horizon,
            sweep=f"tune:{self.key}",
            resume_from=source_key,
        )
        return _Trial(run, source_steps)

    def _start(self, config: dict[str, Any], budget: float | None) -> tuple[_Trial | None, Any]:
        """Look the trial up in the store, or submit it; (trial, stored row or future or error)."""
        steps = self.horizon if budget is None else max(1, int(round(budget)))
        try:
            spec = str(self.settings.space.spec(config))
        except LRControlError as exc:  # e.g. lr = 0 drawn from uniform(0, 1), or a cross-parameter rule
            return None, str(exc)
        return self._lookup_or_submit(self._trial(spec, steps))

    def _lookup_or_submit(self, trial: _Trial) -> tuple[_Trial, tuple[str, Any]]:
        """(trial, ("stored", the store's row)) if the run is there (this tune's trials or a sweep's runs),
        else (trial, ("future", the executor's future))."""
        for table in ("trials", "runs"):
            rows = self.store.records("key = ?", [trial.key], table=table)
            if rows:
                return trial, ("stored", rows[0])
        # A trial killed in flight left its own checkpoint: it resumes there (for trained_steps only).
        started = self._checkpoint_steps(trial.key)
        trial = dataclasses.replace(trial, start_steps=max(trial.source_steps, started))
        return trial, ("future", self.executor.submit(trial.run))

    def _checkpoint_steps(self, key: str) -> int:
        from lrcontrol.bench.engine import load_checkpoint

        if self.executor.checkpoint_dir is None:
            return 0
        saved = load_checkpoint(Path(self.executor.checkpoint_dir) / f"{key}.pt")
        return 0 if saved is None else int(saved["steps"])

    def _finish(self, trial: _Trial | None, outcome: Any) -> float | None:
        if trial is None:
            self.trials.append({"spec": None, "budget": 0, "cost_steps": 0, "objective": None, "error": outcome})
            self.on_trial(self.trials[-1])
            return None
        from lrcontrol.bench.record import RunRecord

        kind, payload = outcome
        if kind == "future":  # a concurrent.futures or a Dask future
            trajectory = payload.result()  # a failing run is a bug to see, not a bad configuration
            self.store.add(RunRecord.from_run(self.task, trajectory, trial.run.sweep), table="trials")
            self.trained_steps += max(0, trajectory.steps - trial.start_steps)
            data = trajectory.to_dict()
            reused = False
        else:
            data, reused = payload["trajectory"], True
        value = objective_of(data, self.task, self.settings.objective)
        cost = max(0, int(data["steps"]) - trial.source_steps)
        if trial.spec not in self.reached or self.reached[trial.spec][0] < int(data["steps"]):
            self.reached[trial.spec] = (int(data["steps"]), trial.key)
        info = {
            "spec": trial.spec,
            "budget": trial.budget,
            "continued_from": trial.source_steps,
            "cost_steps": cost,
            "objective": value,
            "reused": reused,
            "key": trial.key,
            "trajectory": data,
        }
        self.trials.append(info)
        self.on_trial({k: v for k, v in info.items() if k != "trajectory"})
        return value

    def _incumbent(self) -> dict[str, Any]:
        full = [t for t in self.trials if t["spec"] is not None and t["budget"] == self.horizon]
        scored = [t for t in full if t["objective"] is not None]
        if scored:
            return min(scored, key=lambda t: t["objective"])  # min keeps the earliest of equals
        # No configuration finished the full budget (few trials, or all failed): the best at the highest
        # budget reached is continued to the full budget, and that run counts as one more trial.
        candidates = [t for t in self.trials if t["spec"] is not None]
        if not candidates:
            raise LRControlError("every configuration the tuner drew was invalid; narrow the search space")
        ranked = sorted(candidates, key=lambda t: (-t["budget"], t["objective"] is None, t["objective"] or 0.0))
        if full:
            return full[0]
        best = ranked[0]
        trial = self._trial(best["spec"], self.horizon)
        self._finish(*self._lookup_or_submit(trial))
        return self.trials[-1]


def _centre_value(rng: Any) -> Any:
    from lrcontrol.tune.space import _centre

    return _centre(rng)
