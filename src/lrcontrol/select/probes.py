"""Probe features: a few counted training steps that tell a selector how a task reacts to training.

Four probes, each run from the same starting point and each put back afterwards (parameters, buffers,
gradients, train/eval flags, optimizer state and every RNG stream, by the LR range test's own snapshot:
`lrcontrol.lr_range_test`), so the method chosen afterwards starts exactly where it would have:

1. gradient noise (McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch
   Training", arXiv:1812.06162, §A.1): the gradients g_1 … g_n of n batches at the starting point give
   the batch gradient's noise tr Σ_B = Σ‖g_i − ḡ‖²/(n − 1) and the squared true gradient
   |G|² ≈ ‖ḡ‖² − tr Σ_B/n (unbiased). tr Σ_B/|G|² = B_simple/B is the simple noise scale in units of
   the batch size: ≫ 1 means the batch is far below the critical batch size (noisy steps, small LRs).
   The gradients are those of the LR range test's first steps, taken at LRs ≤ 1e-4 where Adam has not
   moved the parameters measurably: they cost nothing extra. Only when the budget affords no LR range
   test are n batch gradients taken on their own (no update; each costs one step).
2. the LR range test (`lrcontrol.find_lr`, Smith 2017) with Adam over lr 1e-6 … 10: where the loss
   falls, how steeply, how wide the valley is, the suggestion, and how far past the minimum the loss
   still stays finite.
3. Adam at its default LR (1e-3) with CLARA(d="auto") attached (docs/clara.md): the relative loss
   change per step and CLARA's path statistics — the mean path ratio R and the mean noise-normalised
   z-score (> 0: the steps keep pointing the same way, the LR is too small; < 0: they cancel, too large).
4. Prodigy at its defaults (Mishchenko & Defazio 2024): its estimate d of the distance to the solution
   after k steps (log₁₀ d), and the loss change per step.

The lengths scale with the run's budget T: P = round(`fraction` · T) steps together (8 %, at most 376),
but at least the 10 steps of the shortest LR range test once T ≥ 40 (so up to 0.25 runs for T = 40 …
125); shorter runs get only the gradient noise (max(2, P) gradients; no probe at all below 8 steps).
P is shared out by priority, since a probe too short to read is worth nothing: the LR range test first;
from P = 14 Adam + CLARA gets a quarter of P (at least 4 steps), from P = 18 Prodigy 15 % (at least 4),
the LR range test the rest. A probe that does not run leaves its features NaN. The steps actually taken
are counted (a sweep that stops at divergence costs less).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrcontrol.errors import LRControlError
from lrcontrol.select.probe_steps import Batches, _clip_log, _loss_rate, _Restored, _scalar, _signed_log, _train

#: The whole probe's target share of a run's budget.
FRACTION = 0.08
#: Bounds of the whole probe's steps; the LR range test needs at least FINDER_MIN steps (find_lr's own minimum).
MIN_STEPS, MAX_STEPS, FINDER_MIN = 2, 376, 10
#: (share of the probe's steps, minimum, maximum, the probe's steps from which it runs) of the member probes.
_MEMBERS = {"clara": (0.25, 4, 100, 14), "prodigy": (0.15, 4, 60, 18)}
#: the LR range test's first steps whose gradients give the noise estimate (at most 8, at least 3)
_SHARED_NOISE = (3, 8)
FINDER_RANGE = (1e-6, 10.0)
CLARA_SPEC = "adam() + clara(d='auto')"
PRODIGY_SPEC = "prodigy()"
#: Bound of the gradient noise feature (log₁₀ of tr Σ/|G|²).
_NOISE_CLIP = 4.0


@dataclass(frozen=True)
class ProbePlan:
    """How many steps each probe takes for a run of `budget` steps. noise: gradients taken on their
    own (only when there is no LR range test); shared_noise: the sweep's first steps that give them."""

    budget: int
    noise: int
    finder: int
    clara: int
    prodigy: int
    shared_noise: int = 0

    @property
    def steps(self) -> int:
        return self.noise + self.finder + self.clara + self.prodigy


def plan(budget: int, fraction: float = FRACTION) -> ProbePlan:
    """Probe lengths for a run of `budget` steps: about `fraction` of it, shared out by priority."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise LRControlError(f"probe: total_steps must be a positive integer, got {budget!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise LRControlError(f"probe: fraction must be in (0, 1], got {fraction!r}")
    scaled = round(fraction * budget)
    if scaled >= FINDER_MIN or budget >= 4 * FINDER_MIN:
        # The LR range test's minimum is worth up to a quarter of a short run.
        total = int(min(MAX_STEPS, max(FINDER_MIN, scaled)))
    else:
        # Too short for any sweep: the gradient noise only, and nothing for a run under 8 steps.
        total = max(MIN_STEPS, scaled) if budget >= 4 * MIN_STEPS else 0
        return ProbePlan(budget=budget, noise=total, finder=0, clara=0, prodigy=0)
    members = {
        name: int(min(high, max(low, round(share * total)))) if total >= start else 0
        for name, (share, low, high, start) in _MEMBERS.items()
    }
    finder = total - sum(members.values())
    shared = int(min(_SHARED_NOISE[1], max(_SHARED_NOISE[0], finder // 4)))
    return ProbePlan(budget=budget, noise=0, finder=finder, shared_noise=shared, **members)


def input_features(batch: Any) -> dict[str, float]:
    """What the first batch tells without training: its size, input dimension and input scale (RMS)."""
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        return {"log_batch": math.nan, "log_input_dim": math.nan, "log_input_rms": math.nan}
    rms = math.nan
    if x.is_floating_point() and x.numel():
        rms = float(x.detach().double().pow(2).mean().sqrt())
        rms = math.nan if rms == 0 else _clip_log(rms)  # an all-zero "input" (a noiseless function) says nothing
    return {
        "log_batch": math.log2(x.shape[0]) if x.shape[0] > 0 else math.nan,
        "log_input_dim": math.log10(max(1, math.prod(x.shape[1:]))),
        "log_input_rms": rms,
    }


class _Moments:
    """Running sums of batch gradients, Σ g_i (float64, per parameter) and Σ ‖g_i‖², and the losses:
    memory stays at one copy of the parameters however many gradients are taken."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
        self.squares = 0.0
        self.losses: list[float] = []

    def add(self, index: int, grad: torch.Tensor | None) -> None:
        if grad is not None:
            g = grad.detach().double()
            self.sums[index].add_(g)
            self.squares += float(g.pow(2).sum())

    def features(self) -> dict[str, float]:
        """The noise features (module docstring, 1.) of the gradients added (one per finite loss)."""
        finite = [v for v in self.losses if math.isfinite(v)]
        steps = len(finite)
        out = {
            "log_init_loss": _signed_log(float(np.mean(finite))) if finite else math.nan,
            "log_grad_norm": math.nan,
            "log_grad_rms": math.nan,
            "grad_noise_fraction": math.nan,
            "log_grad_noise": math.nan,
        }
        if steps < 2:
            return out
        mean_sq = sum(float(s.pow(2).sum()) for s in self.sums) / steps**2
        size = sum(s.numel() for s in self.sums)
        trace = max(0.0, (self.squares - steps * mean_sq) / (steps - 1))  # tr Σ_B, unbiased
        signal = max(0.0, mean_sq - trace / steps)  # |G|², unbiased, clipped at 0
        out["log_grad_norm"] = _clip_log(math.sqrt(mean_sq))
        out["log_grad_rms"] = _clip_log(math.sqrt(mean_sq / max(1, size)))
        out["grad_noise_fraction"] = trace / (trace + signal) if trace + signal > 0 else math.nan
        # ±4: a noiseless gradient (a deterministic function) and a gradient lost in noise are the ends.
        if signal > 0:
            out["log_grad_noise"] = _clip_log(trace / signal, _NOISE_CLIP)
        elif trace > 0:
            out["log_grad_noise"] = _NOISE_CLIP
        return out


def noise_probe(
    model: torch.nn.Module, params: list[torch.Tensor], loss_fn: Callable[[Any], torch.Tensor], source: Any, n: int
) -> tuple[dict[str, float], int]:
    """Gradient noise at the starting point from `n` batch gradients, no update (module docstring, 1.)."""
    moments = _Moments(params)
    batches = Batches(source)
    for _ in range(n):
        model.zero_grad(set_to_none=True)
        loss = _scalar(loss_fn(batches.next()))
        moments.losses.append(float(loss.detach()))
        if not math.isfinite(moments.losses[-1]):
            break
        loss.backward()
        for i, p in enumerate(params):
            moments.add(i, p.grad)
    return moments.features(), len(moments.losses)


def finder_probe(
    model: torch.nn.Module,
    params: list[torch.Tensor],
    loss_fn: Callable[[Any], torch.Tensor],
    source: Any,
    n: int,
    shared_noise: int = 0,
) -> tuple[dict[str, float], int]:
    """The LR range test's curve, read as numbers (module docstring, 2.), and the gradient noise from
    the gradients of its first `shared_noise` steps (1.)."""
    from lrcontrol.finder_curve import _descent
    from lrcontrol.lr_range_test import find_lr

    moments = _Moments(params)

    def recording(batch: Any) -> torch.Tensor:
        loss = loss_fn(batch)
        if len(moments.losses) < shared_noise and isinstance(loss, torch.Tensor) and loss.numel() == 1:
            moments.losses.append(float(loss.detach()))
        return loss

    def hook(index: int) -> Callable[[torch.Tensor], None]:
        # Called once per backward, after the parameter's gradient is accumulated (set to None before).
        count = [0]

        def record(param: torch.Tensor) -> None:
            count[0] += 1
            if count[0] <= shared_noise:
                moments.add(index, param.grad)

        return record

    handles = [p.register_post_accumulate_grad_hook(hook(i)) for i, p in enumerate(params)]
    optimizer = torch.optim.Adam(params, lr=FINDER_RANGE[0])
    try:
        result = find_lr(model, optimizer, recording, source, lr_min=FINDER_RANGE[0], lr_max=FINDER_RANGE[1], steps=n)
    finally:
        for handle in handles:
            handle.remove()
    out = dict.fromkeys(
        (
            "finder_log_lr",
            "finder_log_lr_min",
            "finder_fall_start",
            "finder_valley_width",
            "finder_steepness",
            "finder_drop",
            "finder_spread",
            "finder_overshoot",
        ),
        math.nan,
    )
    out.update(moments.features() if shared_noise else {})
    out["finder_diverged"] = float(not result.stop.startswith("completed"))
    out["finder_confident"] = float(result.confident)
    if result.recommended is not None:
        out["finder_log_lr"] = math.log10(result.recommended)
    if len(result.suggestions) >= 2:
        out["finder_spread"] = math.log10(max(result.suggestions.values()) / min(result.suggestions.values()))
    trend = np.asarray(result.trend, dtype=np.float64)
    finite = int(np.argmin(np.isfinite(trend))) if not np.isfinite(trend).all() else len(trend)
    if finite < 8:
        return out, result.steps
    trend = trend[:finite]
    log_lr = np.log10(np.asarray(result.lrs[:finite], dtype=np.float64))
    best = int(np.argmin(trend))
    scale = max(abs(float(trend[0])), 1e-12)
    out["finder_log_lr_min"] = float(log_lr[best])
    out["finder_drop"] = float((trend[0] - trend[best]) / scale)
    # The last LR the sweep reached, in decades past the minimum: how far it goes before diverging.
    out["finder_overshoot"] = float(math.log10(result.lrs[-1]) - log_lr[best])
    if best >= 2:
        out["finder_steepness"] = float(np.min(np.gradient(trend[: best + 1], log_lr[: best + 1])) / scale)
    descent = _descent(trend, best)
    if descent is not None:
        out["finder_fall_start"] = float(log_lr[descent[0]])
        out["finder_valley_width"] = float(log_lr[descent[1]] - log_lr[descent[0]])
    return out, result.steps


def clara_probe(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    source: Any,
    n: int,
    total_steps: int,
    seed: int,
) -> tuple[dict[str, float], int]:
    """Adam at its default LR with CLARA(d="auto") attached (module docstring, 3.)."""
    import lrcontrol
    from lrcontrol.control.clara import Clara

    optimizer, controller = lrcontrol.build(model, CLARA_SPEC, total_steps=total_steps)
    clara = next(f for f in controller.factors if isinstance(f, Clara))
    ratios: list[float] = []
    zscores: list[float] = []
    try:
        with _Restored(model, optimizer, seed):
            losses = _train(
                optimizer,
                controller,
                loss_fn,
                source,
                n,
                lambda: (ratios.append(float(clara.ratio)), zscores.append(float(clara.zscore))),
            )
            moved = float(controller.lrs[0]) / float(controller.base_lrs[0])
    finally:
        controller.close()
    diverged = len(losses) < n or not all(math.isfinite(v) for v in losses)
    return {
        "adam_loss_rate": _loss_rate(losses),
        "adam_diverged": float(diverged),
        # The second half: the path p starts at 0, so its first steps read short whatever the LR.
        "clara_ratio": float(np.mean(ratios[len(ratios) // 2 :])) if ratios else math.nan,
        "clara_z": float(np.clip(np.mean(zscores[len(zscores) // 2 :]), -50, 50)) if zscores else math.nan,
        "clara_lr_move": _clip_log(moved) if ratios else math.nan,
    }, len(losses)


def prodigy_probe(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    source: Any,
    n: int,
    total_steps: int,
    seed: int,
) -> tuple[dict[str, float], int]:
    """Prodigy at its defaults for n steps: its distance estimate d (module docstring, 4.)."""
    import lrcontrol

    nan = {"prodigy_log_d": math.nan, "prodigy_loss_rate": math.nan, "prodigy_diverged": math.nan}
    try:
        optimizer, controller = lrcontrol.build(model, PRODIGY_SPEC, total_steps=total_steps)
    except LRControlError:  # the optional package (lrcontrol[free]) is missing: the features are unavailable
        return nan, 0
    try:
        with _Restored(model, optimizer, seed):
            losses = _train(optimizer, controller, loss_fn, source, n)
            d = float(optimizer.param_groups[0].get("d", math.nan))
    finally:
        controller.close()
    diverged = len(losses) < n or not all(math.isfinite(v) for v in losses)
    return {
        "prodigy_log_d": _clip_log(d) if math.isfinite(d) else math.nan,
        "prodigy_loss_rate": _loss_rate(losses),
        "prodigy_diverged": float(diverged),
    }, len(losses)


def run_probes(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    batches: Any,
    total_steps: int,
    seed: int = 0,
    fraction: float = FRACTION,
) -> tuple[dict[str, float], dict[str, int], ProbePlan]:
    """Every probe on `model`, from where it is now; returns (features, steps spent per probe, the plan)."""
    from lrcontrol.lr_range_test import _batch_source

    if not isinstance(model, torch.nn.Module):
        raise LRControlError(f"probe needs the model (an nn.Module), got {type(model).__name__}")
    if not callable(loss_fn):
        raise LRControlError("probe: loss_fn must be a callable batch -> scalar loss tensor")
    if isinstance(batches, Iterator):
        raise LRControlError(
            "probe: batches is a one-shot iterator, which the probes would use up; pass a callable that "
            "returns a fresh iterator (lambda: iter(loader)) or a re-iterable such as a DataLoader"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LRControlError(f"probe: seed must be a non-negative integer, got {seed!r}")
    source = _batch_source(batches)
    lengths = plan(total_steps, fraction)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LRControlError("probe: the model has no trainable parameters")
    features = input_features(Batches(source).next())
    features["log_matrices"] = math.log2(1 + sum(1 for p in params if p.dim() >= 2))
    spent = {"noise": 0, "finder": 0, "clara": 0, "prodigy": 0}
    # The noise probe takes no optimizer step; an SGD with LR 0 only gives the snapshot its tensors.
    holder = torch.optim.SGD(params, lr=0.0)
    if lengths.noise:
        with _Restored(model, holder, seed):
            found, spent["noise"] = noise_probe(model, params, loss_fn, source, lengths.noise)
        features.update(found)
    if lengths.finder:
        with _Restored(model, holder, seed):  # find_lr restores on its own; this also fixes its dropout seed
            found, spent["finder"] = finder_probe(model, params, loss_fn, source, lengths.finder, lengths.shared_noise)
        features.update(found)
    if lengths.clara:
        found, spent["clara"] = clara_probe(model, loss_fn, source, lengths.clara, total_steps, seed)
        features.update(found)
    if lengths.prodigy:
        found, spent["prodigy"] = prodigy_probe(model, loss_fn, source, lengths.prodigy, total_steps, seed)
        features.update(found)
    return features, spent, lengths
