"""ALeRA and SALeRA: per-layer learning rates from the path of normalised raw gradients; docs/online.md.

Schoenauer-Sebag, Schoenauer & Sebag (2017), "Stochastic gradient descent: going as fast as possible
but not faster", arXiv 1709.01427. For each layer ℓ (N_ℓ parameters), at every step t:

    u_t   = g_t / ‖g_t‖                              (the layer is skipped if ‖g_t‖ ≤ 1e-6)
    p_t   = (1 − α)·p_{t−1} + α·u_t                  p_0 = 0
    μ_t   = α/(2 − α) · (1 − (1 − α)^{2t})           expected ‖p_t‖² of a random walk, transient included
    σ_ℓ   = α / sqrt(N_ℓ)                            its scale in dimension N_ℓ
    η_t^ℓ = η_{t−1}^ℓ · exp( (C/σ_ℓ)·(‖p_t‖² − μ_t) )

and the step with g_t is taken with η_t^ℓ (the path is updated before the step, as in the paper).
A path longer than a random walk's (consistent gradients) raises the layer's rate; a shorter one
(oscillation) lowers it. t counts the layer's own path updates since the last reset, so μ_1 = α².

SALeRA (`salera`) adds a Page–Hinkley change detector on the smoothed training loss:
L̄ ← (1 − r)·L̄ + r·loss; U ← U + L̄ − mean(L̄); alarm when U − min U > λ, λ = threshold × |first loss|.
On an alarm it restores the parameters (and the optimizer state) of the runaway guard's last
checkpoint — the paper restores the previous step's parameters; a checkpoint every `guard_every`
healthy steps costs far less than a copy every step — halves every rate (`guard_decay`), and resets
the detector, the paths and their counters.

Ag-Adam (the paper's Adam variant) is `adam(...) + alera()`: the rates multiply Adam's own step while
the path is still built from the raw gradients, exactly as published. (CLARA, `clara`, argues this is
inconsistent for Adam and builds the path from Adam's steps instead.)

How per-layer rates reach a torch optimizer. A factor's multiplier is per parameter group, but the
layers rarely are groups. Each group's multiplier is the rate of its largest layer (the one with the
most parameters in that group; with `layers="group"` the group's own rate), set before the step; that
is what `controller.lrs` shows. The tensors of every other layer of the group are rescaled right
after `optimizer.step()`: their displacement Δ = θ_new − θ_old is multiplied by r_k/m_g in place, with
one fused `torch._foreach_lerp_` (θ_old is copied before the step, for those tensors only). Anchoring
the group on its largest layer leaves the most parameters without that copy. For every optimizer whose step is linear in its LR — SGD (with
momentum, weight decay), Adam, AdamW (decoupled decay included), RMSprop, Adagrad, … — this is
exactly a per-tensor LR, and the optimizer's state is untouched. (For optimizers whose state
depends on the LR, e.g. D-Adaptation, it is an approximation; use `layers="group"` there.)

Safeguards (shared with every online controller, `control/online.py`): each rate is clamped to
[floor, ceiling] × base LR; a step with a non-finite gradient skips the adaptation (counted in
`skipped`); the runaway guard (`guard=True`) checkpoints healthy states and, on a loss
blow-up, a non-finite loss or a non-finite gradient, restores the last checkpoint (parameters and optimizer state),
halves every rate and resets the paths. SALeRA's Page–Hinkley alarm uses the same restore. Under
gradient clipping the path sees the clipped gradient; a step an AMP GradScaler skips is never seen.
The default C is ours (the paper tunes it); with the z-score scaling (C/σ_ℓ) one C suits layers of
every size.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Context
from lrcontrol.control.online import ONLINE_PARAMS, OnlineFactor
from lrcontrol.errors import LRControlError
from lrcontrol.params import Param
from lrcontrol.registration import register_factor

#: the paper's threshold below which a layer's gradient is considered zero and its path not updated
_TINY_GRADIENT = 1e-6
#: fold the path's scalar back into its tensor below this value (keeps ‖q‖² far from float32 overflow)
_FOLD_BELOW = 1e-12


@register_factor
class ALeRA(OnlineFactor):
    """ALeRA (Schoenauer-Sebag et al. 2017): per-layer LRs from the path length of normalised gradients."""

    name = "alera"
    params: ClassVar[tuple[Param, ...]] = (
        Param("alpha", 1e-3, "path decay α (the paper's default 0.001)", low=0.0, high=1.0, low_open=True),
        Param("C", 1e-5, "adaptation constant: log-rate change per step per unit of z-score", low=0.0, low_open=True),
        Param(
            "layers",
            "auto",
            "what shares a rate: 'module' (weight and bias of one module; needs resources['model']), "
            "'tensor', 'group' (one rate per param group); 'auto' = module when a model is given, else tensor",
            type="str",
            choices=("auto", "module", "tensor", "group"),
        ),
    ) + ONLINE_PARAMS
    example = "alera(alpha=0.1, C=0.001)"
    examples = (
        "alera(alpha=0.1, C=0.001)",
        "alera(alpha=0.1, C=0.01, layers='group', guard=False)",
        "alera(alpha=0.1, C=0.001, layers='module', guard_every=3)",
    )
    #: ALeRA adapts before the step, from the gradient, not from the step taken
    captures_step = False
    #: the layer structure is rebuilt by attach(); the rescale list and buffers live within one step
    transient = ("mode", "layer_of", "layer_size", "_layer_tensors", "_anchor", "_rescale", "_buffers")

    # -- structure -----------------------------------------------------------------------------------
    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.layer_of = self._resolve_layers(ctx)
        num_layers = max(self.layer_of) + 1
        self.layer_size = [0] * num_layers
        for size, layer in zip(self.sizes, self.layer_of):
            self.layer_size[layer] += size
        self.rates = [1.0] * num_layers
        self.counts = [0] * num_layers
        self.path_sq = [0.0] * num_layers
        self.group_scale = [1.0] * ctx.num_groups
        self.path = [torch.zeros_like(p) for p in self.tensors]  # q: the path is p = c·q per layer
        self.path_scale = [1.0] * num_layers  # c
        self._layer_tensors: list[list[int]] = [[] for _ in range(num_layers)]
        for k, layer in enumerate(self.layer_of):
            self._layer_tensors[layer].append(k)
        self._rescale: list[int] = []  # tensors whose step is rescaled after this optimizer step
        self._buffers: list[torch.Tensor] = []
        # the layer whose rate each group's LR carries: the one with the most parameters in the group
        in_group: list[dict[int, int]] = [{} for _ in range(ctx.num_groups)]
        for size, layer, g in zip(self.sizes, self.layer_of, self.tensor_group):
            in_group[g][layer] = in_group[g].get(layer, 0) + size
        self._anchor = [max(sizes, key=lambda ell: (sizes[ell], -ell)) if sizes else None for sizes in in_group]

    def _resolve_layers(self, ctx: Context) -> list[int]:
        mode = self.config["layers"]
        model = ctx.resources.get("model")
        if mode == "auto":
            mode = "module" if isinstance(model, torch.nn.Module) else "tensor"
        self.mode = mode
        if mode == "group":
            # number the groups that have trainable tensors 0, 1, …
            numbering: dict[int, int] = {}
            return [numbering.setdefault(g, len(numbering)) for g in self.tensor_group]
        if mode == "tensor":
            return list(range(len(self.tensors)))
        if not isinstance(model, torch.nn.Module):
            raise LRControlError(
                f'{self.name}(layers="module") pools the weight and bias of each module and needs the model: '
                "pass resources={'model': model} to build()/control(), or use layers=\"tensor\""
            )
        owner: dict[int, int] = {}
        for index, module in enumerate(model.modules()):
            for p in module.parameters(recurse=False):
                owner.setdefault(id(p), index)
        # Layers are numbered in optimizer order; a tensor the model does not own is a layer of its own.
        layers: dict[tuple[str, int], int] = {}
        return [
            layers.setdefault(("module", owner[id(p)]) if id(p) in owner else ("tensor", k), len(layers))
            for k, p in enumerate(self.tensors)
        ]

    # -- the factor ----------------------------------------------------------------------------------
    def multiplier(self, t: int) -> list[float]:
        return [self.scale * s for s in self.group_scale]

    def before_step(self, optimizer: torch.optim.Optimizer) -> bool:
        finite = self._adapt()
        # This step already has its LR (the controller set it before the step); give it η_t, as the
        # paper does: through the group's LR for the group's anchor layer ...
        for g, anchor in enumerate(self._anchor):
            if anchor is not None and self.rates[anchor] != self.group_scale[g]:
                optimizer.param_groups[g]["lr"] *= self.rates[anchor] / self.group_scale[g]
                self.group_scale[g] = self.rates[anchor]
        # ... and by rescaling the step of every other tensor after it.
        self._rescale = [
            k
            for k, (layer, g) in enumerate(zip(self.layer_of, self.tensor_group))
            if self.rates[layer] != self.group_scale[g]
        ]
        self._capture(self._rescale)
        return finite

    def _capture(self, indices: list[int]) -> None:
        """Copy θ_old of these tensors into buffers reused across steps."""
        if not indices:
            return
        if not self._buffers:
            self._buffers = [torch.empty_like(p) for p in self.tensors]
        with torch.no_grad():
            torch._foreach_copy_([self._buffers[k] for k in indices], [self.tensors[k] for k in indices])

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._rescale:
            ks = self._rescale
            # θ ← θ_new + (1 − r)(θ_old − θ_new) = θ_old + r·Δθ, one fused pass, with r = rate / group multiplier
            weights = [1.0 - self.rates[self.layer_of[k]] / self.group_scale[self.tensor_group[k]] for k in ks]
            with torch.no_grad():
                torch._foreach_lerp_([self.tensors[k] for k in ks], [self._buffers[k] for k in ks], weights)
            self._rescale = []

    def _adapt(self) -> bool:
        """Update every layer's path and rate from the current gradients; False if they are non-finite.

        The path is stored as p = c·q with one scalar c per layer, so that the update
        p ← (1 − α)·p + (α/‖g‖)·g is one fused pass, q ← q + α/(‖g‖·c')·g with c' = (1 − α)·c,
        instead of a decay pass plus a scaled add. q is folded back (q ← c·q, c = 1) before c gets
        small enough for ‖q‖² to overflow float32.
        """
        with_grad = [k for k, p in enumerate(self.tensors) if p.grad is not None]
        if not with_grad:
            return True
        grads = {k: self.tensors[k].grad for k in with_grad}
        grad_sq = [n * n for n in torch.stack(torch._foreach_norm(list(grads.values()))).tolist()]
        if not all(math.isfinite(x) for x in grad_sq):
            return False
        layer_sq = [0.0] * len(self.rates)
        for k, sq in zip(with_grad, grad_sq):
            layer_sq[self.layer_of[k]] += sq
        # A layer whose gradient vanished keeps its path and its counter, as in the paper.
        live = [ell for ell, sq in enumerate(layer_sq) if math.sqrt(sq) > _TINY_GRADIENT]
        if not live:
            return True
        alpha = self.config["alpha"]
        with torch.no_grad():
            for ell in live:
                members = self._layer_tensors[ell]
                scale = self.path_scale[ell] * (1.0 - alpha)
                if scale < _FOLD_BELOW:
                    torch._foreach_mul_([self.path[k] for k in members], self.path_scale[ell])
                    scale = 1.0 - alpha
                self.path_scale[ell] = scale
                fed = [k for k in members if k in grads]
                coefficient = alpha / (math.sqrt(layer_sq[ell]) * scale)
                torch._foreach_add_([self.path[k] for k in fed], [grads[k] for k in fed], alpha=coefficient)
            measured = [k for ell in live for k in self._layer_tensors[ell]]
            path_norms = torch.stack(torch._foreach_norm([self.path[k] for k in measured])).tolist()
        path_sq = [0.0] * len(self.rates)
        for k, n in zip(measured, path_norms):
            path_sq[self.layer_of[k]] += n * n
        low, high, C = self.config["floor"], self.config["ceiling"], self.config["C"]
        for ell in live:
            self.counts[ell] += 1
            mu = alpha / (2.0 - alpha) * (1.0 - (1.0 - alpha) ** (2 * self.counts[ell]))
            sigma = alpha / math.sqrt(self.layer_size[ell])
            self.path_sq[ell] = path_sq[ell] * self.path_scale[ell] ** 2
            # the exponent is capped only to keep exp() finite; the clamp below is the real bound
            rate = self.rates[ell] * math.exp(min((C / sigma) * (self.path_sq[ell] - mu), 50.0))
            self.rates[ell] = min(max(rate, low), high)
        return True

    def paths(self) -> list[torch.Tensor]:
        """The path p of each tensor (a new tensor each: p = c·q)."""
        return [q * self.path_scale[layer] for q, layer in zip(self.path, self.layer_of)]

    def on_restore(self) -> None:
        """After the guard restored a checkpoint: forget the paths (p = 0) and restart their counters."""
        with torch.no_grad():
            torch._foreach_zero_(self.path)
        self.path_scale = [1.0] * len(self.path_scale)
        self.counts = [0] * len(self.counts)

    # -- observation and resume ----------------------------------------------------------------------
    def observables(self) -> dict[str, Any]:
        return {**super().observables(), "rates": [self.scale * r for r in self.rates], "path_sq": list(self.path_sq)}

    def upgrade_online_state(self, online: dict[str, Any]) -> dict[str, Any]:
        if online.pop("mode") != self.mode:
            raise LRControlError(
                f"{self.name}: this state was saved with other layers than this model's {self.mode} layers; "
                "resume with the same model, groups and layers= setting"
            )
        return online

    def after_load(self) -> None:
        super().after_load()
        self._rescale = []


@register_factor
class SALeRA(ALeRA):
    """SALeRA: ALeRA plus a Page–Hinkley detector on the loss that restores and halves the rates on alarm."""

    name = "salera"
    params: ClassVar[tuple[Param, ...]] = ALeRA.params + (
        Param(
            "smoothing",
            0.01,
            "r in L̄ ← (1 − r)·L̄ + r·loss; the paper uses batch size / training-set size",
            low=0.0,
            high=1.0,
            low_open=True,
        ),
        Param("threshold", 0.1, "alarm when U − min U exceeds this × |first loss|", low=0.0, low_open=True),
    )
    example = "salera(alpha=0.1, C=0.001)"
    examples = (
        "salera(alpha=0.1, C=0.001)",
        "salera(alpha=0.1, C=0.01, threshold=0.01, guard=False)",
        "salera(alpha=0.1, C=0.01, smoothing=0.5, threshold=0.01)",
    )

    def attach(self, ctx: Context) -> None:
        super().attach(ctx)
        self.alarms = 0
        self.tolerance: float | None = None  # λ, fixed by the first finite loss
        self._reset_detector()

    def _reset_detector(self) -> None:
        self.smoothed: float | None = None
        self.smoothed_mean = 0.0
        self.count = 0
        self.cumulative = 0.0
        self.cumulative_min = 0.0

    def on_step(self, t: int, loss: float | None) -> None:
        restores = self.restores
        super().on_step(t, loss)
        if loss is None or not math.isfinite(loss) or self.restores != restores:
            return
        if self.tolerance is None:
            self.tolerance = self.config["threshold"] * max(abs(loss), 1e-12)
        # Page–Hinkley on the smoothed loss: U accumulates its excess over its own running mean.
        r = self.config["smoothing"]
        self.smoothed = loss if self.smoothed is None else (1.0 - r) * self.smoothed + r * loss
        self.count += 1
        self.smoothed_mean += (self.smoothed - self.smoothed_mean) / self.count
        self.cumulative += self.smoothed - self.smoothed_mean
        self.cumulative_min = min(self.cumulative_min, self.cumulative)
        if self.cumulative - self.cumulative_min > self.tolerance:
            self.alarms += 1
            if not self.rollback():  # without the guard there is no checkpoint: halve and forget only
                self.on_restore()

    def on_restore(self) -> None:
        super().on_restore()
        self._reset_detector()

    def observables(self) -> dict[str, Any]:
        return {**super().observables(), "alarms": self.alarms}

    def upgrade_online_state(self, online: dict[str, Any]) -> dict[str, Any]:
        online = super().upgrade_online_state(online)
        detector = online.pop("detector")
        for key, value in zip(("smoothed", "smoothed_mean", "count", "cumulative", "cumulative_min"), detector):
            online[key] = value
        return online
