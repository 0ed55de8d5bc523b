"""Safeguards shared by the online controllers (control/online.py): bounds, non-finite steps and losses,
skipped (AMP) steps, gradient clipping, restore-and-halve."""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol


def _rig(spec: str, seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=gen)
    y = x[:, :2].sum(1, keepdim=True)
    opt, ctl = lrcontrol.build(model.parameters(), spec)
    return model, opt, ctl, x, y


def _loss(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def _train(model, opt, ctl, x, y, steps: int, clip: float | None = None):
    for _ in range(steps):
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        ctl.step(loss)


def test_multiplier_stays_within_its_bounds():
    # a constant gradient: every step points the same way, so CLARA would raise η without end
    w = torch.nn.Parameter(torch.zeros(10))
    opt, ctl = lrcontrol.build([w], "sgd(lr=1e-3) + clara(d=0.1, ceiling=20, guard=False)")
    lrs = []
    for _ in range(100):
        w.grad = torch.ones(10)
        opt.step()
        ctl.step(1.0)
        lrs.append(ctl.lrs[0])
    assert max(lrs) == pytest.approx(20 * 1e-3)
    w2 = torch.nn.Parameter(torch.zeros(10))
    opt, ctl = lrcontrol.build([w2], "sgd(lr=1e-3) + clara(d=0.1, floor=0.5, guard=False)")
    for t in range(100):  # alternating steps: the path cancels, CLARA lowers η
        w2.grad = torch.ones(10) * (-1) ** t
        opt.step()
        ctl.step(1.0)
    assert ctl.lrs[0] == pytest.approx(0.5 * 1e-3)


def test_non_finite_gradient_is_skipped_counted_and_undone():
    model, opt, ctl, x, y = _rig("sgd(lr=0.05) + clara(d=0.01)")
    _train(model, opt, ctl, x, y, 30)
    factor = ctl.factors[-1]
    scale_before = factor.scale
    loss = _loss(model, x, y)
    opt.zero_grad()
    loss.backward()
    next(model.parameters()).grad[0, 0] = float("nan")
    opt.step()
    ctl.step(loss)
    assert factor.skipped == 1
    assert factor.restores == 1
    assert factor.scale == pytest.approx(scale_before * 0.5)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(math.isfinite(lr) and lr > 0 for lr in ctl.lrs)
    _train(model, opt, ctl, x, y, 10)  # training goes on from the restored state
    assert math.isfinite(float(_loss(model, x, y).detach()))


def test_non_finite_loss_skips_the_adaptation():
    model, opt, ctl, x, y = _rig("sgd(lr=0.05) + clara(d=0.01, guard=False)")
    _train(model, opt, ctl, x, y, 5)
    factor = ctl.factors[-1]
    scale, paths = factor.scale, [p.clone() for p in factor.paths]
    loss = _loss(model, x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ctl.step(float("inf"))
    assert factor.skipped == 1
    assert factor.scale == scale
    assert all(torch.equal(a, b) for a, b in zip(paths, factor.paths))


def test_a_skipped_optimizer_step_is_idle():
    """AMP's GradScaler skips optimizer.step() on overflow; controller.step() then changes nothing.

    By default the controller itself sees that the optimizer did not step and does not count the call;
    with torch's counting (count="calls") CLARA's own check keeps the step idle."""
    model, opt, ctl, x, y = _rig("adam(lr=1e-3) + clara(d=0.01)")
    _train(model, opt, ctl, x, y, 5)
    factor = ctl.factors[-1]
    scale, t = factor.scale, ctl.t
    ctl.step(0.5)  # no optimizer.step() before it
    assert (ctl.t, ctl.skipped_steps, factor.scale) == (t, 1, scale)
    ctl.count = "calls"
    ctl.step(0.5)
    assert factor.idle_steps == 1
    assert factor.scale == scale


def test_gradient_clipping_leaves_sgd_clara_unchanged():
    """A global-norm clip rescales all gradients by one factor, so SGD's normalised steps, and CLARA's
    LRs, are those of the unclipped run (the same gradient sequence fed to both)."""
    gen = torch.Generator().manual_seed(3)
    grads = [[torch.randn(4, 3, generator=gen) * 10, torch.randn(5, generator=gen)] for _ in range(12)]
    trajectories = []
    for clip in (None, 1e-3):
        tensors = [torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(5))]
        opt, ctl = lrcontrol.build(tensors, "sgd(lr=0.05) + clara(d=0.05, guard=False)")
        lrs = []
        for step_grads in grads:
            for t, g in zip(tensors, step_grads):
                t.grad = g.clone()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(tensors, clip)
            opt.step()
            ctl.step(1.0)
            lrs.append(ctl.lrs[0])
        trajectories.append(lrs)
    assert trajectories[0] == pytest.approx(trajectories[1], rel=1e-5)
    assert trajectories[0][-1] != pytest.approx(0.05, rel=1e-3)  # the rule did move η


def test_loss_blow_up_restores_the_checkpoint_and_halves():
    model, opt, ctl, x, y = _rig("sgd(lr=0.01) + clara(d=0.01, guard_every=5)")
    _train(model, opt, ctl, x, y, 40)
    factor = ctl.factors[-1]
    saved = [p.detach().clone() for p in factor.guard.checkpoint.values]
    scale = factor.scale
    for p in model.parameters():  # a catastrophic step: the loss jumps far above the checkpoint's
        p.grad = torch.full_like(p, 100.0)
    opt.step()
    ctl.step(float(_loss(model, x, y).detach()))  # the step is adapted from, then the alarm restores and halves
    assert factor.restores == 1
    assert factor.scale == pytest.approx(scale * math.exp(0.01 * (factor.ratio - 1.0)) * 0.5, rel=1e-12)
    assert all(torch.equal(p, torch.zeros_like(p)) for p in factor.paths)
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), saved))


@pytest.mark.parametrize(
    "spec",
    ["adam(lr=1e-2) + clara(d=0.01, guard_every=3)", "sgd(lr=0.1) + clara(d='auto', variant='unit', guard_every=3)"],
)
def test_state_dict_resumes_bit_for_bit_with_the_checkpoint(spec):
    model, opt, ctl, x, y = _rig(spec)
    _train(model, opt, ctl, x, y, 10)
    import copy
    import pickle

    saved = pickle.loads(pickle.dumps((model.state_dict(), opt.state_dict(), ctl.state_dict())))
    clone_model = copy.deepcopy(model)
    _train(model, opt, ctl, x, y, 10)
    model2, opt2, ctl2, _, _ = _rig(spec)
    model2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    ctl2.load_state_dict(saved[2])
    assert all(torch.equal(a, b) for a, b in zip(model2.parameters(), clone_model.parameters()))
    _train(model2, opt2, ctl2, x, y, 10)
    assert ctl2.lrs == ctl.lrs
    assert all(torch.equal(a, b) for a, b in zip(model2.parameters(), model.parameters()))
