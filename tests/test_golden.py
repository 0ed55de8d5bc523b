"""A refactor changes no number: the smoke suite, run today, exports what it exported before.

tests/golden/smoke-export.csv.gz is `lrcontrol export --format csv` of `lrcontrol sweep suites/smoke.toml
--workers 1`, and tests/golden/smoke-summary.json is `lrcontrol summary --json` of that store, both written
by lrcontrol 0.2.0 (commit a0bad49) before the run record, executor and metrics were restructured.
Everything that legitimately varies is left out of the comparison: wall times, the time a run finished and
the lrcontrol version. Every other field — every loss, LR and metric of every trajectory — must be equal,
bit for bit (same seed, same result on CPU).

Bit for bit holds on one CPU, not across CPUs: PyTorch picks its float kernels by the instruction set and
vendor, so the same run differs by a few ulps elsewhere (on an AMD EPYC with AVX-512 the smoke suite's
numbers were up to 4.2e-6 relative from the golden file, written on a machine whose CPU was not recorded).
For each further CPU,
tests/golden/cpu/<vendor>-<capability>.csv.gz holds the same export written by the same 0.2.0 code on
that CPU, and a run there must equal it bit for bit:

    git worktree add /tmp/lrcontrol-0.2.0 a0bad49
    cd /tmp/lrcontrol-0.2.0 && sed 's/^seeds = 2$/seeds = [0]/' suites/smoke.toml > /tmp/smoke0.toml
    PYTHONPATH=src python -m lrcontrol sweep /tmp/smoke0.toml --store /tmp/smoke0.db --workers 2
    PYTHONPATH=src python -m lrcontrol export /tmp/smoke0.db --format csv -o /tmp/smoke0.csv
    cd -  # back in this repository's root:
    gzip -n -c /tmp/smoke0.csv > tests/golden/cpu/$(python -c "import sys; sys.path[:0] = ['tests']; from test_golden import cpu; print(cpu())").csv.gz

(On the AMD EPYC that wrote AuthenticAMD-AVX512.csv.gz, today's code exported exactly what 0.2.0 did.)
On a CPU with neither file, every number must be within UNKNOWN_CPU_RTOL of the golden file's, every
other field equal.

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
#: on a CPU without its own golden file: 24 times the largest difference measured between two CPUs
UNKNOWN_CPU_RTOL = 1e-4


def cpu() -> str:
    """The CPU as far as PyTorch's choice of float kernels goes: vendor and instruction-set capability."""
    import torch

    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor}-{torch.backends.cpu.get_cpu_capability()}"


def close(a: object, b: object, rtol: float) -> bool:
    """Equal, except that numbers (and numeric strings) may differ by rtol relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rtol) for x, y in zip(a, b))
    if a == b:
        return True
    try:
        x, y = float(a), float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return abs(x - y) <= rtol * max(abs(x), abs(y))


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
    if all(now[key] == row for key, row in golden.items()):
        return  # the CPU that wrote the golden file, or one that computes alike
    own = GOLDEN / "cpu" / f"{cpu()}.csv.gz"
    if own.exists():
        golden, rtol = read_export(own), 0.0
    else:
        rtol = UNKNOWN_CPU_RTOL
    for key, row in golden.items():
        same = now[key] == row if rtol == 0.0 else close(now[key], row, rtol)
        assert same, f"run {row['task']} {row['spec']} seed {row['seed']} changed (CPU {cpu()}, rtol {rtol})"


def test_the_tolerance_for_an_unknown_cpu_separates_cpus_from_changes():
    """The two CPUs' golden exports are within UNKNOWN_CPU_RTOL of each other but not equal; a change of
    one LR in the third significant digit (what a real change of a method does) is outside it."""
    golden = read_export(GOLDEN / "smoke-export.csv.gz")
    for other in sorted((GOLDEN / "cpu").glob("*.csv.gz")):
        theirs = read_export(other)
        assert sorted(theirs) == sorted(k for k, r in golden.items() if r["seed"] == "0")
        assert any(theirs[k] != golden[k] for k in theirs)
        assert all(close(theirs[k], golden[k], UNKNOWN_CPU_RTOL) for k in theirs)
    key, row = next(iter(golden.items()))
    changed = json.loads(json.dumps(row))
    changed["trajectory"]["lrs"][3] = [v * 1.001 for v in changed["trajectory"]["lrs"][3]]
    assert not close(changed, row, UNKNOWN_CPU_RTOL)


def test_the_summary_of_the_golden_store_is_the_golden_summary(tmp_path):
    store = tmp_path / "golden.db"
    store_from_export(GOLDEN / "smoke-export.csv.gz", store)
    summary = json.loads(lrcontrol("summary", str(store), "--json"))
    assert summary == json.loads((GOLDEN / "smoke-summary.json").read_text())


def test_no_module_of_the_package_is_over_400_lines():
    package = Path(__file__).resolve().parents[1] / "src" / "lrcontrol"
    long = {
        str(p.relative_to(package)): n for p in package.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules (the house keeps them under 400 lines): {long}"
