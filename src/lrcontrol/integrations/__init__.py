"""Glue for the places users train: Lightning, the Hugging Face Trainer, and loggers.

Each submodule imports its framework when it is imported itself, never before: `import lrcontrol`
imports neither Lightning nor transformers. Install them with `pip install lrcontrol[integrations]`.

- `lrcontrol.integrations.lightning.LRControlCallback`
- `lrcontrol.integrations.hf.LRControlTrainerCallback`
- `lrcontrol.integrations.logging.controller_metrics` / `log_controller` (TensorBoard's
  SummaryWriter, or any logger with a `log_metrics(metrics, step)` call)
"""
