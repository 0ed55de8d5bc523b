"""Discriminative rates: per-layer base LRs from the spec, for fine-tuning and layer-wise decay.

    adamw(lr=1e-3) + discriminative(decay=0.5) + cosine()
    sgd(lr=0.1) + discriminative(patterns={"backbone.*": 0.1}) + warmup(0.05)

Howard & Ruder 2018 ("Universal language model fine-tuning for text classification", ACL) give each
layer its own LR, lower towards the input ("discriminative fine-tuning": lr_{l−1} = lr_l / 2.6);
the same geometric layer-wise decay is standard when fine-tuning transformers (Clark et al. 2020,
ELECTRA). With the modules that own parameters numbered from the head (d = 0) to the input
(d = L − 1), and the first pattern (fnmatch syntax, on the full parameter name) that matches,

    scale(p) = decay^d(p) · patterns[first match of p]       (1 where no pattern matches)

`build()` puts each module's parameters in a param group of their own — named after the module,
with base LR = the optimizer's lr × scale — before the controller is attached, so every other factor
of the spec multiplies on top of these base LRs and the controller's `lrs` (and the run engine's
recorded LRs) show the effective LR of each group. It needs the parameters' names: pass the model
(`build(model, spec)`) or `model.named_parameters()`; `param_groups(optimizer)` lists the groups.

This is a term of kind "groups": it arranges the optimizer's param groups once, at build time, and
is not an LR factor over time; so `control()` (which attaches to an optimizer already made) refuses it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import torch

from lrcontrol.errors import LRControlError, SpecError
from lrcontrol.params import NameMap, Param
from lrcontrol.registration import Entry, register

PARAMS = (
    Param(
        "decay",
        1.0,
        "LR ratio between a layer and the one after it (1: no depth decay)",
        low=0.0,
        high=1.0,
        low_open=True,
    ),
    Param("patterns", NameMap(), 'multipliers by parameter-name pattern, e.g. {"backbone.*": 0.1}', type="mapping"),
)


class Discriminative:
    """Per-layer base LRs: geometric decay from the head to the input, and/or by name pattern."""

    name = "discriminative"

    def __init__(self, decay: float = 1.0, patterns: NameMap | dict[str, float] | None = None) -> None:
        self.decay = decay
        self.patterns = PARAMS[1].coerce(patterns or NameMap(), self.name)
        for pattern, value in self.patterns:
            if not value > 0:
                raise LRControlError(
                    f"discriminative(patterns=…): the multiplier of {pattern!r} must be positive, got {value!r}"
                )

    def scale(self, name: str, depth: int) -> float:
        value = self.decay**depth
        for pattern, multiplier in self.patterns:
            if fnmatch.fnmatchcase(name, pattern):
                return value * multiplier
        return value

    def groups(self, named: list[tuple[str, torch.nn.Parameter]], lr: float) -> list[dict[str, Any]]:
        """One param group per module (in the model's order), base LR = lr × scale."""
        modules: dict[str, list[tuple[str, torch.nn.Parameter]]] = {}
        for name, p in named:
            modules.setdefault(name.rpartition(".")[0], []).append((name, p))
        if self.patterns and not any(
            fnmatch.fnmatchcase(name, pattern) for pattern, _ in self.patterns for name, _ in named
        ):
            shown = ", ".join(name for name, _ in named[:4])
            raise SpecError(
                f"discriminative(patterns=…): no parameter name matches {[p for p, _ in self.patterns]}; "
                f"the names look like {shown}"
            )
        out = []
        depth_of = {module: len(modules) - 1 - i for i, module in enumerate(modules)}
        for module, members in modules.items():
            # Within one module the patterns may still differ (e.g. "*.bias"): split by scale.
            by_scale: dict[float, list[tuple[str, torch.nn.Parameter]]] = {}
            for name, p in members:
                by_scale.setdefault(self.scale(name, depth_of[module]), []).append((name, p))
            for scale, chosen in by_scale.items():
                label = module or "(root)"
                if len(by_scale) > 1:
                    label += ":" + ",".join(n.rpartition(".")[2] for n, _ in chosen)
                out.append({"params": [p for _, p in chosen], "lr": lr * scale, "name": label, "lr_scale": scale})
        return out


register(
    Entry(
        name=Discriminative.name,
        kind="groups",
        factory=Discriminative,
        params=PARAMS,
        summary=Discriminative.__doc__.splitlines()[0],
        example='discriminative(decay=0.5, patterns={"0.*": 0.5})',
    )
)


def named_parameters(params: Any) -> list[tuple[str, torch.nn.Parameter]] | None:
    """The (name, parameter) pairs of a module or of `named_parameters()`; None for unnamed parameters."""
    if isinstance(params, torch.nn.Module):
        return list(params.named_parameters())
    return None


def split_named(params: Iterable[Any]) -> tuple[list[tuple[str, Any]] | None, list[Any]]:
    """Materialise `params`; if every item is a (name, tensor) pair, also return them as named pairs."""
    items = list(params)
    if items and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in items):
        return items, [p for _, p in items]
    return None, items


def param_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each param group's name, parameter count, base LR and current LR (for logs and tables)."""
    return [
        {
            "name": g.get("name", str(i)),
            "params": sum(p.numel() for p in g["params"]),
            "base_lr": float(g.get("initial_lr", g["lr"])),
            "lr": float(g["lr"]),
        }
        for i, g in enumerate(optimizer.param_groups)
    ]
