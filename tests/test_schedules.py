"""Schedules: LRs equal torch's own schedulers over whole runs, plus properties and edge cases."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrcontrol
from lrcontrol.errors import HorizonError

BASE = 0.1
T = 120


def ours(spec: str, steps: int = T, total: int | None = T) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=BASE)
    ctrl = lrcontrol.control(opt, spec, total_steps=total)
    lrs = []
    for _ in range(steps):
        lrs.append(ctrl.lrs[0])
        opt.step()
        ctrl.step()
    return lrs


def theirs(make, steps: int = T) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=BASE)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


S = torch.optim.lr_scheduler
EQUIVALENT = {
    "step(every=17, gamma=0.5)": lambda o: S.StepLR(o, step_size=17, gamma=0.5),
    "multistep(milestones=[10, 50, 90], gamma=0.3)": lambda o: S.MultiStepLR(o, [10, 50, 90], gamma=0.3),
    "exponential(gamma=0.97)": lambda o: S.ExponentialLR(o, gamma=0.97),
    "polynomial(power=2.0)": lambda o: S.PolynomialLR(o, total_iters=T, power=2.0),
    "linear(min_scale=0.1)": lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=T),
    "cosine(min_scale=0.01)": lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=BASE * 0.01),
    "sgdr(period=10, mult=2, min_scale=0.05)": lambda o: S.CosineAnnealingWarmRestarts(o, 10, 2, eta_min=BASE * 0.05),
    "sgdr(period=25)": lambda o: S.CosineAnnealingWarmRestarts(o, 25),
    "cyclic(half_period=15, low=0.2)": lambda o: S.CyclicLR(o, BASE * 0.2, BASE, step_size_up=15, cycle_momentum=False),
    'cyclic(half_period=15, low=0.2, mode="triangular2")': lambda o: S.CyclicLR(
        o, BASE * 0.2, BASE, step_size_up=15, mode="triangular2", cycle_momentum=False
    ),
    'cyclic(half_period=15, low=0.2, mode="exp_range", gamma=0.99)': lambda o: S.CyclicLR(
        o, BASE * 0.2, BASE, step_size_up=15, mode="exp_range", gamma=0.99, cycle_momentum=False
    ),
    "onecycle()": lambda o: S.OneCycleLR(o, max_lr=BASE, total_steps=T, cycle_momentum=False),
    'onecycle(rise=0.25, div=10.0, final_div=100.0, anneal="linear")': lambda o: S.OneCycleLR(
        o,
        BASE,
        total_steps=T,
        pct_start=0.25,
        div_factor=10,
        final_div_factor=100,
        anneal_strategy="linear",
        cycle_momentum=False,
    ),
    "warmup(20)": lambda o: S.LinearLR(o, start_factor=1 / 20, end_factor=1.0, total_iters=19),
}


@pytest.mark.parametrize("spec", list(EQUIVALENT), ids=list(EQUIVALENT))
def test_lrs_equal_torch_schedulers_over_the_whole_run(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about CyclicLR's scale_fn pickling
        expected = theirs(EQUIVALENT[spec])
    got = ours(spec)
    # torch computes several schedulers recursively (lr_t from lr_{t-1}), we in closed form: equal
    # up to accumulated rounding, which stays far below anything a changed formula would produce.
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_changing_a_formula_breaks_equivalence():
    """Guard that the comparison above is sharp: a slightly different cosine does not pass."""
    expected = theirs(lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.0))
    assert ours("cosine(steps=121)") != pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_plateau_equals_torch_reduce_on_plateau():
    metrics = [1.0, 0.9, 0.9, 0.91, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.81, 0.82, 0.83, math.nan, 0.84]
    for kwargs, torch_kwargs in [
        ("patience=1", dict(patience=1)),
        ("patience=2, cooldown=1, gamma=0.5", dict(patience=2, cooldown=1, factor=0.5)),
        ('patience=0, threshold=0.05, threshold_mode="abs"', dict(patience=0, threshold=0.05, threshold_mode="abs")),
    ]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        ctrl = lrcontrol.control(opt, f"plateau({kwargs}, floor=1e-4)")
        topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        tsched = S.ReduceLROnPlateau(topt, min_lr=1e-4, **torch_kwargs)
        for m in metrics:
            ctrl.report(val_loss=m)
            tsched.step(m)
            assert ctrl.lrs[0] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12), kwargs


def test_plateau_composes_with_a_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ctrl = lrcontrol.control(opt, "cosine() + plateau(patience=0, gamma=0.5)", total_steps=10)
    for t in range(10):
        opt.step()
        ctrl.step()
        ctrl.report(val_loss=1.0)  # never improves after the first: one cut per evaluation
        cos = (1 + math.cos(math.pi * min(t + 1, 9) / 10)) / 2  # held past the horizon
        assert ctrl.lrs[0] == pytest.approx(cos * 0.5 ** (t), rel=1e-12)


# -- properties ----------------------------------------------------------------------------------

HORIZON_SCHEDULES = [
    "cosine()",
    "cosine(min_scale=0.1)",
    "linear()",
    "polynomial(power=3.0)",
    "polynomial(power=0.5, min_scale=0.2)",
    "onecycle()",
    'wsd(warmup=0.1, decay=0.3, shape="sqrt")',
    'wsd(decay=0.5, shape="cosine")',
    "wsd()",
]
ALL_SCHEDULES = HORIZON_SCHEDULES + [
    "warmup(0.3)",
    "exp_warmup(0.3)",
    "invsqrt(0.1)",
    "step(every=0.2)",
    "exponential(gamma=0.99)",
    "sgdr(period=0.25, mult=2)",
    "cyclic(half_period=0.1)",
    "constant(scale=0.5)",
]


def _values(spec: str, total: int, extra: int = 0) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctrl = lrcontrol.control(opt, spec, total_steps=total)
    out = []
    for _ in range(total + extra):
        out.append(ctrl.lrs[0])
        ctrl.step()
    return out


@settings(max_examples=40, deadline=None)
@given(spec=st.sampled_from(ALL_SCHEDULES), total=st.integers(1, 400))
def test_schedules_stay_in_bounds_for_any_budget(spec, total):
    for v in _values(spec, total, extra=5):
        assert math.isfinite(v) and 0.0 < v <= 1.0 + 1e-12


@settings(max_examples=40, deadline=None)
@given(spec=st.sampled_from(HORIZON_SCHEDULES), total=st.integers(1, 400), extra=st.integers(1, 50))
def test_past_the_horizon_the_last_planned_value_is_held(spec, total, extra):
    values = _values(spec, total, extra)
    assert values[total:] == [values[total - 1]] * extra


@settings(max_examples=30, deadline=None)
@given(total=st.integers(2, 500), m=st.floats(0.0, 0.9))
def test_cosine_and_linear_decay_monotonically_and_continuously(total, m):
    for spec in (f"cosine(min_scale={m!r})", f"linear(min_scale={m!r})"):
        v = _values(spec, total)
        assert v[0] == 1.0
        assert all(a >= b for a, b in zip(v, v[1:]))
        # continuous: no jump larger than the steepest slope allows (π/2 per unit of progress)
        assert max(a - b for a, b in zip(v, v[1:])) <= (math.pi / 2) * (1 - m) / total + 1e-12
        assert v[-1] >= m


@settings(max_examples=30, deadline=None)
@given(total=st.integers(3, 500), w=st.floats(0.01, 1.0))
def test_warmup_rises_monotonically_to_one(total, w):
    v = _values(f"warmup({w!r})", total)
    assert all(a <= b for a, b in zip(v, v[1:]))
    assert v[-1] == 1.0 or round(w * total) > total
    length = max(1, round(w * total))
    assert v[min(length, total) - 1] == 1.0


@settings(max_examples=30, deadline=None)
@given(total=st.integers(10, 500), shape=st.sampled_from(["linear", "cosine", "sqrt"]))
def test_wsd_phases_are_monotone(total, shape):
    v = _values(f'wsd(warmup=0.1, decay=0.3, shape="{shape}")', total)
    w = max(1, round(0.1 * total))
    d = max(1, round(0.3 * total))
    assert all(a <= b for a, b in zip(v[:w], v[1:w]))
    assert all(x == 1.0 for x in v[w : total - d])
    assert all(a >= b for a, b in zip(v[total - d :], v[total - d + 1 :]))


@settings(max_examples=30, deadline=None)
@given(total=st.integers(1, 300))
def test_onecycle_peaks_at_the_base_lr(total):
    v = _values("onecycle()", total)
    assert max(v) <= 1.0 + 1e-12
    if total >= 10:
        assert max(v) == pytest.approx(1.0, rel=0.05)


# -- edges -----------------------------------------------------------------------------------------


def test_a_one_step_budget_runs_at_the_starting_value():
    assert _values("cosine()", 1) == [1.0]
    assert _values("linear()", 1) == [1.0]
    assert _values("warmup(10)", 1) == [1.0]  # clamped to the run


def test_warmup_longer_than_the_run_is_clamped_with_a_warning():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.warns(UserWarning, match="clamped"):
        ctrl = lrcontrol.control(opt, "warmup(50)", total_steps=10)
    values = []
    for _ in range(10):
        values.append(ctrl.lrs[0])
        ctrl.step()
    assert values == pytest.approx([(t + 1) / 10 for t in range(10)])


def test_fraction_horizon_without_total_steps_is_a_clear_error():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(HorizonError, match="total_steps"):
        lrcontrol.control(opt, "cosine()")
    ctrl = lrcontrol.control(opt, "cosine(steps=100) + warmup(10)")  # int horizons need no total
    assert ctrl.lrs[0] == pytest.approx(0.1)


def _run(spec, total, steps, state=None):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ctrl = lrcontrol.control(opt, spec, total_steps=total)
    if state is not None:
        ctrl.load_state_dict(state)
    out = []
    for _ in range(steps):
        out.append(ctrl.lrs[0])
        ctrl.step()
    return out, ctrl.state_dict()


def test_wsd_extends_its_horizon_without_touching_warmup_or_stable_phase():
    spec = "wsd(warmup=0.1, decay=0.2)"
    first, state = _run(spec, 100, 60)  # warmup 10 steps, stable until step 80
    rest, _ = _run(spec, 200, 140, state)  # resumed with the horizon doubled
    combined = first + rest
    assert combined[:10] == pytest.approx([(t + 1) / 10 for t in range(10)])  # warmup kept at 10, not 20
    assert all(v == 1.0 for v in combined[10:160])  # stable until the new cooldown at 200 − 40
    assert combined[160] == 1.0 and combined[161] < 1.0 and combined[-1] < combined[161]


def test_warmup_keeps_its_length_on_resume_with_another_horizon():
    first, state = _run("warmup(0.1)", 100, 5)
    rest, _ = _run("warmup(0.1)", 1000, 10, state)
    assert (first + rest)[:10] == pytest.approx([(t + 1) / 10 for t in range(10)])


def test_cosine_follows_the_new_horizon_on_resume():
    _, state = _run("cosine()", 100, 50)
    rest, _ = _run("cosine()", 200, 1, state)
    assert rest[0] == pytest.approx((1 + math.cos(math.pi * 50 / 200)) / 2)


def test_composition_is_the_product_of_the_factors():
    a = _values("warmup(10) + cosine()", 50)
    w = _values("warmup(10)", 50)
    c = _values("cosine()", 50)
    assert a == pytest.approx([x * y for x, y in zip(w, c)], rel=1e-15)


def test_each_group_keeps_its_base_lr_through_a_schedule():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.5}, {"params": [p2], "lr": 0.01}])
    ctrl = lrcontrol.control(opt, "cosine()", total_steps=10)
    for _ in range(5):
        ctrl.step()
    m = (1 + math.cos(math.pi * 5 / 10)) / 2
    assert ctrl.lrs == pytest.approx([0.5 * m, 0.01 * m])
    assert ctrl.get_last_lr() == ctrl.lrs and ctrl.last_epoch == 5
