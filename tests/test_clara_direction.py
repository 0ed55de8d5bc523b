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


def _function_modes() -> int:
    return torch._C._len_torch_function_stack()


def _large_model(dtype=torch.float32):
    torch.manual_seed(3)
    return [
        torch.nn.Parameter(torch.randn(600, 500, dtype=dtype)),
        torch.nn.Parameter(torch.randn(500, 600, dtype=dtype)),
        torch.nn.Parameter(torch.randn(10, dtype=dtype)),
    ]


@pytest.mark.parametrize(
    "kwargs", [{"foreach": True}, {"foreach": False}, {"foreach": True, "amsgrad": True}, {"weight_decay": 0.1}]
)
def test_adam_update_is_recorded_and_is_the_step_taken(kwargs, monkeypatch):
    """On a large model Adam's direction is the quotient its own update used (never recomputed from v):
    in float64 it equals the displacement, and the computing path is not called."""
    params = _large_model(torch.float64)
    opt = torch.optim.AdamW(params, lr=0.01, **kwargs)
    ctl = lrcontrol.control(opt, "clara(d=0.01, guard=False)")
    reader = ctl.factors[-1].reader
    assert reader._recorder is not None

    def computed(*args):
        raise AssertionError("Adam's direction was recomputed")

    monkeypatch.setattr(DirectionReader, "_read_adam", computed)
    for _ in range(4):
        for p in params:
            p.grad = torch.randn_like(p)
        before = [p.detach().clone() for p in params]
        opt.step()
        dirs, scales = reader.read([True] * len(params))
        decay = opt.param_groups[0]["lr"] * opt.param_groups[0]["weight_decay"]
        for d, s, b, p in zip(dirs, scales, before, params):
            # AdamW's decoupled decay η·λ·θ is part of the step taken, not of the direction
            torch.testing.assert_close(s * d, b * (1 - decay) - p.detach(), rtol=1e-12, atol=1e-14)
        ctl.step(1.0)
        assert _function_modes() == 0


def test_recorded_and_computed_directions_agree_in_float32():
    params = _large_model()
    opt = torch.optim.Adam(params, lr=1e-3)
    ctl = lrcontrol.control(opt, "clara(d=0.01)")
    reader = ctl.factors[-1].reader
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    recorded, recorded_scales = reader.read([True] * 3)
    recorded = [d.clone() for d in recorded]
    computed, computed_scales = reader._read_adam([True] * 3)
    for a, sa, b, sb in zip(recorded, recorded_scales, computed, computed_scales):
        a, b = a.double(), b.double()
        assert float((a / a.norm() - b / b.norm()).norm()) < 1e-6  # float32 rounding of one quotient
        torch.testing.assert_close(sa * a, sb * b, rtol=1e-5, atol=1e-9)


def test_small_models_and_the_fused_adam_compute_the_direction():
    small = [torch.nn.Parameter(torch.randn(30, 20))]
    _, ctl = lrcontrol.build(small, "adam(lr=0.01) + clara(d=0.01)")
    assert ctl.factors[-1].reader._recorder is None  # the mode's cost would exceed the pass it saves
    params = _large_model()
    opt = torch.optim.Adam(params, lr=0.01, fused=True)  # one kernel: nothing to record
    ctl = lrcontrol.control(opt, "clara(d=0.01)")
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    ctl.step(1.0)
    assert ctl.factors[-1].adapted_steps == 1
    assert _function_modes() == 0


def test_a_step_that_raises_between_the_hooks_leaves_no_recorder_behind():
    params = _large_model()
    opt = torch.optim.Adam(params, lr=0.01)
    ctl = lrcontrol.control(opt, "clara(d=0.01)")
    fail = [True]

    def failing_hook(optimizer, args, kwargs):
        if fail[0]:
            raise RuntimeError("a later pre-hook failed")

    opt.register_step_pre_hook(failing_hook)  # runs after the controller's: the recorder is entered
    for p in params:
        p.grad = torch.randn_like(p)
    with pytest.raises(RuntimeError):
        opt.step()
    assert _function_modes() == 1
    fail[0] = False
    opt.step()  # the next step ends it
    ctl.step(1.0)
    assert _function_modes() == 0
    assert ctl.factors[-1].adapted_steps == 1
    with pytest.raises(RuntimeError):
        fail[0] = True
        opt.step()
    ctl.close()  # and so does closing the controller
    assert _function_modes() == 0
