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
    assert [p.name for p in TASK_PARAMS][:2] == ["batch", "epochs"]  # batch is applied before epochs reads it
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
    ],
)
def test_bad_task_arguments_fail_with_a_clear_message(name, message):
    with pytest.raises(LRControlError, match=message):
        get_task(name, "smoke").build(0)
