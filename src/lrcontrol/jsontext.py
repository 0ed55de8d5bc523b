"""Strict JSON for numbers that may be non-finite (a diverged run's loss, an LR that overflowed).

Python's `json` writes `Infinity` and `NaN`, which are not JSON: SQLite's `json_extract`, jq and most
JSON readers reject the whole document. lrcontrol writes them as the strings "Infinity", "-Infinity"
and "NaN" instead (the spelling JavaScript's `Number()` reads back), and `loads` turns those strings
back into floats. `loads` also reads stores written before this encoding (bare `Infinity` tokens).
"""

from __future__ import annotations

import json
import math
from typing import Any

_NAMES = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
#: text fields of a trajectory: a string there is text, never a number
TEXT_FIELDS = frozenset({"task", "spec", "diverged_reason"})


def encode(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any, key: str | None = None) -> Any:
    """The inverse of `encode` (strings of TEXT_FIELDS stay text)."""
    if isinstance(value, str):
        return _NAMES.get(value, value) if key not in TEXT_FIELDS else value
    if isinstance(value, dict):
        return {k: decode(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, key) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON text (no Infinity/NaN tokens)."""
    return json.dumps(encode(value), allow_nan=False, **kwargs)


def loads(text: str) -> Any:
    """Read what `dumps` wrote, or older text with bare Infinity/NaN tokens."""
    return decode(json.loads(text))
