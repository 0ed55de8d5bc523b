"""Controllers: one method family per module; importing this package registers them all.

schedules (those that rise again in `cyclical.py`) and reactive rules; online adaptation (clara,
alera/salera, hypergradient) with the guard they compose; lr_from_finder (the base LR from an LR
range test); and everyday practice: the layer-wise trust ratio, discriminative (per-layer) rates,
batch-size rules, LR noise and gradient clipping.

The package is also the function `lrcontrol.control(optimizer, spec, …)` (`lrcontrol.api.control`):
calling the package calls it. Python binds a subpackage as an attribute of its parent once it is
imported, so a function `lrcontrol.control` next to a package `lrcontrol.control` cannot both be
reachable (the function used to hide `lrcontrol.control.schedules`); a callable module keeps the
documented call and every `lrcontrol.control.<module>` path.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from lrcontrol.control import (  # noqa: F401  (each module registers its methods)
    alera,
    batch,
    clara,
    clipping,
    cyclical,
    discriminative,
    hf_schedules,
    hypergradient,
    layerwise,
    learned,
    lr_from_finder,
    noise,
    piecewise,
    reactive,
    schedules,
)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lrcontrol.api import control

        return control(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
