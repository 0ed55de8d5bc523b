"""Which steps count, and the warnings about loops that run but do not do what they say.

The controller counts the steps the optimizer really took: its post-step hook increments a counter,
and a `step()` call after which the counter has not moved (an AMP GradScaler skipped the step, or
`step()` runs per micro-batch) leaves t and the LR unchanged (`count="optimizer"`, the default);
`count="calls"` counts every call, as torch's schedulers do. Before the optimizer has ever stepped, a
call on parameters without gradients counts: a schedule walked to plot it.

Three mistakes are silent in a plain loop, so each is warned once per controller, naming the fix:
step() called more often than the optimizer steps, t past total_steps, and a reactive rule that has
seen no evaluation after `warn_unevaluated_after` steps. torch's LRScheduler warns about a call order;
nothing in torch or in the frameworks notices these, hence this small piece by hand.
"""

from __future__ import annotations

import warnings

from lrcontrol.errors import LRControlError

COUNTS = ("optimizer", "calls")


class LRControlWarning(UserWarning):
    """A training loop that runs but does not do what it says (each kind is warned once per controller)."""


class StepAccounting:
    """Mixed into LRController: the step counting and the once-only warnings (uses its optimizer,
    factors, t and total_steps)."""

    def _check_count(self, count: str) -> None:
        if count not in COUNTS:
            raise LRControlError(f"count={count!r} is not one of {', '.join(map(repr, COUNTS))}")

    def _init_accounting(self) -> None:
        self.skipped_steps = 0  # step() calls after which the optimizer had not stepped
        self._optimizer_steps = 0  # optimizer.step() calls seen by the hook since attaching
        self._seen_optimizer_steps = 0
        self._calls_after_first_step = 0
        self._misses_after_first_step = 0
        self._warned: set[str] = set()

    def _taken(self) -> bool:
        """Whether the optimizer stepped since the last call (and remember that it was seen)."""
        taken = self._optimizer_steps > self._seen_optimizer_steps
        self._seen_optimizer_steps = self._optimizer_steps
        return taken

    def _is_preview(self) -> bool:
        """True when nothing is training: the optimizer never stepped and no parameter has a gradient
        (a schedule walked for a plot or a test). A skipped AMP step or a micro-batch has gradients."""
        if self._optimizer_steps:
            return False
        return all(p.grad is None for g in self.optimizer.param_groups for p in g["params"])

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, LRControlWarning, stacklevel=3)

    def _check_call_rate(self, taken: bool) -> None:
        # An AMP GradScaler skips a handful of steps at the start and then one in thousands; calling
        # step() per micro-batch misses at least every other optimizer step. After the first real
        # step, more than one call in five without an optimizer step is the second case.
        if self._optimizer_steps == 0:
            return
        self._calls_after_first_step += 1
        self._misses_after_first_step += not taken
        misses, calls = self._misses_after_first_step, self._calls_after_first_step
        if misses >= 3 and 5 * misses > calls:
            self._warn_once(
                "calls",
                f"controller.step() was called {calls} times but the optimizer stepped only "
                f"{calls - misses} times; call controller.step() once per optimizer.step() (under gradient "
                "accumulation: after the optimizer step, not after every micro-batch)",
            )

    def _check_horizon(self) -> None:
        if self.total_steps is not None and self.t > self.total_steps:
            self._warn_once(
                "horizon",
                f"step {self.t} is past total_steps={self.total_steps}; pass the number of optimizer steps "
                "as total_steps (epochs × batches per epoch ÷ accumulation), or call controller.step() only "
                "once per optimizer step",
            )

    def _check_evaluated(self) -> None:
        limit = self.warn_unevaluated_after
        if limit is None or self.t < limit:
            return
        for f in self.factors:
            if f.kind == "reactive" and getattr(f, "evaluations", 1) == 0:
                monitor = f.config.get("monitor", "val_loss")
                fix = (
                    "pass the loss to controller.step(loss)"
                    if monitor == "loss" and f.config.get("every")
                    else f"call controller.report({monitor}=…) after each evaluation"
                )
                self._warn_once(
                    "unevaluated",
                    f"{f.name}(monitor={monitor!r}) has seen no evaluation in {self.t} steps, so it never acts; "
                    f"{fix} (in Lightning add lrcontrol.integrations.lightning.LRControlCallback, in the Hugging "
                    "Face Trainer lrcontrol.integrations.hf.LRControlTrainerCallback)",
                )
