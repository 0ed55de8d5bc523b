"""The Task interface: what the run engine trains.

A `Task` is a frozen, hashable description (name, version, default budget, primary metric…);
`task.build(seed)` gives a `TaskInstance` holding a freshly initialised model and the data, with

- `train_batches(generator)`: an infinite iterator of training batches, deterministic given the
  generator (the run engine owns the generator, so a resumed run can replay the batch stream);
- `loss(model, batch)`: the scalar training loss of one batch;
- `evaluate(model, split)`: metrics on "val" or "test", always including "loss".

The same seed gives the same initial model, bit for bit, and does not disturb torch's global RNG.
Splits are fixed per task version (they never depend on the seed): a run's seed varies the
initialisation and the order of the batches, not the data it is judged on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

SPLITS = ("val", "test")
#: splits `evaluate` accepts: the training split too, for tasks that record their final training metrics
EVAL_SPLITS = (*SPLITS, "train")
# Every task's meta_features() has these keys, so that selectors can compare tasks across families.
CORE_META_KEYS = (
    "family",
    "size",
    "budget",
    "batch_size",
    "eval_every",
    "kind",
    "params",
    "examples",
    "classes",
    "input_dim",
)


@dataclass(frozen=True, kw_only=True)
class Task:
    """A trainable problem with its default budget and primary metric.

    Families subclass this with their own fields (the function and dimension, the data set and
    model…); everything that changes what is trained is a field, so equal tasks are equal objects.
    `version` is bumped whenever data, model or split changes: it is part of the run key.
    """

    name: str
    version: str
    family: str
    size: str
    budget: int
    batch_size: int
    eval_every: int
    metric: str
    higher_is_better: bool
    target: float | None = None
    description: str = ""
    #: also record the final metrics on the training split (a task parameter, see lrcontrol.tasks.params)
    train_metric: bool = False

    def build(self, seed: int) -> TaskInstance:
        """A fresh instance (model initialised from `seed`, data loaded); deterministic for a seed."""
        raise NotImplementedError

    def meta_features(self) -> dict[str, float | int | str]:
        """Static features of the task (no training): parameters, examples, classes, batch size, kind…"""
        raise NotImplementedError

    def train_examples(self) -> int:
        """Examples in the training split (what an epoch passes over)."""
        return int(self.meta_features()["examples"])

    @property
    def key(self) -> str:
        """`name@version/size`: identifies the task in a run key."""
        return f"{self.name}@{self.version}/{self.size}"

    def base_meta(self) -> dict[str, float | int | str]:
        return {
            "family": self.family,
            "size": self.size,
            "budget": self.budget,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
        }


class TaskInstance:
    """A built task: a model and the data to train and judge it on (see the module docstring)."""

    task: Task
    model: torch.nn.Module

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, split: str = "val") -> dict[str, float]:
        raise NotImplementedError


def check_split(split: str, train: bool = False) -> None:
    """Reject an unknown split; `train=True` for instances that can also evaluate their training split."""
    from lrcontrol.errors import LRControlError

    allowed = EVAL_SPLITS if train else SPLITS
    if split not in allowed:
        raise LRControlError(f"unknown split {split!r}; choose one of {', '.join(allowed)}")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for model construction without changing it for the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """No gradients and eval mode, restoring the model's training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
