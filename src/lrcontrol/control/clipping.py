"""Gradient clipping as a term of the method spec: `sgd(lr=0.1) + clip_norm(1.0) + cosine()`.

clip_norm rescales all gradients together when their global norm exceeds max_norm,
g ← g · min(1, max_norm / ‖g‖) with ‖g‖ the norm over every parameter of the optimizer (Pascanu,
Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks", ICML);
clip_value clamps each gradient element to [−clip, clip]. Both use torch's own
`torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.

Why a term of the spec rather than a line in the training loop: the spec is what a stored result is
keyed by, so a run that clipped says so (and gets a different run key than one that did not), and
every loop that builds its optimizer from the spec clips the same way. The clipping runs in the
optimizer's step pre-hook — between `backward()` and the update, also under an AMP GradScaler
(which unscales before calling `step`) — and before every other factor's hook, so LR-free
optimizers and online rules (hypergradient, …) all see the clipped gradients. The LR multiplier is
always 1.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lrcontrol.control.base import Factor
from lrcontrol.params import REQUIRED, Param
from lrcontrol.registration import register_factor


def _grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


class _Clip(Factor):
    kind = "gradient"
    uses_step_hooks = True
    #: before any other factor's pre-step hook: they must see the clipped gradients
    hook_order: ClassVar[int] = -2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = 0
        self.clipped = 0
        self.last_norm = 0.0

    def on_pre_step(self, optimizer: torch.optim.Optimizer) -> None:
        params = _grads(optimizer)
        if not params:
            return
        self.steps += 1
        if self.clip(params):
            self.clipped += 1

    def clip(self, params: list[torch.Tensor]) -> bool:
        raise NotImplementedError

    def observables(self) -> dict[str, Any]:
        return {"clipped_fraction": self.clipped / self.steps if self.steps else 0.0, "last_grad_norm": self.last_norm}


@register_factor
class ClipNorm(_Clip):
    """Clip the gradients' global norm to max_norm before each step (recorded in the spec)."""

    name = "clip_norm"
    params = (
        Param("max_norm", REQUIRED, "largest global gradient norm", low=0.0, low_open=True),
        Param("norm_type", 2.0, "p of the p-norm (2: Euclidean)", low=1.0),
    )
    example = "clip_norm(max_norm=0.5)"
    examples = ("clip_norm(max_norm=2.0, norm_type=1.0)",)

    def clip(self, params: list[torch.Tensor]) -> bool:
        total = torch.nn.utils.clip_grad_norm_(params, self.config["max_norm"], norm_type=self.config["norm_type"])
        self.last_norm = float(total)
        return math.isfinite(self.last_norm) and self.last_norm > self.config["max_norm"]


@register_factor
class ClipValue(_Clip):
    """Clamp every gradient element to [-clip, clip] before each step (recorded in the spec)."""

    name = "clip_value"
    params = (Param("clip", REQUIRED, "largest absolute gradient element", low=0.0, low_open=True),)
    example = "clip_value(clip=0.05)"
    examples = ("clip_value(clip=1.0)",)

    def clip(self, params: list[torch.Tensor]) -> bool:
        norms = torch._foreach_norm([p.grad for p in params], float("inf"))
        self.last_norm = max(float(n) for n in norms)
        torch.nn.utils.clip_grad_value_(params, self.config["clip"])
        return self.last_norm > self.config["clip"]
