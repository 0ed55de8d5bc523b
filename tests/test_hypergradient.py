"""Hypergradient descent: the rules of METHODS.md §4.3 against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol

LR, BETA = 0.1, 0.01
# Two tensors, three steps. Flattened: g1 = (1, 2 | 0, 1, 0), g2 = (1, 0 | 0, 1, 1), g3 = (−1, 1 | 2, 0, 0),
# so g2·g1 = 2, g3·g2 = −1, g3·g1 = 1, ‖g1‖² = 6, ‖g2‖² = 3, ‖g3‖² = 6.
GRADS = [
    ([1.0, 2.0], [0.0, 1.0, 0.0]),
    ([1.0, 0.0], [0.0, 1.0, 1.0]),
    ([-1.0, 1.0], [2.0, 0.0, 0.0]),
]
# θ moves by ~0.1 from 0, and s is read back from the float32 displacement: agreement to ~1e-7.
RTOL = 1e-6


def zeros() -> list[torch.Tensor]:
    return [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]


def run(optimizer, controller, tensors, grads_per_step=GRADS, loss: float = 1.0) -> list[list[float]]:
    """Take the steps; return the LR each step was taken with."""
    used = []
    for grads in grads_per_step:
        for p, g in zip(tensors, grads):
            p.grad = torch.tensor(g)
        recorded: list[list[float]] = []

        def record(opt, args, kwargs, into=recorded):
            into.append([group["lr"] for group in opt.param_groups])

        hook = optimizer.register_step_post_hook(record)
        optimizer.step()
        hook.remove()
        controller.step(loss)
        used.append(recorded[0])
    return used


def flat(grads) -> torch.Tensor:
    return torch.tensor([x for g in grads for x in g], dtype=torch.float64)


def test_sgd_additive_matches_hand_values():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={BETA}, guard=False)")
    used = run(optimizer, controller, tensors)
    # step 1 has no previous direction; then η_2 = 0.1 + 0.01·(g2·g1) = 0.12, η_3 = 0.12 + 0.01·(g3·g2) = 0.11
    assert [u[0] for u in used] == pytest.approx([0.1, 0.12, 0.11], rel=RTOL)
    expected = -(0.1 * flat(GRADS[0]) + 0.12 * flat(GRADS[1]) + 0.11 * flat(GRADS[2]))
    got = torch.cat([p.detach() for p in tensors]).double()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert controller.lrs == pytest.approx([0.11], rel=RTOL)


def test_sgd_momentum_uses_the_momentum_direction():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR, momentum=0.9)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={BETA}, guard=False)")
    used = run(optimizer, controller, tensors)
    # s_1 = buf_1 = g1; s_2 = buf_2 = 0.9·g1 + g2, so g3·s_2 = 0.9·1 + (−1) = −0.1
    assert [u[0] for u in used] == pytest.approx([0.1, 0.12, 0.12 - 0.001], rel=RTOL)


def test_adam_uses_adams_own_direction():
    tensors = zeros()
    b1, b2, eps, beta = 0.9, 0.999, 1e-8, 1e-3
    optimizer = torch.optim.Adam(tensors, lr=LR, betas=(b1, b2), eps=eps)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={beta}, guard=False)")
    used = run(optimizer, controller, tensors)
    # Adam's direction by hand: s_t = m̂_t/(sqrt(v̂_t) + ε)
    m = torch.zeros(5, dtype=torch.float64)
    v = torch.zeros(5, dtype=torch.float64)
    lr, expected, direction = LR, [], None
    for t, grads in enumerate(GRADS, start=1):
        g = flat(grads)
        if direction is not None:
            lr = lr + beta * float(g @ direction)
        expected.append(lr)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        direction = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    assert [u[0] for u in used] == pytest.approx(expected, rel=RTOL)
    assert expected[1] != LR  # the case really adapts


def test_multiplicative_rule_uses_the_cosine():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={BETA}, mode='multiplicative', guard=False)")
    used = run(optimizer, controller, tensors)
    lr2 = 0.1 * (1 + 0.01 * 2 / math.sqrt(6 * 3))
    lr3 = lr2 * (1 + 0.01 * -1 / math.sqrt(3 * 6))
    assert [u[0] for u in used] == pytest.approx([0.1, lr2, lr3], rel=RTOL)


def test_each_param_group_has_its_own_rate():
    tensors = zeros()
    optimizer = torch.optim.SGD([{"params": [tensors[0]]}, {"params": [tensors[1]], "lr": 0.2}], lr=LR)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={BETA}, guard=False)")
    used = run(optimizer, controller, tensors)
    # group 0 sees only (1, 2)·(1, 0) = 1 then (−1, 1)·(1, 0) = −1; group 1: 1 then 0
    assert [u[0] for u in used] == pytest.approx([0.1, 0.11, 0.10], rel=RTOL)
    assert [u[1] for u in used] == pytest.approx([0.2, 0.21, 0.21], rel=RTOL)


def test_composes_with_a_schedule():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"warmup(3) + hypergradient(beta={BETA}, guard=False)")
    used = run(optimizer, controller, tensors)
    # the warmup sets 0.1·(t + 1)/3; the rule adds β·g·s to whatever LR the step was going to use:
    # step 2: 0.0667 + 0.02 (the multiplier becomes 1.3); step 3: 0.1·1·1.3 − 0.01 = 0.12
    assert [u[0] for u in used] == pytest.approx([0.1 / 3, 0.2 / 3 + 0.02, 0.12], rel=RTOL)


def test_eta_stays_positive_and_bounded():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    spec = "hypergradient(beta=100.0, floor=0.001, ceiling=5.0, max_change=1e12, guard=False)"
    controller = lrcontrol.control(optimizer, spec)
    # g2·g1 = −6: the additive rule says η < 0, so η hits the floor; then g3·g2 = +6: η hits the ceiling
    flipped = [GRADS[0], ([-1.0, -2.0], [0.0, -1.0, 0.0]), ([-1.0, -2.0], [0.0, -1.0, 0.0])]
    used = run(optimizer, controller, tensors, flipped)
    assert used[1][0] == pytest.approx(LR * 0.001) and used[2][0] == pytest.approx(LR * 5.0)


def test_non_finite_gradient_is_skipped_counted_and_restored():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, f"hypergradient(beta={BETA})")
    run(optimizer, controller, tensors, GRADS[:2])
    factor = controller.factors[0]
    scale = factor.group_scale[0]
    run(optimizer, controller, tensors, [([math.nan, 0.0], [0.0, 0.0, 1.0])], loss=math.nan)
    assert factor.group_scale[0] == scale and factor.skipped == 1 and factor.restores == 1
    assert all(bool(torch.isfinite(p).all()) for p in tensors)
    assert not factor.has_direction  # after a restore the previous step is no direction of this run
    assert all(math.isfinite(lr) and lr > 0 for lr in controller.lrs)


def test_one_step_moves_eta_by_at_most_max_change():
    tensors = zeros()
    optimizer = torch.optim.SGD(tensors, lr=LR)
    controller = lrcontrol.control(optimizer, "hypergradient(beta=100.0, guard=False)")
    flipped = [GRADS[0], ([-1.0, -2.0], [0.0, -1.0, 0.0]), ([-1.0, -2.0], [0.0, -1.0, 0.0])]
    used = run(optimizer, controller, tensors, flipped)
    assert [u[0] for u in used] == pytest.approx([LR, LR / 2, LR], rel=RTOL)  # halved, then doubled


def sphere_run(spec: str, steps: int = 300) -> tuple[float, float]:
    """SGD on the noise-free 50-d sphere f = ‖θ‖²/2 (METHODS.md §4.1's runaway case): (start, end) loss."""
    torch.manual_seed(0)
    theta = torch.randn(50, requires_grad=True)
    optimizer, controller = lrcontrol.build([theta], f"sgd(lr=0.01) + {spec}")
    start = 0.5 * float(theta.detach().pow(2).sum())
    for _ in range(steps):
        loss = 0.5 * theta.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss.detach())
    return start, 0.5 * float(theta.detach().pow(2).sum())


def test_noise_free_sphere_converges_where_the_unlimited_rule_gets_stuck():
    # β = 0.1 overshoots; the paper's unlimited additive rule then throws η onto its floor, where the
    # float32 displacement is 0 and η can never climb back. The step limit keeps it adapting.
    start, end = sphere_run("hypergradient(beta=0.1)")
    assert end < 1e-6 * start
    start, stuck = sphere_run("hypergradient(beta=0.1, max_change=1e12)")
    assert stuck > 0.5 * start
