"""The conformance kit: the checks every lrcontrol controller and optimizer passes, for your own too.

Like scikit-learn's `check_estimator`, the checks are public and chosen by what is checked:

    from lrcontrol.testing import check_factor, parametrize_with_checks

    check_factor(lambda: MyFactor(gamma=0.5))            # raises AssertionError naming the failed check

    @parametrize_with_checks([lambda: MyFactor(gamma=0.5), "cosine(min_scale=0.1)"])
    def test_my_factor(case, check):                     # one pytest test per (case, check)
        check(case)

A factor is given as a spec fragment of a registered controller (`"clara(d='auto')"`) or as a
function that returns a new `Factor` (a class, a lambda, a `functools.partial`). Each is run in a
small real training loop — an MLP on fixed data, two parameter groups with different base LRs,
`report(val_loss=…, val_acc=…)` every other step — under `Case.optimizer` (default SGD with momentum).

Every factor must:
- resume bit for bit from its `state_dict()` saved at an early and at a late step (LRs and parameters);
- keep each parameter group's own base LR;
- never produce a non-finite, zero or negative LR, whatever losses, metrics and gradients it is fed;
- give the same trajectory for the same seed;
- have a state that survives pickling, `copy.deepcopy` and `torch.load(weights_only=True)`.

And by its `kind`:
- `"schedule"`: the LR depends on the step alone (not on losses, metrics or gradients);
- `"reactive"`: the LR moves only at an evaluation (`report()`, or every `every` steps with
  `monitor="loss"`);
- `"online"`: `controller.step(loss)` without an `optimizer.step()` before it leaves the LR alone.

`check_optimizer(spec)` and `parametrize_optimizer_checks(specs)` do the same for optimizers: the
optimizer's own state round trip, exact resume under a controller, and an effective LR that is finite,
positive and given per parameter group. The registry's own suite (tests/test_conformance.py) runs every
example every registered controller and optimizer declares.

The kit is three modules: `harness` (the training loop every check runs), `factor_checks` and
`optimizer_checks`; everything public is importable from `lrcontrol.testing`.
"""

from __future__ import annotations

from lrcontrol.testing.factor_checks import (
    COMMON_CHECKS,
    KIND_CHECKS,
    check_deterministic,
    check_factor,
    check_non_finite_input,
    check_online_idle_without_optimizer_step,
    check_param_groups,
    check_reactive_moves_only_at_evaluations,
    check_resume_exact,
    check_schedule_depends_on_step_alone,
    check_state_pickles,
    checks_for,
    parametrize_with_checks,
)
from lrcontrol.testing.harness import DEFAULT_OPTIMIZER, EVAL_EVERY, FIRST_GROUP_LR, STEPS, Case, Rig, make_rig, train
from lrcontrol.testing.optimizer_checks import (
    OPTIMIZER_CHECKS,
    check_optimizer,
    check_optimizer_effective_lr,
    check_optimizer_state_round_trip,
    optimizer_case,
    parametrize_optimizer_checks,
)

__all__ = [
    "COMMON_CHECKS",
    "DEFAULT_OPTIMIZER",
    "EVAL_EVERY",
    "FIRST_GROUP_LR",
    "KIND_CHECKS",
    "OPTIMIZER_CHECKS",
    "STEPS",
    "Case",
    "Rig",
    "check_deterministic",
    "check_factor",
    "check_non_finite_input",
    "check_online_idle_without_optimizer_step",
    "check_optimizer",
    "check_optimizer_effective_lr",
    "check_optimizer_state_round_trip",
    "check_param_groups",
    "check_reactive_moves_only_at_evaluations",
    "check_resume_exact",
    "check_schedule_depends_on_step_alone",
    "check_state_pickles",
    "checks_for",
    "make_rig",
    "optimizer_case",
    "parametrize_optimizer_checks",
    "parametrize_with_checks",
    "train",
]
