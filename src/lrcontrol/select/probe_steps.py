"""The machinery the probes share: a restartable batch stream, counted training steps, and running a
probe inside the LR range test's snapshot so that everything it changes is put back (select/probes.py
describes the probes themselves).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from lrcontrol.errors import LRControlError

#: Bounds of the logarithmic features (a noiseless gradient has tr Σ = 0, a zero gradient ‖g‖ = 0).
_LOG_CLIP = 12.0


def _clip_log(value: float, bound: float = _LOG_CLIP) -> float:
    """log₁₀ of a non-negative value, clipped to ±bound (0 → −bound); NaN stays NaN."""
    if not math.isfinite(value):
        return math.nan if math.isnan(value) else bound
    return float(min(bound, max(-bound, math.log10(value)))) if value > 0 else -bound


def _signed_log(value: float) -> float:
    """sign(x)·log₁₀(1 + |x|): a loss may be negative (synthetic functions) or huge (raw inputs)."""
    return math.copysign(math.log10(1.0 + abs(value)), value) if math.isfinite(value) else math.nan


class Batches:
    """A restartable stream of batches: the callable (or re-iterable) the probes draw from."""

    def __init__(self, source: Callable[[], Iterator[Any]]) -> None:
        self.source = source
        self.iterator = source()

    def next(self) -> Any:
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = self.source()
            try:
                return next(self.iterator)
            except StopIteration:
                raise LRControlError("probe: the batches are empty (a fresh iterator gave no batch)") from None


def _scalar(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise LRControlError("probe: loss_fn must return a scalar loss tensor")
    return loss


class _Restored:
    """Run a probe inside the LR range test's snapshot: everything it changes is put back on exit."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
        from lrcontrol.lr_range_test import _Snapshot

        # The probe's optimizer is its own (with its controller's hooks, which must see the steps).
        self.snapshot = _Snapshot(model, optimizer)
        self.model, self.seed = model, seed

    def __enter__(self) -> None:
        torch.manual_seed(self.seed)  # dropout and the like: the same probe for the same seed
        self.model.train()

    def __exit__(self, *exc: Any) -> None:
        self.snapshot.restore()


def _loss_rate(losses: list[float]) -> float:
    """Least-squares slope of loss_t / |loss_0| per step, ×100 (relative change per 100 steps), clipped."""
    if len(losses) < 3 or not all(math.isfinite(v) for v in losses):
        return math.nan
    relative = np.asarray(losses) / max(abs(losses[0]), 1e-12)
    slope = float(np.polyfit(np.arange(len(losses), dtype=np.float64), relative, 1)[0])
    return float(np.clip(100.0 * slope, -100.0, 100.0))


def _train(
    optimizer: torch.optim.Optimizer,
    controller: Any,
    loss_fn: Callable[[Any], torch.Tensor],
    source: Any,
    n: int,
    each: Callable[[], None] | None = None,
) -> list[float]:
    """n plain training steps (as the run engine takes them); stops at a non-finite loss."""
    batches = Batches(source)
    losses: list[float] = []
    for _ in range(n):
        optimizer.zero_grad(set_to_none=True)
        loss = _scalar(loss_fn(batches.next()))
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
        loss.backward()
        optimizer.step()
        controller.step(loss)
        if each is not None:
            each()
    return losses
