"""CLARA's reference: the expected squared path length μ (and its spread σ) when the steps carry no information.

CLARA (control/clara.py) compares the squared length of each tensor's cumulated path of normalised
steps, ‖p^k‖², with μ_k, the value the same recursion reaches when the optimizer is fed pure noise;
σ_k is the standard deviation of ‖p^k‖² there (d="auto" and the authors' d = 2σ read it). Both are
taken in the recursion's stationary regime, with i.i.d. N(0, I) gradients, for a tensor of N_k elements.

- Plain SGD (no momentum): the steps are independent random unit vectors u_j, so
  ‖p‖² = c²·Σ_j (1−c)^{2j} + 2c²·Σ_{i<j} (1−c)^{i+j} u_i·u_j, and with E[u_i·u_j] = 0,
  Var(u_i·u_j) = 1/N and uncorrelated pairs:
      μ = c/(2 − c),   σ_N = 2μ(1 − c)/sqrt((1 + (1 − c)²)·N)        (exact for every N ≥ 1).
  (The authors' released code uses √2·μ(1 − c)/… for σ, a factor √2 too small.)
- Momentum (SGD with momentum β, Adam/AdamW with β1, any optimizer): consecutive steps of an
  optimizer with momentum are correlated even on pure noise. In high dimension the normalised
  steps j apart have correlation ρ_j → β^j (Adam: v̂ is nearly constant over the momentum time scale,
  so the step is a fixed diagonal rescaling of the momentum m_t, whose lag-j autocorrelation is β^j),
  and then
      μ_∞ = c²·Σ_{i,j} (1−c)^{i+j} β^{|i−j|} = c/(2 − c) · (1 + (1 − c)β)/(1 − (1 − c)β)
  (0.6825 for c = 0.2, β = 0.9). For small N the normalisation makes ρ_j smaller than β^j and μ
  depends on N (0.6 at N = 2), and no closed form covers every optimizer, so the reference is
  *estimated once at attach time* by a Monte-Carlo run of the attached optimizer's own class with
  the same hyperparameters (weight decay set to 0: the reference carries no information) on
  N(0, I) gradients: every distinct tensor size n is simulated as ⌈8192/n⌉ independent rows of one
  flat parameter (one optimizer step per MC step; rows normalised as [rows, n] views, no loop over
  rows or elements), the path recursion runs on the rows, and after a burn-in of five momentum time
  constants (at least 100 steps) the mean and standard deviation of ‖p‖² over 300 steps and all rows
  give μ_k and σ_k (statistical error on μ about 0.2 % or less). Sizes above 4096 reuse the 4096
  estimate for μ (the finite-size correction is O(1/N)) and scale σ as 1/√N. Results are cached
  per (optimizer class, hyperparameters, c, set of sizes simulated together), use a private RNG (the caller's RNG streams are untouched) and are
  deterministic. This requires an optimizer that acts elementwise (SGD, Adam, AdamW, RMSprop,
  Adagrad, Lion, …), which is what the "same optimizer driven by noise" reference means.

Reference: Atamna, Maus, Kievelitz, Glasmachers (2025), arXiv 2508.05408; docs/clara.md.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from lrcontrol.errors import LRControlError
from lrcontrol.optim.modes import set_train_mode

#: tensor sizes above this share the reference of a tensor of this size (μ), σ scaled as 1/√N
MC_MAX_SIZE = 4096
#: elements simulated per distinct size (rows × size), burn-in and sampled steps of the Monte-Carlo run
MC_ELEMENTS = 8192
MC_BURN_IN = 100
MC_SAMPLES = 300


_CACHE: dict[tuple[Any, ...], tuple[float, float]] = {}


def sgd_reference(c: float, size: int) -> tuple[float, float]:
    """Exact (μ, σ) of ‖p‖² for i.i.d. random unit steps in dimension `size` (memoryless SGD)."""
    mu = c / (2.0 - c)
    sigma = 2.0 * mu * (1.0 - c) / math.sqrt((1.0 + (1.0 - c) ** 2) * size)
    return mu, sigma


def momentum_reference_limit(c: float, beta: float) -> float:
    """High-dimensional limit of μ for steps whose lag-j correlation is β^j (momentum β, Adam's β1)."""
    q = (1.0 - c) * beta
    return c / (2.0 - c) * (1.0 + q) / (1.0 - q)


# The learning rate is part of the key: the reference optimizer runs at the live η, and although the
# normalised directions do not depend on η in exact arithmetic, their float32 rounding does, so a μ
# cached at another η would make a run's numbers depend on what ran before it in the process.
_NOT_HYPER = ("params", "initial_lr")


def _hyper_key(group: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in group.items() if k not in _NOT_HYPER))


def _is_memoryless_sgd(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> bool:
    return type(optimizer) is torch.optim.SGD and float(group.get("momentum", 0.0)) == 0.0


def _reference_optimizer(
    optimizer: torch.optim.Optimizer, group: dict[str, Any], flat: torch.Tensor
) -> torch.optim.Optimizer:
    """A fresh optimizer of the same class and hyperparameters (not its state) on `flat`."""
    cls = type(optimizer)
    # only constructor arguments: per-group state some optimizers keep in param_groups
    # (D-Adaptation's d, DoG's r̄) belongs to the live run, not to the reference
    accepted = inspect.signature(cls.__init__).parameters
    hyper = {k: v for k, v in group.items() if k in accepted and k != "params"}
    if "weight_decay" in hyper:
        hyper["weight_decay"] = 0.0
    for key, off in (("foreach", None), ("fused", False), ("capturable", False), ("differentiable", False)):
        if key in hyper:
            hyper[key] = off
    try:
        ref = cls([flat], **hyper)
        set_train_mode(ref, True)  # Schedule-Free optimizers step only in train mode
        return ref
    except Exception as exc:  # an optimizer whose constructor does not take its own defaults back
        raise LRControlError(
            f"clara() builds its noise reference by running a fresh {cls.__name__} with the same "
            f"hyperparameters, and that failed ({type(exc).__name__}: {exc}); use an optimizer whose "
            "constructor accepts its param-group hyperparameters, or report it"
        ) from exc


def _burn_in(group: dict[str, Any]) -> int:
    """Steps for the momentum and the path to forget their zero start: 5 time constants, at least 100."""
    beta = 0.0
    if "momentum" in group:
        beta = float(group["momentum"] or 0.0)
    elif "betas" in group:
        beta = float(group["betas"][0])
    return int(min(1000, max(MC_BURN_IN, math.ceil(5.0 / max(1.0 - beta, 1e-3)))))


def monte_carlo_reference(
    optimizer: torch.optim.Optimizer, group_index: int, sizes: list[int], c: float
) -> dict[int, tuple[float, float]]:
    """(μ, σ) of ‖p‖² per tensor size for the attached optimizer's class driven by N(0, I) gradients.

    One flat float32 parameter holds, for each distinct simulated size n, ⌈MC_ELEMENTS/n⌉ independent
    rows of n elements (one contiguous block per size); the reference optimizer steps it once per MC
    step and each block is normalised and cumulated as a [rows, n] view (a Python loop over the few
    distinct sizes, never over rows or elements).
    """
    group = optimizer.param_groups[group_index]
    simulated = {n: min(n, MC_MAX_SIZE) for n in sizes}
    # the sizes share one random stream, so the estimates depend on the set simulated together: cache
    # per set, so that a model's reference never depends on what was attached before in the process
    key = (
        type(optimizer).__module__,
        type(optimizer).__qualname__,
        _hyper_key(group),
        float(c),
        tuple(sorted(set(simulated.values()))),
    )
    todo = sorted({m for m in simulated.values() if key + (m,) not in _CACHE})
    if todo:
        rows = [math.ceil(MC_ELEMENTS / m) for m in todo]
        bounds = [0]
        for m, r in zip(todo, rows):
            bounds.append(bounds[-1] + m * r)
        gen = torch.Generator().manual_seed(20250807)
        flat = torch.zeros(bounds[-1], dtype=torch.float32, requires_grad=True)
        ref = _reference_optimizer(optimizer, group, flat)
        before = torch.empty_like(flat, requires_grad=False)
        path = torch.zeros_like(flat, requires_grad=False)
        views = [(slice(a, b), m, r) for a, b, m, r in zip(bounds[:-1], bounds[1:], todo, rows)]
        sums = [torch.zeros(r, dtype=torch.float64) for r in rows]
        sums2 = [torch.zeros(r, dtype=torch.float64) for r in rows]
        burn_in = _burn_in(group)
        with torch.no_grad():
            for step in range(burn_in + MC_SAMPLES):
                before.copy_(flat)
                flat.grad = torch.randn(flat.shape, generator=gen)
                ref.step()
                direction = before.sub_(flat)
                for span, m, r in views:
                    block = direction[span].view(r, m)
                    block.div_(block.norm(dim=1, keepdim=True).clamp_min(1e-30))
                path.mul_(1.0 - c).add_(direction, alpha=c)
                if step >= burn_in:
                    for i, (span, m, r) in enumerate(views):
                        sq = path[span].view(r, m).square().sum(1).double()
                        sums[i] += sq
                        sums2[i] += sq * sq
        for i, m in enumerate(todo):
            count = rows[i] * MC_SAMPLES
            mean = sums[i].sum().item() / count
            var = max(sums2[i].sum().item() / count - mean * mean, 0.0)
            _CACHE[key + (m,)] = (mean, math.sqrt(var))
    out = {}
    for n, m in simulated.items():
        mu, sd = _CACHE[key + (m,)]
        out[n] = (mu, sd * math.sqrt(m / n))
    return out


def reference_moments(
    optimizer: torch.optim.Optimizer, tensor_group: list[int], sizes: list[int], c: float, published: bool = False
) -> tuple[list[float], list[float]]:
    """μ_k and σ_k for each tensor (its group's optimizer hyperparameters and its size).

    published=True: the authors' reference — every tensor gets the μ of ONE tensor holding all N = Σ_k N_k
    parameters (so R = Σ‖p_k‖²/(K·μ(N)) for a single group), computed for that N like any other size.
    σ_k stays the per-tensor noise σ (d="auto" reads it); the authors' σ for d = 2σ is `published_sigma`.
    """
    total = sum(sizes)
    mus, sigmas = [0.0] * len(sizes), [0.0] * len(sizes)
    for gi, group in enumerate(optimizer.param_groups):
        members = [k for k, g in enumerate(tensor_group) if g == gi]
        if not members:
            continue
        wanted = [sizes[k] for k in members] + ([total] if published else [])
        if _is_memoryless_sgd(optimizer, group):
            table = {n: sgd_reference(c, n) for n in wanted}
        else:
            table = monte_carlo_reference(optimizer, gi, wanted, c)
        for k in members:
            mus[k] = table[total][0] if published else table[sizes[k]][0]
            sigmas[k] = table[sizes[k]][1]
    return mus, sigmas


def published_sigma(optimizer: torch.optim.Optimizer, total: int, c: float) -> float:
    """The σ in the authors' default damping d = 2σ, for a model of `total` parameters (first group).

    Memoryless SGD: their formula √2·μ(1 − c)/√((1 + (1 − c)²)·N) (a factor √2 below the exact σ of
    `sgd_reference`, kept here because the published default is defined by it). Any other optimizer:
    the Monte-Carlo σ of ‖p‖² for one tensor of N elements (what the authors' table lists for Adam).
    """
    group = optimizer.param_groups[0]
    if _is_memoryless_sgd(optimizer, group):
        mu = c / (2.0 - c)
        return math.sqrt(2.0) * mu * (1.0 - c) / math.sqrt((1.0 + (1.0 - c) ** 2) * total)
    return monte_carlo_reference(optimizer, 0, [total], c)[total][1]
