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
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lrcontrol.api import LRController, make_optimizer
from lrcontrol.control.base import Factor, LRControlWarning
from lrcontrol.errors import LRControlError
from lrcontrol.spec import parse

DEFAULT_OPTIMIZER = "sgd(lr=0.05, momentum=0.9)"
STEPS = 40
EVAL_EVERY = 2
FIRST_GROUP_LR = 0.02


@dataclass
class Case:
    """One factor to check: a spec fragment of a registered controller, or a function returning a Factor."""

    factor: str | Callable[[], Factor]
    optimizer: str = DEFAULT_OPTIMIZER
    name: str = ""
    one_lr: bool = False  #: for optimizers that need one LR in every group (D-Adaptation, Prodigy)

    def __post_init__(self) -> None:
        if not self.name:
            if isinstance(self.factor, str):
                self.name = self.factor
            else:
                self.name = getattr(self.factor, "__name__", None) or type(self.factor).__name__

    def new_factors(self) -> list[Factor]:
        if isinstance(self.factor, str):
            from lrcontrol.api import make_factors

            return make_factors(parse(self.factor).factors)
        made = self.factor()
        if not isinstance(made, Factor):
            raise TypeError(f"{self.name}: the factory returned {type(made).__name__}, not a lrcontrol Factor")
        return [made]

    @property
    def kind(self) -> str:
        return self.new_factors()[0].kind

    def __repr__(self) -> str:
        return f"{self.optimizer} + {self.name}"


@dataclass
class Rig:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    controller: LRController
    x: torch.Tensor
    y: torch.Tensor
    log: list[list[float]] = field(default_factory=list)


def make_rig(case: Case, seed: int = 0, extra_factors: Sequence[Factor] = ()) -> Rig:
    """The training loop of every check: 3-class data, an 8-16-3 MLP, two param groups."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    first: dict[str, Any] = {"params": list(model[0].parameters())}
    opt_term = parse(case.optimizer).optimizer
    if opt_term is None:
        raise LRControlError(f"{case.name}: Case.optimizer must name an optimizer, got {case.optimizer!r}")
    if not case.one_lr:
        first["lr"] = FIRST_GROUP_LR * opt_term.full_kwargs()["lr"] / 0.05
    optimizer = make_optimizer([first, {"params": list(model[2].parameters())}], opt_term)

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def train_batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(99)
        while True:
            idx = torch.randint(0, 256, (32,), generator=g)
            yield x[idx], y[idx]

    resources = {"model": model, "loss_fn": loss_fn, "train_batches": train_batches}
    factors = [*extra_factors, *case.new_factors()]
    controller = LRController(optimizer, factors, STEPS, repr(case), resources)
    return Rig(model, optimizer, controller, x, y)


def _batch(rig: Rig, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(t)
    idx = torch.randint(0, rig.x.shape[0], (32,), generator=g)
    return rig.x[idx], rig.y[idx]


def train(
    rig: Rig, start: int, stop: int, save_at: int | None = None, poison: bool = False, wobble: float = 0.05
) -> tuple[list[list[float]], bytes | None]:
    """Train steps [start, stop); return the LRs after each step and the state saved after step `save_at`."""
    lrs, saved = [], None
    for t in range(start, stop):
        bx, by = _batch(rig, t)
        loss = torch.nn.functional.cross_entropy(rig.model(bx), by)
        rig.optimizer.zero_grad()
        loss.backward()
        rig.optimizer.step()
        reported = loss.item()
        if poison and t % 7 == 3:
            reported = [math.nan, math.inf, -math.inf][t % 3]
        rig.controller.step(reported)
        if (t + 1) % EVAL_EVERY == 0:
            with torch.no_grad():
                val = torch.nn.functional.cross_entropy(rig.model(rig.x), rig.y).item()
            # A deterministic wobble, so reactive rules see both improvements and setbacks.
            val += wobble * ((t // EVAL_EVERY) % 3)
            if poison and (t + 1) % (2 * EVAL_EVERY) == 0:
                val = math.nan
            rig.controller.report(val_loss=val, val_acc=1.0 / (1.0 + val) if math.isfinite(val) else val)
        lrs.append(rig.controller.lrs)
        if save_at is not None and t + 1 == save_at:
            saved = _save(rig)
    return lrs, saved


def _save(rig: Rig) -> bytes:
    buffer = io.BytesIO()
    torch.save([rig.model.state_dict(), rig.optimizer.state_dict(), rig.controller.state_dict()], buffer)
    return buffer.getvalue()


def _load(rig: Rig, saved: bytes) -> None:
    # weights_only: a checkpoint must load without running code
    model_state, optimizer_state, controller_state = torch.load(io.BytesIO(saved), weights_only=True)
    rig.model.load_state_dict(model_state)
    rig.optimizer.load_state_dict(optimizer_state)
    rig.controller.load_state_dict(controller_state)


def _params(rig: Rig) -> list[torch.Tensor]:
    return [p.detach().clone() for p in rig.model.parameters()]


# -- the checks every factor passes ------------------------------------------------------------------


def check_resume_exact(case: Case) -> None:
    """Saved at an early and at a late step, a resumed run gives the same LRs and parameters bit for bit."""
    rng = random.Random(case.name)
    for save_at in (rng.randint(1, STEPS // 4), rng.randint(STEPS // 2, STEPS - 1)):
        rig = make_rig(case)
        lrs_full, saved = train(rig, 0, STEPS, save_at=save_at)
        resumed = make_rig(case, seed=7)  # another init: everything must come from the state
        assert saved is not None
        _load(resumed, saved)
        assert resumed.controller.lrs == lrs_full[save_at - 1], f"{case}: the LR right after loading differs"
        lrs_resumed, _ = train(resumed, save_at, STEPS)
        assert lrs_resumed == lrs_full[save_at:], f"{case}: resumed after step {save_at}, the LRs differ"
        for a, b in zip(_params(rig), _params(resumed)):
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
    bx, by = _batch(rig, 0)
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
    for pa, pb in zip(_params(a), _params(b)):
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
        bx, by = _batch(rig, t)
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


def _run(check: Callable[[Case], None], case: Case) -> None:
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
        _run(check, case)


def parametrize_with_checks(factors: Iterable[str | Callable[[], Factor] | Case], optimizer: str | None = None) -> Any:
    """A `pytest.mark.parametrize("case, check", …)` over every (factor, applicable check) pair."""
    import pytest

    params = []
    for factor in factors:
        case = _as_case(factor, optimizer)
        for check in checks_for(case):
            params.append(pytest.param(case, _named(check), id=f"{case}-{check.__name__}"))
    return pytest.mark.parametrize("case, check", params)


def _named(check: Callable[[Case], None]) -> Callable[[Case], None]:
    def run(case: Case) -> None:
        _run(check, case)

    run.__name__ = check.__name__
    return run


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
        _run(check, case)


def parametrize_optimizer_checks(specs: Iterable[str | Case]) -> Any:
    """A `pytest.mark.parametrize("case, check", …)` over every (optimizer spec, optimizer check) pair."""
    import pytest

    params = []
    for spec in specs:
        case = spec if isinstance(spec, Case) else optimizer_case(spec)
        for check in OPTIMIZER_CHECKS:
            params.append(pytest.param(case, _named(check), id=f"{case.optimizer}-{check.__name__}"))
    return pytest.mark.parametrize("case, check", params)
