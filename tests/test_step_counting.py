"""The controller counts the steps the optimizer really took, and warns once about loops that silently
do something else than they say: step() per micro-batch, t past total_steps, a reactive rule never fed."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import lrcontrol
from lrcontrol import LRControlWarning


def _rig(spec: str, total_steps: int | None = 10, **options):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer, controller = lrcontrol.build(model.parameters(), spec, total_steps=total_steps, **options)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 4, generator=g), torch.randn(64, 1, generator=g)
    return model, optimizer, controller, x, y


def _no_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", LRControlWarning)
    return ctx


@pytest.mark.parametrize("count, expected_t", [("optimizer", 26), ("calls", 30)])
def test_a_grad_scaler_that_skips_steps(count, expected_t):
    """GradScaler skips optimizer.step() when a gradient overflows: t counts the 26 steps really taken
    (count="calls", torch's counting, counts all 30 calls)."""
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + cosine()", total_steps=30, count=count)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1000)
    overflow_at = {0, 9, 17, 25}  # the first step, and isolated ones later, as AMP does
    ctx = _no_warnings()
    try:
        for t in range(30):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[t : t + 8]), y[t : t + 8])
            if t in overflow_at:
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            controller.step()
    finally:
        ctx.__exit__(None, None, None)
    assert controller.t == expected_t
    assert controller.skipped_steps == (4 if count == "optimizer" else 0)
    _, reference = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "sgd(lr=0.1) + cosine()", total_steps=30)
    for _ in range(expected_t):
        reference.step()
    assert controller.lrs == reference.lrs


def test_the_lr_holds_on_a_skipped_step():
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + warmup(5)")
    for t in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        if t != 1:
            optimizer.step()
        before = controller.lrs
        controller.step()
        assert (controller.lrs == before) == (t == 1)
    assert controller.t == 2


def test_gradient_accumulation_stepped_per_micro_batch_warns_once_and_counts_optimizer_steps():
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + cosine()", total_steps=10)
    with pytest.warns(LRControlWarning, match="once per optimizer.step") as record:
        for step in range(10):
            for micro in range(4):
                i = 4 * step + micro
                torch.nn.functional.mse_loss(model(x[i : i + 4]), y[i : i + 4]).backward()
                if micro == 3:
                    optimizer.step()
                    optimizer.zero_grad()
                controller.step()  # wrong: per micro-batch
    assert len([w for w in record if issubclass(w.category, LRControlWarning)]) == 1
    assert controller.t == 10  # the default counting still follows the optimizer


def test_torch_counting_under_misused_accumulation_warns_about_the_horizon_too():
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + cosine()", total_steps=10, count="calls")
    with pytest.warns(LRControlWarning) as record:
        for _ in range(10):
            for micro in range(4):
                torch.nn.functional.mse_loss(model(x), y).backward()
                if micro == 3:
                    optimizer.step()
                    optimizer.zero_grad()
                controller.step()
    messages = [str(w.message) for w in record if issubclass(w.category, LRControlWarning)]
    assert controller.t == 40
    assert len(messages) == 2
    assert any("past total_steps=10" in m for m in messages)
    assert any("once per optimizer.step" in m for m in messages)


def test_a_correct_accumulation_loop_never_warns():
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + warmup(2) + cosine() + plateau(patience=1)")
    ctx = _no_warnings()
    try:
        for step in range(10):
            for micro in range(4):
                i = 4 * step + micro
                torch.nn.functional.mse_loss(model(x[i : i + 4]), y[i : i + 4]).backward()
            optimizer.step()
            optimizer.zero_grad()
            controller.step()
            if step % 3 == 2:
                controller.report(val_loss=1.0 / (step + 1))
    finally:
        ctx.__exit__(None, None, None)
    assert controller.t == 10


def test_stepping_past_total_steps_warns_once():
    model, optimizer, controller, x, y = _rig("sgd(lr=0.1) + cosine()", total_steps=10)
    with pytest.warns(LRControlWarning, match="past total_steps=10") as record:
        for _ in range(15):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            controller.step()
            if controller.t == 10:
                assert not record.list  # exactly total_steps steps is the normal end
    assert len(record.list) == 1


@pytest.mark.parametrize(
    "spec, fix",
    [("plateau()", "controller.report(val_loss"), ("plateau(monitor='loss', every=5)", "controller.step(loss)")],
)
def test_a_reactive_rule_that_sees_no_evaluation_warns_once(spec, fix):
    model, optimizer, controller, x, y = _rig(f"sgd(lr=0.1) + {spec}", total_steps=None, warn_unevaluated_after=20)
    with pytest.warns(LRControlWarning, match="has seen no evaluation") as record:
        for t in range(40):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            controller.step()
            if t < 19:
                assert not record.list
    assert len(record.list) == 1
    assert fix in str(record.list[0].message)


def test_walking_a_schedule_without_training_counts_every_call():
    _, controller = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "sgd(lr=1.0) + step(every=2, gamma=0.5)")
    for _ in range(5):
        controller.step()
    assert controller.t == 5 and controller.lrs == [0.25]


def test_step_with_an_int_is_torchs_epoch():
    _, controller = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "sgd(lr=1.0) + step(every=2, gamma=0.5)")
    controller.step(4)
    assert controller.t == 4 and controller.last_epoch == 4 and controller.get_lr() == [0.25]
    controller.step(epoch=1)
    assert controller.get_last_lr() == [1.0]
    controller.step(0.7)  # a float is a loss
    assert controller.t == 2


def test_a_tensor_lr_stays_a_tensor():
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([p], lr=torch.tensor(0.01))
    controller = lrcontrol.control(optimizer, "step(every=1, gamma=0.5)")
    lr_tensor = optimizer.param_groups[0]["lr"]
    p.grad = torch.ones(2)
    optimizer.step()
    controller.step()
    assert optimizer.param_groups[0]["lr"] is lr_tensor
    assert float(lr_tensor) == pytest.approx(0.005, rel=1e-6)


def test_it_is_a_torch_lr_scheduler():
    _, controller = lrcontrol.build([torch.nn.Parameter(torch.zeros(1))], "sgd(lr=1.0) + cosine(steps=4)")
    assert isinstance(controller, torch.optim.lr_scheduler.LRScheduler)
    assert controller.base_lrs == [1.0]


def test_importing_lrcontrol_imports_no_framework():
    code = (
        "import sys, lrcontrol, lrcontrol.integrations, lrcontrol.integrations.logging; "
        "lrcontrol.build([__import__('torch').zeros(1, requires_grad=True)], 'sgd(lr=0.1) + cosine()', total_steps=3); "
        "bad = [m for m in ('pytorch_lightning', 'lightning', 'transformers', 'accelerate') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
