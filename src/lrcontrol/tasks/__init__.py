"""Tasks: what the benchmark trains. `get_task(name, size)` and `list_tasks()`; see docs/tasks.md.

The families register themselves when their modules are imported, which this package does on the
first use of a task name (`get_task`, `list_tasks`, `task_family`, `Task`, …), not at import: so
`lrcontrol.tasks.names` (FAMILIES, SIZES) costs no torch. Loading a family's data happens only when
one of its tasks is built or asked for its meta-features.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lrcontrol.tasks.names import FAMILIES, SIZES

if TYPE_CHECKING:
    from lrcontrol.tasks.base import Task, TaskInstance
    from lrcontrol.tasks.registry import get_task, list_tasks, task_family

_LAZY = {
    "Task": "lrcontrol.tasks.base",
    "TaskInstance": "lrcontrol.tasks.base",
    "get_task": "lrcontrol.tasks.registry",
    "list_tasks": "lrcontrol.tasks.registry",
    "task_family": "lrcontrol.tasks.registry",
}
_FAMILY_MODULES = ("finetune", "image", "language", "sequence", "synthetic", "tabular")

__all__ = ["FAMILIES", "SIZES", "Task", "TaskInstance", "get_task", "list_tasks", "task_family"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        for family in _FAMILY_MODULES:  # each module registers its family
            importlib.import_module(f"lrcontrol.tasks.{family}")
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lrcontrol.tasks' has no attribute {name!r}")
