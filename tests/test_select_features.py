"""Features for algorithm selection: static and probe features of a task and of a plain loop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrcontrol.errors import LRControlError
from lrcontrol.select import probes
from lrcontrol.select.features import (
    FEATURE_NAMES,
    FEATURES,
    PLAIN_NAMES,
    STATIC_NAMES,
    probe,
    probe_loop,
    static_features,
    task_features,
)
from lrcontrol.tasks import get_task
from lrcontrol.tasks.base import Task


def _tiny(seed: int = 0, dropout: float = 0.0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16),
            torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(16, 2),
        )
    return model, x, y


def _batches(x, y, size=32):
    def stream():
        for start in range(0, len(y) - size + 1, size):
            yield x[start : start + size], y[start : start + size]

    return stream


def _state(model, optimizer=None):
    tensors = [t.detach().clone() for t in [*model.parameters(), *model.buffers()]]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    opt = None if optimizer is None else optimizer.state_dict()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    return tensors, grads, opt, rng, [m.training for m in model.modules()]


def _same(a, b) -> bool:
    tensors_a, grads_a, opt_a, rng_a, flags_a = a
    tensors_b, grads_b, opt_b, rng_b, flags_b = b
    same_tensors = all(torch.equal(u, v) for u, v in zip(tensors_a, tensors_b))
    same_grads = all((u is None and v is None) or torch.equal(u, v) for u, v in zip(grads_a, grads_b))
    same_opt = opt_a is None or (
        opt_a["param_groups"] == opt_b["param_groups"]
        and all(
            torch.equal(opt_a["state"][k][n], opt_b["state"][k][n])
            if isinstance(opt_a["state"][k][n], torch.Tensor)
            else opt_a["state"][k][n] == opt_b["state"][k][n]
            for k in opt_a["state"]
            for n in opt_a["state"][k]
        )
    )
    same_rng = torch.equal(rng_a[0], rng_b[0]) and rng_a[1] == rng_b[1] and np.array_equal(rng_a[2], rng_b[2])
    return same_tensors and same_grads and same_opt and same_rng and flags_a == flags_b


def _equal_features(a: dict[str, float], b: dict[str, float]) -> bool:
    return list(a) == list(b) and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def test_feature_table_is_ordered_unique_and_marks_plain_loop_availability():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == len(FEATURES)
    assert {"log_params", "log_budget", "finder_log_lr", "log_grad_noise", "clara_z", "prodigy_log_d"} <= set(
        PLAIN_NAMES
    )
    assert {"log_examples", "log_classes", "log_epochs", "kind_classification"}.isdisjoint(PLAIN_NAMES)
    assert set(STATIC_NAMES) < set(FEATURE_NAMES)


@pytest.mark.parametrize("name", ["iris-mlp", "sphere-10", "rosenbrock-10"])
def test_task_features_are_deterministic_and_finite_where_defined(name):
    task = get_task(name, "smoke")
    first = probe(task, seed=1, budget=400)  # long enough for every probe
    second = probe(task, seed=1, budget=400)
    assert _equal_features(first.features, second.features)  # same seed, same features bit for bit
    assert list(first.features) == list(FEATURE_NAMES)
    static = static_features(task)
    defined = [k for k in ("log_params", "log_budget", "log_batch", "log_input_dim", "log_examples", "log_classes")]
    assert all(math.isfinite(static[k]) for k in defined)
    for key in ("finder_log_lr", "log_grad_norm", "log_init_loss", "clara_ratio", "clara_z", "prodigy_log_d"):
        assert math.isfinite(first.features[key]), key
    assert not any(math.isinf(v) for v in first.features.values())
    # cost counted: every probe's steps, and the share of the budget
    assert first.cost_steps == sum(first.steps.values()) and first.cost == first.cost_steps / 400
    assert all(0 < first.steps[k] <= getattr(first.plan, k) for k in ("finder", "clara", "prodigy"))
    # the noise rides on the sweep's first steps: no steps of its own
    assert first.steps["noise"] == first.plan.noise == 0 and first.plan.shared_noise >= 3
    assert first.steps["clara"] == first.plan.clara  # only the finder stops early (at divergence)


def test_static_features_read_the_task_and_its_parameters():
    plain = static_features(get_task("vowel-mlp"))
    bigger = static_features(get_task("vowel-mlp(batch=64, epochs=10)"))
    assert plain["family_tabular"] == 1.0 and plain["model_mlp"] == 1.0 and plain["kind_classification"] == 1.0
    assert bigger["log_batch"] == pytest.approx(6.0)
    assert bigger["log_epochs"] == pytest.approx(math.log10(10 * (594 // 64) * 64 / 594))  # full batches only
    function = static_features(get_task("sphere-10"))
    assert function["kind_function"] == 1.0 and math.isnan(function["log_epochs"])
    assert function["model_mlp"] == 0.0 and math.isnan(function["label_noise"])
    assert plain["label_noise"] == 0.0
    assert static_features(get_task("vowel-mlp(label_noise=0.2)"))["label_noise"] == pytest.approx(0.2)
    deeper = static_features(get_task("vowel-mlp(depth=4)"))
    assert deeper["log_params"] > plain["log_params"]


def test_probe_cost_scales_with_the_budget_and_stays_near_eight_percent():
    for budget in (125, 200, 300, 500, 1000, 2000):
        assert 0.075 <= probes.plan(budget).steps / budget <= 0.085
    assert probes.plan(100).steps == probes.plan(40).steps == 10  # the shortest LR range test
    assert probes.plan(100).clara == 0 and probes.plan(200).prodigy == 0 and probes.plan(300).prodigy > 0
    short = probes.plan(30)  # no sweep: two gradients for the noise only
    assert (short.noise, short.finder, short.steps) == (2, 0, 2)
    assert probes.plan(7).steps == 0
    assert probes.plan(100_000).steps == probes.MAX_STEPS
    task = get_task("sphere-10", "smoke")
    result = probe(task, seed=0, budget=1000)
    assert result.budget == 1000 and result.cost_steps == probes.plan(1000).steps
    assert result.features["log_budget"] == pytest.approx(3.0)
    row = task_features(task, seed=0, budget=1000)
    assert row["probe_cost"] == pytest.approx(result.cost)


def test_a_short_run_gets_the_probes_it_can_afford_and_nan_for_the_rest():
    task = get_task("iris-mlp", "smoke")
    only_noise = probe(task, seed=0, budget=30)
    assert only_noise.cost_steps == 2 and only_noise.steps["noise"] == 2
    assert math.isfinite(only_noise.features["log_grad_noise"]) and math.isnan(only_noise.features["finder_log_lr"])
    assert math.isnan(only_noise.features["clara_z"]) and math.isnan(only_noise.features["prodigy_log_d"])
    nothing = probe(task, seed=0, budget=5)
    assert nothing.cost_steps == 0 and math.isnan(nothing.features["log_grad_noise"])
    assert nothing.features["log_params"] == only_noise.features["log_params"]  # the static features stay


def test_the_noise_read_off_the_sweep_matches_gradients_taken_on_their_own():
    model, x, y = _tiny(seed=4)
    loss_fn = lambda b: F.cross_entropy(model(b[0]), b[1])  # noqa: E731
    params = list(model.parameters())
    alone, steps = probes.noise_probe(model, params, loss_fn, _batches(x, y), 3)
    swept, _ = probes.finder_probe(model, params, loss_fn, _batches(x, y), 20, shared_noise=3)
    assert steps == 3
    for key in ("log_init_loss", "log_grad_norm", "log_grad_noise", "grad_noise_fraction"):
        assert swept[key] == pytest.approx(alone[key], rel=1e-3), key  # Adam moved by ≤ 1e-5: the same point


def test_a_finder_that_diverges_early_costs_only_the_steps_it_took():
    task = get_task("iris-mlp", "smoke")  # Adam blows the loss up long before lr = 10
    result = probe(task, seed=0, budget=2000)
    lengths = result.plan
    assert result.features["finder_diverged"] == 1.0
    assert result.cost_steps < lengths.steps


def test_probe_loop_leaves_model_optimizer_and_rng_bit_for_bit_unchanged():
    model, x, y = _tiny(dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream = _batches(x, y)
    # some training first, so there is optimizer state, gradients and running statistics to keep
    for xb, yb in stream():
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    model.eval()
    before = _state(model, optimizer)
    result = probe_loop(model, lambda b: F.cross_entropy(model(b[0]), b[1]), stream, total_steps=600, seed=3)
    assert _same(before, _state(model, optimizer))
    assert result.cost_steps == probes.plan(600).steps and result.cost == pytest.approx(result.cost_steps / 600)


def test_training_after_a_probe_is_the_training_without_it():
    def train(with_probe: bool) -> list[float]:
        model, x, y = _tiny(seed=2, dropout=0.1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = lambda b: F.cross_entropy(model(b[0]), b[1])  # noqa: E731
        torch.manual_seed(0)
        if with_probe:
            probe_loop(model, loss_fn, _batches(x, y), total_steps=200)
        losses = []
        for batch in _batches(x, y)():
            optimizer.zero_grad()
            loss = loss_fn(batch)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    assert train(True) == train(False)


def test_probe_loop_on_a_tiny_model_reads_the_batch_and_takes_hints():
    model, x, y = _tiny()
    loss_fn = lambda b: F.cross_entropy(model(b[0]), b[1])  # noqa: E731
    bare = probe_loop(model, loss_fn, _batches(x, y), total_steps=400)
    assert bare.features["log_batch"] == pytest.approx(5.0) and bare.features["log_input_dim"] == pytest.approx(
        math.log10(8)
    )
    assert bare.features["log_params"] == pytest.approx(math.log10(sum(p.numel() for p in model.parameters())))
    assert math.isnan(bare.features["log_examples"]) and math.isnan(bare.features["kind_classification"])
    assert all(math.isfinite(bare.features[k]) for k in ("finder_log_lr", "log_grad_noise", "clara_z", "prodigy_log_d"))
    hinted = probe_loop(
        model, loss_fn, _batches(x, y), total_steps=400, hints={"examples": 256, "classes": 2, "kind": "classification"}
    )
    assert hinted.features["log_epochs"] == pytest.approx(math.log10(400 * 32 / 256))
    assert hinted.features["kind_classification"] == 1.0
    # the probes are the same with or without hints, and whatever the caller's RNG state
    torch.rand(7)
    assert hinted.features["finder_log_lr"] == bare.features["finder_log_lr"]
    dropout, x, y = _tiny(dropout=0.3)
    loss_fn = lambda b: F.cross_entropy(dropout(b[0]), b[1])  # noqa: E731
    first = probe_loop(dropout, loss_fn, _batches(x, y), total_steps=400, seed=5)
    torch.rand(11)
    assert _equal_features(
        first.features, probe_loop(dropout, loss_fn, _batches(x, y), total_steps=400, seed=5).features
    )


def test_probe_loop_reads_examples_and_named_classes_from_a_data_loader():
    model, x, y = _tiny()
    loss_fn = lambda b: F.cross_entropy(model(b[0]), b[1])  # noqa: E731

    class Named(torch.utils.data.TensorDataset):
        classes = ["no", "yes"]  # as torchvision's data sets name theirs

    loader = torch.utils.data.DataLoader(Named(x, y), batch_size=32, shuffle=False)
    found = probe_loop(model, loss_fn, loader, total_steps=400).features
    assert found["log_examples"] == pytest.approx(math.log10(1 + len(x)))
    assert found["log_classes"] == pytest.approx(math.log10(3))
    assert found["log_epochs"] == pytest.approx(math.log10(400 * 32 / len(x)))
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    unnamed = probe_loop(model, loss_fn, plain, total_steps=400).features
    assert unnamed["log_examples"] == found["log_examples"] and math.isnan(unnamed["log_classes"])
    # the probes themselves do not change; a hint wins over what the loader shows; a stream has no size
    assert (
        unnamed["finder_log_lr"]
        == probe_loop(model, loss_fn, _batches(x, y), total_steps=400).features["finder_log_lr"]
    )
    hinted = probe_loop(model, loss_fn, loader, total_steps=400, hints={"examples": 1000})
    assert hinted.features["log_examples"] == pytest.approx(math.log10(1001))
    assert math.isnan(probe_loop(model, loss_fn, _batches(x, y), total_steps=400).features["log_examples"])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, f, b: probe_loop(m, f, b(), total_steps=100), "one-shot iterator"),
        (lambda m, f, b: probe_loop(m, f, b, total_steps=0), "total_steps"),
        (lambda m, f, b: probe_loop(m, f, b, total_steps=100, hints={"exmaples": 5}), "unknown hint 'exmaples'"),
        (lambda m, f, b: probe_loop(m, f, b, total_steps=100, hints={"kind": "regression"}), "kind='regression'"),
        (lambda m, f, b: probe_loop(m, lambda batch: torch.ones(3), b, total_steps=100), "scalar loss"),
        (lambda m, f, b: probe_loop("model", f, b, total_steps=100), "nn.Module"),
        (lambda m, f, b: probe_loop(m, f, lambda: iter(()), total_steps=100), "batches are empty"),
    ],
)
def test_bad_input_fails_with_a_clear_message(call, message):
    model, x, y = _tiny()
    with pytest.raises(LRControlError, match=message):
        call(model, lambda b: F.cross_entropy(model(b[0]), b[1]), _batches(x, y))


def test_a_task_without_features_fails_with_a_clear_message():
    class Bare(Task):
        pass

    bare = Bare(
        name="bare",
        version="1",
        family="tabular",
        size="smoke",
        budget=10,
        batch_size=1,
        eval_every=5,
        metric="loss",
        higher_is_better=False,
    )
    with pytest.raises(LRControlError, match="no meta-features"):
        static_features(bare)
    with pytest.raises(LRControlError, match="needs a Task"):
        static_features("iris-mlp")


def test_the_examples_in_docs_selection_features_md_run_and_every_feature_is_listed():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "selection-features.md"
    text = docs.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "docs/selection-features.md lost its examples"
    for block in blocks:
        exec(compile(block, str(docs), "exec"), {})  # the examples assert what they show
    for feature in FEATURES:
        grouped = feature.name.split("_")[0] + "_*"
        assert f"`{feature.name}`" in text or f"`{grouped}`" in text, feature.name


def test_feature_table_is_cached_per_instance_and_resumes(tmp_path, monkeypatch):
    import pandas as pd

    from lrcontrol.select import feature_table

    rows = feature_table.rows_from_names(["sphere-10", "iris-logreg(batch=16)", "sphere-10"])
    assert [r.instance for r in rows] == ["sphere-10", "iris-logreg(batch=16)"]  # canonical, once each
    assert [r.dataset for r in rows] == ["sphere", "iris"] and rows[1].family == "tabular"
    out, cache = tmp_path / "features.parquet", tmp_path / "cache"
    seen = []
    table = feature_table.compute_table(rows, out, cache, workers=1, on_row=lambda r, cached: seen.append(cached))
    assert seen == [False, False] and list(table.columns) == list(feature_table.COLUMNS)
    assert table["probe_cost"].between(0.0, 0.2).all()
    read = pd.read_parquet(out)
    pd.testing.assert_frame_equal(read, table)
    # a second run computes nothing: every row comes from the cache
    monkeypatch.setattr(feature_table, "_compute", lambda row, seed: pytest.fail("recomputed a cached row"))
    again = feature_table.compute_table(rows, out, cache, workers=1, on_row=lambda r, cached: seen.append(cached))
    assert seen[2:] == [True, True]
    pd.testing.assert_frame_equal(again, table)
    # a damaged entry is recomputed, and to the same numbers
    monkeypatch.undo()
    feature_table.cache_file(cache, rows[1], 0).write_text("{not json")
    pd.testing.assert_frame_equal(feature_table.compute_table(rows, out, cache, workers=1), table)


def test_feature_table_rejects_a_task_without_features_before_computing(tmp_path):
    from lrcontrol.select import feature_table

    with pytest.raises(LRControlError, match="unknown task|no task"):
        feature_table.rows_from_names(["no-such-task"])
    with pytest.raises(LRControlError, match="does not exist"):
        feature_table.read_names(tmp_path / "missing.txt")
    with pytest.raises(LRControlError, match="does not exist"):
        feature_table.rows_from_runs(tmp_path / "runs.parquet")


def test_cli_select_features_writes_the_table_and_resumes(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from lrcontrol.cli import app

    out = tmp_path / "features.parquet"
    names = tmp_path / "instances.txt"
    names.write_text("# two instances\nsphere-10(steps=300)\n\nsphere-5\n")
    result = CliRunner().invoke(
        app, ["select", "features", "--instances", str(names), "--out", str(out), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert list(table["instance"]) == ["sphere-10(steps=300)", "sphere-5"] and set(table["dataset"]) == {"sphere"}
    assert table["probe_cost"].tolist() == [24 / 300, 80 / 1000]
    # again, with --force: every row comes from the cache, the table is the same
    again = CliRunner().invoke(
        app, ["select", "features", "--instances", str(names), "--out", str(out), "--workers", "1", "--force"]
    )
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-task"], "unknown task"),
        ([], "give the instances one way"),
        (["sphere-10", "--generate", "3"], "give the instances one way"),
        (["sphere-10", "--workers", "0"], "--workers"),
        (["--instances", "missing.txt"], "does not exist"),
        (["--from-runs", "missing.parquet"], "does not exist"),
        (["--generate", "0"], "--generate"),
    ],
)
def test_cli_select_features_exits_2_on_bad_input_and_writes_nothing(tmp_path, monkeypatch, args, message):
    from typer.testing import CliRunner

    from lrcontrol.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["select", "features", *args, "--out", "f.parquet"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_feature_table_covers_the_meta_dataset():
    from pathlib import Path

    from lrcontrol.select.feature_table import COLUMNS
    from lrcontrol.select.metadata import read_features, read_runs

    folder = Path(__file__).resolve().parents[1] / "metadata"
    features = read_features(folder / "features.parquet")
    runs = read_runs(folder / "runs.parquet")
    assert list(features.columns) == list(COLUMNS)
    ids = runs.drop_duplicates("instance")[["instance", "family", "dataset"]].reset_index(drop=True)
    assert features[["instance", "family", "dataset"]].equals(ids)
    assert features["probe_cost"].between(0.0, 0.25).all() and features["probe_cost"].median() <= 0.08
    assert features[list(STATIC_NAMES)].drop(columns=["log_epochs", "log_params_per_example"]).notna().any().all()
