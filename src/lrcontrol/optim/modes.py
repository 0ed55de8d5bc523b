"""Train/eval modes of optimizers that have them (Schedule-Free), as context managers.

Schedule-Free optimizers keep two sequences of parameters: training steps must run in
`optimizer.train()` mode and evaluation (and checkpoints meant for evaluation) in `optimizer.eval()`
mode. For every other optimizer these helpers do nothing, so callers can use them unconditionally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def set_train_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    if has_modes(optimizer):
        optimizer.train() if train else optimizer.eval()


@contextmanager
def eval_mode(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Evaluate inside `with eval_mode(optimizer):`; training mode is restored afterwards."""
    set_train_mode(optimizer, False)
    try:
        yield
    finally:
        set_train_mode(optimizer, True)
