"""A detector for CLARA's trap: a network that a large η pushed into a dead or chaotic state.

CLARA's premise is "η too large ⇒ consecutive steps cancel ⇒ the path is short ⇒ η shrinks". Once a
too-large η has killed a ReLU network (every unit dead: the loss sits at the chance level ln C) or
thrown it into a chaotic regime (the loss spikes without trend), the steps carry no information and
look like noise: R ≈ 1, the reading of a good η. Nothing pulls η down, and the runaway guard does not
fire either, because the smoothed loss never rises past its threshold (docs/clara.md).

The detector reads two things CLARA already has, once per adapted step:

- progress q = (L_start − L̄)/|L_start|, where L_start is the mean loss of the first `start_steps` steps
  (an untrained classifier is at the chance level there) and L̄ the loss smoothed as the guard does
  (L̄ ← (1 − r)·L̄ + r·loss, r = 0.1);
- alignment a = (R − 1)/(R_max − 1), the path ratio in units of its largest possible value
  (R_max = K/Σμ_k: every tensor's steps perfectly aligned); a = 0 is noise, a = 1 a straight line.
  A rescue from a tiny η has a clearly positive a (the steps line up); the trap has a ≈ 0.

It fires when, for `window` consecutive steps, the run has made no progress (q ≤ `progress`, which
includes a loss above its start, and a non-finite loss) while the path says noise (a ≤ `alignment`).
It then re-arms. Where a run learns, q leaves the band within a few steps; where η is still too
small, a is high; both keep it silent. Window 60, progress 0.05, alignment 0.25 and 5 start steps
were chosen on the "design" MLP tasks of benchmarks/clara_trap.py (there: 15 of 20 trapped runs
caught, 0 of 235 healthy runs flagged, against 8 false alarms with a window of 40) and then checked
on held-out ones (docs/clara.md has both). Known blind spot: with Adam a dead network's tensors keep
moving along their decaying momentum, so the path looks aligned (a ≈ 0.5) and the detector stays
silent; and a run whose first steps already blew the loss up has no clean starting loss.
"""

from __future__ import annotations

import copy
import math
from typing import Any

#: defaults: consecutive steps, largest progress fraction and largest path alignment of the trap
TRAP_WINDOW = 60
TRAP_PROGRESS = 0.05
TRAP_ALIGNMENT = 0.25
TRAP_START_STEPS = 5
TRAP_SMOOTHING = 0.1
#: clara(trap="cut"): the factor applied to η at each alarm
TRAP_CUT = 0.01


class TrapDetector:
    """Online detector of the dead/chaotic state; `update` once per adapted step, True when it fires."""

    def __init__(
        self,
        window: int = TRAP_WINDOW,
        progress: float = TRAP_PROGRESS,
        alignment: float = TRAP_ALIGNMENT,
        start_steps: int = TRAP_START_STEPS,
        smoothing: float = TRAP_SMOOTHING,
    ) -> None:
        self.window, self.progress, self.alignment = window, progress, alignment
        self.start_steps, self.smoothing = start_steps, smoothing
        self.start_losses: list[float] = []
        self.loss_ema: float | None = None
        self.run = 0  # consecutive steps in the trap's band
        self.alarms = 0

    @property
    def start(self) -> float | None:
        if len(self.start_losses) < self.start_steps:
            return None
        return math.fsum(self.start_losses) / len(self.start_losses)

    def update(self, loss: float, ratio: float, ratio_max: float) -> bool:
        """Feed one step's loss and path ratio R (R_max = K/Σμ); True when the trap is detected."""
        if math.isfinite(loss):
            r = self.smoothing
            self.loss_ema = loss if self.loss_ema is None else (1.0 - r) * self.loss_ema + r * loss
            if len(self.start_losses) < self.start_steps:
                self.start_losses.append(loss)
                return False
        start = self.start
        if start is None:
            return False
        # a non-finite loss is no progress at all (a network that went to NaN and stays there)
        progress = (start - self.loss_ema) / abs(start) if start != 0 and math.isfinite(loss) else -math.inf
        align = (ratio - 1.0) / (ratio_max - 1.0) if ratio_max > 1.0 else 0.0
        if progress <= self.progress and align <= self.alignment:
            self.run += 1
        else:
            self.run = 0
        if self.run >= self.window:
            self.run = 0
            self.alarms += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in vars(self).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, copy.deepcopy(value))
