"""lrcontrol: every way of controlling the learning rate, as composable factors on any torch optimizer.

`import lrcontrol` imports nothing heavy: each public name is imported on first use (PEP 562), so the
command line (`lrcontrol --help`, `lrcontrol spec …`) starts without torch, and a training script
pays for torch once, when it first touches `lrcontrol.build`, `lrcontrol.control` or `lrcontrol.auto`.

`lrcontrol.control` is both the function `control(optimizer, spec)` and the package of controllers
(`lrcontrol.control.schedules`, …): the package is callable (see `lrcontrol/control/__init__.py`);
`lrcontrol.tune` likewise.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.5.2"

#: public name -> the module that defines it
_PUBLIC = {
    "auto": "lrcontrol.select.auto",
    "build": "lrcontrol.api",
    "Context": "lrcontrol.control.base",
    "Factor": "lrcontrol.control.base",
    "LRController": "lrcontrol.control.controller",
    "LRControlWarning": "lrcontrol.control.accounting",
    "HorizonError": "lrcontrol.errors",
    "LRControlError": "lrcontrol.errors",
    "SpecError": "lrcontrol.errors",
    "LRFinderResult": "lrcontrol.lr_range_test",
    "find_lr": "lrcontrol.lr_range_test",
    "Spec": "lrcontrol.spec",
    "Term": "lrcontrol.spec",
    "canonical": "lrcontrol.spec",
    "Choice": "lrcontrol.select.auto",
    "parse": "lrcontrol.spec",
}

__all__ = [
    "Choice",
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
    "auto",
    "build",
    "canonical",
    "control",
    "find_lr",
    "parse",
    "tune",
]

if TYPE_CHECKING:
    from lrcontrol import control, tune
    from lrcontrol.api import build
    from lrcontrol.control.accounting import LRControlWarning
    from lrcontrol.control.base import Context, Factor
    from lrcontrol.control.controller import LRController
    from lrcontrol.errors import HorizonError, LRControlError, SpecError
    from lrcontrol.lr_range_test import LRFinderResult, find_lr
    from lrcontrol.select.auto import Choice, auto
    from lrcontrol.spec import Spec, Term, canonical, parse


def __getattr__(name: str) -> Any:
    if name in ("control", "tune"):  # callable packages; importing one binds lrcontrol.<name> for good
        return importlib.import_module(f"lrcontrol.{name}")
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lrcontrol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})
