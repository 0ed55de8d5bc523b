"""Hugging Face Trainer glue: a `TrainerCallback` that feeds metrics to an lrcontrol controller and logs it.

The Trainer takes a controller as its scheduler and steps it after each optimizer step that was not
skipped (the controller also sees skips itself, through the optimizer's step hook):

    optimizer, controller = lrcontrol.build(model.parameters(), "adamw(lr=5e-5) + warmup(0.1) + plateau(patience=1)",
                                            total_steps=max_steps)
    trainer = Trainer(model, args, train_dataset=..., eval_dataset=...,
                      optimizers=(optimizer, controller), callbacks=[LRControlTrainerCallback()])

The Trainer only passes metrics to torch's ReduceLROnPlateau. The callback:

- reports each evaluation's metrics to the controller, with `eval_x` also given as `val_x`, so the
  default `plateau()` (monitor="val_loss") acts on the Trainer's `eval_loss`;
- reports each logged training loss (the mean over `logging_steps`) as `loss`, for rules with
  monitor="loss";
- before a checkpoint, puts a Schedule-Free optimizer in eval mode so the saved model is the average
  x (the Trainer itself switches to eval mode for evaluation and back to train mode for each step);
- adds each group's LR, effective LR (d·lr for Prodigy) and the controller's observables, including
  `skipped_steps` (optimizer steps AMP skipped), to the Trainer's logs, and sends them to `logger`
  (a TensorBoard SummaryWriter or anything with `log_metrics`) when one is given.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from lrcontrol.control.controller import LRController
from lrcontrol.integrations.logging import controller_metrics, log_controller
from lrcontrol.optim.modes import is_train_mode, set_train_mode


def _find_controller(scheduler: Any) -> LRController | None:
    # accelerate may wrap the scheduler (AcceleratedScheduler keeps it as .scheduler).
    for candidate in (scheduler, getattr(scheduler, "scheduler", None)):
        if isinstance(candidate, LRController):
            return candidate
    return None


class LRControlTrainerCallback(TrainerCallback):
    """Connects an lrcontrol controller used as the Trainer's scheduler to evaluations, losses and logs.

    controller: the controller; by default the one the Trainer uses as its scheduler.
    logger: optional SummaryWriter / `log_metrics` logger to send the controller's values to at each log.
    """

    def __init__(self, controller: LRController | None = None, logger: Any = None, prefix: str = "lrcontrol/"):
        self.controller = controller
        self.logger = logger
        self.prefix = prefix

    def _controller(self, kwargs: dict[str, Any]) -> LRController | None:
        if self.controller is None:
            self.controller = _find_controller(kwargs.get("lr_scheduler"))
        return self.controller

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics=None, **kwargs
    ) -> None:
        c = self._controller(kwargs)
        if c is None or not metrics:
            return
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key in list(report):
            if key.startswith("eval_"):
                report.setdefault("val_" + key[len("eval_") :], report[key])
        c.report(report)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        optimizer = kwargs.get("optimizer")
        if control.should_save and optimizer is not None and is_train_mode(optimizer):
            set_train_mode(optimizer, False)  # the checkpoint then holds x; the next step switches back

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        c = self._controller(kwargs)
        if c is None or logs is None:
            return
        watches_loss = any(f.kind == "reactive" and f.config.get("monitor") == "loss" for f in c.factors)
        if watches_loss and "loss" in logs and isinstance(logs["loss"], (int, float)):
            c.report(loss=float(logs["loss"]))
        logs.update(controller_metrics(c, self.prefix))
        if self.logger is not None:
            log_controller(self.logger, c, step=state.global_step, prefix=self.prefix)
