"""The run record: one finished run, in the one shape the engine's result becomes, the store keeps and the
metrics read.

    record = RunRecord.from_run(task, trajectory)      # the engine's Trajectory, scored once
    store.add(record)                                  # one row; its columns are the record's fields
    store.records()                                    # RunRecords again
    metrics.summarize(store.records())                 # read as they are

Every field is a column of the store's `runs` table (the SQL type is declared with the field); a run's
values are computed once, here, with the curve functions of `lrcontrol.bench.curves`: `final_metric` (the
task's primary metric at the last evaluation), `best_metric` (its best finite value), and — from the
stored validation curve, when the record carries it — `initial` (the metric at step 0, the regret's
anchor), `auc` and, given the task's target, `steps_to_target`.

A record is also a read-only mapping (`record["final_metric"]`, `record.get("optimum")`), so the metrics
read a RunRecord, a dict with the same field names, or a pandas DataFrame row alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Any

from lrcontrol import jsontext
from lrcontrol.bench.curves import best_value, run_metrics


def _column(sql: str) -> Any:
    return field(metadata={"sql": sql})


@dataclass(frozen=True)
class RunRecord(Mapping):
    """One finished run (trained to its budget, or diverged); see the module docstring."""

    key: str = _column("TEXT PRIMARY KEY")  # run_key(task, spec, seed, budget, horizon)
    task: str = _column("TEXT NOT NULL")  # name@version/size
    task_name: str = _column("TEXT NOT NULL")
    task_version: str = _column("TEXT NOT NULL")
    size: str = _column("TEXT NOT NULL")
    family: str = _column("TEXT NOT NULL")
    method: str = _column("TEXT NOT NULL")  # the spec without the optimizer's lr: one method across an LR grid
    spec: str = _column("TEXT NOT NULL")  # canonical, lr included
    lr: float | None = _column("REAL")
    seed: int = _column("INTEGER NOT NULL")
    budget: int = _column("INTEGER NOT NULL")
    horizon: int = _column("INTEGER NOT NULL")
    steps: int = _column("INTEGER NOT NULL")
    extra_steps: int = _column("INTEGER NOT NULL")
    diverged: bool = _column("INTEGER NOT NULL")
    diverged_step: int | None = _column("INTEGER")
    metric: str = _column("TEXT NOT NULL")  # the task's primary validation metric
    higher_is_better: bool = _column("INTEGER NOT NULL")
    target: float | None = _column("REAL")
    final_metric: float | None = _column("REAL")  # primary metric at the last evaluation (None if diverged)
    best_metric: float | None = _column("REAL")  # its best finite value over the evaluations
    final_loss: float | None = _column("REAL")  # validation loss at the last evaluation
    test_metric: float | None = _column("REAL")
    test_loss: float | None = _column("REAL")
    wall_time: float = _column("REAL NOT NULL")
    sweep: str | None = _column("TEXT")
    finished_at: float = _column("REAL NOT NULL")
    lrcontrol_version: str = _column("TEXT NOT NULL")
    trajectory: dict[str, Any] | None = _column("TEXT NOT NULL")  # Trajectory.to_dict(); JSON in the store

    @classmethod
    def from_run(cls, task: Any, trajectory: Any, sweep: str | None = None) -> RunRecord:
        """Score a finished run of `task` (its `Trajectory`) once; `sweep` names the sweep it belongs to."""
        import lrcontrol
        from lrcontrol.errors import LRControlError

        if not trajectory.finished:  # a half run must never look finished
            raise LRControlError(
                f"run {trajectory.spec} on {trajectory.task} stopped at step {trajectory.steps} of "
                f"{trajectory.budget}; only finished runs are recorded"
            )

        method, lr = method_of(trajectory.spec)
        metric = task.metric
        curve = [(s, v.get(metric)) for s, v in zip(trajectory.eval_steps, trajectory.val)]
        best = best_value(curve, task.higher_is_better)
        final = trajectory.final_val() if not trajectory.diverged else {}
        return cls(
            key=run_key(task.key, trajectory.spec, trajectory.seed, trajectory.budget, trajectory.horizon),
            task=task.key,
            task_name=task.name,
            task_version=task.version,
            size=task.size,
            family=task.family,
            method=method,
            spec=trajectory.spec,
            lr=lr,
            seed=trajectory.seed,
            budget=trajectory.budget,
            horizon=trajectory.horizon,
            steps=trajectory.steps,
            extra_steps=trajectory.extra_steps,
            diverged=bool(trajectory.diverged),
            diverged_step=trajectory.diverged_step,
            metric=metric,
            higher_is_better=bool(task.higher_is_better),
            target=task.target,
            final_metric=_finite_or_none(final.get(metric)),
            best_metric=_finite_or_none(best),
            final_loss=_finite_or_none(final.get("loss")),
            test_metric=_finite_or_none(trajectory.test.get(metric)),
            test_loss=_finite_or_none(trajectory.test.get("loss")),
            wall_time=trajectory.wall_time,
            sweep=sweep,
            finished_at=time.time(),
            lrcontrol_version=lrcontrol.__version__,
            trajectory=trajectory.to_dict(),
        )

    # -- the store's row ------------------------------------------------------------------------
    def row(self) -> dict[str, Any]:
        """The record as the store's column values (booleans as 0/1, the trajectory as JSON)."""
        out = {name: getattr(self, name) for name in COLUMNS}
        out["diverged"], out["higher_is_better"] = int(self.diverged), int(self.higher_is_better)
        out["trajectory"] = jsontext.dumps(self.trajectory)  # strict JSON: json_extract reads every row
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """A record from a store row (`trajectory` as JSON text, or absent when it was not read)."""
        values = {name: row.get(name) for name in COLUMNS}
        values["diverged"], values["higher_is_better"] = bool(row["diverged"]), bool(row["higher_is_better"])
        text = row.get("trajectory")
        values["trajectory"] = jsontext.loads(text) if isinstance(text, str) else text  # old stores: Infinity too
        return cls(**values)

    def trajectory_object(self) -> Any:
        """The stored trajectory as a `Trajectory` (None when the record was read without it)."""
        from lrcontrol.bench.engine import Trajectory

        return None if self.trajectory is None else Trajectory.from_dict(self.trajectory)

    # -- values computed from the stored validation curve ----------------------------------------
    @cached_property
    def curve_metrics(self) -> dict[str, float]:
        """initial, auc and (given a target) steps_to_target of the stored curve; {} without a trajectory."""
        return curve_metrics(self.metric, self.higher_is_better, _target(self), self.trajectory)

    # -- the read-only mapping the metrics read ----------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        if name in COLUMNS:
            return getattr(self, name)
        return self.curve_metrics[name]

    def __iter__(self) -> Iterator[str]:
        yield from COLUMNS
        yield from self.curve_metrics

    def __len__(self) -> int:
        return len(COLUMNS) + len(self.curve_metrics)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: every column (the trajectory decoded), without the computed curve metrics."""
        return {name: getattr(self, name) for name in COLUMNS}


#: the store's columns, in order, with their SQL declarations: the record's fields
COLUMNS: dict[str, str] = {f.name: f.metadata["sql"] for f in fields(RunRecord)}


def curve_metrics(metric: str, higher_is_better: bool, target: float | None, trajectory: Any) -> dict[str, float]:
    """initial, auc and (given a target) steps_to_target of a trajectory's primary-metric curve."""
    if not isinstance(trajectory, Mapping) or trajectory.get("eval_steps") is None:
        return {}
    curve = [(s, v.get(metric)) for s, v in zip(trajectory["eval_steps"], trajectory.get("val", []))]
    computed = run_metrics(curve, bool(higher_is_better), target)
    out = {"initial": computed["initial"], "auc": computed["auc"]}
    if "steps_to_target" in computed:
        out["steps_to_target"] = computed["steps_to_target"]
    return out


def analysis_view(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the metrics read of a record: a RunRecord as it is; a plain mapping with the curve metrics it
    lacks computed from its `trajectory` (when it carries one), values it gives itself kept."""
    if isinstance(record, RunRecord):
        return record
    out = dict(record)
    if "metric" in out:
        for name, value in curve_metrics(
            out["metric"], out.get("higher_is_better"), _target(out), out.get("trajectory")
        ).items():
            if out.get(name) is None:
                out[name] = value
    return out


def run_cost(record: Mapping[str, Any]) -> float:
    """Compute in full-run equivalents: (steps + extra_steps) / budget (NaN if budget or steps are unknown).

    extra_steps counts what the method spent besides training (an LR range test, tuning trials)."""
    budget, steps = number(record.get("budget"), "budget"), number(record.get("steps"), "steps")
    extra = number(record.get("extra_steps"), "extra_steps")
    if not budget > 0 or math.isnan(steps):
        return math.nan
    return (steps + (0.0 if math.isnan(extra) else extra)) / budget


def number(value: Any, name: str) -> float:
    """A record's numeric field as a float (NaN for None), or an error naming the field."""
    from lrcontrol.errors import LRControlError

    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LRControlError(f"field {name!r} must be a number or None; got {value!r}") from None


def _target(record: Mapping[str, Any]) -> float | None:
    target = number(record.get("target"), "target")
    return None if math.isnan(target) else target


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_key(task_key: str, spec: str, seed: int, budget: int, horizon: int | None = None) -> str:
    """A stable id for a run: sha256 of its identifying fields (the spec must be canonical).

    A term whose result depends on content outside the spec declares that content's identity
    (`Entry.identity`): `learned()` its policy's digest, `auto()` its selector file's content hash. Those
    identities join the fields, so new content (a retrained policy or selector) never reuses the stored
    runs of the old; a spec whose terms declare nothing keys on the fields alone."""
    parts: list[Any] = [task_key, spec, int(seed), int(budget), int(budget if horizon is None else horizon)]
    parts.extend(identity(args) for identity, args in _declaring_terms(spec))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@lru_cache(maxsize=4096)
def _declaring_terms(spec: str) -> tuple[tuple[Any, dict[str, Any]], ...]:
    """(identity function, the term's arguments with defaults) of each term of `spec` that declares one.

    Cached per spec text: run_key is called for every run of a sweep, and a spec is parsed once. The
    identities themselves are computed on every call (a file's content can change within a process;
    they cache by the file's size and modification time). A string that is not a spec (a tuned method's
    name, `tune:…`) declares nothing."""
    from lrcontrol.errors import LRControlError
    from lrcontrol.spec import parse

    try:
        parsed = parse(spec)
    except LRControlError:
        return ()
    return tuple((t.entry.identity, t.full_kwargs()) for t in parsed.terms if t.entry.identity is not None)


def method_of(spec: str) -> tuple[str, float | None]:
    """Split a canonical spec into (the method without its LR, the LR)."""
    from lrcontrol.spec import Spec, Term, parse

    parsed = parse(spec)
    opt = parsed.optimizer
    if opt is None:
        return str(parsed), None
    args = dict(opt.args)
    lr = args.pop("lr", None)
    rest = Term(opt.name, tuple(args.items()))
    return str(Spec((rest, *parsed.factors))), (None if lr is None else float(lr))
