"""Optimizers by name, for the spec language; and the effective step size of each param group.

torch's own optimizers are registered in `torch_optim`; hyperparameter-free optimizers from their
authors' packages register themselves the same way. `effective_lr` is how logs and reports see the
step size an optimizer really applies (for D-Adaptation-style optimizers, d·lr, not lr alone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lrcontrol.optim import torch_optim  # noqa: F401  (registers torch's optimizers)

# type(optimizer) -> function(optimizer, group_index) -> effective step size of that group.
EFFECTIVE_LR: dict[type, Callable[[torch.optim.Optimizer, int], float]] = {}


def effective_lr(optimizer: torch.optim.Optimizer, group_index: int) -> float:
    """The step size the optimizer applies to a group: its LR, times its own estimate if it has one."""
    for cls in type(optimizer).__mro__:
        fn = EFFECTIVE_LR.get(cls)
        if fn is not None:
            return float(fn(optimizer, group_index))
    return float(optimizer.param_groups[group_index]["lr"])


from lrcontrol.optim import cocob, dog_optim, dowg, free, schedule_free  # noqa: E402,F401  (LR-free; need EFFECTIVE_LR)
