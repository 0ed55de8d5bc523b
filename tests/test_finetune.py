"""The fine-tuning task: a backbone pretrained by the project's own code, cached and rebuilt exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lrcontrol.tasks import get_task


@pytest.fixture
def fake_fashion_mnist(monkeypatch, tmp_path):
    """Stand-in images whose class shows in the pixels (so pretraining learns something), and an empty cache."""
    from lrcontrol.data import fashion_mnist
    from lrcontrol.tasks import image

    def split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        labels = np.arange(count, dtype=np.int64) % 10
        images = rng.integers(0, 128, (count, 28, 28), dtype=np.uint8)
        for c in range(10):
            images[labels == c, c * 2 : c * 2 + 3, :] += 120  # a bright band per class
        return images, labels

    (train_x, train_y), (test_x, test_y) = split(7000, 0), split(1200, 1)
    data = fashion_mnist.ImageData(train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y)
    monkeypatch.setattr(fashion_mnist, "load_cached", lambda: data)
    monkeypatch.setenv("LRCONTROL_DATA", str(tmp_path / "cache"))
    image.image_splits.cache_clear()
    yield data
    image.image_splits.cache_clear()


def test_pretrained_weights_are_cached_and_rebuilt_bit_for_bit(fake_fashion_mnist):
    from lrcontrol.tasks import finetune

    path = finetune.pretrained_path("smoke")
    assert not path.exists()
    first = finetune.pretrained_backbone("smoke")
    assert path.exists() and str(path).startswith(os.environ["LRCONTROL_DATA"])
    saved = torch.load(path, weights_only=True)  # plain tensors: loads without running code
    path.unlink()
    finetune._load.cache_clear()
    torch.set_num_threads(2)  # the weights must not depend on the caller's thread count
    try:
        rebuilt = finetune.pretrained_backbone("smoke")
    finally:
        torch.set_num_threads(1)
    assert first.keys() == rebuilt.keys() == saved.keys()
    assert all(torch.equal(first[k], rebuilt[k]) for k in first)


def test_the_task_starts_from_the_pretrained_backbone_and_fine_tunes_on_the_other_classes(fake_fashion_mnist):
    from lrcontrol.bench.engine import run
    from lrcontrol.tasks import finetune

    task = get_task("fmnist-finetune", "smoke")
    a, b = task.build(0), task.build(1)
    backbone = finetune.pretrained_backbone("smoke")
    for name, value in a.model.backbone.state_dict().items():
        assert torch.equal(value, backbone[name]) and torch.equal(b.model.backbone.state_dict()[name], value)
    assert not torch.equal(a.model.head.weight, b.model.head.weight)  # the head comes from the run's seed
    for split in ("train", "val", "test"):
        labels = a.splits[split][1]
        assert set(labels.tolist()) == {0, 1, 2, 3, 4}  # classes 5–9, relabelled
    assert len(a.splits["train"][1]) == finetune.FINETUNE_TRAIN["smoke"]
    names = [n for n, _ in a.model.named_parameters()]
    assert names[0].startswith("backbone.") and names[-1] == "head.bias"
    trajectory = run(task, 'adam(lr=0.003) + discriminative(patterns={"backbone.*": 0.1})', seed=0)
    assert trajectory.lrs[0][0] == pytest.approx(0.0003) and trajectory.lrs[0][-1] == pytest.approx(0.003)
    assert trajectory.val[-1]["accuracy"] > trajectory.val[0]["accuracy"]
