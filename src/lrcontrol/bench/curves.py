"""Per-run metrics of a validation curve [(step, value), …]: final, best, area under the curve, steps to a
target. Pure functions of plain data (docs/metrics.md defines each with a worked example); the run record
(`lrcontrol.bench.record`) computes a run's values with them, once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from lrcontrol.errors import LRControlError

#: a validation curve: (step, value) pairs, a value None or NaN where it is missing
Curve = Iterable[Sequence[float | None]]


def _curve_arrays(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    points = list(curve)
    try:
        steps = np.array([float(p[0]) for p in points], dtype=float)
        values = np.array([math.nan if p[1] is None else float(p[1]) for p in points], dtype=float)
    except (TypeError, ValueError, IndexError):
        raise LRControlError(
            "a validation curve is a list of (step, value) pairs, e.g. [(0, 2.3), (100, 0.9)]"
        ) from None
    if not np.all(np.isfinite(steps)):
        raise LRControlError("a validation curve has a non-finite step; steps are step counts, e.g. 0, 100, 200")
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    repeated = steps[1:][np.diff(steps) == 0]
    if repeated.size:
        raise LRControlError(f"a validation curve has two values at step {repeated[0]:g}; keep one per step")
    return steps, values


def final_value(curve: Curve) -> float:
    """The value at the last evaluation (NaN for an empty curve)."""
    _, values = _curve_arrays(curve)
    return float(values[-1]) if values.size else math.nan


def best_value(curve: Curve, higher_is_better: bool) -> float:
    """The best finite value of the curve (NaN if there is none)."""
    _, values = _curve_arrays(curve)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.nan
    return float(finite.max() if higher_is_better else finite.min())


def curve_auc(curve: Curve, horizon: float | None = None) -> float:
    """Area under the curve per step: (1 / (T − s₀)) ∫_{s₀}^{T} v(s) ds, the curve's time average.

    Trapezoids between evaluations; the last value is held up to the horizon T (default: the last
    evaluated step). A single point is its own average. NaN if any value is not finite (a failed run).
    """
    steps, values = _curve_arrays(curve)
    if not values.size or not np.all(np.isfinite(values)):
        return math.nan
    if horizon is not None:
        if horizon < steps[-1]:
            raise LRControlError(f"horizon {horizon:g} is before the curve's last step {steps[-1]:g}; pass the budget")
        if horizon > steps[-1]:
            steps, values = np.append(steps, float(horizon)), np.append(values, values[-1])
    span = steps[-1] - steps[0]
    if span == 0:
        return float(values[-1])
    return float(np.sum(np.diff(steps) * (values[1:] + values[:-1]) / 2) / span)


def steps_to_target(curve: Curve, target: float, higher_is_better: bool) -> float:
    """The first evaluated step whose value reaches the target (≥ or ≤ by direction); ∞ if never.

    Pass (seconds, value) pairs instead to get the seconds to target."""
    steps, values = _curve_arrays(curve)
    with np.errstate(invalid="ignore"):
        reached = values >= target if higher_is_better else values <= target  # NaN never reaches
    if not reached.any():
        return math.inf
    step = float(steps[int(np.argmax(reached))])
    return int(step) if step.is_integer() else step


def run_metrics(
    curve: Curve,
    higher_is_better: bool,
    target: float | None = None,
    horizon: float | None = None,
    seconds: Sequence[float] | None = None,
) -> dict[str, float]:
    """final, best, auc, initial (the value at step 0, NaN if not evaluated) and, given a target,
    steps_to_target — and seconds_to_target when `seconds` (wall time at each evaluation) is given."""
    points = list(curve)
    steps, values = _curve_arrays(points)
    out = {
        "final": final_value(points),
        "best": best_value(points, higher_is_better),
        "auc": curve_auc(points, horizon),
        "initial": float(values[0]) if values.size and steps[0] == 0 else math.nan,
    }
    if target is not None:
        out["steps_to_target"] = steps_to_target(points, target, higher_is_better)
        if seconds is not None:
            if len(seconds) != len(points):
                raise LRControlError(f"{len(seconds)} wall times for {len(points)} evaluations; give one per point")
            timed = [(t, p[1]) for t, p in zip(seconds, points)]
            out["seconds_to_target"] = steps_to_target(timed, target, higher_is_better)
    return out
