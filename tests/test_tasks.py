"""Tasks: the registry, the Task interface contract, synthetic functions, tabular tasks, the CLI."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lrcontrol.errors import LRControlError
from lrcontrol.tasks import FAMILIES, get_task, list_tasks
from lrcontrol.tasks.synthetic import FUNCTIONS, make_synthetic


def _train(instance, steps: int, lr: float, seed: int = 0) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(instance.model.parameters(), lr=lr)
    losses = []
    for batch in itertools.islice(instance.train_batches(generator), steps):
        loss = instance.loss(instance.model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


# --- registry -------------------------------------------------------------------------------------


def test_unknown_task_name_suggests_close_matches():
    with pytest.raises(LRControlError, match=r"unknown task 'sphere-5O'.*did you mean 'sphere-50'"):
        get_task("sphere-5O")


def test_unknown_size_names_the_allowed_sizes():
    with pytest.raises(LRControlError, match=r"unknown task size 'smok'.*'smoke'"):
        get_task("sphere-10", size="smok")


def test_unknown_family_is_rejected():
    with pytest.raises(LRControlError, match="unknown family"):
        list_tasks("vision")


def test_every_listed_task_declares_a_known_family_and_size():
    names = list_tasks()
    assert len(names) == len(set(names))
    for name in names:
        for size in ("smoke", "default"):
            task = get_task(name, size)
            assert task.name == name and task.size == size and task.family in FAMILIES
            assert 0 < task.eval_every <= task.budget and task.batch_size > 0


def test_smoke_size_has_a_smaller_budget_than_default():
    for name in list_tasks("synthetic"):
        assert get_task(name, "smoke").budget < get_task(name, "default").budget


def test_tasks_are_hashable_and_equal_by_value():
    assert get_task("sphere-50-noisy") == get_task("sphere-50-noisy")
    assert hash(get_task("beale")) == hash(get_task("beale"))
    assert get_task("beale", "smoke") != get_task("beale")


# --- synthetic ------------------------------------------------------------------------------------


def test_synthetic_functions_take_any_dimension_and_name_the_noise():
    task = get_task("rastrigin-7-noisy0.5")
    assert (task.dims, task.noise, task.function) == (7, 0.5, "rastrigin")
    assert get_task("sphere-50-noisy0.1").name == "sphere-50-noisy"  # σ = 0.1 is the default, one name
    assert get_task("sphere-3").build(0).model.x.shape == (3,)


def test_two_dimensional_functions_refuse_other_dimensions():
    with pytest.raises(LRControlError, match="2 dimensions only"):
        get_task("beale-3")
    with pytest.raises(LRControlError, match="at least 2"):
        make_synthetic("rosenbrock", 1)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_regret_and_distance_vanish_at_every_global_minimum(function):
    task = make_synthetic(function, 4 if FUNCTIONS[function].dims is None else 2)
    instance = task.build(0)
    for minimum in FUNCTIONS[function].minima(task.dims):
        with torch.no_grad():
            instance.model.x.copy_(torch.tensor(minimum))
        metrics = instance.evaluate(instance.model)
        # float32 storage of the minimum (e.g. 404.2319) limits how close f can get to f*.
        assert abs(metrics["regret"]) < 1e-3
        assert metrics["distance"] < 1e-4
        assert math.isclose(metrics["loss"] - metrics["regret"], instance._f_star)


def test_regret_is_positive_away_from_the_minimum():
    for function in FUNCTIONS:
        instance = make_synthetic(function, 5 if FUNCTIONS[function].dims is None else 2).build(3)
        assert instance.evaluate(instance.model)["regret"] > 0


def test_known_values_of_the_test_functions():
    cases = {
        "sphere": ([1.0, 2.0, 3.0], 14.0),
        "ellipsoid1e6": ([1.0, 1.0, 1.0], 1.0 + 1e3 + 1e6),
        "rosenbrock": ([0.0, 0.0, 0.0], 2.0),
        "rastrigin": ([0.5, 0.0], 20.25),  # 10·2 + (0.25 − 10 cos π) + (0 − 10 cos 0)
        "himmelblau": ([0.0, 0.0], 121.0 + 49.0),
        "beale": ([0.0, 0.0], 1.5**2 + 2.25**2 + 2.625**2),
        "camel3": ([1.0, 1.0], 2 - 1.05 + 1 / 6 + 1 + 1),
    }
    for function, (point, expected) in cases.items():
        value = FUNCTIONS[function].fn(torch.tensor(point, dtype=torch.float64))
        assert math.isclose(float(value), expected, rel_tol=1e-12), function


def test_eggholder_wall_keeps_the_regret_non_negative_outside_the_box():
    instance = get_task("eggholder").build(0)
    for point in ([2000.0, -3000.0], [600.0, 404.0], [-1e4, 1e4]):
        with torch.no_grad():
            instance.model.x.copy_(torch.tensor(point))
        assert instance.evaluate(instance.model)["regret"] > 0


def test_the_seed_fixes_the_start_and_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = get_task("sphere-10").build(5).model.x.detach().clone()
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(first, get_task("sphere-10").build(5).model.x)
    assert not torch.equal(first, get_task("sphere-10").build(6).model.x)
    low, high = FUNCTIONS["sphere"].box
    assert bool(((first >= low) & (first <= high)).all())


def test_noise_free_batches_carry_no_noise_and_noisy_ones_have_sigma():
    quiet = get_task("sphere-50").build(0)
    batch = next(quiet.train_batches(torch.Generator().manual_seed(0)))
    assert not batch.any()
    noisy = get_task("sphere-50-noisy0.5").build(0)
    samples = torch.cat(list(itertools.islice(noisy.train_batches(torch.Generator().manual_seed(0)), 200)))
    assert abs(float(samples.std()) - 0.5) < 0.01  # 10 000 draws: standard error of σ̂ ≈ 0.0035


def test_noisy_loss_is_f_at_the_perturbed_point_and_evaluation_is_noise_free():
    instance = get_task("sphere-10-noisy").build(0)
    batch = next(instance.train_batches(torch.Generator().manual_seed(1)))
    x = instance.model.x.detach()
    assert math.isclose(
        float(instance.loss(instance.model, batch).detach()), float(((x + batch) ** 2).sum()), rel_tol=1e-6
    )
    assert instance.evaluate(instance.model)["loss"] == pytest.approx(float((x.double() ** 2).sum()))


def test_batch_stream_is_deterministic_given_the_generator():
    instance = get_task("ellipsoid1e3-10-noisy").build(0)
    first = list(itertools.islice(instance.train_batches(torch.Generator().manual_seed(9)), 5))
    second = list(itertools.islice(instance.train_batches(torch.Generator().manual_seed(9)), 5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_gradient_descent_reaches_the_sphere_target_within_the_default_budget():
    task = get_task("sphere-50")
    instance = task.build(0)
    _train(instance, task.budget, lr=0.1)
    assert instance.evaluate(instance.model)["regret"] < task.target


def test_evaluate_rejects_unknown_splits():
    instance = get_task("sphere-10").build(0)
    assert instance.evaluate(instance.model, "test") == instance.evaluate(instance.model, "val")
    with pytest.raises(LRControlError, match="unknown split 'train'"):
        instance.evaluate(instance.model, "train")


def test_synthetic_meta_features_are_static_numbers_and_strings():
    meta = get_task("ellipsoid1e6-10-noisy").meta_features()
    assert meta["params"] == 10 and meta["noise"] == 0.1 and meta["kind"] == "function"
    assert all(isinstance(v, (int, float, str)) for v in meta.values())


# --- tabular (scikit-learn's bundled sets only: no data package needed) ------------------------------


def test_tabular_splits_are_stratified_disjoint_and_standardised_on_train():
    from lrcontrol.tasks.tabular import standardised_splits

    splits = standardised_splits("breast_cancer")
    sizes = {split: len(y) for split, (_, y) in splits.items()}
    assert sizes == {"train": 341, "val": 114, "test": 114}
    rates = [float(y.mean()) for _, y in splits.values()]
    assert max(rates) - min(rates) < 0.01  # 62.7 % benign in every split
    x_train = splits["train"][0]
    assert abs(x_train.mean(0)).max() < 1e-9 and abs(x_train.std(0) - 1).max() < 1e-9
    assert abs(splits["val"][0].mean(0)).max() > 1e-3  # val is scaled with train's statistics, not its own
    rows = {tuple(row) for _, (x, _) in splits.items() for row in x.round(6)}
    assert len(rows) == 569


def test_tabular_build_is_deterministic_per_seed_and_models_have_the_documented_shape():
    task = get_task("digits-mlp", "smoke")
    first, again, other = task.build(1), task.build(1), task.build(2)
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(first.model.parameters()), next(other.model.parameters()))
    assert [p.shape[0] for p in first.model.parameters() if p.ndim == 2] == [64, 64, 10]
    logreg = get_task("digits-logreg", "smoke").build(0)
    assert [tuple(p.shape) for p in logreg.model.parameters()] == [(10, 64), (10,)]


def test_tabular_batches_cover_each_epoch_without_repeats():
    task = get_task("iris-logreg", "smoke")
    instance = task.build(0)
    per_epoch = 90 // task.batch_size
    batches = list(itertools.islice(instance.train_batches(torch.Generator().manual_seed(0)), per_epoch))
    seen = torch.cat([x for x, _ in batches])
    assert len(torch.unique(seen, dim=0)) == per_epoch * task.batch_size


def test_logistic_regression_learns_iris_within_the_smoke_budget():
    task = get_task("iris-logreg", "smoke")
    instance = task.build(0)
    before = instance.evaluate(instance.model)
    _train(instance, task.budget, lr=0.5)
    after = instance.evaluate(instance.model)
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] >= 0.8
    assert set(after) == {"loss", "accuracy"} and set(instance.evaluate(instance.model, "test")) == {"loss", "accuracy"}


def test_tabular_meta_features_count_parameters_examples_and_classes():
    meta = get_task("wine-mlp").meta_features()
    assert meta["params"] == 13 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3
    assert (meta["examples"], meta["classes"], meta["input_dim"], meta["batch_size"]) == (106, 3, 13, 32)
    assert meta["kind"] == "classification" and meta["family"] == "tabular"
