"""`lrcontrol tune`: bad search spaces and tuner arguments fail with one clear line, exit status 2, and
nothing written; a good one tunes and records its result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrcontrol.cli import app

runner = CliRunner()
SPACE = "adam(lr=loguniform(1e-4, 1))"

# (name, arguments after `lrcontrol tune`, what the message must say)
BAD: list[tuple[str, list[str], str]] = [
    ("empty range", ["iris-logreg", "adam(lr=uniform(1, 0.1))"], "the range is empty"),
    ("log range through zero", ["iris-logreg", "adam(lr=loguniform(0, 1))"], "log scale needs low > 0"),
    ("negative log range", ["iris-logreg", "adam(lr=loguniform(-1, 1))"], "log scale needs low > 0"),
    ("range on a bool", ["iris-logreg", "adam(lr=1e-3, amsgrad=uniform(0, 1))"], "cannot take a numeric range"),
    ("float range on an int", ["iris-logreg", "adam + sgdr(period=10, mult=uniform(1, 3))"], "use intrange"),
    ("range outside the parameter", ["iris-logreg", "adam + cosine(min_scale=uniform(0, 2))"], "min_scale must be in"),
    ("unknown range", ["iris-logreg", "adam(lr=gaussian(0, 1))"], "unknown range 'gaussian'"),
    ("nothing to tune", ["iris-logreg", "adam(lr=1e-3)"], "has no range to tune"),
    ("no optimizer", ["iris-logreg", "cosine(min_scale=uniform(0, 0.5))"], "names no optimizer"),
    ("unknown parameter", ["iris-logreg", "adam(rl=loguniform(1e-4, 1))"], "did you mean 'lr'"),
    ("range with a keyword", ["iris-logreg", "adam(lr=uniform(low=0, high=1))"], "positional values only"),
    ("one-value choice", ["iris-logreg", "adam(lr=choice(0.1))"], "at least two different values"),
    ("syntax", ["iris-logreg", "adam(lr=loguniform(1e-4, 1)"], "cannot parse search space"),
    ("unknown strategy", ["iris-logreg", SPACE, "--strategy", "smac"], "unknown strategy 'smac'"),
    ("zero trials", ["iris-logreg", SPACE, "--trials", "0"], "--trials must be ≥ 1"),
    ("unknown objective", ["iris-logreg", SPACE, "--objective", "accuracy"], "unknown objective"),
    ("eta 1", ["iris-logreg", SPACE, "--eta", "1"], "eta must be a whole number ≥ 2"),
    (
        "min budget without fidelities",
        ["iris-logreg", SPACE, "--strategy", "random", "--min-budget", "3"],
        "multi-fidelity",
    ),
    ("min budget too large", ["iris-logreg", SPACE, "--size", "smoke", "--min-budget", "20"], "exceeds the budget"),
    ("prior on random search", ["iris-logreg", SPACE, "--strategy", "random", "--prior", "lr-finder"], "model-based"),
    ("prior without a log lr", ["iris-logreg", "adam(lr=uniform(0, 1))", "--prior", "lr-finder"], "lr=loguniform"),
    ("unknown prior", ["iris-logreg", SPACE, "--prior", "guess"], "unknown prior"),
    ("unknown task", ["iris-logrg", SPACE], "did you mean 'iris-logreg'"),
    ("bad task argument", ["iris-logreg(bach=3)", SPACE], "did you mean 'batch'"),
    ("negative seed", ["iris-logreg", SPACE, "--seed", "-1"], "--seed must be ≥ 0"),
    (
        "workers and scheduler",
        ["iris-logreg", SPACE, "--workers", "2", "--scheduler", "tcp://h:1"],
        "exclude each other",
    ),
    ("batch 0", ["iris-logreg", SPACE, "--batch", "0"], "batch (trials asked at once)"),
]


@pytest.mark.parametrize(("name", "arguments", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_clearly_with_status_2_and_writes_nothing(name, arguments, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["tune", *arguments, "--store", "results/t.db"])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert list(Path(tmp_path).rglob("*")) == []


def test_enough_kinds_of_bad_input_are_covered():
    assert len(BAD) >= 10


def test_a_store_that_is_not_a_store_is_refused_before_tuning(tmp_path):
    (tmp_path / "t.db").write_text("hello")
    result = runner.invoke(app, ["tune", "iris-logreg", SPACE, "--size", "smoke", "--store", str(tmp_path / "t.db")])
    assert result.exit_code == 2 and "not an lrcontrol store" in result.output


def test_tune_records_the_incumbent_and_a_second_call_reads_it_back(tmp_path):
    args = ["tune", "iris-logreg", SPACE, "--size", "smoke", "--trials", "4", "--strategy", "random"]
    args += ["--store", str(tmp_path / "t.db"), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    a, b = json.loads(first.output), json.loads(again.output)
    assert a["incumbent"] == b["incumbent"] and a["cost"] == b["cost"] == 4.0
    assert b["trained_steps"] == 0
