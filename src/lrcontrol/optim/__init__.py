"""Optimizers by name, for the spec language; and the effective step size of each param group.

torch's own optimizers are registered in `torch_optim`; hyperparameter-free optimizers from their
authors' packages register themselves the same way. `effective_lr` (in `effective`) is how logs and
reports see the step size an optimizer really applies (for D-Adaptation-style optimizers, d·lr, not
lr alone).
"""

from lrcontrol.optim import cocob, dog_optim, dowg, free, schedule_free, torch_optim  # noqa: F401  (they register)
from lrcontrol.optim.effective import EFFECTIVE_LR, effective_lr

__all__ = ["EFFECTIVE_LR", "effective_lr"]
