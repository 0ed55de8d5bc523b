"""`lrcontrol run / sweep / summary / export`: what works, and 40+ kinds of bad input that fail with a
clear one-line message and exit status 2 without writing anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrcontrol.cli import app

runner = CliRunner()

GOOD = """
name = "g"
size = "smoke"
seeds = 1
lrs = [0.05]
tasks = ["sphere-10"]
methods = ["sgd + constant()"]
"""


def invoke(*args: str):
    return runner.invoke(app, list(args))


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# (name, files to create first, command line, what the message must say)
BAD: list[tuple[str, dict[str, str | bytes], list[str], str]] = [
    ("toml syntax", {"s.toml": "name = \n"}, ["sweep", "s.toml"], "invalid TOML"),
    ("missing sweep file", {}, ["sweep", "nope.toml"], "does not exist"),
    ("sweep file is a directory", {"d/x.toml": GOOD}, ["sweep", "d"], "is a directory"),
    ("not utf-8", {"s.toml": b"\xff\xfe\x00name"}, ["sweep", "s.toml"], "UTF-8"),
    ("unknown top-level key", {"s.toml": GOOD + "seed = 3\n"}, ["sweep", "s.toml"], "did you mean 'seeds'"),
    ("name not a string", {"s.toml": GOOD.replace('name = "g"', "name = 3")}, ["sweep", "s.toml"], "name must be"),
    (
        "unknown task",
        {"s.toml": GOOD.replace("sphere-10", "rosenbrok-10")},
        ["sweep", "s.toml"],
        "did you mean 'rosenbrock-10'",
    ),
    (
        "unknown method",
        {"s.toml": GOOD.replace("constant()", "cosin()")},
        ["sweep", "s.toml"],
        "unknown method 'cosin'",
    ),
    ("unknown optimizer", {"s.toml": GOOD.replace("sgd +", "sdg +")}, ["sweep", "s.toml"], "unknown method 'sdg'"),
    ("spec syntax", {"s.toml": GOOD.replace("constant()", "constant(")}, ["sweep", "s.toml"], "cannot parse spec"),
    (
        "bad spec argument",
        {"s.toml": GOOD.replace("constant()", "constant(scale=-1)")},
        ["sweep", "s.toml"],
        "scale",
    ),
    ("method without optimizer", {"s.toml": GOOD.replace("sgd + ", "")}, ["sweep", "s.toml"], "names no optimizer"),
    ("empty lr grid", {"s.toml": GOOD.replace("[0.05]", "[]")}, ["sweep", "s.toml"], "lrs must be a non-empty list"),
    ("negative lr", {"s.toml": GOOD.replace("[0.05]", "[-0.1]")}, ["sweep", "s.toml"], "positive finite"),
    ("lr not a number", {"s.toml": GOOD.replace("[0.05]", '["fast"]')}, ["sweep", "s.toml"], "positive finite"),
    ("infinite lr", {"s.toml": GOOD.replace("[0.05]", "[inf]")}, ["sweep", "s.toml"], "positive finite"),
    ("duplicate lr", {"s.toml": GOOD.replace("[0.05]", "[0.05, 0.05]")}, ["sweep", "s.toml"], "twice"),
    ("zero seeds", {"s.toml": GOOD.replace("seeds = 1", "seeds = 0")}, ["sweep", "s.toml"], "seeds"),
    ("negative seed", {"s.toml": GOOD.replace("seeds = 1", "seeds = [-1]")}, ["sweep", "s.toml"], "seeds"),
    ("zero budget", {"s.toml": GOOD + "budget = 0\n"}, ["sweep", "s.toml"], "budget must be a positive"),
    ("fractional budget", {"s.toml": GOOD + "budget = 2.5\n"}, ["sweep", "s.toml"], "budget must be a positive"),
    ("absurd budget", {"s.toml": GOOD + "budget = 1000000000000\n"}, ["sweep", "s.toml"], "over the limit"),
    ("unknown size", {"s.toml": GOOD.replace('"smoke"', '"smok"')}, ["sweep", "s.toml"], "did you mean 'smoke'"),
    ("no tasks", {"s.toml": GOOD.replace('["sphere-10"]', "[]")}, ["sweep", "s.toml"], "tasks must be a non-empty"),
    (
        "tasks not a list",
        {"s.toml": GOOD.replace('["sphere-10"]', '"sphere-10"')},
        ["sweep", "s.toml"],
        "tasks must be",
    ),
    ("nothing declared", {"s.toml": 'name = "x"\n'}, ["sweep", "s.toml"], "declares no tasks"),
    (
        "unknown task key",
        {"s.toml": GOOD.replace('["sphere-10"]', '[{ name = "sphere-10", budjet = 5 }]')},
        ["sweep", "s.toml"],
        "did you mean 'budget'",
    ),
    (
        "unknown method key",
        {"s.toml": GOOD.replace('["sgd + constant()"]', '[{ spec = "sgd", lr = [0.1] }]')},
        ["sweep", "s.toml"],
        "did you mean 'lrs'",
    ),
    (
        "duplicate task",
        {"s.toml": GOOD.replace('["sphere-10"]', '["sphere-10", "sphere-10"]')},
        ["sweep", "s.toml"],
        "twice",
    ),
    (
        "duplicate method",
        {"s.toml": GOOD.replace('["sgd + constant()"]', '["sgd + constant()", "sgd() + constant(scale=1.0)"]')},
        ["sweep", "s.toml"],
        "twice",
    ),
    ("missing include", {"s.toml": 'include = ["other.toml"]\n' + GOOD}, ["sweep", "s.toml"], "does not exist"),
    (
        "include cycle",
        {"a.toml": 'include = ["b.toml"]\n', "b.toml": 'include = ["a.toml"]\n'},
        ["sweep", "a.toml"],
        "include cycle",
    ),
    ("workers zero", {"s.toml": GOOD}, ["sweep", "s.toml", "--workers", "0"], "--workers must be"),
    (
        "workers not a number",
        {"s.toml": GOOD},
        ["sweep", "s.toml", "--workers", "two"],
        "Invalid value for '--workers'",
    ),
    (
        "workers and scheduler",
        {"s.toml": GOOD},
        ["sweep", "s.toml", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
        "exclude each other",
    ),
    ("scheduler address", {"s.toml": GOOD}, ["sweep", "s.toml", "--scheduler", "localhost"], "not an address"),
    ("checkpoint seconds", {"s.toml": GOOD}, ["sweep", "s.toml", "--checkpoint-seconds", "-1"], "checkpoint-seconds"),
    (
        "no and keep checkpoints",
        {"s.toml": GOOD},
        ["sweep", "s.toml", "--no-checkpoints", "--keep-checkpoints"],
        "exclude each other",
    ),
    ("store is a directory", {"s.toml": GOOD, "out/keep": ""}, ["sweep", "s.toml", "--store", "out"], "is a directory"),
    (
        "store is not sqlite",
        {"s.toml": GOOD, "r.db": "hello"},
        ["sweep", "s.toml", "--store", "r.db"],
        "not an lrcontrol store",
    ),
    ("size override", {"s.toml": GOOD}, ["sweep", "s.toml", "--size", "huge"], "unknown size 'huge'"),
    ("budget override", {"s.toml": GOOD}, ["sweep", "s.toml", "--budget", "0"], "budget must be a positive"),
    ("run: unknown task", {}, ["run", "spere-10", "sgd"], "did you mean 'sphere-10'"),
    ("run: bad spec", {}, ["run", "sphere-10", "sgd(lr=0.1) * cosine()"], "combined with '+'"),
    ("run: no optimizer", {}, ["run", "sphere-10", "cosine()"], "names no optimizer"),
    ("run: zero budget", {}, ["run", "sphere-10", "sgd", "--budget", "0"], "--budget must be"),
    ("run: negative seed", {}, ["run", "sphere-10", "sgd", "--seed", "-1"], "--seed must be"),
    ("run: horizon < budget", {}, ["run", "sphere-10", "sgd", "--budget", "20", "--horizon", "10"], "horizon"),
    ("run: unknown size", {}, ["run", "sphere-10", "sgd", "--size", "tiny"], "unknown task size"),
    ("run: checkpoint dir", {"ck/x": ""}, ["run", "sphere-10", "sgd", "--checkpoint", "ck"], "is a directory"),
    ("summary: no store", {}, ["summary", "nope.db"], "no store at"),
    ("summary: not sqlite", {"r.db": "hello"}, ["summary", "r.db"], "not an lrcontrol store"),
    ("export: no store", {}, ["export", "nope.db"], "no store at"),
    ("export: format", {}, ["export", "nope.db", "--format", "xls"], "parquet or csv"),
]


@pytest.mark.parametrize("name,files,args,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_with_a_clear_message_and_status_2_writing_nothing(
    name, files, args, message, tmp_path, monkeypatch
):
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(tmp_path)
    before = {p: (tmp_path / p).stat().st_mtime_ns for p in files_under(tmp_path)}
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    after = {p: (tmp_path / p).stat().st_mtime_ns for p in files_under(tmp_path)}
    assert after == before  # nothing created, nothing modified


def test_missing_data_fails_before_anything_runs(tmp_path, monkeypatch):
    from lrcontrol.data import fashion_mnist
    from lrcontrol.tasks import image

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LRCONTROL_OFFLINE", "1")
    monkeypatch.setenv("LRCONTROL_DATA", str(empty))
    # Hide the Debian package: Fashion-MNIST is then neither installed, nor cached, nor downloadable.
    monkeypatch.setattr(fashion_mnist.load, "__defaults__", ((empty,), None, None))
    fashion_mnist.load_cached.cache_clear()
    image.image_splits.cache_clear()
    (tmp_path / "s.toml").write_text(GOOD.replace("sphere-10", "fmnist-mlp"))
    monkeypatch.chdir(tmp_path)
    try:
        for args in (["sweep", "s.toml"], ["run", "fmnist-mlp", "sgd", "--size", "smoke"]):
            result = invoke(*args)
            assert result.exit_code == 2 and "Fashion-MNIST" in result.output, result.output
    finally:
        fashion_mnist.load_cached.cache_clear()
        image.image_splits.cache_clear()
    assert files_under(tmp_path) == {"s.toml", "empty"}


def test_every_command_has_help_with_an_example():
    for command in ("run", "sweep", "summary", "export"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "lrcontrol " + command in result.output and "--json" in result.output


def test_run_sweep_summary_and_export_work_together(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.toml").write_text(
        GOOD.replace("[0.05]", "[0.01, 0.05]").replace(
            'methods = ["sgd + constant()"]', 'methods = ["sgd + constant()", "sgd + cosine()"]'
        )
    )
    result = invoke("sweep", "g.toml", "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["recorded"] == 4 and os.path.exists("results/g.db")
    again = invoke("sweep", "g.toml", "--workers", "1", "--json")
    assert json.loads(again.output)["already_done"] == 4 and json.loads(again.output)["recorded"] == 0
    dry = invoke("sweep", "g.toml", "--dry-run", "--json")
    assert json.loads(dry.output) == {"sweep": "g", "runs": 4, "already_done": 4, "store": "results/g.db"}

    ran = invoke(
        "run", "sphere-10", "sgd(lr=0.05) + constant()", "--size", "smoke", "--store", "results/g.db", "--json"
    )
    assert ran.exit_code == 0 and json.loads(ran.output)["steps"] == 50  # already in the store: not run again

    summary = invoke("summary", "results/g.db", "--json")
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.output)
    assert invoke("summary", "results/g.db").exit_code == 0

    for fmt in ("csv", "parquet"):
        exported = invoke("export", "results/g.db", "--format", fmt, "--json")
        assert exported.exit_code == 0 and json.loads(exported.output)["runs"] == 4
        assert (tmp_path / "results" / f"g.{fmt}").exists()


def test_a_sweep_with_failed_runs_lists_them_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.toml").write_text(
        GOOD.replace('methods = ["sgd + constant()"]', 'methods = ["sgd + constant()", "sgd + cosine()"]')
    )
    monkeypatch.setenv("LRCONTROL_FAIL_SPEC", "cosine")
    result = invoke("sweep", "g.toml", "--workers", "1")
    assert result.exit_code == 1, result.output
    assert "1 run(s) failed" in result.output and "injected failure" in result.output
    assert "run the same command again" in result.output
    as_json = invoke("sweep", "g.toml", "--workers", "1", "--json")  # only the failed run is tried again
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)  # stdout is the JSON; the first failure is also told on stderr
    assert (report["already_done"], report["recorded"], len(report["failed"])) == (1, 0, 1)
    assert report["failed"][0]["spec"] == "sgd(lr=0.05) + cosine()"
    monkeypatch.delenv("LRCONTROL_FAIL_SPEC")
    fixed = invoke("sweep", "g.toml", "--workers", "1", "--json")
    assert fixed.exit_code == 0 and json.loads(fixed.stdout)["recorded"] == 1


def test_no_checkpoints_writes_none_and_keep_checkpoints_keeps_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.toml").write_text(GOOD)
    plain = invoke("sweep", "g.toml", "--workers", "1", "--no-checkpoints", "--checkpoint-seconds", "0")
    assert plain.exit_code == 0, plain.output
    assert not (tmp_path / "results" / "g.db.checkpoints").exists()
    kept = invoke("sweep", "g.toml", "--store", "results/k.db", "--workers", "1", "--keep-checkpoints")
    assert kept.exit_code == 0, kept.output
    assert len(list((tmp_path / "results" / "k.db.checkpoints").glob("*.pt"))) == 1


def test_run_shows_what_the_controller_did():
    result = invoke("run", "sphere-10", "sgd(lr=0.01) + clara(d='auto')", "--size", "smoke", "--budget", "20")
    assert result.exit_code == 0, result.output
    for row in ("final lr", "clara.ratio", "clara.restores", "test loss"):
        assert row in result.output
    assert "final effective lr" not in result.output  # SGD applies its LR as it is
    free = invoke("run", "sphere-10", "dadapt_adam()", "--size", "smoke", "--budget", "20")
    assert free.exit_code == 0 and "final effective lr" in free.output


def test_summary_warns_when_a_store_mixes_lrcontrol_versions(tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.toml").write_text(GOOD.replace("[0.05]", "[0.01, 0.05]"))
    assert invoke("sweep", "g.toml", "--workers", "1").exit_code == 0
    assert "mixes runs" not in invoke("summary", "results/g.db").output
    with sqlite3.connect("results/g.db") as db:  # one run made by an older release
        db.execute("UPDATE runs SET lrcontrol_version = '0.0.1' WHERE rowid = (SELECT min(rowid) FROM runs)")
    mixed = invoke("summary", "results/g.db")
    assert mixed.exit_code == 0
    assert "mixes runs of lrcontrol versions (0.0.1: 1," in mixed.output
