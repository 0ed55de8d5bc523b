"""LR range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", §3.3).

Train for `steps` steps while the learning rate grows exponentially,

    η_k = η_min · (η_max / η_min)^(k / (steps − 1)),     k = 0 … steps − 1,

and record the loss of every step. The raw mini-batch loss is noisy, so the curve that is read is an
exponential moving average with bias correction (as in Adam):

    a_k = β · a_{k−1} + (1 − β) · loss_k,      a_0 = 0,      smoothed_k = a_k / (1 − β^(k+1)).

The sweep stops early when the smoothed loss exceeds `diverge` times the best smoothed loss so far
(for a loss that can be negative: best + (diverge − 1)·|best|) or when a loss is not finite.

The EMA is causal, so it trails the sweep by about β/(1 − β) steps: with β = 0.98 on a 100-step
sweep over eight decades that is four decades of η, and every rule read off it (as fastai and
torch-lr-finder do) is pushed towards too large an LR. The stop rule needs a causal curve, but the
suggestions do not: they are read off a lag-free trend, a Gaussian-weighted local linear regression
of the loss on log₁₀ η (bandwidth 0.25 decade), which also gives the slope directly
(`lrcontrol.finder_curve.local_linear_trend`). Suggestions (docs/finder.md):

- steepest: the η where the trend falls fastest against log η (the most negative slope), looked
  for between the start and the minimum;
- valley: the η half-way (in log η) along the valley the loss falls into. fastai's rule takes the
  longest decreasing stretch of the curve; on a lag-free trend that stretch reaches back to η_min,
  because the flat start of the trend is itself weakly decreasing, so here the valley is the stretch
  that carries the fall: from where the loss has made 10% of its drop (start → minimum) to where it
  has made 90%. Less sensitive to one steep wiggle than the steepest slope;
- minimum/10: the η of the lowest point of the trend, divided by 10 (fastai's original rule).

`recommended` is the geometric mean of the suggestions that exist: each rule fails in its own way
(steepest on a noisy slope, valley on a bumpy curve, minimum/10 on a wide, flat minimum), and on a
log scale the mean of three damps any one of them going astray. The result also carries a confidence flag with the reasons when the curve cannot be trusted: too flat,
too noisy, rising from the first step, still falling at η_max, or suggestions that disagree by more
than two orders of magnitude.

Everything the sweep touches is put back afterwards, bit for bit: the parameters (in place, so the
optimizer keeps its references), the buffers, the gradients, the modules' train/eval flags, the
optimizer's state and param groups (LRs included, and Schedule-Free's train_mode), and the
torch (CPU and CUDA), Python and NumPy random states. The optimizer's step hooks (for instance an
lrcontrol controller's) are suspended during the sweep, so a controller attached to the optimizer
does not see the sweep's steps. The snapshot costs one copy of the parameters, buffers, gradients
and optimizer state, on their own device. `find_lr` can therefore run in the middle of training:

    result = lrcontrol.find_lr(model, optimizer, lambda b: F.cross_entropy(model(b[0]), b[1]), loader)
    print(result.recommended, result.confident, result.reasons)
    result.plot("lr_range.png")          # only when asked; needs matplotlib

Batches the sweep draws are consumed from `batches`: pass a callable that returns a fresh iterator
(or a re-iterable such as a list or a DataLoader) if the training that follows must see the same
batches as it would have without the sweep.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lrcontrol.errors import LRControlError
from lrcontrol.finder_curve import analyse_curve
from lrcontrol.limits import MAX_FINDER_STEPS, MAX_LR, MIN_LR

__all__ = ["LRFinderResult", "analyse_curve", "find_lr"]

_EXHAUSTED = object()


@dataclass
class LRFinderResult:
    """The outcome of an LR range test: the curve, the suggestions and how far to trust them.

    lrs, losses, smoothed: the swept LRs (of the first param group) and the raw and smoothed (EMA)
    losses of each step taken. trend: the lag-free trend the suggestions are read from (NaN past
    the first non-finite loss). suggestions: LR per rule ("steepest", "valley", "min/10"); a rule that
    cannot be read off the curve is missing. recommended: the LR to use (geometric mean of the
    suggestions; None if there is none). confident: False when the curve is too flat, too noisy or
    cut off to be trusted; `reasons` says why. steps: training steps spent (the cost). stop: why
    the sweep ended.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    trend: list[float]
    suggestions: dict[str, float]
    recommended: float | None
    confident: bool
    reasons: list[str]
    steps: int
    stop: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (non-finite losses become None)."""

        def clean(values: Sequence[float]) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values]

        return {
            "recommended": self.recommended,
            "suggestions": dict(self.suggestions),
            "confident": self.confident,
            "reasons": list(self.reasons),
            "steps": self.steps,
            "stop": self.stop,
            "settings": dict(self.settings),
            "lrs": list(self.lrs),
            "losses": clean(self.losses),
            "smoothed": clean(self.smoothed),
            "trend": clean(self.trend),
        }

    def plot(self, path: str, title: str | None = None) -> str:
        """Write the curve with the suggestions marked to `path` (PNG); needs matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise LRControlError(
                "plotting the LR range test needs matplotlib: pip install 'lrcontrol[bench]'"
            ) from None
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.plot(self.lrs, self.losses, color="0.75", lw=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=1, ls=":", label="smoothed loss (EMA, lags)")
        ax.plot(self.lrs, self.trend, color="C0", lw=2, label="trend (suggestions are read here)")
        for (rule, lr), color in zip(self.suggestions.items(), ("C1", "C2", "C3")):
            ax.axvline(lr, color=color, ls="--", lw=1, label=f"{rule}: {lr:.3g}")
        if self.recommended is not None:
            ax.axvline(self.recommended, color="k", lw=1.5, label=f"recommended: {self.recommended:.3g}")
        finite = [v for v in self.trend if math.isfinite(v)]
        if finite:
            # Clip the divergence tail so that the useful part of the curve stays readable.
            low, start = min(finite), finite[0]
            ax.set_ylim(low - 0.05 * abs(start - low) - 1e-12, max(start, low) + 0.6 * abs(start - low) + 1e-12)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        verdict = "confident" if self.confident else "low confidence: " + "; ".join(self.reasons)
        ax.set_title(title or f"LR range test ({self.steps} steps) — {verdict}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


# -- putting everything back ----------------------------------------------------------------------


class _Snapshot:
    """Everything an LR sweep changes, copied so that it can be put back bit for bit: the parameters,
    optimizer state and param groups (LR included) through `control.snapshot.Snapshot`, and around it
    the model's buffers, gradients and train/eval flags and every RNG stream the sweep may draw from."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        from lrcontrol.control.snapshot import Snapshot, unique_params

        self.core = Snapshot(optimizer, unique_params(optimizer, extra=model.parameters()), keep_lr=True)
        self.core.take()
        self.params = self.core.tensors
        self.buffers = [b for b in model.buffers() if b is not None]
        with torch.no_grad():
            self.buffer_values = [b.detach().clone() for b in self.buffers]
        self.grads = [None if t.grad is None else t.grad.detach().clone() for t in self.params]
        self.training = [(m, m.training) for m in model.modules()]
        self.rng_torch = torch.get_rng_state()
        self.rng_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.rng_python = random.getstate()
        self.rng_numpy = np.random.get_state()

    def restore(self) -> None:
        self.core.restore()
        with torch.no_grad():
            for buffer, value in zip(self.buffers, self.buffer_values):
                buffer.copy_(value)
        for t, g in zip(self.params, self.grads):
            t.grad = g
        for module, flag in self.training:
            module.training = flag
        torch.set_rng_state(self.rng_torch)
        if self.rng_cuda is not None:
            torch.cuda.set_rng_state_all(self.rng_cuda)
        random.setstate(self.rng_python)
        np.random.set_state(self.rng_numpy)


class _SuspendedStepHooks:
    """Detach the optimizer's own step hooks (e.g. a controller's) for the duration of the sweep."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def __enter__(self) -> None:
        opt = self.optimizer
        self.saved = (getattr(opt, "_optimizer_step_pre_hooks", None), getattr(opt, "_optimizer_step_post_hooks", None))
        # Replace (not clear) the dicts: we may be running inside one of these hooks, whose caller
        # is iterating over the original dict.
        if self.saved[0] is not None:
            opt._optimizer_step_pre_hooks = OrderedDict()
        if self.saved[1] is not None:
            opt._optimizer_step_post_hooks = OrderedDict()

    def __exit__(self, *exc: Any) -> None:
        if self.saved[0] is not None:
            self.optimizer._optimizer_step_pre_hooks = self.saved[0]
        if self.saved[1] is not None:
            self.optimizer._optimizer_step_post_hooks = self.saved[1]


# -- the sweep ------------------------------------------------------------------------------------


def _batch_source(batches: Any) -> Callable[[], Iterator[Any]]:
    if callable(batches) and not isinstance(batches, torch.utils.data.DataLoader):
        return lambda: iter(batches())
    if isinstance(batches, Iterator):
        used = [False]

        def once() -> Iterator[Any]:
            # A one-shot iterator cannot be restarted: a second call gives an exhausted one.
            if used[0]:
                return iter(())
            used[0] = True
            return batches

        return once
    if isinstance(batches, Iterable):
        return lambda: iter(batches)
    raise LRControlError(
        f"batches must be an iterable of batches or a callable returning an iterator, got {type(batches).__name__}"
    )


def check_settings(lr_min: float, lr_max: float, steps: int, smoothing: float, diverge: float) -> None:
    for name, value in (("lr_min", lr_min), ("lr_max", lr_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise LRControlError(f"find_lr: {name} must be a positive, finite number, got {value!r}")
        if not MIN_LR <= value <= MAX_LR:
            raise LRControlError(f"find_lr: {name} must be in [{MIN_LR:g}, {MAX_LR:g}] (torch's range), got {value:g}")
    if lr_min >= lr_max:
        raise LRControlError(f"find_lr: lr_min ({lr_min:g}) must be below lr_max ({lr_max:g})")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 10 <= steps <= MAX_FINDER_STEPS:
        raise LRControlError(f"find_lr: steps must be an integer in [10, {MAX_FINDER_STEPS}], got {steps!r}")
    if not (isinstance(smoothing, (int, float)) and 0.0 <= smoothing < 1.0):
        raise LRControlError(f"find_lr: smoothing must be in [0, 1), got {smoothing!r}")
    if not (isinstance(diverge, (int, float)) and math.isfinite(diverge) and diverge > 1.0):
        raise LRControlError(f"find_lr: diverge must be a finite number above 1, got {diverge!r}")


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any], torch.Tensor],
    batches: Iterable[Any] | Callable[[], Iterator[Any]],
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    steps: int = 200,
    smoothing: float = 0.98,
    diverge: float = 4.0,
    group_scales: Sequence[float] | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> LRFinderResult:
    """Run an LR range test on `model` with `optimizer` and put everything back afterwards.

    loss_fn(batch) returns the scalar training loss of a batch (it calls the model). batches: an
    iterable of batches, or a callable returning a fresh iterator (restarted if it runs out).
    lr_min, lr_max, steps: the exponential sweep η_k = lr_min·(lr_max/lr_min)^(k/(steps−1)).
    smoothing: β of the bias-corrected EMA of the loss. diverge: stop once the smoothed loss
    exceeds this multiple of the best one. group_scales: LR of each param group relative to the
    swept one (default: the groups' current LR ratios, so a group at half the LR stays at half).
    progress(step, lr, smoothed_loss) is called after each step.

    The returned LRs are those of the first param group. See the module docstring for the rules,
    the confidence flag and what is restored. Reference: Smith (2017), arXiv:1506.01186, §3.3.
    """
    # Imported here: lrcontrol.optim registers every optimizer, which `import lrcontrol` need not pay for.
    from lrcontrol.optim.modes import set_train_mode

    check_settings(lr_min, lr_max, steps, smoothing, diverge)
    if not isinstance(model, torch.nn.Module):
        raise LRControlError(f"find_lr needs the model (an nn.Module), got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise LRControlError(f"find_lr needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise LRControlError("find_lr: loss_fn must be a callable batch -> scalar loss tensor")
    groups = optimizer.param_groups
    if group_scales is None:
        first = float(groups[0]["lr"])
        group_scales = [float(g["lr"]) / first if first > 0 else 1.0 for g in groups]
    if len(group_scales) != len(groups):
        raise LRControlError(f"find_lr: got {len(group_scales)} group_scales for {len(groups)} param groups")
    for scale in group_scales:  # 0 freezes a group, a negative scale climbs the loss: neither is a range test
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise LRControlError(f"find_lr: every group scale must be a positive, finite number, got {scale!r}")
    source = _batch_source(batches)

    snapshot = _Snapshot(model, optimizer)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop = "completed the sweep"
    diverged = False
    try:
        with _SuspendedStepHooks(optimizer), torch.enable_grad():
            # Schedule-Free optimizers must take their steps in train mode.
            set_train_mode(optimizer, True)
            growth = math.log(lr_max / lr_min) / (steps - 1)
            iterator = source()
            average = 0.0
            best = math.inf
            for k in range(steps):
                try:
                    batch = next(iterator)
                except StopIteration:
                    iterator = source()
                    batch = next(iterator, _EXHAUSTED)
                    if batch is _EXHAUSTED:
                        stop = f"the batches ran out after {k} steps"
                        break
                lr = lr_min * math.exp(growth * k)
                for group, scale in zip(groups, group_scales):
                    group["lr"] = lr * scale
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(batch)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise LRControlError("find_lr: loss_fn must return a scalar loss tensor")
                value = float(loss.detach())
                lrs.append(lr)
                losses.append(value)
                if not math.isfinite(value):
                    smoothed.append(math.nan)
                    stop, diverged = f"the loss became non-finite at lr={lr:.3g}", True
                    if progress is not None:
                        progress(k, lr, math.nan)
                    break
                loss.backward()
                optimizer.step()
                average = smoothing * average + (1.0 - smoothing) * value
                current = average / (1.0 - smoothing ** (k + 1))
                smoothed.append(current)
                best = min(best, current)
                if progress is not None:
                    progress(k, lr, current)
                if current > best + (diverge - 1.0) * abs(best):
                    stop, diverged = f"the smoothed loss passed {diverge:g}× its best at lr={lr:.3g}", True
                    break
    finally:
        snapshot.restore()

    suggestions, recommended, confident, reasons, trend = analyse_curve(lrs, losses, diverged)
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        trend=trend,
        suggestions=suggestions,
        recommended=recommended,
        confident=confident,
        reasons=reasons,
        steps=len(losses),
        stop=stop,
        settings={"lr_min": lr_min, "lr_max": lr_max, "steps": steps, "smoothing": smoothing, "diverge": diverge},
    )
