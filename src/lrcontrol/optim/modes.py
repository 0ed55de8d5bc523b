"""Train/eval modes of optimizers that have them (Schedule-Free), as context managers and checks.

Schedule-Free optimizers (Defazio et al. 2024) keep two sequences of parameters. In train mode the
model holds the interpolated point y_t = (1 − β)·z_t + β·x_t at which gradients are taken; in eval
mode it holds the average x_t, the point whose loss the theory bounds and that should be evaluated
and saved for deployment. So:

- training steps must run in `optimizer.train()` mode (the package raises otherwise);
- evaluation, and checkpoints meant for evaluation, must run in `optimizer.eval()` mode — nothing
  stops you from evaluating y instead, and the number is silently a different model's.

    with eval_mode(optimizer):          # x is in the model; the previous mode comes back afterwards
        val_loss = evaluate(model)
    check_eval_ready(optimizer)         # what lrcontrol's own evaluation helpers call first

For every other optimizer these helpers do nothing, so callers can use them unconditionally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lrcontrol.errors import LRControlError


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def is_train_mode(optimizer: torch.optim.Optimizer) -> bool | None:
    """True in train mode, False in eval mode, None for an optimizer without modes (or unreadable ones).

    The `schedulefree` optimizers (and pytorch_optimizer's Schedule-Free variants) keep the flag in each
    param group as "train_mode"; `schedulefree.ScheduleFreeWrapper` keeps it on the optimizer. A group in
    train mode makes the whole optimizer count as training: its weights are not the averaged ones.
    """
    if not has_modes(optimizer):
        return None
    flags = [bool(g["train_mode"]) for g in optimizer.param_groups if "train_mode" in g]
    if flags:
        return any(flags)
    flag = getattr(optimizer, "train_mode", None)
    return flag if isinstance(flag, bool) else None


def set_train_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    if has_modes(optimizer):
        optimizer.train() if train else optimizer.eval()


@contextmanager
def eval_mode(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Evaluate inside `with eval_mode(optimizer):`; the previous mode is restored afterwards.

    An optimizer that was already in eval mode stays in it; one whose mode cannot be read is put back
    in train mode, the mode training steps need.
    """
    previous = is_train_mode(optimizer)
    set_train_mode(optimizer, False)
    try:
        yield
    finally:
        set_train_mode(optimizer, previous is not False)


def _name(optimizer: torch.optim.Optimizer) -> str:
    return type(optimizer).__name__


def check_eval_ready(optimizer: torch.optim.Optimizer, action: str = "evaluate the model") -> None:
    """Raise LRControlError if the optimizer is in train mode, so the model does not hold the weights to
    evaluate (Schedule-Free: the interpolated y, not the average x). Does nothing for other optimizers.

    lrcontrol's evaluation and checkpoint-for-evaluation paths (the run engine, the LR finder) call it;
    `action` names what was about to happen, for the message.
    """
    if is_train_mode(optimizer):
        raise LRControlError(
            f"cannot {action}: {_name(optimizer)} is in train mode, so the model holds its training "
            "iterate, not the averaged weights to evaluate; wrap the evaluation in "
            "`with lrcontrol.optim.modes.eval_mode(optimizer):` (or call optimizer.eval() before it and "
            "optimizer.train() before the next step)"
        )


def check_train_ready(optimizer: torch.optim.Optimizer) -> None:
    """Raise LRControlError if the optimizer is in eval mode, where a Schedule-Free step is invalid."""
    if is_train_mode(optimizer) is False:
        raise LRControlError(
            f"{_name(optimizer)}.step() was called in eval mode; call optimizer.train() before training "
            "steps (or evaluate inside `with lrcontrol.optim.modes.eval_mode(optimizer):`, which restores "
            "train mode on exit)"
        )
