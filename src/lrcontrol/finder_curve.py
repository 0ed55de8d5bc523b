"""Reading an LR range test's curve: the lag-free trend, the suggestions and the confidence flag.

`find_lr` (lrcontrol.lr_range_test, whose docstring gives the rules and why) records the sweep; this
module turns the recorded (η, loss) pairs into suggestions. It needs NumPy only, so a stored curve can
be read again without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["analyse_curve", "local_linear_trend"]

#: Below this relative drop of the trend (start → minimum) the curve is called flat.
FLAT_DROP = 0.05
#: Suggestions further apart than this factor make the result low-confidence.
DISAGREEMENT = 100.0
#: Step-to-step noise above this fraction of the trend's drop makes the curve too noisy to trust.
NOISY = 0.5
#: Bandwidth of the lag-free trend, in decades of η.
BANDWIDTH = 0.25


def _descent(trend: np.ndarray, best: int, low: float = 0.1, high: float = 0.9) -> tuple[int, int] | None:
    """The stretch of the trend that carries its fall: from the last point before the minimum still
    above start − low·drop, to the first point after it at or below start − high·drop."""
    start_value = trend[0]
    drop = start_value - trend[best]
    if not drop > 0:
        return None
    above = np.flatnonzero(trend[: best + 1] >= start_value - low * drop)
    top = int(above[-1]) if len(above) else 0
    below = np.flatnonzero(trend[top : best + 1] <= start_value - high * drop)
    bottom = top + int(below[0]) if len(below) else best
    return (top, bottom) if bottom > top else None


def _noise_level(residuals: np.ndarray) -> float:
    """Robust standard deviation (median absolute deviation × 1.4826) of the loss around its trend."""
    if len(residuals) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))


def local_linear_trend(log_lr: np.ndarray, losses: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Lag-free trend of the loss and its slope against log η, by Gaussian-weighted local linear regression.

    At each point x_i a line a_i + b_i (x − x_i) is fitted with weights exp(−(x_j − x_i)² / 2h²);
    a_i is the trend and b_i its slope. Unlike the online EMA (which trails the sweep by about
    β/(1−β) steps, i.e. several decades of η on a 100-step sweep), it is centred, so the suggestions
    are not shifted towards larger LRs. All points at once: an n × n weight matrix, n ≤ a few thousand.
    """
    dx = log_lr[None, :] - log_lr[:, None]
    w = np.exp(-0.5 * (dx / bandwidth) ** 2)
    s0 = w.sum(1)
    s1 = (w * dx).sum(1)
    s2 = (w * dx * dx).sum(1)
    t0 = w @ losses
    t1 = (w * dx) @ losses
    det = s0 * s2 - s1 * s1
    trend = (s2 * t0 - s1 * t1) / det
    slope = (s0 * t1 - s1 * t0) / det
    return trend, slope


def analyse_curve(
    lrs: Sequence[float],
    losses: Sequence[float],
    diverged: bool,
    bandwidth: float = BANDWIDTH,
) -> tuple[dict[str, float], float | None, bool, list[str], list[float]]:
    """Suggestions, recommended LR, confidence, its reasons and the trend, from a recorded sweep.

    Noisy: the step-to-step noise of the loss (robust standard deviation of the raw losses around
    the trend, up to its minimum) exceeds NOISY × the drop of the trend. On real curves (digits MLP,
    breast-cancer logistic regression, AdamW and SGD) that ratio is 0.01–0.05.
    """
    lr = np.asarray(lrs, dtype=np.float64)
    raw = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(raw)
    # Read only the prefix before the first non-finite loss.
    n = int(np.argmin(finite)) if not finite.all() else len(raw)
    reasons: list[str] = []
    suggestions: dict[str, float] = {}
    if n < 8:
        reasons.append(f"only {n} finite steps were recorded; lower lr_min or raise steps")
        return suggestions, None, False, reasons, [math.nan] * len(raw)
    lr, raw = lr[:n], raw[:n]
    log_lr = np.log10(lr)
    # A quarter decade, but never more than an eighth of a narrow sweep, so the trend keeps a shape.
    bandwidth = min(bandwidth, max(float(log_lr[-1] - log_lr[0]), 1e-12) / 8)
    # Losses far above the start belong to the divergence tail; clipping them keeps the tail from
    # dragging the fitted trend of the last useful points upwards.
    head = float(np.median(raw[: max(3, n // 20)]))
    clipped = np.minimum(raw, head + abs(head))
    trend, slope = local_linear_trend(log_lr, clipped, bandwidth)
    best = int(np.argmin(trend))
    start_value = float(trend[0])
    drop = start_value - float(trend[best])
    relative_drop = drop / max(abs(start_value), 1e-12)

    if best > 1:
        steepest = int(np.argmin(slope[:best]))
        if slope[steepest] < 0:
            suggestions["steepest"] = float(lr[steepest])
        descent = _descent(trend, best)
        if descent is not None:
            suggestions["valley"] = float(10 ** (0.5 * (log_lr[descent[0]] + log_lr[descent[1]])))
    if best > 0:
        suggestions["min/10"] = float(lr[best] / 10.0)

    if best <= max(1, n // 10):
        reasons.append("the loss rose almost from the first step: lr_min is too high for this model")
    elif not diverged and best >= n - max(2, n // 20):
        reasons.append("the loss was still falling at lr_max: raise lr_max")
    if relative_drop < FLAT_DROP:
        reasons.append(f"the curve is flat: the loss fell only {100 * relative_drop:.1f}% below its start")
    noise = _noise_level((raw - trend)[: best + 1])
    if drop > 0 and noise > NOISY * drop:
        reasons.append(
            f"the curve is noisy: the step-to-step noise of the loss ({noise:.3g}) is more than "
            f"{NOISY:g}× its whole drop ({drop:.3g}); use larger batches or more steps"
        )
    if len(suggestions) >= 2:
        spread = max(suggestions.values()) / min(suggestions.values())
        if spread > DISAGREEMENT:
            reasons.append(f"the suggestions disagree by a factor of {spread:.0f}")
    recommended = None
    if suggestions:
        recommended = float(10 ** np.mean(np.log10(list(suggestions.values()))))
    full_trend = [*map(float, trend), *([math.nan] * (len(losses) - n))]
    return suggestions, recommended, not reasons and recommended is not None, reasons, full_trend
