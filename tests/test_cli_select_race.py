"""`lrcontrol select race TASK`: a live race of portfolio members on a task from the command line — the
winner the race API finds, the same result when run again on its checkpoints, the shipped race's settings
as the meta-dataset chooses them, and one line with exit status 2 (nothing created) for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lrcontrol.bench import LocalExecutor
from lrcontrol.cli import app
from lrcontrol.cli.select_race import finder_steps
from lrcontrol.select.racing import race
from lrcontrol.select.racing_settings import SHIPPED, SHIPPED_ENTRANTS, RaceBook, tune
from lrcontrol.select.regret import regret_table
from lrcontrol.select.shipped import read

runner = CliRunner()
METADATA = Path(__file__).resolve().parents[1] / "metadata"
MEMBERS = "cocob,prodigy,adamw"


def race_cli(folder: Path, *args: str):
    return runner.invoke(app, ["select", "race", "sphere-10", "--size", "smoke", "--checkpoints", str(folder), *args])


def test_the_cli_race_is_the_race_api_and_repeats_itself_on_its_checkpoints(tmp_path):
    result = race_cli(tmp_path / "a", "--members", MEMBERS, "--eta", "3", "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    portfolio = read().members
    with LocalExecutor(workers=1, checkpoint_dir=str(tmp_path / "b")) as executor:
        direct = race("sphere-10", {m: portfolio[m] for m in MEMBERS.split(",")}, executor, size="smoke", eta=3)
    assert out["winner"] == direct.winner and out["spec"] == portfolio[direct.winner]
    assert out["final"] == direct.loss and out["cost"] == pytest.approx(direct.cost) and out["cost"] <= 2.0
    assert [r["frac"] for r in out["rungs"]] == pytest.approx([r["frac"] for r in direct.rungs])
    assert out["members"] == MEMBERS.split(",") and out["eta"] == 3 and out["metric"] == "regret"
    again = race_cli(tmp_path / "a", "--members", MEMBERS, "--eta", "3", "--workers", "1", "--json")
    assert again.exit_code == 0 and json.loads(again.output) == out


def test_the_default_race_is_the_shipped_one_and_says_who_continues(tmp_path):
    result = race_cli(tmp_path / "c", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert ", ".join(SHIPPED_ENTRANTS) in result.output and f"η = {SHIPPED.eta}" in result.output
    assert "continue" in result.output and "Winner:" in result.output


def test_the_shipped_race_is_what_tuning_chooses_on_the_shipped_meta_dataset():
    runs = pd.read_parquet(METADATA / "runs.parquet")
    table = regret_table(runs)
    settings, orders = tune(RaceBook(runs, table), table.instances)
    assert settings == SHIPPED and tuple(settings.members(orders)) == SHIPPED_ENTRANTS
    assert set(SHIPPED_ENTRANTS) <= set(read().members)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--members", "cocob,nope"], "nope is not a portfolio member"),
        (["--members", "cocob,cocob"], "names a member twice"),
        (["--max-cost", "0.5"], "--max-cost must be ≥ 1"),
        (["--max-cost", "nan"], "--max-cost must be ≥ 1"),
        (["--eta", "1"], "--eta must be ≥ 2"),
        (["--budget", "0"], "--budget must be ≥ 1"),
        (["--workers", "0"], "--workers must be ≥ 1"),
        (["--seed", "-1"], "--seed must be ≥ 0"),
    ],
)
def test_bad_input_is_one_line_with_exit_status_2_and_creates_nothing(tmp_path, args, message):
    result = race_cli(tmp_path / "never", *args)
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_an_unknown_task_or_a_file_as_the_folder_is_refused_before_anything_runs(tmp_path):
    result = runner.invoke(app, ["select", "race", "nope-task", "--checkpoints", str(tmp_path / "never")])
    assert result.exit_code == 2 and "unknown task" in result.output and not (tmp_path / "never").exists()
    taken = tmp_path / "file"
    taken.write_text("mine")
    result = race_cli(taken)
    assert result.exit_code == 2 and "is not a folder" in result.output and taken.read_text() == "mine"


def test_a_member_whose_range_test_does_not_fit_the_cap_is_not_started(tmp_path):
    members = "cocob,sgdm-finder-cosine,prodigy"
    result = race_cli(tmp_path / "d", "--members", members, "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    # sphere-10 (smoke) trains 50 steps: the finder's 50-step sweep would cost a whole run at entry
    assert finder_steps(read().members["sgdm-finder-cosine"]) == 50 and finder_steps("adamw(lr=0.001)") == 0
    assert out["entrants"] == ["cocob", "prodigy"] and out["cost"] <= 2.0
    text = race_cli(tmp_path / "d", "--members", members, "--workers", "1")
    assert "not started: sgdm-finder-cosine" in text.output
