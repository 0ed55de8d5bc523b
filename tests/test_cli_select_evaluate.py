"""`lrcontrol select evaluate`: the held-out table from Parquet files, and one line with exit status 2 for an
empty meta-dataset, an unknown member, instances without features, a bad split."""

from __future__ import annotations

import json

import pytest
from synthetic_meta import meta_dataset
from typer.testing import CliRunner

from lrcontrol.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("meta")
    runs, features = meta_dataset()
    runs["trace_frac"] = runs["trace_lr"] = runs["trace_loss"] = [[] for _ in range(len(runs))]
    runs.to_parquet(folder / "runs.parquet")
    features.to_parquet(folder / "features.parquet")
    runs.iloc[:0].to_parquet(folder / "empty.parquet")
    features.iloc[3:].to_parquet(folder / "partial.parquet")
    return folder


def evaluate(files, *args):
    return runner.invoke(
        app,
        [
            "select",
            "evaluate",
            "--runs",
            str(files / "runs.parquet"),
            "--features",
            str(files / "features.parquet"),
            *args,
        ],
    )


def test_evaluate_prints_the_held_out_table_and_the_complementarity(files):
    result = evaluate(files, "--split", "dataset")
    assert result.exit_code == 0, result.output
    for text in ("held out by dataset", "virtual best (VBS)", "single best (SBS)", "k-nearest", "racing",
                 "mfhpo:alpha", "complementarity", "gamma"):  # fmt: skip
        assert text in result.output


def test_evaluate_json_has_every_entry_and_member(files):
    result = evaluate(files, "--json", "--members", "alpha,beta")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["split"] == "family" and data["members"] == ["alpha", "beta"]
    entries = {row["entry"]: row for row in data["summary"]}
    assert entries["virtual best (VBS)"]["gap_closed"] == 1.0 and entries["single best (SBS)"]["gap_closed"] == 0.0
    assert {"alpha", "beta", "grid:alpha"} <= set(entries) and "gamma" not in entries
    assert [row["member"] for row in data["complementarity"]] == ["beta", "alpha"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runs", "{f}/empty.parquet"], "no runs"),
        (["--members", "alpha,zeta"], "unknown member"),
        (["--features", "{f}/partial.parquet"], "no features for instance"),
        (["--split", "task"], "--split must be family or dataset"),
        (["--runs", "{f}/missing.parquet"], "no runs file"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(files, args, message):
    result = evaluate(files, *[a.format(f=files) for a in args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
