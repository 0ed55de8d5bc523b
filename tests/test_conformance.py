"""The conformance suite: every registered controller passes these checks automatically.

Like scikit-learn's check_estimator: registering a controller is all it takes to be covered.
Each controller is run in a small real training loop (an MLP on fixed data, two parameter groups
with different base LRs, evaluations every few steps) and must:
- resume bit for bit from a state saved at a random step (LRs and parameters identical);
- keep each parameter group's own base LR;
- never produce a non-finite, zero or negative LR, whatever losses and metrics it is fed;
- give the same trajectory for the same seed;
- have a state that survives pickling (the resume check goes through pickle).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import random
from dataclasses import dataclass

import pytest
import torch

import lrcontrol
from lrcontrol.registry import entries

# "groups" terms (discriminative) arrange param groups at build time; tests/test_practice.py covers them.
CONTROLLERS = [e for e in entries() if e.kind not in ("optimizer", "groups")]
# Each further example of an entry (an option its first example leaves off) is checked as well.
CONTROLLERS += [dataclasses.replace(e, example=x) for e in list(CONTROLLERS) for x in e.examples]
DEFAULT_OPTIMIZER = "sgd(lr=0.05, momentum=0.9)"
STEPS = 40
EVAL_EVERY = 2
FIRST_GROUP_LR = 0.02


def spec_for(entry) -> str:
    return f"{entry.optimizer or DEFAULT_OPTIMIZER} + {entry.example or entry.name + '()'}"


@dataclass
class Rig:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    controller: lrcontrol.LRController
    x: torch.Tensor
    y: torch.Tensor


def make_rig(entry, seed: int = 0) -> Rig:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    groups = [
        {"params": model[0].parameters(), "lr": FIRST_GROUP_LR},
        {"params": model[2].parameters()},
    ]

    def loss_fn(batch):
        bx, by = batch
        return torch.nn.functional.cross_entropy(model(bx), by)

    def train_batches():
        g = torch.Generator().manual_seed(99)
        while True:
            idx = torch.randint(0, 256, (32,), generator=g)
            yield x[idx], y[idx]

    resources = {"model": model, "loss_fn": loss_fn, "train_batches": train_batches}
    optimizer, controller = lrcontrol.build(groups, spec_for(entry), total_steps=STEPS, resources=resources)
    return Rig(model, optimizer, controller, x, y)


def batch(rig: Rig, t: int):
    g = torch.Generator().manual_seed(t)
    idx = torch.randint(0, rig.x.shape[0], (32,), generator=g)
    return rig.x[idx], rig.y[idx]


def train(rig: Rig, start: int, stop: int, save_at: int | None = None, poison: bool = False):
    """Train steps [start, stop); return the LRs after each step and the state saved at `save_at`."""
    lrs, saved = [], None
    for t in range(start, stop):
        bx, by = batch(rig, t)
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
            val += 0.05 * ((t // EVAL_EVERY) % 3)
            if poison and (t + 1) % (2 * EVAL_EVERY) == 0:
                val = math.nan
            rig.controller.report(val_loss=val, val_acc=0.5)
        lrs.append(rig.controller.lrs)
        if save_at is not None and t + 1 == save_at:
            saved = pickle.dumps(
                {
                    "model": rig.model.state_dict(),
                    "optimizer": rig.optimizer.state_dict(),
                    "controller": rig.controller.state_dict(),
                }
            )
    return lrs, saved


def params_of(rig: Rig) -> list[torch.Tensor]:
    return [p.detach().clone() for p in rig.model.parameters()]


def test_registry_has_the_schedules_and_rules():
    kinds = {e.name: e.kind for e in CONTROLLERS}
    assert sum(k in ("schedule", "reactive") for k in kinds.values()) >= 14
    assert {"cosine", "warmup", "wsd", "plateau", "bold_driver", "onecycle", "sgdr", "cyclic"} <= set(kinds)


def save_points(name: str) -> list[int]:
    """Two 'random' steps, reproducible per controller: one early (inside warmups), one late."""
    rng = random.Random(name)
    return [rng.randint(1, STEPS // 4), rng.randint(STEPS // 2, STEPS - 1)]


@pytest.mark.parametrize("entry", CONTROLLERS, ids=lambda e: e.example or e.name)
@pytest.mark.parametrize("which", [0, 1], ids=["early", "late"])
def test_resume_from_a_random_step_is_bit_identical(entry, which):
    save_at = save_points(entry.name)[which]
    rig = make_rig(entry)
    lrs_full, saved = train(rig, 0, STEPS, save_at=save_at)
    final_full = params_of(rig)

    resumed = make_rig(entry, seed=7)  # different init: everything must come from the state
    state = pickle.loads(saved)
    resumed.model.load_state_dict(state["model"])
    resumed.optimizer.load_state_dict(state["optimizer"])
    resumed.controller.load_state_dict(state["controller"])
    assert resumed.controller.lrs == lrs_full[save_at - 1]
    lrs_resumed, _ = train(resumed, save_at, STEPS)

    assert lrs_resumed == lrs_full[save_at:]
    for a, b in zip(final_full, params_of(resumed)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("entry", CONTROLLERS, ids=lambda e: e.example or e.name)
def test_each_param_group_keeps_its_own_base_lr(entry):
    rig = make_rig(entry)
    base = list(rig.controller.base_lrs)
    assert len(base) == 2
    spec_lr = lrcontrol.parse(spec_for(entry)).optimizer.full_kwargs()["lr"]
    assert base[0] / base[1] == pytest.approx(FIRST_GROUP_LR / spec_lr)
    train(rig, 0, STEPS)
    per_factor = rig.controller.factor_multipliers()
    for group, lr, b, m in zip(
        rig.optimizer.param_groups, rig.controller.lrs, rig.controller.base_lrs, rig.controller.multipliers
    ):
        assert group["lr"] == lr
        assert lr == pytest.approx(b * m, rel=1e-12)
    scalar = all(len(set(m)) == 1 for _, m in per_factor)
    if scalar:
        lr0, lr1 = rig.controller.lrs
        assert lr0 / lr1 == pytest.approx(base[0] / base[1], rel=1e-9)


@pytest.mark.parametrize("entry", CONTROLLERS, ids=lambda e: e.example or e.name)
def test_non_finite_losses_never_give_a_bad_lr(entry):
    rig = make_rig(entry)
    lrs, _ = train(rig, 0, STEPS, poison=True)
    # and a step whose gradient itself is non-finite
    bx, by = batch(rig, 0)
    loss = torch.nn.functional.cross_entropy(rig.model(bx), by) * math.nan
    rig.optimizer.zero_grad()
    loss.backward()
    rig.optimizer.step()
    rig.controller.step(loss)
    rig.controller.report(val_loss=math.inf)
    lrs.append(rig.controller.lrs)
    for step_lrs in lrs:
        for lr in step_lrs:
            assert math.isfinite(lr) and lr > 0, (entry.name, lrs)


@pytest.mark.parametrize("entry", CONTROLLERS, ids=lambda e: e.example or e.name)
def test_same_seed_same_trajectory(entry):
    a, b = make_rig(entry), make_rig(entry)
    lrs_a, _ = train(a, 0, STEPS)
    lrs_b, _ = train(b, 0, STEPS)
    assert lrs_a == lrs_b
    for pa, pb in zip(params_of(a), params_of(b)):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("entry", CONTROLLERS, ids=lambda e: e.example or e.name)
def test_state_survives_pickling_and_deepcopy(entry):
    rig = make_rig(entry)
    train(rig, 0, STEPS // 2)
    state = rig.controller.state_dict()
    for restored in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        other = make_rig(entry)
        other.controller.load_state_dict(restored)
        assert other.controller.lrs == rig.controller.lrs
        assert other.controller.t == rig.controller.t
