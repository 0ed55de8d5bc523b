"""The LR range test: exact restoration, useful suggestions on real data, honest confidence, the spec factor, the CLI."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import lrcontrol
import lrcontrol.lr_range_test as finder_module
from lrcontrol.cli import app
from lrcontrol.errors import LRControlError
from lrcontrol.lr_range_test import analyse_curve, find_lr


# -- a real problem: scikit-learn's digits, a tiny MLP ---------------------------------------------
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]
    return x[train], y[train], x[test], y[test]


def batches(x, y, seed, batch_size=32):
    """An infinite, deterministic stream of shuffled mini-batches."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]


def mlp(seed, dropout=0.0, norm=False):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(64, 32)]
    if norm:
        layers.append(torch.nn.BatchNorm1d(32))
    layers += [torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(32, 10)]
    return torch.nn.Sequential(*layers)


def loss_of(model):
    return lambda batch: F.cross_entropy(model(batch[0]), batch[1])


def train_steps(model, optimizer, stream, steps, controller=None):
    losses = []
    for _ in range(steps):
        xb, yb = next(stream)
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if controller is not None:
            controller.step(loss)
        losses.append(loss.item())
    return losses


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# -- restoration ---------------------------------------------------------------------------------
def _run(digits, with_finder: bool):
    """Train 15 steps, optionally run the finder, train 15 more; return everything observable."""
    x, y, _, _ = digits
    model = mlp(0, dropout=0.2, norm=True)
    optimizer, controller = lrcontrol.build(
        [
            {"params": [*model[0].parameters(), *model[1].parameters()]},
            {"params": model[4].parameters(), "lr": 5e-3},
        ],
        "adamw(lr=1e-2) + warmup(5) + plateau(patience=1, monitor='loss', every=3)",
        total_steps=30,
    )
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    stream = batches(x, y, seed=1)
    losses = train_steps(model, optimizer, stream, 15, controller)
    result = None
    if with_finder:
        result = find_lr(model, optimizer, loss_of(model), lambda: batches(x, y, seed=2), steps=40)
    losses += train_steps(model, optimizer, stream, 15, controller)
    return {
        "losses": losses,
        "params": [t.clone() for t in model.state_dict().values()],
        "optimizer": optimizer.state_dict(),
        "controller": controller.state_dict(),
        "rng": (torch.rand(3), random.random(), np.random.rand()),
        "result": result,
    }


def test_training_after_find_lr_is_bit_identical_to_training_without_it(digits):
    plain = _run(digits, with_finder=False)
    found = _run(digits, with_finder=True)
    assert found["result"].steps > 0  # the finder really trained
    assert found["losses"] == plain["losses"]
    for a, b in zip(found["params"], plain["params"]):  # parameters and BatchNorm buffers
        assert torch.equal(a, b)
    assert found["optimizer"]["param_groups"] == plain["optimizer"]["param_groups"]
    for key, state in plain["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(found["optimizer"]["state"][key][name], value)
    assert found["controller"] == plain["controller"]  # the controller's hooks did not see the sweep
    assert torch.equal(found["rng"][0], plain["rng"][0])
    assert found["rng"][1:] == plain["rng"][1:]


def test_an_attached_controllers_step_hooks_do_not_see_the_sweep():
    class CountSteps(lrcontrol.Factor):
        name = "count_steps_for_test"
        uses_step_hooks = True

        def attach(self, ctx):
            super().attach(ctx)
            self.pre = self.post = 0

        def on_pre_step(self, optimizer):
            self.pre += 1

        def on_post_step(self, optimizer):
            self.post += 1

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    counter = CountSteps()
    lrcontrol.LRController(optimizer, [counter])
    data = [(torch.randn(8, 3), torch.randn(8, 1))]
    find_lr(model, optimizer, lambda b: F.mse_loss(model(b[0]), b[1]), data, steps=20)
    assert (counter.pre, counter.post) == (0, 0)
    optimizer.step()  # the hooks are back afterwards
    assert (counter.pre, counter.post) == (1, 1)


def test_find_lr_puts_a_schedule_free_optimizer_back_in_its_mode():
    schedulefree = pytest.importorskip("schedulefree")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    optimizer.train()
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    optimizer.eval()  # as after an evaluation: the sweep itself must run in train mode
    before = [p.clone() for p in model.parameters()]
    result = find_lr(model, optimizer, lambda b: F.mse_loss(model(b[0]), b[1]), [(x, y)], steps=20)
    assert result.steps == 20  # a list is re-iterated, and the steps did not raise in eval mode
    assert optimizer.param_groups[0]["train_mode"] is False
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)


# -- suggestions on real data ---------------------------------------------------------------------
GRID = [10.0**e for e in np.arange(-4.0, 1.01, 0.5)]


@pytest.mark.parametrize("spec", ["adamw()", "sgd()"])
def test_suggestion_lies_among_the_constant_lrs_that_reach_95_percent_of_the_best(digits, spec):
    x, y, x_test, y_test = digits

    def final_accuracy(lr):
        model = mlp(0)
        optimizer, _ = lrcontrol.build(model.parameters(), lrcontrol.spec.with_lr(spec, lr))
        train_steps(model, optimizer, batches(x, y, seed=1), 300)
        acc = accuracy(model, x_test, y_test)
        return acc if math.isfinite(acc) else 0.0

    accuracies = [final_accuracy(lr) for lr in GRID]
    good = [lr for lr, acc in zip(GRID, accuracies) if acc >= 0.95 * max(accuracies)]

    model = mlp(0)
    optimizer, _ = lrcontrol.build(model.parameters(), spec)
    result = find_lr(model, optimizer, loss_of(model), lambda: batches(x, y, seed=1))
    assert result.confident, result.reasons
    assert min(good) <= result.recommended <= max(good), (result.suggestions, list(zip(GRID, accuracies)))


# -- honest confidence and the stop rule ----------------------------------------------------------
def test_a_flat_curve_is_flagged_as_not_to_be_trusted():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    noise = torch.Generator().manual_seed(3)

    def loss_fn(batch):
        # The loss hardly depends on the weights (which barely move at these LRs): a flat, noisy curve.
        return 1.0 + 1e-6 * model(batch).mean() + 0.01 * torch.randn((), generator=noise)

    result = find_lr(model, optimizer, loss_fn, [torch.randn(16, 8)], lr_min=1e-7, lr_max=1e-5, steps=60)
    assert not result.confident
    assert any("flat" in reason for reason in result.reasons)


def test_a_curve_with_a_clear_valley_is_trusted_and_a_noisy_one_is_not():
    lrs = np.logspace(-6, 1, 120)
    x = np.log10(lrs)
    clean = 2.0 - 1.5 / (1 + np.exp(-(x + 2.5) * 3)) + np.where(x > -0.5, (x + 0.5) ** 2 * 4, 0.0)
    suggestions, recommended, confident, reasons, _ = analyse_curve(lrs, clean, diverged=True)
    assert confident, reasons
    assert set(suggestions) == {"steepest", "valley", "min/10"}
    assert 10**-3.5 < recommended < 10**-1.0  # around the middle of the fall (at 10^-2.5)

    # Step-to-step noise larger than the whole fall of the loss.
    noisy = clean + np.random.default_rng(1).normal(0, 2.0, size=len(lrs))
    _, _, confident, reasons, _ = analyse_curve(lrs, noisy, diverged=True)
    assert not confident
    assert any("noisy" in r for r in reasons), reasons


def test_the_sweep_stops_when_the_loss_diverges():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(4))
    module = torch.nn.Module()
    module.w = w
    optimizer = torch.optim.SGD([w], lr=0.1)
    result = find_lr(module, optimizer, lambda _: (w**2).sum(), [None], lr_min=1e-4, lr_max=100.0, steps=100)
    # SGD on ‖w‖² diverges for lr > 1, i.e. after step ~57 of this sweep; the stop must come soon after.
    assert result.steps < 100
    assert "4×" in result.stop or "non-finite" in result.stop
    assert result.recommended is not None and result.recommended < 1.0
    assert torch.equal(w.detach(), torch.ones(4))


def test_find_lr_rejects_bad_settings():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LRControlError, match="lr_min"):
        find_lr(model, optimizer, lambda b: model(b).sum(), [torch.ones(1, 2)], lr_min=1.0, lr_max=0.1)
    with pytest.raises(LRControlError, match="steps"):
        find_lr(model, optimizer, lambda b: model(b).sum(), [torch.ones(1, 2)], steps=3)


def test_plot_writes_a_png_only_when_asked(tmp_path):
    lrs = np.logspace(-5, 0, 50)
    losses = list(2.0 - 1.0 / (1 + np.exp(-(np.log10(lrs) + 2.5) * 3)))
    suggestions, recommended, confident, reasons, trend = analyse_curve(lrs, losses, diverged=False)
    result = finder_module.LRFinderResult(
        list(lrs), losses, losses, trend, suggestions, recommended, confident, reasons, 50, "completed the sweep"
    )
    path = result.plot(str(tmp_path / "curve.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "curve.png"]


# -- the spec factor ------------------------------------------------------------------------------
def _factor_rig(digits, spec="adamw(lr=1e-3) + lr_from_finder(steps=60) + cosine()"):
    x, y, _, _ = digits
    model = mlp(0)
    resources = {"model": model, "loss_fn": loss_of(model), "train_batches": lambda: batches(x, y, seed=4)}
    groups = [{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 5e-4}]
    optimizer, controller = lrcontrol.build(groups, spec, total_steps=40, resources=resources)
    return model, optimizer, controller


def test_lr_from_finder_sets_the_base_lr_keeps_group_ratios_and_counts_its_steps(digits, monkeypatch):
    x, y, _, _ = digits
    calls = []
    real = finder_module.find_lr
    monkeypatch.setattr(finder_module, "find_lr", lambda *a, **k: calls.append(1) or real(*a, **k))
    model, optimizer, controller = _factor_rig(digits)
    train_steps(model, optimizer, batches(x, y, seed=1), 10, controller)
    factor = controller.factors[0]
    assert len(calls) == 1
    assert factor.chosen_lr is not None and controller.base_lrs[0] == factor.chosen_lr
    assert controller.base_lrs[1] == pytest.approx(factor.chosen_lr / 2, rel=1e-12)
    assert controller.extra_steps == factor.extra_steps > 0
    state = pickle.loads(pickle.dumps(controller.state_dict()))

    # Resuming: the chosen LR comes from the state, the finder does not run again.
    model2, optimizer2, controller2 = _factor_rig(digits)
    controller2.load_state_dict(state)
    train_steps(model2, optimizer2, batches(x, y, seed=1), 3, controller2)
    assert len(calls) == 1
    assert controller2.base_lrs == controller.base_lrs
    assert controller2.extra_steps == controller.extra_steps


def test_lr_from_finder_without_resources_says_how_to_give_them():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(LRControlError, match="needs the model, loss and batches"):
        lrcontrol.build(model.parameters(), "adamw() + lr_from_finder()")
    with pytest.raises(LRControlError, match="lr_min must be below lr_max"):
        lrcontrol.build(model.parameters(), "adamw() + lr_from_finder(lr_min=1.0, lr_max=0.1)")


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["find-lr", "--task", "digits-mlp", "--method", "adamw(lr=)"],
        ["find-lr", "--task", "digits-mlp", "--method", "cosine()"],
        ["find-lr", "--task", "digits-mlp", "--method", "adamw()", "--lr-min", "1", "--lr-max", "0.1"],
        ["find-lr", "--task", "no-such-task", "--method", "adamw()"],
    ],
    ids=["bad-spec", "no-optimizer", "bad-range", "unknown-task"],
)
def test_cli_find_lr_exits_2_on_bad_input(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output


def test_cli_find_lr_prints_json(tmp_path):
    import json

    plot = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app,
        ["find-lr", "--task", "digits-mlp", "--size", "smoke", "--method", "adamw()", "--steps", "60", "--json"]
        + ["--plot", str(plot)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["steps"] == 60 and data["recommended"] > 0
    assert plot.exists()


def test_the_examples_in_docs_finder_md_run():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "finder.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 3, "docs/finder.md lost its examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)  # the examples assert what they show
