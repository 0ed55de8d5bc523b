"""The optimizer checks: the optimizer's own state round trip, exact resume under a controller, and an
effective LR that is finite, positive and given per parameter group."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import torch

from lrcontrol.testing.factor_checks import as_test, check_resume_exact, run_check
from lrcontrol.testing.harness import STEPS, Case, make_rig, train

# -- optimizers ---------------------------------------------------------------------------------------


def _same_state(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if torch.equal(a, b):
            return True
        # NaN ≠ NaN: equal where both are NaN, bit-equal elsewhere
        return (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_optimizer_state_round_trip(case: Case) -> None:
    """optimizer.state_dict() through torch.save/torch.load(weights_only=True) into a fresh optimizer is the same state."""
    rig = make_rig(case)
    train(rig, 0, STEPS // 4)
    buffer = io.BytesIO()
    torch.save(rig.optimizer.state_dict(), buffer)
    other = make_rig(case, seed=5)
    other.optimizer.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert _same_state(rig.optimizer.state_dict(), other.optimizer.state_dict()), f"{case}: the state changed"
    mine, theirs = rig.controller.effective_lrs(), other.controller.effective_lrs()
    assert _same_state(mine, theirs), f"{case}: effective LRs {mine} became {theirs} after the round trip"


def check_optimizer_effective_lr(case: Case) -> None:
    """The effective LR is finite, positive and given for each param group after every step."""
    rig = make_rig(case)
    for t in range(STEPS // 2):
        train(rig, t, t + 1)
        effective = rig.controller.effective_lrs()
        assert len(effective) == len(rig.optimizer.param_groups), f"{case}: not one effective LR per group"
        for group, value in enumerate(effective):
            assert math.isfinite(value) and value > 0, f"{case}: effective LR {value!r} of group {group} at step {t}"
    if not case.one_lr:  # the groups were given different LRs: each must have its own step size
        assert effective[0] != effective[1], f"{case}: both param groups report the effective LR {effective[0]!r}"


OPTIMIZER_CHECKS = (check_optimizer_state_round_trip, check_resume_exact, check_optimizer_effective_lr)


def optimizer_case(spec: str, one_lr: bool = False) -> Case:
    """Check optimizer `spec` under a cosine schedule (the controller every resume goes through)."""
    return Case("cosine()", optimizer=spec, one_lr=one_lr)


def check_optimizer(spec: str, one_lr: bool = False) -> None:
    """Run every optimizer check on `spec` (e.g. "adamw(lr=1e-3)"); raise AssertionError on the first failure."""
    case = optimizer_case(spec, one_lr)
    for check in OPTIMIZER_CHECKS:
        run_check(check, case)


def parametrize_optimizer_checks(specs: Iterable[str | Case]) -> Any:
    """A `pytest.mark.parametrize("case, check", …)` over every (optimizer spec, optimizer check) pair."""
    import pytest

    params = []
    for spec in specs:
        case = spec if isinstance(spec, Case) else optimizer_case(spec)
        for check in OPTIMIZER_CHECKS:
            params.append(pytest.param(case, as_test(check), id=f"{case.optimizer}-{check.__name__}"))
    return pytest.mark.parametrize("case, check", params)
