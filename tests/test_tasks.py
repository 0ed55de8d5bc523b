"""Tasks: the registry, the Task interface contract, synthetic functions, tabular tasks, the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lrcontrol.errors import LRControlError
from lrcontrol.tasks import FAMILIES, get_task, list_tasks
from lrcontrol.tasks.synthetic import FUNCTIONS, make_synthetic


@pytest.fixture(autouse=True)
def _never_download(monkeypatch):
    monkeypatch.setenv("LRCONTROL_OFFLINE", "1")


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


# --- image, sequence and language tasks on stand-in data (the real sets are not needed by the tests) ------


@pytest.fixture
def fake_fashion_mnist(monkeypatch):
    """7 000 train and 1 200 test images whose first two pixels spell the image's index."""
    from lrcontrol.data import fashion_mnist
    from lrcontrol.tasks import image

    def images(count: int, offset: int) -> np.ndarray:
        rng = np.random.default_rng(offset)
        array = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        index = np.arange(offset, offset + count)
        array[:, 0, 0], array[:, 0, 1] = index // 256, index % 256
        return array

    data = fashion_mnist.ImageData(
        train_images=images(7000, 0),
        train_labels=np.arange(7000, dtype=np.int64) % 10,
        test_images=images(1200, 7000),
        test_labels=np.arange(1200, dtype=np.int64) % 10,
    )
    monkeypatch.setattr(fashion_mnist, "load_cached", lambda: data)
    image.image_splits.cache_clear()
    yield data
    image.image_splits.cache_clear()


def _indices(images: torch.Tensor) -> set[int]:
    return set((images[:, 0, 0].long() * 256 + images[:, 0, 1].long()).tolist())


def test_fashion_mnist_smoke_splits_are_disjoint_and_sized(fake_fashion_mnist):
    from lrcontrol.tasks.image import image_splits

    splits, mean, std = image_splits("smoke")
    train, val, test = (_indices(splits[s][0]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (2000, 500, 1000)
    assert not train & val and max(train | val) < 7000 and min(test) >= 7000
    assert 0.45 < mean < 0.55 and 0.25 < std < 0.35  # uniform pixels: mean ½, std ≈ 0.29


def test_fashion_mnist_models_have_the_documented_shapes_and_train(fake_fashion_mnist):
    mlp_task = get_task("fmnist-mlp", "smoke")
    instance = mlp_task.build(0)
    assert [tuple(p.shape) for p in instance.model.parameters() if p.ndim == 2] == [(256, 784), (128, 256), (10, 128)]
    inputs, labels = next(instance.train_batches(torch.Generator().manual_seed(0)))
    assert inputs.shape == (mlp_task.batch_size, 1, 28, 28) and inputs.dtype == torch.float32
    cnn = get_task("fmnist-cnn", "smoke").build(0)
    assert cnn.model(inputs).shape == (mlp_task.batch_size, 10)
    assert cnn.evaluate(cnn.model, "test").keys() == {"loss", "accuracy"}
    meta = get_task("fmnist-cnn", "smoke").meta_features()
    assert meta["params"] == sum(p.numel() for p in cnn.model.parameters()) and meta["examples"] == 2000


@pytest.fixture
def fake_mnist1d(monkeypatch):
    from lrcontrol.data import mnist1d
    from lrcontrol.tasks import sequence

    rng = np.random.default_rng(0)
    data = {
        "x": rng.standard_normal((4000, 40)),
        "y": np.arange(4000, dtype=np.int64) % 10,
        "x_test": rng.standard_normal((1000, 40)),
        "y_test": np.arange(1000, dtype=np.int64) % 10,
    }
    monkeypatch.setattr(mnist1d, "load_cached", lambda: data)
    sequence.signal_splits.cache_clear()
    yield data
    sequence.signal_splits.cache_clear()


def test_mnist1d_splits_and_models(fake_mnist1d):
    task = get_task("mnist1d-cnn")
    instance = task.build(0)
    sizes = {split: len(y) for split, (_, y) in instance.splits.items()}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    assert torch.equal(instance.splits["val"][0], torch.from_numpy(fake_mnist1d["x"][-500:].astype(np.float32)))
    assert len(get_task("mnist1d-mlp", "smoke").build(0).splits["train"][1]) == 1000
    inputs, _ = next(instance.train_batches(torch.Generator().manual_seed(0)))
    assert instance.model(inputs).shape == (task.batch_size, 10)
    mlp_params = get_task("mnist1d-mlp").meta_features()["params"]
    assert mlp_params == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


@pytest.fixture
def fake_corpus(monkeypatch):
    from lrcontrol.tasks import language

    documents = tuple(f"document {i}: " + "to be or not to be, that is the question. " * 400 for i in range(10))
    monkeypatch.setattr(language, "load_corpus", lambda corpus: documents)
    language.encoded_corpus.cache_clear()
    yield documents
    language.encoded_corpus.cache_clear()


def test_language_splits_cover_the_corpus_in_order_and_decode_back(fake_corpus):
    from lrcontrol.tasks.language import encoded_corpus

    splits, vocabulary = encoded_corpus("shakespeare")
    codes = torch.cat([splits["train"], splits["val"], splits["test"]])
    text = "".join(vocabulary[int(c)] for c in codes)
    assert sorted(text.split("\n\n")) == sorted(fake_corpus)
    assert vocabulary == "".join(sorted(set("\n\n".join(fake_corpus))))
    assert len(splits["train"]) == int(0.9 * len(codes))


def test_language_batches_predict_the_next_character(fake_corpus):
    task = get_task("shakespeare-transformer", "smoke")
    instance = task.build(0)
    inputs, targets = next(instance.train_batches(torch.Generator().manual_seed(0)))
    assert inputs.shape == targets.shape == (task.batch_size, task.context)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_the_transformer_is_causal(fake_corpus):
    instance = get_task("bbc-transformer", "smoke").build(0)
    tokens = torch.randint(0, 10, (2, 16))
    changed = tokens.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 10
    with torch.no_grad():
        before, after = instance.model(tokens), instance.model(changed)
    assert torch.allclose(before[:, :10], after[:, :10], atol=1e-6)
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_language_model_learns_a_repetitive_text_and_reports_perplexity(fake_corpus):
    task = get_task("shakespeare-transformer", "smoke")
    instance = task.build(0)
    before = instance.evaluate(instance.model)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(instance.model.parameters(), lr=1e-2)
    for batch in itertools.islice(instance.train_batches(generator), 40):
        loss = instance.loss(instance.model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = instance.evaluate(instance.model)
    assert before["loss"] > math.log(10)  # about uniform over the vocabulary at the start
    assert after["loss"] < 0.6 * before["loss"]
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]))
    assert after["bits_per_char"] == pytest.approx(after["loss"] / math.log(2))


# --- the `lrcontrol tasks` command ---------------------------------------------------------------------------


def _cli(*args: str):
    from typer.testing import CliRunner

    from lrcontrol.cli import app

    return CliRunner().invoke(app, ["tasks", *args])


def test_cli_lists_a_family_as_json_with_sizes_and_meta_features():
    result = _cli("--family", "synthetic", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == list_tasks("synthetic")
    sphere = next(e for e in entries if e["name"] == "sphere-50-noisy")
    assert sphere["sizes"]["smoke"]["budget"] == 50 and sphere["sizes"]["default"]["budget"] == 1000
    assert sphere["metric"] == "regret" and sphere["higher_is_better"] is False
    assert sphere["meta_features"]["noise"] == 0.1 and sphere["meta_features"]["params"] == 50


def test_cli_describes_named_tasks_including_any_dimension():
    result = _cli("sphere-7", "iris-logreg", "--size", "smoke", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == ["sphere-7", "iris-logreg"]
    assert entries[1]["meta_features"]["classes"] == 3 and entries[1]["meta_features"]["budget"] == 30


def test_cli_table_names_every_task_of_the_family():
    result = _cli("--family", "synthetic", "--no-meta")
    assert result.exit_code == 0
    for name in ("himmelblau", "eggholder", "camel3"):
        assert name in result.stdout


def test_cli_reports_a_task_whose_data_is_missing_without_failing(monkeypatch, tmp_path):
    from lrcontrol.data.cache import DataUnavailable
    from lrcontrol.tasks import image

    def unavailable(size):
        raise DataUnavailable("Fashion-MNIST is not installed; install it with `apt-get install dataset-fashion-mnist`")

    monkeypatch.setattr(image, "image_splits", unavailable)
    result = _cli("fmnist-mlp", "--json")
    assert result.exit_code == 0
    entry = json.loads(result.stdout)[0]
    assert entry["meta_features"] is None and "apt-get install dataset-fashion-mnist" in entry["data_error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spere-10"], "did you mean 'sphere-10'"),
        (["--size", "big"], "unknown task size 'big'"),
        (["--family", "vision"], "unknown family 'vision'"),
        (["beale-3"], "2 dimensions only"),
    ],
)
def test_cli_bad_input_exits_2_with_one_clear_line(args, message):
    result = _cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_cli_help_shows_an_example():
    result = _cli("--help")
    assert result.exit_code == 0 and "lrcontrol tasks --family tabular" in result.stdout


# --- docs/tasks.md ------------------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"


def test_the_docs_list_every_registered_task_with_its_target():
    text = DOCS.read_text()
    for name in list_tasks():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        assert row.split(" | ")[8] == f"{get_task(name).target:g}", name


def test_the_python_example_in_the_docs_runs(capsys):
    example = DOCS.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, str(DOCS), "exec"), {})
    assert capsys.readouterr().out.startswith("accuracy ")


def test_tasks_pickle_for_worker_processes():
    import pickle

    for name in ("sphere-50-noisy", "iris-mlp", "fmnist-cnn", "mnist1d-mlp", "bbc-transformer"):
        for size in ("smoke", "default"):
            task = get_task(name, size)
            assert pickle.loads(pickle.dumps(task)) == task


def test_building_a_network_task_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    get_task("breast_cancer-mlp", "smoke").build(3)
    assert torch.equal(torch.rand(4), expected)


def test_every_family_reports_the_core_meta_features(fake_fashion_mnist, fake_mnist1d, fake_corpus):
    from lrcontrol.tasks.base import CORE_META_KEYS

    for name in ("sphere-10", "iris-mlp", "fmnist-mlp", "mnist1d-cnn", "shakespeare-transformer"):
        meta = get_task(name, "smoke").meta_features()
        assert set(CORE_META_KEYS) <= set(meta), name
        assert all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in meta.values()), name


def test_a_corpus_too_short_for_the_context_is_refused(monkeypatch):
    from lrcontrol.tasks import language

    monkeypatch.setattr(language, "load_corpus", lambda corpus: ("tiny text",) * 5)
    language.encoded_corpus.cache_clear()
    try:
        with pytest.raises(LRControlError, match="too few for a context of 32"):
            get_task("bbc-transformer", "smoke").build(0)
    finally:
        language.encoded_corpus.cache_clear()
