"""CLARA: cumulative path-length learning-rate adaptation (Atamna, Maus, Kievelitz, Glasmachers 2025,
arXiv 2508.05408; docs/clara.md), for SGD, Adam/AdamW and any other optimizer.

The rule, per parameter tensor k, with ŝ_t^k the normalised direction of the step actually taken — read
from the optimizer where it is known (SGD: g or its momentum buffer; Adam/AdamW: m̂/(√v̂ + ε);
control/direction.py: exact in float32, no copy of θ), else from the displacement −Δθ_t^k/‖Δθ_t^k‖:

    p_t^k   = (1 − c)·p_{t−1}^k + c·ŝ_t^k                    p_0 = 0, c = 0.2
    R_t     = Σ_k ‖p_t^k‖² / Σ_k μ_k                         (= Σ_k ‖p_t^k‖²/(K·μ) when all μ_k = μ)
    η_{t+1} = η_t · exp( d·(R_t − 1) )                       d = 1e-3 by default

If consecutive steps point the same way the path is longer than the reference and η grows; if they
cancel (oscillation) it is shorter and η shrinks. One global multiplier for the whole model
(composable with any schedule); normalisation per tensor.

Variants (`variant=`): "plain" — the optimizer's own step; "unit" — after the optimizer's step each
tensor's step along s is replaced by one of length η (the group's LR), θ ← θ_before − η·ŝ, which
is the authors' "unit step direction" for SGD (θ − η·g/‖g‖) and for Adam (θ − η·a/‖a‖ with
a = m̂/(√v̂ + ε)). `reference="published"` (and `clara_published`, their defaults) uses the authors'
μ: one value, that of a single tensor of all N parameters, for every tensor.

The reference μ_k (and σ_k)
---------------------------
μ_k is the expected ‖p^k‖² of the same recursion, in its stationary regime, when the optimizer is
fed gradients that carry no information (i.i.d. N(0, I) noise), for a tensor of N_k elements: exact
for memoryless SGD, estimated once at attach time by a Monte-Carlo run of the attached optimizer's
own class otherwise (control/clara_reference.py has the derivation and the estimator).

`d="auto"`: a damping without tuning (the paper's stated future work)
--------------------------------------------------------------------
Under the noise reference the statistic  z_t = (Σ_k ‖p_t^k‖² − Σ_k μ_k)/σ_Σ,  σ_Σ = sqrt(Σ_k σ_k²)
(tensors independent), has mean 0 and unit variance for *every* model size, optimizer and momentum,
whereas R − 1 has a spread that shrinks like 1/√N. The auto rule therefore reads the path in units
of its own noise and moves log η by a bounded amount:

    log η_{t+1} = log η_t + δ·tanh(z_t / z_0),    z_0 = max(2, ρ·Σ_k μ_k/σ_Σ),  ρ = 1,
    δ = clip(4·ln(10⁶)/T, 0.02, 0.2)  with T = total_steps (δ = 0.1 when the run length is unknown)

- With no information in the steps (|z| ≲ 1) the walk of log η has steps ≲ δ/2 that average out.
- With clear evidence (steps aligned because η is far too small, or anti-aligned because it is far
  too large) η moves at the full rate e^{±δ} per step. δ is chosen so that six decades of η
  (1e-6 → 1) can be crossed within a quarter of the run: a rescue that arrives after the budget is
  spent is no rescue (a fixed d has the same trade-off, hidden in its value: d = 1e-3 moves η by at
  most ×e^{8d} ≈ 1.008 per step for SGD, too slow for a 300-step run, which is why the best fixed d
  changes with the task and η0). The bounds keep the equilibrium jitter small on long runs
  (δ ≥ 0.02) and the overshoot small on short ones (δ ≤ 0.2).
- z_0: "clear evidence" means two noise standard deviations (z = 2) — but never less than
  R − 1 = ±ρ. Near equilibrium the rule is the plain one with an effective damping
  d_eff = δ·Σμ_k/(z_0·σ_Σ) ≤ δ/ρ. Without the ρ floor, d_eff would grow like the square root of the
  (noise-weighted) dimension, since a larger model has a less noisy path; that makes the loop gain
  too high on large models: on the Fashion-MNIST MLP (Σμ/σ_Σ ≈ 13, so d_eff ≈ 1.3) the first
  version of this rule (z_0 = 2 alone) drove SGD's η around its equilibrium in swings of ×5 and lost
  up to 30 accuracy points on some starts. ρ = 1 (R − 1 = −1 is perfect cancellation) bounds d_eff
  by δ; for small models (Σμ/σ_Σ < 2) the noise criterion z_0 = 2 is the larger one. ρ = 1/2, the
  value first chosen, let d_eff reach 2δ = 0.4 on short runs, four times the largest d of the paper's
  grid: on a held-out MNIST-1D MLP with SGD, η then random-walked up to 4–14 after its rescue, the
  ReLUs died, and 4 of 14 runs ended at chance (−14 points against the best fixed d; ρ = 1: −0.7).
  The price of ρ = 1 is a slower rescue with Adam, whose path can only lengthen to R − 1 ≈ 0.47:
  its full upward rate is tanh(0.47) ≈ 0.44·δ instead of 0.74·δ.
- The path reacts to a wrong η within ≈ 1/c = 5 steps, so an overshoot costs at most ≈ e^{5δ}.
How the constants were set: z_0 = 2 from the noise statistics; the budget rule for δ from the
analysis above, checked against fixed rates 0.05 and 0.2 on a few benchmark cells; ρ = 1/2 after the
first full benchmark run showed the instability above, and ρ = 1 after the first held-out task set
(`--tasks held-out`) showed the MNIST-1D failure. Only the second held-out set (`--tasks held-out-2`,
fixed before any of its runs) is a held-out validation of ρ = 1. The constants are the same for every
task. docs/clara.md has all the runs.

Example:

    optimizer, controller = lrcontrol.build(model.parameters(), "sgd(lr=1e-4) + warmup(100) + clara()")
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from lrcontrol.control.base import Context
from lrcontrol.control.clara_reference import (
    MC_BURN_IN,
    MC_ELEMENTS,
    MC_MAX_SIZE,
    MC_SAMPLES,
    momentum_reference_limit,
    monte_carlo_reference,
    published_sigma,
    reference_moments,
    sgd_reference,
)
from lrcontrol.control.online import ONLINE_PARAMS, OnlineFactor
from lrcontrol.control.trap import TRAP_CUT, TrapDetector
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

#: the reference machinery lives in control/clara_reference.py; its names stay importable from here
__all__ = [
    "AUTO_RATE",
    "AUTO_RATE_BOUNDS",
    "AUTO_RHO",
    "AUTO_Z0",
    "MC_BURN_IN",
    "MC_ELEMENTS",
    "MC_MAX_SIZE",
    "MC_SAMPLES",
    "Clara",
    "ClaraPublished",
    "auto_rate",
    "momentum_reference_limit",
    "monte_carlo_reference",
    "published_sigma",
    "reference_moments",
    "sgd_reference",
]

#: d="auto": the largest change of log η per step (without total_steps; bounds with it) and the z-score
#: scale of the saturation
AUTO_RATE = 0.1
AUTO_RATE_BOUNDS = (0.02, 0.2)
AUTO_Z0 = 2.0
#: d="auto": the saturation never starts before R − 1 reaches this (R − 1 = −1 is perfect cancellation)
AUTO_RHO = 1.0


def auto_rate(total_steps: int | None) -> float:
    """δ of d="auto": six decades of η within a quarter of the run, clipped to AUTO_RATE_BOUNDS."""
    if total_steps is None:
        return AUTO_RATE
    low, high = AUTO_RATE_BOUNDS
    return min(high, max(low, 4.0 * math.log(1e6) / total_steps))


@register_factor
class Clara(OnlineFactor):
    """CLARA: η ← η·exp(d·(R − 1)) from the cumulated path of normalised steps (Atamna et al. 2025)."""

    name = "clara"
    reads_direction = True
    params = (
        Param(
            "d",
            1e-3,
            'damping (the paper\'s grid 1e-5 … 1e-1), "auto", or "2sigma" (the authors\' default 2σ)',
            low=0.0,
            low_open=True,
            choices=("auto", "2sigma"),
        ),
        Param("c", 0.2, "cumulation constant of the path", low=0.0, high=1.0, low_open=True, high_open=True),
        Param(
            "variant",
            "plain",
            "plain: the optimizer's step; unit: each tensor's step rescaled to length η",
            type="str",
            choices=("plain", "unit"),
        ),
        Param(
            "reference",
            "noise",
            "noise: μ_k of each tensor's own size; published: the authors' — one μ from the total "
            "parameter count N for every tensor (R = Σ‖p_k‖²/(K·μ(N)))",
            type="str",
            choices=("noise", "published"),
        ),
        Param(
            "trap",
            "watch",
            "the dead/chaotic-network detector (control/trap.py): watch counts its alarms (`trap_alarms`); "
            "cut also divides η by 100 and restarts the path at each alarm",
            type="str",
            choices=("watch", "cut"),
        ),
    ) + ONLINE_PARAMS
    example = "clara(d=0.01)"
    examples = (
        "clara(d=0.01)",
        "clara(d='auto')",
        "clara(d=0.01, variant='unit')",
        "clara(d='auto', variant='unit')",
        "clara(d=0.01, guard=False)",
        "clara(d=0.1, guard_every=3)",
        "clara(d=0.01, reference='published')",
        "clara(d=0.1, trap='cut')",
    )
    #: the noise reference and d="auto"'s constants are rebuilt by attach() (δ from the new total_steps)
    transient = ("mu", "sigma", "mu_total", "sigma_total", "rate", "auto_z0", "damping")

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        c = self.config["c"]
        published = self.config["reference"] == "published"
        mus, sigmas = reference_moments(ctx.optimizer, self.tensor_group, self.sizes, c, published=published)
        self.damping = self.config["d"]
        if self.damping == "2sigma":
            self.damping = 2.0 * published_sigma(ctx.optimizer, sum(self.sizes), c)
        self.mu = mus
        self.sigma = sigmas
        self.mu_total = math.fsum(mus)
        self.sigma_total = math.sqrt(math.fsum(s * s for s in sigmas))
        if not (self.mu_total > 0 and math.isfinite(self.mu_total)):
            raise LRControlError(f"clara(): the noise reference of {type(ctx.optimizer).__name__} gave μ = 0")
        # the path p^k is stored as scale_k·z^k (see `adapt`): z^k a tensor, scale_k a float
        self.scaled_paths = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.tensors]
        self.path_scales = [0.0] * len(self.tensors)
        self.ratio = 0.0
        self.zscore = 0.0
        self.rate = auto_rate(ctx.total_steps)
        # z at which tanh saturates: two noise σ, but never less than R − 1 = ±AUTO_RHO
        self.auto_z0 = max(AUTO_Z0, AUTO_RHO * self.mu_total / self.sigma_total) if self.sigma_total > 0 else AUTO_Z0
        self.detector = TrapDetector()

    # -- the unit-step variant rescales the step just taken ------------------------------------
    def transform_step(self, step: list[torch.Tensor], norms: list[float]) -> None:
        if self.config["variant"] != "unit":
            return
        if self.reader is None or self._moved is None:
            # the displacement (step = θ_before − θ_after, our own buffer): θ_after + step = θ_before, then
            # θ_before − η·step/‖step‖ (the 0.2 arithmetic, kept bit for bit)
            lengths = [self.step_lrs[g] if n > 0 else 0.0 for g, n in zip(self.tensor_group, norms)]
            torch._foreach_add_(self.tensors, step)
            torch._foreach_mul_(step, [length / n if n > 0 else 0.0 for length, n in zip(lengths, norms)])
            torch._foreach_sub_(self.tensors, step)
            norms[:] = lengths
            return
        # the optimizer moved θ by −scale·step; the unit step moves it by −η·step/‖step‖ instead:
        # θ ← θ_after + (scale − η/‖step‖)·step (one pass; `step` itself, maybe the optimizer's, is not changed)
        for k, n in enumerate(norms):
            if n > 0:
                self.tensors[k].add_(step[k], alpha=self.step_scales[k] - self.step_lrs[self.tensor_group[k]] / n)

    # -- the update rule ------------------------------------------------------------------------
    def adapt(self, step: list[torch.Tensor], norms: list[float], loss: float | None) -> None:
        c = self.config["c"]
        # p ← (1 − c)·p + c·step/‖step‖, with p stored as p = a·z (a float a, a tensor z). Then
        #     a ← (1 − c)·a + c/‖step‖,   z ← lerp(z, step, w) = (1 − w)·z + w·step,   w = (c/‖step‖)/a_new
        # is the same recursion (a_new·(1 − w) = (1 − c)·a, a_new·w = c/‖step‖) in one pass over the
        # tensors (a foreach lerp with one weight per tensor) instead of two (normalise, then lerp):
        # about a tenth of an AdamW step less (docs/performance.md). p_0 = 0 is a = 0, z = 0 (w = 1
        # at the first step). A tensor that did not move this step keeps its path unchanged.
        scales, weights = self.path_scales, []
        for k, n in enumerate(norms):
            if n > 0:
                gain = c / n
                scales[k] = (1.0 - c) * scales[k] + gain
                weights.append(gain / scales[k])
        if len(weights) == len(norms):  # every tensor moved (the usual case): no lists to build
            torch._foreach_lerp_(self.scaled_paths, step, weights)
        else:
            moved = [k for k, n in enumerate(norms) if n > 0]
            torch._foreach_lerp_([self.scaled_paths[k] for k in moved], [step[k] for k in moved], weights)
        z_norms = torch.stack(torch._foreach_norm(self.scaled_paths)).tolist()
        path_sq = math.fsum((a * n) ** 2 for a, n in zip(self.path_scales, z_norms))
        self.ratio = path_sq / self.mu_total
        self.zscore = (path_sq - self.mu_total) / self.sigma_total if self.sigma_total > 0 else 0.0
        if self.damping == "auto":
            change = self.rate * math.tanh(self.zscore / self.auto_z0)
        else:
            change = self.damping * (self.ratio - 1.0)
        self.set_scale(self.scale * math.exp(change))
        if loss is not None:
            self._watch_trap(loss)

    def on_step(self, t: int, loss: float | None) -> None:
        super().on_step(t, loss)
        if loss is not None and not math.isfinite(loss):  # adapt() did not run: the detector still counts it
            self._watch_trap(loss)

    def _watch_trap(self, loss: float) -> None:
        # R when every tensor's steps are aligned is K/Σμ_k: the detector reads R in units of it
        if self.detector.update(loss, self.ratio, len(self.mu) / self.mu_total) and self.config["trap"] == "cut":
            self.set_scale(self.scale * TRAP_CUT)
            self.on_restore()

    @property
    def paths(self) -> list[torch.Tensor]:
        """The paths p^k themselves (new tensors; the controller keeps them in scaled form)."""
        return [a * z for a, z in zip(self.path_scales, self.scaled_paths)]

    def on_restore(self) -> None:
        torch._foreach_zero_(self.scaled_paths)
        self.path_scales = [0.0] * len(self.scaled_paths)

    # -- observables and state ----------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        return {
            **super().observables(),
            "ratio": self.ratio,
            "zscore": self.zscore,
            "trap_alarms": self.detector.alarms,
        }

    def upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state = super().upgrade_state(state)
        state.setdefault("detector", TrapDetector().state_dict())  # saved before the detector existed
        return state

    def upgrade_online_state(self, online: dict[str, Any]) -> dict[str, Any]:
        if "paths" in online:  # the state of lrcontrol 0.1 kept p itself: p = 1·p
            paths = online.pop("paths")
            online["scaled_paths"], online["path_scales"] = paths, [1.0] * len(paths)
        return online


def _published_defaults(params: tuple[Param, ...]) -> tuple[Param, ...]:
    changed = {"variant": "unit", "d": "2sigma", "reference": "published", "guard": False}
    return tuple(dataclasses.replace(p, default=changed[p.name]) if p.name in changed else p for p in params)


@register_factor
class ClaraPublished(Clara):
    """CLARA as the authors released it: unit step, d = 2σ, one μ(N) for every tensor, no runaway guard.

    The same rule and parameters as `clara`, with the authors' defaults (each can still be changed:
    `clara_published(variant='plain', d=0.01)`). Their reference for Adam is K·μ(N), μ computed for
    any N by the same Monte-Carlo run as `clara`'s (their code looks it up in a table of a few sizes).
    """

    name = "clara_published"
    params = _published_defaults(Clara.params)
    example = "clara_published(d=0.01)"
    examples = ("clara_published()", "clara_published(d=0.01, variant='plain')", "clara_published(d='auto')")
