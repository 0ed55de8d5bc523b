"""The exceptions lrcontrol raises for bad input.

Every message names the problem and the fix; the CLI turns them into one line and exit status 2.
"""

from __future__ import annotations


class LRControlError(ValueError):
    """Bad input to lrcontrol: the message says what was wrong and what is allowed."""


class SpecError(LRControlError):
    """A method spec that cannot be parsed or validated."""


class HorizonError(LRControlError):
    """A horizon (a number of steps or a fraction of the run) that cannot be resolved."""


class LROutOfRangeError(LRControlError):
    """The controllers drove the LR to 0 (underflow), to infinity or past what torch can apply.

    Not a bug: an extreme spec (sgd(lr=0.01) + step(every=1, gamma=0.5) for a thousand steps) does
    this. The benchmark engine records the run as diverged with this message as the reason.
    """
