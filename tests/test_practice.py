"""Everyday LR practice: discriminative rates, trust ratio, clipping in the spec, batch-size rules, LR noise."""

from __future__ import annotations

import math

import pytest
import torch

import lrcontrol
from lrcontrol.bench.engine import run
from lrcontrol.bench.store import run_key
from lrcontrol.control.batch import batch_multiplier, resolve_batch_size
from lrcontrol.control.discriminative import param_groups
from lrcontrol.errors import LRControlError, SpecError
from lrcontrol.tasks import get_task


class Net(torch.nn.Module):
    """A small named model: a two-layer backbone and a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh()
        )
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def step(model, optimizer, controller, x, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    controller.step(loss)


# --- discriminative rates ---------------------------------------------------------------------------


def test_discriminative_depth_decay_and_patterns_give_the_expected_per_group_lrs():
    model = Net()
    spec = 'sgd(lr=0.1) + discriminative(decay=0.5, patterns={"backbone.0.*": 0.1}) + step(every=1, gamma=0.5)'
    optimizer, controller = lrcontrol.build(model, spec, total_steps=10)
    table = param_groups(optimizer)
    assert [g["name"] for g in table] == ["backbone.0", "backbone.2", "head"]
    # depth 2 → 0.25, and the pattern's 0.1; depth 1 → 0.5; the head (depth 0) → 1
    expected = [0.1 * 0.25 * 0.1, 0.1 * 0.5, 0.1]
    assert [g["base_lr"] for g in table] == pytest.approx(expected, rel=1e-15)
    assert controller.base_lrs == pytest.approx(expected, rel=1e-15)
    assert [g["params"] for g in table] == [4 * 8 + 8, 8 * 8 + 8, 8 * 3 + 3]
    x, y = data()
    step(model, optimizer, controller, x, y)
    # every other factor multiplies on top of the groups' base LRs
    assert controller.lrs == pytest.approx([lr * 0.5 for lr in expected], rel=1e-15)
    assert [g["lr"] for g in optimizer.param_groups] == controller.lrs


def test_discriminative_patterns_split_a_module_and_names_come_from_named_parameters():
    model = Net()
    spec = 'adam(lr=0.01) + discriminative(patterns={"*.bias": 0.0, "head.*": 2.0})'
    with pytest.raises(SpecError, match="must be positive"):
        lrcontrol.parse(spec)
    spec = 'adam(lr=0.01) + discriminative(patterns={"*.bias": 0.5, "head.*": 2.0})'
    optimizer, _ = lrcontrol.build(model.named_parameters(), spec)
    lrs = {g["name"]: g["base_lr"] for g in param_groups(optimizer)}
    assert lrs == pytest.approx(
        {
            "backbone.0:weight": 0.01,
            "backbone.0:bias": 0.005,
            "backbone.2:weight": 0.01,
            "backbone.2:bias": 0.005,
            "head:weight": 0.02,
            "head:bias": 0.005,  # the first matching pattern wins
        }
    )


def test_discriminative_refuses_what_it_cannot_do():
    model = Net()
    with pytest.raises(SpecError, match="needs the parameters' names"):
        lrcontrol.build(model.parameters(), "sgd(lr=0.1) + discriminative(decay=0.5)")
    with pytest.raises(SpecError, match="no parameter name matches"):
        lrcontrol.build(model, 'sgd(lr=0.1) + discriminative(patterns={"encoder.*": 0.1})')
    with pytest.raises(SpecError, match=r"needs lrcontrol.build\(model, spec\)"):
        lrcontrol.control(torch.optim.SGD(model.parameters(), lr=0.1), "discriminative(decay=0.5)")
    with pytest.raises(SpecError, match="at most one"):
        lrcontrol.build(model, "sgd(lr=0.1) + discriminative(decay=0.5) + discriminative(decay=0.9)")


def test_a_mapping_argument_is_canonical_and_round_trips():
    text = "sgd(lr=0.1)+discriminative(patterns={'backbone.*':1e-1, 'head.*': 1})"
    canonical = lrcontrol.canonical(text)
    assert canonical == 'sgd(lr=0.1) + discriminative(patterns={"backbone.*": 0.1, "head.*": 1.0})'
    assert lrcontrol.parse(canonical) == lrcontrol.parse(text)
    with pytest.raises(SpecError, match="mapping"):
        lrcontrol.parse("sgd(lr=0.1) + discriminative(patterns=0.1)")


# --- gradient clipping ------------------------------------------------------------------------------


def test_clip_norm_in_the_spec_changes_the_run_key_and_the_update():
    task = get_task("rosenbrock-10", "smoke")
    plain = run(task, "sgd(lr=0.001)", seed=0, budget=5)
    clipped = run(task, "sgd(lr=0.001) + clip_norm(max_norm=0.5)", seed=0, budget=5)
    assert clipped.spec == "sgd(lr=0.001) + clip_norm(max_norm=0.5)"
    assert run_key(task.key, plain.spec, 0, 5) != run_key(task.key, clipped.spec, 0, 5)
    assert clipped.train_loss != plain.train_loss
    assert clipped.observables["0.clip_norm.clipped_fraction"] == 1.0


def test_clip_norm_clips_before_the_step_and_before_other_hooks():
    model = Net()
    x, y = data()
    optimizer, controller = lrcontrol.build(model, "sgd(lr=1.0) + hypergradient() + clip_norm(max_norm=0.01)")
    before = [p.detach().clone() for p in model.parameters()]
    step(model, optimizer, controller, x, y)
    moved = math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(model.parameters(), before)))
    assert moved == pytest.approx(0.01, rel=1e-5)  # the step of plain SGD with the clipped gradient
    assert [f.name for f in controller._hooked][0] == "clip_norm"


def test_an_lr_free_optimizer_sees_the_clipped_gradients():
    x, y = data()

    def train(spec: str, manual_clip: float | None) -> list[torch.Tensor]:
        model = Net()
        optimizer, controller = lrcontrol.build(model, spec)
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            if manual_clip is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), manual_clip)
            optimizer.step()
            controller.step(loss)
        return [p.detach().clone() for p in model.parameters()]

    by_spec = train("cocob + clip_value(clip=0.01)", None)
    by_hand = train("cocob", 0.01)
    unclipped = train("cocob", None)
    assert all(torch.equal(a, b) for a, b in zip(by_spec, by_hand))
    assert not all(torch.equal(a, b) for a, b in zip(by_spec, unclipped))


# --- trust ratio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer_spec", ["sgd(lr=0.05, momentum=0.9)", "adamw(lr=0.01)"])
def test_trust_ratio_makes_each_weight_step_coef_times_its_norm(optimizer_spec):
    model = Net()
    x, y = data()
    optimizer, controller = lrcontrol.build(model, f"{optimizer_spec} + trust(coef=0.2)")
    lr = optimizer.param_groups[0]["lr"]
    for _ in range(3):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        step(model, optimizer, controller, x, y)
        for n, p in model.named_parameters():
            moved = float((p.detach() - before[n]).norm())
            if p.ndim > 1:  # ‖Δθ‖ = lr · coef · ‖θ‖ (LARS / LAMB)
                assert moved == pytest.approx(lr * 0.2 * float(before[n].norm()), rel=1e-4), n
    ratios = controller.observables()["0.trust.tensor_ratios"][0]
    assert [r == 1.0 for r in ratios] == [p.ndim == 1 for p in model.parameters()]  # biases skipped


def test_trust_ratio_per_group_uses_one_ratio_and_logs_the_lr_it_used():
    model = Net()
    x, y = data()
    optimizer, controller = lrcontrol.build(model, "sgd(lr=0.1) + trust(per='group', skip_1d=False)")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    used = optimizer.param_groups[0]["lr"]
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.1 * float(before.norm()), rel=1e-5)
    assert used == pytest.approx(0.1 * controller.factors[0].group_ratios[0], rel=1e-12)
    controller.step(loss)


def test_trust_ratio_with_schedule_free_only_sets_the_next_lr():
    model = Net()
    x, y = data()
    optimizer, controller = lrcontrol.build(model, "sf_adamw(lr=0.01) + trust()")
    step(model, optimizer, controller, x, y)
    ratio = controller.factors[0].group_ratios[0]
    assert ratio != 1.0 and controller.lrs == pytest.approx([0.01 * ratio], rel=1e-12)


# --- LR noise ---------------------------------------------------------------------------------------


def test_lr_noise_is_seeded_stateless_and_mean_one():
    model = Net()
    _, a = lrcontrol.build(model, "sgd(lr=0.1) + lr_noise(std=0.3, seed=5)")
    _, b = lrcontrol.build(model, "sgd(lr=0.1) + lr_noise(std=0.3, seed=5)")
    _, c = lrcontrol.build(model, "sgd(lr=0.1) + lr_noise(std=0.3, seed=6)")
    fa, fb, fc = (ctrl.factors[0] for ctrl in (a, b, c))
    values = [fa.multiplier(t) for t in range(4000)]
    assert values[:50] == [fb.multiplier(t) for t in range(50)]
    assert values[:50] != [fc.multiplier(t) for t in range(50)]
    assert fa.multiplier(1234) == values[1234]  # a pure function of t: resuming anywhere draws the same
    assert sum(values) / len(values) == pytest.approx(1.0, abs=0.02)
    logs = [math.log(v) for v in values]
    mean = sum(logs) / len(logs)
    assert math.sqrt(sum((v - mean) ** 2 for v in logs) / len(logs)) == pytest.approx(0.3, rel=0.05)
    _, annealed = lrcontrol.build(model, "sgd(lr=0.1) + lr_noise(std=0.3, decay=1.0, per_group=True)")
    assert abs(math.log(annealed.factors[0].multiplier(10**6)[0])) < 1e-5


# --- batch-size rules -------------------------------------------------------------------------------


def test_batch_scale_rules_and_resolution_against_the_task():
    model = Net()
    _, linear = lrcontrol.build(model, "sgd(lr=0.1) + batch_scale(ref=32, batch=128)")
    _, sqrt = lrcontrol.build(model, "sgd(lr=0.1) + batch_scale(ref=32, rule='sqrt')", resources={"batch_size": 128})
    assert linear.lrs == pytest.approx([0.4]) and sqrt.lrs == pytest.approx([0.2])
    with pytest.raises(LRControlError, match="needs the batch size"):
        lrcontrol.build(model, "sgd(lr=0.1) + batch_scale(ref=32)")
    task = get_task("rosenbrock-10", "smoke")
    trajectory = run(task, "sgd(lr=0.001) + batch_scale(ref=4, rule='sqrt')", seed=0, budget=3)
    assert trajectory.spec == f'sgd(lr=0.001) + batch_scale(ref=4, rule="sqrt", batch={task.batch_size})'
    resolved = resolve_batch_size(lrcontrol.parse("sgd(lr=0.1) + batch_scale(ref=4)"), 64)
    assert str(resolved) == "sgd(lr=0.1) + batch_scale(ref=4, batch=64)"


def test_increase_batch_turns_the_decay_into_a_growing_batch():
    model = Net()
    spec = "sgd(lr=0.1) + warmup(2) + step(every=4, gamma=0.5) + increase_batch(max_factor=4)"
    _, controller = lrcontrol.build(model, spec, total_steps=20)
    ks = [batch_multiplier(controller, t) for t in range(16)]
    assert ks == [1] * 4 + [2] * 4 + [4] * 4 + [4] * 4  # the warmup is no decay; capped at 4
    lrs = []
    for _ in range(16):
        lrs.append(controller.lrs[0])
        controller.step()
    assert lrs[1:12] == pytest.approx([0.1] * 11) and lrs[12] == pytest.approx(0.05)


def test_the_engine_accumulates_the_grown_batch_and_resumes_exactly(tmp_path):
    task = get_task("rosenbrock-10", "smoke")
    spec = "sgd(lr=0.001) + step(every=3, gamma=0.5) + increase_batch(max_factor=4)"
    whole = run(task, spec, seed=0, budget=10)
    assert whole.extra_steps == sum(min(2 ** (t // 3), 4) - 1 for t in range(10))
    first = run(task, spec, seed=0, budget=5, horizon=10, checkpoint=tmp_path / "c.pt", checkpoint_seconds=0)
    assert first.steps == 5
    resumed = run(task, spec, seed=0, budget=10, horizon=10, checkpoint=tmp_path / "c.pt")
    assert resumed.train_loss == whole.train_loss and resumed.lrs == whole.lrs


def test_the_example_in_docs_practice_md_runs():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "practice.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 1, "docs/practice.md lost its example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)  # the example asserts what it shows


def test_a_sweep_keys_batch_scale_with_the_resolved_batch_so_a_rerun_runs_nothing(tmp_path):
    from lrcontrol.bench import sweep_runner
    from lrcontrol.bench.store import Store
    from lrcontrol.bench.sweep import load_sweep

    path = tmp_path / "s.toml"
    path.write_text(
        'name = "b"\nsize = "smoke"\nseeds = [0]\nlrs = [0.001]\n'
        'tasks = [{ name = "rosenbrock-10", budget = 5 }]\nmethods = ["sgd + batch_scale(ref=4)"]\n'
    )
    runs = load_sweep(path).runs()
    batch = get_task("rosenbrock-10", "smoke").batch_size
    assert [r.spec for r in runs] == [f"sgd(lr=0.001) + batch_scale(ref=4, batch={batch})"]
    with Store(tmp_path / "s.db") as db:
        first = sweep_runner.run_local(runs, db, workers=1)
        again = sweep_runner.run_local(load_sweep(path).runs(), db, workers=1)
    assert (first.recorded, again.recorded, again.skipped) == (1, 0, 1)


def test_a_sweep_accepts_discriminative_rates_and_runs_them_on_the_named_model(tmp_path):
    from lrcontrol.bench import sweep_runner
    from lrcontrol.bench.store import Store
    from lrcontrol.bench.sweep import load_sweep

    path = tmp_path / "s.toml"
    path.write_text(
        'name = "d"\nsize = "smoke"\nseeds = [0]\nlrs = [0.01]\n'
        'tasks = [{ name = "breast_cancer-mlp", budget = 4 }]\nmethods = ["adam + discriminative(decay=0.5)"]\n'
    )
    with Store(tmp_path / "s.db") as db:
        outcome = sweep_runner.run_local(load_sweep(path).runs(), db, workers=1)
        (record,) = db.records()
    assert outcome.recorded == 1
    lrs = record["trajectory"]["lrs"][0]
    assert len(lrs) == 3 and lrs[0] / lrs[-1] == pytest.approx(0.25)  # input layer at decay², head at 1
