"""lrcontrol: every way of controlling the learning rate, as composable factors on any torch optimizer."""

from lrcontrol import tune  # noqa: E402  (a callable module: lrcontrol.tune(task, space, ...))
from lrcontrol.api import build, control
from lrcontrol.control.accounting import LRControlWarning
from lrcontrol.control.base import Context, Factor, LRController
from lrcontrol.errors import HorizonError, LRControlError, SpecError
from lrcontrol.finder import LRFinderResult, find_lr
from lrcontrol.spec import Spec, Term, canonical, parse

__version__ = "0.2.0"

__all__ = [
    "Context",
    "Factor",
    "HorizonError",
    "LRControlError",
    "LRControlWarning",
    "LRController",
    "LRFinderResult",
    "Spec",
    "SpecError",
    "Term",
    "build",
    "canonical",
    "control",
    "find_lr",
    "parse",
    "tune",
]
