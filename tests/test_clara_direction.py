"""CLARA reads the step's direction from the optimizer it knows: exact in float32 where the displacement is not."""

from __future__ import annotations

import pytest
import torch

import lrcontrol
from lrcontrol.control.direction import DirectionReader

C = 0.2


def _exact_direction(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    """The optimizer's direction for p in float64, from its float32 gradient and state (the paper's formulas)."""
    group = optimizer.param_groups[0]
    st = optimizer.state[p]
    if isinstance(optimizer, torch.optim.SGD):
        return (st["momentum_buffer"] if group["momentum"] else p.grad).double()
    beta1, beta2 = group["betas"]
    t = float(st["step"])
    m_hat = st["exp_avg"].double() / (1 - beta1**t)
    v_hat = st["exp_avg_sq"].double() / (1 - beta2**t)
    return m_hat / (v_hat.sqrt() + group["eps"])


def _first_step(spec: str):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt, ctl = lrcontrol.build(model.parameters(), spec)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    ctl.step(loss)
    return model, opt, ctl.factors[-1], before


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam", "adamw"])
def test_float32_direction_error_at_a_tiny_lr_stays_below_1e_minus_4(optimizer):
    opt_spec = {
        "sgd": "sgd(lr=1e-6)",
        "sgd_momentum": "sgd(lr=1e-6, momentum=0.9)",
        "adam": "adam(lr=1e-6)",
        "adamw": "adamw(lr=1e-6)",
    }[optimizer]
    model, opt, clara, before = _first_step(f"{opt_spec} + clara(d=0.01)")
    assert clara.reader is not None
    worst_read = worst_displacement = 0.0
    for p, path, b in zip(model.parameters(), clara.paths, before):
        exact = _exact_direction(opt, p)
        exact = exact / exact.norm()
        read = path.double() / C  # after one step p = c·ŝ
        worst_read = max(worst_read, float((read - exact).norm()))
        shift = (b - p.detach()).double()
        worst_displacement = max(worst_displacement, float((shift / shift.norm() - exact).norm()))
    assert worst_read < 1e-4
    # reading the displacement θ_before − θ_after (the 0.2 capture) fails the same bound
    assert worst_displacement > 1e-4


def test_unknown_optimizers_fall_back_to_the_displacement():
    params = [torch.nn.Parameter(torch.randn(5))]
    for opt in (
        torch.optim.RMSprop(params, lr=0.1),
        torch.optim.SGD(params, lr=0.1, weight_decay=0.1),  # its direction needs θ before the step
        torch.optim.Adam(params, lr=0.1, maximize=True),
    ):
        assert DirectionReader.of(opt, params, [0]) is None
    _, ctl = lrcontrol.build([torch.nn.Parameter(torch.randn(5))], "rmsprop(lr=0.1) + clara()")
    assert ctl.factors[-1].reader is None


@pytest.mark.parametrize("spec", ["sgd(lr=0.05, momentum=0.9, nesterov=True)", "adam(lr=0.05, amsgrad=True)"])
def test_the_direction_read_is_the_step_taken(spec):
    """Over several steps in float64, the direction read equals the normalised displacement."""
    torch.manual_seed(1)
    params = [
        torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)),
        torch.nn.Parameter(torch.randn(3, dtype=torch.float64)),
    ]
    opt, ctl = lrcontrol.build(params, spec + " + clara(d=0.01, guard=False)")
    clara = ctl.factors[-1]
    for _ in range(5):
        for p in params:
            p.grad = torch.randn_like(p)
        before = [p.detach().clone() for p in params]
        opt.step()
        dirs, scales = clara.reader.read([True, True])
        for d, s, b, p in zip(dirs, scales, before, params):
            torch.testing.assert_close(s * d, b - p.detach(), rtol=1e-12, atol=1e-14)
        ctl.step(1.0)
