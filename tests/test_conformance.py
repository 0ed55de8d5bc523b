"""The conformance suite: every example of every registered controller and optimizer passes the public
kit, `lrcontrol.testing` (like scikit-learn's check_estimator: registering is all it takes to be covered).

The checks themselves are documented in src/lrcontrol/testing/ and docs/testing.md; this file runs
them over the registry, and shows that the kit passes a factor written outside the package and fails
one whose state is incomplete.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import lrcontrol
from lrcontrol.control.base import Factor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registry import entries
from lrcontrol.testing import (
    DEFAULT_OPTIMIZER,
    Case,
    check_factor,
    check_resume_exact,
    make_rig,
    parametrize_optimizer_checks,
    parametrize_with_checks,
    train,
)

# "groups" terms (discriminative) arrange param groups at build time; tests/test_practice.py covers them.
# "method" terms (auto()) build nothing themselves; tests/test_auto.py covers them.
CONTROLLERS = [e for e in entries() if e.kind not in ("optimizer", "groups", "method")]
OPTIMIZERS = [e for e in entries() if e.kind == "optimizer"]
FACTOR_CASES = [Case(example, e.optimizer or DEFAULT_OPTIMIZER) for e in CONTROLLERS for example in e.examples]
OPTIMIZER_CASES = [Case("cosine()", optimizer=example, one_lr=e.one_lr) for e in OPTIMIZERS for example in e.examples]


def test_registry_has_the_schedules_and_rules():
    kinds = {e.name: e.kind for e in CONTROLLERS}
    assert sum(k in ("schedule", "reactive") for k in kinds.values()) >= 14
    assert {"cosine", "warmup", "wsd", "plateau", "bold_driver", "onecycle", "sgdr", "cyclic"} <= set(kinds)


# "groups" entries arrange param groups when the optimizer is built (no factor to run; tests/test_practice.py)
@pytest.mark.parametrize("entry", [e for e in entries() if e.kind not in ("groups", "method")], ids=lambda e: e.name)
def test_every_registry_entry_declares_several_examples(entry):
    assert len(set(entry.examples)) >= 2, f"{entry.name} declares {entry.examples}"


def test_the_examples_cover_every_variant_of_the_online_and_reactive_rules():
    def configs(name: str) -> list[dict[str, Any]]:
        spec = f"{DEFAULT_OPTIMIZER} + "
        return [
            lrcontrol.parse(spec + x).factors[0].entry.factory(**lrcontrol.parse(spec + x).factors[0].kwargs()).config
            for x in next(e for e in entries() if e.name == name).examples
        ]

    clara = configs("clara")
    assert {(c["d"] == "auto", c["variant"]) for c in clara} == {
        (a, v) for a in (True, False) for v in ("plain", "unit")
    }
    for name in ("clara", "alera", "salera", "hypergradient"):
        assert {c["guard"] for c in configs(name)} == {True, False}, name
    assert {c["mode"] for c in configs("hypergradient")} == {"additive", "multiplicative"}
    assert {c["layers"] for c in configs("alera")} >= {"group", "module"}
    for name in ("plateau", "bold_driver"):
        seen = configs(name)
        assert {c["mode"] for c in seen} == {"min", "max"} and {c["monitor"] == "loss" for c in seen} == {True, False}


@parametrize_with_checks(FACTOR_CASES)
def test_every_controller_example_passes_the_kit(case, check):
    check(case)


@parametrize_optimizer_checks(OPTIMIZER_CASES)
def test_every_optimizer_example_passes_the_kit(case, check):
    check(case)


# -- a factor written outside the package -----------------------------------------------------------


class HalveOnSpike(Factor):
    """A user's reactive rule: halve the LR when a reported val_loss is 10 % above the best so far."""

    name = "halve_on_spike"
    kind = "reactive"
    uses_loss = True
    params: ClassVar[tuple[Param, ...]] = (Param("factor", 0.5, "cut", low=0.0, high=1.0, low_open=True),)

    def attach(self, ctx):
        super().attach(ctx)
        self.scale = 1.0
        self.best = math.inf

    def multiplier(self, t):
        return self.scale

    def on_evaluation(self, metrics):
        value = metrics.get("val_loss", math.nan)
        if not math.isfinite(value) or value > 1.1 * self.best:
            self.scale = max(self.scale * self.config["factor"], 1e-6)
        self.best = min(self.best, value) if math.isfinite(value) else self.best


def test_a_factor_defined_outside_the_package_passes_the_kit():
    check_factor(lambda: HalveOnSpike(factor=0.7))


def test_deleting_a_field_from_the_saved_state_fails_a_check():
    class Forgetful(HalveOnSpike):
        def state_dict(self):
            state = super().state_dict()
            del state["best"]  # the mutation: one runtime field missing from the saved state
            return state

    with pytest.raises(LRControlError, match="halve_on_spike: this state has no best"):
        check_resume_exact(Case(lambda: Forgetful(factor=0.7)))
    with pytest.raises(AssertionError, match="check_resume_exact failed .*this state has no best"):
        check_factor(lambda: Forgetful(factor=0.7))


def test_a_field_wrongly_declared_transient_fails_the_resume_check():
    class Amnesic(HalveOnSpike):
        transient = ("best",)  # not saved: a resumed run forgets the best value and cuts at other steps

    with pytest.raises(AssertionError, match="resumed after step"):
        check_resume_exact(Case(lambda: Amnesic(factor=0.7)))


def test_a_schedule_that_reads_the_loss_fails_the_schedule_check():
    class Sneaky(Factor):
        name = "sneaky"
        uses_loss = True  # kind stays "schedule", but the multiplier follows the loss

        def attach(self, ctx):
            super().attach(ctx)
            self.last = 1.0

        def multiplier(self, t):
            return 1.0 / (1.0 + abs(self.last)) if math.isfinite(self.last) else 1.0

        def on_step(self, t, loss):
            self.last = loss if loss is not None else self.last

    with pytest.raises(AssertionError, match="check_schedule_depends_on_step_alone failed"):
        check_factor(Sneaky)


def test_the_example_in_docs_testing_md_runs():
    docs = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert blocks, "docs/testing.md lost its example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)
    assert namespace["passed"] is True


def test_the_rig_gives_two_groups_with_their_own_base_lr():
    rig = make_rig(Case("cosine()"))
    assert rig.controller.base_lrs == [pytest.approx(0.02), pytest.approx(0.05)]
    lrs, _ = train(rig, 0, 4)
    assert len(lrs) == 4 and all(len(step) == 2 for step in lrs)
    assert isinstance(rig.model, torch.nn.Module)
