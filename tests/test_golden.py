"""A refactor changes no number: the smoke suite, run today, exports what it exported before.

tests/golden/smoke-export.csv.gz is `lrcontrol export --format csv` of `lrcontrol sweep suites/smoke.toml
--workers 1`, and tests/golden/smoke-summary.json is `lrcontrol summary --json` of that store, both written
by lrcontrol 0.2.0 (commit a0bad49) before the run record, executor and metrics were restructured.
Everything that legitimately varies is left out of the comparison: wall times, the time a run finished and
the lrcontrol version. Every other field — every loss, LR and metric of every trajectory — must be equal,
bit for bit (same seed, same result on CPU).

Regenerate the golden files only for a change that is meant to change numbers, and say so in its commit.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lrcontrol.bench.store import COLUMNS, Store

GOLDEN = Path(__file__).resolve().parent / "golden"
SUITE = Path(__file__).resolve().parents[1] / "suites" / "smoke.toml"
VARIES = ("wall_time", "finished_at", "lrcontrol_version")


def read_export(path: Path) -> dict[str, dict[str, object]]:
    """An export's rows by run key, with the trajectory decoded and what varies left out."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == list(COLUMNS)
    out = {}
    for row in rows:
        for name in VARIES:
            row.pop(name)
        row["trajectory"] = json.loads(row["trajectory"])
        row["trajectory"].pop("wall_time")
        out[row["key"]] = row
    return out


def store_from_export(export: Path, store: Path) -> None:
    """Rebuild a store from a CSV export (empty cells are NULL; numbers by the column's type)."""
    convert = {"TEXT": str, "REAL": float, "INTEGER": int}
    with gzip.open(export, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with Store(store) as db, db.transaction():
        for row in rows:
            values = [None if row[c] == "" else convert[COLUMNS[c].split()[0]](row[c]) for c in COLUMNS]
            db.connection.execute(f"INSERT INTO runs VALUES ({', '.join('?' for _ in COLUMNS)})", values)


def lrcontrol(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lrcontrol", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_smoke_suite_exports_exactly_the_golden_results(tmp_path):
    # seed 0 of every (task, method, lr): half the suite, to keep the test short
    text = SUITE.read_text()
    assert "\nseeds = 2\n" in text
    suite = tmp_path / "smoke.toml"
    suite.write_text(text.replace("\nseeds = 2\n", "\nseeds = [0]\n"))
    store = tmp_path / "smoke.db"
    lrcontrol("sweep", str(suite), "--store", str(store), "--workers", "2", "--json")
    lrcontrol("export", str(store), "--format", "csv", "-o", str(tmp_path / "smoke.csv"), "--json")
    now = read_export(tmp_path / "smoke.csv")
    golden = {k: r for k, r in read_export(GOLDEN / "smoke-export.csv.gz").items() if r["seed"] == "0"}
    assert len(golden) == 28 and sorted(now) == sorted(golden)
    for key, row in golden.items():
        assert now[key] == row, f"run {row['task']} {row['spec']} seed {row['seed']} changed"


def test_the_summary_of_the_golden_store_is_the_golden_summary(tmp_path):
    store = tmp_path / "golden.db"
    store_from_export(GOLDEN / "smoke-export.csv.gz", store)
    summary = json.loads(lrcontrol("summary", str(store), "--json"))
    assert summary == json.loads((GOLDEN / "smoke-summary.json").read_text())


def test_no_module_of_the_benchmark_is_over_400_lines():
    bench = Path(__file__).resolve().parents[1] / "src" / "lrcontrol" / "bench"
    long = {p.name: n for p in bench.glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these modules (the house keeps them under 400 lines): {long}"
