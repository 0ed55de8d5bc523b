"""The two entry points a training loop needs: `control` and `build`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lrcontrol.control.base import Factor, LRController
from lrcontrol.errors import SpecError
from lrcontrol.spec import Spec, Term, parse


def make_factors(terms: Iterable[Term]) -> list[Factor]:
    return [t.entry.factory(**t.kwargs()) for t in terms]


def make_optimizer(params: Any, term: Term) -> torch.optim.Optimizer:
    """Build the optimizer a spec's first term names, on `params` (a module, tensors or groups)."""
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    params = list(params)
    if not params:
        raise SpecError(f"{term}: got no parameters to optimize")
    return term.entry.factory(params, **term.full_kwargs())


def control(
    optimizer: torch.optim.Optimizer,
    spec: str | Spec,
    total_steps: int | None = None,
    resources: dict[str, Any] | None = None,
    **options: Any,
) -> LRController:
    """Attach the controllers of `spec` (e.g. "warmup(0.05) + cosine()") to an existing optimizer.

    total_steps is the planned run length; horizons given as fractions (warmup(0.05)) and schedules
    that decay over the whole run (cosine()) need it. `options` go to `LRController`: `count`
    ("optimizer" or "calls") and `warn_unevaluated_after`.
    """
    parsed = parse(spec)
    if parsed.optimizer is not None:
        raise SpecError(
            f"control() attaches to an existing optimizer, but the spec starts with the optimizer "
            f"{parsed.optimizer.name}(); drop it from the spec, or use lrcontrol.build(params, spec)"
        )
    return LRController(optimizer, make_factors(parsed.factors), total_steps, str(parsed), resources, **options)


def build(
    params: Any,
    spec: str | Spec,
    total_steps: int | None = None,
    resources: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[torch.optim.Optimizer, LRController]:
    """Build the optimizer and controller a spec names: `build(model.parameters(), "adamw(lr=1e-3) + cosine()")`."""
    parsed = parse(spec)
    if parsed.optimizer is None:
        raise SpecError(
            f"build() needs a spec that starts with an optimizer, e.g. 'adamw(lr=1e-3) + {parsed}'; "
            "to control an optimizer you already have, use lrcontrol.control(optimizer, spec)"
        )
    optimizer = make_optimizer(params, parsed.optimizer)
    controller = LRController(optimizer, make_factors(parsed.factors), total_steps, str(parsed), resources, **options)
    return optimizer, controller
