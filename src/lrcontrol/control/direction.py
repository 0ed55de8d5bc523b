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
  (√bc₂/bc₁)·m/(√v + ε·√bc₂) with bc_i = 1 − β_i^t (into a buffer kept per large tensor; small
  tensors together in three foreach calls); the AdamW decay term η·λ·θ carries no gradient
  information and is not part of s (it is part of the step taken, and stays in it).

Adam's direction is not recomputed where it can be read: while the optimizer steps, a
`torch.overrides.TorchFunctionMode` watches for the one call that applies the update to each watched
tensor — `torch._foreach_addcdiv_(params, exp_avgs, denominators, -step_sizes)` in the multi-tensor
implementation, `param.addcdiv_(exp_avg, denominator, value=-step_size)` in the per-tensor one — and
keeps its operands. The direction is then exp_avg/denominator, one division into the denominator
Adam has just computed and discarded, bit for bit the quotient Adam multiplied by its step size; the
square root of v, the most expensive pass of an Adam step on the CPU (about 0.5 ms per million
float32 elements here, against 0.2 ms for a division), is not paid twice. No library exposes the
denominator an optimizer used, hence this recorder. The mode costs a Python call for every torch
call inside the step (about 60 for a foreach Adam step of 6 tensors, 2.5 µs each here), which a
small model does not win back: it is used only for models whose tensors hold on average at least
`RECORD_MIN_MEAN` elements and `RECORD_MIN_TOTAL` in all (measured: +0.14 ms on the 20k-parameter
CNN, +0.5 ms on the 30-tensor transformer, −0.6 ms on the 1.1M-parameter MLP). Where nothing was recorded (the fused or capturable
implementations, which fold the step size into one kernel or into the denominator; a step called
around the hooks) the direction is computed from the state as below.

These are exact under the optimizers' own formulas (torch 2.x), checked by tests. Anything else — other
classes (subclasses included), SGD with weight decay (its direction needs θ before the step),
`maximize=True`, sparse or complex gradients — returns None, and the caller falls back to the
displacement.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_KNOWN = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def _known_group(optimizer: torch.optim.Optimizer, group: dict) -> bool:
    if group.get("maximize", False) or group.get("differentiable", False):
        return False
    if type(optimizer) is torch.optim.SGD:
        return float(group.get("weight_decay", 0.0)) == 0.0
    return True


#: tensors with at least this many elements get Adam's direction written into a buffer kept across
#: steps (one pass per operation, no allocation); smaller ones are computed by three foreach calls
#: that allocate their results (cheap at that size), so a model of many small tensors (a transformer)
#: pays three Python calls per step, not three per tensor. Every element is computed by the same IEEE
#: operations either way (sqrt, add, divide), so the two paths give the same bits.
LARGE_TENSOR = 32768
#: Adam's update is recorded (not recomputed) only for models this large (see the module's docstring)
RECORD_MIN_MEAN = 65536
RECORD_MIN_TOTAL = 2**19


class _UpdateRecorder(TorchFunctionMode):
    """While entered, keeps (exp_avg, denominator, value) of the addcdiv_ that moves each watched tensor."""

    def __init__(self, index: dict[int, int]) -> None:
        super().__init__()
        self.index = index  # id(parameter) -> its position k in the reader's tensors
        self.found: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is torch._foreach_addcdiv_:
            self._foreach(args, kwargs)
        elif func is torch.Tensor.addcdiv_:
            self._single(args, kwargs)
        return result

    def _foreach(self, args: tuple, kwargs: dict) -> None:
        if len(args) < 3:
            return
        params, numerators, denominators = args[:3]
        values = args[3] if len(args) > 3 else kwargs.get("scalars", kwargs.get("value"))
        if values is None or isinstance(values, torch.Tensor):  # the capturable form: scale folded in
            return
        if not isinstance(values, (list, tuple)):
            values = [values] * len(params)
        for p, numerator, denominator, value in zip(params, numerators, denominators, values):
            self._keep(p, numerator, denominator, value)

    def _single(self, args: tuple, kwargs: dict) -> None:
        if len(args) < 3:
            return
        value = args[3] if len(args) > 3 else kwargs.get("value")
        self._keep(args[0], args[1], args[2], value)

    def _keep(self, p: Any, numerator: Any, denominator: Any, value: Any) -> None:
        k = self.index.get(id(p))
        if k is None or isinstance(value, torch.Tensor) or not isinstance(value, (int, float)) or not value < 0:
            return
        self.found[k] = (numerator, denominator, -float(value))


class DirectionReader:
    """Reads s_k for the tensors of a known optimizer; build it with `DirectionReader.of` (None if unknown)."""

    def __init__(self, optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor], tensor_group: list[int]) -> None:
        self.optimizer = optimizer
        self.tensors = tensors
        self.tensor_group = tensor_group
        self.kind = "sgd" if type(optimizer) is torch.optim.SGD else "adam"
        #: Adam's direction of the large tensors, written in place every step (None for the small ones)
        self.buffers: list[torch.Tensor | None] | None = None
        self._empty = torch.empty(0)
        #: Adam: the recorder of the step's update (entered by `begin`, left by `end`) and what it read
        self._recorder: _UpdateRecorder | None = None
        total = sum(t.numel() for t in tensors)
        if self.kind == "adam" and total >= max(RECORD_MIN_TOTAL, RECORD_MIN_MEAN * len(tensors)):
            self._recorder = _UpdateRecorder({id(t): k for k, t in enumerate(tensors)})
        self._entered = False
        self._read: tuple[list[torch.Tensor], list[float]] | None = None

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

    def moved(self) -> list[bool] | None:
        """Before the step: which tensors the optimizer will move (those with a gradient), or None when
        this step's gradients cannot be read (a sparse one) and the caller must measure the displacement."""
        grads = [t.grad for t in self.tensors]
        if any(g is not None and g.is_sparse for g in grads):
            return None
        return [g is not None for g in grads]

    def begin(self) -> None:
        """Before the optimizer's step: start recording the update it applies (Adam)."""
        self._read = None
        if self._recorder is None:
            return
        self._recorder.found = {}
        if not self._entered:
            self._recorder.__enter__()
            self._entered = True

    def end(self) -> None:
        """After the optimizer's step (or when it failed): stop recording."""
        if self._entered:
            self._entered = False
            self._recorder.__exit__(None, None, None)

    def read(self, moved: list[bool]) -> tuple[list[torch.Tensor], list[float]]:
        """After the step: (s_k, scale_k) for the tensors that moved, where the optimizer's step along s was
        Δθ_k = −scale_k·s_k (scale_k = the group's η, times Adam's bias-correction factor).

        s_k may be the optimizer's own tensor (the gradient, the momentum buffer): read it, never write it.
        Tensors with moved[k] False get an empty tensor and scale 0.
        """
        if self.kind == "sgd":
            return self._read_sgd(moved)
        if self._read is None:  # once per step: the recorded denominators become the directions in place
            self._read = self._read_recorded(moved) or self._read_adam(moved)
        return self._read

    def _read_sgd(self, moved: list[bool]) -> tuple[list[torch.Tensor], list[float]]:
        groups = self.optimizer.param_groups
        state = self.optimizer.state
        dirs: list[torch.Tensor] = [self._empty] * len(self.tensors)
        scales = [0.0] * len(self.tensors)
        for k, p in enumerate(self.tensors):
            if not moved[k]:
                continue
            group = groups[self.tensor_group[k]]
            mu = float(group.get("momentum", 0.0))
            if mu == 0.0:
                dirs[k] = p.grad
            elif group.get("nesterov", False):  # g + μ·b_t, one new tensor per tensor (rare)
                dirs[k] = torch.add(p.grad, state[p]["momentum_buffer"], alpha=mu)
            else:
                dirs[k] = state[p]["momentum_buffer"]
            scales[k] = float(group["lr"])
        return dirs, scales

    def _read_recorded(self, moved: list[bool]) -> tuple[list[torch.Tensor], list[float]] | None:
        # s_k = exp_avg/denominator: one division instead of the three passes of `_read_adam`, written into
        # the denominator for the large tensors (Adam's own temporary, dropped after its step; never a
        # tensor of the optimizer's state), by one foreach call for the small ones. None unless every
        # tensor that moved was recorded.
        found = {} if self._recorder is None else self._recorder.found
        if not found or any(m and k not in found for k, m in enumerate(moved)):
            return None
        state = self.optimizer.state
        dirs: list[torch.Tensor] = [self._empty] * len(self.tensors)
        scales = [0.0] * len(self.tensors)
        small: list[int] = []
        for k, m in enumerate(moved):
            if not m:
                continue
            numerator, denominator, scales[k] = found[k]
            owned = all(denominator is not v for v in state[self.tensors[k]].values())
            if owned and denominator.numel() >= LARGE_TENSOR:
                dirs[k] = torch.div(numerator, denominator, out=denominator)
            else:
                small.append(k)
        if small:
            quotients = torch._foreach_div([found[k][0] for k in small], [found[k][1] for k in small])
            for k, s in zip(small, quotients):
                dirs[k] = s
        self._recorder.found = {}
        return dirs, scales

    def _read_adam(self, moved: list[bool]) -> tuple[list[torch.Tensor], list[float]]:
        # m/(√v + ε√bc₂) in three passes. Large tensors: a per-tensor loop with out= writes into a buffer
        # kept per tensor (the foreach ops have no out= form, and allocating their results every step, page
        # faults on CPU, or the in-place foreach chain, five passes, measured slower). Small tensors: three
        # foreach calls for all of them together.
        groups = self.optimizer.param_groups
        state = self.optimizer.state
        if self.buffers is None:
            self.buffers = [
                torch.empty_like(p, memory_format=torch.preserve_format) if p.numel() >= LARGE_TENSOR else None
                for p in self.tensors
            ]
        dirs: list[torch.Tensor] = [self._empty] * len(self.tensors)
        scales = [0.0] * len(self.tensors)
        # (ε√bc₂, η·√bc₂/bc₁) per (group, step count): the same few values for every tensor of a group
        factors: dict[tuple[int, float], tuple[float, float]] = {}
        small: list[int] = []
        small_m: list[torch.Tensor] = []
        small_v: list[torch.Tensor] = []
        small_eps: list[float] = []
        for k, p in enumerate(self.tensors):
            if not moved[k]:
                continue
            gi = self.tensor_group[k]
            group = groups[gi]
            st = state[p]
            t = float(st["step"])
            found = factors.get((gi, t))
            if found is None:
                beta1, beta2 = group["betas"]
                bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
                found = factors[gi, t] = (
                    float(group["eps"]) * math.sqrt(bc2),
                    float(group["lr"]) * math.sqrt(bc2) / bc1,
                )
            eps, scales[k] = found
            v = st["max_exp_avg_sq"] if group.get("amsgrad", False) else st["exp_avg_sq"]
            buf = self.buffers[k]
            if buf is None:
                small.append(k)
                small_m.append(st["exp_avg"])
                small_v.append(v)
                small_eps.append(eps)
                continue
            torch.sqrt(v, out=buf)
            buf.add_(eps)
            torch.div(st["exp_avg"], buf, out=buf)
            dirs[k] = buf
        if small:
            denominators = torch._foreach_sqrt(small_v)
            torch._foreach_add_(denominators, small_eps)
            for k, s in zip(small, torch._foreach_div(small_m, denominators)):
                dirs[k] = s
        return dirs, scales
