"""learned(): the policy Ψ as a factor — conformance, composition, policy files, resume, engine and sweeps."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lrcontrol
from lrcontrol.bench import sweep_runner
from lrcontrol.bench.engine import run
from lrcontrol.bench.store import Store
from lrcontrol.bench.sweep import load_sweep
from lrcontrol.control.learned import FEATURES, Learned, load_policy, shipped_policies
from lrcontrol.errors import LRControlError
from lrcontrol.tasks import get_task
from lrcontrol.testing import check_factor, parametrize_with_checks

UP = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0]  # bias only: always raise at the full rate
DOWN = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -5.0]


LEVEL = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -5.0, 0.0]  # the lr_level feature's weight: pull the LR to 1e-3


@parametrize_with_checks(
    [
        "learned()",
        f"learned(weights={UP})",
        lambda: Learned(weights=DOWN, monitor="val_acc"),
        f"learned(weights={LEVEL})",
    ]
)
def test_conformance(case, check):
    check(case)


def test_conformance_under_adam():
    check_factor("learned()", optimizer="adam(lr=1e-3)")


def loop(spec: str, steps: int = 60, losses=None, report_every: int = 0):
    """A plain training loop on a tiny regression; `losses` replaces the loss handed to the controller."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    optimizer, controller = lrcontrol.build(model.parameters(), spec, total_steps=steps)
    lrs = []
    for t in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss if losses is None else losses[t])
        if report_every and (t + 1) % report_every == 0:
            controller.report(val_loss=loss.item())
        lrs.append(controller.lrs[0])
    return lrs, controller


def test_the_multiplier_moves_by_at_most_the_rate_per_step_and_e_to_the_K_per_run():
    policy = load_policy("default")
    steps = 50
    flat = [1.0] * steps  # the parameters may blow up at e^10 × the LR; the factor sees a flat loss
    lrs, controller = loop(f"sgd(lr=0.01) + learned(weights={UP})", steps, losses=flat)
    delta = min(max(policy["rate"] / steps, policy["rate_min"]), policy["rate_max"])
    ratios = [math.log(b / a) for a, b in zip([0.01, *lrs], lrs)]
    assert all(r <= delta + 1e-12 for r in ratios)
    assert ratios[-1] == pytest.approx(delta * math.tanh(5.0))
    assert math.log(lrs[-1] / 0.01) <= policy["rate"] + 1e-9
    lrs_down, _ = loop(f"sgd(lr=0.01) + learned(weights={DOWN})", steps, losses=flat)
    assert lrs_down[-1] == pytest.approx(0.01 * math.exp(-steps * delta * math.tanh(5.0)))


def test_the_features_see_progress_the_loss_level_a_blow_up_and_the_validation_metric():
    falling = [2.0 * 0.9**t for t in range(40)]
    _, controller = loop("sgd(lr=0.01) + learned()", 40, losses=falling)
    f = dict(zip(FEATURES, controller.factors[0].features(40)))
    assert f["progress"] == 1.0 and f["drop"] < -0.3 and f["rise"] == 0.0 and f["trend"] < 0
    rising = [1.0 * 1.2**t for t in range(40)]
    _, controller = loop("sgd(lr=0.01) + learned()", 40, losses=rising)
    f = dict(zip(FEATURES, controller.factors[0].features(40)))
    assert f["rise"] > 0.5 and f["trend"] > 0 and f["drop"] == 0.0
    factor = controller.factors[0]
    factor.on_evaluation({"val_loss": 1.0})
    factor.on_evaluation({"val_loss": 1.5})
    assert dict(zip(FEATURES, factor.features(40)))["val_worse"] == pytest.approx(0.5)
    factor.on_evaluation({"val_loss": math.nan})
    assert dict(zip(FEATURES, factor.features(40)))["val_worse"] == 1.0


def test_a_non_finite_loss_cuts_at_the_full_rate_whatever_the_weights():
    losses = [1.0] * 10 + [math.nan] * 5 + [1.0] * 5
    lrs, controller = loop(f"sgd(lr=0.01) + learned(weights={UP})", 20, losses=losses)
    assert lrs[10] < lrs[9] and lrs[14] < lrs[10] and controller.factors[0].nonfinite == 5


def test_it_composes_with_warmup_and_a_schedule_and_reports_do_not_move_it():
    lrs, controller = loop("adamw(lr=1e-3) + warmup(0.05) + learned()", 100, report_every=10)
    assert [name for name, _ in controller.factor_multipliers()] == ["warmup", "learned"]
    assert all(math.isfinite(lr) and lr > 0 for lr in lrs)
    before = controller.lrs
    controller.report(val_loss=123.0)
    assert controller.lrs == before


def test_a_policy_file_by_path_and_bad_policies_are_refused_by_name(tmp_path):
    policy = load_policy("default")
    assert "default" in shipped_policies()
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**policy, "weights": UP}))
    a, _ = loop(f"sgd(lr=0.01) + learned(policy={str(path)!r})", 20)
    b, _ = loop(f"sgd(lr=0.01) + learned(weights={UP})", 20)
    assert a == b
    with pytest.raises(LRControlError, match="no such shipped policy or file"):
        Learned(policy="nope")
    with pytest.raises(LRControlError, match="weights must be 8 finite numbers"):
        Learned(weights=[1.0, 2.0])
    (tmp_path / "bad.json").write_text(json.dumps({**policy, "rate": -1}))
    with pytest.raises(LRControlError, match="rate must be a number"):
        Learned(policy=str(tmp_path / "bad.json"))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(LRControlError, match="not a JSON policy file"):
        Learned(policy=str(tmp_path / "junk.json"))
    with pytest.raises(LRControlError, match="pass total_steps"):
        lrcontrol.build(torch.nn.Linear(2, 1).parameters(), "sgd(lr=0.1) + learned()")


def test_a_state_saved_under_other_weights_is_refused(tmp_path):
    policy = load_policy("default")
    _, controller = loop("sgd(lr=0.01) + learned()", 10)
    state = controller.state_dict()
    path = tmp_path / "other.json"
    path.write_text(json.dumps({**policy, "weights": UP}))
    _, other = loop(f"sgd(lr=0.01) + learned(policy={str(path)!r})", 1)
    state["factors"][0]["config"]["policy"] = str(path)  # the same name, other weights behind it
    with pytest.raises(LRControlError, match="other policy weights"):
        other.load_state_dict(state)


def test_it_runs_in_the_engine_and_resumes_a_checkpointed_run_exactly(tmp_path):
    task = get_task("sphere-10", "smoke")
    spec = "adam(lr=0.01) + learned()"
    full = run(task, spec, 0)
    ckpt = tmp_path / "run.pt"
    run(task, spec, 0, budget=20, horizon=task.budget, checkpoint=ckpt, checkpoint_seconds=0)
    resumed = run(task, spec, 0, budget=task.budget, checkpoint=ckpt, checkpoint_seconds=0)
    assert not full.diverged and resumed.lrs == full.lrs and resumed.train_loss == full.train_loss


def test_it_runs_in_a_sweep(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        'size = "smoke"\nseeds = 1\nlrs = [0.01]\ntasks = ["sphere-10"]\n'
        'methods = ["adam + learned()", "adam + warmup(0.1) + learned()"]\n'
    )
    with Store(tmp_path / "s.db") as db:
        outcome = sweep_runner.run_local(load_sweep(suite).runs(), db, workers=1)
        assert outcome.recorded == 2


def test_the_docs_example_runs():
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "learned.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, "docs/learned.md lost its example"
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page}:block{i}", "exec"), {})


def test_the_run_key_names_the_policy_content_so_a_retrained_policy_never_reuses_old_runs(tmp_path):
    from lrcontrol.bench.record import run_key

    policy = load_policy("default")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({**policy, "weights": UP}))
    second.write_text(json.dumps({**policy, "weights": DOWN}))

    def key(path) -> str:
        return run_key("sphere-10@1/smoke", f"adam(lr=0.001) + learned(policy={str(path)!r})", 0, 50)

    assert key(first) == key(first)  # the same file, the same key
    copy = tmp_path / "copy.json"
    copy.write_text(first.read_text())
    before = key(copy)
    copy.write_text(second.read_text())  # the same path, retrained weights
    assert key(copy) != before and key(first) != key(second)
    # the constants count too, for the shipped weights given in the spec
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps({**policy, "rate": policy["rate"] / 2}))
    given = f"weights={policy['weights']}"
    assert run_key("t@1/smoke", f"adam(lr=0.001) + learned({given})", 0, 50) != run_key(
        "t@1/smoke", f"adam(lr=0.001) + learned(policy={str(slower)!r}, {given})", 0, 50
    )
    # the shipped policy's key holds its digest: the key of 0.4.0 (the spec alone) is not reused
    import hashlib

    parts = ["t@1/smoke", "adam(lr=0.001) + learned()", 0, 50, 50]
    spec_alone = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
    assert run_key("t@1/smoke", "adam(lr=0.001) + learned()", 0, 50) != spec_alone


def test_a_spec_that_declares_no_content_keys_on_its_fields_alone():
    import hashlib

    from lrcontrol.bench.record import run_key

    for spec in ("adamw(lr=0.001) + warmup() + cosine()", "tune:smac-mf(trials=50, eta=3) lr"):
        parts = ["fmnist-mlp@1/default", spec, 1, 400, 400]
        assert (
            run_key("fmnist-mlp@1/default", spec, 1, 400) == hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        )


def test_a_nine_weight_policy_reads_the_lr_level_and_pulls_a_far_off_lr_toward_it(tmp_path):
    from lrcontrol.control.learned import ALL_FEATURES, LEVEL_REFERENCE

    model = torch.nn.Linear(3, 1)
    _, plain = lrcontrol.build(model.parameters(), "adamw(lr=0.1) + learned()", total_steps=50)
    assert len(plain.factors[0].features(1)) == len(FEATURES)  # an 8-weight policy does not read it
    high, _ = loop(f"adamw(lr=0.1) + learned(weights={LEVEL})", 50)
    low, _ = loop(f"adamw(lr=1e-05) + learned(weights={LEVEL})", 50)
    assert high[-1] < 0.1 / 3 and low[-1] > 1e-5 * 3  # cut from two decades above, raised from two below
    _, controller = loop(f"adamw(lr=0.1) + learned(weights={LEVEL})", 10)
    factor = controller.factors[0]
    level = dict(zip(ALL_FEATURES, factor.features(10)))["lr_level"]
    assert level == pytest.approx(math.log10(controller.lrs[0] / LEVEL_REFERENCE) / 3.0)
    policy = load_policy("default")
    path = tmp_path / "level.json"
    path.write_text(json.dumps({**policy, "features": list(ALL_FEATURES), "weights": LEVEL}))
    assert load_policy(str(path))["weights"] == LEVEL
    path.write_text(json.dumps({**policy, "features": list(ALL_FEATURES)}))  # 8 weights for 8 features
    with pytest.raises(LRControlError, match="8 features need 9 weights"):
        Learned(policy=str(path))
    with pytest.raises(LRControlError, match="or 9 with the lr_level"):
        Learned(weights=[0.0] * 10)
