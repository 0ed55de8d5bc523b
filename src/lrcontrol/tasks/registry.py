"""One registry of tasks: `get_task(name, size)` and `list_tasks()`.

A family registers either fixed names (`register_task`) or a name pattern (`register_pattern`, e.g.
`sphere-<dim>` for synthetic functions in any dimension). Each registered maker is called as
`maker(size)` (fixed) or `maker(match, size)` (pattern) and returns a `Task`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from lrcontrol.errors import LRControlError
from lrcontrol.tasks.base import Task
from lrcontrol.tasks.names import FAMILIES, SIZES


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    maker: Callable[[re.Match[str], str], Task]
    family: str
    example: str


_FIXED: dict[str, tuple[str, Callable[[str], Task]]] = {}
_PATTERNS: list[_Pattern] = []


def register_task(name: str, family: str, maker: Callable[[str], Task]) -> None:
    """Register `name`; `maker(size)` returns the task for "smoke" or "default"."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} for task {name}")
    if name in _FIXED:
        raise ValueError(f"task {name!r} registered twice")
    _FIXED[name] = (family, maker)


def register_pattern(regex: str, family: str, example: str, maker: Callable[[re.Match[str], str], Task]) -> None:
    """Register a family of names matching `regex` (fully); `example` is shown in error messages."""
    _PATTERNS.append(_Pattern(re.compile(regex), maker, family, example))


def list_tasks(family: str | None = None) -> list[str]:
    """The registered task names (pattern families contribute their listed instances), sorted by family."""
    if family is not None and family not in FAMILIES:
        raise LRControlError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    order = {f: i for i, f in enumerate(FAMILIES)}
    names = [n for n, (fam, _) in _FIXED.items() if family is None or fam == family]
    return sorted(names, key=lambda n: (order[_FIXED[n][0]], n))


def task_family(name: str) -> str:
    from lrcontrol.tasks.params import split_name

    name = split_name(name)[0]
    if name in _FIXED:
        return _FIXED[name][0]
    for pattern in _PATTERNS:
        if pattern.regex.fullmatch(name):
            return pattern.family
    raise _unknown(name)


def get_task(name: str, size: str = "default") -> Task:
    """The task called `name` at `size` ("smoke" or "default"); `name` may take arguments, e.g.
    `letter-logreg(batch=64, epochs=100)` (see `lrcontrol.tasks.params`).

    Raises LRControlError naming the closest registered names for an unknown name or size.
    """
    if size not in SIZES:
        hint = difflib.get_close_matches(str(size), SIZES, n=1, cutoff=0.3)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise LRControlError(f"unknown task size {size!r}{did_you_mean}; choose one of {', '.join(SIZES)}")
    from lrcontrol.tasks.params import split_name, with_params

    base, arguments = split_name(name)
    return with_params(_plain_task(base, size), arguments)


def _plain_task(name: str, size: str) -> Task:
    if name in _FIXED:
        return _FIXED[name][1](size)
    for pattern in _PATTERNS:
        match = pattern.regex.fullmatch(name)
        if match:
            return pattern.maker(match, size)
    raise _unknown(name)


def _unknown(name: str) -> LRControlError:
    close = difflib.get_close_matches(name, list(_FIXED), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    patterns = ", ".join(p.example for p in _PATTERNS)
    return LRControlError(
        f"unknown task {name!r}{hint}; `lrcontrol tasks` lists them"
        + (f", and synthetic functions take any dimension, e.g. {patterns}" if patterns else "")
    )
