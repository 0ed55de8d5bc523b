"""A tuned method's settings and their checks, its objective, and its result.

`check_settings` validates a tuner's arguments before anything runs and raises LRControlError with one
line naming the problem and the fix; `TuneSettings.name` is the tuned method's canonical name, the
store's `method` column (and part of its key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lrcontrol.errors import LRControlError
from lrcontrol.tune.space import SearchSpace, parse_space
from lrcontrol.tune.strategies import MODEL_BASED, MULTI_FIDELITY, STRATEGIES

OBJECTIVES = ("val", "train_loss")
PRIORS = ("lr-finder",)


@dataclass(frozen=True)
class TuneSettings:
    """Everything that defines a tuned method (its name) apart from the task and the seed."""

    space: SearchSpace
    strategy: str = "smac-mf"
    trials: int = 50
    objective: str = "val"
    prior: str | None = None
    min_budget: int | None = None
    eta: int = 3
    batch: int = 1
    continuation: bool = True

    @property
    def name(self) -> str:
        options = [f"trials={self.trials}"]
        if self.strategy in MULTI_FIDELITY:
            options.append(f"eta={self.eta}")
            if self.min_budget is not None:
                options.append(f"min_budget={self.min_budget}")
        if self.objective != "val":
            options.append(f"objective={self.objective}")
        if self.prior:
            options.append(f"prior={self.prior}")
        if self.batch != 1:
            options.append(f"batch={self.batch}")
        if not self.continuation:
            options.append("restarts")
        return f"tune:{self.strategy}({', '.join(options)}) {self.space}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_settings(
    space: str | SearchSpace,
    strategy: str = "smac-mf",
    trials: int = 50,
    objective: str = "val",
    prior: str | None = None,
    min_budget: int | None = None,
    eta: int = 3,
    batch: int = 1,
    continuation: bool = True,
) -> TuneSettings:
    """Validate a tuner's arguments; raise LRControlError with one line naming the problem and the fix."""
    import difflib

    def close(word: Any, choices: tuple[str, ...]) -> str:
        hint = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
        return f" (did you mean {hint[0]!r}?)" if hint else ""

    if strategy not in STRATEGIES:
        raise LRControlError(
            f"unknown strategy {strategy!r}{close(strategy, STRATEGIES)}; choose one of {', '.join(STRATEGIES)}"
        )
    if not _is_int(trials) or trials < 1:
        raise LRControlError(f"trials must be a whole number ≥ 1, got {trials!r}")
    if objective not in OBJECTIVES:
        raise LRControlError(
            f"unknown objective {objective!r}{close(objective, OBJECTIVES)}; choose one of {', '.join(OBJECTIVES)}"
        )
    if not _is_int(eta) or eta < 2:
        raise LRControlError(f"eta must be a whole number ≥ 2 (the study uses 3), got {eta!r}")
    if not _is_int(batch) or batch < 1:
        raise LRControlError(f"batch (trials asked at once) must be a whole number ≥ 1, got {batch!r}")
    if min_budget is not None:
        if strategy not in MULTI_FIDELITY:
            raise LRControlError(
                f"min_budget applies to multi-fidelity strategies ({', '.join(MULTI_FIDELITY)}); {strategy} runs every trial at the full budget"
            )
        if not _is_int(min_budget) or min_budget < 1:
            raise LRControlError(f"min_budget must be a whole number of steps ≥ 1, got {min_budget!r}")
    parsed = parse_space(space)
    if prior is not None:
        if prior not in PRIORS:
            raise LRControlError(f"unknown prior {prior!r}; the one prior is {', '.join(PRIORS)} (the LR range test)")
        if strategy not in MODEL_BASED:
            raise LRControlError(
                f"a prior guides SMAC3's acquisition, so it needs a model-based strategy ({', '.join(MODEL_BASED)}), not {strategy}"
            )
        if _lr_range(parsed) is None:
            raise LRControlError(
                f"prior={prior} puts a prior on the optimizer's lr, so the space needs lr=loguniform(…): {parsed}"
            )
    return TuneSettings(parsed, strategy, trials, objective, prior, min_budget, eta, batch, continuation)


def _lr_range(space: SearchSpace) -> str | None:
    for name, index, param, rng in space.hyperparameters():
        if index == 0 and param == "lr" and rng.kind == "loguniform":
            return name
    return None


@dataclass
class TuneResult:
    method: str  # the tuned method's name (the store's method column)
    task: str
    seed: int
    incumbent: str  # its concrete spec
    trajectory: dict[str, Any]  # the incumbent's full-budget run
    horizon: int
    cost_steps: int  # every trial's steps plus the probe's
    probe_steps: int
    trained_steps: int  # steps trained by this call (0 when everything was in the store)
    trials: list[dict[str, Any]] = field(default_factory=list)
    prior_lr: float | None = None

    @property
    def cost(self) -> float:
        """Compute in full-run equivalents."""
        return self.cost_steps / self.horizon

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "task": self.task,
            "seed": self.seed,
            "incumbent": self.incumbent,
            "cost": self.cost,
            "cost_steps": self.cost_steps,
            "probe_steps": self.probe_steps,
            "trained_steps": self.trained_steps,
            "prior_lr": self.prior_lr,
            "final_val": (self.trajectory.get("val") or [{}])[-1],
            "test": self.trajectory.get("test", {}),
            "train": self.trajectory.get("train", {}),
            "trials": self.trials,
        }


def objective_of(trajectory: dict[str, Any], task: Any, objective: str) -> float | None:
    """The cost SMAC3 minimises for a finished run; None for a run that failed (diverged, no metric)."""
    if trajectory.get("diverged"):
        return None
    if objective == "train_loss":
        value = (trajectory.get("train") or {}).get("loss")
        if value is None:
            tail = trajectory.get("train_loss", [])[-10:]
            value = sum(tail) / len(tail) if tail else None
    else:
        final = (trajectory.get("val") or [{}])[-1]
        value = final.get(task.metric)
        if value is not None and task.higher_is_better:
            value = -value
    if value is None or not math.isfinite(value):
        return None
    return float(value)
