"""auto(): in a plain loop, as a method in the engine (`lrcontrol run TASK "auto()"`, sweeps), resumed
without probing again, the selector file it reads, and `lrcontrol select train / explain`.

The selector these tests use is trained by `lrcontrol select train` on a tiny synthetic meta-dataset
(real feature names, real portfolio members) in which one member is best everywhere, so every choice is
known in advance."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import lrcontrol
from lrcontrol.bench.engine import run
from lrcontrol.cli import app
from lrcontrol.errors import LRControlError, SpecError
from lrcontrol.select import auto as auto_module
from lrcontrol.select.features import FEATURE_NAMES
from lrcontrol.select.portfolio import PORTFOLIO
from lrcontrol.select.shipped import ENV, SelectorFileError, read
from lrcontrol.tasks import get_task

runner = CliRunner()
MEMBERS = ("adamw", "adamw-cosine", "adam-clara-0.01")
BEST = "adamw-cosine"
NOISY = "sphere-50-noisy"


def synthetic_meta(
    folder: Path, best: str = BEST, instances: int = 12, members: tuple[str, ...] = MEMBERS
) -> tuple[Path, Path]:
    """runs.parquet and features.parquet of a meta-dataset where `best` has the least regret everywhere."""
    rng = np.random.default_rng(0)
    runs, features = [], []
    for i in range(instances):
        family = ("synthetic", "tabular", "image")[i % 3]
        instance, dataset = f"{family}-task(v={i})", f"{family}{i % 2}"
        features.append(
            {"instance": instance, "family": family, "dataset": dataset, "probe_cost": 0.08}
            | {name: float(rng.normal()) for name in FEATURE_NAMES}
        )
        for member in members:
            final = 0.1 if member == best else 0.5 + 0.3 * float(rng.uniform())
            runs.append(
                {"instance": instance, "family": family, "dataset": dataset, "member": member}
                | {"spec": PORTFOLIO[member], "seed": 0, "diverged": False, "final_metric": final}
                | {"initial_metric": 1.0, "higher_is_better": False, "metric": "loss", "budget": 100, "cost": 1.0}
                | {"wall_time": 1.0, "eval_frac": [0.0, 1.0], "eval_values": [1.0, final]}
                | {"trace_frac": [1.0], "trace_lr": [1e-3], "trace_loss": [final]}
            )
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(runs).to_parquet(folder / "runs.parquet")
    pd.DataFrame(features).to_parquet(folder / "features.parquet")
    return folder / "runs.parquet", folder / "features.parquet"


def train(folder: Path, kind: str = "knn", *extra: str) -> Path:
    runs, features = synthetic_meta(folder)
    out = folder / f"{kind}.json"
    result = runner.invoke(
        app, ["select", "train", "--runs", str(runs), "--features", str(features), "--kind", kind, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def selector_file(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("meta"))


@pytest.fixture
def use_selector(selector_file, monkeypatch) -> Path:
    """Runs and sweeps choose with the test selector ($LRCONTROL_SELECTOR), one torch thread."""
    monkeypatch.setenv(ENV, str(selector_file))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield selector_file
    torch.set_num_threads(threads)


# -- in a plain loop -----------------------------------------------------------------------------------


def _loop() -> tuple[torch.nn.Module, object, list]:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    data = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def loss_fn(batch):
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    return model, loss_fn, data


def test_auto_in_a_plain_loop_probes_without_touching_the_model_and_explains_its_choice(selector_file):
    model, loss_fn, data = _loop()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    optimizer, controller, choice = lrcontrol.auto(model, loss_fn, data, total_steps=400, selector=selector_file)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the probes put it back
    assert torch.equal(rng, torch.get_rng_state())
    assert choice.member == BEST and choice.spec == str(lrcontrol.parse(PORTFOLIO[BEST]))
    assert controller.spec == choice.spec and isinstance(optimizer, torch.optim.AdamW)
    assert 0 < choice.probe_steps <= 0.1 * 400 and choice.probe_cost == choice.probe_steps / 400
    assert min(choice.predicted, key=choice.predicted.get) == BEST and len(choice.neighbours) == 5
    text = str(choice)
    assert text == choice.explain()
    for part in (BEST, choice.spec, "nearest known instances", "predicted regret", f"{choice.probe_steps} steps"):
        assert part in text
    losses = []
    for _ in range(400 // len(data)):
        for batch in data:
            optimizer.zero_grad()
            loss = loss_fn(batch)
            loss.backward()
            optimizer.step()
            controller.step(loss)
            losses.append(float(loss.detach()))
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:8])


def test_auto_is_deterministic_and_takes_hints(selector_file):
    choices = []
    for _ in range(2):
        model, loss_fn, data = _loop()
        choices.append(lrcontrol.auto(model, loss_fn, data, total_steps=400, selector=selector_file)[2])
    a, b = (c.to_dict() for c in choices)
    a.pop("probe_seconds"), b.pop("probe_seconds")
    assert a == b
    model, loss_fn, data = _loop()
    hinted = lrcontrol.auto(model, loss_fn, data, 400, selector=selector_file, hints={"examples": 256})[2]
    assert hinted.features["log_examples"] == pytest.approx(math.log10(257))
    with pytest.raises(LRControlError, match="unknown hint"):
        lrcontrol.auto(model, loss_fn, data, 400, selector=selector_file, hints={"exemples": 256})


def test_a_choice_survives_its_plain_data_form(selector_file):
    model, loss_fn, data = _loop()
    choice = lrcontrol.auto(model, loss_fn, data, total_steps=400, selector=selector_file)[2]
    text = json.dumps(choice.to_dict())  # NaN features (unknown in a plain loop) included
    assert json.dumps(auto_module.Choice.from_dict(json.loads(text)).to_dict()) == text


# -- in the engine ---------------------------------------------------------------------------------------


def _without(trajectory, *names):
    data = trajectory.to_dict() if hasattr(trajectory, "to_dict") else dict(trajectory)
    for name in ("wall_time", *names):
        data.pop(name)
    return data


def test_auto_in_the_engine_trains_the_chosen_member_exactly_and_counts_the_probe(use_selector):
    task = get_task(NOISY, "smoke")
    auto_run = run(task, "auto()", seed=0)
    member = PORTFOLIO[BEST]
    direct = run(task, member, seed=0)
    assert auto_run.spec == "auto()" and auto_run.observables["auto.member"] == BEST
    assert auto_run.observables["auto.spec"] == direct.spec
    probe = auto_run.observables["auto.probe_steps"]
    assert probe > 0 and auto_run.extra_steps == direct.extra_steps + probe
    # the probes ran on their own copy of the model, under a forked RNG: the member's run, bit for bit
    assert _without(auto_run, "spec", "extra_steps", "observables") == _without(
        direct, "spec", "extra_steps", "observables"
    )


def test_auto_in_the_engine_can_choose_the_learned_member_and_trains_it_exactly(tmp_path, monkeypatch):
    """adamw-learned, the portfolio's learned policy, is a member auto() can choose like any other."""
    runs, features = synthetic_meta(tmp_path, best="adamw-learned", members=(*MEMBERS, "adamw-learned"))
    out = tmp_path / "learned.json"
    args = ["select", "train", "--runs", str(runs), "--features", str(features), "--kind", "single-best"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(ENV, str(out))
    task = get_task(NOISY, "smoke")
    auto_run = run(task, "auto()", seed=0)
    direct = run(task, PORTFOLIO["adamw-learned"], seed=0)
    assert auto_run.observables["auto.member"] == "adamw-learned"
    assert _without(auto_run, "spec", "extra_steps", "observables") == _without(
        direct, "spec", "extra_steps", "observables"
    )


def test_lrcontrol_run_auto_stores_the_probe_cost_and_the_choice(use_selector, tmp_path):
    from lrcontrol.bench.record import run_cost
    from lrcontrol.bench.store import Store

    store = tmp_path / "s.db"
    result = runner.invoke(app, ["run", "sphere-10", "auto()", "--size", "smoke", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "(probe)" in result.output and BEST in result.output
    with Store(store, readonly=True) as db:
        (record,) = db.records()
    probe = record["trajectory"]["observables"]["auto.probe_steps"]
    assert record["spec"] == record["method"] == "auto()" and record["lr"] is None
    assert record["extra_steps"] == probe > 0
    assert run_cost(record) == pytest.approx(1 + probe / record["budget"])
    again = runner.invoke(app, ["run", "sphere-10", "auto()", "--size", "smoke", "--store", str(store)])
    assert again.exit_code == 0 and "already in" in again.output


def test_the_run_key_of_auto_names_the_selector(use_selector, tmp_path, monkeypatch):
    from lrcontrol.bench.record import run_key

    first = run_key("sphere-10@1/smoke", "auto()", 0, 50)
    # exactly the key of 0.4.0 (the fields, then the selector's content hash), so existing stores resume
    parts = ["sphere-10@1/smoke", "auto()", 0, 50, 50, f"selector:{read().identity}"]
    assert first == hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
    other = train(tmp_path, "single-best")
    monkeypatch.setenv(ENV, str(other))
    assert run_key("sphere-10@1/smoke", "auto()", 0, 50) != first
    assert run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 50) == run_key("sphere-10@1/smoke", "sgd(lr=0.1)", 0, 50)


def _crash_at(point: str, tmp_path: Path, budget: int, checkpoint: Path) -> int:
    def child() -> None:
        os.environ["LRCONTROL_FAULT"] = f"{point}@{tmp_path / 'marker'}"
        run(get_task(NOISY, "smoke"), "auto()", 0, budget, checkpoint=checkpoint, checkpoint_seconds=0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    return process.exitcode


def test_a_resumed_auto_run_is_bit_for_bit_and_does_not_probe_again(use_selector, tmp_path, monkeypatch):
    checkpoint = tmp_path / "run.pt"
    assert _crash_at("step-35", tmp_path, 50, checkpoint) == -9  # after the checkpoint at step 30
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["steps"] == 30 and saved["spec"] == "auto()" and saved["auto"]["member"] == BEST
    uninterrupted = run(get_task(NOISY, "smoke"), "auto()", 0, 50)

    def probe_again(*args, **kwargs):
        raise AssertionError("a resumed auto() run probed again")

    monkeypatch.setattr(auto_module, "choose_for_task", probe_again)
    resumed = run(get_task(NOISY, "smoke"), "auto()", 0, 50, checkpoint=checkpoint, checkpoint_seconds=0)
    assert _without(resumed) == _without(uninterrupted)


def test_a_checkpoint_chosen_by_another_selector_is_refused(use_selector, tmp_path, monkeypatch):
    from lrcontrol.bench.checkpoint import BadCheckpointError

    checkpoint = tmp_path / "run.pt"
    run(get_task(NOISY, "smoke"), "auto()", 0, 10, checkpoint=checkpoint, checkpoint_seconds=0)
    monkeypatch.setenv(ENV, str(train(tmp_path, "single-best")))
    with pytest.raises(BadCheckpointError, match="another selector"):
        run(get_task(NOISY, "smoke"), "auto()", 0, 20, checkpoint=checkpoint, bad_checkpoint="raise")


def test_a_sweep_runs_auto_once_per_task_and_seed(use_selector, tmp_path):
    from lrcontrol.bench import sweep_runner
    from lrcontrol.bench.store import Store
    from lrcontrol.bench.sweep import load_sweep

    path = tmp_path / "s.toml"
    path.write_text(
        'name = "a"\nsize = "smoke"\nseeds = [0]\nlrs = [0.01, 0.1]\n'
        'tasks = [{ name = "sphere-10", budget = 20 }]\nmethods = ["auto()", "sgd"]\n'
    )
    runs = load_sweep(path).runs()
    assert sorted(r.spec for r in runs) == ["auto()", "sgd(lr=0.01)", "sgd(lr=0.1)"]
    with Store(tmp_path / "s.db") as db:
        outcome = sweep_runner.run_local(runs, db, workers=1)
        (record,) = db.records("spec = ?", ["auto()"])
    assert outcome.recorded == 3
    assert record["extra_steps"] == record["trajectory"]["observables"]["auto.probe_steps"] > 0
    path.write_text(path.read_text().replace('"auto()"', '{ spec = "auto()", lrs = [0.1] }'))
    with pytest.raises(LRControlError, match="chooses its own LR"):
        load_sweep(path)


# -- the spec ---------------------------------------------------------------------------------------------


def test_auto_is_a_whole_method_that_stands_alone():
    assert str(lrcontrol.parse("auto")) == "auto()" and lrcontrol.parse("auto()").whole is not None
    for bad in ("auto() + cosine()", "adamw(lr=0.001) + auto()"):
        with pytest.raises(SpecError, match="stands alone"):
            lrcontrol.parse(bad)
    with pytest.raises(SpecError, match="lrcontrol.auto"):
        lrcontrol.build(torch.nn.Linear(2, 1), "auto()")
    with pytest.raises(SpecError, match="lrcontrol.auto"):
        lrcontrol.control(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1), "auto()")
    with pytest.raises(SpecError, match="LR grid"):
        lrcontrol.spec.with_lr("auto()", 0.1)


# -- the selector file and bad input -----------------------------------------------------------------------


def _edit(source: Path, target: Path, change) -> Path:
    data = json.loads(source.read_text())
    change(data)
    target.write_text(json.dumps(data))
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["selector"]["members"].append("zeta"), "'zeta', which the file's members do not name"),
        (lambda d: d.update(format="something-else"), "not an lrcontrol selector file"),
        (lambda d: d.update(version=99), "version 99 selector file"),
        (lambda d: d["members"].update({BEST: "adamw(lr=-1.0)"}), f"member {BEST!r} has a spec"),
        (lambda d: d.pop("features"), "lacks features"),
        (lambda d: d["selector"].pop("points"), "incomplete or malformed"),
    ],
)
def test_a_bad_selector_file_fails_with_one_line_and_exit_status_2(selector_file, tmp_path, change, message):
    bad = _edit(selector_file, tmp_path / "bad.json", change)
    with pytest.raises(LRControlError, match=message):
        auto_module.load(bad)
    result = runner.invoke(app, ["select", "explain", "sphere-10", "--size", "smoke", "--selector", str(bad)])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_corrupt_or_missing_selector_file_is_one_clear_line(tmp_path, monkeypatch):
    (tmp_path / "c.json").write_bytes(b'{"format": "lrcontrol-sel')
    with pytest.raises(SelectorFileError, match="not readable JSON"):
        read(tmp_path / "c.json")
    monkeypatch.setenv(ENV, str(tmp_path / "none.json"))
    result = runner.invoke(app, ["run", "sphere-10", "auto()", "--size", "smoke"])
    assert result.exit_code == 2 and f"(from ${ENV}) does not exist" in result.output


def test_train_refuses_an_empty_meta_dataset_and_writes_nothing(tmp_path):
    runs, features = synthetic_meta(tmp_path)
    pd.read_parquet(runs).iloc[:0].to_parquet(tmp_path / "empty.parquet")
    out = tmp_path / "out.json"
    args = ["select", "train", "--runs", str(tmp_path / "empty.parquet"), "--features", str(features)]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and "holds no runs" in result.output and not out.exists()
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "nope.parquet"), "--out", str(out)])
    assert result.exit_code == 2 and "not a file" in result.output and not out.exists()
    result = runner.invoke(app, ["select", "train", "--runs", str(runs), "--features", str(features), "--kind", "x"])
    assert result.exit_code == 2


def test_train_refuses_to_overwrite_without_force_and_is_deterministic(tmp_path):
    runs, features = synthetic_meta(tmp_path)
    out = tmp_path / "sel.json"
    args = ["select", "train", "--runs", str(runs), "--features", str(features), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = out.read_bytes()
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--force" in result.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0 and out.read_bytes() == first


def test_train_fits_the_evaluated_configuration_its_features_and_its_members(tmp_path, monkeypatch):
    """--kind pairwise fits the held-out evaluation's first pairwise entry as evaluated: here one that reads
    the transferable features only (no family, kind or model one-hots) and chooses among the members
    that cost one run."""
    from lrcontrol.select import evaluation
    from lrcontrol.select.features import IDENTITY_NAMES, TRANSFER_NAMES
    from lrcontrol.select.selectors import PairwiseClassifier

    entry = evaluation.Candidate(lambda: PairwiseClassifier(trees=4, max_depth=3), TRANSFER_NAMES, one_run=True)
    monkeypatch.setattr(evaluation, "default_selectors", lambda: {"restricted": entry})
    runs, features = synthetic_meta(tmp_path)
    table = pd.read_parquet(runs)
    table.loc[table["member"] == "adamw", "cost"] = 1.5  # as if it ran an LR range test first
    table.to_parquet(runs)
    out = tmp_path / "pairwise.json"
    args = ["select", "train", "--runs", str(runs), "--features", str(features), "--kind", "pairwise"]
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    assert data["features"] == list(TRANSFER_NAMES) and not set(IDENTITY_NAMES) & set(data["features"])
    assert data["selector"]["members"] == ["adamw-cosine", "adam-clara-0.01"] and set(data["members"]) == set(MEMBERS)
    assert auto_module.select(dict.fromkeys(FEATURE_NAMES, 0.5), out)[0] == BEST
    # a features table without any of the features it reads: one line, exit status 2, nothing written
    pd.read_parquet(features)[["instance", "family", "dataset", "probe_cost", "family_image"]].to_parquet(
        tmp_path / "identity.parquet"
    )
    bad = [*args[:4], "--features", str(tmp_path / "identity.parquet"), *args[6:], "--out", str(tmp_path / "x.json")]
    result = runner.invoke(app, bad)
    assert result.exit_code == 2 and "has none of the features" in result.output
    assert not (tmp_path / "x.json").exists()


def test_a_task_without_features_fails_with_a_clear_message(selector_file):
    with pytest.raises(LRControlError, match="none of the selector's features"):
        auto_module.select({name: math.nan for name in FEATURE_NAMES}, selector_file)


def test_explain_probes_a_task_and_prints_the_choice(use_selector):
    result = runner.invoke(app, ["select", "explain", "sphere-10", "--size", "smoke", "--json"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.output)
    assert choice["member"] == BEST and choice["probe_steps"] > 0 and len(choice["neighbours"]) == 5
    result = runner.invoke(app, ["select", "explain", "sphere-10", "--size", "smoke"])
    assert result.exit_code == 0 and f"auto() chose {BEST}" in result.output
    result = runner.invoke(app, ["select", "explain", "no-such-task", "--size", "smoke"])
    assert result.exit_code == 2 and "unknown task" in result.output.lower()
