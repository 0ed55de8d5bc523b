"""Tasks: what the benchmark trains. `get_task(name, size)` and `list_tasks()`; see docs/tasks.md.

Importing this package registers every family; loading a family's data happens only when one of
its tasks is built or asked for its meta-features.
"""

from lrcontrol.tasks import finetune, image, language, sequence, synthetic, tabular  # noqa: F401  (each registers its tasks)
from lrcontrol.tasks.base import FAMILIES, SIZES, Task, TaskInstance
from lrcontrol.tasks.registry import get_task, list_tasks, task_family

__all__ = ["FAMILIES", "SIZES", "Task", "TaskInstance", "get_task", "list_tasks", "task_family"]
