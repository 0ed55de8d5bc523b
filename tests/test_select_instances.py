"""The instance space: a seeded, deterministic generator over all five families whose instances build,
the "Revisiting" LIBSVM setting inside it, and held-out splits that share no data set."""

from __future__ import annotations

import pytest

from lrcontrol.errors import LRControlError
from lrcontrol.select.instances import (
    REVISITING,
    check_disjoint,
    dataset_of,
    dataset_splits,
    family_splits,
    generate,
)
from lrcontrol.tasks import get_task
from lrcontrol.tasks.names import FAMILIES

SHIPPED = 200  # the shipped meta-dataset's instance count (lrcontrol.cli.select.DEFAULT_INSTANCES)


def test_the_generator_is_seeded_and_deterministic():
    first = generate(60, seed=3)
    assert first == generate(60, seed=3)
    assert [i.task for i in first] != [i.task for i in generate(60, seed=4)]
    assert len({i.task for i in first}) == 60  # distinct instances


def test_it_covers_every_family_and_names_are_canonical():
    drawn = generate(SHIPPED, seed=0)
    assert len(drawn) == SHIPPED
    assert {i.family for i in drawn} == set(FAMILIES)
    for item in drawn:
        task = get_task(item.task)
        assert task.name == item.task and task.family == item.family


def test_every_generated_instance_builds():
    for item in generate(SHIPPED, seed=0):
        task = get_task(item.task)
        instance = task.build(0)
        assert sum(p.numel() for p in instance.model.parameters()) > 0
        assert task.budget >= 1 and task.eval_every >= 1


def test_the_revisiting_libsvm_setting_is_in_the_space():
    drawn = {i.task for i in generate(SHIPPED, seed=0)}
    assert {get_task(name).name for name in REVISITING} <= drawn  # canonical: evals equal to the task's own drop
    task = get_task(REVISITING[0])
    assert (task.batch_size, task.head, task.inputs, task.model) == (64, "sigmoid", "libsvm", "logreg")


@pytest.mark.parametrize(
    ("task", "dataset"),
    [
        ('letter-logreg(batch=64, epochs=100, head="sigmoid", inputs="libsvm")', "letter"),
        ("breast_cancer-mlp", "breast_cancer"),
        ("fmnist-finetune(fraction=0.5)", "fmnist"),
        ("fmnist-cnn(width=4)", "fmnist"),
        ("mnist1d-mlp", "mnist1d"),
        ("bbc-transformer(width=16)", "bbc"),
        ("rastrigin-20-noisy0.5(steps=100)", "rastrigin"),
        ("ellipsoid1e6-10", "ellipsoid1e6"),
        ("himmelblau", "himmelblau"),
    ],
)
def test_dataset_of_names_the_underlying_data_set(task, dataset):
    assert dataset_of(task) == dataset
    assert dataset_of(get_task(task)) == dataset  # a Task object too


def test_held_out_splits_share_no_data_set():
    drawn = generate(SHIPPED, seed=0)
    for splits in (dataset_splits(drawn), family_splits(drawn)):
        assert splits
        for _, train, test in splits:
            assert train and test
            check_disjoint([i.task for i in train], [i.task for i in test])
    with pytest.raises(LRControlError, match="share the data sets letter"):
        check_disjoint(["letter-mlp"], ["letter-logreg(inputs='raw')"])


@pytest.mark.parametrize(
    ("n", "families", "message"),
    [
        (0, FAMILIES, "whole number ≥ 1"),
        (True, FAMILIES, "whole number ≥ 1"),
        (5, ("tabular", "vision"), "unknown families"),
        (5, (), "unknown families"),
    ],
)
def test_bad_generator_input_fails_clearly(n, families, message):
    with pytest.raises(LRControlError, match=message):
        generate(n, 0, families)


def test_dataset_of_an_unknown_task_fails_clearly():
    with pytest.raises(LRControlError, match="unknown task"):
        dataset_of("cifar-resnet")
