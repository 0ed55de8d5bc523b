"""Hostile and careless input, case by case (ids S01…K07 follow the reliability audit of 0.2.0).

Every bad case ends in one line `error: …` naming the problem and the fix, exit status 2, and no file
written or changed (every file under the test's folder hashed before and after). The few cases that
were legitimate input are run too and must succeed. Everything runs in-process with typer's CliRunner
and tiny budgets; a subprocess only where the case is about the process (stdin).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrcontrol.bench.engine import run
from lrcontrol.bench.store import Store
from lrcontrol.cli import app
from lrcontrol.errors import LRControlError
from lrcontrol.tasks import get_task

runner = CliRunner()

GOOD = """
name = "g"
size = "smoke"
seeds = 1
lrs = [0.05]
budget = 5
tasks = ["sphere-10"]
methods = ["sgd + constant()"]
"""
RUN = ["run", "sphere-10", "sgd", "--size", "smoke", "--budget", "5"]
MARKER = "PWNED"


def sweep_with(**changes: str) -> str:
    """GOOD with some lines replaced: sweep_with(seeds="seeds = 3")."""
    lines = GOOD.strip().splitlines()
    for key, line in changes.items():
        lines = [line if existing.split(" =")[0] == key else existing for existing in lines]
        if not any(existing.split(" =")[0] == key for existing in lines):
            lines.append(line)
    return "\n".join(lines) + "\n"


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root: a file's sha256, or what kind of entry it is (never following links)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory) -> bytes:
    """A valid store holding one finished run (checkpointed to a single file, no WAL left over)."""
    path = tmp_path_factory.mktemp("store") / "s.db"
    torch.set_num_threads(1)
    task = get_task("sphere-10", "smoke")
    with Store(path) as db:
        db.record(task, run(task, "sgd(lr=0.05) + constant()", 0, 5))
        db.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def evil_pickle(marker: Path) -> bytes:
    """A checkpoint whose unpickling would create `marker` (via os.mkdir) if any code ran."""

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return pickle.dumps({"model": Evil()})


def foreign_db(runs_table: bool) -> bytes:
    """Another program's SQLite file (rollback journal, its own tables)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE runs (id INTEGER, note TEXT)" if runs_table else "CREATE TABLE notes (t TEXT)")
        db.commit()
        db.close()
        return path.read_bytes()


# -- the table of bad input ------------------------------------------------------------------------
# (id, files to create {path: text | bytes | callable(store_bytes) -> bytes}, command line, message, env)
S = "s.toml"
BAD: list[tuple[str, dict, list[str], str, dict]] = [
    ("S01 lr=1e400", {}, ["spec", "sgd(lr=1e400)"], "lr must be finite", {}),
    ("S02 401-digit lr", {}, ["spec", "sgd(lr=1" + "0" * 400 + ")"], "lr must be finite, got 100000…(401 digits)", {}),
    ("S03 huge int horizon", {}, [*RUN[:2], "sgd + warmup(" + "1" + "0" * 29 + ") + cosine()", *RUN[3:]], "2**53", {}),
    ("S04 __import__", {}, ["spec", "__import__('os').system('touch PWNED')"], "is not a method", {}),
    ("S05 duplicate schedules", {}, ["spec", "sgd + cosine() + cosine()"], "cosine() appears twice", {}),
    ("S06 duplicate reactive", {}, ["spec", "sgd + plateau() + plateau(patience=2)"], "plateau() appears twice", {}),
    ("S07 two optimizers", {}, ["spec", "sgd + adam"], "must come first", {}),
    ("S08 300 parens", {}, ["spec", "sgd(lr=" + "(" * 300 + "0.1" + ")" * 300 + ")"], "cannot parse spec", {}),
    ("S09 220 terms", {}, ["spec", "sgd" + " + constant" * 220], "the limit is 2000", {}),
    ("S10 homoglyph", {}, ["spec", "ѕgd(lr=0.1)"], "unknown method 'ѕgd' (did you mean 'sgd'?)", {}),
    ("S11 full-width digits", {}, ["spec", "sgd(lr=０.１)"], "invalid character '０'", {}),
    ("S12 markup in spec", {}, ["spec", "sgd[/]"], "cannot parse spec 'sgd[/]'", {}),
    ("S14 markup-like argument", {}, ["spec", "sgd(lr=[abc])"], "'abc' is not a literal", {}),
    ("S15 lr string nan", {}, ["spec", 'sgd(lr="nan")'], "got the string 'nan'", {}),
    ("S16 lr -0.0", {}, ["spec", "sgd(lr=-0.0)"], "lr must be in (0, 1e+30]", {}),
    ("S17 denormal lr", {}, [*RUN[:2], "sgd(lr=5e-324) + cosine()", *RUN[3:]], "lr must be at least 1e-30", {}),
    ("S19 lr True", {}, ["spec", "sgd(lr=True)"], "got True", {}),
    ("S20 newline in spec", {}, ["spec", "sgd\n+ cosine()"], "cannot parse spec 'sgd\\n+ cosine()'", {}),
    ("S21 keyword twice", {}, ["spec", "sgd(lr=0.1, lr=0.2)"], "twice", {}),
    ("S22 walrus", {}, ["spec", "sgd(lr=(x:=0.1))"], "is not a literal", {}),
    ("R01 task with spaces", {}, ["run", "sphere 10", "sgd", "--size", "smoke"], "unknown task 'sphere 10'", {}),
    ("R02 empty task", {}, ["run", "", "sgd", "--size", "smoke"], "unknown task ''", {}),
    ("R03 empty spec", {}, ["run", "sphere-10", "", "--size", "smoke"], "empty spec", {}),
    ("R04 seed > 2^64", {}, [*RUN, "--seed", "99999999999999999999999"], "--seed must be in [0, 2**63 - 1]", {}),
    ("R05 seed 2^63 with store", {}, [*RUN, "--seed", str(2**63), "--store", "r.db"], "--seed must be in", {}),
    ("R06 absurd budget", {}, [*RUN[:6], "100000000000"], "--budget 100000000000 is over the limit", {}),
    ("R07 horizon 1e23", {}, [*RUN, "--horizon", "1" + "0" * 23, "--store", "r.db"], "--horizon 1000", {}),
    ("R08 threads 100000", {}, [*RUN, "--threads", "100000"], "--threads 100000 is over the limit", {}),
    ("R10 store under a file", {"afile": "x"}, [*RUN, "--store", "afile/r.db"], "afile is a file, not a folder", {}),
    (
        "R11 garbage checkpoint",
        {"ck.pt": "garbage"},
        [*RUN, "--checkpoint", "ck.pt"],
        "not a readable lrcontrol checkpoint",
        {},
    ),
    ("R13 empty size", {}, ["run", "sphere-10", "sgd", "--size", ""], "unknown task size ''", {}),
    ("R14 no arguments", {}, ["run"], "Missing argument", {}),
    (
        "T01 a hundred million seeds",
        {S: sweep_with(seeds="seeds = 100000000")},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "over the limit of 10000 seeds",
        {},
    ),
    (
        "T02 20000 lrs",
        {S: sweep_with(lrs="lrs = [" + ", ".join(f"{0.001 + i * 1e-6:.6f}" for i in range(20000)) + "]")},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "the limit is 1000 per grid",
        {},
    ),
    (
        "T03 seed 2^63",
        {S: sweep_with(seeds=f"seeds = [{2**63}]")},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "over 2**63 - 1",
        {},
    ),
    (
        "T04 seed 2^64",
        {S: sweep_with(seeds=f"seeds = [{2**64 - 1}]")},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "over 2**63 - 1",
        {},
    ),
    (
        "T05 include /etc/passwd",
        {S: 'include = ["../../../../../../../../etc/passwd"]\n'},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "invalid TOML",
        {},
    ),
    (
        "T06 include /dev/zero",
        {S: 'include = ["/dev/zero"]\n'},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "not a regular file",
        {},
    ),
    (
        "T08 name escapes results/",
        {S: sweep_with(name='name = "../../escaped"')},
        ["sweep", S, "--workers", "1"],
        "is not a plain name",
        {},
    ),
    (
        "T09 absolute name",
        {S: sweep_with(name='name = "/tmp/T09_abs_escape"')},
        ["sweep", S, "--workers", "1"],
        "is not a plain name",
        {},
    ),
    (
        "T10 NUL in name",
        {S: sweep_with(name='name = "a\\u0000b"')},
        ["sweep", S, "--workers", "1"],
        "is not a plain name",
        {},
    ),
    (
        "T11 NUL in spec",
        {S: sweep_with(methods='methods = ["sgd\\u0000 + constant()"]')},
        ["sweep", S, "--store", "r.db"],
        "null bytes",
        {},
    ),
    ("T12 markup in a key", {S: GOOD + '"[/]" = 1\n'}, ["sweep", S, "--store", "r.db"], "unknown key '[/]'", {}),
    (
        "T13 markup in the path",
        {},
        ["sweep", "a[/]b.toml", "--store", "r.db"],
        "a[/]b.toml does not exist",
        {},
    ),
    (
        "T15 seeds a string",
        {S: sweep_with(seeds='seeds = "3"')},
        ["sweep", S, "--store", "r.db"],
        "seeds must be a count",
        {},
    ),
    ("T16 size an int", {S: sweep_with(size="size = 1")}, ["sweep", S, "--store", "r.db"], "unknown size 1", {}),
    (
        "T17 size a table",
        {S: sweep_with(size="size = { a = 1 }")},
        ["sweep", S, "--store", "r.db"],
        "unknown size {'a': 1}",
        {},
    ),
    (
        "T18 method an int",
        {S: sweep_with(methods="methods = [1]")},
        ["sweep", S, "--store", "r.db"],
        "each method is a spec string",
        {},
    ),
    (
        "T19 lrs a scalar",
        {S: sweep_with(lrs="lrs = 0.1")},
        ["sweep", S, "--store", "r.db"],
        "lrs must be a non-empty list",
        {},
    ),
    ("T20 include = [1]", {S: "include = [1]\n" + GOOD}, ["sweep", S, "--store", "r.db"], "include must be a list", {}),
    (
        "T21 task a list",
        {S: sweep_with(tasks='tasks = [["sphere-10"]]')},
        ["sweep", S, "--store", "r.db"],
        "each task is a name",
        {},
    ),
    (
        "T22 budget a string",
        {S: sweep_with(budget='budget = "5"')},
        ["sweep", S, "--store", "r.db"],
        "budget must be a positive",
        {},
    ),
    ("T23 self-include", {S: 'include = "s.toml"\n' + GOOD}, ["sweep", S, "--store", "r.db"], "include cycle", {}),
    ("T24 include ''", {S: 'include = [""]\n' + GOOD}, ["sweep", S, "--store", "r.db"], "is not a file path", {}),
    (
        "T27 description an int",
        {S: GOOD + "description = 3\n"},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "description must be a string",
        {},
    ),
    (
        "T29 lr 1e308",
        {S: sweep_with(lrs="lrs = [1e308]")},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "outside [1e-30, 1e+30]",
        {},
    ),
    (
        "T30 size a list",
        {S: sweep_with(tasks='tasks = [{ name = "sphere-10", size = ["smoke"] }]')},
        ["sweep", S, "--store", "r.db"],
        "has unknown size ['smoke']",
        {},
    ),
    (
        "D01 foreign db with runs",
        {S: GOOD, "f.db": lambda s: foreign_db(True)},
        ["sweep", S, "--store", "f.db", "--workers", "1"],
        "of another program",
        {},
    ),
    (
        "D02 foreign db",
        {S: GOOD, "f.db": lambda s: foreign_db(False)},
        ["sweep", S, "--store", "f.db", "--workers", "1"],
        "of another program (tables: notes)",
        {},
    ),
    (
        "D03 summary of a foreign db",
        {"f.db": lambda s: foreign_db(False)},
        ["summary", "f.db"],
        "of another program",
        {},
    ),
    (
        "D03b export of a foreign db",
        {"f.db": lambda s: foreign_db(True)},
        ["export", "f.db", "--format", "csv"],
        "of another program",
        {},
    ),
    (
        "D03c run --store foreign db",
        {"f.db": lambda s: foreign_db(False)},
        [*RUN, "--store", "f.db"],
        "of another program",
        {},
    ),
    (
        "D04 newer schema",
        {S: GOOD, "s.db": "schema2"},
        ["sweep", S, "--store", "s.db", "--workers", "1"],
        "has store schema 2",
        {},
    ),
    ("D04b newer schema: summary", {"s.db": "schema2"}, ["summary", "s.db"], "has store schema 2", {}),
    ("D05 corrupt store: summary", {"c.db": "corrupt"}, ["summary", "c.db"], "not a readable lrcontrol store", {}),
    (
        "D06 corrupt store: sweep",
        {S: GOOD, "c.db": "corrupt"},
        ["sweep", S, "--store", "c.db", "--workers", "1"],
        "not a readable lrcontrol store",
        {},
    ),
    (
        "D07 sweep store under a file",
        {S: GOOD, "afile": "x"},
        ["sweep", S, "--store", "afile/r.db", "--workers", "1"],
        "afile is a file, not a folder",
        {},
    ),
    (
        "D08 store links to /dev/null",
        {S: GOOD, "r.db": "->/dev/null"},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "is not a regular file",
        {},
    ),
    (
        "D09 export to /dev/full",
        {"s.db": "store"},
        ["export", "s.db", "--format", "csv", "-o", "/dev/full"],
        "is not a regular file",
        {},
    ),
    (
        "D10 export onto the store",
        {"s.db": "store"},
        ["export", "s.db", "--format", "csv", "-o", "s.db"],
        "is the input s.db",
        {},
    ),
    (
        "D10b export onto the store's WAL",
        {"s.db": "store"},
        ["export", "s.db", "--format", "csv", "-o", "s.db-wal"],
        "is the input s.db",
        {},
    ),
    (
        "D10c export onto another store",
        {"s.db": "store", "t.db": "store"},
        ["export", "s.db", "--format", "csv", "-o", "t.db", "--force"],
        "is an SQLite database",
        {},
    ),
    (
        "D10d export over a file",
        {"s.db": "store", "s.csv": "mine"},
        ["export", "s.db", "--format", "csv"],
        "pass --force",
        {},
    ),
    (
        "D11 default output is the store",
        {"r.csv": "store"},
        ["export", "r.csv", "--format", "csv"],
        "is the input r.csv",
        {},
    ),
    (
        "D12 trajectory not JSON",
        {"s.db": "tampered"},
        ["summary", "s.db"],
        "cannot be read (Expecting property name",
        {},
    ),
    ("D13 final metric text", {"s.db": "final-text"}, ["summary", "s.db"], "must be a number or None", {}),
    (
        "D14 WAL path a folder",
        {S: GOOD, "r.db-wal/x": ""},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "r.db-wal is not a regular file",
        {},
    ),
    (
        "O02 scheduler tcp://",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--scheduler", "tcp://"],
        "missing port number",
        {},
    ),
    (
        "O03 unknown scheme",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--scheduler", "foo://bar:1"],
        "unknown address scheme 'foo'",
        {},
    ),
    (
        "O04 checkpoint-seconds inf",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--checkpoint-seconds", "inf"],
        "--checkpoint-seconds must be",
        {},
    ),
    (
        "O05 plot into a missing folder",
        {},
        [
            "find-lr",
            "--task",
            "sphere-10",
            "--size",
            "smoke",
            "--method",
            "adam()",
            "--steps",
            "20",
            "--plot",
            "nodir/x.png",
        ],
        "the folder nodir does not exist",
        {},
    ),
    (
        "O05b plot over a file",
        {"x.png": "mine"},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--steps", "20", "--plot", "x.png"],
        "pass --force",
        {},
    ),
    (
        "O06 finder steps 5",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--steps", "5"],
        "steps must be an integer in [10, 100000]",
        {},
    ),
    (
        "O07 finder lr range",
        {},
        [
            "find-lr",
            "--task",
            "sphere-10",
            "--size",
            "smoke",
            "--method",
            "adam()",
            "--steps",
            "20",
            "--lr-min",
            "1e-320",
            "--lr-max",
            "1e308",
        ],
        "lr_min must be in [1e-30, 1e+30]",
        {},
    ),
    (
        "O08 smoothing nan",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--smoothing", "nan"],
        "smoothing must be in [0, 1)",
        {},
    ),
    (
        "O09 finder without optimizer",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "cosine()"],
        "names no optimizer",
        {},
    ),
    ("O10 sweep --size ''", {S: GOOD}, ["sweep", S, "--store", "r.db", "--size", ""], "unknown size ''", {}),
    (
        "O11 finder seed",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--seed", str(2**64)],
        "--seed must be in",
        {},
    ),
    (
        "O12 finder threads",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--threads", "100000"],
        "--threads must be in",
        {},
    ),
    (
        "O13 workers 1000",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--workers", "100000"],
        "--workers 100000 is over the limit",
        {},
    ),
    (
        "E03 fault hook junk",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "LRCONTROL_FAULT='junk'",
        {"LRCONTROL_FAULT": "junk"},
    ),
    (
        "E04 fault marker folder missing",
        {S: GOOD},
        ["sweep", S, "--store", "r.db", "--workers", "1"],
        "LRCONTROL_FAULT=",
        {"LRCONTROL_FAULT": "store-write@/nonexistent/dir/m"},
    ),
    ("E04b fault hook on run", {}, RUN, "LRCONTROL_FAULT=", {"LRCONTROL_FAULT": "junk"}),
    ("K01 zero dimensions", {}, [*RUN[:1], "sphere-0", *RUN[2:]], "at least 1", {}),
    ("K02 1e10 dimensions", {}, [*RUN[:1], "sphere-10000000000", *RUN[2:]], "at most 10000000 dimensions", {}),
    ("K02b 5000-digit dimension", {}, [*RUN[:1], "sphere-" + "9" * 5000, *RUN[2:]], "at most 10000000 dimensions", {}),
    (
        "K03 3e9 dimensions in a sweep",
        {S: sweep_with(tasks='tasks = ["sphere-3000000000"]')},
        ["sweep", S, "--store", "r.db", "--dry-run"],
        "at most 10000000 dimensions",
        {},
    ),
    ("K04 infinite noise", {}, [*RUN[:1], "sphere-10-noisy1e999", *RUN[2:]], "finite σ", {}),
    ("K05 2-D function in 10-D", {}, [*RUN[:1], "himmelblau-10", *RUN[2:]], "2 dimensions only", {}),
    ("K06 negative horizon", {}, [*RUN, "--horizon", "-1"], "shorter than the budget", {}),
    (
        "K07 finder 1e8 steps",
        {},
        ["find-lr", "--task", "sphere-10", "--size", "smoke", "--method", "adam()", "--steps", "100000000"],
        "steps must be an integer in [10, 100000]",
        {},
    ),
]


def make_files(root: Path, files: dict, store_bytes: bytes) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/x") and content == "":  # a folder with something in it
            path.write_text("")
        elif callable(content):
            path.write_bytes(content(store_bytes))
        elif isinstance(content, str) and content.startswith("->"):
            path.symlink_to(content[2:])
        elif content in ("store", "schema2", "corrupt", "tampered", "final-text"):
            path.write_bytes(store_bytes)
            _alter_store(path, content)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _alter_store(path: Path, how: str) -> None:
    if how == "corrupt":  # the header stays valid, the pages after it are garbage
        data = bytearray(path.read_bytes())
        data[100:] = b"\xa5" * (len(data) - 100)
        path.write_bytes(bytes(data))
        return
    if how == "store":
        return
    db = sqlite3.connect(path)
    if how == "schema2":
        db.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    elif how == "tampered":
        db.execute("UPDATE runs SET trajectory = '{bad json'")
    elif how == "final-text":
        db.execute("UPDATE runs SET final_metric = 'abc'")
    db.commit()
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()


def invoke(args: list[str], env: dict[str, str] | None = None):
    return runner.invoke(app, args, env=env)


def assert_refused(result, message: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert message in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Missing argument" not in message:  # typer's own usage box is several lines
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case,files,args,message,env", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_status_2_and_changes_nothing(
    case, files, args, message, env, store_bytes, tmp_path, monkeypatch
):
    make_files(tmp_path, files, store_bytes)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = invoke(args, env)
    assert_refused(result, message)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / MARKER).exists()


def test_s13_markup_in_a_valid_spec_prints_as_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["spec", 'sgd + plateau(monitor="[/]")'])
    assert result.exit_code == 0 and 'plateau(monitor="[/]")' in result.stdout


def test_t07_a_fifo_as_sweep_file_is_refused_without_blocking(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "s.toml")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert_refused(invoke(["sweep", "s.toml", "--store", "r.db", "--dry-run"]), "not a regular file")
    assert snapshot(tmp_path) == before


def test_r15_sweep_from_an_empty_stdin_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lrcontrol", "sweep", "/dev/stdin", "--dry-run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_legitimate_edge_cases_still_work(tmp_path, monkeypatch):
    """T14 (a byte-order mark), T25 (150 nested includes), T26 (a diamond of includes), T13 (a path with
    markup that exists): accepted, and the names print as they are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert invoke(["sweep", "bom.toml", "--store", "r.db", "--dry-run"]).exit_code == 0
    for i in range(150):
        body = f'include = ["c{i + 1}.toml"]\n' if i < 149 else GOOD
        (tmp_path / f"c{i}.toml").write_text(body)
    result = invoke(["sweep", "c0.toml", "--store", "r.db", "--dry-run", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["runs"] == 1
    (tmp_path / "d.toml").write_text(GOOD)
    (tmp_path / "b1.toml").write_text('include = ["d.toml"]\n')
    (tmp_path / "b2.toml").write_text('include = ["d.toml"]\n')
    (tmp_path / "a.toml").write_text('include = ["b1.toml", "b2.toml"]\n')
    result = invoke(["sweep", "a.toml", "--store", "r.db", "--dry-run", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["runs"] == 1
    (tmp_path / "a[").mkdir()
    (tmp_path / "a[" / "]b.toml").write_text(sweep_with(name='name = "x"'))
    result = invoke(["sweep", "a[/]b.toml", "--store", "r.db", "--dry-run"])
    assert result.exit_code == 0 and "x: 1 runs" in result.stdout
    assert not (tmp_path / "r.db").exists()  # a dry run creates no store


def test_t28_a_one_step_budget_with_warmup_and_cosine_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        sweep_with(budget="budget = 1", methods='methods = ["sgd + warmup(0.1) + cosine()"]')
    )
    result = invoke(["sweep", "s.toml", "--store", "r.db", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recorded"] == 1


def test_r09_run_store_in_a_new_folder_is_created_after_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke([*RUN, "--store", "nodir/sub/r.db"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "nodir/sub/r.db", readonly=True) as db:
        assert db.count() == 1


def test_r12_a_checkpoint_that_would_run_code_runs_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pt").write_bytes(evil_pickle(tmp_path / MARKER))
    torch.save(evil_pickle(tmp_path / MARKER), tmp_path / "evil2.pt")  # the same, inside torch's zip format
    for name in ("evil.pt", "evil2.pt"):
        before = snapshot(tmp_path)
        assert_refused(invoke([*RUN, "--checkpoint", name]), f"checkpoint {name} is not")
        assert snapshot(tmp_path) == before
    # a pickle that is a real torch checkpoint with a hostile object inside
    torch.save({"model": _Evil(str(tmp_path / MARKER))}, tmp_path / "evil3.pt")
    assert_refused(invoke([*RUN, "--checkpoint", "evil3.pt"]), "not a readable lrcontrol checkpoint")
    assert not (tmp_path / MARKER).exists()  # no code ran


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_corrupt_or_foreign_sweep_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, monkeypatch):
    from lrcontrol.bench.sweep import load_sweep

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(sweep_with(lrs="lrs = [0.05, 0.02]"))
    runs = load_sweep(tmp_path / "s.toml").runs()
    folder = tmp_path / "r.db.checkpoints"
    folder.mkdir()
    (folder / f"{runs[0].key}.pt").write_bytes(evil_pickle(tmp_path / MARKER))  # would run code
    task = get_task("sphere-10", "smoke")
    run(task, "sgd(lr=0.3)", 0, 5, checkpoint=folder / f"{runs[1].key}.pt")  # another run's checkpoint
    result = invoke(["sweep", "s.toml", "--store", "r.db", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recorded"] == 2
    assert not (tmp_path / MARKER).exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{r.key}.pt.rejected" for r in runs)
    # the runs started over: the same results as a sweep that never saw those files
    result = invoke(["sweep", "s.toml", "--store", "clean.db", "--workers", "1"])
    assert result.exit_code == 0
    with Store("r.db", readonly=True) as a, Store("clean.db", readonly=True) as b:
        assert [r["final_loss"] for r in a.records()] == [r["final_loss"] for r in b.records()]


def test_lr_underflow_and_overflow_are_recorded_as_diverged_in_strict_json(tmp_path, monkeypatch):
    """S18 and the audit's 1100-step halving: recorded (diverged, with the reason), never a crash; and the
    stored trajectory is JSON that SQLite's json_extract reads (no Infinity tokens)."""
    monkeypatch.chdir(tmp_path)
    cases = [
        ("sgd(lr=0.1) + step(every=1, gamma=1e-200)", 5, "underflowed"),
        ("sgd(lr=0.01) + step(every=1, gamma=0.5)", 1100, "underflowed"),
        ("sgd(lr=1e30) + constant(scale=1e10)", 5, "left the range torch can apply"),
        ("sgd(lr=1e30)", 5, "non-finite"),
    ]
    for spec, budget, reason in cases:
        result = invoke(
            ["run", "sphere-10", spec, "--size", "smoke", "--budget", str(budget), "--store", "r.db", "--json"]
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)  # strict: json.loads would also take Infinity, so check the text
        assert out["diverged"] and reason in out["diverged_reason"], out["diverged_reason"]
        assert "Infinity" not in result.stdout.replace('"Infinity"', "").replace('"-Infinity"', "")
    db = sqlite3.connect(tmp_path / "r.db")
    rows = db.execute(
        "SELECT diverged, json_valid(trajectory), json_extract(trajectory, '$.diverged_reason') FROM runs"
    ).fetchall()
    assert len(rows) == len(cases) and all(d == 1 and valid == 1 and why for d, valid, why in rows)
    db.close()
    assert invoke(["summary", "r.db"]).exit_code == 0


def test_old_stores_with_infinity_tokens_still_read(tmp_path, store_bytes):
    path = tmp_path / "old.db"
    path.write_bytes(store_bytes)
    db = sqlite3.connect(path)
    old = json.loads(db.execute("SELECT trajectory FROM runs").fetchone()[0])
    old["train_loss"][-1] = float("inf")
    db.execute("UPDATE runs SET trajectory = ?", (json.dumps(old),))  # Python's default: a bare Infinity
    db.commit()
    db.close()
    with Store(path, readonly=True) as store:
        assert store.records()[0]["trajectory"]["train_loss"][-1] == float("inf")


def test_reading_commands_never_write_and_work_on_a_read_only_store(tmp_path, store_bytes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "s.db").write_bytes(store_bytes)
    os.chmod(tmp_path / "ro" / "s.db", 0o444)
    os.chmod(tmp_path / "ro", 0o555)
    try:
        before = snapshot(tmp_path / "ro")
        assert invoke(["summary", "ro/s.db"]).exit_code == 0
        result = invoke(["export", "ro/s.db", "--format", "csv", "-o", "out.csv"])
        assert result.exit_code == 0, result.output
        after = snapshot(tmp_path / "ro")
        assert {k: v for k, v in after.items() if k == "s.db"} == {k: v for k, v in before.items() if k == "s.db"}
    finally:
        os.chmod(tmp_path / "ro", 0o755)
    # and a foreign file keeps its journal mode and tables after summary (D03's WAL switch)
    (tmp_path / "f.db").write_bytes(foreign_db(False))
    invoke(["summary", "f.db"])
    db = sqlite3.connect(tmp_path / "f.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]
    db.close()


def test_a_full_disk_on_commit_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "record", full)
    result = invoke([*RUN, "--store", "r.db"])
    assert_refused(result, "the disk is full")


def test_library_entry_points_refuse_bad_numbers():
    """build(total_steps=nan) and find_lr's group scales (0 freezes a group, -1 climbs the loss)."""
    import lrcontrol
    from lrcontrol.lr_range_test import find_lr

    params = [torch.nn.Parameter(torch.zeros(2))]
    for bad in (float("nan"), float("inf"), 2**60, 0, -3, 2.5):
        with pytest.raises(LRControlError, match="total_steps must be"):
            lrcontrol.build(params, "sgd(lr=0.1) + cosine()", total_steps=bad)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(4, 2), torch.randn(4, 1))]

    def loss_fn(batch):
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    for scales in ([-1.0], [0.0], [float("nan")]):
        with pytest.raises(LRControlError, match="group scale must be a positive"):
            find_lr(model, optimizer, loss_fn, batches, steps=10, group_scales=scales)


@pytest.mark.parametrize(
    "case,task,env",
    [
        ("E01 data path is a file", "fmnist-mlp", {"LRCONTROL_DATA": "afile"}),
        ("E02 data folder missing, offline", "fmnist-mlp", {"LRCONTROL_DATA": "missing/dir", "LRCONTROL_OFFLINE": "1"}),
        ("E05 offline=maybe, data empty", "iris-logreg", {"LRCONTROL_OFFLINE": "maybe", "LRCONTROL_DATA": ""}),
    ],
)
def test_odd_data_settings_still_run_from_the_installed_data(case, task, env, tmp_path, monkeypatch):
    """The audit found these handled (the installed data sets are used); they must stay so, writing nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    result = invoke(["run", task, "adam", "--size", "smoke", "--budget", "5"], env)
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path) == before
