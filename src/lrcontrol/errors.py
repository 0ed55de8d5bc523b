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
