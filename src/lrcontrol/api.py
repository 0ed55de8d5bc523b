"""The two entry points a training loop needs: `control` and `build`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lrcontrol.control.base import Factor
from lrcontrol.control.controller import LRController
from lrcontrol.errors import SpecError
from lrcontrol.spec import Spec, Term, parse


def make_factors(terms: Iterable[Term]) -> list[Factor]:
    """The LR factors of `terms` (terms of kind "groups" arrange param groups at build time instead)."""
    return [t.entry.factory(**t.kwargs()) for t in terms if t.kind != "groups"]


def make_optimizer(params: Any, term: Term, groups: Term | None = None) -> torch.optim.Optimizer:
    """Build the optimizer a spec's first term names, on `params` (a module, named parameters,
    tensors or groups); `groups` (a "groups" term such as discriminative()) splits named parameters."""
    from lrcontrol.control.discriminative import named_parameters, split_named

    named = named_parameters(params)
    if named is None:
        named, params = split_named(params.parameters() if isinstance(params, torch.nn.Module) else params)
    else:
        params = [p for _, p in named]
    if not params:
        raise SpecError(f"{term}: got no parameters to optimize")
    kwargs = term.full_kwargs()
    if groups is not None:
        if named is None:
            raise SpecError(
                f"{groups} needs the parameters' names: pass the model (build(model, spec)) or "
                "model.named_parameters(), not model.parameters() or param groups"
            )
        if "lr" not in kwargs:
            raise SpecError(f"{groups} sets per-layer base LRs, but {term.name}() has no lr parameter")
        params = groups.entry.factory(**groups.kwargs()).groups(named, kwargs["lr"])
    return term.entry.factory(params, **kwargs)


def refuse_whole(parsed: Spec, where: str) -> None:
    """A whole-method spec (auto()) names no optimizer or controller to build: say what to call instead."""
    if parsed.whole is not None:
        raise SpecError(
            f"{where} builds the terms of a spec, but {parsed} chooses them per task: call "
            "lrcontrol.auto(model, loss_fn, batches, total_steps=...) in a training loop, or run it on a task "
            f"with `lrcontrol run TASK '{parsed}'`"
        )


def groups_term(parsed: Spec) -> Term | None:
    """The spec's one term of kind "groups" (e.g. discriminative()), if any."""
    found = [t for t in parsed.factors if t.kind == "groups"]
    if len(found) > 1:
        raise SpecError(f"{parsed}: at most one term may arrange the param groups, found {', '.join(map(str, found))}")
    return found[0] if found else None


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
    refuse_whole(parsed, "control()")
    if parsed.optimizer is not None:
        raise SpecError(
            f"control() attaches to an existing optimizer, but the spec starts with the optimizer "
            f"{parsed.optimizer.name}(); drop it from the spec, or use lrcontrol.build(params, spec)"
        )
    grouping = groups_term(parsed)
    if grouping is not None:
        raise SpecError(
            f"{grouping} arranges the optimizer's param groups, so it needs lrcontrol.build(model, spec); "
            "control() attaches to an optimizer whose groups are already made"
        )
    return LRController(optimizer, make_factors(parsed.factors), total_steps, str(parsed), resources, **options)


def build(
    params: Any,
    spec: str | Spec,
    total_steps: int | None = None,
    resources: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[torch.optim.Optimizer, LRController]:
    """Build the optimizer and controller a spec names: `build(model, "adamw(lr=1e-3) + cosine()")`.

    params: a module, `model.named_parameters()`, tensors, or param groups; a spec term of kind
    "groups" (discriminative()) needs names, so a module or its named parameters.
    """
    parsed = parse(spec)
    refuse_whole(parsed, "build()")
    if parsed.optimizer is None:
        raise SpecError(
            f"build() needs a spec that starts with an optimizer, e.g. 'adamw(lr=1e-3) + {parsed}'; "
            "to control an optimizer you already have, use lrcontrol.control(optimizer, spec)"
        )
    optimizer = make_optimizer(params, parsed.optimizer, groups_term(parsed))
    controller = LRController(optimizer, make_factors(parsed.factors), total_steps, str(parsed), resources, **options)
    return optimizer, controller
