"""Robust statistics over seeds and tasks: quantiles exact with infinite values, median and IQR, the
interquartile mean and its stratified bootstrap interval (rliable's recipe)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from lrcontrol.errors import LRControlError


def quantile(values: Iterable[float], q: float) -> float:
    """The q-quantile with linear interpolation (numpy's default), exact with ±∞ entries (numpy gives
    NaN for ∞ − ∞); NaN entries are dropped. NaN for no values."""
    data = np.sort(np.asarray(list(values), dtype=float))
    data = data[~np.isnan(data)]
    if not data.size:
        return math.nan
    position = (data.size - 1) * q
    low, high = math.floor(position), math.ceil(position)
    if data[low] == data[high] or math.isinf(data[low]):  # −∞ pulls any mixture down to −∞
        return float(data[low])
    if math.isinf(data[high]):
        return math.inf
    return float(data[low] + (position - low) * (data[high] - data[low]))


def median_iqr(values: Iterable[float]) -> dict[str, float]:
    """Median, first and third quartiles and the interquartile range q3 − q1."""
    data = list(values)
    q1, median, q3 = quantile(data, 0.25), quantile(data, 0.5), quantile(data, 0.75)
    iqr = q3 - q1 if q1 != q3 else 0.0
    return {"median": median, "q1": q1, "q3": q3, "iqr": iqr}


def interquartile_mean(values: Iterable[float]) -> float:
    """IQM: the mean of the middle half, cutting ⌊n/4⌋ values from each end (scipy's trim_mean(x, 0.25);
    Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice")."""
    data = np.sort(np.asarray(list(values), dtype=float))
    if not data.size:
        return math.nan
    cut = data.size // 4
    return float(data[cut : data.size - cut].mean())


def bootstrap_iqm(
    groups: Sequence[Sequence[float]], n_bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """IQM over all values and its percentile bootstrap confidence interval, (iqm, low, high).

    Stratified bootstrap (rliable): each group — one task's seeds — is resampled with replacement on
    its own, so every replicate keeps every task. Deterministic for a seed.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return math.nan, math.nan, math.nan
    if not 0 < confidence < 1 or n_bootstrap < 1:
        raise LRControlError(f"confidence must be in (0, 1) and n_bootstrap ≥ 1; got {confidence}, {n_bootstrap}")
    rng = np.random.default_rng(seed)
    replicates = np.concatenate([a[rng.integers(0, a.size, size=(n_bootstrap, a.size))] for a in arrays], axis=1)
    replicates.sort(axis=1)
    cut = replicates.shape[1] // 4
    iqms = replicates[:, cut : replicates.shape[1] - cut].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(iqms, [alpha / 2, 1 - alpha / 2])
    return interquartile_mean(np.concatenate(arrays)), float(low), float(high)
