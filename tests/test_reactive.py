"""Reactive rules: plateau and bold driver, on their own and composed."""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol


def _ctrl(spec, lr=1.0, total=None):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=lr)
    return p, opt, lrcontrol.control(opt, spec, total_steps=total)


def test_bold_driver_raises_while_improving_and_cuts_when_worse():
    _, _, ctrl = _ctrl("bold_driver(up=1.1, down=0.5)")
    ctrl.report(val_loss=1.0)  # the first evaluation sets the reference
    assert ctrl.lrs == [1.0]
    ctrl.report(val_loss=0.9)
    assert ctrl.lrs == [pytest.approx(1.1)]
    ctrl.report(val_loss=0.8)
    assert ctrl.lrs == [pytest.approx(1.21)]
    ctrl.report(val_loss=0.85)
    assert ctrl.lrs == [pytest.approx(0.605)]
    ctrl.report(val_loss=math.nan)  # non-finite counts as worse
    assert ctrl.lrs == [pytest.approx(0.3025)]


def test_bold_driver_tolerance_keeps_the_lr_on_small_setbacks():
    _, _, ctrl = _ctrl("bold_driver(tolerance=0.1)")
    ctrl.report(val_loss=1.0)
    ctrl.report(val_loss=1.05)
    assert ctrl.lrs == [1.0]
    ctrl.report(val_loss=1.2)
    assert ctrl.lrs == [0.5]


def test_bold_driver_rollback_restores_parameters_and_optimizer_state():
    p, opt, ctrl = _ctrl("bold_driver(rollback=True, down=0.5)", lr=0.1)
    opt2 = opt
    p.grad = torch.ones(3)
    opt2.step()
    ctrl.step()
    ctrl.report(val_loss=1.0)  # snapshot here
    saved = p.detach().clone()
    p.grad = torch.ones(3)
    opt.step()
    ctrl.step()
    assert not torch.equal(p.detach(), saved)
    ctrl.report(val_loss=2.0)  # worse: roll back and halve
    assert torch.equal(p.detach(), saved)
    assert ctrl.lrs == [pytest.approx(0.05)]
    ctrl.report(val_loss=1.5)  # still worse than the reference 1.0: rolls back again
    assert ctrl.lrs == [pytest.approx(0.025)]


def test_bold_driver_rollback_restores_momentum_buffers():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ctrl = lrcontrol.control(opt, "bold_driver(rollback=True)")
    p.grad = torch.ones(2)
    opt.step()
    ctrl.report(val_loss=1.0)
    buf = opt.state[p]["momentum_buffer"].clone()
    p.grad = torch.full((2,), 5.0)
    opt.step()
    ctrl.report(val_loss=3.0)
    assert torch.equal(opt.state[p]["momentum_buffer"], buf)


def test_bold_driver_smoothing_compares_smoothed_losses():
    _, _, ctrl = _ctrl("bold_driver(smoothing=0.5, up=2.0, down=0.5)")
    ctrl.report(val_loss=1.0)
    ctrl.report(val_loss=1.2)  # smoothed 1.1 > 1.0: cut
    assert ctrl.lrs == [0.5]
    ctrl.report(val_loss=0.9)  # smoothed 1.0 < 1.1: raise
    assert ctrl.lrs == [1.0]


def test_bold_driver_stays_within_its_bounds():
    _, _, ctrl = _ctrl("bold_driver(up=10.0, ceiling=50.0, down=0.1, floor=0.01)")
    for v in [1.0, 0.9, 0.8, 0.7, 0.6]:
        ctrl.report(val_loss=v)
    assert ctrl.lrs == [50.0]
    for _ in range(10):
        ctrl.report(val_loss=math.inf)
    assert ctrl.lrs == [pytest.approx(0.01)]


def test_training_loss_windows_drive_the_rules_with_monitor_loss():
    _, opt, ctrl = _ctrl('plateau(monitor="loss", every=5, patience=0, gamma=0.5)')
    for t in range(20):
        opt.step()
        ctrl.step(1.0 if t < 5 else 2.0)  # first window best, later windows worse
    assert ctrl.lrs == [pytest.approx(0.5**3)]


def test_mode_max_treats_higher_as_better():
    _, _, ctrl = _ctrl('plateau(monitor="val_acc", mode="max", patience=0)')
    ctrl.report(val_acc=0.5)
    ctrl.report(val_acc=0.6)
    assert ctrl.lrs == [1.0]
    ctrl.report(val_acc=0.55)
    assert ctrl.lrs == [pytest.approx(0.1)]


def test_reports_without_the_monitored_metric_are_ignored():
    _, _, ctrl = _ctrl("plateau(patience=0)")
    for _ in range(5):
        ctrl.report(val_acc=0.1)
    assert ctrl.lrs == [1.0]


def test_plateau_and_bold_driver_compose_with_each_other_and_a_schedule():
    _, opt, ctrl = _ctrl("warmup(2) + plateau(patience=0, gamma=0.5) + bold_driver(up=2.0, down=0.25)", total=10)
    assert ctrl.lrs == [0.5]  # warmup step 0
    opt.step()
    ctrl.step()
    ctrl.report(val_loss=1.0)
    ctrl.report(val_loss=0.5)  # both see an improvement: bold driver ×2
    assert ctrl.lrs == [2.0]
    ctrl.report(val_loss=0.7)  # plateau ×0.5, bold driver ×0.25
    assert ctrl.lrs == [pytest.approx(2.0 * 0.5 * 0.25)]


def test_plateau_resumes_in_the_middle_of_its_patience():
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.5, 0.6, 0.7]
    _, _, full = _ctrl("plateau(patience=2, cooldown=1)")
    lrs_full = []
    for m in metrics:
        full.report(val_loss=m)
        lrs_full.append(full.lrs[0])
    _, _, first = _ctrl("plateau(patience=2, cooldown=1)")
    for m in metrics[:4]:
        first.report(val_loss=m)
    _, _, second = _ctrl("plateau(patience=2, cooldown=1)")
    second.load_state_dict(first.state_dict())
    lrs = []
    for m in metrics[4:]:
        second.report(val_loss=m)
        lrs.append(second.lrs[0])
    assert lrs == lrs_full[4:]
    assert min(lrs_full) < 1.0
