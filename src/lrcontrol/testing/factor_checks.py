"""The checks every factor passes, those chosen by its kind, and the entry points that run them
(`check_factor`, `parametrize_with_checks`); the package docstring lists what each check asks."""

from __future__ import annotations

import copy
import io
import math
import pickle
import random
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

from lrcontrol.control.accounting import LRControlWarning
from lrcontrol.control.base import Factor
from lrcontrol.testing.harness import (
    DEFAULT_OPTIMIZER,
    STEPS,
    Case,
    batch_at,
    load_state,
    make_rig,
    parameters_of,
    train,
)

# -- the checks every factor passes ------------------------------------------------------------------


def check_resume_exact(case: Case) -> None:
    """Saved at an early and at a late step, a resumed run gives the same LRs and parameters bit for bit."""
    rng = random.Random(case.name)
    for save_at in (rng.randint(1, STEPS // 4), rng.randint(STEPS // 2, STEPS - 1)):
        rig = make_rig(case)
        lrs_full, saved = train(rig, 0, STEPS, save_at=save_at)
        resumed = make_rig(case, seed=7)  # another init: everything must come from the state
        assert saved is not None
        load_state(resumed, saved)
        assert resumed.controller.lrs == lrs_full[save_at - 1], f"{case}: the LR right after loading differs"
        lrs_resumed, _ = train(resumed, save_at, STEPS)
        assert lrs_resumed == lrs_full[save_at:], f"{case}: resumed after step {save_at}, the LRs differ"
        for a, b in zip(parameters_of(rig), parameters_of(resumed)):
            assert torch.equal(a, b), f"{case}: resumed after step {save_at}, the parameters differ"


def check_param_groups(case: Case) -> None:
    """Each param group keeps its own base LR; its LR is base × the product of the factors."""
    rig = make_rig(case)
    base = list(rig.controller.base_lrs)
    assert len(base) == 2 and len(rig.controller.lrs) == 2
    train(rig, 0, STEPS)
    for group, lr, b, m in zip(
        rig.optimizer.param_groups, rig.controller.lrs, rig.controller.base_lrs, rig.controller.multipliers
    ):
        assert group["lr"] == lr, f"{case}: the optimizer's LR is not the controller's"
        assert math.isclose(lr, b * m, rel_tol=1e-12), f"{case}: LR {lr} is not base {b} × multiplier {m}"
    if all(len(set(m)) == 1 for _, m in rig.controller.factor_multipliers()):
        lr0, lr1 = rig.controller.lrs
        b0, b1 = rig.controller.base_lrs
        assert math.isclose(lr0 / lr1, b0 / b1, rel_tol=1e-9), f"{case}: a scalar factor changed the groups' ratio"


def check_non_finite_input(case: Case) -> None:
    """NaN/inf losses, metrics and gradients never give a non-finite, zero or negative LR."""
    with warnings.catch_warnings():  # one step past total_steps, on purpose
        warnings.simplefilter("ignore", LRControlWarning)
        _non_finite_input(case)


def _non_finite_input(case: Case) -> None:
    rig = make_rig(case)
    lrs, _ = train(rig, 0, STEPS, poison=True)
    bx, by = batch_at(rig, 0)
    loss = torch.nn.functional.cross_entropy(rig.model(bx), by) * math.nan
    rig.optimizer.zero_grad()
    loss.backward()
    rig.optimizer.step()
    rig.controller.step(loss)
    rig.controller.report(val_loss=math.inf, val_acc=math.nan)
    lrs.append(rig.controller.lrs)
    for t, step_lrs in enumerate(lrs):
        for lr in step_lrs:
            assert math.isfinite(lr) and lr > 0, f"{case}: LR {lr!r} after step {t}"


def check_deterministic(case: Case) -> None:
    """The same seed gives the same LRs and parameters."""
    a, b = make_rig(case), make_rig(case)
    assert train(a, 0, STEPS)[0] == train(b, 0, STEPS)[0], f"{case}: two runs with one seed have different LRs"
    for pa, pb in zip(parameters_of(a), parameters_of(b)):
        assert torch.equal(pa, pb), f"{case}: two runs with one seed end with different parameters"


def check_state_pickles(case: Case) -> None:
    """The state survives pickle, deepcopy and torch.save/torch.load(weights_only=True)."""
    rig = make_rig(case)
    train(rig, 0, STEPS // 2)
    state = rig.controller.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    copies = (
        pickle.loads(pickle.dumps(state)),
        copy.deepcopy(state),
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True),
    )
    for restored in copies:
        other = make_rig(case)
        other.controller.load_state_dict(restored)
        assert other.controller.lrs == rig.controller.lrs, f"{case}: a copied state gives other LRs"
        assert other.controller.t == rig.controller.t


# -- the checks by kind -------------------------------------------------------------------------------


def check_schedule_depends_on_step_alone(case: Case) -> None:
    """A schedule's LR is a function of the step: other losses, metrics and gradients change nothing."""
    plain, poisoned = make_rig(case), make_rig(case, seed=3)
    lrs_plain, _ = train(plain, 0, STEPS)
    lrs_poisoned, _ = train(poisoned, 0, STEPS, poison=True, wobble=1.0)
    assert lrs_plain == lrs_poisoned, f"{case}: a schedule's LRs depend on the losses or the parameters"
    factor = plain.controller.factors[-1]
    assert factor.multiplier(5) == factor.multiplier(5), f"{case}: multiplier(t) is not a function of t"


def check_reactive_moves_only_at_evaluations(case: Case) -> None:
    """A reactive rule's LR changes only at report() or, with monitor='loss' and every=k, every k steps."""
    rig = make_rig(case)
    factor = rig.controller.factors[-1]
    every = int(factor.config.get("every") or 0) if factor.config.get("monitor") == "loss" else 0
    previous = rig.controller.lrs
    for t in range(STEPS):
        bx, by = batch_at(rig, t)
        loss = torch.nn.functional.cross_entropy(rig.model(bx), by)
        rig.optimizer.zero_grad()
        loss.backward()
        rig.optimizer.step()
        rig.controller.step(loss.item() * (1.0 + 0.5 * (t % 3)))
        if rig.controller.lrs != previous:
            assert every and (t + 1) % every == 0, f"{case}: the LR moved at step {t} without an evaluation"
        previous = rig.controller.lrs


def check_online_idle_without_optimizer_step(case: Case) -> None:
    """An online rule adapts from steps taken: controller.step(loss) alone leaves the LR where it is."""
    rig = make_rig(case)
    train(rig, 0, STEPS // 4)
    before = rig.controller.lrs
    with warnings.catch_warnings():  # controller.step() without optimizer.step(), on purpose
        warnings.simplefilter("ignore", LRControlWarning)
        for _ in range(5):
            rig.controller.step(1.0)
    assert rig.controller.lrs == before, f"{case}: the LR moved without an optimizer step"


COMMON_CHECKS = (
    check_resume_exact,
    check_param_groups,
    check_non_finite_input,
    check_deterministic,
    check_state_pickles,
)
KIND_CHECKS = {
    "schedule": (check_schedule_depends_on_step_alone,),
    "reactive": (check_reactive_moves_only_at_evaluations,),
    "online": (check_online_idle_without_optimizer_step,),
}


def _as_case(factor: str | Callable[[], Factor] | Case, optimizer: str | None) -> Case:
    if isinstance(factor, Case):
        return factor
    return Case(factor, optimizer or DEFAULT_OPTIMIZER)


def checks_for(factor: str | Callable[[], Factor] | Case) -> list[Callable[[Case], None]]:
    """The checks that apply to a factor: the common ones and those of its kind."""
    return [*COMMON_CHECKS, *KIND_CHECKS.get(_as_case(factor, None).kind, ())]


def run_check(check: Callable[[Case], None], case: Case) -> None:
    try:
        check(case)
    except AssertionError as exc:
        raise AssertionError(f"{check.__name__} failed: {exc}") from exc
    except Exception as exc:  # a crash inside a check is a failed check, named as such
        raise AssertionError(f"{check.__name__} failed for {case}: {type(exc).__name__}: {exc}") from exc


def check_factor(factor: str | Callable[[], Factor] | Case, optimizer: str | None = None) -> None:
    """Run every check that applies to `factor`; raise AssertionError naming the first that fails."""
    case = _as_case(factor, optimizer)
    for check in checks_for(case):
        run_check(check, case)


def parametrize_with_checks(factors: Iterable[str | Callable[[], Factor] | Case], optimizer: str | None = None) -> Any:
    """A `pytest.mark.parametrize("case, check", …)` over every (factor, applicable check) pair."""
    import pytest

    params = []
    for factor in factors:
        case = _as_case(factor, optimizer)
        for check in checks_for(case):
            params.append(pytest.param(case, as_test(check), id=f"{case}-{check.__name__}"))
    return pytest.mark.parametrize("case, check", params)


def as_test(check: Callable[[Case], None]) -> Callable[[Case], None]:
    def run(case: Case) -> None:
        run_check(check, case)

    run.__name__ = check.__name__
    return run
