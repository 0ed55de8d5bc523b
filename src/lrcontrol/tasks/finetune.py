"""Fine-tuning: an MLP pretrained on Fashion-MNIST's first five classes, fine-tuned on the other five.

The setting where practitioners meet discriminative rates ("lower learning rates for pretrained
layers", Howard & Ruder 2018) and where an LR method has to work from a good starting point
instead of a random one.

- Pretraining (the project's own code, from the offline data): the model below with a 5-way head,
  trained on the training split's images of classes 0–4 (T-shirt/top, Trouser, Pullover, Dress,
  Coat) with Adam(lr=1e-3), `PRETRAIN` steps of random batches, seed 0, on one thread (so the
  weights do not depend on the caller's thread count). The backbone's weights are cached in
  `<cache>/pretrained/` (see `lrcontrol.data.cache`) under a name that holds the task version and a
  fingerprint of the data they were trained on, written atomically, loaded with
  `torch.load(weights_only=True)` (no code runs), and rebuilt — bit for bit the same — when missing.
  Smoke size: 60 steps of 32 images; default: 800 steps of 128 of the 27 500 images (2–3 min on a
  heavily shared 2-core machine), then cached.
- Fine-tuning: classes 5–9 (Sandal, Shirt, Sneaker, Bag, Ankle boot), relabelled 0–4: the first
  `train` training images of those classes (little data, as fine-tuning usually has), and the val
  and test images of those classes from the fixed Fashion-MNIST splits (`lrcontrol.tasks.image`).
- Model `FinetuneMLP`: `backbone` = flatten → 784→256 → ReLU → 256→128 → ReLU (pretrained), and a
  fresh `head` = 128→5 initialised from the run's seed. Parameter names (`backbone.1.weight`, …,
  `head.bias`) are what `discriminative(patterns={"backbone.*": 0.1})` matches.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lrcontrol.data.cache import cache_dir
from lrcontrol.tasks.base import seeded
from lrcontrol.tasks.classification import ClassificationInstance, ClassificationTask, classification_meta
from lrcontrol.tasks.image import _Standardise, image_splits
from lrcontrol.tasks.registry import register_task

FINETUNE_VERSION = "1"
PRETRAIN_SEED = 0
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)
FINETUNE_CLASSES = (5, 6, 7, 8, 9)
#: pretraining steps and batch size, per size
PRETRAIN = {"smoke": (60, 32), "default": (800, 128)}
#: fine-tuning images of the new classes, per size
FINETUNE_TRAIN = {"smoke": 200, "default": 1000}
#: (budget, eval_every, batch_size)
_BUDGETS = {"smoke": (20, 10, 16), "default": (300, 50, 32)}


class FinetuneMLP(torch.nn.Module):
    """A pretrained `backbone` (784→256→128, ReLU) and a fresh linear `head`."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU()
        )
        self.head = torch.nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _subset(split: tuple[torch.Tensor, torch.Tensor], classes: tuple[int, ...], limit: int | None = None):
    images, labels = split
    keep = torch.isin(labels, torch.tensor(classes)).nonzero().flatten()[:limit]
    return images[keep].contiguous(), labels[keep] - min(classes)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def pretrain(size: str) -> dict[str, torch.Tensor]:
    """Train the backbone on classes 0–4 (deterministic: seed 0, one thread); its state dict."""
    splits, mean, std = image_splits(size)
    images, labels = _subset(splits["train"], PRETRAIN_CLASSES)
    prepare = _Standardise(mean, std)
    steps, batch = PRETRAIN[size]
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(PRETRAIN_SEED)
        model = FinetuneMLP(len(PRETRAIN_CLASSES))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(PRETRAIN_SEED)
        for _ in range(steps):
            index = torch.randint(0, len(labels), (batch,), generator=generator)
            loss = F.cross_entropy(model(prepare(images[index])), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}


def pretrained_path(size: str) -> Path:
    """Where the backbone for `size` is cached: the name holds the version and a data fingerprint."""
    splits, _, _ = image_splits(size)
    images, labels = _subset(splits["train"], PRETRAIN_CLASSES)
    digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()[:16]
    return cache_dir() / "pretrained" / f"fmnist-mlp-c01234-{size}-v{FINETUNE_VERSION}-{digest}.pt"


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrained_backbone(size: str) -> dict[str, torch.Tensor]:
    """The cached backbone weights, pretrained (and cached, atomically) if missing."""
    path = pretrained_path(size)
    if not path.exists():
        state = pretrain(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # concurrent workers write identical files; the last rename wins
    return _load(path)


@dataclass(frozen=True, kw_only=True)
class FinetuneTask(ClassificationTask):
    """Fine-tune a backbone pretrained on Fashion-MNIST classes 0–4 on classes 5–9."""

    dataset: str = "fmnist"
    model: str = "mlp"

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        splits, _, _ = image_splits(self.size)
        subsets = {
            "train": _subset(splits["train"], FINETUNE_CLASSES, FINETUNE_TRAIN[self.size]),
            "val": _subset(splits["val"], FINETUNE_CLASSES),
            "test": _subset(splits["test"], FINETUNE_CLASSES),
        }
        return self.training_split(subsets, len(FINETUNE_CLASSES))

    def build(self, seed: int) -> ClassificationInstance:
        _, mean, std = image_splits(self.size)
        backbone = pretrained_backbone(self.size)
        with seeded(seed):
            model = FinetuneMLP(len(FINETUNE_CLASSES))
        model.backbone.load_state_dict(backbone)
        return ClassificationInstance(self, model, self.splits(), prepare=_Standardise(mean, std))

    def meta_features(self) -> dict[str, float | int | str]:
        splits = self.splits()
        with seeded(0):
            model = FinetuneMLP(len(FINETUNE_CLASSES))
        meta = classification_meta(
            self, splits["train"][1].numpy(), len(splits["val"][1]), model, len(FINETUNE_CLASSES), 784
        )
        return {**meta, "pretrained": 1}


def make_finetune(size: str = "default") -> FinetuneTask:
    budget, eval_every, batch_size = _BUDGETS[size]
    return FinetuneTask(
        name="fmnist-finetune",
        version=FINETUNE_VERSION,
        family="image",
        size=size,
        budget=budget,
        batch_size=batch_size,
        eval_every=eval_every,
        metric="accuracy",
        higher_is_better=True,
        target=0.9,
        description="MLP pretrained on Fashion-MNIST classes 0-4, fine-tuned on classes 5-9 (1 000 images)",
    )


register_task("fmnist-finetune", "image", make_finetune)
