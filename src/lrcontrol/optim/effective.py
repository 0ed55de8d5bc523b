"""The effective step size of each param group: what logs and reports show for an optimizer.

For most optimizers it is the group's LR; an LR-free optimizer (D-Adaptation, Prodigy, DoG, COCOB, …)
multiplies the LR by its own estimate, and registers how to read that estimate in `EFFECTIVE_LR`
when its module is imported.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# type(optimizer) -> function(optimizer, group_index) -> effective step size of that group.
EFFECTIVE_LR: dict[type, Callable[[torch.optim.Optimizer, int], float]] = {}


def effective_lr(optimizer: torch.optim.Optimizer, group_index: int) -> float:
    """The step size the optimizer applies to a group: its LR, times its own estimate if it has one."""
    for cls in type(optimizer).__mro__:
        fn = EFFECTIVE_LR.get(cls)
        if fn is not None:
            return float(fn(optimizer, group_index))
    return float(optimizer.param_groups[group_index]["lr"])
