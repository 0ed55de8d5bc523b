"""The direction of the step an optimizer just took, read from the optimizer itself where it is known.

An online controller that cumulates normalised steps (CLARA) needs ŝ_k = s_k/‖s_k‖ for every parameter
tensor k, where the optimizer moved θ_k by −η·s_k. Reading it from the displacement θ_before − θ_after
works for every optimizer but loses precision in float32: θ_after is rounded to about 6e-8·|θ|, so
with η·|s| ≪ |θ| the measured direction is mostly rounding (an error of about 1e-3 at η = 1e-4 and of
order 1 at η = 1e-6 on a typical network, exactly where CLARA's rescue of a tiny η0 happens). It also
costs a copy of θ before every step.

For the optimizers below the direction is read from what the optimizer itself used, after its step:

- `torch.optim.SGD` without momentum: s = g (the gradient, read in place: no copy at all);
- with momentum μ (dampening any): s = b_t, the momentum buffer after the step; Nesterov: g + μ·b_t;
- `torch.optim.Adam` / `AdamW`: s = m̂/(√v̂ + ε) (AMSGrad: the running maximum of v̂), computed as
  (√bc₂/bc₁)·m/(√v + ε·√bc₂) with bc_i = 1 − β_i^t into one buffer the size of θ; the AdamW decay term η·λ·θ carries no gradient
  information and is not part of s (it is part of the step taken, and stays in it).

These are exact under the optimizers' own formulas (torch 2.x), checked by tests. Anything else — other
classes (subclasses included), SGD with weight decay (its direction needs θ before the step),
`maximize=True`, sparse or complex gradients — returns None, and the caller falls back to the
displacement.
"""

from __future__ import annotations

import math

import torch

_KNOWN = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def _known_group(optimizer: torch.optim.Optimizer, group: dict) -> bool:
    if group.get("maximize", False) or group.get("differentiable", False):
        return False
    if type(optimizer) is torch.optim.SGD:
        return float(group.get("weight_decay", 0.0)) == 0.0
    return True


class DirectionReader:
    """Reads s_k for the tensors of a known optimizer; build it with `DirectionReader.of` (None if unknown)."""

    def __init__(self, optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor], tensor_group: list[int]) -> None:
        self.optimizer = optimizer
        self.tensors = tensors
        self.tensor_group = tensor_group
        self.kind = "sgd" if type(optimizer) is torch.optim.SGD else "adam"
        self.buffers: list[torch.Tensor] | None = None  # Adam's direction, written in place every step

    @classmethod
    def of(
        cls, optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor], tensor_group: list[int]
    ) -> DirectionReader | None:
        if type(optimizer) not in _KNOWN:
            return None
        if not all(_known_group(optimizer, g) for g in optimizer.param_groups):
            return None
        if any(t.is_complex() for t in tensors):
            return None
        return cls(optimizer, tensors, tensor_group)

    def usable(self) -> bool:
        """Whether this step's gradients can be read (dense); checked before each step, cheaply."""
        return not any(t.grad is not None and t.grad.is_sparse for t in self.tensors)

    def read(self, moved: list[bool]) -> tuple[list[torch.Tensor], list[float]]:
        """After the step: (s_k, scale_k) for the tensors that moved, where the optimizer's step along s was
        Δθ_k = −scale_k·s_k (scale_k = the group's η, times Adam's bias-correction factor).

        s_k may be the optimizer's own tensor (the gradient, the momentum buffer): read it, never write it.
        Tensors with moved[k] False get an empty tensor and scale 0.
        """
        groups = self.optimizer.param_groups
        state = self.optimizer.state
        dirs: list[torch.Tensor] = []
        scales: list[float] = []
        index = [k for k, m in enumerate(moved) if m]
        if self.kind == "sgd":
            plain, nesterov = [], []
            for k in index:
                p, group = self.tensors[k], groups[self.tensor_group[k]]
                mu = float(group.get("momentum", 0.0))
                if mu == 0.0:
                    plain.append((k, p.grad))
                elif group.get("nesterov", False):
                    nesterov.append((k, p.grad, state[p]["momentum_buffer"], mu))
                else:
                    plain.append((k, state[p]["momentum_buffer"]))
            found = dict(plain)
            for k, g, buf, mu in nesterov:  # g + μ·b_t, one new tensor per tensor (rare: a Python loop)
                found[k] = torch.add(g, buf, alpha=mu)
            for k in range(len(self.tensors)):
                if k in found:
                    dirs.append(found[k])
                    scales.append(float(groups[self.tensor_group[k]]["lr"]))
                else:
                    dirs.append(torch.empty(0))
                    scales.append(0.0)
            return dirs, scales
        # Adam / AdamW: m/(√v + ε√bc₂) in three passes into a buffer kept per tensor. A per-tensor loop
        # with out= writes: the foreach ops have no out= form, and allocating their results every step
        # (page faults on CPU) or the in-place foreach chain (five passes) measured slower.
        if self.buffers is None:
            self.buffers = [torch.empty_like(p, memory_format=torch.preserve_format) for p in self.tensors]
        found = {}
        for k in index:
            p, group = self.tensors[k], groups[self.tensor_group[k]]
            st = state[p]
            beta1, beta2 = group["betas"]
            t = float(st["step"])
            bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
            v = st["max_exp_avg_sq"] if group.get("amsgrad", False) else st["exp_avg_sq"]
            buf = self.buffers[k]
            torch.sqrt(v, out=buf)
            buf.add_(float(group["eps"]) * math.sqrt(bc2))
            torch.div(st["exp_avg"], buf, out=buf)
            found[k] = (buf, float(group["lr"]) * math.sqrt(bc2) / bc1)
        for k in range(len(self.tensors)):
            if k in found:
                dirs.append(found[k][0])
                scales.append(found[k][1])
            else:
                dirs.append(torch.empty(0))
                scales.append(0.0)
        return dirs, scales
