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
import os
import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lrcontrol.bench.engine import Trajectory, fault_point
from lrcontrol.bench.record import COLUMNS, RunRecord, method_of, run_key
from lrcontrol.errors import LRControlError

SCHEMA_VERSION = 1
#: `runs`: the methods' results; `trials`: the runs tuners spent (see the module docstring)
TABLES = ("runs", "trials")

__all__ = ["COLUMNS", "SCHEMA_VERSION", "Store", "method_of", "run_key"]


LEASES_TABLE = "CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
#: PRAGMA application_id of an lrcontrol store ("LRCT"): another program's SQLite file is never ours
APPLICATION_ID = 0x4C524354
SQLITE_HEADER = b"SQLite format 3\x00"


class Store:
    """A results file. Opening creates it (and its schema) unless `create=False`.

    `readonly=True` opens an existing store without ever writing to it (no schema, no WAL switch): what
    `summary`, `export` and `report` use, and what works on a store the user may only read.
    `create=False` means the same (a store that must exist is one to read). Either way a file
    that is not an lrcontrol store (another program's SQLite database, a newer schema) is refused
    before anything is written to it.
    """

    def __init__(self, path: str | Path, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        readonly = readonly or not create
        self.readonly = readonly
        create = not readonly
        if "\x00" in str(path):
            raise LRControlError(f"store path {str(path)!r} contains a NUL byte; give a plain file path")
        existed = self.path.exists()
        if not create and not existed:
            raise LRControlError(f"no store at {self.path}; run a sweep first, e.g. lrcontrol sweep suites/smoke.toml")
        if existed and self.path.is_dir():
            raise LRControlError(f"{self.path} is a directory; give the path of a store file, e.g. results.db")
        if existed:
            check_store_file(self.path)
        self._sides = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm", "-journal")]
        for side in self._sides:  # SQLite's side files: a directory there fails mid-open
            try:
                mode = side.stat().st_mode
            except FileNotFoundError:  # absent, or removed meanwhile by another connection's SQLite
                continue
            if not stat.S_ISREG(mode):
                raise LRControlError(f"{side} is not a regular file, so SQLite cannot use {self.path}; remove {side}")
        self._new_sides = [side for side in self._sides if not side.exists()]
        try:
            if readonly:
                self.connection = _connect_readonly(self.path)
            else:
                self.connection = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.connection.row_factory = sqlite3.Row
            self._check_own()
            if not readonly:
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.execute("PRAGMA synchronous=FULL")
                # CREATE … IF NOT EXISTS: a new store gets its schema, an older one the tables added since
                self._create_schema()
                # concurrent sweeps' claims (lrcontrol.bench.leases)
                self.connection.execute(LEASES_TABLE)
        except sqlite3.DatabaseError as exc:
            self._abandon(existed)
            raise LRControlError(f"{self.path} is not a readable lrcontrol store ({exc})") from None
        except LRControlError:
            self._abandon(existed)
            raise

    def _abandon(self, existed: bool) -> None:
        """Close after a failed open; a file this call created (empty) is removed again."""
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()
        if not existed and self.path.is_file() and self.path.stat().st_size == 0:
            self.path.unlink()
        for side in self._new_sides:  # the WAL files SQLite made for this failed open (no one else uses it)
            side.unlink(missing_ok=True)

    def _check_own(self) -> bool:
        """Refuse a database that is not an lrcontrol store (reads only); True if it is empty (new)."""
        tables = {r[0] for r in self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        app_id = self.connection.execute("PRAGMA application_id").fetchone()[0]
        if not tables and app_id == 0:
            if self.readonly:
                raise LRControlError(
                    f"{self.path} is an empty SQLite file, not an lrcontrol store; run a sweep into it"
                )
            return True
        ours = app_id == APPLICATION_ID or (app_id == 0 and {"runs", "meta"} <= tables)
        row = None
        if ours and {"runs", "meta"} <= tables:
            row = self.connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None:
            listed = ", ".join(sorted(tables)[:5]) or "none"
            raise LRControlError(
                f"{self.path} is an SQLite database of another program (tables: {listed}), not an lrcontrol "
                "store; give a new file path for the store"
            )
        version = row[0]
        if str(version) != str(SCHEMA_VERSION):
            raise LRControlError(
                f"{self.path} has store schema {version}, this lrcontrol reads {SCHEMA_VERSION}; "
                "export it with the lrcontrol that wrote it"
            )
        columns = {r[1] for r in self.connection.execute("PRAGMA table_info(runs)")}
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise LRControlError(
                f"{self.path}: its runs table lacks the columns {', '.join(missing[:5])}; it was not written by "
                "this lrcontrol (or was changed outside it); give a new file path for the store"
            )
        return False

    def _create_schema(self) -> None:
        columns = ",\n  ".join(f"{name} {decl}" for name, decl in COLUMNS.items())
        with self.transaction():
            self.connection.execute(f"CREATE TABLE IF NOT EXISTS runs (\n  {columns}\n)")
            self.connection.execute(f"CREATE TABLE IF NOT EXISTS trials (\n  {columns}\n)")
            self.connection.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self.connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.connection.execute("CREATE INDEX IF NOT EXISTS runs_task_method ON runs (task, method)")
            self.connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")

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
            if not self.readonly:  # the run's lease, if a sweep held one, ends with the run (same transaction)
                self.connection.execute("DELETE FROM leases WHERE key = ?", (row["key"],))
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
        rows = self.query(sql, parameters)
        try:
            return [RunRecord.from_row(row) for row in rows]
        except (TypeError, ValueError) as exc:  # a row changed outside lrcontrol (a trajectory that is not JSON)
            bad = next((r["key"] for r in rows if not _decodes(r)), "?")
            raise LRControlError(
                f"{self.path}: run {bad} cannot be read ({exc}); the store was changed outside lrcontrol: "
                f"delete that row (DELETE FROM {table} WHERE key = '{bad}') to run it again"
            ) from None

    def export(self, path: str | Path, format: str) -> int:
        """Write every run to Parquet or CSV (the trajectory as a JSON string column); returns the row count."""
        if format not in ("csv", "parquet"):
            raise LRControlError(f"unknown export format {format!r}; choose parquet or csv")
        rows = self.query(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY key")
        path = Path(path)
        # written next to the target and renamed over it: a full disk or a kill leaves the old file whole
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if format == "csv":
                with open(tmp, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
                    writer.writeheader()
                    writer.writerows(rows)
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                types = {"TEXT": pa.string(), "REAL": pa.float64(), "INTEGER": pa.int64()}
                schema = pa.schema([(name, types[decl.split()[0]]) for name, decl in COLUMNS.items()])
                table = pa.Table.from_pylist(rows, schema=schema)
                pq.write_table(table, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return len(rows)

    def integrity_ok(self) -> bool:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise LRControlError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")


def check_store_file(path: Path) -> None:
    """An existing store path must be a regular file starting with SQLite's header (or be empty)."""
    if not path.is_file():
        raise LRControlError(f"{path} is not a regular file; give the path of a store file, e.g. results/quick.db")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise LRControlError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    if head and head != SQLITE_HEADER:
        raise LRControlError(f"{path} exists and is not an lrcontrol store (not an SQLite file); choose another path")


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open without any right to write. A store in a folder we may not write to cannot get the WAL's
    shared-memory file, so it is then opened as immutable (nothing can change it under us anyway)."""
    uri = "file:" + quote(str(path.resolve()))
    connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        connection.close()
        if os.access(path.parent, os.W_OK):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


def _decodes(row: Any) -> bool:
    try:
        RunRecord.from_row(row)
    except (TypeError, ValueError):
        return False
    return True


class _Transaction:
    """`with store.transaction():` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.connection.execute("ROLLBACK" if exc_type is not None else "COMMIT")
