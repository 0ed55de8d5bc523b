"""Task parameters: canonical names and keys, the declared arguments, the LIBSVM head and scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcontrol.bench.engine import run
from lrcontrol.errors import LRControlError
from lrcontrol.tasks import get_task
from lrcontrol.tasks.params import TASK_PARAMS
from lrcontrol.tasks.tabular import libsvm_scale, prepared_splits, standardised_splits


def test_a_plain_name_keeps_its_key_and_an_argument_equal_to_the_default_is_dropped():
    plain = get_task("iris-logreg", "smoke")
    assert plain.key == "iris-logreg@1/smoke"
    assert get_task("iris-logreg(batch=32, head='softmax', inputs='standard')", "smoke") == plain


def test_arguments_are_canonical_and_round_trip():
    task = get_task('wine-logreg(train_metric=True, inputs="libsvm", epochs=3, batch=16, head="sigmoid")', "smoke")
    assert task.name == 'wine-logreg(batch=16, epochs=3, head="sigmoid", inputs="libsvm", train_metric=True)'
    assert get_task(task.name, "smoke") == task
    assert task.batch_size == 16
    train = len(prepared_splits("wine", "libsvm")["train"][1])
    assert task.budget == 3 * (train // 16)


def test_every_declared_parameter_is_one_line_with_a_doc_and_a_family():
    names = [p.name for p in TASK_PARAMS]
    # batch and fraction are applied before epochs reads them; the length before evals reads the budget
    assert names.index("batch") < names.index("fraction") < names.index("epochs") < names.index("evals")
    assert names.index("steps") < names.index("evals")
    assert all(p.param.doc and p.families for p in TASK_PARAMS)


def test_sigmoid_head_is_linear_sigmoid_then_log_softmax_nll():
    task = get_task('iris-logreg(head="sigmoid")', "smoke")
    instance = task.build(0)
    x, y = instance.splits["train"]
    linear = instance.model[0]
    expected = torch.nn.functional.nll_loss(torch.log_softmax(torch.sigmoid(linear(x[:8])), -1), y[:8])
    assert torch.allclose(instance.loss(instance.model, (x[:8], y[:8])), expected)


def test_libsvm_scaling_puts_features_in_minus_one_one_then_unit_column_norms():
    raw = np.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 6.0]])
    scaled = libsvm_scale(raw)
    np.testing.assert_allclose(np.linalg.norm(scaled[:, [0, 2]], axis=0), 1.0)
    assert (scaled[:, 1] == 0).all()  # a constant feature is 0, as svm-scale writes it
    np.testing.assert_allclose(scaled[:, 0] * np.sqrt(2), [-1.0, 1.0, 0.0])


def test_raw_inputs_are_the_data_as_loaded_and_standard_is_unchanged():
    from lrcontrol.data.tabular import load_tabular

    raw = prepared_splits("iris", "raw")
    assert raw["train"][0].min() >= load_tabular("iris").features.min()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(
            standardised_splits("iris")[split][0], prepared_splits("iris", "standard")[split][0]
        )


def test_train_metric_records_the_training_split_and_is_absent_otherwise():
    with_train = run(get_task("iris-logreg(train_metric=True)", "smoke"), "adam(lr=0.05)", 0)
    assert set(with_train.train) == {"loss", "accuracy"}
    plain = run(get_task("iris-logreg", "smoke"), "adam(lr=0.05)", 0)
    assert "train" not in plain.to_dict()  # stored runs of plain tasks are byte for byte what they were
    assert plain.val == with_train.val


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("iris-logreg(bach=3)", "did you mean 'batch'"),
        ("iris-logreg(batch=0)", "batch must be in"),
        ("iris-logreg(head='tanh')", "not one of"),
        ("iris-logreg(3)", "keywords only"),
        ("iris-logreg(batch=1", "write arguments like"),
        ("iris-logreg(batch=1, batch=2)", "given twice"),
        ("sphere-10(batch=3)", "takes no argument"),
        ("iris-logreg(epochs=2.5)", "must be an integer"),
        ("iris-logreg(batch=1e9)", "fewer than the batch size"),
        ("iris-logreg(width=8)", "takes no argument 'width'"),
        ("fmnist-finetune(depth=2)", "takes no argument 'depth'"),
        ("iris-mlp(epochs=2, steps=10)", "epochs or as steps, not both"),
        ("iris-mlp(fraction=0)", "fraction must be in"),
        ("iris-mlp(label_noise=1.0)", "label_noise must be in"),
        ("sphere-10(batch=4)", "takes no argument 'batch'"),
        ("shakespeare-transformer(width=31)", "must be a multiple of its"),
        ("mnist1d-cnn(depth=2)", "takes no argument 'depth'"),
        ("iris-mlp(fraction=0.01)", "fewer than the batch size"),
    ],
)
def test_bad_task_arguments_fail_with_a_clear_message(name, message):
    with pytest.raises(LRControlError, match=message):
        get_task(name, "smoke").build(0)


def test_new_arguments_are_canonical_and_change_the_key():
    task = get_task("vowel-mlp(label_noise=0.2, depth=3, width=16, evals=10, steps=300, fraction=0.5)", "smoke")
    assert task.name == "vowel-mlp(fraction=0.5, steps=300, evals=10, width=16, depth=3, label_noise=0.2)"
    assert get_task(task.name, "smoke") == task
    assert task.key != get_task("vowel-mlp", "smoke").key
    assert (task.budget, task.eval_every) == (300, 30)
    assert get_task("vowel-mlp(width=64, depth=2)", "smoke").name == "vowel-mlp"  # the task's own shape
    assert get_task("sphere-10(steps=1000)").name == "sphere-10"  # the task's own budget


def test_width_and_depth_shape_the_models():
    hidden = [
        m.out_features
        for m in get_task("iris-mlp(width=8, depth=3)", "smoke").build(0).model
        if isinstance(m, torch.nn.Linear)
    ]
    assert hidden == [8, 8, 8, 3]
    image = get_task("fmnist-mlp(width=32, depth=1)", "smoke").build(0).model
    assert [m.out_features for m in image if isinstance(m, torch.nn.Linear)] == [32, 10]
    assert get_task("fmnist-cnn(width=4)", "smoke").build(0).model[0].out_channels == 4
    assert get_task("mnist1d-cnn(width=10)", "smoke").build(0).model[1].out_channels == 10
    lm = get_task("shakespeare-transformer(width=16, depth=1, context=8)", "smoke")
    assert (lm.width, lm.layers, lm.context) == (16, 1, 8)
    assert lm.build(0).model.position.weight.shape == (8, 16)


def test_fraction_and_label_noise_change_only_the_training_split_and_not_with_the_seed():
    plain = get_task("vowel-mlp", "smoke").build(0).splits
    task = get_task("vowel-mlp(fraction=0.5, label_noise=0.3)", "smoke")
    a, b = task.build(0).splits, task.build(1).splits
    assert len(a["train"][1]) == round(0.5 * len(plain["train"][1]))
    assert torch.equal(a["train"][0], b["train"][0]) and torch.equal(a["train"][1], b["train"][1])
    for split in ("val", "test"):
        assert torch.equal(a[split][1], plain[split][1])
    clean = get_task("vowel-mlp(fraction=0.5)", "smoke").build(0).splits["train"]
    assert torch.equal(clean[0], a["train"][0])
    flipped = (clean[1] != a["train"][1]).float().mean().item()
    assert 0.2 < flipped < 0.4  # about 30 % of the labels, each to a different class
    assert task.meta_features()["examples"] == len(a["train"][1])


def test_epochs_count_the_kept_fraction_and_steps_set_the_budget():
    task = get_task("vowel-mlp(fraction=0.5, epochs=2)", "smoke")
    assert task.budget == 2 * (len(task.build(0).splits["train"][1]) // task.batch_size)
    noisy = get_task("sphere-10-noisy(batch=8, steps=40)", "smoke")
    assert (noisy.batch_size, noisy.budget) == (8, 40)
    assert run(noisy, "sgd(lr=0.01)", 0).steps == 40


def test_lrcontrol_tasks_lists_every_argument():
    import json

    from typer.testing import CliRunner

    from lrcontrol.cli import app

    result = CliRunner().invoke(app, ["tasks", "--arguments", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [e["argument"] for e in listed] == [p.name for p in TASK_PARAMS]
    assert all(e["meaning"] and e["tasks"] for e in listed)
