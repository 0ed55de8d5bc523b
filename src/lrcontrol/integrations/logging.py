"""What a controller is worth logging, as flat name → number pairs, and one call to send them anywhere.

    from lrcontrol.integrations.logging import log_controller
    writer = torch.utils.tensorboard.SummaryWriter(log_dir)        # or a Lightning logger, or any
    log_controller(writer, controller, step=global_step)            # object with log_metrics(metrics, step)

Per param group i: `lr/group{i}` (the LR the controller set) and `effective_lr/group{i}` (the step
size the optimizer really applies: d·lr for Prodigy, D-Adaptation and the like; the LR otherwise).
Then `t`, `skipped_steps` and every observable of the controller's factors (e.g. a plateau rule's
`scale` and `cuts`), lists flattened to one value per group.
"""

from __future__ import annotations

import math
from typing import Any

from lrcontrol.control.controller import LRController
from lrcontrol.errors import LRControlError


def controller_metrics(controller: LRController, prefix: str = "lrcontrol/") -> dict[str, float]:
    """The controller's LRs, effective LRs and observables as `{name: float}` (non-numbers left out)."""
    out: dict[str, float] = {}
    for i, (lr, eff) in enumerate(zip(controller.lrs, controller.effective_lrs())):
        out[f"{prefix}lr/group{i}"] = float(lr)
        out[f"{prefix}effective_lr/group{i}"] = float(eff)
    out[f"{prefix}t"] = float(controller.t)
    out[f"{prefix}skipped_steps"] = float(controller.skipped_steps)
    for key, value in controller.observables().items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for j, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            name = key if len(values) == 1 else f"{key}/group{j}"
            out[f"{prefix}{name}"] = float(v)
    return out


def log_controller(logger: Any, controller: LRController, step: int, prefix: str = "lrcontrol/") -> dict[str, float]:
    """Send `controller_metrics(controller)` to `logger` and return them.

    `logger` is a TensorBoard `SummaryWriter` (anything with `add_scalar(tag, value, step)`) or any
    logger with `log_metrics(metrics, step)` (Lightning's loggers, and most others).
    """
    metrics = controller_metrics(controller, prefix)
    if callable(getattr(logger, "log_metrics", None)):
        logger.log_metrics(metrics, step=step)
    elif callable(getattr(logger, "add_scalar", None)):
        for name, value in metrics.items():
            logger.add_scalar(name, value, step)
    else:
        raise LRControlError(
            f"cannot log to a {type(logger).__name__}: it has neither log_metrics(metrics, step) nor "
            "add_scalar(tag, value, step); pass a SummaryWriter or a logger with log_metrics"
        )
    return metrics
