"""Declared parameters: one place that knows each method's knobs, defaults, ranges and docs.

The registry lists them (`lrcontrol methods`), the spec language validates and prints them, and the
controllers receive already-checked values. Declaring a parameter once keeps those three in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lrcontrol.errors import SpecError
from lrcontrol.limits import MAX_HORIZON

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

_TYPES = ("float", "int", "bool", "str", "horizon", "ints", "floats", "mapping")


class NameMap(tuple):
    """A "mapping" argument: ordered (pattern, number) pairs, written `{"backbone.*": 0.1}` in a spec.

    A tuple (not a dict) so that terms stay hashable and keep the order the user wrote (the first
    matching pattern wins); the spec printer writes it back as a dict literal.
    """

    def as_dict(self) -> dict[str, float]:
        return dict(self)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True)
class Param:
    """One parameter of an optimizer or controller.

    type: "float", "int", "bool", "str", "horizon" (an int number of steps or a float fraction of
    the run in (0, 1]), "ints" / "floats" (a list or tuple of numbers, `length` fixes its size),
    "mapping" (string keys to numbers, e.g. `{"backbone.*": 0.1}`; a `NameMap`).
    `low`/`high` bound numbers (and every element of a sequence); `*_open` makes a bound exclusive.
    `choices` lists allowed strings; for a number it lists extra strings allowed instead of a number
    (e.g. CLARA's d="auto"). `nullable` allows None.
    """

    name: str
    default: Any
    doc: str
    type: str = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = field(default_factory=tuple)
    length: int | None = None
    nullable: bool = False
    #: keep in the canonical spec even at its default (an optimizer's lr: the spec should show it)
    show: bool = False
    #: smallest accepted positive value, above an open `low` of 0 (an LR below 1e-30 vanishes in float32)
    tiny: float | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"Param {self.name}: unknown type {self.type!r}")
        if self.default is not REQUIRED and self.default is not None:
            # store the default in canonical form (0 -> 0.0 for a float) so specs compare exactly
            object.__setattr__(self, "default", self.coerce(self.default, "<default>"))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_range(self) -> str:
        parts = []
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else _fmt(self.low)
            hi = "inf" if self.high is None else _fmt(self.high)
            left = "(" if (self.low_open or self.low is None) else "["
            right = ")" if (self.high_open or self.high is None) else "]"
            parts.append(f"{left}{lo}, {hi}{right}")
        if self.choices:
            parts.append(" | ".join(f'"{c}"' for c in self.choices))
        if self.nullable:
            parts.append("None")
        return " or ".join(parts)

    def coerce(self, value: Any, owner: str) -> Any:
        """Return `value` converted to this parameter's type, or raise SpecError saying why."""
        where = f"{owner}({self.name}=…)"
        if value is None:
            if self.nullable:
                return None
            raise SpecError(f"{where}: {self.name} cannot be None; expected {self._expected()}")
        if isinstance(value, str) and self.type != "str":
            if value in self.choices:
                return value
            raise SpecError(f"{where}: {self.name} must be {self._expected()}, got the string {value!r}")
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            raise SpecError(f"{where}: {self.name} must be True or False, got {value!r}")
        if self.type == "str":
            if not isinstance(value, str):
                raise SpecError(f"{where}: {self.name} must be a string, got {value!r}")
            if self.choices and value not in self.choices:
                raise SpecError(
                    f"{where}: {self.name}={value!r} is not one of {', '.join(map(repr, self.choices))}"
                    + _closest(value, self.choices)
                )
            return value
        if self.type == "mapping":
            return self._mapping(value, where)
        if self.type in ("ints", "floats"):
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"{where}: {self.name} must be a list of numbers, got {value!r}")
            if self.length is not None and len(value) != self.length:
                raise SpecError(f"{where}: {self.name} must have {self.length} elements, got {len(value)}")
            elem_type = "int" if self.type == "ints" else "float"
            items = tuple(self._number(v, elem_type, where) for v in value)
            return items
        if self.type == "horizon":
            return self._horizon(value, where)
        return self._number(value, self.type, where)

    def _mapping(self, value: Any, where: str) -> NameMap:
        pairs = list(value.items()) if isinstance(value, dict) else value
        if not isinstance(pairs, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise SpecError(f'{where}: {self.name} must be a mapping like {{"backbone.*": 0.1}}, got {value!r}')
        out = []
        for key, number in pairs:
            if not isinstance(key, str) or not key:
                raise SpecError(f"{where}: {self.name}'s keys must be non-empty strings, got {key!r}")
            out.append((key, float(self._number(number, "float", where))))
        if len({k for k, _ in out}) != len(out):
            raise SpecError(f"{where}: {self.name} names a key twice")
        return NameMap(out)

    def _expected(self) -> str:
        rng = self.describe_range()
        base = {
            "float": "a number",
            "int": "an integer",
            "horizon": "a number of steps (int) or a fraction of the run (float in (0, 1])",
            "ints": "a list of integers",
            "floats": "a list of numbers",
            "mapping": 'a mapping of strings to numbers, e.g. {"backbone.*": 0.1}',
        }.get(self.type, self.type)
        return f"{base} in {rng}" if rng and self.type in ("float", "int") else base

    def _number(self, value: Any, kind: str, where: str) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: {self.name} must be {self._expected()}, got {value!r}")
        if kind == "int":
            if isinstance(value, float):
                if not math.isfinite(value) or not value.is_integer():
                    raise SpecError(f"{where}: {self.name} must be an integer, got {value!r}")
                value = int(value)
            if abs(value) > MAX_HORIZON:
                raise SpecError(f"{where}: {self.name}={_digits(value)} is out of range; the limit is ±2**53")
        else:
            try:
                value = float(value)
            except OverflowError:  # an int literal with hundreds of digits
                raise SpecError(f"{where}: {self.name} must be finite, got {_digits(value)}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{where}: {self.name} must be finite, got {value!r}")
        self._check_bounds(value, where)
        return value

    def _check_bounds(self, value: float, where: str) -> None:
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise SpecError(f"{where}: {self.name} must be in {self.describe_range()}, got {_fmt(value)}")
        if self.tiny is not None and 0 < value < self.tiny:
            raise SpecError(
                f"{where}: {self.name} must be at least {_fmt(self.tiny)} (torch cannot apply less), got {_fmt(value)}"
            )

    def _horizon(self, value: Any, where: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: {self.name} must be {self._expected()}, got {value!r}")
        if isinstance(value, int):
            if value > MAX_HORIZON:
                raise SpecError(f"{where}: {self.name}={_digits(value)} steps is over the limit of 2**53 steps")
            if value < (1 if self.low is None else int(self.low)):
                raise SpecError(
                    f"{where}: {self.name}={value} steps must be at least {1 if self.low is None else int(self.low)}"
                )
            return value
        if not math.isfinite(value) or not 0.0 < value <= 1.0:
            raise SpecError(
                f"{where}: {self.name}={value!r} is a float, so it is read as a fraction of the run and "
                "must be in (0, 1]; write an int (e.g. 100) for a number of steps"
            )
        return value


def _fmt(x: float) -> str:
    return f"{x:g}"


def _digits(value: int) -> str:
    """An int for a message: a 400-digit literal is shortened to its size."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:6]}…({len(text)} digits)"


def _closest(name: str, names: Any) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def closest_hint(name: str, names: Any) -> str:
    """' (did you mean 'x'?)' for the closest of `names`, or ''."""
    return _closest(name, names)


def unknown_argument(owner: str, name: str, names: Any, renamed: Mapping[str, str] | None = None) -> str:
    """The one-line error for an argument `owner` does not take.

    renamed: old parameter names → today's (lrcontrol 0.4 gave floors and ceilings their own names;
    `min_scale` had meant an end value in the decays and a floor elsewhere): an old name is answered
    with the name it became, not with a guess."""
    if renamed and name in renamed:
        return (
            f"{owner}() takes no argument {name!r}: it was renamed {renamed[name]!r} in lrcontrol 0.4; "
            f"write {owner}({renamed[name]}=…)"
        )
    valid = ", ".join(names) or "none"
    return f"{owner}() got an unknown argument {name!r}{_closest(name, names)}; valid: {valid}"


def resolve_horizon(value: int | float, total_steps: int | None, owner: str, param: str) -> int:
    """Turn a horizon (int steps or float fraction of `total_steps`) into a whole number of steps ≥ 1."""
    from lrcontrol.errors import HorizonError

    if isinstance(value, int):
        return value
    if total_steps is None:
        raise HorizonError(
            f"{owner}({param}={value!r}) is a fraction of the run, but the run length is unknown: "
            f"pass total_steps to control()/build(), or give {param} as an int number of steps"
        )
    return max(1, round(value * total_steps))
