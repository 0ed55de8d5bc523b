"""`lrcontrol export --long`: the trajectories as two tidy tables, for pandas, DuckDB and dashboards.

- steps: one row per recorded training step and param group —
  key, task, method, seed, spec_lr (the run's LR in its spec), step, group, lr, effective_lr, train_loss
- evals: one row per evaluation and metric —
  key, task, method, seed, spec_lr, step, metric, value

Runs are streamed from the store in batches, so a large store never sits in memory as a whole; each
table is written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lrcontrol.bench.store import Store
from lrcontrol.errors import LRControlError

RUN_FIELDS = ("key", "task", "method", "seed", "spec_lr")
STEP_FIELDS = (*RUN_FIELDS, "step", "group", "lr", "effective_lr", "train_loss")
EVAL_FIELDS = (*RUN_FIELDS, "step", "metric", "value")
BATCH = 200  # runs per write: bounded memory, few row groups


def long_paths(store: Path, output: Path | None, fmt: str) -> tuple[Path, Path]:
    """(steps, evals) file names: `<base>.steps.<fmt>` and `<base>.evals.<fmt>`, base from -o or the store."""
    base = output if output is not None else store
    stem = base.with_suffix("") if base.suffix in (".parquet", ".csv", ".db", ".sqlite") else base
    return stem.with_name(stem.name + f".steps.{fmt}"), stem.with_name(stem.name + f".evals.{fmt}")


def _runs(db: Store) -> Iterator[list[dict[str, Any]]]:
    cursor = db.connection.execute("SELECT key, task, method, seed, lr, trajectory FROM runs ORDER BY key")
    while batch := cursor.fetchmany(BATCH):
        yield [dict(row) for row in batch]


def _rows(batch: list[dict[str, Any]]) -> tuple[list[tuple], list[tuple]]:
    steps, evals = [], []
    for run in batch:
        t = json.loads(run["trajectory"])
        head = (run["key"], run["task"], run["method"], run["seed"], run["lr"])
        effective = t.get("effective_lrs") or t["lrs"]
        for step, loss, lrs, eff in zip(t["train_steps"], t["train_loss"], t["lrs"], effective):
            for group, (lr, elr) in enumerate(zip(lrs, eff)):
                steps.append((*head, step, group, lr, elr, loss))
        for step, values in zip(t["eval_steps"], t["val"]):
            for metric, value in values.items():
                evals.append((*head, step, metric, value))
    return steps, evals


class _Writer:
    """A streaming Parquet or CSV table in a temporary file beside its destination."""

    def __init__(self, path: Path, fields: tuple[str, ...], fmt: str) -> None:
        self.path, self.fields, self.fmt, self.rows = path, fields, fmt, 0
        handle, self.temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        if fmt == "csv":
            self.file = open(self.temporary, "w", newline="")
            self.csv = csv.writer(self.file)
            self.csv.writerow(fields)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {"seed": pa.int64(), "step": pa.int64(), "group": pa.int64(), "metric": pa.string()}
            text = ("key", "task", "method")
            self.schema = pa.schema([(f, pa.string() if f in text else types.get(f, pa.float64())) for f in fields])
            self.parquet = pq.ParquetWriter(self.temporary, self.schema)

    def write(self, rows: list[tuple]) -> None:
        self.rows += len(rows)
        if self.fmt == "csv":
            self.csv.writerows(rows)
        elif rows:
            import pyarrow as pa

            columns = list(zip(*rows))
            self.parquet.write_table(pa.table(dict(zip(self.fields, columns)), schema=self.schema))

    def close(self, keep: bool) -> None:
        (self.file if self.fmt == "csv" else self.parquet).close()
        if keep:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temporary, 0o666 & ~umask)
            os.replace(self.temporary, self.path)
        else:
            Path(self.temporary).unlink(missing_ok=True)


def export_long(store: Path, steps_path: Path, evals_path: Path, fmt: str) -> dict[str, int]:
    """Write the per-step and per-evaluation tables; returns the run and row counts."""
    if fmt not in ("parquet", "csv"):
        raise LRControlError(f"unknown --format {fmt!r}; choose parquet or csv")
    runs = 0
    with Store(store, create=False) as db:
        writers = [_Writer(steps_path, STEP_FIELDS, fmt), _Writer(evals_path, EVAL_FIELDS, fmt)]
        ok = False
        try:
            for batch in _runs(db):
                runs += len(batch)
                step_rows, eval_rows = _rows(batch)
                writers[0].write(step_rows)
                writers[1].write(eval_rows)
            ok = True
        finally:
            for writer in writers:
                writer.close(keep=ok)
    return {"runs": runs, "step_rows": writers[0].rows, "eval_rows": writers[1].rows}
