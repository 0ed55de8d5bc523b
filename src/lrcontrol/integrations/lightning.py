"""Lightning glue: a callback that gives an lrcontrol controller what a plain loop would give it.

Lightning takes the controller as it is (it is a torch `LRScheduler`); step it per optimizer step:

    def configure_optimizers(self):
        optimizer, controller = lrcontrol.build(self.parameters(), "adamw(lr=1e-3) + warmup(0.05) + cosine()",
                                                total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": controller, "interval": "step"}}

    trainer = Trainer(callbacks=[LRControlCallback()])

Lightning steps the scheduler itself but never passes it a loss or a validation metric (it only
does so for torch's ReduceLROnPlateau), and knows nothing of Schedule-Free's two points. The callback:

- hands each training loss to the controller (`observe_loss`; micro-batches of one optimizer step are
  averaged, Lightning's division by `accumulate_grad_batches` undone), for rules with monitor="loss";
- reports the validation metrics (`trainer.callback_metrics`, e.g. `val_loss`) after each validation
  outside the sanity check, so `plateau()` and `bold_driver()` act on them;
- puts Schedule-Free optimizers in eval mode for validation (the model then holds the average x) and
  saves checkpoints at x with the optimizer state to match; training resumes in train mode;
- logs, every `log_every_n_steps`, each group's LR, effective LR (d·lr for Prodigy) and the
  controller's observables to the trainer's loggers (see `lrcontrol.integrations.logging`).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytorch_lightning as pl
import torch

from lrcontrol.control.accounting import LRControlWarning
from lrcontrol.control.controller import LRController
from lrcontrol.integrations.logging import log_controller
from lrcontrol.optim.modes import eval_mode, is_train_mode, set_train_mode


def controllers(trainer: pl.Trainer) -> list[LRController]:
    """The lrcontrol controllers among the trainer's schedulers."""
    return [c.scheduler for c in trainer.lr_scheduler_configs if isinstance(c.scheduler, LRController)]


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


class LRControlCallback(pl.Callback):
    """Feeds losses and validation metrics to lrcontrol controllers, handles Schedule-Free modes, logs LRs.

    log: send the controller's values to the trainer's loggers every `log_every_n_steps` steps.
    prefix: the prefix of the logged names.
    """

    def __init__(self, log: bool = True, prefix: str = "lrcontrol/") -> None:
        self.log = log
        self.prefix = prefix
        self._modes: list[bool | None] = []

    # -- training --------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning's default interval is the epoch: a controller whose horizons are in optimizer steps
        # would then move once per epoch, silently.
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, LRController) and config.interval != "step":
                warnings.warn(
                    f"the lrcontrol controller is stepped once per {config.interval} (Lightning's default), but its "
                    "steps are optimizer steps; return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': "
                    "controller, 'interval': 'step'}} from configure_optimizers",
                    LRControlWarning,
                    stacklevel=2,
                )

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        # After a checkpoint saved at x (or loaded from one), training steps need train mode again.
        for opt in trainer.optimizers:
            if is_train_mode(opt) is False:
                set_train_mode(opt, True)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach()) * trainer.accumulate_grad_batches
        for c in controllers(trainer):
            c.observe_loss(value)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if not self.log or not trainer.loggers or trainer.global_step % max(1, trainer.log_every_n_steps):
            return
        for i, c in enumerate(controllers(trainer)):
            prefix = self.prefix if i == 0 else f"{self.prefix}{i}/"
            for logger in trainer.loggers:
                log_controller(logger, c, step=trainer.global_step, prefix=prefix)

    # -- validation ------------------------------------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._modes = [is_train_mode(opt) for opt in trainer.optimizers]
        for opt in trainer.optimizers:
            set_train_mode(opt, False)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for opt, mode in zip(trainer.optimizers, self._modes):
            if mode is not None:
                set_train_mode(opt, mode)
        if trainer.sanity_checking:
            return
        metrics = _scalar_metrics(trainer.callback_metrics)  # non-finite values count as setbacks
        for c in controllers(trainer):
            c.report(metrics)

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Lightning has already copied the weights at this point; for Schedule-Free in train mode they
        # are the training point y. Replace them (and the optimizer state, whose mode flag must agree)
        # with the ones taken at the average x, the model a checkpoint is for.
        for i, opt in enumerate(trainer.optimizers):
            if not is_train_mode(opt):
                continue
            with eval_mode(opt):
                checkpoint["state_dict"] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
                if "optimizer_states" in checkpoint:
                    checkpoint["optimizer_states"][i] = trainer.strategy.optimizer_state(opt)
