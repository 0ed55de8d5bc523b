"""The expected values of torch's and Hugging Face's scheduler tests, reproduced with lrcontrol specs.

The numbers below are the literal expected LRs of pytorch's test/optim/test_lrscheduler.py and
transformers' tests/optimization/test_optimization.py (facts about those schedulers); the tests are
written here. Cases they hold that lrcontrol cannot express are listed in docs/edges.md with the reason.
torch's rig: SGD with two groups, lr 0.05 and a tensor lr 0.5; a case with one target list checks the
first group only, as torch's does.
"""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol
from lrcontrol import Factor

TOL = 1e-9


def _optimizer(lrs=(0.05, 0.5), tensor_second: bool = True) -> torch.optim.Optimizer:
    groups = []
    for i, lr in enumerate(lrs):
        value = torch.tensor(lr) if (i == 1 and tensor_second) else lr
        groups.append({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": value})
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _lrs(optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


def _read(ctl) -> list[float]:
    """The controller's LRs (float64); a tensor LR holds the same value in the tensor's own dtype (float32
    for torch's rig, so 1e-9 is checked on the controller's value)."""
    for group, lr in zip(ctl.optimizer.param_groups, ctl.lrs):
        if isinstance(group["lr"], torch.Tensor):
            assert group["lr"].item() == torch.tensor(lr, dtype=group["lr"].dtype).item()
        else:
            assert group["lr"] == lr
    return ctl.lrs


def _assert_close(got: list[float], want: list[float], what: str) -> None:
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        assert abs(a - b) <= TOL, f"{what}: step {i}: got {a!r}, expected {b!r}"


def run(spec: str, targets: list[list[float]], epochs: int, lrs=(0.05, 0.5), total_steps=None, **kw) -> None:
    """torch's _test / _test_get_last_lr: read each group's LR, then step."""
    opt = _optimizer(lrs, **kw)
    ctl = lrcontrol.control(opt, spec, total_steps=total_steps)
    seen = [[] for _ in targets]
    for _ in range(epochs):
        for g, lr in enumerate(_read(ctl)[: len(targets)]):
            seen[g].append(lr)
        assert ctl.get_last_lr() == ctl.lrs
        ctl.step()
    for g, target in enumerate(targets):
        _assert_close(seen[g], target[:epochs], f"{spec} group {g}")


def run_with_epoch(spec: str, targets: list[list[float]], epochs: int) -> None:
    """torch's _test_with_epoch: step(epoch), then read."""
    opt = _optimizer()
    ctl = lrcontrol.control(opt, spec)
    seen = [[] for _ in targets]
    for epoch in range(epochs):
        ctl.step(epoch)
        for g, lr in enumerate(_read(ctl)[: len(targets)]):
            seen[g].append(lr)
    for g, target in enumerate(targets):
        _assert_close(seen[g], target[:epochs], f"{spec} (step(epoch)) group {g}")


def both(single: list[float], factor: float = 10.0) -> list[list[float]]:
    return [single, [x * factor for x in single]]


# -- StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, CosineAnnealingLR ----------------------
SINGLE = {
    "test_step_lr": ("step(every=3, gamma=0.1)", both([0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005] * 3)),
    "test_multi_step_lr": (
        "multistep(milestones=[2, 5, 9], gamma=0.1)",
        both([0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 3),
    ),
    "test_get_last_lr_multi_step_lr": (
        "multistep(milestones=[2, 5, 9], gamma=0.1)",
        both([0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 1),
    ),
    "test_constantlr": ("hold(0.5, 5)", both([0.025] * 5 + [0.05] * 5)),
    "test_get_last_lr_constantlr": ("hold(0.5, 5)", both([0.025] * 5 + [0.05] * 5)),
    "test_linearlr": ("ramp(0.5, 1.0, 4)", both([0.05 * (0.5 + i * 0.5 / 4) for i in range(4)] + [0.05] * 6)),
    "test_get_last_lr_linearlr": (
        "ramp(0.25, 0.6, 4)",
        both([0.05 * (0.25 + i * (0.6 - 0.25) / 4) for i in range(4)] + [0.05 * 0.6] * 6),
    ),
    "test_exp_lr": ("exponential(gamma=0.9)", both([0.05 * 0.9**x for x in range(10)])),
    "test_cos_anneal_lr": (
        "cosine(steps=10, min_lr=[1e-10])",
        both([1e-10 + (0.05 - 1e-10) * (1 + math.cos(math.pi * x / 10)) / 2 for x in range(10)]),
    ),
    # ChainedScheduler, and lists of schedulers stepped together: products of factors
    "test_chained_lr1": ("step(every=3, gamma=0.1)", [[0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005] * 3]),
    "test_chained_lr2": ("ramp(0.4, 1.0, 3)", [[0.02, 0.03, 0.04] + [0.05] * 9]),
    "test_chained_lr3": (
        "ramp(0.4, 1.0, 3) + multistep(milestones=[4, 8, 10], gamma=0.1)",
        [[0.02, 0.03, 0.04, 0.05] + [0.005] * 4 + [0.0005] * 3 + [0.00005] * 3],
    ),
    "test_chained_lr4": (
        "exponential(gamma=0.9) + hold(0.2, 4) + step(every=3, gamma=0.1)",
        [
            [0.05 * 0.2 * 0.9**x for x in range(3)]
            + [0.05 * 0.2 * 0.9**3 * 0.1]
            + [0.05 * 0.9**x * 0.1 for x in range(4, 6)]
            + [0.05 * 0.9**x * 0.01 for x in range(6, 9)]
        ],
    ),
    "test_compound_step_and_multistep_lr": (
        "step(every=3, gamma=0.1) + multistep(milestones=[2, 5, 9], gamma=0.1)",
        [[0.05] * 2 + [0.005] * 1 + [5e-4] * 2 + [5e-5] + [5e-6] * 3 + [5e-8]],
    ),
    "test_compound_step_and_exp_lr": (
        "step(every=3, gamma=0.1) + exponential(gamma=0.9)",
        both([0.05 * 0.1 ** (x // 3) * 0.9**x for x in range(12)]),
    ),
    "test_compound_exp_and_multistep_lr": (
        "multistep(milestones=[2, 5, 9], gamma=0.1) + exponential(gamma=0.9)",
        both(
            [0.05 * 0.9**x for x in range(2)]
            + [0.005 * 0.9**x for x in range(2, 5)]
            + [0.0005 * 0.9**x for x in range(5, 9)]
            + [0.00005 * 0.9**x for x in range(9, 11)]
        ),
    ),
    "test_compound_exp_and_linearlr": (
        "ramp(0.4, 0.9, 4) + exponential(gamma=0.9)",
        both([0.05 * 0.9**i * (0.4 + i / 4 * 0.5 if i < 4 else 0.9) for i in range(11)]),
    ),
    "test_compound_step_and_constantlr": (
        "step(every=3, gamma=0.1) + hold(0.4, 4)",
        both([0.05 * 0.4] * 3 + [0.005 * 0.4] + [0.005] * 2 + [0.0005] * 3 + [0.00005] * 3),
    ),
    "test_compound_linearlr_and_multistep_lr": (
        "multistep(milestones=[2, 5, 9], gamma=0.1) + ramp(0.4, 1.0, 4)",
        both(
            [
                x * (0.4 + i / 4 * 0.6 if i < 4 else 1.0)
                for i, x in enumerate([0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 2)
            ]
        ),
    ),
}


def _cos10(x: int) -> float:
    return 1e-10 + (0.05 - 1e-10) * (1 + math.cos(math.pi * x / 10)) / 2


COSINE_COMPOUNDS = {
    "test_compound_cosanneal_and_step_lr": (
        "cosine(steps=10, min_lr=[1e-10]) + step(every=3, gamma=0.1)",
        both([_cos10(i) * 0.1 ** (i // 3) for i in range(10)]),
    ),
    "test_compound_cosanneal_and_multistep_lr": (
        "cosine(steps=10, min_lr=[1e-10]) + multistep(milestones=[2, 5, 9], gamma=0.1)",
        both([_cos10(i) * m for i, m in enumerate([1] * 2 + [0.1] * 3 + [0.01] * 4 + [0.001])]),
    ),
    "test_compound_cosanneal_and_linearlr": (
        "ramp(0.4, 1.0, 4) + cosine(steps=10, min_lr=[1e-10])",
        both([_cos10(i) * (0.4 + i / 4 * 0.6 if i < 4 else 1.0) for i in range(10)]),
    ),
    "test_compound_cosanneal_and_exp_lr": (
        "cosine(steps=10, min_lr=[1e-10]) + exponential(gamma=0.1, floor=1e-300)",
        both([_cos10(i) * 0.1**i for i in range(10)]),
    ),
}

EPOCHS = {
    "test_step_lr": 10,
    "test_chained_lr2": 10,
    "test_chained_lr4": 9,
}


@pytest.mark.parametrize("case", sorted({**SINGLE, **COSINE_COMPOUNDS}))
def test_torch_schedules(case):
    spec, targets = {**SINGLE, **COSINE_COMPOUNDS}[case]
    run(spec, targets, EPOCHS.get(case, 10))


def test_torch_get_last_lr_step_lr():
    run("step(every=3, gamma=0.1)", [[0.1] * 3 + [0.01] * 3 + [0.001] * 3 + [0.0001]], 10, lrs=(0.1,))


@pytest.mark.parametrize(
    "case, spec, single",
    [
        (
            "test_multi_step_lr_with_epoch",
            "multistep(milestones=[2, 5, 9], gamma=0.1)",
            [0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [0.00005] * 3,
        ),
        ("test_constantlr_with_epoch", "hold(0.5, 5)", [0.025] * 5 + [0.05] * 5),
        ("test_linearlr_with_epoch", "ramp(0.5, 1.0, 4)", [0.05 * (0.5 + i * 0.5 / 4) for i in range(4)] + [0.05] * 6),
    ],
)
def test_torch_step_with_epoch(case, spec, single):
    run_with_epoch(spec, both(single), 10)


@pytest.mark.parametrize(
    "spec",
    [
        "step(every=2)",
        "exponential(gamma=0.9)",
        "hold(0.3333333333333333, 5)",
        "ramp(0.3333333333333333, 1.0, 5)",
        "polynomial(power=0.9, steps=5)",
    ],
    ids=["step", "exponential", "constantlr", "linearlr", "polynomial"],
)
def test_torch_lr_is_constant_for_constant_epoch(spec):
    opt = _optimizer()
    ctl = lrcontrol.control(opt, spec)
    seen = []
    for _ in range(10):
        ctl.step(2)
        seen.append(_lrs(opt)[0])
    assert min(seen) == max(seen)


# -- SequentialLR ---------------------------------------------------------------------------------
SEQUENTIAL = {
    "test_sequentiallr1": (
        "sequential(parts='exponential(gamma=0.8) | step(every=4, gamma=0.1)', milestones=[3])",
        [[0.05, 0.04, 0.032] + [0.05] * 4 + [0.005] * 4 + [0.0005] * 4 + [0.00005] * 4],
        19,
    ),
    "test_sequentiallr2": (
        "sequential(parts='hold(0.1, 3) | exponential(gamma=0.9)', milestones=[3])",
        [[0.005, 0.005, 0.005] + [0.05 * 0.9**x for x in range(10)]],
        13,
    ),
    "test_sequentiallr3": (
        "sequential(parts='hold(0.1, 3) | exponential(gamma=0.8) | step(every=2, gamma=0.1)', milestones=[3, 6])",
        [[0.005, 0.005, 0.005] + [0.05, 0.04, 0.032] + [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]],
        12,
    ),
    "test_get_last_lr_sequentiallr": (
        "sequential(parts='hold(0.1, 3) | exponential(gamma=0.8) | step(every=2, gamma=0.1)', milestones=[3, 6])",
        both([0.005] * 3 + [0.05, 0.04, 0.032] + [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]),
        12,
    ),
    "test_sequentiallr5": (
        "sequential(parts='ramp(0.1, 1.0, 5) + hold(0.1, 5) | hold(0.5, 5)', milestones=[5])",
        [[0.0005, 0.0014, 0.0023, 0.0032, 0.0041] + [0.025] * 5],
        10,
    ),
}


@pytest.mark.parametrize("case", sorted(SEQUENTIAL))
def test_torch_sequential(case):
    spec, targets, epochs = SEQUENTIAL[case]
    run(spec, targets, epochs)


def test_torch_sequentiallr_does_not_alias_lr_and_initial_lr():
    """A tensor LR of 2.0, ramped up then down: the LR stays a tensor and the base LR is not moved."""
    lr = torch.tensor(2.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    ctl = lrcontrol.control(opt, "sequential(parts='ramp(0.1, 0.8, 4) | ramp(0.8, 0.1, 4)', milestones=[4])")
    seen = []
    for _ in range(8):
        seen.append(_read(ctl)[0])
        assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
        ctl.step()
    _assert_close(seen, [0.2, 0.55, 0.9, 1.25, 1.6, 1.25, 0.9, 0.55], "does_not_alias")
    assert ctl.base_lrs == [2.0]


def test_torch_sequentiallr4_initial_lr_is_untouched():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    lrcontrol.control(opt, "sequential(parts='constant() | constant(scale=0.1)', milestones=[10])")
    assert opt.param_groups[0]["lr"] == 0.1


# -- ReduceLROnPlateau ----------------------------------------------------------------------------
def run_plateau(spec: str, targets, metrics, epochs) -> None:
    opt = _optimizer(lrs=(0.5, 0.5), tensor_second=False)  # torch's tests set the float 0.5
    ctl = lrcontrol.control(opt, spec)
    seen = [[] for _ in targets]
    for epoch in range(epochs):
        ctl.report(val_loss=metrics[epoch])
        for g, lr in enumerate(_read(ctl)[: len(targets)]):
            seen[g].append(lr)
    for g, target in enumerate(targets):
        _assert_close(seen[g], target[:epochs], f"{spec} group {g}")


TORCH_PLATEAU = "eps=1e-8, floor=1e-12"  # torch's eps, and no floor above its min_lr = 0 in these runs
PLATEAU = {
    "test_reduce_lr_on_plateau1": (
        "threshold_mode='abs', threshold=0.01, patience=5, cooldown=5",
        [[0.5] * 20],
        [10 - i * 0.0167 for i in range(20)],
        10,
    ),
    "test_reduce_lr_on_plateau2": (
        "threshold_mode='abs', threshold=0.1, patience=5, cooldown=0",
        [[0.5] * 6 + [0.05] * 7 + [0.005] * 7 + [0.0005] * 2],
        [10 - i * 0.0165 for i in range(22)],
        22,
    ),
    "test_reduce_lr_on_plateau3": (
        "mode='max', patience=5, cooldown=5, threshold_mode='abs'",
        [[0.5] * 8 + [0.05] * 11 + [0.005] * 4],
        [-0.8] * 2 + [-0.234] * 20,
        22,
    ),
    "test_reduce_lr_on_plateau4": (
        "mode='max', patience=3, threshold_mode='rel', threshold=0.1",
        [[0.5] * 20],
        [1.5 * (1.025**i) for i in range(20)],
        20,
    ),
    "test_reduce_lr_on_plateau5": (
        "mode='max', threshold_mode='rel', threshold=0.1, patience=5, cooldown=5",
        [[0.5] * 6 + [0.05] * 11 + [0.005] * 4],
        [1.5 * (1.005**i) for i in range(20)],
        20,
    ),
    "test_reduce_lr_on_plateau6": (
        "threshold_mode='rel', threshold=0.1",
        [[0.5] * 20],
        [1.5 * (0.85**i) for i in range(20)],
        20,
    ),
    "test_reduce_lr_on_plateau7": (
        "threshold_mode='rel', threshold=0.1, patience=5, cooldown=5",
        [[0.5] * 6 + [0.05] * 11 + [0.005] * 4],
        [1] * 7 + [0.6] + [0.5] * 12,
        20,
    ),
    "test_reduce_lr_on_plateau8": (
        "mode='max', threshold_mode='rel', floor_lr=[0.4, 0.3], threshold=0.1, patience=5, cooldown=5",
        [[0.5] * 6 + [0.4] * 14, [0.5] * 6 + [0.3] * 14],
        [1.5 * (1.005**i) for i in range(20)],
        20,
    ),
}


@pytest.mark.parametrize("case", sorted(PLATEAU))
def test_torch_plateau(case):
    args, targets, metrics, epochs = PLATEAU[case]
    run_plateau(f"plateau({args}, {TORCH_PLATEAU})", targets, metrics, epochs)


def test_torch_plateau_get_last_lr_before_step_and_lr_type():
    opt = _optimizer(lrs=(0.5, 0.5))
    types = [type(g["lr"]) for g in opt.param_groups]
    ctl = lrcontrol.control(opt, "plateau(patience=0)")
    assert ctl.get_last_lr() == [0.5, 0.5]
    ctl.report(val_loss=1.0)
    ctl.report(val_loss=2.0)  # a cut
    assert [type(g["lr"]) for g in opt.param_groups] == types
    assert _lrs(opt) == pytest.approx([0.05, 0.05], rel=1e-6)


def test_plateau_eps_skips_a_cut_smaller_than_eps():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-8)
    ctl = lrcontrol.control(opt, "plateau(patience=0, gamma=0.5, eps=1e-8)")
    for v in (1.0, 2.0, 3.0):
        ctl.report(val_loss=v)
    assert ctl.lrs == [1e-8]  # halving would change it by 5e-9 ≤ eps: skipped, as torch does
    assert ctl.factors[0].cuts == 2


def test_plateau_relative_threshold_on_negative_metrics_is_a_deliberate_difference():
    """torch (rel, min) counts a value below best·(1 − th) as better: for a negative best that is a slightly
    *worse* value. lrcontrol asks for best − |best|·th, so it cuts; torch does not."""
    metrics = [-1.0, -0.95, -0.95, -0.95]
    p = torch.nn.Parameter(torch.zeros(1))
    torch_opt = torch.optim.SGD([p], lr=1.0)
    torch_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, threshold=0.1, patience=1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ctl = lrcontrol.control(opt, "plateau(threshold=0.1, patience=1)")
    for m in metrics:
        torch_sched.step(m)
        ctl.report(val_loss=m)
    assert torch_opt.param_groups[0]["lr"] == 1.0  # torch: -0.95 < -1·0.9 is "better": no cut
    assert ctl.lrs == [pytest.approx(0.1)]  # lrcontrol: -0.95 is worse than -1: a cut


# -- CyclicLR, OneCycleLR (LR only: lrcontrol does not cycle momentum, see docs/edges.md) -------------
TRI = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3]
TRI2 = [1, 2, 3, 4, 5, 4, 3, 2, 1, 1.5, 2.0, 2.5, 3.0, 2.5, 2.0, 1.5, 1, 1.25, 1.50, 1.75, 2.00, 1.75]
XS = [0, 0.25, 0.5, 0.75, 1, 0.75, 0.50, 0.25, 0, 0.25, 0.5, 0.75, 1]
TRI_UD = [1.0, 2.0, 3.0, 4.0, 5.0, 13.0 / 3, 11.0 / 3, 9.0 / 3, 7.0 / 3, 5.0 / 3, 1.0]
TRI2_UD = [
    1.0,
    3.0,
    5.0,
    13.0 / 3,
    11.0 / 3,
    9.0 / 3,
    7.0 / 3,
    5.0 / 3,
    1.0,
    2.0,
    3.0,
    8.0 / 3,
    7.0 / 3,
    6.0 / 3,
    5.0 / 3,
    4.0 / 3,
    1.0,
    3.0 / 2,
    2.0,
    11.0 / 6,
    10.0 / 6,
    9.0 / 6,
    8.0 / 6,
    7.0 / 6,
]
XS_UD = [0.0, 0.5, 1.0, 5.0 / 6, 4.0 / 6, 3.0 / 6, 2.0 / 6, 1.0 / 6, 0.0, 0.5, 1.0, 5.0 / 6, 4.0 / 6]


def _exp_range(base, top, xs):
    return [base + x * (top - base) * 0.9**i for i, x in enumerate(xs)]


CYCLIC = {
    "test_cycle_lr_triangular_mode_one_lr": ("cyclic(half_period=4, min_lr=[1.0])", (5, 5), [TRI, TRI]),
    "test_cycle_lr_triangular_mode_one_lr_no_momentum": ("cyclic(half_period=4, min_lr=[1.0])", (5, 5), [TRI, TRI]),
    "test_cycle_lr_with_momentumless_optimizer": ("cyclic(half_period=4, min_lr=[1.0])", (5, 5), [TRI, TRI]),
    "test_cycle_lr_triangular2_mode_one_lr": (
        "cyclic(half_period=4, min_lr=[1.0], mode='triangular2')",
        (5, 5),
        [TRI2, TRI2],
    ),
    "test_cycle_lr_exp_range_mode_one_lr": (
        "cyclic(half_period=4, min_lr=[1.0], mode='exp_range', gamma=0.9)",
        (5, 5),
        [_exp_range(1, 5, XS), _exp_range(1, 5, XS)],
    ),
    "test_cycle_lr_triangular_mode": ("cyclic(half_period=4, min_lr=[1.0, 2.0])", (5, 6), [TRI, [x + 1 for x in TRI]]),
    "test_cycle_lr_triangular2_mode": (
        "cyclic(half_period=4, min_lr=[1.0, 3.0], mode='triangular2')",
        (5, 7),
        [TRI2, [x + 2 for x in TRI2]],
    ),
    "test_cycle_lr_exp_range_mode": (
        "cyclic(half_period=4, min_lr=[1.0, 5.0], mode='exp_range', gamma=0.9)",
        (5, 12),
        [_exp_range(1, 5, XS), _exp_range(5, 12, XS)],
    ),
    "test_cycle_lr_triangular_mode_step_size_up_down": (
        "cyclic(half_period=4, down=6, min_lr=[1.0])",
        (5, 5),
        [TRI_UD, TRI_UD],
    ),
    "test_cycle_lr_triangular2_mode_step_size_up_down": (
        "cyclic(half_period=2, down=6, min_lr=[1.0, 3.0], mode='triangular2')",
        (5, 7),
        [TRI2_UD, [x + 2 for x in TRI2_UD]],
    ),
    "test_cycle_lr_exp_range_mode_step_size_up_down": (
        "cyclic(half_period=2, down=6, min_lr=[1.0], mode='exp_range', gamma=0.9)",
        (5, 5),
        [_exp_range(1, 5, XS_UD), _exp_range(1, 5, XS_UD)],
    ),
}


def _annealing_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


ONECYCLE_COS = [1, 13, 25] + [_annealing_cos(25, 0.5, k / 7.0) for k in range(1, 7)] + [0.5]
ONECYCLE = {
    "test_onecycle_lr_linear_annealing": (
        "onecycle(final_div=2, anneal='linear', steps=10)",
        (25, 25),
        [[1, 13, 25, 21.5, 18, 14.5, 11, 7.5, 4, 0.5]] * 2,
    ),
    "test_cycle_lr_with_adam": (
        "onecycle(final_div=2, anneal='linear', steps=10)",
        (25, 25),
        [[1, 13, 25, 21.5, 18, 14.5, 11, 7.5, 4, 0.5]] * 2,
    ),
    "test_onecycle_lr_linear_annealing_three_phases": (
        "onecycle(div=25, rise=0.4, final_div=4, anneal='linear', three_phase=True, steps=10)",
        (25, 25),
        [[1, 9, 17, 25, 17, 9, 1, 0.75, 0.5, 0.25]] * 2,
    ),
    "test_onecycle_lr_cosine_annealing": ("onecycle(final_div=2, steps=10)", (25, 25), [ONECYCLE_COS] * 2),
    "test_onecycle_lr_legacy_state_dict": ("onecycle(final_div=2, steps=10)", (25, 25), [ONECYCLE_COS] * 2),
}


@pytest.mark.parametrize("case", sorted({**CYCLIC, **ONECYCLE}))
def test_torch_cyclic_and_onecycle(case):
    spec, top, targets = {**CYCLIC, **ONECYCLE}[case]
    run(spec, targets, len(targets[0]), lrs=top, tensor_second=False)


# -- CosineAnnealingWarmRestarts ----------------------------------------------------------------------
def _restarts(t_cur: float, t_i: float, base: float) -> float:
    return 1e-10 + (base - 1e-10) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


@pytest.mark.parametrize("mult", [1, 2, 4])
def test_torch_cosine_annealing_warm_restarts_lr1(mult):
    targets, t_i, t_cur = [[0.05], [0.5]], 10, 0
    for _ in range(1, 100):
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, mult * t_i
        targets[0].append(_restarts(t_cur, t_i, 0.05))
        targets[1].append(_restarts(t_cur, t_i, 0.5))
    run(f"sgdr(period=10, mult={mult}, min_lr=[1e-10])", targets, 100)


@pytest.mark.parametrize(
    "mult, epochs, t_curs, t_is",
    [
        (1, [0, 1, 2, 3, 4, 5, 12, 27, 3, 4, 5, 6, 13], [1, 2, 3, 4, 5, 2, 7, 3, 4, 5, 6, 3], [10] * 12),
        (
            2,
            [0, 1, 2, 3, 4, 5, 25, 32, 33, 34, 80, 81, 3],
            [1, 2, 3, 4, 5, 15, 2, 3, 4, 10, 11, 3],
            [10, 10, 10, 10, 10, 20, 40, 40, 40, 80, 80, 10],
        ),
    ],
)
def test_torch_cosine_annealing_warm_restarts_lr3_integer_epochs(mult, epochs, t_curs, t_is):
    """torch's interleaved step(epoch) case; its third run (T_mult=3) uses fractional epochs (docs/edges.md)."""
    opt = _optimizer()
    ctl = lrcontrol.control(opt, f"sgdr(period=10, mult={mult}, min_lr=[1e-10])")
    targets = [
        [0.05] + [_restarts(c, i, 0.05) for c, i in zip(t_curs, t_is)],
        [0.5] + [_restarts(c, i, 0.5) for c, i in zip(t_curs, t_is)],
    ]
    for k, epoch in enumerate(epochs):
        ctl.step(epoch)
        _assert_close(_read(ctl), [targets[0][k], targets[1][k]], f"epoch {epoch}")


# -- LambdaLR / MultiplicativeLR: a Factor subclass is the way to a per-group formula -----------------
class PerGroupExponential(Factor):
    """m_g(t) = gamma_g ** t (a user's own factor; torch writes it as lr_lambda per group)."""

    name = "per_group_exponential"

    def __init__(self, gammas):
        super().__init__()
        self.gammas = gammas

    def multiplier(self, t):
        return [g**t for g in self.gammas]


@pytest.mark.parametrize("case", ["test_lambda_lr", "test_multiplicative_lr"])
def test_torch_lambda_and_multiplicative(case):
    opt = _optimizer(lrs=(0.05, 0.4), tensor_second=False)  # torch's test sets the float 0.4
    ctl = lrcontrol.LRController(opt, [PerGroupExponential([0.9, 0.8])])
    seen = [[], []]
    for _ in range(10):
        for g, lr in enumerate(_lrs(opt)):
            seen[g].append(lr)
        ctl.step()
    _assert_close(seen[0], [0.05 * 0.9**x for x in range(10)], case)
    _assert_close(seen[1], [0.4 * 0.8**x for x in range(10)], case)


# -- Hugging Face's schedules (test_schedulers): base LR 10, num_warmup_steps 2, num_training_steps 10 -----
HF = {
    "get_constant_schedule": ("constant()", {}, [10.0] * 10),
    "get_constant_schedule_with_warmup": (
        "hf_warmup(4)",
        {"num_warmup_steps": 4},
        [0.0, 2.5, 5.0, 7.5, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
    ),
    "get_linear_schedule_with_warmup": (
        "hf_linear(2, 10)",
        {"num_warmup_steps": 2, "num_training_steps": 10},
        [0.0, 5.0, 10.0, 8.75, 7.5, 6.25, 5.0, 3.75, 2.5, 1.25],
    ),
    "get_cosine_schedule_with_warmup": (
        "hf_cosine(2, 10)",
        {"num_warmup_steps": 2, "num_training_steps": 10},
        [0.0, 5.0, 10.0, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38],
    ),
    "get_cosine_with_hard_restarts_schedule_with_warmup": (
        "hf_cosine_restarts(2, 10, cycles=2)",
        {"num_warmup_steps": 2, "num_training_steps": 10, "num_cycles": 2},
        [0.0, 5.0, 10.0, 8.53, 5.0, 1.46, 10.0, 8.53, 5.0, 1.46],
    ),
    "get_polynomial_decay_schedule_with_warmup": (
        "hf_polynomial(2, 10, power=2.0, end_lr=1e-7)",
        {"num_warmup_steps": 2, "num_training_steps": 10, "power": 2.0, "lr_end": 1e-7},
        [0.0, 5.0, 10.0, 7.656, 5.625, 3.906, 2.5, 1.406, 0.625, 0.156],
    ),
    "get_inverse_sqrt_schedule": (
        "hf_invsqrt(2)",
        {"num_warmup_steps": 2},
        [0.0, 5.0, 10.0, 8.165, 7.071, 6.325, 5.774, 5.345, 5.0, 4.714],
    ),
}


def _walk(ctl, steps):
    out = []
    for _ in range(steps):
        out.append(ctl.get_lr()[0])
        ctl.step()
    return out


@pytest.mark.parametrize("case", sorted(HF))
def test_hugging_face_schedules(case, tmp_path):
    spec, kwargs, expected = HF[case]
    opt = torch.optim.AdamW(torch.nn.Linear(50, 50).parameters(), lr=10.0)
    ctl = lrcontrol.control(opt, spec)
    lrs = _walk(ctl, 10)
    # Hugging Face's literals are rounded (its test compares with a tolerance of 1e-2).
    assert all(abs(a - b) <= 1e-2 for a, b in zip(lrs, expected)) and len(lrs) == len(expected)
    # Saved and reloaded halfway through (torch.save / torch.load), the walk is the same.
    ctl = lrcontrol.control(torch.optim.AdamW(torch.nn.Linear(50, 50).parameters(), lr=10.0), spec)
    again = []
    for step in range(10):
        again.append(ctl.get_lr()[0])
        ctl.step()
        if step == 5:
            torch.save(ctl.state_dict(), tmp_path / "schedule.bin")
            ctl.load_state_dict(torch.load(tmp_path / "schedule.bin", weights_only=True))
    assert again == lrs
    # And against transformers' own function, exactly, where it is installed.
    transformers = pytest.importorskip("transformers")
    theirs = getattr(transformers, case)(torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=10.0), **kwargs)
    reference = []
    for _ in range(10):
        reference.append(theirs.get_last_lr()[0])
        theirs.optimizer.step()
        theirs.step()
    _assert_close(lrs, reference, case)


@pytest.mark.parametrize(
    "spec, function, kwargs",
    [
        (
            "hf_wsd(3, decay=4, steps=12)",
            "get_wsd_schedule",
            {"num_warmup_steps": 3, "num_decay_steps": 4, "num_training_steps": 12},
        ),
        (
            "hf_wsd(2, decay=5, stable=3, min_ratio=0.1, warmup_shape='cosine', decay_shape='1-sqrt')",
            "get_wsd_schedule",
            {
                "num_warmup_steps": 2,
                "num_decay_steps": 5,
                "num_stable_steps": 3,
                "min_lr_ratio": 0.1,
                "warmup_type": "cosine",
                "decay_type": "1-sqrt",
            },
        ),
        (
            "hf_wsd(2, decay=6, steps=12, decay_shape='linear')",
            "get_wsd_schedule",
            {"num_warmup_steps": 2, "num_decay_steps": 6, "num_training_steps": 12, "decay_type": "linear"},
        ),
        (
            "hf_cosine(3, 12, min_rate=0.2)",
            "get_cosine_with_min_lr_schedule_with_warmup",
            {"num_warmup_steps": 3, "num_training_steps": 12, "min_lr_rate": 0.2},
        ),
        (
            "hf_cosine(0, 8, cycles=1.5)",
            "get_cosine_schedule_with_warmup",
            {"num_warmup_steps": 0, "num_training_steps": 8, "num_cycles": 1.5},
        ),
        ("hf_invsqrt(3, timescale=7)", "get_inverse_sqrt_schedule", {"num_warmup_steps": 3, "timescale": 7}),
        ("hf_linear(3, 8)", "get_linear_schedule_with_warmup", {"num_warmup_steps": 3, "num_training_steps": 8}),
    ],
)
def test_hugging_face_options_match_transformers_past_the_end(spec, function, kwargs):
    """Options the test file above does not use, 16 steps (past T where there is one), against transformers."""
    transformers = pytest.importorskip("transformers")
    ctl = lrcontrol.control(torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=3.0), spec, total_steps=12)
    theirs = getattr(transformers, function)(torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=3.0), **kwargs)
    ours, reference = [], []
    for _ in range(16):
        ours.append(ctl.get_lr()[0])
        reference.append(theirs.get_last_lr()[0])
        ctl.step()
        theirs.optimizer.step()
        theirs.step()
    _assert_close(ours, reference, spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("sequential(parts='hold(0.1, 3) | exponential(0.9)', milestones=[3, 5])", "need 1 strictly increasing"),
        ("sequential(parts='hold(0.1, 3) | plateau()', milestones=[3])", "parts must be schedules"),
        ("sequential(parts='sgd(lr=0.1) | cosine()', milestones=[3])", "names an optimizer"),
        ("cosine(min_lr=[0.1, 0.2, 0.3])", "3 values for 2 param groups"),
    ],
)
def test_bad_peer_style_specs_say_what_to_fix(spec, message):
    with pytest.raises(lrcontrol.LRControlError, match=message):
        lrcontrol.control(_optimizer(), spec, total_steps=10)


def test_a_sequential_resumes_exactly():
    spec = "sequential(parts='ramp(0.1, 1.0, 4) | cosine(steps=6)', milestones=[4])"
    ctl = lrcontrol.control(_optimizer(), spec)
    for _ in range(5):
        ctl.step()
    state = ctl.state_dict()
    resumed = lrcontrol.control(_optimizer(), spec)
    resumed.load_state_dict(state)
    for _ in range(4):
        assert resumed.lrs == ctl.lrs
        ctl.step()
        resumed.step()
