"""Tuning as a method: SMAC3 (multi-fidelity or black-box), random search, Hyperband and successive
halving over a search space written in the spec language, with promoted trials that continue from
their lower-budget checkpoint and a result that carries its cost. See docs/tuning.md.

    import lrcontrol
    result = lrcontrol.tune("iris-logreg", "adamw(lr=loguniform(1e-4, 1))", trials=20, size="smoke")
    result.incumbent, result.cost          # the tuned spec, and the compute in full-run equivalents

`lrcontrol.tune` is this package and the function at once: the module is callable, so the package
keeps its submodules (space, strategies, trials, tuner) and `lrcontrol.tune(...)` reads like the
other entry points (`lrcontrol.build`, `lrcontrol.find_lr`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from lrcontrol.tune.space import SearchSpace, parse_space
from lrcontrol.tune.strategies import STRATEGIES
from lrcontrol.tune.tuner import OBJECTIVES, TuneResult, check_settings, tune


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> TuneResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["OBJECTIVES", "STRATEGIES", "SearchSpace", "TuneResult", "check_settings", "parse_space", "tune"]
