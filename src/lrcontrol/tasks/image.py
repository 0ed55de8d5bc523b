"""Fashion-MNIST image classification: an MLP 784-256-128-10 and a small CNN.

- Data: `lrcontrol.data.fashion_mnist` (the Debian package `dataset-fashion-mnist`, the cache, or a
  download). Splits: the official 10 000 test images; the 60 000 training images split by a fixed
  permutation into 55 000 train and 5 000 val. The smoke size keeps 2 000 train, 500 val and 1 000
  test images so that it builds and trains in well under a second.
- Input: pixels / 255, standardised with the mean and standard deviation of the training split.
  Images stay uint8 in memory (47 MB, not 188 MB per worker) and are converted batch by batch.
- Models: `mlp` flattens and applies 784 → 256 → 128 → 10 with ReLU; `cnn` is
  conv3×3(16, stride 2) → ReLU → conv3×3(32, stride 2) → ReLU → linear(1568 → 10).
- Metrics: "loss" (cross-entropy) and "accuracy"; the primary one is accuracy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from lrcontrol.data import fashion_mnist
from lrcontrol.tasks.base import seeded
from lrcontrol.tasks.classification import ClassificationInstance, ClassificationTask, classification_meta, mlp
from lrcontrol.tasks.registry import register_task

IMAGE_VERSION = "1"
SPLIT_SEED = 0
VAL_SIZE = 5000
_SIZES = {
    "smoke": {"train": 2000, "val": 500, "test": 1000},
    "default": {"train": None, "val": None, "test": None},
}
_BUDGETS = {
    ("mlp", "smoke"): (20, 10, 64),
    ("mlp", "default"): (800, 100, 128),
    ("cnn", "smoke"): (10, 5, 32),
    ("cnn", "default"): (500, 100, 64),
}
TARGETS = {"mlp": 0.85, "cnn": 0.82}


@functools.lru_cache(maxsize=2)
def image_splits(size: str) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float, float]:
    """uint8 image tensors and labels per split, and the training split's pixel mean and std (in [0, 1])."""
    data = fashion_mnist.load_cached()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(data.train_labels))
    train_index, val_index = order[VAL_SIZE:], order[:VAL_SIZE]
    limits = _SIZES[size]
    raw = {
        "train": (data.train_images[train_index][: limits["train"]], data.train_labels[train_index][: limits["train"]]),
        "val": (data.train_images[val_index][: limits["val"]], data.train_labels[val_index][: limits["val"]]),
        "test": (data.test_images[: limits["test"]], data.test_labels[: limits["test"]]),
    }
    splits = {split: (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)) for split, (x, y) in raw.items()}
    pixels = splits["train"][0].float() / 255.0
    return splits, float(pixels.mean()), float(pixels.std())


class _Standardise:
    """uint8 (n, 28, 28) → float (n, 1, 28, 28), standardised; a class so that instances pickle."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return ((images.float() / 255.0 - self.mean) / self.std).unsqueeze(1)


def small_cnn(width: int = 16) -> torch.nn.Sequential:
    # Strided convolutions instead of max-pooling: a quarter of the multiply-adds, so that a default
    # run takes seconds on one CPU thread.
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, width, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * width * 7 * 7, 10),
    )


def image_mlp(hidden: tuple[int, ...] = (256, 128)) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Flatten(), *mlp([784, *hidden, 10]))


@dataclass(frozen=True, kw_only=True)
class ImageTask(ClassificationTask):
    """Fashion-MNIST with model "mlp" or "cnn"; `width`/`depth` None: the default shapes above (an MLP with
    either given has `depth` hidden layers of `width` units; a CNN's `width` is its first layer's channels)."""

    dataset: str = "fmnist"
    model: str
    width: int | None = None
    depth: int | None = None

    def _model(self) -> torch.nn.Module:
        if self.model == "cnn":
            return small_cnn(self.width or 16)
        if self.width is None and self.depth is None:
            return image_mlp()
        return image_mlp((self.width or 256,) * (self.depth or 2))

    def _splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self.training_split(image_splits(self.size)[0], 10)

    def build(self, seed: int) -> ClassificationInstance:
        _, mean, std = image_splits(self.size)
        with seeded(seed):
            model = self._model()
        return ClassificationInstance(self, model, self._splits(), prepare=_Standardise(mean, std))

    def meta_features(self) -> dict[str, float | int | str]:
        splits = self._splits()
        return classification_meta(self, splits["train"][1].numpy(), len(splits["val"][1]), self._model(), 10, 784)


def make_image(model: str, size: str = "default") -> ImageTask:
    budget, eval_every, batch_size = _BUDGETS[(model, size)]
    shape = "MLP 784-256-128-10" if model == "mlp" else "CNN conv16-conv32-linear"
    return ImageTask(
        name=f"fmnist-{model}",
        version=IMAGE_VERSION,
        family="image",
        size=size,
        budget=budget,
        batch_size=batch_size,
        eval_every=eval_every,
        metric="accuracy",
        higher_is_better=True,
        target=TARGETS[model],
        description=f"{shape} on Fashion-MNIST",
        model=model,
    )


for _model in ("mlp", "cnn"):
    register_task(f"fmnist-{_model}", "image", lambda size, m=_model: make_image(m, size))
