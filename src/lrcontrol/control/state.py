"""Runtime state saved whole: every attribute of an object except the ones it declares transient.

torch's LR schedulers save their whole `__dict__` minus the optimizer, so a new field can never be
forgotten in `state_dict()`; lrcontrol's factors do the same (`Factor.state_dict`), and so does the
online rules' guard. What is *not* saved is listed by each class (`Factor.transient`): the links to the
optimizer and its parameters, structure rebuilt by `attach()` from the same optimizer, scratch buffers
that live only between an optimizer step and `controller.step()`, and resolved horizons that must
follow the `total_steps` of the controller being resumed (docs/edges.md).

Saving copies: tensors are cloned, containers are copied recursively, and a value with its own
`state_dict()` (a `Guard`, a `Snapshot`) is saved through it. Loading writes tensors *in place* into
the live ones (views of them, e.g. flat aliases, stay valid) and refuses a state whose containers or
tensors do not have the shape of the live ones, naming the field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch

from lrcontrol.errors import LRControlError


def _has_own_state(value: Any) -> bool:
    return not isinstance(value, (torch.Tensor, dict, list, tuple)) and callable(getattr(value, "state_dict", None))


def save_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if _has_own_state(value):
        return value.state_dict()
    if isinstance(value, list):
        return [save_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(save_value(v) for v in value)
    if isinstance(value, dict):
        return {k: save_value(v) for k, v in value.items()}
    return copy.deepcopy(value)


def load_value(current: Any, saved: Any, where: str) -> Any:
    """The value to hold after loading `saved` into a field that now holds `current`."""
    if isinstance(current, torch.Tensor) and isinstance(saved, torch.Tensor):
        if current.shape != saved.shape:
            raise LRControlError(
                f"{where}: the state has a tensor of shape {tuple(saved.shape)} where the model has "
                f"{tuple(current.shape)}; resume with the same model and param groups"
            )
        with torch.no_grad():
            current.copy_(saved)
        return current
    if _has_own_state(current):
        current.load_state_dict(saved)
        return current
    if isinstance(current, list) and isinstance(saved, (list, tuple)):
        if current and len(current) != len(saved):
            raise LRControlError(
                f"{where}: the state has {len(saved)} entries where this controller has {len(current)} "
                "(one per tensor, layer or param group); resume with the same model and param groups"
            )
        if current:
            return [load_value(c, s, f"{where}[{i}]") for i, (c, s) in enumerate(zip(current, saved))]
    if isinstance(saved, torch.Tensor):
        return saved.detach().clone()
    return copy.deepcopy(saved)


def save_fields(obj: Any, transient: Iterable[str]) -> dict[str, Any]:
    """Every attribute of `obj` but the transient ones, copied."""
    skip = set(transient)
    return {k: save_value(v) for k, v in vars(obj).items() if k not in skip}


def load_fields(obj: Any, state: dict[str, Any], transient: Iterable[str], owner: str) -> None:
    """Restore what `save_fields` saved; a missing or unknown field is refused by name."""
    skip = set(transient)
    expected = [k for k in vars(obj) if k not in skip]
    missing = [k for k in expected if k not in state]
    if missing:
        raise LRControlError(
            f"{owner}: this state has no {', '.join(missing)}; it was not saved by this version of "
            f"{owner} (or was edited); resume from a state_dict() of the same spec"
        )
    unknown = sorted(k for k in state if k not in expected)
    if unknown:
        raise LRControlError(
            f"{owner}: this state has fields this controller does not know ({', '.join(unknown)}); "
            "resume with the lrcontrol version and spec that saved it"
        )
    for key in expected:
        setattr(obj, key, load_value(getattr(obj, key), state[key], f"{owner}.{key}"))
