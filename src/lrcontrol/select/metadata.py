"""The meta-dataset: every portfolio member on every instance, and the tuned baselines, as one Parquet file.

    lrcontrol select build --instances 220 --seed 0 --store results/meta.db --workers 2 --out metadata/

`build` trains the runs through the one-run executor into a result store (`lrcontrol.bench`): the
members on every instance (phase "members"), the grid baseline's other LRs ("grid"), the MF-HPO baseline
on a subset ("mfhpo"), and a second seed of the members on a subset ("seeds"). Runs already in the store
are skipped, so a killed build started again continues where it stopped. `export` then writes
`runs.parquet`: one row per (instance, member or baseline, seed), without per-step trajectories — only
the evaluation curve and ≤ 64-point traces of the LR and the training loss (`SCHEMA`).
`read_runs` / `read_features` read the files back and check their columns.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lrcontrol.errors import LRControlError
from lrcontrol.select import baselines
from lrcontrol.select.instances import Instance

#: the columns of runs.parquet and their Arrow types (see SELECT-DESIGN: the selectors read these)
SCHEMA: dict[str, str] = {
    "instance": "string",
    "family": "string",
    "dataset": "string",
    "member": "string",
    "spec": "string",
    "seed": "int64",
    "diverged": "bool",
    "final_metric": "float64",
    "initial_metric": "float64",
    "higher_is_better": "bool",
    "metric": "string",
    "budget": "int64",
    "cost": "float64",
    "wall_time": "float64",
    "eval_frac": "list<float64>",
    "eval_values": "list<float64>",
    "trace_frac": "list<float64>",
    "trace_lr": "list<float64>",
    "trace_loss": "list<float64>",
}
FEATURE_KEYS = ("instance", "family", "dataset", "probe_cost")
TRACE_POINTS = 64
PHASES = ("members", "grid", "mfhpo", "seeds")


def member_runs(instances: Iterable[Instance], members: Mapping[str, str], seeds: Iterable[int]) -> list[Any]:
    """One RunSpec per (instance, member, seed), at the task's own budget and size "default"."""
    from lrcontrol.bench.run_spec import RunSpec

    return [
        RunSpec.create(i.task, spec, seed, sweep="select")
        for seed in seeds
        for i in instances
        for spec in members.values()
    ]


def grid_runs(instances: Iterable[Instance], seeds: Iterable[int]) -> list[Any]:
    from lrcontrol.bench.run_spec import RunSpec

    return [
        RunSpec.create(i.task, spec, seed, sweep="select")
        for seed in seeds
        for i in instances
        for spec in baselines.grid_specs()
    ]


def build(
    instances: Sequence[Instance],
    store_path: str | Path,
    workers: int,
    members: Mapping[str, str],
    seeds: Sequence[int] = (0,),
    extra_seed_instances: Sequence[Instance] = (),
    mfhpo_instances: Sequence[Instance] = (),
    phases: Sequence[str] = PHASES,
    checkpoint_dir: str | Path | None = None,
    on_phase: Callable[[str, int, int], None] = lambda phase, todo, total: None,
    on_done: Callable[[Any], None] = lambda run: None,
    on_failed: Callable[[Any, str], None] = lambda run, error: None,
) -> dict[str, Any]:
    """Train the meta-dataset's runs into the store at `store_path` (see the module docstring); returns
    per phase the runs, how many were already there, recorded, diverged and failed, and the wall time.

    seeds: the members' and the grid's seeds on every instance; extra_seed_instances: the instances that
    also get seed max(seeds)+1 of the members (phase "seeds"); mfhpo_instances: where the MF-HPO
    baseline runs (seed 0). The caller has checked the inputs (`check_build`)."""
    import time

    from lrcontrol.bench.local_executor import LocalExecutor
    from lrcontrol.bench.store import Store
    from lrcontrol.bench.sweep_runner import pending_runs, run_sweep

    summary: dict[str, Any] = {}
    checkpoints = str(checkpoint_dir or Path(store_path).with_name(Path(store_path).name + ".checkpoints"))
    with Store(store_path) as store, LocalExecutor(workers, checkpoints) as executor:
        for phase in phases:
            started = time.perf_counter()
            if phase == "mfhpo":
                summary[phase] = _mfhpo(mfhpo_instances, store_path, executor, on_phase, on_done, on_failed)
            else:
                runs = {
                    "members": lambda: member_runs(instances, members, seeds),
                    "grid": lambda: grid_runs(instances, seeds),
                    "seeds": lambda: member_runs(extra_seed_instances, members, [max(seeds) + 1]),
                }[phase]()
                on_phase(phase, len(pending_runs(store, runs)), len(runs))
                outcome = run_sweep(runs, store, executor, on_done=lambda r, t: on_done(r), on_failed=on_failed)
                summary[phase] = {
                    "runs": outcome.total,
                    "already_done": outcome.skipped,
                    "recorded": outcome.recorded,
                    "diverged": outcome.diverged,
                    "failed": len(outcome.failed),
                }
            summary[phase]["wall_seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _mfhpo(
    instances: Sequence[Instance],
    store_path: str | Path,
    executor: Any,
    on_phase: Callable[[str, int, int], None],
    on_done: Callable[[Any], None],
    on_failed: Callable[[Any, str], None],
) -> dict[str, Any]:
    """One tune per instance (seed 0); a tune already in the store returns at once."""
    from lrcontrol.tune import tune

    on_phase("mfhpo", len(instances), len(instances))
    done = failed = 0
    for item in instances:
        try:
            tune(
                item.task,
                baselines.MFHPO_SPACE,
                strategy=baselines.MFHPO_STRATEGY,
                trials=baselines.MFHPO_TRIALS,
                seed=0,
                batch=executor.slots(),
                store=store_path,
                executor=executor,
                sweep="select",
            )
            done += 1
            on_done(item)
        except LRControlError as exc:
            failed += 1
            on_failed(item, str(exc))
    return {"runs": len(instances), "recorded": done, "failed": failed}


# -- export ------------------------------------------------------------------------------------------
def _downsample(steps: Sequence[int], values: Sequence[float], lrs: Sequence[float], budget: int) -> dict[str, list]:
    """≤ TRACE_POINTS equal windows of the per-step trace: each window's mean loss, and the LR and the
    step (as a fraction of the budget) at its end."""
    n = len(steps)
    if n == 0:
        return {"trace_frac": [], "trace_lr": [], "trace_loss": []}
    edges = [round(k * n / min(n, TRACE_POINTS)) for k in range(min(n, TRACE_POINTS) + 1)]
    frac, lr, loss = [], [], []
    for start, end in zip(edges[:-1], edges[1:]):
        window = [v for v in values[start:end] if v is not None and math.isfinite(v)]
        frac.append(steps[end - 1] / budget)
        lr.append(float(lrs[end - 1]))
        loss.append(sum(window) / len(window) if window else math.nan)
    return {"trace_frac": frac, "trace_lr": lr, "trace_loss": loss}


def _row(item: Instance, member: str, record: Any, cost: float, wall_time: float) -> dict[str, Any]:
    trajectory = record.trajectory or {}
    metric = record.metric
    eval_steps = trajectory.get("eval_steps") or []
    values = [v.get(metric) for v in trajectory.get("val") or []]
    initial = record.curve_metrics.get("initial", math.nan)
    final = record.final_metric
    lrs = [group[0] if group else math.nan for group in trajectory.get("lrs") or []]
    return {
        "instance": item.task,
        "family": item.family,
        "dataset": item.dataset,
        "member": member,
        "spec": record.spec,
        "seed": int(record.seed),
        "diverged": bool(record.diverged),
        "final_metric": math.nan if final is None or record.diverged else float(final),
        "initial_metric": math.nan if initial is None else float(initial),
        "higher_is_better": bool(record.higher_is_better),
        "metric": metric,
        "budget": int(record.budget),
        "cost": float(cost),
        "wall_time": float(wall_time),
        "eval_frac": [s / record.budget for s in eval_steps],
        "eval_values": [math.nan if v is None else float(v) for v in values],
        **_downsample(trajectory.get("train_steps") or [], trajectory.get("train_loss") or [], lrs, record.budget),
    }


def collect(store_path: str | Path, instances: Sequence[Instance], members: Mapping[str, str]) -> list[dict[str, Any]]:
    """The meta-dataset's rows from the store: every finished member run of the instances, the grid
    baseline where its whole grid is finished, and the MF-HPO incumbents."""
    from lrcontrol.bench.record import run_cost
    from lrcontrol.bench.store import Store

    by_spec = {spec: name for name, spec in members.items()}
    grid = set(baselines.grid_specs())
    rows: list[dict[str, Any]] = []
    with Store(store_path, create=False, readonly=True) as store:
        for item in instances:
            records = store.records("task_name = ? AND size = 'default'", [item.task])
            grid_by_seed: dict[int, list[Any]] = {}
            for record in records:
                if record.spec in by_spec and record.method == _method(record.spec):
                    rows.append(_row(item, by_spec[record.spec], record, run_cost(record), record.wall_time))
                if record.spec in grid and record.method == _method(record.spec):
                    grid_by_seed.setdefault(record.seed, []).append(record)
                if baselines.is_mfhpo(record):
                    # the tune's wall time is its trials' (the incumbent's row holds only its own run's)
                    wall = _trials_wall_time(store, item.task, record.seed)
                    rows.append(_row(item, baselines.MFHPO_NAME, record, run_cost(record), wall or record.wall_time))
            for seed in sorted(grid_by_seed):
                pick = baselines.pick_grid(grid_by_seed[seed])
                if pick is not None:
                    rows.append(_row(item, baselines.GRID_NAME, pick.record, pick.cost, pick.wall_time))
    return rows


def _trials_wall_time(store: Any, task: str, seed: int) -> float:
    """Seconds spent by the tuning trials of `task` and `seed` (0 when the store has no trials table)."""
    if not store.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'trials'"):
        return 0.0
    rows = store.query(
        "SELECT sum(wall_time) AS wall FROM trials WHERE task_name = ? AND seed = ? AND size = 'default'", [task, seed]
    )
    return float(rows[0]["wall"] or 0.0)


def _method(spec: str) -> str:
    from lrcontrol.bench.record import method_of

    return method_of(spec)[0]


def export(rows: Sequence[Mapping[str, Any]], path: str | Path) -> int:
    """Write `rows` (SCHEMA's columns) to a Parquet file atomically; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise LRControlError("no finished runs to export: build the meta-dataset first (lrcontrol select build)")
    path = Path(path)
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=arrow_schema())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)


def append_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> tuple[int, int]:
    """Add to the Parquet file at `path` the `rows` whose (instance, member, seed) it lacks, keeping every
    row it holds as it is (a member added to the portfolio joins the shipped meta-dataset without
    re-running the others); written atomically. Returns (rows added, rows in the file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    existing = pq.read_table(path)
    missing = [c for c in SCHEMA if c not in existing.column_names]
    if missing:
        raise LRControlError(f"{path} is not a meta-dataset: it lacks the columns {', '.join(missing)}")
    existing = existing.select(list(SCHEMA)).cast(arrow_schema())
    have = set(zip(*(existing.column(c).to_pylist() for c in ("instance", "member", "seed"))))
    new = [dict(r) for r in rows if (r["instance"], r["member"], int(r["seed"])) not in have]
    table = pa.concat_tables([existing, pa.Table.from_pylist(new, schema=arrow_schema())])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(new), table.num_rows


def arrow_schema() -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "list<float64>": pa.list_(pa.float64()),
    }
    return pa.schema([(name, types[kind]) for name, kind in SCHEMA.items()])


def read_runs(path: str | Path) -> Any:
    """runs.parquet as a pandas DataFrame, its columns checked (LRControlError names what is wrong)."""
    frame = _read(path, "runs")
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        raise LRControlError(f"{path} is not a meta-dataset: it lacks the columns {', '.join(missing)}")
    if frame.empty:
        raise LRControlError(f"{path} holds no runs; build the meta-dataset first (lrcontrol select build)")
    return frame


def read_features(path: str | Path) -> Any:
    """features.parquet as a pandas DataFrame: instance, family, dataset, one float column per feature, probe_cost."""
    frame = _read(path, "features")
    missing = [c for c in FEATURE_KEYS if c not in frame.columns]
    if missing:
        raise LRControlError(f"{path} is not a feature table: it lacks the columns {', '.join(missing)}")
    if frame.empty:
        raise LRControlError(f"{path} holds no instances")
    return frame


def _read(path: str | Path, what: str) -> Any:
    import pandas as pd
    import pyarrow

    path = Path(path)
    if not path.is_file():
        raise LRControlError(f"no {what} file at {path}; build it with lrcontrol select build")
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowInvalid, OSError) as exc:
        raise LRControlError(f"{path} cannot be read as Parquet ({exc})") from None
