"""Meta-training of the learned LR policy `learned()` (control/learned.py): CMA-ES over its weights, each
candidate scored by real runs through the one-run executor on training instances.

    lrcontrol learn train --runs metadata/runs.parquet --hold-out image,language --seed 0 \\
        --out src/lrcontrol/control/policies/default.json --checkpoint results/learn.json

The method, and why
-------------------
The policy has 8 numbers (7 feature weights and a bias). Its objective — the mean normalised regret
(select/regret.py) of `adamw(lr=η₀) + learned(weights=w)` over training (instance, η₀) pairs — is a
black box: each evaluation is a set of training runs, runs can diverge (regret 1), and nothing is
differentiable through the training loops. For a handful of continuous parameters and a noisy,
non-smooth objective, CMA-ES (Hansen & Ostermeier 2001; the `cma` package) is the standard
black-box search: invariant to the weights' scale and correlations, robust to noise through its
population, with no surrogate to fit. Imitation of the meta-dataset's best trajectories was rejected
as the trainer: the traces are ≤ 64 window means of the loss — the trend and noise features cannot be
recomputed from them — and the best member's LR curve is produced by another rule (often an LR-free
optimizer whose LR is not the LR applied), so a regression onto it learns what that rule did, not what
helps, and errors compound once the policy leaves the imitated states (Ross, Gordon & Bagnell 2011).
The meta-dataset is used where it is exact: each training instance's anchors ℓ_best (the best over
every member and tuned baseline) and ℓ_0 (the untrained model) for the regret.

Each generation draws `pairs` (instance, η₀) pairs from the training pool (half at the optimizer's
default LR, half at other LRs of the grid, so that the policy learns to recover from a bad initial LR);
every candidate of the generation runs on the same pairs (common random numbers), seed 0. The result
is CMA-ES's distribution mean after the last generation (its best estimate under noise).

Reproducible and resumable: CMA-ES draws from its own seeded generator (`randn` option), so a seed gives
the same candidates; the checkpoint is a JSON file holding the settings, every finished generation's
candidates and scores, and the scored runs of the generation in progress. Resuming replays the finished
generations into a fresh CMA-ES (checking that it proposes the same candidates), reuses the scored runs
and goes on. Held-out families never enter the training pool (checked on every instance's family).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrcontrol.control.learned import ALL_FEATURES, CONSTANTS, FEATURES, check_policy
from lrcontrol.errors import LRControlError

#: the constants the policy is trained with (control/learned.py: the step's scale and the averages' spans)
BASE_CONSTANTS = {
    "rate": 20.0,
    "rate_min": 0.002,
    "rate_max": 0.2,
    "fast_span": 0.01,
    "fast_min": 5.0,
    "slow_span": 0.05,
    "slow_min": 20.0,
}
#: the initial-LR grid of the evaluation (and the pool training draws from)
LR_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_LR = 1e-3
OPTIMIZER = "adamw"


def policy_spec(weights: Sequence[float], lr: float, optimizer: str = OPTIMIZER, policy: str | None = None) -> str:
    """The spec of one run of the policy: `adamw(lr=…) + learned(weights=[…])`, or a named policy file."""
    if policy is not None:
        return f"{optimizer}(lr={lr!r}) + learned(policy={policy!r})"
    return f"{optimizer}(lr={lr!r}) + learned(weights=[{', '.join(repr(float(w)) for w in weights)}])"


@dataclass
class Settings:
    """Everything that decides the result (saved in the checkpoint; a resume must match it)."""

    instances: list[str]
    held_out_families: list[str]
    seed: int = 0
    generations: int = 12
    popsize: int = 8
    pairs: int = 6
    sigma0: float = 1.0
    lrs: list[float] = field(default_factory=lambda: list(LR_GRID))
    default_lr: float = DEFAULT_LR
    optimizer: str = OPTIMIZER
    size: str = "default"
    start: list[float] = field(default_factory=lambda: [0.0] * (len(FEATURES) + 1))

    def check(self) -> None:
        from lrcontrol.tasks import get_task

        if not self.instances:
            raise LRControlError("no training instances: the pool is empty after holding out families")
        for name in self.instances:
            family = get_task(name, self.size).family
            if family in self.held_out_families:
                raise LRControlError(f"training instance {name} is of the held-out family {family}")
        for key in ("generations", "popsize", "pairs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LRControlError(f"{key} must be a whole number ≥ 1, got {value!r}")
        if self.popsize < 2:
            raise LRControlError("popsize must be at least 2 (CMA-ES ranks candidates)")
        if len(self.start) not in (len(FEATURES) + 1, len(ALL_FEATURES) + 1):
            raise LRControlError(
                f"start must have {len(FEATURES) + 1} numbers, or {len(ALL_FEATURES) + 1} with the lr_level feature"
            )


def policy_free(runs: Any) -> Any:
    """The meta-dataset without the rows of members that run a learned policy (`… + learned(…)`, such as
    the portfolio's `adamw-learned`). The anchors that train and judge a policy must not depend on a
    policy's own runs: a retrained policy would move its own objective (the shipped one would no longer
    follow from the documented command), and a policy would be scored against itself."""
    return runs[~runs["spec"].astype(str).str.contains(r"(?<![\w.])learned\(", regex=True)]


@dataclass
class Anchors:
    """Per instance: the best oriented score known (ℓ_best) and the untrained model's (ℓ_0)."""

    best: dict[str, float]
    anchor: dict[str, float]

    @classmethod
    def from_runs(cls, runs: Any, instances: Sequence[str]) -> Anchors:
        """From the meta-dataset's rows (or reference rows with the same columns), via select/regret.py;
        rows of a learned policy do not count (`policy_free`)."""
        from lrcontrol.select.regret import regret_table

        rows = policy_free(runs[runs["instance"].isin(list(instances))])
        missing = sorted(set(instances) - set(rows["instance"]))
        if missing:
            raise LRControlError(f"the meta-dataset has no runs of {missing[0]} (and {len(missing) - 1} more)")
        table = regret_table(rows)
        return cls({i: float(table.best[i]) for i in instances}, {i: float(table.anchor[i]) for i in instances})

    def regret(self, instance: str, loss: float) -> float:
        from lrcontrol.select.regret import normalised

        return float(normalised(np.array([loss]), self.best[instance], self.anchor[instance])[0])


def outcome_row(run: Any, trajectory: Any, member: str) -> dict[str, Any]:
    """A finished run as a meta-dataset row (the columns the regret reads)."""
    record = run.record(trajectory)
    final = record.final_metric
    return {
        "instance": run.task,
        "member": member,
        "spec": run.spec,
        "seed": run.seed,
        "diverged": bool(record.diverged),
        "final_metric": math.nan if final is None or record.diverged else float(final),
        "initial_metric": float(record.curve_metrics.get("initial", math.nan)),
        "higher_is_better": bool(record.higher_is_better),
        "steps": int(trajectory.steps),
        "budget": int(run.budget),
        "wall_time": float(trajectory.wall_time),
    }


def oriented(row: dict[str, Any]) -> float:
    value = row["final_metric"]
    if row["diverged"] or not math.isfinite(value):
        return math.inf
    return -value if row["higher_is_better"] else value


def reference_rows(
    instances: Sequence[str], specs: Sequence[str], executor: Any, size: str = "default"
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Anchors without a meta-dataset: run `specs` on every instance (seed 0) and return their rows and cost."""
    from lrcontrol.bench.executor import as_completed
    from lrcontrol.bench.run_spec import RunSpec

    runs = [RunSpec.create(i, s, 0, size=size) for i in instances for s in specs]
    futures = {executor.submit(r): r for r in runs}
    rows = [outcome_row(futures[f], f.result(), f"ref:{futures[f].spec}") for f in as_completed(futures)]
    rows.sort(key=lambda r: (r["instance"], r["spec"]))
    return rows, _compute(rows)


def _compute(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {
        "runs": len(rows),
        "steps": float(sum(r["steps"] for r in rows)),
        "full_run_equivalents": float(sum(r["steps"] / r["budget"] for r in rows)),
        "run_seconds": float(sum(r["wall_time"] for r in rows)),
    }


def generation_pairs(settings: Settings, generation: int) -> list[tuple[str, float]]:
    """The (instance, initial LR) pairs of one generation: seeded by (seed, generation); half at the default LR."""
    rng = np.random.default_rng([settings.seed, generation])
    others = [lr for lr in settings.lrs if lr != settings.default_lr] or [settings.default_lr]
    chosen = rng.choice(len(settings.instances), size=settings.pairs, replace=settings.pairs > len(settings.instances))
    pairs = []
    for k, index in enumerate(chosen):
        lr = settings.default_lr if k % 2 == 0 else others[int(rng.integers(len(others)))]
        pairs.append((settings.instances[int(index)], float(lr)))
    return pairs


class Checkpoint:
    """The search state as JSON (never a pickle): settings, finished generations, scored runs in progress."""

    def __init__(self, path: str | Path | None, settings: Settings) -> None:
        self.path = None if path is None else Path(path)
        self.data: dict[str, Any] = {"format": 1, "settings": asdict(settings), "generations": [], "scored": {}}
        self.data["compute"] = _compute([])
        if self.path is not None and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise LRControlError(
                    f"checkpoint {self.path} is not a learn checkpoint ({exc}); move it away"
                ) from None
            mine, theirs = dict(self.data["settings"]), dict(saved.get("settings") or {})
            mine.pop("generations"), theirs.pop("generations", None)  # more generations extend a search
            if mine != theirs:
                differ = sorted(k for k in mine if mine.get(k) != theirs.get(k))
                raise LRControlError(
                    f"checkpoint {self.path} was started with other settings ({', '.join(differ)}); "
                    "use the same ones or another --checkpoint"
                )
            if len(saved["generations"]) > self.data["settings"]["generations"]:
                raise LRControlError(
                    f"checkpoint {self.path} is {len(saved['generations'])} generations in; ask for at least as many"
                )
            saved["settings"] = self.data["settings"]
            self.data = saved

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def _strategy(settings: Settings) -> Any:
    import cma

    generator = np.random.default_rng(settings.seed)
    options = {
        "seed": settings.seed + 1,
        "popsize": settings.popsize,
        "verbose": -9,
        "randn": lambda *shape: generator.standard_normal(shape),
        "CMA_mirrors": 0,
    }
    return cma.CMAEvolutionStrategy(list(settings.start), settings.sigma0, options)


def train(
    settings: Settings,
    anchors: Anchors,
    executor: Any,
    checkpoint: str | Path | None = None,
    on_run: Callable[[], None] = lambda: None,
    on_generation: Callable[[int, float], None] = lambda generation, best: None,
) -> dict[str, Any]:
    """Run (or resume) the search; returns the policy file's content (weights, constants, what it cost)."""
    from lrcontrol.bench.executor import as_completed
    from lrcontrol.bench.run_spec import RunSpec

    settings.check()
    mark = time.perf_counter()
    state = Checkpoint(checkpoint, settings)
    es = _strategy(settings)
    for done in state.data["generations"]:  # replay: the same seed proposes the same candidates
        proposed = es.ask()
        if not np.array_equal(np.array(proposed), np.array(done["candidates"])):
            raise LRControlError("the checkpoint's candidates differ from this CMA-ES's: another cma version?")
        es.tell(proposed, done["scores"])
        for _ in range(len(done["candidates"]) * len(done["pairs"])):
            on_run()
    for generation in range(len(state.data["generations"]), settings.generations):
        candidates = es.ask()
        pairs = generation_pairs(settings, generation)
        runs = {}
        for c, x in enumerate(candidates):
            for instance, lr in pairs:
                run = RunSpec.create(instance, policy_spec(x, lr, settings.optimizer), 0, size=settings.size)
                runs[run.key] = (c, run)
        scored: dict[str, float] = state.data["scored"]
        todo = [run for key, (_, run) in runs.items() if key not in scored]
        for _ in range(len(runs) - len(todo)):
            on_run()
        futures = {executor.submit(run): run for run in todo}
        for future in as_completed(futures):
            run = futures[future]
            try:
                row = outcome_row(run, future.result(), "learned")
                regret = anchors.regret(run.task, oriented(row))
                for key, value in _compute([row]).items():
                    state.data["compute"][key] += value
            except LRControlError:
                regret = 1.0  # a run that raised counts as failed
            scored[run.key] = regret
            state.save()
            on_run()
        scores = [float(np.mean([scored[k] for k, (c2, _) in runs.items() if c2 == c])) for c in range(len(candidates))]
        es.tell(candidates, scores)
        state.data["generations"].append(
            {"candidates": [list(map(float, x)) for x in candidates], "scores": scores, "pairs": pairs}
        )
        state.data["scored"] = {}
        now = time.perf_counter()
        state.data["compute"]["wall_seconds"] = state.data["compute"].get("wall_seconds", 0.0) + now - mark
        mark = now
        state.save()
        on_generation(generation, min(scores))
    weights = [float(w) for w in es.result.xfavorite]
    history = [{"best": min(g["scores"]), "mean": float(np.mean(g["scores"]))} for g in state.data["generations"]]
    policy = {
        "format": 1,
        "features": list(ALL_FEATURES[: len(weights) - 1]),  # the start's length chose them
        "weights": weights,
        **BASE_CONSTANTS,
        "trained": {
            "method": "CMA-ES (cma) on mean normalised regret",
            "settings": asdict(settings),
            "compute": state.data["compute"],
            "history": history,
        },
    }
    assert set(BASE_CONSTANTS) == set(CONSTANTS)
    return check_policy(policy, "the trained policy")


def training_pool(
    runs: Any, held_out: Sequence[str], count: int | None, seed: int, max_seconds: float | None = None
) -> list[str]:
    """Training instances from the meta-dataset: every instance outside the held-out families (optionally
    only those whose runs took at most `max_seconds`, median over the rows of `policy_free`), `count` of them
    drawn with `seed`."""
    rows = policy_free(runs[~runs["family"].isin(list(held_out))])
    if max_seconds is not None:
        seconds = rows.groupby("instance")["wall_time"].median()
        rows = rows[rows["instance"].isin(list(seconds[seconds <= max_seconds].index))]
    pool = sorted(set(rows["instance"]))
    if count is not None and count < len(pool):
        rng = np.random.default_rng(seed)
        pool = sorted(pool[int(i)] for i in rng.choice(len(pool), size=count, replace=False))
    return pool


def write_policy(policy: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(policy, indent=1) + "\n")
    os.replace(tmp, path)
