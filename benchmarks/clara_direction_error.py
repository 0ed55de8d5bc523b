"""Float32 error of the step direction CLARA cumulates: read from the displacement, or from the optimizer.

For a 64-100-10 ReLU MLP on scikit-learn's digits (batch 128) in float32, after 20 steps at constant
η, the normalised direction of the next step is measured two ways, as online controllers can:

- displacement: (θ_before − θ_after)/‖·‖, both float32 (what lrcontrol ≤ 0.2 did);
- optimizer: `lrcontrol.control.direction.DirectionReader` (the gradient, the momentum buffer, Adam's
  m/(√v + ε√bc₂)), in float32;

and compared with the exact direction of the same step, computed in float64 from the same float32
gradient and optimizer state (SGD: g; momentum: b_t; Adam/AdamW: m̂/(√v̂ + ε)). Reported: the largest
‖ŝ − ŝ_exact‖ over the tensors, the worst of 5 seeds.

    python benchmarks/clara_direction_error.py
"""

from __future__ import annotations

import torch

from lrcontrol.control.direction import DirectionReader

LRS = tuple(10.0**k for k in range(-6, 1))
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {}),
    "sgd momentum 0.9": (torch.optim.SGD, {"momentum": 0.9}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
}


def exact_direction(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    """The optimizer's direction for p after its step, in float64, from the float32 state."""
    group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
    st = optimizer.state[p]
    if isinstance(optimizer, torch.optim.SGD):
        return (st["momentum_buffer"] if group["momentum"] else p.grad).double()
    beta1, beta2 = group["betas"]
    t = float(st["step"])
    m_hat = st["exp_avg"].double() / (1 - beta1**t)
    v_hat = st["exp_avg_sq"].double() / (1 - beta2**t)
    return m_hat / (v_hat.sqrt() + group["eps"])


def errors(name: str, lr: float, seed: int) -> tuple[float, float]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor((x - x.mean(0)) / (x.std(0) + 1e-8), dtype=torch.float32)
    y = torch.as_tensor(y)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    params = list(model.parameters())
    cls, kw = OPTIMIZERS[name]
    opt = cls(params, lr=lr, **kw)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(21):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        before = [p.detach().clone() for p in params]
        opt.step()
    displacement = [(b - p.detach()).double() for b, p in zip(before, params)]
    read, _ = DirectionReader.of(opt, params, [0] * len(params)).read([True] * len(params))
    worst_d = worst_r = 0.0
    for p, d, r in zip(params, displacement, read):
        e = exact_direction(opt, p)
        e = e / e.norm()
        worst_d = max(worst_d, float((d / d.norm() - e).norm()))
        worst_r = max(worst_r, float((r.double() / r.double().norm() - e).norm()))
    return worst_d, worst_r


def main() -> None:
    torch.set_num_threads(1)
    print("| optimizer | η | displacement (float32) | from the optimizer (float32) |")
    print("|---|---:|---:|---:|")
    for name in OPTIMIZERS:
        for lr in LRS:
            results = [errors(name, lr, seed) for seed in range(5)]
            d = max(r[0] for r in results)
            r = max(r[1] for r in results)
            print(f"| {name} | {lr:g} | {d:.1e} | {r:.1e} |")


if __name__ == "__main__":
    main()
