"""The in-memory classification instance shared by the tabular, image and sequence families.

Training batches are drawn without replacement: each epoch is a fresh permutation from the run's
generator, cut into full batches (the last partial batch is dropped, so every step sees
`batch_size` examples). Evaluation is the mean cross-entropy and the accuracy over the whole split,
computed in chunks so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lrcontrol.errors import LRControlError
from lrcontrol.tasks.base import Task, TaskInstance, check_split, count_parameters, evaluating

Batch = tuple[torch.Tensor, torch.Tensor]
EVAL_CHUNK = 2048


class ClassificationInstance(TaskInstance):
    """Inputs and integer labels per split; `prepare` turns stored inputs (e.g. uint8 pixels) into model input."""

    def __init__(
        self,
        task: Task,
        model: torch.nn.Module,
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.task = task
        self.model = model
        self.splits = splits
        self.prepare = prepare or (lambda x: x)
        train_size = len(splits["train"][1])
        if train_size < task.batch_size:
            raise LRControlError(
                f"task {task.name}: {train_size} training examples, fewer than the batch size {task.batch_size}"
            )

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        inputs, labels = self.splits["train"]
        size, batch = len(labels), self.task.batch_size
        while True:
            order = torch.randperm(size, generator=generator)
            for start in range(0, size - batch + 1, batch):
                index = order[start : start + batch]
                yield self.prepare(inputs[index]), labels[index]

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        inputs, labels = batch
        return F.cross_entropy(model(inputs), labels)

    def evaluate(self, model: torch.nn.Module, split: str = "val") -> dict[str, float]:
        check_split(split, train=True)
        inputs, labels = self.splits[split]
        total_loss, correct = 0.0, 0
        with evaluating(model):
            for start in range(0, len(labels), EVAL_CHUNK):
                logits = model(self.prepare(inputs[start : start + EVAL_CHUNK]))
                target = labels[start : start + EVAL_CHUNK]
                total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(-1) == target).sum())
        return {"loss": total_loss / len(labels), "accuracy": correct / len(labels)}


def mlp(sizes: list[int]) -> torch.nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[torch.nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if index:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(fan_in, fan_out))
    return torch.nn.Sequential(*layers)


def classification_meta(
    task: Task, train_labels: Any, val_size: int, model: torch.nn.Module, classes: int, input_dim: int
) -> dict[str, float | int | str]:
    """The static meta-features every classification task reports (the same keys across families)."""
    counts = np.bincount(np.asarray(train_labels), minlength=classes)
    train = int(counts.sum())
    return {
        **task.base_meta(),
        "kind": "classification",
        "model": task.model,
        "params": count_parameters(model),
        "examples": train,
        "val_examples": val_size,
        "classes": classes,
        "input_dim": input_dim,
        "class_imbalance": float(counts.max() / max(counts.min(), 1)),
        "epochs": task.budget * task.batch_size / train,
    }


#: seeds of the fixed training subset and of the label noise (part of the task version, never the run's seed)
SUBSET_SEED, NOISE_SEED = 0, 1


@dataclass(frozen=True, kw_only=True)
class ClassificationTask(Task):
    """A task trained on an in-memory training split: the task arguments `fraction` (keep a fixed
    subset of the training split) and `label_noise` (replace that fraction of the training labels by a
    different class drawn uniformly) change the training split only; val and test stay as they are."""

    train_fraction: float = 1.0
    label_noise: float = 0.0

    def training_split(self, splits: dict[str, Any], classes: int) -> dict[str, Any]:
        """`splits` with the training split cut to `train_fraction` and `label_noise` applied (the same
        subset and the same flipped labels for every seed: they belong to the task, not the run)."""
        if self.train_fraction >= 1.0 and self.label_noise <= 0.0:
            return splits
        inputs, labels = splits["train"]
        is_tensor = isinstance(labels, torch.Tensor)
        array = labels.numpy() if is_tensor else np.asarray(labels)
        keep = max(1, round(self.train_fraction * len(array)))
        index = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(array))[:keep])
        kept = array[index].copy()
        if self.label_noise > 0.0 and classes > 1:
            rng = np.random.default_rng(NOISE_SEED)
            flip = rng.random(len(kept)) < self.label_noise
            # a shift in 1..k−1 modulo k: a flipped label is always a different class
            kept[flip] = (kept[flip] + rng.integers(1, classes, int(flip.sum()))) % classes
        if is_tensor:
            new = (inputs[torch.from_numpy(index)].contiguous(), torch.from_numpy(kept))
        else:
            new = (inputs[index], kept)
        return {**splits, "train": new}
