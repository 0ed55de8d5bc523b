"""The result store: one SQLite file, one row per finished run, queryable with SQL.

Why SQLite rather than DuckDB: it ships with Python, and its write-ahead log (WAL) gives what a
benchmark that is killed at random needs — a transaction is either wholly in the file or not at all
after a `kill -9`, several processes may open the file at once (a reader while a sweep writes, two
sweeps into one store; writers wait on a lock instead of failing), and `PRAGMA synchronous=FULL`
makes a commit durable. DuckDB is the better engine for big analytical scans, but it lets only one
process open a file for writing; our data is small (a few thousand rows), and `export` writes
Parquet for DuckDB, pandas or polars to read.

A row exists only for a finished run (trained to its budget, or diverged), and it is written in one
`INSERT` inside one transaction together with all its results: a half run can never look finished.
The `trials` table has the same columns and holds the runs a tuner spent (every configuration at every
budget, `lrcontrol.tune`): they are its cost, not methods of their own, so `summary` and `export` read
`runs` only, where the tuned method's result sits — the incumbent's full run, its `extra_steps` the
rest of the tuning's steps, so its cost reads in full-run equivalents like any other method's.

Runs are keyed by `run_key(task, spec, seed, budget, horizon)` — the task's name, version and size,
the canonical spec (LR included), the seed, the budget and the planned horizon — so a sweep that is
run again skips what is already there, and recording the same run twice is a no-op.

    sqlite3 results.db "select method, lr, avg(final_loss) from runs group by 1, 2"
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lrcontrol.bench.engine import Trajectory, fault_point
from lrcontrol.bench.record import COLUMNS, RunRecord, method_of, run_key
from lrcontrol.errors import LRControlError

SCHEMA_VERSION = 1
#: `runs`: the methods' results; `trials`: the runs tuners spent (see the module docstring)
TABLES = ("runs", "trials")

__all__ = ["COLUMNS", "SCHEMA_VERSION", "Store", "method_of", "run_key"]


class Store:
    """A results file. Opening creates it (and its schema) unless `create=False`."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise LRControlError(f"no store at {self.path}; run a sweep first, e.g. lrcontrol sweep suites/smoke.toml")
        if self.path.exists() and self.path.is_dir():
            raise LRControlError(f"{self.path} is a directory; give the path of a store file, e.g. results.db")
        try:
            self.connection = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise LRControlError(f"{self.path} is not a readable lrcontrol store ({exc})") from None

    def _create_schema(self) -> None:
        columns = ",\n  ".join(f"{name} {decl}" for name, decl in COLUMNS.items())
        with self.transaction():
            self.connection.execute(f"CREATE TABLE IF NOT EXISTS runs (\n  {columns}\n)")
            self.connection.execute(f"CREATE TABLE IF NOT EXISTS trials (\n  {columns}\n)")
            self.connection.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self.connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.connection.execute("CREATE INDEX IF NOT EXISTS runs_task_method ON runs (task, method)")
        version = self.connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise LRControlError(
                f"{self.path} has store schema {version}, this lrcontrol reads {SCHEMA_VERSION}; "
                "export it with the lrcontrol that wrote it"
            )

    def transaction(self) -> _Transaction:
        return _Transaction(self.connection)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------
    def record(self, task: Any, trajectory: Trajectory, sweep: str | None = None) -> bool:
        """Record a finished run of `task` in one transaction; False if it was already there."""
        return self.add(RunRecord.from_run(task, trajectory, sweep))

    def add(self, record: RunRecord, table: str = "runs") -> bool:
        """Write a run record as one row, in one transaction; False if its key was already there.
        A tuner's trials go to `table="trials"`."""
        _check_table(table)
        row = record.row()
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction():
            cursor = self.connection.execute(
                f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", list(row.values())
            )
            fault_point("store-write")  # the crash tests kill the process here, inside the transaction
        return cursor.rowcount == 1

    # -- reading ---------------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        return {r[0] for r in self.connection.execute("SELECT key FROM runs")}

    def count(self) -> int:
        return int(self.connection.execute("SELECT count(*) FROM runs").fetchone()[0])

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only SQL query and return rows as dicts."""
        try:
            return [dict(r) for r in self.connection.execute(sql, tuple(parameters))]
        except sqlite3.Error as exc:
            raise LRControlError(f"SQL error: {exc}") from None

    def records(
        self, where: str = "", parameters: Iterable[Any] = (), trajectories: bool = True, table: str = "runs"
    ) -> list[RunRecord]:
        """Every run as a `RunRecord`, ordered by key (without its trajectory if `trajectories=False`).

        What `lrcontrol.bench.metrics` reads as it is: one record per finished run.
        """
        columns = [c for c in COLUMNS if trajectories or c != "trajectory"]
        _check_table(table)
        sql = f"SELECT {', '.join(columns)} FROM {table}" + (f" WHERE {where}" if where else "") + " ORDER BY key"
        return [RunRecord.from_row(row) for row in self.query(sql, parameters)]

    def export(self, path: str | Path, format: str) -> int:
        """Write every run to Parquet or CSV (the trajectory as a JSON string column); returns the row count."""
        rows = self.query(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY key")
        path = Path(path)
        if format == "csv":
            with open(path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
                writer.writeheader()
                writer.writerows(rows)
        elif format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {"TEXT": pa.string(), "REAL": pa.float64(), "INTEGER": pa.int64()}
            schema = pa.schema([(name, types[decl.split()[0]]) for name, decl in COLUMNS.items()])
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, path)
        else:
            raise LRControlError(f"unknown export format {format!r}; choose parquet or csv")
        return len(rows)

    def integrity_ok(self) -> bool:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise LRControlError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")


class _Transaction:
    """`with store.transaction():` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.connection.execute("ROLLBACK" if exc_type is not None else "COMMIT")
