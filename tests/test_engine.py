"""The run engine: determinism, divergence as an outcome, exact resume and extension on CPU."""

from __future__ import annotations

import math
import os

import pytest
import torch

from lrcontrol.bench import engine
from lrcontrol.bench.engine import Trajectory, run
from lrcontrol.errors import LRControlError
from lrcontrol.spec import canonical
from lrcontrol.tasks import get_task

# Noisy: the batch stream (fresh input noise each step) comes from the run's generator, so a resume
# that replayed the wrong batches would show.
NOISY = "sphere-50-noisy"


def same(a: Trajectory, b: Trajectory) -> None:
    """Two runs are the same run: everything but the wall time is equal, bit for bit."""
    da, db = a.to_dict(), b.to_dict()
    da.pop("wall_time")
    db.pop("wall_time")
    assert da == db


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_same_seed_gives_the_same_trajectory_and_another_seed_does_not():
    task = get_task(NOISY, "smoke")
    a = run(task, "sgd(lr=0.05) + cosine()", seed=3)
    b = run(task, "sgd(lr=0.05) + cosine()", seed=3)
    c = run(task, "sgd(lr=0.05) + cosine()", seed=4)
    same(a, b)
    assert a.train_loss != c.train_loss


def test_trajectory_records_losses_lrs_evaluations_and_test_metrics():
    task = get_task(NOISY, "smoke")
    t = run(task, "sgd(lr=0.05) + warmup(10)", seed=0)
    assert t.steps == task.budget and not t.diverged and t.finished
    assert t.train_steps == list(range(1, task.budget + 1))
    assert len(t.train_loss) == len(t.lrs) == len(t.effective_lrs) == task.budget
    # warmup: the LR used for the first step is a tenth of the base LR and rises to it
    assert t.lrs[0][0] == pytest.approx(0.005) and t.lrs[9][0] == pytest.approx(0.05)
    # SGD applies its LR as it is: the effective LR recorded for a step is that step's LR, not the next one's
    assert t.effective_lrs == t.lrs
    assert t.eval_steps == [0, *range(task.eval_every, task.budget + 1, task.eval_every)]
    assert all("loss" in v for v in t.val) and "loss" in t.test
    assert t.val[-1]["loss"] < t.val[0]["loss"]
    assert t.spec == "sgd(lr=0.05) + warmup(steps=10)"  # canonical


def test_divergence_ends_the_run_as_an_outcome_not_an_exception():
    task = get_task("ellipsoid1e6-10", "smoke")
    t = run(task, "sgd(lr=1.0)", seed=0)
    assert t.diverged and t.finished
    assert 1 <= t.diverged_step < task.budget and t.steps == t.diverged_step
    assert t.diverged_reason
    assert t.test == {}


def test_loss_far_above_the_initial_counts_as_divergence():
    assert engine._divergence(float("nan"), 1.0) == "non-finite training loss"
    assert engine._divergence(101.0, 1.0) is not None
    assert engine._divergence(99.0, 1.0) is None


def test_long_runs_are_thinned_to_a_power_of_two_stride(monkeypatch):
    monkeypatch.setattr(engine, "MAX_POINTS", 8)
    assert engine.stride_for(8) == 1 and engine.stride_for(9) == 2 and engine.stride_for(40) == 8
    t = run(get_task(NOISY, "smoke"), "sgd(lr=0.05)", seed=0, budget=40)
    assert t.stride == 8 and t.train_steps == [8, 16, 24, 32, 40]


def test_bad_budget_or_horizon_is_an_error():
    task = get_task(NOISY, "smoke")
    for budget in (0, -5, 2.5, True):
        with pytest.raises(LRControlError, match="budget"):
            run(task, "sgd", seed=0, budget=budget)
    with pytest.raises(LRControlError, match="horizon"):
        run(task, "sgd", seed=0, budget=20, horizon=10)


def crash_at(point: str, tmp_path, spec: str, budget: int, checkpoint) -> int:
    """Run in a forked child that SIGKILLs itself at `point`; return its exit code."""
    import multiprocessing

    def child() -> None:
        os.environ["LRCONTROL_FAULT"] = f"{point}@{tmp_path / 'marker'}"
        run(get_task(NOISY, "smoke"), spec, 0, budget, checkpoint=checkpoint, checkpoint_seconds=0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    return process.exitcode


@pytest.mark.parametrize("spec", ["adam(lr=0.05) + warmup(5) + cosine()", "sgd(lr=0.05) + plateau(patience=0)"])
def test_a_run_killed_mid_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(tmp_path, spec):
    checkpoint = tmp_path / "run.pt"
    assert crash_at("step-35", tmp_path, spec, 50, checkpoint) == -9  # after the checkpoint at step 30
    assert torch.load(checkpoint, weights_only=False)["steps"] == 30
    resumed = run(get_task(NOISY, "smoke"), spec, 0, 50, checkpoint=checkpoint, checkpoint_seconds=0)
    same(resumed, run(get_task(NOISY, "smoke"), spec, 0, 50))


def test_a_run_resumed_twice_resumes_from_its_second_checkpoint(tmp_path):
    """A resumed run's own checkpoints name its spec (they once recorded 'wall_time', a loop variable's
    last value, so a second resume — a third rung of a tune or a race, a second crash — set the checkpoint
    aside as another run's and trained from scratch)."""
    spec = "adam(lr=0.05) + warmup(5) + cosine()"
    checkpoint = tmp_path / "run.pt"
    task = get_task(NOISY, "smoke")
    run(task, spec, 0, 10, horizon=30, checkpoint=checkpoint, checkpoint_seconds=0)
    run(task, spec, 0, 20, horizon=30, checkpoint=checkpoint, checkpoint_seconds=0)
    assert torch.load(checkpoint, weights_only=True)["spec"] == canonical(spec)
    third = run(task, spec, 0, 30, horizon=30, checkpoint=checkpoint, checkpoint_seconds=0)
    assert not (tmp_path / "run.pt.rejected").exists()
    same(third, run(task, spec, 0, 30))


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_intact(tmp_path):
    checkpoint = tmp_path / "run.pt"
    spec = "sgd(lr=0.05)"
    assert crash_at("checkpoint-write", tmp_path, spec, 50, checkpoint) == -9
    assert not checkpoint.exists()  # killed before the first rename: no half file under the real name
    resumed = run(get_task(NOISY, "smoke"), spec, 0, 50, checkpoint=checkpoint, checkpoint_seconds=0)
    same(resumed, run(get_task(NOISY, "smoke"), spec, 0, 50))


@pytest.mark.parametrize(
    "spec",
    [
        "sgd(lr=0.05) + constant()",
        "sgd(lr=0.05) + plateau(patience=0, gamma=0.5)",
        "adam(lr=0.05) + bold_driver()",
        "sf_adamw(lr=0.05)",  # evaluations swap Schedule-Free's parameters: they must not perturb training
        "prodigy",
    ],
)
def test_extending_a_finished_run_from_b_to_2b_matches_the_uninterrupted_2b_run(tmp_path, spec, monkeypatch):
    # A small MAX_POINTS makes the 2B run thin to a coarser stride than the B run: extension must re-thin.
    monkeypatch.setattr(engine, "MAX_POINTS", 16)
    task = get_task(NOISY, "smoke")
    checkpoint = tmp_path / "run.pt"
    # 25 is not a multiple of eval_every (10): the B run's last evaluation is not part of the 2B run.
    short = run(task, spec, 0, 25, checkpoint=checkpoint)
    assert short.eval_steps[-1] == 25 and short.stride == 2
    extended = run(task, spec, 0, 50, checkpoint=checkpoint)
    same(extended, run(task, spec, 0, 50))


def test_horizon_based_schedules_extend_exactly_when_the_first_part_plans_the_final_horizon(tmp_path):
    task = get_task(NOISY, "smoke")
    spec = "sgd(lr=0.05) + warmup(0.1) + cosine()"
    checkpoint = tmp_path / "run.pt"
    run(task, spec, 0, 25, horizon=50, checkpoint=checkpoint)
    extended = run(task, spec, 0, 50, checkpoint=checkpoint)
    same(extended, run(task, spec, 0, 50))
    # Without the planned horizon the decay is re-planned at step 25, so the runs differ from there.
    other = tmp_path / "other.pt"
    run(task, spec, 0, 25, checkpoint=other)
    replanned = run(task, spec, 0, 50, checkpoint=other)
    assert replanned.lrs[:20] != extended.lrs[:20] or replanned.lrs[25:] != extended.lrs[25:]


def test_a_finished_checkpoint_returns_the_stored_trajectory_without_training(tmp_path):
    task = get_task(NOISY, "smoke")
    checkpoint = tmp_path / "run.pt"
    first = run(task, "sgd(lr=0.05)", 0, 30, checkpoint=checkpoint)
    again = run(task, "sgd(lr=0.05)", 0, 30, checkpoint=checkpoint)
    assert again.to_dict() == first.to_dict()


def test_a_checkpoint_of_another_run_is_refused_or_set_aside(tmp_path, capfd):
    task = get_task(NOISY, "smoke")
    checkpoint = tmp_path / "run.pt"
    run(task, "sgd(lr=0.05)", 0, 20, checkpoint=checkpoint)
    with pytest.raises(LRControlError, match="another run"):
        run(task, "sgd(lr=0.1)", 0, 20, checkpoint=checkpoint, bad_checkpoint="raise")
    # the default (a sweep's own checkpoints): moved to run.pt.rejected with a warning, and the run starts over
    fresh = run(task, "sgd(lr=0.1)", 0, 20, checkpoint=checkpoint)
    assert "belongs to another run" in capfd.readouterr().err
    assert (tmp_path / "run.pt.rejected").exists()
    assert fresh.train_loss == run(task, "sgd(lr=0.1)", 0, 20).train_loss


def test_evaluations_do_not_move_the_training_rng():
    task = get_task(NOISY, "smoke")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    instance = task.build(0)
    opt = torch.optim.SGD(instance.model.parameters(), lr=0.1)
    engine._evaluate(instance, instance.model, opt, "val")
    assert torch.equal(before, torch.get_rng_state())
    assert math.isfinite(engine._evaluate(instance, instance.model, opt, "test")["loss"])


def test_the_examples_in_docs_benchmark_run():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "benchmark.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), flags=re.S)
    assert len(blocks) >= 3, "docs/benchmark.md lost its examples"
    for block in blocks:
        exec(compile(block, str(docs), "exec"), {})  # each example asserts what it shows


def test_a_finder_gets_the_engine_resources_and_its_probe_steps_are_counted():
    t = run(get_task("iris-logreg", "smoke"), "sgd(lr=0.01) + lr_from_finder(steps=20)", seed=0)
    assert t.extra_steps == 20
    assert t.lrs[0] == t.lrs[-1] != [0.01]  # the first step already ran at the LR the range test chose


def test_a_run_killed_after_its_last_step_but_before_its_final_checkpoint_resumes_complete(tmp_path):
    # The budget is a multiple of eval_every: the last step is an evaluation, but its checkpoint must
    # not be taken there (it would lack the test metrics and look like a finished run).
    checkpoint, spec = tmp_path / "run.pt", "sgd(lr=0.05)"
    assert crash_at("step-50", tmp_path, spec, 50, checkpoint) == -9
    assert torch.load(checkpoint, weights_only=False)["steps"] == 40
    resumed = run(get_task(NOISY, "smoke"), spec, 0, 50, checkpoint=checkpoint)
    assert resumed.test
    same(resumed, run(get_task(NOISY, "smoke"), spec, 0, 50))
